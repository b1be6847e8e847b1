//! Evaluation of one feature at one time: merge the partial aggregates of the tiles inside
//! the window with the raw pending rows inside it, then finish into a [`FeatureValue`].
//! Scratch buffers are reused across calls so the per-event path does not allocate.

use nowcast_core::{FeatureValue, Millis};

use crate::column::{distinct_hash, num, present, Cell, Column};
use crate::ddsketch::{self, Bin, Mapping};
use crate::hll::{self, DENSE_WORDS, SPARSE_MAX};
use crate::{Aggregation, Input};

/// Reusable buffers for evaluation.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    hashes: Vec<u64>,
    words: Vec<u64>,
    bins: Vec<Bin>,
    cells: Vec<Cell>,
}

/// A raw event not yet folded into tiles (newer than its source's watermark).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PendingRow {
    pub(crate) time: Millis,
    pub(crate) seq: u64,
}

/// The pending rows of one source seen through one feature: rows with `lo <= time <= hi`,
/// and that feature's input (position `pos` of each row's `stride` inputs).
pub(crate) struct PendingView<'a> {
    pub(crate) rows: &'a [PendingRow],
    pub(crate) inputs: &'a [Input],
    pub(crate) stride: usize,
    pub(crate) pos: usize,
    pub(crate) lo: Millis,
    pub(crate) hi: Millis,
}

impl PendingView<'_> {
    fn iter(&self) -> impl Iterator<Item = (Millis, u64, Input)> + '_ {
        self.rows
            .iter()
            .enumerate()
            .filter(|(_, r)| self.lo <= r.time && r.time <= self.hi)
            .map(|(j, r)| (r.time, r.seq, self.inputs[j * self.stride + self.pos]))
    }

    fn nums(&self) -> impl Iterator<Item = (Millis, u64, f64)> + '_ {
        self.iter()
            .filter_map(|(t, s, i)| num(i).map(|x| (t, s, x)))
    }
}

macro_rules! tail {
    ($col:expr, $var:ident) => {
        match $col {
            Some((Column::$var(v), i0)) => &v[i0..],
            _ => &[],
        }
    };
}

/// Chan et al. merge of (count, mean, M2) states.
fn merge_moments(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    if b[0] == 0.0 {
        return a;
    }
    if a[0] == 0.0 {
        return b;
    }
    let n = a[0] + b[0];
    let d = b[1] - a[1];
    [
        n,
        a[1] + d * b[0] / n,
        a[2] + b[2] + d * d * a[0] * b[0] / n,
    ]
}

/// Writes the value of a feature into `out`, reusing a list allocation already there.
pub(crate) fn evaluate(
    col: Option<(&Column, usize)>,
    pending: &PendingView,
    agg: &Aggregation,
    t: Millis,
    scratch: &mut Scratch,
    out: &mut FeatureValue,
) {
    let opt = |v: Option<f64>| v.map_or(FeatureValue::Null, FeatureValue::Num);
    *out = match *agg {
        Aggregation::Count => {
            let n: f64 = tail!(col, Count).iter().sum();
            FeatureValue::Num(n + pending.iter().filter(|p| present(p.2)).count() as f64)
        }
        Aggregation::Sum => {
            let s: f64 = tail!(col, Sum).iter().sum();
            FeatureValue::Num(s + pending.nums().map(|p| p.2).sum::<f64>())
        }
        Aggregation::Mean => {
            let (mut n, mut s) = (0.0, 0.0);
            for m in tail!(col, Mean) {
                n += m[0];
                s += m[1];
            }
            for (_, _, x) in pending.nums() {
                n += 1.0;
                s += x;
            }
            opt((n > 0.0).then(|| s / n))
        }
        Aggregation::Min => {
            let m = tail!(col, Min).iter().fold(f64::INFINITY, |a, &b| a.min(b));
            let m = pending.nums().fold(m, |a, p| a.min(p.2));
            opt((m != f64::INFINITY).then_some(m))
        }
        Aggregation::Max => {
            let m = tail!(col, Max)
                .iter()
                .fold(f64::NEG_INFINITY, |a, &b| a.max(b));
            let m = pending.nums().fold(m, |a, p| a.max(p.2));
            opt((m != f64::NEG_INFINITY).then_some(m))
        }
        Aggregation::StdDev => {
            let mut acc = tail!(col, StdDev)
                .iter()
                .fold([0.0; 3], |a, &b| merge_moments(a, b));
            for (_, _, x) in pending.nums() {
                acc = merge_moments(acc, [1.0, x, 0.0]);
            }
            opt((acc[0] > 0.0).then(|| (acc[2].max(0.0) / acc[0]).sqrt()))
        }
        Aggregation::Last => {
            let mut best = tail!(col, Last)
                .iter()
                .fold(Cell::EMPTY, |a, b| newest(a, *b));
            for (time, seq, value) in pending.nums() {
                best = newest(best, Cell { time, seq, value });
            }
            opt((best.seq != 0).then_some(best.value))
        }
        Aggregation::TimeSinceLast => {
            let m = tail!(col, TimeSinceLast)
                .iter()
                .copied()
                .max()
                .unwrap_or(Millis::MIN);
            let m = pending
                .iter()
                .filter(|p| present(p.2))
                .fold(m, |a, p| a.max(p.0));
            opt((m != Millis::MIN).then(|| (t as f64 - m as f64) / 1000.0))
        }
        Aggregation::DecayedSum { half_life } => {
            let hl = half_life as f64;
            let decay = |m: Millis| (-((t as f64 - m as f64) / hl)).exp2();
            let mut s = 0.0;
            for &(m, v) in tail!(col, Decayed) {
                if m != Millis::MIN {
                    s += v * decay(m);
                }
            }
            for (e, _, x) in pending.nums() {
                s += x * decay(e);
            }
            FeatureValue::Num(s)
        }
        Aggregation::DistinctCount => distinct(col, pending, scratch),
        Aggregation::Quantile {
            q,
            relative_accuracy,
        } => {
            let map = Mapping::new(relative_accuracy);
            let bins = &mut scratch.bins;
            bins.clear();
            if let Some((Column::Quantile(s), i0)) = col {
                bins.extend_from_slice(s.tail(i0));
            }
            bins.extend(pending.nums().map(|p| Bin {
                code: map.code(p.2),
                count: 1,
            }));
            bins.sort_unstable_by_key(|b| b.code);
            opt(ddsketch::quantile(bins, q, &map))
        }
        Aggregation::LastN(n) => {
            let cells = &mut scratch.cells;
            cells.clear();
            if let Some((Column::LastN(s), i0)) = col {
                cells.extend_from_slice(s.tail(i0));
            }
            cells.extend(
                pending
                    .nums()
                    .map(|(time, seq, value)| Cell { time, seq, value }),
            );
            cells.sort_unstable_by_key(|c| std::cmp::Reverse((c.time, c.seq)));
            let mut list = match std::mem::replace(out, FeatureValue::Null) {
                FeatureValue::List(l) => l,
                _ => Vec::with_capacity(n),
            };
            list.clear();
            list.extend(cells.iter().take(n).map(|c| c.value));
            FeatureValue::List(list)
        }
    };
}

fn newest(a: Cell, b: Cell) -> Cell {
    if b.newer_than(&a) {
        b
    } else {
        a
    }
}

fn distinct(
    col: Option<(&Column, usize)>,
    pending: &PendingView,
    scratch: &mut Scratch,
) -> FeatureValue {
    let Scratch { hashes, words, .. } = scratch;
    hashes.clear();
    let mut dense = false;
    if let Some((Column::Distinct(s), i0)) = col {
        for i in i0..s.ends.len() {
            let seg = s.seg(i);
            if seg.len() == DENSE_WORDS {
                if !dense {
                    words.clear();
                    words.resize(DENSE_WORDS, 0);
                    dense = true;
                }
                hll::dense_merge(words, seg);
            } else {
                hashes.extend_from_slice(seg);
            }
        }
    }
    hashes.extend(pending.iter().filter_map(|p| distinct_hash(p.2)));
    if !dense {
        hashes.sort_unstable();
        hashes.dedup();
        if hashes.len() <= SPARSE_MAX {
            return FeatureValue::Num(hashes.len() as f64);
        }
        words.clear();
        words.resize(DENSE_WORDS, 0);
    }
    for &h in hashes.iter() {
        hll::dense_add(words, h);
    }
    FeatureValue::Num(hll::estimate(words))
}
