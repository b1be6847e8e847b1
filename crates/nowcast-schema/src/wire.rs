//! The Confluent wire format: magic byte 0, a 4-byte big-endian schema id, for Protobuf a
//! list of message indexes, then the payload.

use nowcast_core::RejectReason;

use crate::DecodeError;

/// A framed record's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The writer schema's registry id.
    pub schema_id: u32,
}

/// Splits a Confluent-framed record into its header and the rest.
pub fn split(bytes: &[u8]) -> Result<(Header, &[u8]), DecodeError> {
    match bytes {
        [0, a, b, c, d, rest @ ..] => Ok((
            Header {
                schema_id: u32::from_be_bytes([*a, *b, *c, *d]),
            },
            rest,
        )),
        [] => Err(DecodeError::new(
            RejectReason::BadFraming,
            "empty record; expected magic byte 0 and a 4-byte schema id",
        )),
        [m, ..] if *m != 0 => Err(DecodeError::new(
            RejectReason::BadFraming,
            format!("magic byte is {m}, not 0: the record is not in the Confluent wire format"),
        )),
        _ => Err(DecodeError::new(
            RejectReason::BadFraming,
            format!(
                "record is {} bytes, shorter than the 5-byte header (magic byte and schema id)",
                bytes.len()
            ),
        )),
    }
}

/// Writes the 5-byte header for `schema_id`.
pub fn write_header(out: &mut Vec<u8>, schema_id: u32) {
    out.push(0);
    out.extend_from_slice(&schema_id.to_be_bytes());
}

/// Reads a zig-zag varint (Avro `int`/`long`, Protobuf `sint`).
#[inline]
pub fn read_zigzag(buf: &mut &[u8]) -> Option<i64> {
    let v = read_varint(buf)?;
    Some(((v >> 1) as i64) ^ -((v & 1) as i64))
}

/// Reads an unsigned LEB128 varint of at most 10 bytes.
#[inline]
pub fn read_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for (i, &b) in buf.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if i == 9 && b > 1 {
                return None;
            }
            *buf = &buf[i + 1..];
            return Some(v);
        }
    }
    None
}

/// Writes a zig-zag varint.
pub fn write_zigzag(out: &mut Vec<u8>, v: i64) {
    write_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Writes an unsigned varint.
pub fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads the Protobuf message-index list that follows the schema id: a zig-zag count, then
/// that many zig-zag indexes; a count of 0 stands for `[0]` (the first message).
pub fn read_message_indexes(buf: &mut &[u8], out: &mut Vec<usize>) -> Result<(), DecodeError> {
    out.clear();
    walk_message_indexes(buf, |i| out.push(i))
}

/// Checks the message-index list and steps over it, returning its bytes (a cache key for
/// the message it names) without decoding it into a list.
pub fn skip_message_indexes<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], DecodeError> {
    let start = *buf;
    walk_message_indexes(buf, |_| {})?;
    Ok(&start[..start.len() - buf.len()])
}

fn walk_message_indexes(buf: &mut &[u8], mut index: impl FnMut(usize)) -> Result<(), DecodeError> {
    let bad = |what: &str| DecodeError::new(RejectReason::BadMessageIndex, what.to_string());
    let count = read_zigzag(buf).ok_or_else(|| bad("the message-index list is truncated"))?;
    if count == 0 {
        index(0);
        return Ok(());
    }
    if !(0..=64).contains(&count) {
        return Err(bad(&format!(
            "the message-index list has {count} entries (at most 64 nest levels)"
        )));
    }
    for _ in 0..count {
        let i = read_zigzag(buf).ok_or_else(|| bad("the message-index list is truncated"))?;
        let i = usize::try_from(i).map_err(|_| bad(&format!("message index {i} is negative")))?;
        index(i);
    }
    Ok(())
}

/// Writes a Protobuf message-index list (`[0]` as the single byte 0).
pub fn write_message_indexes(out: &mut Vec<u8>, indexes: &[usize]) {
    if indexes == [0] {
        out.push(0);
        return;
    }
    write_zigzag(out, indexes.len() as i64);
    for &i in indexes {
        write_zigzag(out, i as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_errors_name_what_is_wrong() {
        assert_eq!(
            split(&[1, 0, 0, 0, 1]).unwrap_err().reason,
            RejectReason::BadFraming
        );
        assert!(split(b"{\"a\":1}")
            .unwrap_err()
            .detail
            .contains("magic byte is 123"));
        assert!(split(&[0, 0, 1]).unwrap_err().detail.contains("3 bytes"));
        let (h, rest) = split(&[0, 0, 0, 1, 2, 9]).unwrap();
        assert_eq!((h.schema_id, rest), (258, &[9u8][..]));
    }

    #[test]
    fn an_overlong_varint_is_refused() {
        let mut b: &[u8] = &[0xff; 11];
        assert_eq!(read_varint(&mut b), None);
        let mut b: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(read_varint(&mut b), None);
    }

    proptest! {
        #[test]
        fn zigzag_round_trips(v in any::<i64>()) {
            let mut out = Vec::new();
            write_zigzag(&mut out, v);
            let mut b = &out[..];
            prop_assert_eq!(read_zigzag(&mut b), Some(v));
            prop_assert!(b.is_empty());
        }

        #[test]
        fn message_indexes_round_trip(ix in proptest::collection::vec(0usize..1000, 1..6)) {
            let mut out = Vec::new();
            write_message_indexes(&mut out, &ix);
            let mut b = &out[..];
            let mut back = Vec::new();
            read_message_indexes(&mut b, &mut back).unwrap();
            prop_assert_eq!(back, ix);
            let mut with_payload = out.clone();
            with_payload.push(0x2a);
            let mut b = &with_payload[..];
            prop_assert_eq!(skip_message_indexes(&mut b).unwrap(), &out[..]);
            prop_assert_eq!(b, &[0x2a][..]);
        }
    }
}
