//! Opening a partition: listing its segments, checking the last one frame by frame and
//! truncating a torn tail, but refusing to truncate below the durable point recorded by the
//! last successful `flush()` (`recovery.json`).

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::{Fsync, LogConfig};
use crate::error::{IoContext, LogError};
use crate::frame::{encode_header, HEADER_LEN};
use crate::frames::{FrameReader, Step};
use crate::fsutil::sync_dir;
use crate::partition::{partition_dir_name, PartitionShared};
use crate::segment::{
    create_segment_file, list_segments, segment_file_name, Segment, SparseIndex,
    INDEX_INTERVAL_BYTES, SCAN_CHUNK,
};
use crate::writer::Writer;

/// File in the log directory holding each partition's last fsynced position.
pub(crate) const RECOVERY_FILE: &str = "recovery.json";

/// Contents of `recovery.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecoveryPoints {
    /// One entry per partition.
    pub(crate) partitions: Vec<DurablePoint>,
}

/// Bytes `[0, bytes)` of segment `segment` were fsynced by a completed `flush()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DurablePoint {
    pub(crate) segment: u64,
    pub(crate) bytes: u64,
}

/// A partition ready for use.
pub(crate) struct OpenedPartition {
    pub(crate) shared: Arc<PartitionShared>,
    pub(crate) writer: Writer,
    pub(crate) recovered_bytes: u64,
}

/// Opens (creating if needed) partition `id` of the log in `log_dir`.
pub(crate) fn open_partition(
    log_dir: &Path,
    id: u32,
    config: &LogConfig,
    durable: Option<DurablePoint>,
) -> Result<OpenedPartition, LogError> {
    let dir = log_dir.join(partition_dir_name(id));
    fs::create_dir_all(&dir).at(&dir)?;
    let sync = config.fsync == Fsync::OnFlush;
    let mut found = list_segments(&dir)?;
    if found.is_empty() {
        let path = dir.join(segment_file_name(0));
        drop(create_segment_file(&path, 0, sync)?);
        if sync {
            sync_dir(&dir)?;
            sync_dir(log_dir)?;
        }
        found.push((0, path));
    }
    let newest = found.last().expect("at least one segment").0;
    if let Some(d) = durable.filter(|d| d.segment > newest) {
        return Err(LogError::corrupt(
            &found.last().expect("at least one segment").1,
            0,
            format!(
                "{RECOVERY_FILE} says segment {} was flushed, but the newest segment is this one",
                segment_file_name(d.segment)
            ),
        ));
    }
    // Segments that may hold data that never reached the disk: with `Fsync::OnFlush`, every
    // segment from the durable one on (segments rolled after the last flush are not synced
    // yet); otherwise only the newest (a process crash loses no written data, only a torn
    // last frame).
    let first_unsure = if sync {
        found
            .iter()
            .position(|(base, _)| durable.is_none_or(|d| *base >= d.segment))
            .expect("the newest segment qualifies")
    } else {
        found.len() - 1
    };
    let mut segments = Vec::with_capacity(found.len());
    for (base, path) in &found[..first_unsure] {
        let len = fs::metadata(path).at(path)?.len();
        segments.push(Arc::new(Segment::new(*base, path.clone(), len, true, None)));
    }
    let mut i = first_unsure;
    let mut recovered = 0u64;
    let (last_base, last_path, tail) = loop {
        let (base, path) = &found[i];
        let durable_bytes = durable
            .filter(|d| d.segment == *base)
            .map_or(0, |d| d.bytes);
        let tail = recover_tail(path, *base, durable_bytes, sync)?;
        recovered += tail.truncated;
        let next = found.get(i + 1);
        match next {
            Some((next_base, _)) if tail.truncated == 0 && *next_base == base + tail.records => {
                segments.push(Arc::new(Segment::new(
                    *base,
                    path.clone(),
                    tail.len,
                    true,
                    None,
                )));
                i += 1;
            }
            Some(_) => {
                // A rolled segment that never fully reached the disk: the segments after it
                // were written later, and none of them was flushed either (verification
                // starts at the durable segment), so they go too.
                for (_, later) in &found[i + 1..] {
                    recovered += fs::metadata(later).at(later)?.len();
                    fs::remove_file(later).at(later)?;
                }
                if sync {
                    sync_dir(&dir)?;
                }
                break (*base, path.clone(), tail);
            }
            None => break (*base, path.clone(), tail),
        }
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&last_path)
        .at(&last_path)?;
    let indexed_pos = tail.index.last().map_or(HEADER_LEN as u64, |e| e.1);
    let active = Arc::new(Segment::new(
        last_base,
        last_path,
        tail.len,
        false,
        Some(tail.index),
    ));
    segments.push(active.clone());
    let end = last_base + tail.records;
    let shared = Arc::new(PartitionShared::new(id, dir, segments, end));
    let writer = Writer::new(
        shared.clone(),
        active,
        file,
        tail.len,
        end,
        indexed_pos,
        config,
    )?;
    Ok(OpenedPartition {
        shared,
        writer,
        recovered_bytes: recovered,
    })
}

/// The valid prefix of a partition's last segment.
struct Tail {
    len: u64,
    records: u64,
    index: SparseIndex,
    truncated: u64,
}

/// Verifies every frame of the last segment and truncates it after the last valid one.
/// Anything invalid below `durable` bytes is an error instead.
fn recover_tail(path: &Path, base: u64, durable: u64, sync: bool) -> Result<Tail, LogError> {
    let file_len = fs::metadata(path).at(path)?.len();
    if is_torn_header(path, base, file_len)? {
        if durable > 0 {
            return Err(LogError::corrupt(
                path,
                0,
                format!("segment header is missing or torn but {durable} bytes were flushed"),
            ));
        }
        // Crashed between creating the file and its header reaching the disk.
        let mut f = OpenOptions::new().write(true).open(path).at(path)?;
        f.set_len(0).at(path)?;
        f.write_all(&encode_header(base)).at(path)?;
        if sync {
            f.sync_data().at(path)?;
        }
        return Ok(Tail {
            len: HEADER_LEN as u64,
            records: 0,
            index: Vec::new(),
            truncated: file_len,
        });
    }
    let mut frames = FrameReader::open(path, base, HEADER_LEN as u64, SCAN_CHUNK)?;
    let mut index = Vec::new();
    let mut indexed = HEADER_LEN as u64;
    let mut records = 0u64;
    let valid_len = loop {
        match frames.next(file_len)? {
            Step::Frame { pos, .. } => {
                if pos >= indexed + INDEX_INTERVAL_BYTES {
                    index.push((base + records, pos));
                    indexed = pos;
                }
                records += 1;
            }
            Step::End => break file_len,
            Step::Bad { pos, reason } if pos < durable => {
                return Err(LogError::corrupt(
                    path,
                    pos,
                    format!("{reason} (below the {durable} bytes made durable by flush)"),
                ))
            }
            Step::Bad { pos, .. } => break pos,
        }
    };
    if valid_len < durable {
        return Err(LogError::corrupt(
            path,
            valid_len,
            format!("file ends at byte {valid_len} but {durable} bytes were flushed"),
        ));
    }
    if valid_len < file_len {
        let f = OpenOptions::new().write(true).open(path).at(path)?;
        f.set_len(valid_len).at(path)?;
        if sync {
            f.sync_data().at(path)?;
        }
    }
    Ok(Tail {
        len: valid_len,
        records,
        index,
        truncated: file_len - valid_len,
    })
}

/// Whether the segment header is shorter than [`HEADER_LEN`], or a prefix of the expected
/// header followed only by zero bytes (a header that never fully reached the disk). Any other
/// mismatch is left to the header check, which reports corruption.
fn is_torn_header(path: &Path, base: u64, file_len: u64) -> Result<bool, LogError> {
    if file_len < HEADER_LEN as u64 {
        return Ok(true);
    }
    let mut header = [0u8; HEADER_LEN];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .at(path)?;
    let expected = encode_header(base);
    Ok(
        match header.iter().zip(&expected).position(|(a, b)| a != b) {
            None => false,
            Some(first_diff) => header[first_diff..].iter().all(|&b| b == 0),
        },
    )
}
