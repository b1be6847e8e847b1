//! [`LogConfig`]: partition count, segment size and fsync policy.

use crate::error::LogError;
use crate::frame::HEADER_LEN;

/// Default segment size: 128 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 128 * 1024 * 1024;

/// Smallest accepted `segment_bytes` (a segment always takes at least one record, so this
/// only bounds the number of files).
pub const MIN_SEGMENT_BYTES: u64 = 1024;

/// When the log asks the OS to put data on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fsync {
    /// Never fsync. Appended data survives a process crash (it is in the OS page cache) but
    /// not a machine crash; on reopen any invalid tail is truncated.
    Never,
    /// [`Log::flush`](crate::Log::flush) fsyncs every partition's active segment and every
    /// segment rolled since the previous flush, then records the durable length of each partition
    /// in `recovery.json`. Everything appended before a successful `flush()` survives a
    /// machine crash, and corruption below that point is reported instead of truncated.
    #[default]
    OnFlush,
}

/// How a [`Log`](crate::Log) is laid out and synced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Number of partitions; fixed when the log directory is created.
    pub partitions: u32,
    /// A segment is rolled (a new file started) before an append would make it larger than
    /// this. Default [`DEFAULT_SEGMENT_BYTES`].
    pub segment_bytes: u64,
    /// Fsync policy. Default [`Fsync::OnFlush`].
    pub fsync: Fsync,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            partitions: 1,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            fsync: Fsync::OnFlush,
        }
    }
}

impl LogConfig {
    /// A default config with `partitions` partitions.
    pub fn with_partitions(partitions: u32) -> Self {
        LogConfig {
            partitions,
            ..LogConfig::default()
        }
    }

    /// Checks the config without touching the file system.
    pub fn validate(&self) -> Result<(), LogError> {
        if self.partitions == 0 {
            return Err(LogError::InvalidConfig {
                field: "partitions",
                reason: "must be at least 1".into(),
            });
        }
        if self.segment_bytes < MIN_SEGMENT_BYTES.max(HEADER_LEN as u64) {
            return Err(LogError::InvalidConfig {
                field: "segment_bytes",
                reason: format!(
                    "{} is too small; use at least {MIN_SEGMENT_BYTES}",
                    self.segment_bytes
                ),
            });
        }
        Ok(())
    }
}
