//! The columns of a source's raw rows, gathered into contiguous arrays once per evaluation
//! for all of its window groups, so every feature reading a column works on plain slices
//! instead of re-decoding the strided rows' tags (the group's features used to scan the rows
//! once each: 329–349 k events/s with evaluation against 370–372 k gathered, engine
//! benchmark, 20 000 entities). A group's window is a suffix of the rows, found through
//! per-row counts; the rows are gathered without a branch per row.
//!
//! The exact distinct count and quantile of a raw window compare every value with every
//! other (see [`crate::small`]) up to 32 values. A first try with integer keys ran scalar
//! (the default x86-64 target has no 64-bit integer vector compare) and was slower; `f64`
//! compares and 64-bit equality do vectorize.

use nowcast_core::Millis;

use crate::state::{RowLayout, TAG_HASH, TAG_NUM, TAG_SKIP};

/// The present inputs of one column over the raw rows of all window groups of a source,
/// oldest first, gathered once per evaluation; each group reads the suffix of its own window
/// through [`Gathered::view`] (the windows of a source all end at the evaluation time, so
/// each one's rows are a suffix of the widest one's).
#[derive(Debug)]
pub(crate) struct Gathered {
    /// Evaluation stamp this column was gathered for (see [`Gathered::gather`]); `u64::MAX`
    /// (never a stamp in use) until the first gather.
    stamp: u64,
    /// The rows gathered for `stamp` (address, length): a caller that passed other rows
    /// under the same stamp would read stale columns (checked in debug builds).
    source: (usize, usize),
    /// Backing arrays, at least as long as the rows gathered; the first
    /// `keys_before[rows]` keys and `nums_before[rows]` numbers are valid. They are written
    /// at an index that advances by whether the row counts, without a data-dependent branch
    /// or a capacity check per row.
    keys: Vec<u64>,
    key_times: Vec<Millis>,
    nums: Vec<f64>,
    num_times: Vec<Millis>,
    num_seqs: Vec<u64>,
    /// For each row `i` (and one past the last): the keys and the numbers of the rows before
    /// it.
    keys_before: Vec<u32>,
    nums_before: Vec<u32>,
    rows: usize,
}

/// The present inputs of one column inside one window: a suffix of a [`Gathered`] column.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View<'a> {
    /// Distinct-count keys of the present rows: the hash, or the number's bits with `-0`
    /// folded into `0`.
    pub(crate) keys: &'a [u64],
    /// The finite numbers (columns with a value word only), with their rows' times and seqs.
    pub(crate) nums: &'a [f64],
    pub(crate) num_times: &'a [Millis],
    pub(crate) num_seqs: &'a [u64],
    /// The newest time of the rows where the column is present (not skipped).
    pub(crate) newest_present: Option<Millis>,
    /// `(n, sum, min, max)` of `nums`, summed oldest first.
    pub(crate) basic: (f64, f64, f64, f64),
}

impl View<'_> {
    /// `start` plus each number decayed from its time to `t` (`x·2^(−(t−time)/half_life)`),
    /// added oldest first.
    pub(crate) fn decayed_sum(&self, start: f64, t: Millis, half_life: Millis) -> f64 {
        let hl = half_life as f64;
        let mut s = start;
        for (x, &time) in self.nums.iter().zip(self.num_times) {
            s += x * (-((t as f64 - time as f64) / hl)).exp2();
        }
        s
    }

    /// The sum of the numbers' squared deviations from `mean`.
    pub(crate) fn squared_deviations(&self, mean: f64) -> f64 {
        self.nums.iter().map(|x| (x - mean) * (x - mean)).sum()
    }
}

impl Default for Gathered {
    fn default() -> Gathered {
        Gathered {
            stamp: u64::MAX,
            source: (0, 0),
            keys: Vec::new(),
            key_times: Vec::new(),
            nums: Vec::new(),
            num_times: Vec::new(),
            num_seqs: Vec::new(),
            keys_before: Vec::new(),
            nums_before: Vec::new(),
            rows: 0,
        }
    }
}

impl Gathered {
    /// Gathers column `c` of `rows` unless it was already gathered for `stamp` (the caller
    /// takes a new stamp for other rows, see [`crate::eval::Scratch::next_rows`]).
    pub(crate) fn gather(&mut self, stamp: u64, rows: &[u64], rl: &RowLayout, c: usize) {
        let source = (rows.as_ptr() as usize, rows.len());
        if self.stamp == stamp {
            debug_assert_eq!(self.source, source, "other rows under the same stamp");
            return;
        }
        self.stamp = stamp;
        self.source = source;
        let len = rows.len() / rl.stride;
        self.rows = len;
        if self.keys.len() < len {
            self.keys.resize(len, 0);
            self.key_times.resize(len, 0);
            self.nums.resize(len, 0.0);
            self.num_times.resize(len, 0);
            self.num_seqs.resize(len, 0);
        }
        if self.keys_before.len() < len + 1 {
            self.keys_before.resize(len + 1, 0);
            self.nums_before.resize(len + 1, 0);
        }
        let (keys, key_times) = (&mut self.keys[..len], &mut self.key_times[..len]);
        let (nums, times, seqs) = (
            &mut self.nums[..len],
            &mut self.num_times[..len],
            &mut self.num_seqs[..len],
        );
        let (kb, nb) = (
            &mut self.keys_before[..len + 1],
            &mut self.nums_before[..len + 1],
        );
        let (mut present, mut n) = (0, 0);
        let at = rl.value_at[c];
        for (i, r) in rows.chunks_exact(rl.stride).enumerate() {
            let tag = RowLayout::tag(r, c);
            let v = at.map_or(0, |a| r[a]);
            kb[i] = present as u32;
            nb[i] = n as u32;
            keys[present] = if tag == TAG_HASH {
                v
            } else {
                (f64::from_bits(v) + 0.0).to_bits()
            };
            key_times[present] = r[0] as Millis;
            nums[n] = f64::from_bits(v);
            times[n] = r[0] as Millis;
            seqs[n] = r[1];
            present += (tag != TAG_SKIP) as usize;
            n += (tag == TAG_NUM && at.is_some()) as usize;
        }
        kb[len] = present as u32;
        nb[len] = n as u32;
    }

    /// The window of the rows from `from` (an index into the rows gathered) on.
    pub(crate) fn view(&self, from: usize) -> View<'_> {
        let from = from.min(self.rows);
        let (k0, k1) = (
            self.keys_before[from] as usize,
            self.keys_before[self.rows] as usize,
        );
        let (n0, n1) = (
            self.nums_before[from] as usize,
            self.nums_before[self.rows] as usize,
        );
        let nums = &self.nums[n0..n1];
        let (mut sum, mut min, mut max) = (0.0, f64::INFINITY, f64::NEG_INFINITY);
        for &x in nums {
            sum += x;
            min = min.min(x);
            max = max.max(x);
        }
        View {
            keys: &self.keys[k0..k1],
            nums,
            num_times: &self.num_times[n0..n1],
            num_seqs: &self.num_seqs[n0..n1],
            newest_present: (k1 > k0).then(|| self.key_times[k1 - 1]),
            basic: (nums.len() as f64, sum, min, max),
        }
    }
}
