//! Tile storage: all tiles of one (entity, window group) live in ONE `Vec<u64>` ("arena"),
//! sorted by tile index, so applying and evaluating an event touches one contiguous block per
//! window instead of many small allocations.
//!
//! A tile is `[k, total_words, fixed slots…, var slots…]`. Fixed-size partial aggregates come
//! first at constant offsets; variable-size ones follow, each `[len, elements…]`:
//!
//! | aggregation | words |
//! |---|---|
//! | count, sum, min (`+inf` empty), max (`−inf` empty), time since last (`i64::MIN` empty) | 1 |
//! | mean (n, sum), decayed sum (newest time m, Σ v·2^(−(m−e)/half_life)) | 2 |
//! | stddev (n, mean, M2), last (time, seq, value; seq 0 = empty) | 3 |
//! | distinct: sorted mixed hashes (≤ 256), or exactly 512 words of HLL registers | 1 + len |
//! | last_n: up to N (time, seq, value), newest first | 1 + 3·len |
//! | quantile: DDSketch bins (code, count) sorted by code | 1 + 2·len |

use nowcast_core::Millis;

use crate::ddsketch::Mapping;
use crate::hll::{self, DENSE_WORDS, SPARSE_MAX};
use crate::input::{distinct_hash, num, present, Cell};
use crate::{Aggregation, Input};

/// Words of a tile header (`k`, total length).
pub(crate) const HEADER: usize = 2;

/// Where and how one feature of a group is stored in a tile.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub(crate) agg: Aggregation,
    /// Fixed slots: word offset inside the tile. Var slots: ordinal among var slots.
    pub(crate) at: usize,
    pub(crate) var: bool,
    pub(crate) map: Mapping,
}

/// The tile layout of one window group; `slots` are in the group's feature order.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) slots: Vec<Slot>,
    /// Words of an empty tile (header, fixed initial values, zero var lengths).
    pub(crate) template: Vec<u64>,
    /// Offset of the first var slot header.
    pub(crate) var_start: usize,
}

fn fixed_init(agg: &Aggregation) -> Option<Vec<u64>> {
    let f = |v: f64| v.to_bits();
    Some(match agg {
        Aggregation::Count | Aggregation::Sum => vec![0],
        Aggregation::Min => vec![f(f64::INFINITY)],
        Aggregation::Max => vec![f(f64::NEG_INFINITY)],
        Aggregation::TimeSinceLast => vec![Millis::MIN as u64],
        Aggregation::Mean => vec![0, 0],
        Aggregation::DecayedSum { .. } => vec![Millis::MIN as u64, 0],
        Aggregation::StdDev => vec![0; 3],
        Aggregation::Last => vec![Millis::MIN as u64, 0, 0],
        _ => return None,
    })
}

/// Words per element of a var slot.
pub(crate) fn elem_words(agg: &Aggregation) -> usize {
    match agg {
        Aggregation::LastN(_) => 3,
        Aggregation::Quantile { .. } => 2,
        _ => 1,
    }
}

impl Layout {
    pub(crate) fn new(aggs: &[Aggregation]) -> Layout {
        let mut template = vec![0u64; HEADER];
        let mut slots = Vec::new();
        let mut nvar = 0;
        for agg in aggs {
            let map = match agg {
                Aggregation::Quantile {
                    relative_accuracy, ..
                } => Mapping::new(*relative_accuracy),
                _ => Mapping::new(0.5),
            };
            match fixed_init(agg) {
                Some(init) => {
                    slots.push(Slot {
                        agg: *agg,
                        at: template.len(),
                        var: false,
                        map,
                    });
                    template.extend(init);
                }
                None => {
                    slots.push(Slot {
                        agg: *agg,
                        at: nvar,
                        var: true,
                        map,
                    });
                    nvar += 1;
                }
            }
        }
        let var_start = template.len();
        template.extend(std::iter::repeat_n(0, nvar));
        template[1] = template.len() as u64;
        Layout {
            slots,
            template,
            var_start,
        }
    }

    /// Offset of the first tile with index `>= k` (or `words.len()`).
    pub(crate) fn seek(words: &[u64], k: i64) -> usize {
        let mut off = 0;
        while off < words.len() && (words[off] as i64) < k {
            off += words[off + 1] as usize;
        }
        off
    }

    /// Offset of tile `k`, inserting an empty one if absent.
    pub(crate) fn tile(&self, words: &mut Vec<u64>, k: i64) -> usize {
        let off = Self::seek(words, k);
        if off == words.len() || words[off] as i64 != k {
            // Grow exactly (plus room for a few elements): arenas are long-lived and their
            // length is stable once a window is full, so doubling would only waste memory.
            words.reserve_exact(self.template.len() + 8);
            words.splice(off..off, self.template.iter().copied());
            words[off] = k as u64;
        }
        off
    }

    /// Offset of the header of var slot `ordinal` in the tile at `off`.
    pub(crate) fn var_header(&self, words: &[u64], off: usize, ordinal: usize) -> usize {
        let mut p = off + self.var_start;
        for s in self.slots.iter().filter(|s| s.var).take(ordinal) {
            p += 1 + words[p] as usize * elem_words(&s.agg);
        }
        p
    }

    /// Folds one event into the tile at `off` for slot `slot`.
    pub(crate) fn add(
        &self,
        words: &mut Vec<u64>,
        off: usize,
        slot: &Slot,
        time: Millis,
        seq: u64,
        input: Input,
    ) {
        if slot.var {
            self.add_var(words, off, slot, time, seq, input);
            return;
        }
        let w = &mut words[off + slot.at..];
        let get = |w: &[u64], i: usize| f64::from_bits(w[i]);
        match slot.agg {
            Aggregation::Count => {
                if present(input) {
                    w[0] = (get(w, 0) + 1.0).to_bits();
                }
            }
            Aggregation::TimeSinceLast => {
                if present(input) {
                    w[0] = (w[0] as i64).max(time) as u64;
                }
            }
            _ => {
                let Some(x) = num(input) else { return };
                match slot.agg {
                    Aggregation::Sum => w[0] = (get(w, 0) + x).to_bits(),
                    Aggregation::Min => w[0] = get(w, 0).min(x).to_bits(),
                    Aggregation::Max => w[0] = get(w, 0).max(x).to_bits(),
                    Aggregation::Mean => {
                        w[0] = (get(w, 0) + 1.0).to_bits();
                        w[1] = (get(w, 1) + x).to_bits();
                    }
                    Aggregation::StdDev => {
                        let n = get(w, 0) + 1.0;
                        let mean = get(w, 1);
                        let d = x - mean;
                        let mean2 = mean + d / n;
                        w[0] = n.to_bits();
                        w[1] = mean2.to_bits();
                        w[2] = (get(w, 2) + d * (x - mean2)).to_bits();
                    }
                    Aggregation::Last => {
                        if (time, seq) > (w[0] as i64, w[1]) {
                            w[0] = time as u64;
                            w[1] = seq;
                            w[2] = x.to_bits();
                        }
                    }
                    Aggregation::DecayedSum { half_life } => {
                        let hl = half_life as f64;
                        let m = w[0] as i64;
                        let s = get(w, 1);
                        let (m, s) = if m == Millis::MIN {
                            (time, x)
                        } else if time > m {
                            (time, s * (-((time - m) as f64) / hl).exp2() + x)
                        } else {
                            (m, s + x * (-((m - time) as f64) / hl).exp2())
                        };
                        w[0] = m as u64;
                        w[1] = s.to_bits();
                    }
                    _ => debug_assert!(false, "not a fixed slot"),
                }
            }
        }
    }

    fn add_var(
        &self,
        words: &mut Vec<u64>,
        off: usize,
        slot: &Slot,
        time: Millis,
        seq: u64,
        input: Input,
    ) {
        let h = self.var_header(words, off, slot.at);
        let len = words[h] as usize;
        let data = h + 1;
        // (position, words to insert) or in-place update.
        match slot.agg {
            Aggregation::DistinctCount => {
                let Some(x) = distinct_hash(input) else {
                    return;
                };
                if len == DENSE_WORDS {
                    hll::dense_add(&mut words[data..data + len], x);
                    return;
                }
                match words[data..data + len].binary_search(&x) {
                    Ok(_) => {}
                    Err(pos) if len < SPARSE_MAX => insert(words, off, h, data + pos, &[x], 1),
                    Err(_) => {
                        let mut dense = Vec::with_capacity(DENSE_WORDS);
                        hll::densify(&words[data..data + len], &mut dense);
                        hll::dense_add(&mut dense, x);
                        words.splice(data..data + len, dense);
                        words[h] = DENSE_WORDS as u64;
                        words[off + 1] += (DENSE_WORDS - len) as u64;
                    }
                }
            }
            Aggregation::Quantile { .. } => {
                let Some(x) = num(input) else { return };
                let code = slot.map.code(x);
                let bins = &words[data..data + 2 * len];
                let (mut lo, mut hi) = (0, len);
                while lo < hi {
                    let mid = (lo + hi) / 2;
                    if (bins[2 * mid] as i64) < code {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                if lo < len && bins[2 * lo] as i64 == code {
                    words[data + 2 * lo + 1] += 1;
                } else {
                    insert(words, off, h, data + 2 * lo, &[code as u64, 1], 1);
                }
            }
            Aggregation::LastN(n) => {
                let Some(x) = num(input) else { return };
                let c = Cell {
                    time,
                    seq,
                    value: x,
                };
                let cells = &words[data..data + 3 * len];
                let pos = (0..len)
                    .position(|i| c.newer_than(&cell_at(cells, i)))
                    .unwrap_or(len);
                if pos >= n {
                    return;
                }
                if len >= n {
                    let last = data + 3 * (len - 1);
                    words.drain(last..last + 3);
                    words[h] -= 1;
                    words[off + 1] -= 3;
                }
                insert(
                    words,
                    off,
                    h,
                    data + 3 * pos,
                    &[time as u64, seq, x.to_bits()],
                    1,
                );
            }
            _ => debug_assert!(false, "not a var slot"),
        }
    }

    /// Drops tiles with index `< first`; frees the arena when nothing is left.
    pub(crate) fn expire(words: &mut Vec<u64>, first: i64) {
        let off = Self::seek(words, first);
        if off == words.len() {
            *words = Vec::new();
        } else if off > 0 {
            words.drain(..off);
        }
    }

    /// Checks a decoded arena so that later indexing cannot go out of bounds.
    pub(crate) fn is_valid(&self, words: &[u64]) -> bool {
        let mut off = 0;
        let mut prev: Option<i64> = None;
        while off < words.len() {
            if off + self.template.len() > words.len() {
                return false;
            }
            let k = words[off] as i64;
            let total = words[off + 1] as usize;
            if prev.is_some_and(|p| p >= k)
                || total < self.template.len()
                || total > words.len() - off
            {
                return false;
            }
            let mut p = off + self.var_start;
            for s in self.slots.iter().filter(|s| s.var) {
                if p >= off + total {
                    return false;
                }
                let len = words[p] as usize;
                let ok_len = match s.agg {
                    Aggregation::DistinctCount => len <= SPARSE_MAX || len == DENSE_WORDS,
                    Aggregation::LastN(n) => len <= n,
                    _ => len <= total,
                };
                if !ok_len {
                    return false;
                }
                p += 1 + len * elem_words(&s.agg);
            }
            if p != off + total {
                return false;
            }
            prev = Some(k);
            off += total;
        }
        true
    }
}

/// Inserts `new` at `at`, adding `count` elements to the var header at `h` of the tile at `off`.
fn insert(words: &mut Vec<u64>, off: usize, h: usize, at: usize, new: &[u64], count: u64) {
    words.reserve_exact(new.len() + 8);
    words.splice(at..at, new.iter().copied());
    words[h] += count;
    words[off + 1] += new.len() as u64;
}

pub(crate) fn cell_at(cells: &[u64], i: usize) -> Cell {
    Cell {
        time: cells[3 * i] as i64,
        seq: cells[3 * i + 1],
        value: f64::from_bits(cells[3 * i + 2]),
    }
}
