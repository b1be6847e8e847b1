//! Evaluation of one window group at one time. A window without tiles (every event in it a
//! raw row, the usual case) is computed straight from its columns' gathered rows (see
//! [`crate::gather`]), each feature in one step with no accumulator in between. A window
//! with tiles takes a single pass over its tiles (tile-major, one accumulator per feature),
//! then adds its raw rows and finishes each accumulator into a [`FeatureValue`]. Scratch
//! buffers are reused so the per-event path does not allocate.

use nowcast_core::{FeatureValue, Millis};

use crate::ddsketch::{self, Bin};
use crate::gather::{Gathered, View};
use crate::hll::{self, DENSE_WORDS, SPARSE_MAX};
use crate::input::Cell;
use crate::small;
use crate::state::{Group, RowLayout};
use crate::tile::{cell_at, elem_words, Layout, Slot};
use crate::Aggregation;

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
    /// Raw cells for `last_n`, newest first.
    pending: Vec<Cell>,
    /// Raw values for an exact quantile of more than [`small::SMALL`] values (no tiles in
    /// the window).
    vals: Vec<f64>,
    /// Counts the distinct keys of a small distinct count without sorting them.
    set: SmallSet,
}

/// Reusable buffers for evaluation.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    accs: Vec<Acc>,
    bufs: Vec<VarBuf>,
    /// Per input column, its gathered raw rows (valid for the current `stamp`).
    cols: Vec<Gathered>,
    /// Incremented per evaluation of a source (see [`Scratch::next_rows`]); marks which
    /// columns are gathered.
    stamp: u64,
    /// Per window group of a source: (tail, local index, first raw row in the window).
    pub(crate) bounds: Vec<(Millis, usize, usize)>,
}

impl Scratch {
    /// Starts the evaluation of a new set of raw rows: columns gathered before are stale.
    pub(crate) fn next_rows(&mut self) {
        self.stamp += 1;
    }
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

/// Evaluates the features of `group` at `t` into `out[group.features[i]]`: tiles of `arena`
/// from index `first` on, plus the raw rows of `raw` from row `from` on (`raw` ends at the
/// window's end and is the same for every group of the source until
/// [`Scratch::next_rows`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn evaluate_group(
    group: &Group,
    arena: &[u64],
    first: i64,
    raw: &[u64],
    from: usize,
    rl: &RowLayout,
    t: Millis,
    scratch: &mut Scratch,
    out: &mut [FeatureValue],
) {
    let layout = &group.layout;
    let n = layout.slots.len();
    if scratch.cols.len() < rl.columns {
        scratch.cols.resize_with(rl.columns, Gathered::default);
    }
    let mut off = Layout::seek(arena, first);
    if off == arena.len() {
        evaluate_raw(group, raw, from, rl, t, scratch, out);
        return;
    }
    if scratch.bufs.len() < n {
        scratch.bufs.resize_with(n, VarBuf::default);
    }
    scratch.accs.clear();
    for (slot, buf) in layout.slots.iter().zip(scratch.bufs.iter_mut()) {
        scratch.accs.push(init(slot, buf));
    }
    let stamp = scratch.stamp;
    let accs = &mut scratch.accs[..];
    let bufs = &mut scratch.bufs[..n];
    while off < arena.len() {
        let total = arena[off + 1] as usize;
        let tile = &arena[off..off + total];
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
    if from < rl.rows(raw) {
        each_view(group, &mut scratch.cols, stamp, raw, from, rl, |i, view| {
            add_raw(&layout.slots[i], &mut accs[i], &mut bufs[i], view, t);
        });
    }
    for (i, slot) in layout.slots.iter().enumerate() {
        finish(slot, accs[i], &mut bufs[i], t, &mut out[group.features[i]]);
    }
}

/// [`evaluate_group`] for a window without tiles (every event in it is a raw row, the usual
/// case): each feature is computed straight from its gathered column, with no accumulator
/// in between. Its quantiles are exact, and its distinct counts up to [`SPARSE_MAX`] keys.
fn evaluate_raw(
    group: &Group,
    raw: &[u64],
    from: usize,
    rl: &RowLayout,
    t: Millis,
    scratch: &mut Scratch,
    out: &mut [FeatureValue],
) {
    let stamp = scratch.stamp;
    if scratch.bufs.is_empty() {
        scratch.bufs.push(VarBuf::default());
    }
    let buf = &mut scratch.bufs[0];
    each_view(group, &mut scratch.cols, stamp, raw, from, rl, |i, view| {
        let slot = &group.layout.slots[i];
        raw_feature(slot, view, buf, t, &mut out[group.features[i]]);
    });
}

/// Calls `f(i, view)` for each feature `i` of `group` with its column's window (the rows
/// of `raw` from row `from` on): each column is gathered (once per stamp) and viewed once.
fn each_view(
    group: &Group,
    cols: &mut [Gathered],
    stamp: u64,
    raw: &[u64],
    from: usize,
    rl: &RowLayout,
    mut f: impl FnMut(usize, &View),
) {
    for &c in &group.columns {
        let col = &mut cols[c];
        col.gather(stamp, raw, rl, c);
        let view = col.view(from);
        for (i, &fc) in group.cols.iter().enumerate() {
            if fc == c {
                f(i, &view);
            }
        }
    }
}

/// One feature of [`evaluate_raw`] from its column's window `g`.
fn raw_feature(slot: &Slot, g: &View, buf: &mut VarBuf, t: Millis, o: &mut FeatureValue) {
    let (n, sum, min, max) = g.basic;
    let num = |ok: bool, x: f64| {
        if ok {
            FeatureValue::Num(x)
        } else {
            FeatureValue::Null
        }
    };
    *o = match slot.agg {
        Aggregation::Count => FeatureValue::Num(g.keys.len() as f64),
        Aggregation::Sum => FeatureValue::Num(0.0 + sum),
        Aggregation::Mean => num(n > 0.0, (0.0 + sum) / n),
        Aggregation::Min => num(min != f64::INFINITY, min),
        Aggregation::Max => num(max != f64::NEG_INFINITY, max),
        Aggregation::StdDev if n == 0.0 => FeatureValue::Null,
        Aggregation::StdDev => {
            let mean = sum / n;
            FeatureValue::Num((g.squared_deviations(mean).max(0.0) / n).sqrt())
        }
        Aggregation::Last => match g.nums.len().checked_sub(1) {
            Some(l) if g.num_seqs[l] != 0 => FeatureValue::Num(g.nums[l]),
            _ => FeatureValue::Null,
        },
        Aggregation::TimeSinceLast => match g.newest_present {
            Some(m) if m != Millis::MIN => FeatureValue::Num((t as f64 - m as f64) / 1000.0),
            _ => FeatureValue::Null,
        },
        Aggregation::DecayedSum { half_life } => {
            FeatureValue::Num(g.decayed_sum(0.0, t, half_life))
        }
        Aggregation::DistinctCount if g.keys.len() <= small::SMALL => {
            FeatureValue::Num(small::distinct(g.keys) as f64)
        }
        Aggregation::DistinctCount => {
            buf.is_dense = false;
            buf.hashes.clear();
            buf.hashes.extend_from_slice(g.keys);
            FeatureValue::Num(distinct(buf, false))
        }
        Aggregation::Quantile { .. } if g.nums.is_empty() => FeatureValue::Null,
        // Every event of the window is raw: the exact value at the rank.
        Aggregation::Quantile { q, .. } if g.nums.len() <= small::SMALL => {
            let r = ddsketch::rank(q, g.nums.len() as u64) as usize;
            FeatureValue::Num(small::value_at_rank(g.nums, r))
        }
        Aggregation::Quantile { q, .. } => {
            buf.vals.clear();
            buf.vals.extend_from_slice(g.nums);
            let r = ddsketch::rank(q, g.nums.len() as u64) as usize;
            FeatureValue::Num(*buf.vals.select_nth_unstable_by(r, f64::total_cmp).1)
        }
        Aggregation::LastN(k) => {
            let mut list = match std::mem::replace(o, FeatureValue::Null) {
                FeatureValue::List(l) => l,
                _ => Vec::with_capacity(k),
            };
            list.clear();
            list.extend(g.nums.iter().rev().take(k));
            FeatureValue::List(list)
        }
    };
}

/// Adds the raw rows of the window (column `g`, gathered) to one feature's accumulator. Raw
/// rows are all newer, by (time, seq), than every tile event.
fn add_raw(slot: &Slot, acc: &mut Acc, buf: &mut VarBuf, g: &View, t: Millis) {
    let (n, sum, min, max) = g.basic;
    let cell = |i: usize| Cell {
        time: g.num_times[i],
        seq: g.num_seqs[i],
        value: g.nums[i],
    };
    match (acc, slot.agg) {
        (Acc::Sum(s), Aggregation::Count) => *s += g.keys.len() as f64,
        (Acc::Newest(m), _) => {
            if let Some(newest) = g.newest_present {
                *m = (*m).max(newest);
            }
        }
        (Acc::Sum(s), Aggregation::DecayedSum { half_life }) => {
            *s = g.decayed_sum(*s, t, half_life);
        }
        (Acc::Sum(s), _) if n > 0.0 => *s += sum,
        (Acc::Mean(an, s), _) => {
            *an += n;
            *s += sum;
        }
        (Acc::Min(m), _) => *m = m.min(min),
        (Acc::Max(m), _) => *m = m.max(max),
        (Acc::Std(a), _) if n > 0.0 => {
            let mean = sum / n;
            *a = merge_moments(*a, [n, mean, g.squared_deviations(mean)]);
        }
        (Acc::Last(c), _) => {
            if let Some(i) = g.nums.len().checked_sub(1) {
                let o = cell(i);
                if o.newer_than(c) {
                    *c = o;
                }
            }
        }
        (Acc::Var, Aggregation::DistinctCount) => {
            buf.hashes.extend(g.keys.iter().map(|&k| hll::mix(k)));
        }
        (Acc::Var, Aggregation::Quantile { .. }) => {
            buf.bins.extend(g.nums.iter().map(|&x| Bin {
                code: slot.map.code(x),
                count: 1,
            }));
        }
        (Acc::Var, Aggregation::LastN(n)) => {
            buf.pending
                .extend((0..g.nums.len()).rev().take(n).map(cell));
        }
        _ => {}
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
        (Acc::Var, Aggregation::DistinctCount) => FeatureValue::Num(distinct(buf, true)),
        (Acc::Var, Aggregation::Quantile { q, .. }) => {
            buf.bins.sort_unstable_by_key(|b| b.code);
            opt(ddsketch::quantile(&buf.bins, q, &slot.map))
        }
        (Acc::Var, Aggregation::LastN(n)) => {
            // Raw rows are all newer than every tile event; `pending` is newest first.
            let mut list = match std::mem::replace(out, FeatureValue::Null) {
                FeatureValue::List(l) => l,
                _ => Vec::with_capacity(n),
            };
            list.clear();
            let newest_first = buf.pending.iter().chain(buf.cells.iter().rev());
            list.extend(newest_first.take(n).map(|c| c.value));
            FeatureValue::List(list)
        }
        (Acc::Var, _) => FeatureValue::Null,
    };
}

/// Distinct count of `buf.hashes` (mixed if `tiled`, else unmixed keys) and the dense
/// registers, if any.
fn distinct(buf: &mut VarBuf, tiled: bool) -> f64 {
    if !buf.is_dense && buf.hashes.len() <= SET_MAX {
        return buf.set.count(&buf.hashes) as f64;
    }
    if !buf.is_dense {
        buf.hashes.sort_unstable();
        buf.hashes.dedup();
        if buf.hashes.len() <= SPARSE_MAX {
            return buf.hashes.len() as f64;
        }
        if !tiled {
            for h in buf.hashes.iter_mut() {
                *h = hll::mix(*h);
            }
        }
        buf.dense.clear();
        buf.dense.resize(DENSE_WORDS, 0);
    }
    for &h in buf.hashes.iter() {
        hll::dense_add(&mut buf.dense, h);
    }
    hll::estimate(&buf.dense)
}

/// Keys counted by [`SmallSet`] at most (half its slots, so probes stay short); `SET_MAX ≤
/// SPARSE_MAX`, so every count it gives is exact.
const SET_MAX: usize = 64;
const SET_SLOTS: usize = 2 * SET_MAX;
const _: () = assert!(SET_MAX <= SPARSE_MAX);

/// An open-addressing set of keys that is never cleared: a slot belongs to the current count
/// only if it carries the current stamp. Counting ~20 keys this way replaced sorting and
/// deduplicating them (the distinct count was the second most expensive aggregation); raw
/// windows of up to [`small::SMALL`] keys now go to [`small::distinct`], so this counts the
/// larger ones (up to [`SET_MAX`]).
#[derive(Debug, Default)]
struct SmallSet {
    slots: Vec<(u64, u32)>,
    stamp: u32,
}

impl SmallSet {
    /// The number of distinct values in `keys` (at most [`SET_MAX`] of them).
    fn count(&mut self, keys: &[u64]) -> usize {
        debug_assert!(keys.len() <= SET_MAX);
        if self.slots.is_empty() {
            self.slots = vec![(0, 0); SET_SLOTS];
        }
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.slots.fill((0, 0));
            self.stamp = 1;
        }
        let mut distinct = 0;
        for &k in keys {
            // Keys may be unmixed (a number's bits): mix before taking the slot.
            let mut i = hll::mix(k) as usize & (SET_SLOTS - 1);
            loop {
                let (key, stamp) = self.slots[i];
                if stamp != self.stamp {
                    self.slots[i] = (k, self.stamp);
                    distinct += 1;
                    break;
                }
                if key == k {
                    break;
                }
                i = (i + 1) & (SET_SLOTS - 1);
            }
        }
        distinct
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_set_counts_like_sort_and_dedup_across_many_calls() {
        let mut set = SmallSet::default();
        let mut state = 0x1234_5678_9abc_def1u64;
        for round in 0..20_000u32 {
            // Cross the stamp's wrap-around once to check that it resets.
            if round == 10_000 {
                set.stamp = u32::MAX - 2;
            }
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let n = (state % (SET_MAX as u64 + 1)) as usize;
            let pool = 1 + (state >> 40) % 80;
            let keys: Vec<u64> = (0..n as u64)
                .map(|i| (i.wrapping_mul(0x9e37_79b9) ^ state) % pool)
                .collect();
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(set.count(&keys), sorted.len(), "{keys:?}");
        }
    }
}
