//! Per-feature tile state, stored column-wise: for each window group an entity keeps a sorted
//! list of non-empty tiles, and for each feature of the group one [`Column`] holding that
//! feature's partial aggregate for every tile (index `i` of a column = tile `i` of the group).
//! Fixed-size states live in plain vectors; variable-size ones (distinct sets, quantile bins,
//! last-n lists) in one flat [`Segmented`] vector per feature.

use nowcast_core::Millis;

use crate::ddsketch::{self, Bin, Mapping};
use crate::hll::{self, DENSE_WORDS, SPARSE_MAX};
use crate::segmented::Segmented;
use crate::{Aggregation, Input};

/// An event's value for `last` / `last_n`, ordered by `(time, seq)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cell {
    pub(crate) time: Millis,
    pub(crate) seq: u64,
    pub(crate) value: f64,
}

impl Cell {
    /// The empty cell: older than any event (`seq` starts at 1).
    pub(crate) const EMPTY: Cell = Cell {
        time: Millis::MIN,
        seq: 0,
        value: 0.0,
    };

    pub(crate) fn newer_than(&self, o: &Cell) -> bool {
        (self.time, self.seq) > (o.time, o.seq)
    }
}

/// A numeric input: `Num` with a finite value. A `Hash` here is a caller bug (skipped).
pub(crate) fn num(input: Input) -> Option<f64> {
    match input {
        Input::Num(x) if x.is_finite() => Some(x),
        Input::Hash(_) => {
            debug_assert!(false, "Input::Hash passed to a numeric aggregation");
            None
        }
        _ => None,
    }
}

/// Whether the input feeds `count` / `time_since_last`.
pub(crate) fn present(input: Input) -> bool {
    match input {
        Input::Skip => false,
        Input::Num(x) => x.is_finite(),
        Input::Hash(_) => true,
    }
}

/// The mixed hash of a distinct-count input (a `Num` is hashed from its bits, `-0.0` as `0.0`).
pub(crate) fn distinct_hash(input: Input) -> Option<u64> {
    match input {
        Input::Hash(h) => Some(hll::mix(h)),
        Input::Num(x) if x.is_finite() => Some(hll::mix((x + 0.0).to_bits())),
        _ => None,
    }
}

/// The partial aggregates of one feature, one per tile.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Column {
    /// Counts.
    Count(Vec<f64>),
    /// Sums.
    Sum(Vec<f64>),
    /// (count, sum).
    Mean(Vec<[f64; 2]>),
    /// Minimum (`+inf` when empty).
    Min(Vec<f64>),
    /// Maximum (`-inf` when empty).
    Max(Vec<f64>),
    /// (count, mean, M2) for Chan/Welford merging.
    StdDev(Vec<[f64; 3]>),
    /// Sorted sparse mixed hashes, or [`DENSE_WORDS`] words of HLL registers.
    Distinct(Segmented<u64>),
    /// Newest cell.
    Last(Vec<Cell>),
    /// Up to N newest cells, newest first.
    LastN(Segmented<Cell>),
    /// DDSketch bins sorted by code.
    Quantile(Segmented<Bin>),
    /// Newest event time (`Millis::MIN` when empty).
    TimeSinceLast(Vec<Millis>),
    /// (newest event time m, Σ v·2^(−(m−e)/half_life)); `m = Millis::MIN` when empty.
    Decayed(Vec<(Millis, f64)>),
}

impl Column {
    pub(crate) fn new(agg: &Aggregation) -> Column {
        match agg {
            Aggregation::Count => Column::Count(Vec::new()),
            Aggregation::Sum => Column::Sum(Vec::new()),
            Aggregation::Mean => Column::Mean(Vec::new()),
            Aggregation::Min => Column::Min(Vec::new()),
            Aggregation::Max => Column::Max(Vec::new()),
            Aggregation::StdDev => Column::StdDev(Vec::new()),
            Aggregation::DistinctCount => Column::Distinct(Segmented::default()),
            Aggregation::Last => Column::Last(Vec::new()),
            Aggregation::LastN(_) => Column::LastN(Segmented::default()),
            Aggregation::Quantile { .. } => Column::Quantile(Segmented::default()),
            Aggregation::TimeSinceLast => Column::TimeSinceLast(Vec::new()),
            Aggregation::DecayedSum { .. } => Column::Decayed(Vec::new()),
        }
    }

    /// Inserts an empty tile state at index `i`.
    pub(crate) fn insert_tile(&mut self, i: usize) {
        match self {
            Column::Count(v) | Column::Sum(v) => v.insert(i, 0.0),
            Column::Min(v) => v.insert(i, f64::INFINITY),
            Column::Max(v) => v.insert(i, f64::NEG_INFINITY),
            Column::Mean(v) => v.insert(i, [0.0; 2]),
            Column::StdDev(v) => v.insert(i, [0.0; 3]),
            Column::Distinct(s) => s.insert_empty(i),
            Column::Last(v) => v.insert(i, Cell::EMPTY),
            Column::LastN(s) => s.insert_empty(i),
            Column::Quantile(s) => s.insert_empty(i),
            Column::TimeSinceLast(v) => v.insert(i, Millis::MIN),
            Column::Decayed(v) => v.insert(i, (Millis::MIN, 0.0)),
        }
    }

    /// Drops the first `n` tiles.
    pub(crate) fn drop_front(&mut self, n: usize) {
        match self {
            Column::Count(v) | Column::Sum(v) | Column::Min(v) | Column::Max(v) => {
                v.drain(..n);
            }
            Column::Mean(v) => drop(v.drain(..n)),
            Column::StdDev(v) => drop(v.drain(..n)),
            Column::Distinct(s) => s.drop_front(n),
            Column::Last(v) => drop(v.drain(..n)),
            Column::LastN(s) => s.drop_front(n),
            Column::Quantile(s) => s.drop_front(n),
            Column::TimeSinceLast(v) => drop(v.drain(..n)),
            Column::Decayed(v) => drop(v.drain(..n)),
        }
    }

    /// Folds one event into tile `i`.
    pub(crate) fn add(
        &mut self,
        i: usize,
        time: Millis,
        seq: u64,
        input: Input,
        agg: &Aggregation,
    ) {
        match self {
            Column::Count(v) => {
                if present(input) {
                    v[i] += 1.0;
                }
            }
            Column::TimeSinceLast(v) => {
                if present(input) {
                    v[i] = v[i].max(time);
                }
            }
            Column::Distinct(s) => {
                if let Some(h) = distinct_hash(input) {
                    distinct_add(s, i, h);
                }
            }
            _ => {
                if let Some(x) = num(input) {
                    self.add_num(i, time, seq, x, agg);
                }
            }
        }
    }

    fn add_num(&mut self, i: usize, time: Millis, seq: u64, x: f64, agg: &Aggregation) {
        match (self, agg) {
            (Column::Sum(v), _) => v[i] += x,
            (Column::Min(v), _) => v[i] = v[i].min(x),
            (Column::Max(v), _) => v[i] = v[i].max(x),
            (Column::Mean(v), _) => {
                v[i][0] += 1.0;
                v[i][1] += x;
            }
            (Column::StdDev(v), _) => {
                let s = &mut v[i];
                s[0] += 1.0;
                let d = x - s[1];
                s[1] += d / s[0];
                s[2] += d * (x - s[1]);
            }
            (Column::Last(v), _) => {
                let c = Cell {
                    time,
                    seq,
                    value: x,
                };
                if c.newer_than(&v[i]) {
                    v[i] = c;
                }
            }
            (Column::LastN(s), Aggregation::LastN(n)) => {
                let c = Cell {
                    time,
                    seq,
                    value: x,
                };
                let seg = s.seg(i);
                let pos = seg
                    .iter()
                    .position(|o| c.newer_than(o))
                    .unwrap_or(seg.len());
                if pos < *n {
                    if seg.len() >= *n {
                        s.remove_at(i, seg.len() - 1);
                    }
                    s.insert_at(i, pos, c);
                }
            }
            (
                Column::Quantile(s),
                Aggregation::Quantile {
                    relative_accuracy, ..
                },
            ) => {
                let code = Mapping::new(*relative_accuracy).code(x);
                let r = s.range(i);
                match ddsketch::locate(&s.data[r.clone()], code) {
                    Ok(j) => s.data[r.start + j].count += 1,
                    Err(pos) => s.insert_at(i, pos, Bin { code, count: 1 }),
                }
            }
            (Column::Decayed(v), Aggregation::DecayedSum { half_life }) => {
                let hl = *half_life as f64;
                let (m, sum) = &mut v[i];
                if *m == Millis::MIN {
                    *m = time;
                    *sum = x;
                } else if time > *m {
                    *sum = *sum * (-((time - *m) as f64) / hl).exp2() + x;
                    *m = time;
                } else {
                    *sum += x * (-((*m - time) as f64) / hl).exp2();
                }
            }
            _ => debug_assert!(false, "column does not match its aggregation"),
        }
    }

    /// Bytes of heap held (vector capacities).
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Column::Count(v) | Column::Sum(v) | Column::Min(v) | Column::Max(v) => v.capacity() * 8,
            Column::Mean(v) => v.capacity() * 16,
            Column::StdDev(v) => v.capacity() * 24,
            Column::Distinct(s) => s.heap_bytes(),
            Column::Last(v) => v.capacity() * std::mem::size_of::<Cell>(),
            Column::LastN(s) => s.heap_bytes(),
            Column::Quantile(s) => s.heap_bytes(),
            Column::TimeSinceLast(v) => v.capacity() * 8,
            Column::Decayed(v) => v.capacity() * 16,
        }
    }
}

fn distinct_add(s: &mut Segmented<u64>, i: usize, h: u64) {
    let r = s.range(i);
    if r.len() == DENSE_WORDS {
        hll::dense_add(&mut s.data[r], h);
        return;
    }
    match s.data[r.clone()].binary_search(&h) {
        Ok(_) => {}
        Err(pos) if r.len() < SPARSE_MAX => s.insert_at(i, pos, h),
        Err(_) => {
            let mut words = Vec::with_capacity(DENSE_WORDS);
            hll::densify(&s.data[r], &mut words);
            hll::dense_add(&mut words, h);
            s.replace(i, &words);
        }
    }
}
