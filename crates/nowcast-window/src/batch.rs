//! [`Engine::apply_batch`]: many events at once, with the memory of the next few events
//! prefetched while one is applied.
//!
//! At 1 M entities every event misses the caches three times in a row: the map's index slot,
//! then the entry it points to, then the entity's rows, each a DRAM (and TLB) miss that the
//! CPU cannot start before the previous one is done. A batch knows its keys in advance: every
//! key is hashed first, then while event `i` is applied the index slot of event
//! `i + SLOT_AHEAD`, the entry of event `i + ENTRY_AHEAD` and the rows of event
//! `i + ROWS_AHEAD` are prefetched, so those misses overlap with useful work. Prefetches are
//! hints: each event is still looked up and applied exactly as [`Engine::apply`] would, in
//! order, so the results are identical (see `tests/batch.rs`).

use nowcast_core::{FeatureValue, Millis};

use crate::engine::Out;
use crate::map::hash_key;
use crate::state::Entity;
use crate::{prefetch, Engine, Input, Late};

/// How many events ahead the index slot is prefetched.
const SLOT_AHEAD: usize = 6;
/// How many events ahead the entry is prefetched (its slot was prefetched earlier).
const ENTRY_AHEAD: usize = 4;
/// How many events ahead the entity's rows are prefetched (its entry was prefetched earlier).
const ROWS_AHEAD: usize = 2;
/// Most cache lines of one source's rows prefetched when all of them will be read.
pub(crate) const ROW_LINES: usize = 32;

/// One event for [`Engine::apply_batch`]: the arguments of [`Engine::apply`].
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// Entity key.
    pub key: &'a str,
    /// Source index.
    pub source: usize,
    /// Event time.
    pub time: Millis,
    /// One input per input column of the source.
    pub inputs: &'a [Input],
}

impl Engine {
    /// Applies `events` in order, exactly as calling [`apply`](Engine::apply) on each would,
    /// but faster on large state: the memory each event needs is prefetched a few events
    /// ahead (see the `batch` module docs).
    ///
    /// `results` is cleared and receives one result per event. If `features_out` is given,
    /// it is resized to `events.len() × features` and event `i`'s features (what `apply`
    /// would have written) are `features_out[i * F..(i + 1) * F]` with `F` the number of
    /// features; a late event's values are all `Null`. Values of a previous batch are
    /// overwritten (their `List` allocations are reused).
    ///
    /// # Panics
    /// As [`apply`](Engine::apply), for the first offending event (the events before it are
    /// applied).
    pub fn apply_batch(
        &mut self,
        events: &[Event<'_>],
        mut features_out: Option<&mut Vec<FeatureValue>>,
        results: &mut Vec<Result<(), Late>>,
    ) {
        results.clear();
        let f = self.config.features.len();
        if let Some(out) = features_out.as_deref_mut() {
            out.resize(events.len() * f, FeatureValue::Null);
            out.truncate(events.len() * f);
        }
        let mut hashes = std::mem::take(&mut self.batch_hashes);
        hashes.clear();
        hashes.extend(events.iter().map(|e| hash_key(e.key.as_bytes())));
        let eval = features_out.is_some();
        self.prefetch_first(&hashes);
        for (i, e) in events.iter().enumerate() {
            // Rows: all of them for evaluation, else the last line (where the new row goes).
            self.prefetch_ahead(&hashes, i, |entity, j| {
                let source = events[j].source;
                if source >= self.plan.sources.len() {
                    return;
                }
                let raw = &entity.source(source).raw[..];
                if eval {
                    prefetch::slice(raw, ROW_LINES);
                } else if let Some(last) = raw.last() {
                    prefetch::read(last);
                }
            });
            let out = features_out
                .as_deref_mut()
                .map(|o| &mut o[i * f..(i + 1) * f]);
            let res = match out {
                Some(out) => {
                    let res = self.apply_hashed(
                        hashes[i],
                        e.key,
                        e.source,
                        e.time,
                        e.inputs,
                        Some(Out::Slice(&mut *out)),
                    );
                    if res.is_err() {
                        out.fill(FeatureValue::Null);
                    }
                    res
                }
                None => self.apply_hashed(hashes[i], e.key, e.source, e.time, e.inputs, None),
            };
            results.push(res);
        }
        self.batch_hashes = hashes;
    }

    /// Starts the prefetch chain of entities about to be looked up one after the other by
    /// `hashes` (see [`Engine::prefetch_ahead`]).
    pub(crate) fn prefetch_first(&self, hashes: &[u64]) {
        for &h in hashes.iter().take(SLOT_AHEAD) {
            self.entities.prefetch_slot(h);
        }
    }

    /// Before entity `i` of `hashes` is used: the next steps of the chain for the ones after
    /// it: the index slot of entity `i + SLOT_AHEAD`, the map entry of `i + ENTRY_AHEAD` (its
    /// slot now in cache), and `rows(entity, j)` for `j = i + ROWS_AHEAD` (its entry now in
    /// cache), which prefetches the rows it will read.
    pub(crate) fn prefetch_ahead(
        &self,
        hashes: &[u64],
        i: usize,
        rows: impl FnOnce(&Entity, usize),
    ) {
        if let Some(&h) = hashes.get(i + SLOT_AHEAD) {
            self.entities.prefetch_slot(h);
        }
        if let Some(entry) = hashes
            .get(i + ENTRY_AHEAD)
            .and_then(|&h| self.entities.peek(h))
        {
            prefetch::whole(entry);
        }
        if let Some((_, entity)) = hashes
            .get(i + ROWS_AHEAD)
            .and_then(|&h| self.entities.peek(h))
        {
            rows(entity, i + ROWS_AHEAD);
        }
    }
}
