//! [`LogReader`]: reads one partition from an offset onwards and follows its tail.

use std::sync::Arc;

use crate::batch::RecordBatch;
use crate::error::LogError;
use crate::frame::{FrameInfo, HEADER_LEN};
use crate::frames::{FrameReader, Step};
use crate::partition::PartitionShared;
use crate::segment::Segment;

/// Read buffer of a tail reader.
const READ_CHUNK: usize = 256 * 1024;

/// Reads records of one partition in offset order, following new appends.
///
/// A reader owns its file handles, so segments deleted by retention while it reads them stay
/// readable to it. It only reads bytes the writer has published, so it never returns a
/// partially written record; every frame's CRC is checked.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use nowcast_log::{Log, LogConfig, RecordBatch};
/// let log = Log::open(dir.path(), LogConfig::with_partitions(1))?;
/// let mut reader = log.reader(0, 0)?;
/// let mut batch = RecordBatch::new();
/// assert_eq!(reader.poll(&mut batch, 10)?, 0); // caught up
/// log.append(0, b"k", b"v", 1)?;
/// assert_eq!(reader.poll(&mut batch, 10)?, 1); // sees the new record
/// assert_eq!(reader.position(), 1);
/// # Ok::<(), nowcast_log::LogError>(())
/// ```
pub struct LogReader {
    shared: Arc<PartitionShared>,
    segment: Arc<Segment>,
    frames: FrameReader,
    next_offset: u64,
}

impl LogReader {
    pub(crate) fn open(shared: Arc<PartitionShared>, from: u64) -> Result<LogReader, LogError> {
        let end = shared.end_offset();
        let start = shared.start_offset();
        let out_of_range = || LogError::OffsetOutOfRange {
            partition: shared.id,
            offset: from,
            start,
            end,
        };
        if from < start || from > end {
            return Err(out_of_range());
        }
        let segment = shared.segment_for(from).ok_or_else(out_of_range)?;
        let (offset, pos) = segment.locate(from)?;
        let frames = match FrameReader::open(&segment.path, segment.base, pos, READ_CHUNK) {
            Ok(f) => f,
            // Retention deleted the segment since it was looked up.
            Err(_) if shared.start_offset() > from => return Err(out_of_range()),
            Err(e) => return Err(e),
        };
        let mut reader = LogReader {
            shared,
            segment,
            frames,
            next_offset: offset,
        };
        while reader.next_offset < from {
            if reader.advance()?.is_none() {
                return Err(LogError::corrupt(
                    reader.frames.path(),
                    reader.frames.position(),
                    format!(
                        "data ends at offset {} below the published end offset {end}",
                        reader.next_offset
                    ),
                ));
            }
        }
        Ok(reader)
    }

    /// Clears `batch` and fills it with up to `max` records that are available now.
    ///
    /// Returns the number of records; 0 means the reader is caught up, and a later call will
    /// see newer appends. If an error occurs after some records were read, those are returned
    /// and the error is reported by the next call.
    ///
    /// # Errors
    /// [`LogError::Corrupt`] for a frame that fails validation (naming file and byte
    /// position), [`LogError::Io`] if a read fails.
    pub fn poll(&mut self, batch: &mut RecordBatch, max: usize) -> Result<usize, LogError> {
        batch.clear();
        while batch.len() < max {
            let offset = self.next_offset;
            match self.advance() {
                Ok(Some((at, info))) => {
                    let (key, value) = info.split(self.frames.frame(at, &info));
                    batch.push(offset, info.timestamp, key, value);
                }
                Ok(None) => break,
                Err(e) if batch.is_empty() => return Err(e),
                Err(_) => break,
            }
        }
        Ok(batch.len())
    }

    /// Offset of the next record this reader will return.
    pub fn position(&self) -> u64 {
        self.next_offset
    }

    /// The partition being read.
    pub fn partition(&self) -> u32 {
        self.shared.id
    }

    /// Moves past the next record, crossing into the next segment when this one is sealed.
    /// `None` when caught up.
    fn advance(&mut self) -> Result<Option<(usize, FrameInfo)>, LogError> {
        loop {
            let sealed = self.segment.is_sealed();
            let limit = self.segment.readable_len();
            match self.frames.next(limit)? {
                Step::Frame { at, info, .. } => {
                    self.next_offset += 1;
                    return Ok(Some((at, info)));
                }
                Step::Bad { pos, reason } => {
                    return Err(LogError::corrupt(self.frames.path(), pos, reason))
                }
                Step::End if !sealed => return Ok(None),
                Step::End => self.next_segment()?,
            }
        }
    }

    fn next_segment(&mut self) -> Result<(), LogError> {
        let here = || (self.frames.path().to_path_buf(), self.frames.position());
        let next = self.shared.segment_after(self.segment.base);
        self.check_not_deleted()?;
        let Some(next) = next else {
            let (path, pos) = here();
            return Err(LogError::corrupt(
                &path,
                pos,
                "sealed segment has no successor",
            ));
        };
        if next.base != self.next_offset {
            let (path, pos) = here();
            return Err(LogError::corrupt(
                &path,
                pos,
                format!(
                    "segment ends before offset {} but the next segment starts at offset {}",
                    self.next_offset, next.base
                ),
            ));
        }
        if let Err(e) = self.frames.reopen(&next.path, next.base, HEADER_LEN as u64) {
            self.check_not_deleted()?;
            return Err(e);
        }
        self.segment = next;
        Ok(())
    }

    /// Fails with [`LogError::OffsetOutOfRange`] if retention deleted the next record.
    fn check_not_deleted(&self) -> Result<(), LogError> {
        let start = self.shared.start_offset();
        if self.next_offset < start {
            return Err(LogError::OffsetOutOfRange {
                partition: self.shared.id,
                offset: self.next_offset,
                start,
                end: self.shared.end_offset(),
            });
        }
        Ok(())
    }
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("partition", &self.shared.id)
            .field("position", &self.next_offset)
            .field("segment", &self.segment.path)
            .finish()
    }
}
