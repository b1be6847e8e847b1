//! The [`Engine`]: entity map, lateness check, per-event evaluation, folding events into
//! tiles, expiring tiles, eviction and the memory estimate.

use std::collections::HashMap;

use nowcast_core::{FeatureValue, Millis};

use crate::eval::{self, PendingRow, PendingView, Scratch};
use crate::state::{Entity, KeyHash, Plan};
use crate::tile::Layout;
use crate::{EngineConfig, Input, Late, WindowError};

/// The window engine. See the crate docs for the exact semantics.
#[derive(Debug)]
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) plan: Plan,
    pub(crate) entities: HashMap<Box<str>, Entity, KeyHash>,
    /// Arrival counter: incremented per applied event, breaks time ties for last/last_n.
    pub(crate) seq: u64,
    scratch: Scratch,
}

impl Engine {
    /// Validates `config` and builds an empty engine.
    ///
    /// Rules: window duration `> 0`; tiled hop in `1..=duration`; quantile `q` in `[0, 1]` and
    /// relative accuracy in `(0, 1)`; `LastN(n)` with `n` in `1..=64`; decayed-sum half-life
    /// `> 0`; feature source index in range; allowed lateness `>= 0`.
    pub fn new(config: EngineConfig) -> Result<Engine, WindowError> {
        config.validate()?;
        Ok(Engine::build(config))
    }

    pub(crate) fn build(config: EngineConfig) -> Engine {
        let plan = Plan::new(&config);
        Engine {
            config,
            plan,
            entities: HashMap::default(),
            seq: 0,
            scratch: Scratch::default(),
        }
    }

    /// The configuration the engine was built with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Indices of the features of `source`, ascending: the order of `inputs` for
    /// [`apply`](Engine::apply).
    ///
    /// # Panics
    /// If `source` is out of range.
    pub fn source_features(&self, source: usize) -> &[usize] {
        &self.plan.source_features[source]
    }

    /// Applies one event of `key` from `source` at `time`.
    ///
    /// Refused with [`Late`] (nothing changes) if `time` is before the entity's watermark for
    /// this source. Otherwise, if `features_out` is given, it first receives every feature of
    /// the entity evaluated at `time` over the events applied before this one (see the crate
    /// docs for the per-source clamp), one value per feature in config order; then the event
    /// is applied. `inputs` holds one [`Input`] per feature of the source, in
    /// [`source_features`](Engine::source_features) order.
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
        assert_eq!(
            inputs.len(),
            self.plan.source_features[source].len(),
            "apply: one input per feature of source {source} expected"
        );
        let mut ctx = Ctx {
            config: &self.config,
            plan: &self.plan,
            scratch: &mut self.scratch,
            seq: &mut self.seq,
        };
        if let Some(entity) = self.entities.get_mut(key) {
            return ctx.apply(entity, source, time, inputs, features_out);
        }
        let mut entity = Entity::new(&self.plan);
        ctx.apply(&mut entity, source, time, inputs, features_out)?;
        self.entities.insert(key.into(), entity);
        Ok(())
    }

    /// Evaluates every feature of `key` at `t` into `out` (one value per feature, config
    /// order). Returns `false` (and leaves `out` empty) if the entity is unknown.
    ///
    /// Each feature is evaluated at `max(t, watermark of its source for this entity)`: events
    /// up to the watermark are already folded into tiles, so earlier times are not available.
    pub fn evaluate(&self, key: &str, t: Millis, out: &mut Vec<FeatureValue>) -> bool {
        out.clear();
        let Some(entity) = self.entities.get(key) else {
            return false;
        };
        let mut scratch = Scratch::default();
        evaluate_entity(&self.config, &self.plan, entity, t, &mut scratch, out);
        true
    }

    /// Newest applied event time per source for `key` (`None` for a source never seen), or
    /// `None` if the entity is unknown.
    pub fn newest_event_times(&self, key: &str) -> Option<Vec<Option<Millis>>> {
        let e = self.entities.get(key)?;
        Some(e.sources.iter().map(|s| s.newest).collect())
    }

    /// Drops every entity whose every window is empty at every `t >= stream_time` (its newest
    /// event of each source is before the tail of each window of that source at
    /// `stream_time`). The entity's watermarks are forgotten with it. Returns how many.
    pub fn evict_idle(&mut self, stream_time: Millis) -> usize {
        let before = self.entities.len();
        let plan = &self.plan;
        let tails: Vec<Millis> = plan
            .groups
            .iter()
            .map(|g| g.first_tile(stream_time).saturating_mul(g.hop))
            .collect();
        self.entities.retain(|_, e| {
            plan.groups
                .iter()
                .zip(&tails)
                .any(|(g, &lo)| e.sources[g.source].newest.is_some_and(|n| n >= lo))
        });
        before - self.entities.len()
    }

    /// Number of entities held.
    pub fn entities(&self) -> usize {
        self.entities.len()
    }

    /// Estimated heap bytes of entity state: the map's slots at its capacity (key pointer +
    /// state header + control byte), and for each entity its key bytes and the capacity of
    /// every box and vector it owns (per-source pending rows and inputs, per-window tile
    /// arenas). Allocator overhead is not included. O(entities).
    pub fn state_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(Box<str>, Entity)>() + 1;
        self.entities.capacity() * slot
            + self
                .entities
                .iter()
                .map(|(k, e)| k.len() + e.heap_bytes())
                .sum::<usize>()
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
        out: Option<&mut Vec<FeatureValue>>,
    ) -> Result<(), Late> {
        let lateness = self.config.sources[source].allowed_lateness;
        if let Some(newest) = entity.sources[source].newest {
            let watermark = newest.saturating_sub(lateness);
            if time < watermark {
                return Err(Late { watermark, newest });
            }
        }
        if let Some(out) = out {
            evaluate_entity(self.config, self.plan, entity, time, self.scratch, out);
        }
        *self.seq += 1;
        let seq = *self.seq;
        let st = &mut entity.sources[source];
        let newest = st.newest.map_or(time, |n| n.max(time));
        st.newest = Some(newest);
        let wm = newest.saturating_sub(lateness);
        if time <= wm {
            self.fold(&mut entity.groups, source, time, seq, inputs);
        } else {
            st.pending.push(PendingRow { time, seq });
            st.inputs.reserve_exact(inputs.len());
            st.inputs.extend_from_slice(inputs);
        }
        self.fold_pending(entity, source, wm);
        for &g in &self.plan.source_groups[source] {
            Layout::expire(&mut entity.groups[g], self.plan.groups[g].first_tile(wm));
        }
        Ok(())
    }

    /// Folds pending rows of `source` at or before `wm` into tiles (compacting in place).
    fn fold_pending(&mut self, entity: &mut Entity, source: usize, wm: Millis) {
        let Entity { sources, groups } = entity;
        let st = &mut sources[source];
        if !st.pending.iter().any(|r| r.time <= wm) {
            return;
        }
        let stride = self.plan.source_features[source].len();
        let mut kept = 0;
        for j in 0..st.pending.len() {
            let r = st.pending[j];
            if r.time <= wm {
                self.fold(
                    groups,
                    source,
                    r.time,
                    r.seq,
                    &st.inputs[j * stride..(j + 1) * stride],
                );
            } else {
                st.pending[kept] = r;
                st.inputs
                    .copy_within(j * stride..(j + 1) * stride, kept * stride);
                kept += 1;
            }
        }
        st.pending.truncate(kept);
        st.inputs.truncate(kept * stride);
    }

    /// Folds one event into the tiles of every group of `source`.
    fn fold(
        &self,
        groups: &mut [Vec<u64>],
        source: usize,
        time: Millis,
        seq: u64,
        inputs: &[Input],
    ) {
        for &g in &self.plan.source_groups[source] {
            let group = &self.plan.groups[g];
            let words = &mut groups[g];
            let off = group.layout.tile(words, time.div_euclid(group.hop));
            for (slot, &pos) in group.layout.slots.iter().zip(&group.input_pos) {
                group.layout.add(words, off, slot, time, seq, inputs[pos]);
            }
        }
    }
}

/// Evaluates every feature of `entity` at `t` (clamped per source) into `out`.
pub(crate) fn evaluate_entity(
    config: &EngineConfig,
    plan: &Plan,
    entity: &Entity,
    t: Millis,
    scratch: &mut Scratch,
    out: &mut Vec<FeatureValue>,
) {
    out.resize(config.features.len(), FeatureValue::Null);
    out.truncate(config.features.len());
    for (gi, g) in plan.groups.iter().enumerate() {
        let src = &entity.sources[g.source];
        let lateness = config.sources[g.source].allowed_lateness;
        let tf = src.newest.map_or(t, |n| t.max(n.saturating_sub(lateness)));
        let first = g.first_tile(tf);
        let view = PendingView {
            rows: &src.pending,
            inputs: &src.inputs,
            stride: plan.source_features[g.source].len(),
            lo: first.saturating_mul(g.hop),
            hi: tf,
        };
        eval::evaluate_group(
            &g.layout,
            &entity.groups[gi],
            first,
            &g.input_pos,
            &g.features,
            &view,
            tf,
            scratch,
            out,
        );
    }
}
