//! Per-entity state and the plan derived from the configuration.
//!
//! Per (entity, source) the recent events are kept **raw**, in one contiguous, sorted row
//! buffer shared by every window of the source (see [`RowLayout`]). Features sharing
//! (source, duration, hop) form a window group; only when the raw buffer exceeds
//! [`RAW_CAP`] rows are the oldest rows at or before the watermark folded into the per-group
//! tile arenas (see [`crate::tile`]).

use std::hash::{BuildHasher, Hasher};

use nowcast_core::Millis;

use crate::tile::Layout;
use crate::{Aggregation, EngineConfig, Input};

/// Most raw rows kept per (entity, source) before the oldest rows at or before the watermark
/// are folded into tiles. Folding then goes down to [`RAW_KEEP`] rows, so a fold happens at
/// most once per `RAW_CAP − RAW_KEEP` events. Rows newer than the watermark are never folded,
/// so an entity may hold more rows than this while they are within the allowed lateness.
pub(crate) const RAW_CAP: usize = 64;
/// Raw rows left after a fold (see [`RAW_CAP`]).
pub(crate) const RAW_KEEP: usize = 48;
/// Rows older than every window are dropped once there are this many (or a quarter of the
/// rows): they are never read (every window starts after them), and dropping them one at a
/// time would move the whole buffer on every event.
pub(crate) const DEAD_BATCH: usize = 4;

/// Raw input tags (2 bits per column).
pub(crate) const TAG_SKIP: u64 = 0;
pub(crate) const TAG_NUM: u64 = 1;
pub(crate) const TAG_HASH: u64 = 2;

/// Layout of one raw row of a source: `[time, seq, tag words…, value words…]`. Tags hold 2
/// bits per column (32 columns per word): `0` skip (absent, filtered out, or a non-finite
/// number), `1` a finite number, `2` a hash. Columns read only by `count` / `time_since_last`
/// are presence-only: their tag is all that is stored. Every other column has one value
/// word (the `f64` bits or the hash).
#[derive(Debug, Clone)]
pub(crate) struct RowLayout {
    pub(crate) columns: usize,
    /// Per column, the word offset of its value in a row (`None`: presence-only).
    pub(crate) value_at: Vec<Option<usize>>,
    /// Per column, whether it feeds a numeric aggregation (a `Hash` there is a caller bug).
    pub(crate) numeric: Vec<bool>,
    /// Words per row.
    pub(crate) stride: usize,
}

/// A zeroed buffer for one row of `stride` words: `small` (on the caller's stack) when the
/// row fits, else `big`.
pub(crate) fn scratch_row<'a>(
    small: &'a mut [u64; 16],
    big: &'a mut Vec<u64>,
    stride: usize,
) -> &'a mut [u64] {
    if stride <= small.len() {
        &mut small[..stride]
    } else {
        big.resize(stride, 0);
        big
    }
}

impl RowLayout {
    pub(crate) fn new(columns: usize, aggs: &[(usize, Aggregation)]) -> RowLayout {
        let tag_words = columns.div_ceil(32);
        let mut value_at = vec![None; columns];
        let mut numeric = vec![false; columns];
        let mut next = 2 + tag_words;
        for (c, slot) in value_at.iter_mut().enumerate() {
            let on_c = || {
                aggs.iter()
                    .filter(move |(col, _)| *col == c)
                    .map(|(_, a)| a)
            };
            let presence_only =
                on_c().all(|a| matches!(a, Aggregation::Count | Aggregation::TimeSinceLast));
            numeric[c] = on_c().any(|a| {
                !matches!(
                    a,
                    Aggregation::Count | Aggregation::TimeSinceLast | Aggregation::DistinctCount
                )
            });
            if !presence_only {
                *slot = Some(next);
                next += 1;
            }
        }
        RowLayout {
            columns,
            value_at,
            numeric,
            stride: next,
        }
    }

    /// Number of rows in `raw`.
    pub(crate) fn rows(&self, raw: &[u64]) -> usize {
        raw.len() / self.stride
    }

    /// Time of row `i`.
    pub(crate) fn time(&self, raw: &[u64], i: usize) -> Millis {
        raw[i * self.stride] as Millis
    }

    /// Number of leading rows with `time < t`, scanning forward from the start (for
    /// expiry: dead rows are few and at the front).
    pub(crate) fn count_before(&self, raw: &[u64], t: Millis) -> usize {
        let n = self.rows(raw);
        let mut i = 0;
        while i < n && self.time(raw, i) < t {
            i += 1;
        }
        i
    }

    /// Number of leading rows with `time <= t`, scanning backward (new rows are usually the
    /// newest).
    pub(crate) fn count_upto(&self, raw: &[u64], t: Millis) -> usize {
        let mut n = self.rows(raw);
        while n > 0 && self.time(raw, n - 1) > t {
            n -= 1;
        }
        n
    }

    /// The tag of column `c` in `row`.
    #[inline]
    pub(crate) fn tag(row: &[u64], c: usize) -> u64 {
        (row[2 + c / 32] >> ((c % 32) * 2)) & 3
    }

    /// The input of column `c` of `row` as it was applied (non-finite numbers as `Skip`;
    /// presence-only columns as `Num(1.0)` or `Hash(0)`).
    pub(crate) fn input(&self, row: &[u64], c: usize) -> Input {
        let v = self.value_at[c].map_or(0, |at| row[at]);
        match Self::tag(row, c) {
            TAG_NUM => Input::Num(if self.value_at[c].is_some() {
                f64::from_bits(v)
            } else {
                1.0
            }),
            TAG_HASH => Input::Hash(v),
            _ => Input::Skip,
        }
    }

    /// Appends the row of an event to `raw`. The row is built on the stack and written with
    /// plain stores: the buffer's tail is usually not in cache, and stores do not wait for it
    /// the way read-modify-writes would.
    pub(crate) fn push(&self, raw: &mut Vec<u64>, time: Millis, seq: u64, inputs: &[Input]) {
        let (mut small, mut big) = ([0u64; 16], Vec::new());
        let row = scratch_row(&mut small, &mut big, self.stride);
        row[0] = time as u64;
        row[1] = seq;
        for (c, &input) in inputs.iter().enumerate() {
            let (tag, v) = match input {
                Input::Num(x) if x.is_finite() => (TAG_NUM, x.to_bits()),
                Input::Hash(h) => {
                    debug_assert!(
                        !self.numeric[c],
                        "Input::Hash passed to a numeric aggregation"
                    );
                    (TAG_HASH, h)
                }
                _ => (TAG_SKIP, 0),
            };
            row[2 + c / 32] |= tag << ((c % 32) * 2);
            if let Some(at) = self.value_at[c] {
                row[at] = v;
            }
        }
        raw.extend_from_slice(row);
    }

    /// Whether the rows in `raw` are structurally valid: whole rows, sorted by strictly
    /// increasing (time, seq), known tags only, unused tag bits zero, finite numbers.
    pub(crate) fn is_valid(&self, raw: &[u64]) -> bool {
        if !raw.len().is_multiple_of(self.stride) {
            return false;
        }
        let tag_words = self.columns.div_ceil(32);
        let mut prev: Option<(i64, u64)> = None;
        for row in raw.chunks_exact(self.stride) {
            let key = (row[0] as i64, row[1]);
            if prev.is_some_and(|p| p >= key) {
                return false;
            }
            prev = Some(key);
            for w in 0..tag_words {
                let used = (self.columns - w * 32).min(32);
                if used < 32 && row[2 + w] >> (used * 2) != 0 {
                    return false;
                }
            }
            for c in 0..self.columns {
                match Self::tag(row, c) {
                    TAG_SKIP => {}
                    TAG_NUM => {
                        if let Some(at) = self.value_at[c] {
                            if !f64::from_bits(row[at]).is_finite() {
                                return false;
                            }
                        }
                    }
                    TAG_HASH => {}
                    _ => return false,
                }
            }
        }
        true
    }
}

/// Features sharing a source and a window shape.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub(crate) source: usize,
    pub(crate) duration: Millis,
    pub(crate) hop: Millis,
    /// Feature indices (config order).
    pub(crate) features: Vec<usize>,
    /// For each feature, its input column.
    pub(crate) cols: Vec<usize>,
    /// The distinct input columns of `cols`.
    pub(crate) columns: Vec<usize>,
    /// Tile layout of the group's features.
    pub(crate) layout: Layout,
}

impl Group {
    /// First tile index inside the window at `t`: `floor((t − W + 1) / H)`.
    pub(crate) fn first_tile(&self, t: Millis) -> i64 {
        t.saturating_sub(self.duration)
            .saturating_add(1)
            .div_euclid(self.hop)
    }

    /// Oldest event time inside the window at `t`.
    pub(crate) fn tail(&self, t: Millis) -> Millis {
        self.first_tile(t).saturating_mul(self.hop)
    }
}

/// What the plan knows about one source.
#[derive(Debug, Clone)]
pub(crate) struct SourcePlan {
    /// Feature indices of the source (config order).
    pub(crate) features: Vec<usize>,
    /// Global indices of the source's window groups; a source's tile arenas are in this order.
    pub(crate) groups: Vec<usize>,
    /// Raw row layout.
    pub(crate) row: RowLayout,
}

/// Derived from the configuration once.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) sources: Vec<SourcePlan>,
    pub(crate) groups: Vec<Group>,
}

impl Plan {
    pub(crate) fn new(config: &EngineConfig) -> Plan {
        let ns = config.sources.len();
        let mut groups: Vec<Group> = Vec::new();
        let mut sources = Vec::with_capacity(ns);
        for s in 0..ns {
            let feats: Vec<usize> = (0..config.features.len())
                .filter(|&f| config.features[f].source == s)
                .collect();
            let cols_aggs: Vec<(usize, Aggregation)> = feats
                .iter()
                .map(|&f| (config.features[f].column, config.features[f].agg))
                .collect();
            let columns = cols_aggs.iter().map(|(c, _)| c + 1).max().unwrap_or(0);
            let mut own = Vec::new();
            for &f in &feats {
                let def = &config.features[f];
                let (d, h) = (def.window.duration, def.window.hop_millis());
                let g = match own
                    .iter()
                    .position(|&g: &usize| groups[g].duration == d && groups[g].hop == h)
                {
                    Some(i) => own[i],
                    None => {
                        groups.push(Group {
                            source: s,
                            duration: d,
                            hop: h,
                            features: Vec::new(),
                            cols: Vec::new(),
                            columns: Vec::new(),
                            layout: Layout::new(&[]),
                        });
                        own.push(groups.len() - 1);
                        groups.len() - 1
                    }
                };
                groups[g].features.push(f);
                groups[g].cols.push(def.column);
                if !groups[g].columns.contains(&def.column) {
                    groups[g].columns.push(def.column);
                }
            }
            sources.push(SourcePlan {
                features: feats,
                groups: own,
                row: RowLayout::new(columns, &cols_aggs),
            });
        }
        for g in &mut groups {
            let aggs: Vec<_> = g.features.iter().map(|&f| config.features[f].agg).collect();
            g.layout = Layout::new(&aggs);
        }
        Plan { sources, groups }
    }

    /// Oldest event time inside any window of `source` at `t` (`Millis::MAX` if the source
    /// has no features).
    pub(crate) fn source_tail(&self, source: usize, t: Millis) -> Millis {
        self.sources[source]
            .groups
            .iter()
            .map(|&g| self.groups[g].tail(t))
            .min()
            .unwrap_or(Millis::MAX)
    }
}

/// One source's state for one entity.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SourceState {
    /// Newest applied event time (the watermark is this minus the allowed lateness).
    pub(crate) newest: Option<Millis>,
    /// Raw rows (see [`RowLayout`]), sorted by (time, seq); all newer by (time, seq) than
    /// every event folded into tiles.
    pub(crate) raw: Vec<u64>,
    /// Time of the first raw row (any value while there are none): lets an event skip
    /// reading the buffer's head when no row can have expired.
    pub(crate) oldest: Millis,
    /// Per group of the source ([`SourcePlan::groups`] order), its tile arena; `None` (no
    /// allocation) while no group has tiles.
    pub(crate) tiles: Option<Box<[Vec<u64>]>>,
}

/// Everything kept for one entity. The first source's state is inline (in the map slot), so
/// a single-source entity costs one allocation (its raw rows) while it has no tiles.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entity {
    first: SourceState,
    rest: Box<[SourceState]>,
}

impl Entity {
    pub(crate) fn new(plan: &Plan) -> Entity {
        let n = plan.sources.len().saturating_sub(1);
        Entity {
            first: SourceState::default(),
            rest: vec![SourceState::default(); n].into(),
        }
    }

    /// The state of source `s`.
    #[inline]
    pub(crate) fn source(&self, s: usize) -> &SourceState {
        match s {
            0 => &self.first,
            _ => &self.rest[s - 1],
        }
    }

    /// The state of source `s`, mutably.
    #[inline]
    pub(crate) fn source_mut(&mut self, s: usize) -> &mut SourceState {
        match s {
            0 => &mut self.first,
            _ => &mut self.rest[s - 1],
        }
    }

    /// Heap bytes held: box and vector capacities (allocator overhead not included).
    pub(crate) fn heap_bytes(&self) -> usize {
        let mut b = std::mem::size_of_val(&*self.rest);
        for s in std::iter::once(&self.first).chain(self.rest.iter()) {
            b += s.raw.capacity() * 8;
            if let Some(t) = &s.tiles {
                b += std::mem::size_of_val(&**t);
                b += t.iter().map(|a| a.capacity() * 8).sum::<usize>();
            }
        }
        b
    }
}

/// Longest entity key stored inline in the map slot.
const INLINE_KEY: usize = 22;

/// An entity key: inline up to [`INLINE_KEY`] bytes (no allocation, no pointer to chase on
/// lookup), boxed beyond. Always valid UTF-8 (built from a `&str`). Hashes and compares as
/// its bytes, so the map is queried with `&[u8]`.
#[derive(Clone)]
pub(crate) enum Key {
    Inline(u8, [u8; INLINE_KEY]),
    Heap(Box<[u8]>),
}

impl Key {
    pub(crate) fn new(s: &str) -> Key {
        let b = s.as_bytes();
        if b.len() <= INLINE_KEY {
            let mut a = [0u8; INLINE_KEY];
            a[..b.len()].copy_from_slice(b);
            Key::Inline(b.len() as u8, a)
        } else {
            Key::Heap(b.into())
        }
    }

    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline(n, a) => &a[..*n as usize],
            Key::Heap(b) => b,
        }
    }

    /// Heap bytes held by the key.
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Key::Inline(..) => 0,
            Key::Heap(b) => b.len(),
        }
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

impl PartialEq for Key {
    fn eq(&self, o: &Key) -> bool {
        self.as_bytes() == o.as_bytes()
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.as_bytes().hash(h)
    }
}

impl std::borrow::Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// A fast, deterministic hasher for entity keys (xxh3 over the bytes written).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.0);
    }
    fn write_u8(&mut self, i: u8) {
        self.0 = crate::hll::mix(self.0 ^ i as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.0 = crate::hll::mix(self.0 ^ i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Builds [`KeyHasher`]s.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KeyHash;

impl BuildHasher for KeyHash {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0)
    }
}
