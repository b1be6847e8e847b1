//! The [`Engine`]: entity map, lateness check, per-event evaluation, raw rows (insertion,
//! expiry, folding the overflow into tiles), expiring tiles, eviction and the memory
//! estimate.

use nowcast_core::{FeatureValue, Millis};

use crate::eval::{self, Scratch};
use crate::map::{hash_key, EntityMap};
use crate::state::{Entity, Key, KeyHash, Plan, SourceState, DEAD_BATCH, RAW_CAP, RAW_KEEP};
use crate::tile::Layout;
use crate::{EngineConfig, Input, Late, WindowError};

thread_local! {
    /// Evaluation buffers of [`Engine::evaluate`], one set per thread.
    static EVAL_SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// The window engine. See the crate docs for the exact semantics.
#[derive(Debug)]
pub struct Engine {
    pub(crate) config: EngineConfig,
    /// `config.fingerprint()`, computed once: snapshots and every changelog record carry it.
    pub(crate) fingerprint: u64,
    pub(crate) plan: Plan,
    pub(crate) entities: EntityMap,
    /// Arrival counter: incremented per applied event, breaks time ties for last/last_n.
    pub(crate) seq: u64,
    scratch: Scratch,
    /// Reused by [`Engine::apply_batch`]: the batch's key hashes.
    pub(crate) batch_hashes: Vec<u64>,
    /// Keys changed (applied to or evicted) since the last [`Engine::drain_changes`], when
    /// change tracking is on.
    pub(crate) changed: Option<std::collections::HashSet<Key, KeyHash>>,
    /// The snapshot in progress (see the `pending` module).
    pub(crate) pending: Option<std::sync::Mutex<crate::pending::Pending>>,
}

impl Engine {
    /// Validates `config` and builds an empty engine.
    ///
    /// Rules: window duration `> 0`; tiled hop in `1..=duration`; quantile `q` in `[0, 1]` and
    /// relative accuracy in `(0, 1)`; `LastN(n)` with `n` in `1..=64`; decayed-sum half-life
    /// `> 0`; feature source index in range; allowed lateness `>= 0`; the input columns of
    /// each source are `0..n`, each read by at least one feature.
    pub fn new(config: EngineConfig) -> Result<Engine, WindowError> {
        config.validate()?;
        Ok(Engine::build(config))
    }

    pub(crate) fn build(config: EngineConfig) -> Engine {
        let plan = Plan::new(&config);
        Engine {
            fingerprint: config.fingerprint(),
            config,
            plan,
            entities: EntityMap::default(),
            seq: 0,
            scratch: Scratch::default(),
            batch_hashes: Vec::new(),
            changed: None,
            pending: None,
        }
    }

    /// The configuration the engine was built with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Indices of the features of `source`, ascending.
    ///
    /// # Panics
    /// If `source` is out of range.
    pub fn source_features(&self, source: usize) -> &[usize] {
        &self.plan.sources[source].features
    }

    /// Number of input columns of `source` (the largest [`FeatureDef::column`] of its
    /// features plus one; 0 for a source without features): the length of `inputs` for
    /// [`apply`](Engine::apply).
    ///
    /// # Panics
    /// If `source` is out of range.
    ///
    /// [`FeatureDef::column`]: crate::FeatureDef::column
    pub fn source_columns(&self, source: usize) -> usize {
        self.plan.sources[source].row.columns
    }

    /// Applies one event of `key` from `source` at `time`.
    ///
    /// Refused with [`Late`] (nothing changes) if `time` is before the entity's watermark for
    /// this source. Otherwise, if `features_out` is given, it first receives every feature of
    /// the entity evaluated at `time` over the events applied before this one (see the crate
    /// docs for the per-source clamp), one value per feature in config order; then the event
    /// is applied. `inputs` holds one [`Input`] per input column of the source
    /// ([`source_columns`](Engine::source_columns) of them): `inputs[c]` feeds every feature
    /// with `column == c`.
    ///
    /// # Panics
    /// If `source` is out of range or `inputs` has the wrong length.
    pub fn apply(
        &mut self,
        key: &str,
        source: usize,
        time: Millis,
        inputs: &[Input],
        features_out: Option<&mut Vec<FeatureValue>>,
    ) -> Result<(), Late> {
        self.apply_hashed(
            hash_key(key.as_bytes()),
            key,
            source,
            time,
            inputs,
            features_out.map(Out::Vec),
        )
    }

    /// [`apply`](Engine::apply) with the key's hash already computed.
    pub(crate) fn apply_hashed(
        &mut self,
        hash: u64,
        key: &str,
        source: usize,
        time: Millis,
        inputs: &[Input],
        features_out: Option<Out<'_>>,
    ) -> Result<(), Late> {
        assert_eq!(
            inputs.len(),
            self.plan.sources[source].row.columns,
            "apply: one input per input column of source {source} expected"
        );
        let found = self.entities.find(hash, key.as_bytes());
        if let Some(i) = found {
            // A snapshot in progress may still need this entity as it is now.
            self.before_change(i);
        }
        let mut ctx = Ctx {
            config: &self.config,
            plan: &self.plan,
            scratch: &mut self.scratch,
            seq: &mut self.seq,
        };
        if let Some(i) = found {
            ctx.apply(self.entities.at_mut(i), source, time, inputs, features_out)?;
        } else {
            let mut entity = Entity::new(&self.plan);
            ctx.apply(&mut entity, source, time, inputs, features_out)?;
            self.entities.insert_new(hash, Key::new(key), entity);
        }
        if let Some(changed) = &mut self.changed {
            if !changed.contains(key.as_bytes()) {
                changed.insert(Key::new(key));
            }
        }
        Ok(())
    }

    /// Evaluates every feature of `key` at `t` into `out` (one value per feature, config
    /// order). Returns `false` (and leaves `out` empty) if the entity is unknown.
    ///
    /// Each feature is evaluated at `max(t, watermark of its source for this entity)`: events
    /// up to the watermark may already be folded into tiles, so earlier times are not
    /// available.
    pub fn evaluate(&self, key: &str, t: Millis, out: &mut Vec<FeatureValue>) -> bool {
        out.clear();
        let Some(entity) = self.entities.get(key.as_bytes()) else {
            return false;
        };
        out.resize(self.config.features.len(), FeatureValue::Null);
        // `&self` (readers evaluate side by side), so the scratch buffers are per thread:
        // reused across calls instead of allocated for each.
        EVAL_SCRATCH.with(|cell| {
            let scratch = &mut cell.borrow_mut();
            evaluate_entity(&self.config, &self.plan, entity, t, scratch, out);
        });
        true
    }

    /// Newest applied event time per source for `key` (`None` for a source never seen), or
    /// `None` if the entity is unknown.
    pub fn newest_event_times(&self, key: &str) -> Option<Vec<Option<Millis>>> {
        let e = self.entities.get(key.as_bytes())?;
        Some(
            (0..self.plan.sources.len())
                .map(|s| e.source(s).newest)
                .collect(),
        )
    }

    /// Drops every entity whose every window is empty at every `t >= stream_time` (its newest
    /// event of each source is before the tail of each window of that source at
    /// `stream_time`). The entity's watermarks are forgotten with it. Returns how many.
    pub fn evict_idle(&mut self, stream_time: Millis) -> usize {
        self.complete_pending();
        let before = self.entities.len();
        let plan = &self.plan;
        let tails: Vec<Millis> = plan.groups.iter().map(|g| g.tail(stream_time)).collect();
        let changed = &mut self.changed;
        self.entities.retain(|k, e| {
            let keep = plan
                .groups
                .iter()
                .zip(&tails)
                .any(|(g, &lo)| e.source(g.source).newest.is_some_and(|n| n >= lo));
            if !keep {
                if let Some(changed) = changed {
                    changed.insert(k.clone());
                }
            }
            keep
        });
        before - self.entities.len()
    }

    /// Number of entities held.
    pub fn entities(&self) -> usize {
        self.entities.len()
    }

    /// Estimated heap bytes of entity state: the map's entries at their capacity (inline key
    /// or key pointer, first source's state) and its index (8 bytes a slot), and for each
    /// entity its boxed key
    /// bytes (keys over 22 bytes) and the capacity of every box and vector it owns
    /// (per-source raw rows, per-window tile arenas). Allocator overhead is not included.
    /// O(entities).
    pub fn state_bytes(&self) -> usize {
        self.entities.table_bytes()
            + self
                .entities
                .iter()
                .map(|(k, e)| k.heap_bytes() + e.heap_bytes())
                .sum::<usize>()
    }
}

/// Where an event's features go.
pub(crate) enum Out<'a> {
    /// The caller's vector of [`Engine::apply`], resized to the number of features.
    Vec(&'a mut Vec<FeatureValue>),
    /// An event's part of [`Engine::apply_batch`]'s buffer, already the right length.
    Slice(&'a mut [FeatureValue]),
}

impl<'a> Out<'a> {
    fn fit(self, n: usize) -> &'a mut [FeatureValue] {
        match self {
            Out::Vec(v) => {
                v.resize(n, FeatureValue::Null);
                v.truncate(n);
                v
            }
            Out::Slice(s) => s,
        }
    }
}

/// Borrowed pieces of the engine needed to apply an event to one entity.
struct Ctx<'a> {
    config: &'a EngineConfig,
    plan: &'a Plan,
    scratch: &'a mut Scratch,
    seq: &'a mut u64,
}

impl Ctx<'_> {
    fn apply(
        &mut self,
        entity: &mut Entity,
        source: usize,
        time: Millis,
        inputs: &[Input],
        out: Option<Out<'_>>,
    ) -> Result<(), Late> {
        let lateness = self.config.sources[source].allowed_lateness;
        if let Some(newest) = entity.source(source).newest {
            let watermark = newest.saturating_sub(lateness);
            if time < watermark {
                return Err(Late { watermark, newest });
            }
        }
        if let Some(out) = out {
            let out = out.fit(self.config.features.len());
            evaluate_entity(self.config, self.plan, entity, time, self.scratch, out);
        }
        *self.seq += 1;
        let seq = *self.seq;
        let sp = &self.plan.sources[source];
        let st = entity.source_mut(source);
        let in_order = st.newest.is_none_or(|n| time >= n);
        let newest = st.newest.map_or(time, |n| n.max(time));
        st.newest = Some(newest);
        if sp.groups.is_empty() {
            return Ok(());
        }
        let wm = newest.saturating_sub(lateness);
        let rl = &sp.row;
        let stride = rl.stride;

        // Insert the row at its (time, seq) position: after every row with time <= `time`
        // (its seq is the largest so far).
        // In-order events (time >= newest) go at the end without reading the buffer.
        let rows = rl.rows(&st.raw);
        let pos = if in_order {
            rows
        } else {
            rl.count_upto(&st.raw, time)
        };
        if st.raw.capacity() < st.raw.len() + stride {
            // Grow by half (at least 4 rows): buffers are long-lived and their length is
            // stable once the windows are full, so doubling would mostly waste memory, while
            // growing by little would reallocate (a cache miss in the allocator) too often.
            st.raw.reserve_exact(stride * (rows / 2).max(4));
        }
        rl.push(&mut st.raw, time, seq, inputs);
        if pos < rows {
            st.raw[pos * stride..].rotate_right(stride);
        }
        if pos == 0 {
            st.oldest = time;
        }

        // Expire rows older than every window at the watermark (evaluation never goes below
        // it; see DEAD_BATCH), then fold the oldest rows at or before the watermark if over the cap.
        // `oldest` spares reading the buffer's head when nothing can be dead.
        let tail = self.plan.source_tail(source, wm);
        if st.oldest < tail {
            let rows = rl.rows(&st.raw);
            let dead = rl.count_before(&st.raw, tail);
            if dead > 0 && (dead >= DEAD_BATCH || dead * 4 >= rows) {
                st.raw.drain(..dead * stride);
                st.oldest = st.raw.first().map_or(Millis::MAX, |&t| t as Millis);
            }
        }
        let rows = rl.rows(&st.raw);
        if rows > RAW_CAP {
            let foldable = rl.count_upto(&st.raw, wm).min(rows - RAW_KEEP);
            if foldable > 0 {
                self.fold(st, source, wm, foldable);
            }
        }
        if st.raw.capacity() > 2 * st.raw.len() + 8 * stride {
            st.raw.shrink_to(st.raw.len() + 4 * stride);
        }
        if let Some(tiles) = &mut st.tiles {
            for (arena, &g) in tiles.iter_mut().zip(&sp.groups) {
                if !arena.is_empty() {
                    Layout::expire(arena, self.plan.groups[g].first_tile(wm));
                }
            }
            if tiles.iter().all(|a| a.is_empty()) {
                st.tiles = None;
            }
        }
        Ok(())
    }

    /// Folds the first `n` raw rows of `source` (all at or before `wm`) into the tiles of every
    /// window group whose window at `wm` still reaches them, then drops them.
    fn fold(&self, st: &mut SourceState, source: usize, wm: Millis, n: usize) {
        let sp = &self.plan.sources[source];
        let rl = &sp.row;
        let tiles = st
            .tiles
            .get_or_insert_with(|| vec![Vec::new(); sp.groups.len()].into());
        for (arena, &g) in tiles.iter_mut().zip(&sp.groups) {
            let group = &self.plan.groups[g];
            let first = group.first_tile(wm);
            for row in st.raw[..n * rl.stride].chunks_exact(rl.stride) {
                let (time, seq) = (row[0] as Millis, row[1]);
                let k = time.div_euclid(group.hop);
                if k < first {
                    continue;
                }
                let off = group.layout.tile(arena, k);
                for (slot, &c) in group.layout.slots.iter().zip(&group.cols) {
                    group
                        .layout
                        .add(arena, off, slot, time, seq, rl.input(row, c));
                }
            }
        }
        st.raw.drain(..n * rl.stride);
        st.oldest = st.raw.first().map_or(Millis::MAX, |&t| t as Millis);
    }
}

/// Evaluates every feature of `entity` at `t` (clamped per source) into `out` (one value per
/// feature).
pub(crate) fn evaluate_entity(
    config: &EngineConfig,
    plan: &Plan,
    entity: &Entity,
    t: Millis,
    scratch: &mut Scratch,
    out: &mut [FeatureValue],
) {
    for (s, sp) in plan.sources.iter().enumerate() {
        if sp.groups.is_empty() {
            continue;
        }
        let src = entity.source(s);
        let lateness = config.sources[s].allowed_lateness;
        let tf = src.newest.map_or(t, |n| t.max(n.saturating_sub(lateness)));
        let rl = &sp.row;
        // Window starts and the end in ONE forward pass over the rows (sorted by time): cache
        // lines are touched in order, so the prefetcher follows and the group scans below hit.
        let bounds = &mut scratch.bounds;
        bounds.clear();
        bounds.extend(
            sp.groups
                .iter()
                .enumerate()
                .map(|(li, &g)| (plan.groups[g].tail(tf), li, 0usize)),
        );
        bounds.sort_unstable();
        let n = rl.rows(&src.raw);
        let mut i = 0;
        for b in bounds.iter_mut() {
            while i < n && rl.time(&src.raw, i) < b.0 {
                i += 1;
            }
            b.2 = i;
        }
        while i < n && rl.time(&src.raw, i) <= tf {
            i += 1;
        }
        let end = i;
        // The widest window's rows; every other window's are a suffix of them.
        let lo = bounds.first().map_or(end, |b| b.2.min(end));
        let raw = &src.raw[lo * rl.stride..end * rl.stride];
        let groups = bounds.len();
        scratch.next_rows();
        for bi in 0..groups {
            let (_, li, start) = scratch.bounds[bi];
            let group = &plan.groups[sp.groups[li]];
            let first = group.first_tile(tf);
            let from = start.min(end) - lo;
            let arena = src.tiles.as_ref().map_or(&[][..], |t| &t[li][..]);
            eval::evaluate_group(group, arena, first, raw, from, rl, tf, scratch, out);
        }
    }
}
