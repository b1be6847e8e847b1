//! [`Writer`]: appends frames to a partition's active segment, publishes them to readers and
//! rolls segments.
//!
//! Each append call encodes its frames into a reusable buffer and hands them to the OS with
//! one `write` (more for batches over [`WRITE_CHUNK`] or crossing a segment boundary). Only
//! after the write returns are the segment's readable length and the partition's end offset
//! advanced, so readers never see a partial frame.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::config::{Fsync, LogConfig};
use crate::error::{IoContext, LogError};
use crate::frame::{encode_frame, frame_len, HEADER_LEN, MAX_RECORD_BYTES};
use crate::partition::PartitionShared;
use crate::segment::{create_segment_file, segment_file_name, Segment, INDEX_INTERVAL_BYTES};

/// A batch is written out (and published) whenever this much is buffered.
pub(crate) const WRITE_CHUNK: usize = 1024 * 1024;

/// The single writer of one partition; callers hold it under a mutex.
pub(crate) struct Writer {
    shared: Arc<PartitionShared>,
    active: Arc<Segment>,
    file: Arc<File>,
    /// Bytes in the active file, all published.
    len: u64,
    /// Offset of the next record, counting buffered ones once they are written.
    next_offset: u64,
    /// Position of the newest published index entry (or the header end).
    indexed_pos: u64,
    buf: Vec<u8>,
    buffered_records: u64,
    pending_index: Vec<(u64, u64)>,
    segment_bytes: u64,
    fsync: Fsync,
    poisoned: bool,
    /// Segments rolled since the last flush, not yet fsynced (with [`Fsync::OnFlush`]): the
    /// next flush syncs them, and the partition directory, before it records a durable point.
    /// Rolling does not sync, so an append that rolls never waits for the disk.
    rolled: Vec<Rolled>,
    /// Rolls so far (numbers the entries of `rolled`).
    rolls: u64,
    /// `len`, for the background writeback of the active file (see [`crate::writeback`]).
    written: Arc<AtomicU64>,
}

/// A rolled segment awaiting its fsync.
#[derive(Clone)]
pub(crate) struct Rolled {
    roll: u64,
    pub(crate) file: Arc<File>,
    pub(crate) path: std::path::PathBuf,
}

/// What [`Log::flush`](crate::Log::flush) needs to sync a partition outside its lock.
pub(crate) struct SyncPoint {
    pub(crate) file: Arc<File>,
    pub(crate) segment: Arc<Segment>,
    pub(crate) len: u64,
    /// Rolled segments to sync first; then the directory, if non-empty.
    pub(crate) rolled: Vec<Rolled>,
    /// Pass to [`Writer::synced`] once all of the above is synced.
    pub(crate) rolls: u64,
}

impl Writer {
    /// A writer positioned at the end (`len`, `next_offset`) of `active`, an open segment file.
    pub(crate) fn new(
        shared: Arc<PartitionShared>,
        active: Arc<Segment>,
        mut file: File,
        len: u64,
        next_offset: u64,
        indexed_pos: u64,
        config: &LogConfig,
    ) -> Result<Writer, LogError> {
        file.seek(SeekFrom::Start(len)).at(&active.path)?;
        let file = Arc::new(file);
        let written = Arc::new(AtomicU64::new(len));
        crate::writeback::track(&file, &written, len);
        Ok(Writer {
            shared,
            active,
            file,
            len,
            next_offset,
            indexed_pos,
            buf: Vec::new(),
            buffered_records: 0,
            pending_index: Vec::new(),
            segment_bytes: config.segment_bytes,
            fsync: config.fsync,
            poisoned: false,
            rolled: Vec::new(),
            rolls: 0,
            written,
        })
    }

    /// Appends records; returns the first one's offset. On error, a prefix of the batch may
    /// have been appended (see `end_offset`); nothing partial is ever visible.
    pub(crate) fn append_batch(
        &mut self,
        records: &[(&[u8], &[u8], i64)],
    ) -> Result<u64, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned {
                partition: self.shared.id,
            });
        }
        for (key, value, _) in records {
            let size = key.len() + value.len();
            if size > MAX_RECORD_BYTES {
                return Err(LogError::RecordTooLarge {
                    size: size as u64,
                    max: MAX_RECORD_BYTES as u64,
                });
            }
        }
        let first = self.next_offset;
        for &(key, value, timestamp) in records {
            let flen = frame_len(key.len(), value.len()) as u64;
            let mut pos = self.len + self.buf.len() as u64;
            if pos > HEADER_LEN as u64 && pos + flen > self.segment_bytes {
                self.write_out()?;
                self.roll()?;
                pos = self.len;
            }
            let last_indexed = self.pending_index.last().map_or(self.indexed_pos, |e| e.1);
            if pos >= last_indexed + INDEX_INTERVAL_BYTES {
                let offset = self.next_offset + self.buffered_records;
                self.pending_index.push((offset, pos));
            }
            encode_frame(&mut self.buf, key, value, timestamp);
            self.buffered_records += 1;
            if self.buf.len() >= WRITE_CHUNK {
                self.write_out()?;
            }
        }
        self.write_out()?;
        Ok(first)
    }

    /// Writes the buffer to the file and publishes it; on failure cuts the file back.
    fn write_out(&mut self) -> Result<(), LogError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let written = (&*self.file).write_all(&self.buf);
        let records = std::mem::take(&mut self.buffered_records);
        let bytes = self.buf.len() as u64;
        self.buf.clear();
        if self.buf.capacity() > 4 * WRITE_CHUNK {
            self.buf.shrink_to(WRITE_CHUNK); // after a huge record
        }
        if let Err(e) = written {
            self.pending_index.clear();
            let path = &self.active.path;
            let rollback = self
                .file
                .set_len(self.len)
                .and_then(|()| (&*self.file).seek(SeekFrom::Start(self.len)));
            if rollback.is_err() {
                self.poisoned = true;
            }
            return Err(e).at(path);
        }
        self.len += bytes;
        self.written.store(self.len, Ordering::Release);
        self.next_offset += records;
        self.active.extend_index(&self.pending_index);
        if let Some(&(_, pos)) = self.pending_index.last() {
            self.indexed_pos = pos;
        }
        self.pending_index.clear();
        self.active.publish(self.len);
        self.shared.publish_end(self.next_offset);
        Ok(())
    }

    /// Starts a new segment at `next_offset`. The buffer must be empty. Nothing is synced
    /// here: the next flush syncs the rolled segment, the new one and the directory (recovery
    /// verifies every segment after the last durable point, not only the newest).
    fn roll(&mut self) -> Result<(), LogError> {
        debug_assert!(self.buf.is_empty());
        let base = self.next_offset;
        let path = self.shared.dir.join(segment_file_name(base));
        let file = create_segment_file(&path, base, false)?;
        if self.fsync == Fsync::OnFlush {
            self.rolls += 1;
            self.rolled.push(Rolled {
                roll: self.rolls,
                file: self.file.clone(),
                path: self.active.path.clone(),
            });
        }
        let segment = Arc::new(Segment::new(
            base,
            path,
            HEADER_LEN as u64,
            false,
            Some(Vec::new()),
        ));
        self.shared.push_segment(segment.clone());
        self.active.seal();
        self.active = segment;
        self.file = Arc::new(file);
        self.len = HEADER_LEN as u64;
        self.written = Arc::new(AtomicU64::new(self.len));
        crate::writeback::track(&self.file, &self.written, 0);
        self.indexed_pos = HEADER_LEN as u64;
        Ok(())
    }

    /// The active file and its published length, for fsync outside the lock.
    pub(crate) fn sync_point(&self) -> SyncPoint {
        SyncPoint {
            file: self.file.clone(),
            segment: self.active.clone(),
            len: self.len,
            rolled: self.rolled.clone(),
            rolls: self.rolls,
        }
    }

    /// The segments rolled up to roll number `rolls` (see [`SyncPoint`]) are synced.
    pub(crate) fn synced(&mut self, rolls: u64) {
        self.rolled.retain(|r| r.roll > rolls);
    }
}
