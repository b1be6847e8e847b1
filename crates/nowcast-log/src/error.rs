//! The one error type of this crate, [`LogError`], and its coarse [`ErrorKind`].

use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong in the log.
///
/// I/O errors carry the path they happened on; corruption names the file and the byte
/// position of the bad frame. Use [`LogError::kind`] to decide between dropping the request,
/// retrying and stopping.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// An operating-system call on `path` failed.
    #[error("I/O error on {}", path.display())]
    Io {
        /// File or directory the call was made on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Stored data failed validation somewhere that is not a torn tail (see the crate docs).
    #[error("corrupt log data in {} at byte {position}: {reason}", path.display())]
    Corrupt {
        /// The segment (or metadata) file.
        path: PathBuf,
        /// Byte position of the bad frame or header inside `path`.
        position: u64,
        /// What was wrong.
        reason: String,
    },
    /// A JSON metadata file (`meta.json`, `recovery.json`, an offsets file) is unreadable.
    #[error("bad metadata file {}: {reason}", path.display())]
    BadMetadata {
        /// The metadata file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The log directory was created with a different partition count.
    #[error(
        "log at {} has {existing} partitions but was opened with partitions = {requested}; \
         the partition count of an existing log cannot change",
        dir.display()
    )]
    PartitionCountMismatch {
        /// The log directory.
        dir: PathBuf,
        /// Count recorded in `meta.json`.
        existing: u32,
        /// Count in the [`LogConfig`](crate::LogConfig) passed to `open`.
        requested: u32,
    },
    /// A partition number outside `0..partitions`.
    #[error("partition {partition} does not exist (the log has {partitions} partitions)")]
    NoSuchPartition {
        /// The requested partition.
        partition: u32,
        /// The partition count.
        partitions: u32,
    },
    /// A reader was asked to start outside the offsets the partition holds.
    #[error("offset {offset} is out of range for partition {partition} (valid: {start}..={end})")]
    OffsetOutOfRange {
        /// The partition.
        partition: u32,
        /// The requested offset.
        offset: u64,
        /// Oldest offset still stored (earlier segments were deleted by retention).
        start: u64,
        /// The end offset (the next append's offset); starting here waits for new records.
        end: u64,
    },
    /// A record is larger than one frame may be.
    #[error("record of {size} bytes exceeds the maximum of {max} bytes (key + value)")]
    RecordTooLarge {
        /// Key plus value length.
        size: u64,
        /// The limit, [`MAX_RECORD_BYTES`](crate::MAX_RECORD_BYTES).
        max: u64,
    },
    /// The configuration cannot work.
    #[error("invalid log config: {field}: {reason}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A consumer-group name that cannot be used as a file name.
    #[error("invalid consumer group name {group:?}: use 1-200 characters from [A-Za-z0-9._-], not starting with '.'")]
    InvalidGroup {
        /// The rejected name.
        group: String,
    },
    /// Another process (or another open in this process) holds the directory's
    /// [`DirLock`](crate::DirLock).
    #[error(
        "{} is in use by {}: only one process may open it at a time; stop that process first or use another directory",
        dir.display(),
        holder(*pid)
    )]
    Locked {
        /// The locked directory.
        dir: PathBuf,
        /// The holder's process id, as it wrote it into the lock file.
        pid: Option<u32>,
    },
    /// An earlier write to this partition failed and could not be rolled back; reopen the log.
    #[error("partition {partition} is unusable after an earlier write failure; reopen the log")]
    Poisoned {
        /// The partition.
        partition: u32,
    },
}

/// "another process (pid N)", or without the pid when the holder has not written it.
pub(crate) fn holder(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("another process (pid {pid})"),
        None => "another process".to_string(),
    }
}

/// How a caller should react to a [`LogError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request was wrong (bad partition, offset, size, name); fix the caller, the log is fine.
    BadRequest,
    /// The environment failed (disk full, permissions); retrying later may work.
    Transient,
    /// Stored data or configuration is inconsistent; stop and get a human.
    Fatal,
}

impl LogError {
    /// Classifies the error; see [`ErrorKind`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            LogError::Io { .. } | LogError::Locked { .. } => ErrorKind::Transient,
            LogError::NoSuchPartition { .. }
            | LogError::OffsetOutOfRange { .. }
            | LogError::RecordTooLarge { .. }
            | LogError::InvalidGroup { .. } => ErrorKind::BadRequest,
            LogError::Corrupt { .. }
            | LogError::BadMetadata { .. }
            | LogError::PartitionCountMismatch { .. }
            | LogError::InvalidConfig { .. }
            | LogError::Poisoned { .. } => ErrorKind::Fatal,
        }
    }

    pub(crate) fn corrupt(path: &Path, position: u64, reason: impl Into<String>) -> Self {
        LogError::Corrupt {
            path: path.to_path_buf(),
            position,
            reason: reason.into(),
        }
    }
}

/// Attaches a path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T, LogError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T, LogError> {
        self.map_err(|source| LogError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}
