//! Per-entity state records for a changelog (the Kafka feature-store topic): change tracking,
//! encoding one entity's state, and restoring entities one record at a time.
//!
//! Record layout (little-endian): magic `NCWE`, format version `u32` (the snapshot version:
//! 3 is written, 2 and 3 are read),
//! configuration fingerprint `u64`, the engine's arrival seq `u64` when written, then the
//! entity exactly as in a snapshot body (per source its newest time, raw rows and tile arenas),
//! then a CRC-32 of everything before it. A removed (evicted) entity is a record without a
//! value (a tombstone), so a compacted topic forgets it.

use std::collections::HashSet;

use crate::batch::ROW_LINES;
use crate::map::hash_key;
use crate::snapshot::{check_version, read_entity, write_entity, Dec, Enc, VERSION};
use crate::state::{Entity, Key};
use crate::{prefetch, Engine, WindowError};

const MAGIC: &[u8; 4] = b"NCWE";

impl Engine {
    /// Starts (or stops) remembering which entities change, for
    /// [`drain_changes`](Engine::drain_changes). Off by default: it costs a set lookup per
    /// applied event.
    pub fn track_changes(&mut self, on: bool) {
        match (on, self.changed.is_some()) {
            (true, false) => self.changed = Some(HashSet::default()),
            (false, true) => self.changed = None,
            _ => {}
        }
    }

    /// Entities changed since the last drain.
    pub fn pending_changes(&self) -> usize {
        self.changed.as_ref().map_or(0, |c| c.len())
    }

    /// Hands every entity changed since the last call to `f`, with its encoded state (see the
    /// module docs), or `None` if it was evicted; then forgets them. Keys come in no
    /// particular order; each at most once. On an encoding error the entities not handed
    /// over yet stay changed.
    ///
    /// Changed entities are scattered over the state, so each lookup misses the caches:
    /// entities are looked up by hashes computed first, with the index slot, the entry and
    /// the rows of the ones a few places ahead prefetched (as [`Engine::apply_batch`] does).
    pub fn drain_changes(
        &mut self,
        mut f: impl FnMut(&str, Option<&[u8]>),
    ) -> Result<usize, WindowError> {
        let Some(mut changed) = self.changed.take() else {
            return Ok(0);
        };
        let keys: Vec<&Key> = changed.iter().collect();
        let hashes: Vec<u64> = keys.iter().map(|k| hash_key(k.as_bytes())).collect();
        let mut buf = Vec::with_capacity(1024);
        let mut result = Ok(());
        let mut handed = keys.len();
        self.prefetch_first(&hashes);
        for (i, (key, &h)) in keys.iter().zip(&hashes).enumerate() {
            // Encoding reads every row of every source.
            self.prefetch_ahead(&hashes, i, |ent, _| {
                for s in 0..self.plan.sources.len() {
                    prefetch::slice(&ent.source(s).raw, ROW_LINES);
                }
            });
            let text = std::str::from_utf8(key.as_bytes()).expect("keys are built from &str");
            match self.entities.find(h, key.as_bytes()) {
                Some(at) => {
                    if let Err(e) = self.encode(self.entities.entry(at).1, &mut buf) {
                        result = Err(e);
                        handed = i;
                        break;
                    }
                    f(text, Some(&buf));
                }
                None => f(text, None),
            }
        }
        // Entities not handed over (after an error) stay changed for the next drain.
        let left: Vec<Key> = keys[handed..].iter().map(|k| (*k).clone()).collect();
        drop(keys);
        changed.clear();
        changed.extend(left);
        self.changed = Some(changed);
        result.map(|()| handed)
    }

    /// Encodes `key`'s state into `out` (cleared first). Returns `false` if the entity is
    /// unknown.
    pub fn encode_entity(&self, key: &str, out: &mut Vec<u8>) -> Result<bool, WindowError> {
        out.clear();
        let Some(ent) = self.entities.get(key.as_bytes()) else {
            return Ok(false);
        };
        self.encode(ent, out)?;
        Ok(true)
    }

    /// Encodes `ent` as a record into `out` (cleared first).
    fn encode(&self, ent: &Entity, out: &mut Vec<u8>) -> Result<(), WindowError> {
        out.clear();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.fingerprint.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        let mut e = Enc::memory(std::mem::take(out));
        write_entity(&mut e, ent, &self.plan)?;
        *out = e.into_vec();
        let crc = crc32fast::hash(out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(())
    }

    /// Replaces `key`'s state with an encoded record, or removes the entity for `None` (a
    /// tombstone). The arrival seq advances to at least the record's, so later events still
    /// order after restored ones. A bad record is an error and changes nothing. Restored
    /// entities are not reported as changes.
    pub fn restore_entity(&mut self, key: &str, record: Option<&[u8]>) -> Result<(), WindowError> {
        self.complete_pending();
        let Some(b) = record else {
            self.entities.remove(key.as_bytes());
            return Ok(());
        };
        if b.len() < 28 {
            return Err(WindowError::corrupt("entity record is truncated"));
        }
        if &b[..4] != MAGIC {
            return Err(WindowError::BadMagic);
        }
        let (body, trailer) = b.split_at(b.len() - 4);
        if crc32fast::hash(body) != u32::from_le_bytes(trailer.try_into().expect("4 bytes")) {
            return Err(WindowError::corrupt("entity record checksum mismatch"));
        }
        let version = u32::from_le_bytes(b[4..8].try_into().expect("4 bytes"));
        check_version(version)?;
        let found = u64::from_le_bytes(b[8..16].try_into().expect("8 bytes"));
        let expected = self.fingerprint;
        if found != expected {
            return Err(WindowError::ConfigMismatch { expected, found });
        }
        let seq = u64::from_le_bytes(b[16..24].try_into().expect("8 bytes"));
        let mut d = Dec::new(&body[24..]);
        let ent = read_entity(&mut d, self, version)?;
        if !d.at_end()? {
            return Err(WindowError::corrupt("trailing bytes in entity record"));
        }
        self.seq = self.seq.max(seq);
        self.entities.insert(Key::new(key), ent);
        Ok(())
    }
}
