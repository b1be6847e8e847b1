//! A column of variable-length per-tile segments stored in one flat vector (one allocation for
//! all tiles of a feature instead of one per tile).

use std::ops::Range;

/// Segments `0..len()`, segment `i` being `data[ends[i-1]..ends[i]]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Segmented<T> {
    pub(crate) ends: Vec<u32>,
    pub(crate) data: Vec<T>,
}

impl<T> Default for Segmented<T> {
    fn default() -> Self {
        Segmented {
            ends: Vec::new(),
            data: Vec::new(),
        }
    }
}

impl<T: Copy> Segmented<T> {
    pub(crate) fn range(&self, i: usize) -> Range<usize> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        start..self.ends[i] as usize
    }

    pub(crate) fn seg(&self, i: usize) -> &[T] {
        &self.data[self.range(i)]
    }

    /// Data of segments `from..`, contiguous.
    pub(crate) fn tail(&self, from: usize) -> &[T] {
        let start = if from == 0 {
            0
        } else {
            self.ends[from - 1] as usize
        };
        &self.data[start..]
    }

    /// Inserts an empty segment before segment `i`.
    pub(crate) fn insert_empty(&mut self, i: usize) {
        let at = if i == 0 { 0 } else { self.ends[i - 1] };
        self.ends.insert(i, at);
    }

    /// Inserts `v` at position `pos` inside segment `i`.
    pub(crate) fn insert_at(&mut self, i: usize, pos: usize, v: T) {
        let r = self.range(i);
        self.data.insert(r.start + pos, v);
        for e in &mut self.ends[i..] {
            *e += 1;
        }
    }

    /// Removes the element at position `pos` inside segment `i`.
    pub(crate) fn remove_at(&mut self, i: usize, pos: usize) {
        let r = self.range(i);
        self.data.remove(r.start + pos);
        for e in &mut self.ends[i..] {
            *e -= 1;
        }
    }

    /// Replaces segment `i` with `new`.
    pub(crate) fn replace(&mut self, i: usize, new: &[T]) {
        let r = self.range(i);
        let old_len = r.len();
        self.data.splice(r, new.iter().copied());
        for e in &mut self.ends[i..] {
            *e = (*e as usize - old_len + new.len()) as u32;
        }
    }

    /// Drops the first `n` segments.
    pub(crate) fn drop_front(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        let cut = self.ends[n - 1];
        self.data.drain(..cut as usize);
        self.ends.drain(..n);
        for e in &mut self.ends {
            *e -= cut;
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.ends.capacity() * 4 + self.data.capacity() * std::mem::size_of::<T>()
    }

    /// Checks the structure after decoding (ends non-decreasing, last end = data length).
    pub(crate) fn is_consistent(&self) -> bool {
        self.ends.windows(2).all(|w| w[0] <= w[1])
            && self.ends.last().map_or(0, |&e| e as usize) == self.data.len()
    }
}
