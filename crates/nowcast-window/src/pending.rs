//! Snapshots taken a slice at a time, so the engine's owner never stops for a whole one.
//!
//! [`Engine::begin_snapshot`] fixes what the snapshot holds: the entities present and the
//! arrival seq at that moment. Each of those entities is then written exactly once, either
//! by [`Engine::snapshot_step`] (storage order, a budget at a time, beside readers) or, if
//! an event is about to change it first, by the apply path just before the change. The
//! bytes are the [`Engine::write_snapshot`] format (only the order of the entities
//! differs), so [`Engine::read_snapshot`] reads them and the result is the state at the
//! start. Entities created after the start are not in it.
//!
//! Entities are tracked by their index in the entity map, which only stays valid while no
//! entity is removed: eviction and changelog restores first write every entity not yet
//! written ([`Engine::complete_pending`]), and then the snapshot is complete.

use std::sync::{Mutex, PoisonError};

use crate::snapshot::{end, start, write_keyed_entity, Enc};
use crate::state::{Entity, Key, Plan};
use crate::{Engine, WindowError};

/// Entities per [`Engine::snapshot_step`] that keeps a step short (~0.25 ms at ~1.9 KB per
/// entity): the slice the embedded workers and the Kafka members use.
pub const SNAPSHOT_SLICE: usize = 256;

/// A snapshot in progress.
pub(crate) struct Pending {
    enc: Option<Enc<Vec<u8>>>,
    /// Entities present at the start: map indices `0..end`.
    end: usize,
    /// Next index [`Engine::snapshot_step`] looks at.
    next: usize,
    /// One bit per index `< end`: written already.
    written: Vec<u64>,
    /// Set once every entity is written; the apply path then skips its check.
    complete: bool,
    /// The first encoding error (the apply path cannot return one).
    error: Option<WindowError>,
}

impl Pending {
    #[inline]
    fn needs(&self, i: usize) -> bool {
        !self.complete && i < self.end && self.written[i / 64] & (1 << (i % 64)) == 0
    }

    fn write(&mut self, i: usize, key: &Key, ent: &Entity, plan: &Plan) {
        self.written[i / 64] |= 1 << (i % 64);
        if self.error.is_some() {
            return;
        }
        let enc = self.enc.as_mut().expect("encoder present until finish");
        if let Err(e) = write_keyed_entity(enc, key, ent, plan) {
            self.error = Some(e);
        }
    }

    /// Writes up to `budget` entities not written yet (all with `usize::MAX`); true when
    /// every entity is.
    fn step(&mut self, engine: &Engine, budget: usize) -> bool {
        let mut left = budget;
        while self.next < self.end && left > 0 {
            let i = self.next;
            if self.needs(i) {
                let (key, ent) = engine.entities.entry(i);
                self.write(i, key, ent, &engine.plan);
                left -= 1;
            }
            self.next += 1;
        }
        self.complete = self.next >= self.end;
        self.complete
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("end", &self.end)
            .field("next", &self.next)
            .field("complete", &self.complete)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

fn lock(m: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Engine {
    /// Starts a snapshot of the state as it is now; its bytes are appended to `out` (what the
    /// caller put there stays in front). A snapshot already in progress is dropped. See the
    /// `pending` module docs; finish with [`snapshot_step`](Engine::snapshot_step) and
    /// [`finish_snapshot`](Engine::finish_snapshot).
    pub fn begin_snapshot(&mut self, out: Vec<u8>) -> Result<(), WindowError> {
        let count = self.entities.len();
        let enc = start(out, self, count)?;
        self.pending = Some(Mutex::new(Pending {
            enc: Some(enc),
            end: count,
            next: 0,
            written: vec![0; count.div_ceil(64)],
            complete: count == 0,
            error: None,
        }));
        Ok(())
    }

    /// True while a snapshot is in progress (begun, not finished or cancelled).
    pub fn snapshot_in_progress(&self) -> bool {
        self.pending.is_some()
    }

    /// Writes up to `budget` more entities of the snapshot in progress. Takes `&self`, so it
    /// runs beside readers (under a read lock). Returns `true` once every entity is written
    /// (also when no snapshot is in progress): [`finish_snapshot`](Engine::finish_snapshot)
    /// is then cheap.
    pub fn snapshot_step(&self, budget: usize) -> bool {
        match &self.pending {
            Some(m) => lock(m).step(self, budget),
            None => true,
        }
    }

    /// Completes the snapshot in progress (writing what is left) and returns its bytes, or
    /// `None` if none is in progress.
    pub fn finish_snapshot(&mut self) -> Result<Option<Vec<u8>>, WindowError> {
        let Some(m) = self.pending.take() else {
            return Ok(None);
        };
        let mut p = m.into_inner().unwrap_or_else(PoisonError::into_inner);
        p.step(self, usize::MAX);
        if let Some(e) = p.error.take() {
            return Err(e);
        }
        let enc = p.enc.take().expect("encoder present until finish");
        Ok(Some(end(enc)?))
    }

    /// Drops the snapshot in progress, if any.
    pub fn cancel_snapshot(&mut self) {
        self.pending = None;
    }

    /// Before entity `i` changes: writes its current state into the snapshot in progress
    /// if that still needs it.
    #[inline]
    pub(crate) fn before_change(&mut self, i: usize) {
        if let Some(m) = &mut self.pending {
            let p = m.get_mut().unwrap_or_else(PoisonError::into_inner);
            if p.needs(i) {
                let (key, ent) = self.entities.entry(i);
                p.write(i, key, ent, &self.plan);
            }
        }
    }

    /// Before entities are removed or replaced (indices move): writes every entity the
    /// snapshot in progress still needs.
    pub(crate) fn complete_pending(&mut self) {
        if let Some(m) = self.pending.take() {
            let mut p = m.into_inner().unwrap_or_else(PoisonError::into_inner);
            p.step(self, usize::MAX);
            self.pending = Some(Mutex::new(p));
        }
    }
}
