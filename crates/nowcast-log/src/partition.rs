//! State of one partition shared by its writer and readers: the segment list and the
//! published end offset.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::segment::Segment;

/// Directory name of partition `id` inside the log directory.
pub(crate) fn partition_dir_name(id: u32) -> String {
    format!("p{id:05}")
}

/// Whether `name` looks like a partition directory.
pub(crate) fn is_partition_dir_name(name: &str) -> bool {
    name.strip_prefix('p')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// What readers and the writer of one partition share.
#[derive(Debug)]
pub(crate) struct PartitionShared {
    /// Partition number.
    pub(crate) id: u32,
    /// The partition's directory.
    pub(crate) dir: PathBuf,
    /// Segments by ascending base offset; the last one is active. Never empty.
    segments: RwLock<Vec<Arc<Segment>>>,
    /// Offset the next append will get; published after the bytes are readable.
    end_offset: AtomicU64,
}

impl PartitionShared {
    pub(crate) fn new(id: u32, dir: PathBuf, segments: Vec<Arc<Segment>>, end: u64) -> Self {
        assert!(!segments.is_empty(), "a partition always has a segment");
        PartitionShared {
            id,
            dir,
            segments: RwLock::new(segments),
            end_offset: AtomicU64::new(end),
        }
    }

    pub(crate) fn end_offset(&self) -> u64 {
        self.end_offset.load(Ordering::Acquire)
    }

    pub(crate) fn publish_end(&self, end: u64) {
        self.end_offset.store(end, Ordering::Release);
    }

    /// Oldest offset still stored.
    pub(crate) fn start_offset(&self) -> u64 {
        self.segments.read()[0].base
    }

    /// The segment holding `offset` (the one with the largest base at or below it).
    pub(crate) fn segment_for(&self, offset: u64) -> Option<Arc<Segment>> {
        let segs = self.segments.read();
        let i = segs.partition_point(|s| s.base <= offset);
        (i > 0).then(|| segs[i - 1].clone())
    }

    /// The segment following the one based at `base`.
    pub(crate) fn segment_after(&self, base: u64) -> Option<Arc<Segment>> {
        let segs = self.segments.read();
        let i = segs.partition_point(|s| s.base <= base);
        segs.get(i).cloned()
    }

    /// Adds a new active segment (the writer seals the previous one afterwards).
    pub(crate) fn push_segment(&self, segment: Arc<Segment>) {
        self.segments.write().push(segment);
    }

    /// Removes sealed segments whose records are all below `offset`; returns them in order.
    pub(crate) fn remove_segments_before(&self, offset: u64) -> Vec<Arc<Segment>> {
        let mut segs = self.segments.write();
        let n = segs.windows(2).take_while(|w| w[1].base <= offset).count();
        segs.drain(..n).collect()
    }
}
