//! Per-entity state and the plan derived from the configuration: features are grouped by
//! (source, duration, hop) so the features of one window share one sorted tile index.

use std::hash::{BuildHasher, Hasher};

use nowcast_core::Millis;

use crate::eval::PendingRow;
use crate::tile::Layout;
use crate::{EngineConfig, Input};

/// Features sharing a source and a window shape.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub(crate) source: usize,
    pub(crate) duration: Millis,
    pub(crate) hop: Millis,
    /// Feature indices (config order).
    pub(crate) features: Vec<usize>,
    /// For each feature, its position in the source's inputs.
    pub(crate) input_pos: Vec<usize>,
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
}

/// Derived from the configuration once.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) source_features: Vec<Vec<usize>>,
    pub(crate) source_groups: Vec<Vec<usize>>,
    pub(crate) groups: Vec<Group>,
}

impl Plan {
    pub(crate) fn new(config: &EngineConfig) -> Plan {
        let ns = config.sources.len();
        let mut source_features = vec![Vec::new(); ns];
        for (f, def) in config.features.iter().enumerate() {
            source_features[def.source].push(f);
        }
        let mut groups: Vec<Group> = Vec::new();
        let mut source_groups = vec![Vec::new(); ns];
        for (f, def) in config.features.iter().enumerate() {
            let (d, h) = (def.window.duration, def.window.hop_millis());
            let pos = source_features[def.source]
                .iter()
                .position(|&x| x == f)
                .unwrap_or(0);
            let g = match groups
                .iter()
                .position(|g| g.source == def.source && g.duration == d && g.hop == h)
            {
                Some(g) => g,
                None => {
                    groups.push(Group {
                        source: def.source,
                        duration: d,
                        hop: h,
                        features: Vec::new(),
                        input_pos: Vec::new(),
                        layout: Layout::new(&[]),
                    });
                    source_groups[def.source].push(groups.len() - 1);
                    groups.len() - 1
                }
            };
            groups[g].features.push(f);
            groups[g].input_pos.push(pos);
        }
        for g in &mut groups {
            let aggs: Vec<_> = g.features.iter().map(|&f| config.features[f].agg).collect();
            g.layout = Layout::new(&aggs);
        }
        Plan {
            source_features,
            source_groups,
            groups,
        }
    }
}

/// One source's state for one entity.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SourceState {
    /// Newest applied event time (the watermark is this minus the allowed lateness).
    pub(crate) newest: Option<Millis>,
    /// Events newer than the watermark, not yet folded into tiles.
    pub(crate) pending: Vec<PendingRow>,
    /// Their inputs, `source_features.len()` per row.
    pub(crate) inputs: Vec<Input>,
}

/// Everything kept for one entity.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entity {
    pub(crate) sources: Box<[SourceState]>,
    /// Per window group, its tile arena (see [`crate::tile`]); empty while it has no tiles.
    pub(crate) groups: Box<[Vec<u64>]>,
}

impl Entity {
    pub(crate) fn new(plan: &Plan) -> Entity {
        Entity {
            sources: vec![SourceState::default(); plan.source_features.len()].into(),
            groups: vec![Vec::new(); plan.groups.len()].into(),
        }
    }

    /// Heap bytes held: box and vector capacities (allocator overhead not included).
    pub(crate) fn heap_bytes(&self) -> usize {
        let mut b = std::mem::size_of_val(&*self.sources) + std::mem::size_of_val(&*self.groups);
        for s in self.sources.iter() {
            b += s.pending.capacity() * std::mem::size_of::<PendingRow>()
                + s.inputs.capacity() * std::mem::size_of::<Input>();
        }
        for g in self.groups.iter() {
            b += g.capacity() * 8;
        }
        b
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
