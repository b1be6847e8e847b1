//! One segment file as shared between the writer and readers: its readable length, whether it
//! is sealed, and its sparse offset index. Also segment file naming and creation.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::error::{IoContext, LogError};
use crate::frame::{encode_header, HEADER_LEN};
use crate::frames::{FrameReader, Step};

/// The sparse index gets an entry for the first frame starting at least this many bytes after
/// the previous entry, so locating an offset reads at most about this much.
pub(crate) const INDEX_INTERVAL_BYTES: u64 = 64 * 1024;

/// Read buffer used when scanning a whole segment.
pub(crate) const SCAN_CHUNK: usize = 1024 * 1024;

/// `(offset, byte position)` pairs, ascending. The segment's first record
/// (`base`, [`HEADER_LEN`]) is implicit.
pub(crate) type SparseIndex = Vec<(u64, u64)>;

/// File name of the segment whose first record has offset `base`.
pub(crate) fn segment_file_name(base: u64) -> String {
    format!("{base:020}.log")
}

/// The base offset encoded in a segment file name, if it is one.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Segment files in `dir`, sorted by base offset.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        if let Some(base) = entry.file_name().to_str().and_then(parse_segment_name) {
            out.push((base, entry.path()));
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Creates a new segment file containing only its header and returns it opened for writing.
pub(crate) fn create_segment_file(path: &Path, base: u64, sync: bool) -> Result<File, LogError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .at(path)?;
    file.write_all(&encode_header(base)).at(path)?;
    if sync {
        file.sync_data().at(path)?;
    }
    Ok(file)
}

/// Shared state of one segment.
#[derive(Debug)]
pub(crate) struct Segment {
    /// Offset of the segment's first record.
    pub(crate) base: u64,
    /// The segment file.
    pub(crate) path: PathBuf,
    /// Bytes (header included) that hold complete records; readers never read past it.
    readable: AtomicU64,
    /// Set after the successor segment exists; `readable` is final then.
    sealed: AtomicBool,
    /// `None` for sealed segments found on open until a reader first needs it.
    index: Mutex<Option<SparseIndex>>,
}

impl Segment {
    pub(crate) fn new(
        base: u64,
        path: PathBuf,
        readable: u64,
        sealed: bool,
        index: Option<SparseIndex>,
    ) -> Segment {
        Segment {
            base,
            path,
            readable: AtomicU64::new(readable),
            sealed: AtomicBool::new(sealed),
            index: Mutex::new(index),
        }
    }

    /// Bytes readers may read.
    pub(crate) fn readable_len(&self) -> u64 {
        self.readable.load(Ordering::Acquire)
    }

    /// Whether the writer has moved on to the next segment. Load this *before*
    /// [`Segment::readable_len`]: once it is true, the length read afterwards is final.
    pub(crate) fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    /// Makes bytes up to `len` visible to readers (they must already be in the file).
    pub(crate) fn publish(&self, len: u64) {
        self.readable.store(len, Ordering::Release);
    }

    /// Marks the segment as complete (its successor must already be listed).
    pub(crate) fn seal(&self) {
        self.sealed.store(true, Ordering::Release);
    }

    /// Adds index entries for frames that are already published.
    pub(crate) fn extend_index(&self, entries: &[(u64, u64)]) {
        if entries.is_empty() {
            return;
        }
        self.index
            .lock()
            .get_or_insert_with(Vec::new)
            .extend_from_slice(entries);
    }

    /// The closest indexed `(offset, position)` at or before `offset`, building the index by
    /// scanning the file if this is the first lookup in a segment found on open.
    pub(crate) fn locate(&self, offset: u64) -> Result<(u64, u64), LogError> {
        let mut guard = self.index.lock();
        if guard.is_none() {
            *guard = Some(self.scan_index()?);
        }
        let index = guard.as_ref().expect("index built above");
        let i = index.partition_point(|&(o, _)| o <= offset);
        Ok(if i == 0 {
            (self.base, HEADER_LEN as u64)
        } else {
            index[i - 1]
        })
    }

    /// Reads every frame of a sealed segment, verifying it, and returns its sparse index.
    fn scan_index(&self) -> Result<SparseIndex, LogError> {
        let limit = self.readable_len();
        let mut frames = FrameReader::open(&self.path, self.base, HEADER_LEN as u64, SCAN_CHUNK)?;
        let mut index = Vec::new();
        let mut last = HEADER_LEN as u64;
        let mut offset = self.base;
        loop {
            match frames.next(limit)? {
                Step::Frame { pos, .. } => {
                    if pos >= last + INDEX_INTERVAL_BYTES {
                        index.push((offset, pos));
                        last = pos;
                    }
                    offset += 1;
                }
                Step::End => return Ok(index),
                Step::Bad { pos, reason } => {
                    return Err(LogError::corrupt(&self.path, pos, reason))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort() {
        assert_eq!(segment_file_name(42), "00000000000000000042.log");
        assert_eq!(
            parse_segment_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(parse_segment_name("42.log"), None);
        assert_eq!(parse_segment_name("00000000000000000042.log.tmp"), None);
        assert!(segment_file_name(9) < segment_file_name(10));
    }
}
