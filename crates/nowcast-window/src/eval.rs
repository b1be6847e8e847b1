//! Evaluation of one window group at one time: a single pass over the group's tiles inside
//! the window (tile-major, one accumulator per feature), then the raw pending rows inside it,
//! then each accumulator is finished into a [`FeatureValue`]. Scratch buffers are reused so
//! the per-event path does not allocate.

use nowcast_core::{FeatureValue, Millis};

use crate::ddsketch::{self, Bin};
use crate::hll::{self, DENSE_WORDS, SPARSE_MAX};
use crate::input::{distinct_hash, num, present, Cell};
use crate::tile::{cell_at, elem_words, Layout, Slot};
use crate::{Aggregation, Input};

/// A raw event not yet folded into tiles (newer than its source's watermark).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PendingRow {
    pub(crate) time: Millis,
    pub(crate) seq: u64,
}

/// The pending rows of one source restricted to `lo <= time <= hi`; each row has `stride`
/// inputs.
pub(crate) struct PendingView<'a> {
    pub(crate) rows: &'a [PendingRow],
    pub(crate) inputs: &'a [Input],
    pub(crate) stride: usize,
    pub(crate) lo: Millis,
    pub(crate) hi: Millis,
}

#[derive(Debug, Clone, Copy)]
enum Acc {
    Sum(f64),
    Mean(f64, f64),
    Min(f64),
    Max(f64),
    Std([f64; 3]),
    Last(Cell),
    Newest(Millis),
    Var,
}

/// Variable-size accumulator buffers of one feature.
#[derive(Debug, Default)]
struct VarBuf {
    hashes: Vec<u64>,
    dense: Vec<u64>,
    is_dense: bool,
    bins: Vec<Bin>,
    cells: Vec<Cell>,
    pending: Vec<Cell>,
}

/// Reusable buffers for evaluation.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    accs: Vec<Acc>,
    bufs: Vec<VarBuf>,
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

fn init(slot: &Slot, buf: &mut VarBuf) -> Acc {
    match slot.agg {
        Aggregation::Count | Aggregation::Sum | Aggregation::DecayedSum { .. } => Acc::Sum(0.0),
        Aggregation::Mean => Acc::Mean(0.0, 0.0),
        Aggregation::Min => Acc::Min(f64::INFINITY),
        Aggregation::Max => Acc::Max(f64::NEG_INFINITY),
        Aggregation::StdDev => Acc::Std([0.0; 3]),
        Aggregation::Last => Acc::Last(Cell::EMPTY),
        Aggregation::TimeSinceLast => Acc::Newest(Millis::MIN),
        _ => {
            buf.hashes.clear();
            buf.is_dense = false;
            buf.bins.clear();
            buf.cells.clear();
            buf.pending.clear();
            Acc::Var
        }
    }
}

/// Evaluates the features of one group at `t` into `out[features[i]]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn evaluate_group(
    layout: &Layout,
    words: &[u64],
    first: i64,
    input_pos: &[usize],
    features: &[usize],
    pending: &PendingView,
    t: Millis,
    scratch: &mut Scratch,
    out: &mut [FeatureValue],
) {
    let n = layout.slots.len();
    if scratch.bufs.len() < n {
        scratch.bufs.resize_with(n, VarBuf::default);
    }
    scratch.accs.clear();
    for (slot, buf) in layout.slots.iter().zip(scratch.bufs.iter_mut()) {
        scratch.accs.push(init(slot, buf));
    }
    let accs = &mut scratch.accs[..];
    let bufs = &mut scratch.bufs[..n];
    let mut off = Layout::seek(words, first);
    while off < words.len() {
        let total = words[off + 1] as usize;
        let tile = &words[off..off + total];
        let mut p = layout.var_start;
        for ((slot, acc), buf) in layout
            .slots
            .iter()
            .zip(accs.iter_mut())
            .zip(bufs.iter_mut())
        {
            if slot.var {
                let len = tile[p] as usize;
                let data = &tile[p + 1..p + 1 + len * elem_words(&slot.agg)];
                p += 1 + data.len();
                merge_var(slot, buf, data);
            } else {
                merge_fixed(slot, acc, &tile[slot.at..], t);
            }
        }
        off += total;
    }
    for (j, r) in pending.rows.iter().enumerate() {
        if r.time < pending.lo || r.time > pending.hi {
            continue;
        }
        let row = &pending.inputs[j * pending.stride..(j + 1) * pending.stride];
        for (i, slot) in layout.slots.iter().enumerate() {
            add_raw(slot, &mut accs[i], &mut bufs[i], r, row[input_pos[i]], t);
        }
    }
    for (i, slot) in layout.slots.iter().enumerate() {
        finish(slot, accs[i], &mut bufs[i], t, &mut out[features[i]]);
    }
}

fn merge_fixed(slot: &Slot, acc: &mut Acc, w: &[u64], t: Millis) {
    let g = |i: usize| f64::from_bits(w[i]);
    match (acc, slot.agg) {
        (Acc::Sum(s), Aggregation::DecayedSum { half_life }) => {
            let m = w[0] as i64;
            if m != Millis::MIN {
                *s += g(1) * (-((t as f64 - m as f64) / half_life as f64)).exp2();
            }
        }
        (Acc::Sum(s), _) => *s += g(0),
        (Acc::Mean(n, s), _) => {
            *n += g(0);
            *s += g(1);
        }
        (Acc::Min(m), _) => *m = m.min(g(0)),
        (Acc::Max(m), _) => *m = m.max(g(0)),
        (Acc::Std(a), _) => *a = merge_moments(*a, [g(0), g(1), g(2)]),
        (Acc::Last(c), _) => {
            let o = Cell {
                time: w[0] as i64,
                seq: w[1],
                value: g(2),
            };
            if o.newer_than(c) {
                *c = o;
            }
        }
        (Acc::Newest(m), _) => *m = (*m).max(w[0] as i64),
        (Acc::Var, _) => {}
    }
}

fn merge_var(slot: &Slot, buf: &mut VarBuf, data: &[u64]) {
    match slot.agg {
        Aggregation::DistinctCount => {
            if data.len() == DENSE_WORDS {
                if !buf.is_dense {
                    buf.dense.clear();
                    buf.dense.resize(DENSE_WORDS, 0);
                    buf.is_dense = true;
                }
                hll::dense_merge(&mut buf.dense, data);
            } else {
                buf.hashes.extend_from_slice(data);
            }
        }
        Aggregation::Quantile { .. } => {
            buf.bins.extend(data.chunks_exact(2).map(|b| Bin {
                code: b[0] as i64,
                count: b[1],
            }));
        }
        Aggregation::LastN(n) => {
            // Tiles come oldest first and never overlap in time: keep cells ascending and
            // only the newest n.
            let len = data.len() / 3;
            buf.cells.extend((0..len).rev().map(|i| cell_at(data, i)));
            if buf.cells.len() > n {
                let cut = buf.cells.len() - n;
                buf.cells.drain(..cut);
            }
        }
        _ => {}
    }
}

fn add_raw(slot: &Slot, acc: &mut Acc, buf: &mut VarBuf, r: &PendingRow, input: Input, t: Millis) {
    match slot.agg {
        Aggregation::Count => {
            if let (Acc::Sum(s), true) = (&mut *acc, present(input)) {
                *s += 1.0;
            }
            return;
        }
        Aggregation::TimeSinceLast => {
            if let (Acc::Newest(m), true) = (&mut *acc, present(input)) {
                *m = (*m).max(r.time);
            }
            return;
        }
        Aggregation::DistinctCount => {
            buf.hashes.extend(distinct_hash(input));
            return;
        }
        _ => {}
    }
    let Some(x) = num(input) else { return };
    match (acc, slot.agg) {
        (Acc::Sum(s), Aggregation::DecayedSum { half_life }) => {
            *s += x * (-((t as f64 - r.time as f64) / half_life as f64)).exp2();
        }
        (Acc::Sum(s), _) => *s += x,
        (Acc::Mean(n, s), _) => {
            *n += 1.0;
            *s += x;
        }
        (Acc::Min(m), _) => *m = m.min(x),
        (Acc::Max(m), _) => *m = m.max(x),
        (Acc::Std(a), _) => *a = merge_moments(*a, [1.0, x, 0.0]),
        (Acc::Last(c), _) => {
            let o = Cell {
                time: r.time,
                seq: r.seq,
                value: x,
            };
            if o.newer_than(c) {
                *c = o;
            }
        }
        (Acc::Var, Aggregation::Quantile { .. }) => buf.bins.push(Bin {
            code: slot.map.code(x),
            count: 1,
        }),
        (Acc::Var, Aggregation::LastN(_)) => buf.pending.push(Cell {
            time: r.time,
            seq: r.seq,
            value: x,
        }),
        _ => {}
    }
}

fn finish(slot: &Slot, acc: Acc, buf: &mut VarBuf, t: Millis, out: &mut FeatureValue) {
    let opt = |v: Option<f64>| v.map_or(FeatureValue::Null, FeatureValue::Num);
    *out = match (acc, slot.agg) {
        (Acc::Sum(s), _) => FeatureValue::Num(s),
        (Acc::Mean(n, s), _) => opt((n > 0.0).then(|| s / n)),
        (Acc::Min(m), _) => opt((m != f64::INFINITY).then_some(m)),
        (Acc::Max(m), _) => opt((m != f64::NEG_INFINITY).then_some(m)),
        (Acc::Std(a), _) => opt((a[0] > 0.0).then(|| (a[2].max(0.0) / a[0]).sqrt())),
        (Acc::Last(c), _) => opt((c.seq != 0).then_some(c.value)),
        (Acc::Newest(m), _) => opt((m != Millis::MIN).then(|| (t as f64 - m as f64) / 1000.0)),
        (Acc::Var, Aggregation::DistinctCount) => FeatureValue::Num(distinct(buf)),
        (Acc::Var, Aggregation::Quantile { q, .. }) => {
            buf.bins.sort_unstable_by_key(|b| b.code);
            opt(ddsketch::quantile(&buf.bins, q, &slot.map))
        }
        (Acc::Var, Aggregation::LastN(n)) => {
            // Pending rows are all newer than every tile (tiles hold only events <= watermark).
            buf.pending.sort_unstable_by_key(|c| (c.time, c.seq));
            let mut list = match std::mem::replace(out, FeatureValue::Null) {
                FeatureValue::List(l) => l,
                _ => Vec::with_capacity(n),
            };
            list.clear();
            let newest_first = buf.pending.iter().rev().chain(buf.cells.iter().rev());
            list.extend(newest_first.take(n).map(|c| c.value));
            FeatureValue::List(list)
        }
        (Acc::Var, _) => FeatureValue::Null,
    };
}

fn distinct(buf: &mut VarBuf) -> f64 {
    if !buf.is_dense {
        buf.hashes.sort_unstable();
        buf.hashes.dedup();
        if buf.hashes.len() <= SPARSE_MAX {
            return buf.hashes.len() as f64;
        }
        buf.dense.clear();
        buf.dense.resize(DENSE_WORDS, 0);
    }
    for &h in buf.hashes.iter() {
        hll::dense_add(&mut buf.dense, h);
    }
    hll::estimate(&buf.dense)
}
