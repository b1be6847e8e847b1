//! [`Log`]: opening a log directory and appending, flushing, reading and trimming partitions.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::config::{Fsync, LogConfig};
use crate::error::{IoContext, LogError};
use crate::fsutil::{read_json, sync_dir, write_json_atomic};
use crate::lock::DirLock;
use crate::partition::{is_partition_dir_name, PartitionShared};
use crate::reader::LogReader;
use crate::recovery::{open_partition, DurablePoint, RecoveryPoints, RECOVERY_FILE};
use crate::writer::Writer;

/// File in the log directory recording the partition count.
const META_FILE: &str = "meta.json";
/// Version of the directory layout recorded in `meta.json`.
const LAYOUT_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    version: u32,
    partitions: u32,
}

struct Partition {
    shared: Arc<PartitionShared>,
    writer: Mutex<Writer>,
}

/// A local, durable, partitioned, append-only log. `Send + Sync`; share it with `Arc`.
///
/// Appends to one partition are serialised by a per-partition mutex; different partitions
/// proceed in parallel. One process opens a directory at a time (see [`DirLock`]).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use nowcast_log::{Log, LogConfig, RecordBatch};
/// let log = Log::open(dir.path(), LogConfig::with_partitions(4))?;
/// let (partition, offset) = log.append_keyed(b"user-1", b"clicked", 1_700_000_000_000)?;
/// assert_eq!(offset, 0);
/// log.flush()?; // durable now
/// let mut reader = log.reader(partition, 0)?;
/// let mut batch = RecordBatch::new();
/// reader.poll(&mut batch, 100)?;
/// assert_eq!(batch.get(0).unwrap().value, b"clicked");
/// # Ok::<(), nowcast_log::LogError>(())
/// ```
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    partitions: Vec<Partition>,
    recovered_bytes: u64,
    /// What the last completed `flush()` made durable, per partition; `None` until then.
    /// Held for the whole of a flush, so flushes do not interleave.
    flushed: Mutex<Vec<Option<DurablePoint>>>,
    /// Held while the log is open.
    _lock: DirLock,
}

impl Log {
    /// Creates or opens the log in `dir`.
    ///
    /// A new directory records the partition count in `dir/meta.json`. Opening checks the
    /// last segment of every partition frame by frame and truncates a torn tail (counted in
    /// [`Log::recovered_bytes`]).
    ///
    /// # Errors
    /// [`LogError::PartitionCountMismatch`] if `dir` has a different partition count;
    /// [`LogError::Corrupt`] if invalid data lies below what a completed `flush()` made
    /// durable; [`LogError::Locked`] if another process has it open;
    /// [`LogError::InvalidConfig`]; [`LogError::Io`].
    pub fn open(dir: &Path, config: LogConfig) -> Result<Log, LogError> {
        config.validate()?;
        let lock = DirLock::acquire(dir)?;
        check_or_create_meta(dir, &config)?;
        let recovery_path = dir.join(RECOVERY_FILE);
        let durable = match read_json::<RecoveryPoints>(&recovery_path)? {
            Some(r) if r.partitions.len() == config.partitions as usize => r.partitions,
            Some(r) => {
                return Err(LogError::BadMetadata {
                    path: recovery_path,
                    reason: format!(
                        "has {} partitions, expected {}",
                        r.partitions.len(),
                        config.partitions
                    ),
                })
            }
            None => Vec::new(),
        };
        let mut partitions = Vec::with_capacity(config.partitions as usize);
        let mut recovered_bytes = 0;
        for id in 0..config.partitions {
            let opened = open_partition(dir, id, &config, durable.get(id as usize).copied())?;
            recovered_bytes += opened.recovered_bytes;
            partitions.push(Partition {
                shared: opened.shared,
                writer: Mutex::new(opened.writer),
            });
        }
        Ok(Log {
            dir: dir.to_path_buf(),
            config,
            flushed: Mutex::new(vec![None; partitions.len()]),
            partitions,
            recovered_bytes,
            _lock: lock,
        })
    }

    /// Number of partitions.
    pub fn partitions(&self) -> u32 {
        self.partitions.len() as u32
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration the log was opened with.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Bytes of torn or corrupt tail data truncated by [`Log::open`].
    pub fn recovered_bytes(&self) -> u64 {
        self.recovered_bytes
    }

    /// Appends one record and returns its offset. The record is visible to readers when
    /// this returns and durable after the next [`Log::flush`].
    pub fn append(
        &self,
        partition: u32,
        key: &[u8],
        value: &[u8],
        timestamp: i64,
    ) -> Result<u64, LogError> {
        self.append_batch(partition, &[(key, value, timestamp)])
    }

    /// Appends records to one partition under one lock acquisition, usually with one `write`
    /// call; returns the first record's offset (the others follow consecutively).
    ///
    /// # Errors
    /// [`LogError::RecordTooLarge`] (before anything is written), [`LogError::Io`] (a prefix
    /// of the batch may have been appended; see [`Log::end_offset`]),
    /// [`LogError::NoSuchPartition`], [`LogError::Poisoned`].
    pub fn append_batch(
        &self,
        partition: u32,
        records: &[(&[u8], &[u8], i64)],
    ) -> Result<u64, LogError> {
        self.partition(partition)?
            .writer
            .lock()
            .append_batch(records)
    }

    /// Appends to the partition chosen by Kafka's default partitioner (murmur2 of the key);
    /// returns `(partition, offset)`.
    pub fn append_keyed(
        &self,
        key: &[u8],
        value: &[u8],
        timestamp: i64,
    ) -> Result<(u32, u64), LogError> {
        let partition = nowcast_core::partition_for_key(key, self.partitions());
        Ok((partition, self.append(partition, key, value, timestamp)?))
    }

    /// With [`Fsync::OnFlush`], fsyncs every partition's active segment and then records the
    /// synced lengths in `recovery.json`; everything appended before the call is then durable.
    /// With [`Fsync::Never`] it does nothing (appended data is already in the OS).
    ///
    /// Appends may continue concurrently; each partition's lock is held only to read its
    /// current length. Partitions unchanged since the last flush are not synced again, and a
    /// flush with nothing new writes nothing.
    pub fn flush(&self) -> Result<(), LogError> {
        if self.config.fsync == Fsync::Never {
            return Ok(());
        }
        let mut flushed = self.flushed.lock();
        let mut points = Vec::with_capacity(self.partitions.len());
        for (p, last) in self.partitions.iter().zip(flushed.iter()) {
            let sync = p.writer.lock().sync_point();
            let point = DurablePoint {
                segment: sync.segment.base,
                bytes: sync.len,
            };
            // Segments rolled since the last flush first, then the directory that names the
            // new ones: everything below the durable point must be on disk before it is
            // recorded.
            for r in &sync.rolled {
                r.file.sync_data().at(&r.path)?;
            }
            if !sync.rolled.is_empty() {
                sync_dir(&p.shared.dir)?;
            }
            if *last != Some(point) {
                sync.file.sync_data().at(&sync.segment.path)?;
            }
            if !sync.rolled.is_empty() {
                p.writer.lock().synced(sync.rolls);
            }
            points.push(point);
        }
        if flushed.iter().zip(&points).all(|(a, b)| *a == Some(*b)) {
            return Ok(());
        }
        write_json_atomic(
            &self.dir.join(RECOVERY_FILE),
            &RecoveryPoints {
                partitions: points.clone(),
            },
        )?;
        *flushed = points.into_iter().map(Some).collect();
        Ok(())
    }

    /// Offset the next append to `partition` will get.
    ///
    /// # Panics
    /// If `partition >= self.partitions()`.
    pub fn end_offset(&self, partition: u32) -> u64 {
        self.partition(partition)
            .expect("partition out of range")
            .shared
            .end_offset()
    }

    /// Oldest offset still stored in `partition` (0 unless retention deleted segments).
    ///
    /// # Panics
    /// If `partition >= self.partitions()`.
    pub fn start_offset(&self, partition: u32) -> u64 {
        self.partition(partition)
            .expect("partition out of range")
            .shared
            .start_offset()
    }

    /// A reader of `partition` whose first record is `from`, which must lie in
    /// `start_offset..=end_offset` (`end_offset` waits for the next append).
    pub fn reader(&self, partition: u32, from: u64) -> Result<LogReader, LogError> {
        LogReader::open(self.partition(partition)?.shared.clone(), from)
    }

    /// Retention: deletes the segments of `partition` all of whose records have offsets below
    /// `offset`. The active segment is never deleted, so some older records may remain.
    /// Readers already positioned in a deleted segment keep reading it. Returns the number of
    /// segments deleted.
    pub fn delete_segments_before(&self, partition: u32, offset: u64) -> Result<usize, LogError> {
        let p = self.partition(partition)?;
        let removed = p.shared.remove_segments_before(offset);
        for segment in &removed {
            fs::remove_file(&segment.path).at(&segment.path)?;
        }
        if !removed.is_empty() && self.config.fsync == Fsync::OnFlush {
            sync_dir(&p.shared.dir)?;
        }
        Ok(removed.len())
    }

    fn partition(&self, partition: u32) -> Result<&Partition, LogError> {
        self.partitions
            .get(partition as usize)
            .ok_or(LogError::NoSuchPartition {
                partition,
                partitions: self.partitions(),
            })
    }
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .field("config", &self.config)
            .finish()
    }
}

/// Checks `meta.json` against the config, or writes it for a new log.
fn check_or_create_meta(dir: &Path, config: &LogConfig) -> Result<(), LogError> {
    let path = dir.join(META_FILE);
    match read_json::<Meta>(&path)? {
        Some(meta) if meta.version != LAYOUT_VERSION => Err(LogError::BadMetadata {
            path,
            reason: format!("unsupported layout version {}", meta.version),
        }),
        Some(meta) if meta.partitions != config.partitions => {
            Err(LogError::PartitionCountMismatch {
                dir: dir.to_path_buf(),
                existing: meta.partitions,
                requested: config.partitions,
            })
        }
        Some(_) => Ok(()),
        None => {
            let has_partitions = fs::read_dir(dir)
                .at(dir)?
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_str().is_some_and(is_partition_dir_name));
            if has_partitions {
                return Err(LogError::BadMetadata {
                    path,
                    reason: "missing, but partition directories exist; restore it rather than \
                             guessing the partition count"
                        .into(),
                });
            }
            write_json_atomic(
                &path,
                &Meta {
                    version: LAYOUT_VERSION,
                    partitions: config.partitions,
                },
            )
        }
    }
}
