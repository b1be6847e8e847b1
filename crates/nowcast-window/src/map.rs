//! The entity map: entities in one dense vector (insertion order, holes filled by the last
//! entry on removal) and a linear-probing index of 8-byte slots over it.
//!
//! It replaces `std::collections::HashMap` for one reason: a lookup's memory can be
//! *prefetched* from the key's hash alone. [`Engine::apply_batch`](crate::Engine::apply_batch)
//! hashes every key of a batch first, then, a few events ahead of the one being applied,
//! prefetches the index slot ([`EntityMap::prefetch_slot`]), then the entry it points to
//! ([`EntityMap::peek`]), then the entity's rows, so the misses of several events overlap
//! instead of being paid one after the other. Prefetches are hints only: every lookup is a
//! full probe with key comparison at the time the event is applied.
//!
//! Index slot: `0` empty, else the hash's high 32 bits `<< 32 | (entry index + 1)`. The
//! home slot is the hash's low bits; the index is kept at most half full, so a probe is
//! usually one cache line. Removal shifts the following run back (no tombstones).

use crate::state::{Entity, Key};

/// Smallest index (slots).
const MIN_SLOTS: usize = 16;

/// The hash of an entity key (also its position and tag in the index).
#[inline]
pub(crate) fn hash_key(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// Entities by key. See the module docs.
#[derive(Debug, Default, Clone)]
pub(crate) struct EntityMap {
    index: Vec<u64>,
    entries: Vec<(Key, Entity)>,
}

#[inline]
fn tag(hash: u64) -> u64 {
    hash & !0xffff_ffff
}

impl EntityMap {
    /// Number of entities.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Heap bytes of the map itself: index slots and entry capacity.
    pub(crate) fn table_bytes(&self) -> usize {
        self.index.len() * 8 + self.entries.capacity() * std::mem::size_of::<(Key, Entity)>()
    }

    /// Entities in storage order (insertion order, except that a removal moves the last
    /// entity into the hole).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Key, &Entity)> {
        self.entries.iter().map(|(k, e)| (k, e))
    }

    #[inline]
    fn mask(&self) -> usize {
        self.index.len().wrapping_sub(1)
    }

    /// Index position and entry index of `key` (with `hash == hash_key(key)`).
    #[inline]
    fn position(&self, hash: u64, key: &[u8]) -> Option<(usize, usize)> {
        if self.entries.is_empty() {
            return None;
        }
        let mask = self.mask();
        let mut p = hash as usize & mask;
        loop {
            let s = self.index[p];
            if s == 0 {
                return None;
            }
            if s & !0xffff_ffff == tag(hash) {
                let i = (s as u32 - 1) as usize;
                if self.entries[i].0.as_bytes() == key {
                    return Some((p, i));
                }
            }
            p = (p + 1) & mask;
        }
    }

    /// Entry index of `key` (with `hash == hash_key(key)`).
    #[inline]
    pub(crate) fn find(&self, hash: u64, key: &[u8]) -> Option<usize> {
        self.position(hash, key).map(|(_, i)| i)
    }

    /// The entity at entry index `i` (from [`find`](EntityMap::find) or
    /// [`insert_new`](EntityMap::insert_new), with no removal since).
    #[inline]
    pub(crate) fn at_mut(&mut self, i: usize) -> &mut Entity {
        &mut self.entries[i].1
    }

    /// Key and entity at entry index `i`.
    #[inline]
    pub(crate) fn entry(&self, i: usize) -> (&Key, &Entity) {
        let (k, e) = &self.entries[i];
        (k, e)
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<&Entity> {
        let i = self.find(hash_key(key), key)?;
        Some(&self.entries[i].1)
    }

    /// Prefetches the index slot where a lookup of `hash` starts.
    #[inline]
    pub(crate) fn prefetch_slot(&self, hash: u64) {
        if let Some(s) = self.index.get(hash as usize & self.mask()) {
            crate::prefetch::read(s);
        }
    }

    /// The first entity whose slot tag matches `hash` without comparing keys (a guess, for
    /// prefetching: reads only the index, never the entries).
    #[inline]
    pub(crate) fn peek(&self, hash: u64) -> Option<&(Key, Entity)> {
        let mask = self.mask();
        let mut p = hash as usize & mask;
        loop {
            let s = *self.index.get(p)?;
            if s == 0 {
                return None;
            }
            if s & !0xffff_ffff == tag(hash) {
                return self.entries.get((s as u32 - 1) as usize);
            }
            p = (p + 1) & mask;
        }
    }

    /// Inserts `key`, known to be absent (`hash == hash_key(key)`); returns its entry index.
    pub(crate) fn insert_new(&mut self, hash: u64, key: Key, entity: Entity) -> usize {
        if (self.entries.len() + 1) * 2 > self.index.len() {
            self.grow();
        }
        let i = self.entries.len();
        assert!(i < u32::MAX as usize, "entity map: too many entities");
        self.entries.push((key, entity));
        self.place(hash, i);
        i
    }

    /// Inserts or replaces; returns the entity replaced.
    pub(crate) fn insert(&mut self, key: Key, entity: Entity) -> Option<Entity> {
        let hash = hash_key(key.as_bytes());
        match self.find(hash, key.as_bytes()) {
            Some(i) => Some(std::mem::replace(&mut self.entries[i].1, entity)),
            None => {
                self.insert_new(hash, key, entity);
                None
            }
        }
    }

    /// Removes `key`; returns its entity.
    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<Entity> {
        let (p, i) = self.position(hash_key(key), key)?;
        self.unplace(p);
        let (_, entity) = self.entries.swap_remove(i);
        if i < self.entries.len() {
            // The former last entry moved to `i`: repoint its slot.
            let moved = self.entries.len();
            let h = hash_key(self.entries[i].0.as_bytes());
            let mask = self.mask();
            let mut q = h as usize & mask;
            while self.index[q] & 0xffff_ffff != moved as u64 + 1 {
                q = (q + 1) & mask;
            }
            self.index[q] = tag(h) | (i as u64 + 1);
        }
        Some(entity)
    }

    /// Keeps the entities for which `keep` is true; rebuilds the index if any were dropped.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Key, &Entity) -> bool) {
        let before = self.entries.len();
        self.entries.retain(|(k, e)| keep(k, e));
        if self.entries.len() != before {
            self.reindex(self.index.len());
        }
    }

    /// Writes entry `i` into the first empty slot of `hash`'s probe sequence.
    fn place(&mut self, hash: u64, i: usize) {
        let mask = self.mask();
        let mut p = hash as usize & mask;
        while self.index[p] != 0 {
            p = (p + 1) & mask;
        }
        self.index[p] = tag(hash) | (i as u64 + 1);
    }

    /// Empties slot `p` and shifts back the rest of its run (backward-shift deletion).
    fn unplace(&mut self, mut p: usize) {
        let mask = self.mask();
        let mut q = (p + 1) & mask;
        loop {
            let s = self.index[q];
            if s == 0 {
                break;
            }
            let i = (s as u32 - 1) as usize;
            let home = hash_key(self.entries[i].0.as_bytes()) as usize & mask;
            // Move `s` back to `p` unless its home lies cyclically in (p, q].
            if (q.wrapping_sub(home) & mask) >= (q.wrapping_sub(p) & mask) {
                self.index[p] = s;
                p = q;
            }
            q = (q + 1) & mask;
        }
        self.index[p] = 0;
    }

    fn grow(&mut self) {
        self.reindex((self.index.len() * 2).max(MIN_SLOTS));
    }

    /// Rebuilds the index with `slots` slots (a power of two, more than twice the entries).
    fn reindex(&mut self, slots: usize) {
        self.index.clear();
        self.index.resize(slots, 0);
        for i in 0..self.entries.len() {
            let h = hash_key(self.entries[i].0.as_bytes());
            self.place(h, i);
        }
    }
}
