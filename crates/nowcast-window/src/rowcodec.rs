//! The compact encoding of an entity's raw rows (snapshot and changelog format version 3).
//!
//! In memory a row is `stride` words (see [`RowLayout`]): 40 bytes for the demo's two value
//! columns, whatever the values. Encoded, the rows of one source are a byte string:
//!
//! - the row count `n`, a LEB128 varint; nothing more if it is 0;
//! - the first row's time minus the source's newest time (zigzag varint) and its seq (varint);
//! - three widths in bytes (0–8): of the time deltas, the seq deltas and the tag words;
//! - per row, little-endian in those widths: its time minus the previous row's (zigzag; 0 for
//!   the first), its seq minus the previous row's (zigzag; 0 for the first), each tag word; then,
//!   in column order, the 8 bytes of every value word whose tag is not "skip" (a skipped value
//!   is 0 in memory and absent here).
//!
//! Fixed widths per source rather than a varint per field: rows are written and read without
//! a data-dependent branch per byte (LEB128 varints per field made snapshot encoding 1.7× and
//! decoding 1.5× slower than the plain words of version 2), and one entity's deltas are of one
//! size anyway. A demo row (two columns) takes ~22 bytes instead of 40: rows minutes apart
//! (3-byte time deltas), a few thousand arrivals apart (2–3-byte seq deltas), 1-byte tags.
//! Changelog records carry one entity's rows each, so this is most of their size.
//!
//! Decoding checks the row count against the bytes present and rebuilds rows the caller then
//! validates with [`RowLayout::is_valid`]; bad bytes give an error, never a panic. A value
//! word under a "skip" tag (possible in a version 2 record, never read) is re-encoded as 0.

use crate::state::{scratch_row, RowLayout, TAG_SKIP};
use crate::WindowError;

/// Appends `v` as a LEB128 varint.
fn put_var(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

/// Bytes needed for `v` (0 for 0).
#[inline]
fn width(v: u64) -> usize {
    (64 - v.leading_zeros() as usize).div_ceil(8)
}

/// The mask of the low `w` bytes of a word (`w` ≤ 8).
#[inline]
fn mask(w: usize) -> u64 {
    if w >= 8 {
        !0
    } else {
        (1u64 << (8 * w)) - 1
    }
}

/// The most bytes a row takes with these widths (every value present).
fn longest_row(layout: &RowLayout, wt: usize, ws: usize, wg: usize) -> usize {
    let values = layout.value_at.iter().flatten().count();
    wt + ws + wg * layout.columns.div_ceil(32) + 8 * values
}

/// Bytes of the row buffer of [`encode`] on the stack; rows whose encoding may be longer use
/// a heap buffer.
const ROW_BYTES: usize = 128;

/// Appends the encoding of the rows `raw` of `layout` to `out`; `base` is the source's newest
/// time.
pub(crate) fn encode(layout: &RowLayout, raw: &[u64], base: i64, out: &mut Vec<u8>) {
    let rows = layout.rows(raw);
    put_var(out, rows as u64);
    if rows == 0 {
        return;
    }
    let tag_words = layout.columns.div_ceil(32);
    let (t0, s0) = (raw[0] as i64, raw[1]);
    put_var(out, zigzag(t0.wrapping_sub(base)));
    put_var(out, s0);
    // Widths: the largest delta and tag word of this source.
    let (mut dt, mut ds, mut tags) = (0u64, 0u64, 0u64);
    let (mut time, mut seq) = (t0, s0);
    for row in raw.chunks_exact(layout.stride) {
        dt |= zigzag((row[0] as i64).wrapping_sub(time));
        ds |= zigzag(row[1].wrapping_sub(seq) as i64);
        (time, seq) = (row[0] as i64, row[1]);
        for &w in &row[2..2 + tag_words] {
            tags |= w;
        }
    }
    let (wt, ws, wg) = (width(dt), width(ds), width(tags));
    out.extend_from_slice(&[wt as u8, ws as u8, wg as u8]);
    // Each field is stored as 8 bytes and the position advances by its width, so the buffer
    // has 8 bytes of slack behind the longest row.
    let max_row = longest_row(layout, wt, ws, wg);
    let mut small = [0u8; ROW_BYTES];
    let mut big = Vec::new();
    let buf: &mut [u8] = if max_row + 8 <= ROW_BYTES {
        &mut small
    } else {
        big.resize(max_row + 8, 0);
        &mut big
    };
    out.reserve(rows * max_row);
    let (mut time, mut seq) = (t0, s0);
    for row in raw.chunks_exact(layout.stride) {
        let t = row[0] as i64;
        buf[..8].copy_from_slice(&zigzag(t.wrapping_sub(time)).to_le_bytes());
        let mut at = wt;
        buf[at..at + 8].copy_from_slice(&zigzag(row[1].wrapping_sub(seq) as i64).to_le_bytes());
        at += ws;
        (time, seq) = (t, row[1]);
        for &w in &row[2..2 + tag_words] {
            buf[at..at + 8].copy_from_slice(&w.to_le_bytes());
            at += wg;
        }
        for (c, v) in layout.value_at.iter().enumerate() {
            if let Some(v) = *v {
                if RowLayout::tag(row, c) != TAG_SKIP {
                    buf[at..at + 8].copy_from_slice(&row[v].to_le_bytes());
                    at += 8;
                }
            }
        }
        out.extend_from_slice(&buf[..at]);
    }
}

/// Reads bytes written by [`encode`].
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn var(&mut self) -> Result<u64, WindowError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.b.get(self.at) else {
                return Err(WindowError::corrupt("raw rows are truncated"));
            };
            self.at += 1;
            if shift == 63 && byte > 1 {
                return Err(WindowError::corrupt("varint overflows 64 bits"));
            }
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(v);
            }
        }
        Err(WindowError::corrupt("varint overflows 64 bits"))
    }

    fn width(&mut self) -> Result<usize, WindowError> {
        let w = *self
            .b
            .get(self.at)
            .ok_or_else(|| WindowError::corrupt("raw rows are truncated"))?;
        self.at += 1;
        if w > 8 {
            return Err(WindowError::corrupt("raw row field width exceeds 8 bytes"));
        }
        Ok(w as usize)
    }
}

/// Decodes rows written by [`encode`] with the same `layout` and `base`. The rows are not
/// validated here (see [`RowLayout::is_valid`]), only the bytes' structure: every byte used,
/// none missing.
pub(crate) fn decode(layout: &RowLayout, bytes: &[u8], base: i64) -> Result<Vec<u64>, WindowError> {
    let mut r = Reader { b: bytes, at: 0 };
    let n = r.var()?;
    if n == 0 {
        return if r.at == bytes.len() {
            Ok(Vec::new())
        } else {
            Err(WindowError::corrupt("trailing bytes after the raw rows"))
        };
    }
    let mut time = base.wrapping_add(unzigzag(r.var()?));
    let mut seq = r.var()?;
    let (wt, ws, wg) = (r.width()?, r.width()?, r.width()?);
    let tag_words = layout.columns.div_ceil(32);
    // Never believe more rows than the bytes hold: every row but the first has a non-zero
    // time or seq delta, so with no byte per row (all widths 0) there is exactly one row.
    let fixed = wt + ws + wg * tag_words;
    let rest = (bytes.len() - r.at) as u64;
    if (fixed == 0 && n != 1) || (fixed > 0 && n > rest / fixed as u64) {
        return Err(WindowError::corrupt(
            "raw row count exceeds the bytes present",
        ));
    }
    // The capacity grows with the rows actually decoded past the first 4096.
    let mut raw = Vec::with_capacity(n.min(4096) as usize * layout.stride);
    let (mt, ms, mg) = (mask(wt), mask(ws), mask(wg));
    // Every field is read as one 8-byte little-endian word masked to its width, from a slice
    // with 8 bytes of slack behind the longest row: the bytes themselves, or for the last rows
    // a zero-padded copy of what is left (a row reaching past the end is then truncated).
    let longest = longest_row(layout, wt, ws, wg);
    let mut padded = Vec::new();
    let (mut small, mut big) = ([0u64; 16], Vec::new());
    let row = scratch_row(&mut small, &mut big, layout.stride);
    for _ in 0..n {
        let b = match bytes.get(r.at..r.at + longest + 8) {
            Some(b) => b,
            None => {
                padded.clear();
                padded.extend_from_slice(&bytes[r.at..]);
                padded.resize(longest + 8, 0);
                &padded[..]
            }
        };
        let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        row.fill(0);
        time = time.wrapping_add(unzigzag(word(0) & mt));
        let mut at = wt;
        seq = seq.wrapping_add(unzigzag(word(at) & ms) as u64);
        at += ws;
        row[0] = time as u64;
        row[1] = seq;
        for w in 0..tag_words {
            row[2 + w] = word(at) & mg;
            at += wg;
        }
        for (c, v) in layout.value_at.iter().enumerate() {
            if let Some(v) = *v {
                if RowLayout::tag(row, c) != TAG_SKIP {
                    row[v] = word(at);
                    at += 8;
                }
            }
        }
        r.at += at;
        if r.at > bytes.len() {
            return Err(WindowError::corrupt("raw rows are truncated"));
        }
        raw.extend_from_slice(row);
    }
    if r.at != bytes.len() {
        return Err(WindowError::corrupt("trailing bytes after the raw rows"));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::state::{TAG_HASH, TAG_NUM};
    use crate::{Aggregation, Input};

    fn var_len(v: u64) -> usize {
        (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
    }

    /// Columns: a sum (value word), a count (presence only), a distinct count (hash), a max.
    fn layout() -> RowLayout {
        RowLayout::new(
            4,
            &[
                (0, Aggregation::Sum),
                (1, Aggregation::Count),
                (2, Aggregation::DistinctCount),
                (3, Aggregation::Max),
            ],
        )
    }

    fn input(kind: u8, v: f64) -> Input {
        match kind % 3 {
            0 => Input::Skip,
            1 => Input::Num(v),
            _ => Input::Num(f64::NAN),
        }
    }

    proptest! {
        /// Rows with any mix of present, skipped and non-finite values, hashes, disorder
        /// against the base time and seq jumps come back word for word; every truncation is an
        /// error, never a panic.
        #[test]
        fn rows_round_trip_and_truncation_is_an_error(
            rows in prop::collection::vec(
                (0i64..10_000_000, 0u64..1_000_000, any::<u8>(), any::<u8>(), any::<f64>(), any::<u64>()),
                0..40,
            ),
            base in -5_000_000i64..20_000_000,
        ) {
            let l = layout();
            let mut raw = Vec::new();
            let mut sorted = rows.clone();
            sorted.sort_by_key(|r| (r.0, r.1));
            sorted.dedup_by_key(|r| (r.0, r.1));
            for (t, seq, k0, k1, v, h) in sorted {
                let hash = if k1 % 2 == 0 { Input::Hash(h) } else { Input::Skip };
                let inputs = [input(k0, v), input(k0 / 3, 1.0), hash, input(k1 / 2, -v)];
                l.push(&mut raw, t, seq, &inputs);
            }
            let mut bytes = Vec::new();
            encode(&l, &raw, base, &mut bytes);
            prop_assert_eq!(decode(&l, &bytes, base).unwrap(), raw.clone());
            for cut in 0..bytes.len() {
                prop_assert!(decode(&l, &bytes[..cut], base).is_err());
            }
            bytes.push(0);
            prop_assert!(decode(&l, &bytes, base).is_err());
        }
    }

    /// With all widths 0 a row takes no bytes: a count above 1 would make decoding allocate
    /// and loop for rows that are not there (they could only repeat the first (time, seq)).
    #[test]
    fn a_row_count_the_bytes_cannot_hold_is_refused_before_allocating() {
        let l = layout();
        // n, first time (zigzag 0), first seq 5, widths 0 0 0.
        let mut one = Vec::new();
        put_var(&mut one, 1);
        one.extend_from_slice(&[0, 5, 0, 0, 0]);
        assert_eq!(decode(&l, &one, 0).unwrap().len(), l.stride);
        for n in [2, 64, 1 << 40, u64::MAX >> 1] {
            let mut b = Vec::new();
            put_var(&mut b, n);
            b.extend_from_slice(&[0, 5, 0, 0, 0]);
            b.extend(std::iter::repeat_n(0u8, 100));
            assert!(decode(&l, &b, 0).is_err(), "{n} rows");
        }
        // Widths of 1 byte: 100 bytes hold at most 100 / 3 rows.
        let mut b = Vec::new();
        put_var(&mut b, 34);
        b.extend_from_slice(&[0, 5, 1, 1, 1]);
        b.extend(std::iter::repeat_n(0u8, 100));
        assert!(decode(&l, &b, 0).is_err());
    }

    #[test]
    fn a_row_of_two_present_values_minutes_apart_takes_about_half_its_words() {
        let l = RowLayout::new(2, &[(0, Aggregation::Sum), (1, Aggregation::DistinctCount)]);
        let mut raw = Vec::new();
        let t0 = 1_795_000_000_000i64;
        for i in 0..20u64 {
            let t = t0 + i as i64 * 240_000;
            l.push(
                &mut raw,
                t,
                40_000 + i * 3_000,
                &[
                    Input::Num(12.34 + i as f64),
                    Input::Hash(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                ],
            );
        }
        assert_eq!(RowLayout::tag(&raw, 0), TAG_NUM);
        assert_eq!(RowLayout::tag(&raw, 1), TAG_HASH);
        let mut bytes = Vec::new();
        encode(&l, &raw, t0 + 19 * 240_000, &mut bytes);
        assert_eq!(raw.len() * 8, 20 * 40);
        // 3 + 2 + 1 bytes of fixed-width deltas and tags and 16 of values per row, against 40
        // bytes of words.
        assert!(bytes.len() <= 20 * 23, "{} bytes", bytes.len());
    }

    #[test]
    fn varints_round_trip_at_every_length_and_overflow_is_an_error() {
        for v in [0, 1, 127, 128, 16_383, 16_384, u64::MAX >> 1, u64::MAX] {
            let mut b = Vec::new();
            put_var(&mut b, v);
            assert_eq!(b.len(), var_len(v), "{v}");
            assert_eq!(Reader { b: &b, at: 0 }.var().unwrap(), v);
        }
        for v in [0, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        let eleven = [0xff; 11];
        assert!(Reader { b: &eleven, at: 0 }.var().is_err());
        let high = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(Reader { b: &high, at: 0 }.var().is_err());
    }
}
