//! The local state store: a snapshot per owned partition with the feature-store offset it
//! reflects, so a restart restores from disk plus the changelog tail instead of the whole
//! changelog. A missing, corrupt or stale snapshot falls back to a full changelog restore.
//!
//! File `p-<partition>.snap` (little-endian): magic `NCKS`, version `u32`, topic name (`u32`
//! length + bytes), partition `i32`, changelog offset `i64` (the first feature-store offset
//! *not* reflected), CRC-32 of those fields, then the engine snapshot (its own versioned,
//! checksummed format). Written to a temporary file, fsynced and renamed.

use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use nowcast_window::{Engine, EngineConfig};

use crate::KafkaError;

const MAGIC: &[u8; 4] = b"NCKS";
/// 2: the topic's id (KIP-516) follows its name, so a snapshot of an earlier incarnation of a
/// re-created topic is refused.
const VERSION: u32 = 2;

/// The snapshot file of a partition.
pub fn path(dir: &Path, partition: i32) -> PathBuf {
    dir.join(format!("p-{partition:04}.snap"))
}

fn io(p: &Path, e: std::io::Error) -> KafkaError {
    KafkaError::State(format!("{}: {e}", p.display()))
}

/// The file header for the state of `topic` (whose broker id is `topic_id`)/`partition` up to
/// (excluding) changelog `offset`; the engine snapshot follows it.
pub fn header(topic: &str, topic_id: &str, partition: i32, offset: i64) -> Vec<u8> {
    let mut header = Vec::with_capacity(64 + topic.len() + topic_id.len());
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&(topic.len() as u32).to_le_bytes());
    header.extend_from_slice(topic.as_bytes());
    header.extend_from_slice(&(topic_id.len() as u32).to_le_bytes());
    header.extend_from_slice(topic_id.as_bytes());
    header.extend_from_slice(&partition.to_le_bytes());
    header.extend_from_slice(&offset.to_le_bytes());
    let crc = crc32fast::hash(&header);
    header.extend_from_slice(&crc.to_le_bytes());
    header
}

/// Writes `engine` as the state of `topic`/`partition` up to (excluding) changelog `offset`.
pub fn write(
    dir: &Path,
    topic: &str,
    topic_id: &str,
    partition: i32,
    offset: i64,
    engine: &Engine,
) -> Result<u64, KafkaError> {
    replace(dir, partition, |tmp, file| {
        file.write_all(&header(topic, topic_id, partition, offset))
            .map_err(|e| io(tmp, e))?;
        engine
            .write_snapshot(file)
            .map_err(|e| KafkaError::State(format!("{}: {e}", tmp.display())))
    })
}

/// Writes a snapshot encoded in memory (a [`header`] and the engine snapshot behind it) as
/// the file of `partition`.
pub fn write_bytes(dir: &Path, partition: i32, bytes: &[u8]) -> Result<u64, KafkaError> {
    replace(dir, partition, |tmp, file| {
        file.write_all(bytes).map_err(|e| io(tmp, e))
    })
}

/// Writes the file of `partition` through `fill` into a temporary file, fsyncs it, renames it
/// over the previous one and fsyncs the directory. Returns its size.
fn replace(
    dir: &Path,
    partition: i32,
    fill: impl FnOnce(&Path, &mut std::io::BufWriter<File>) -> Result<(), KafkaError>,
) -> Result<u64, KafkaError> {
    fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let final_path = path(dir, partition);
    let tmp = final_path.with_extension("snap.tmp");
    let mut file =
        std::io::BufWriter::with_capacity(1 << 20, File::create(&tmp).map_err(|e| io(&tmp, e))?);
    fill(&tmp, &mut file)?;
    let file = file.into_inner().map_err(|e| io(&tmp, e.into_error()))?;
    file.sync_all().map_err(|e| io(&tmp, e))?;
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    drop(file);
    fs::rename(&tmp, &final_path).map_err(|e| io(&final_path, e))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(bytes)
}

/// Reads the snapshot of `topic`/`partition`: `Ok(None)` when there is none, `Err` with the
/// reason when it cannot be used.
pub fn read(
    dir: &Path,
    topic: &str,
    topic_id: &str,
    partition: i32,
    config: EngineConfig,
) -> Result<Option<(Engine, i64)>, String> {
    let p = path(dir, partition);
    let file = match File::open(&p) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", p.display())),
    };
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut header = Vec::with_capacity(128);
    let mut take = |r: &mut BufReader<File>, n: usize| -> Result<Vec<u8>, String> {
        let mut b = vec![0u8; n];
        r.read_exact(&mut b).map_err(|e| format!("header: {e}"))?;
        header.extend_from_slice(&b);
        Ok(b)
    };
    let u32_at = |b: &[u8]| u32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
    let fixed = take(&mut r, 8)?;
    if &fixed[..4] != MAGIC {
        return Err("not a nowcast state snapshot".into());
    }
    let version = u32_at(&fixed[4..]);
    if version != VERSION {
        return Err(format!(
            "snapshot version {version}, this build reads {VERSION}"
        ));
    }
    let tlen = u32_at(&take(&mut r, 4)?) as usize;
    if tlen > 249 {
        return Err("bad topic length".into());
    }
    let found_topic = String::from_utf8_lossy(&take(&mut r, tlen)?).into_owned();
    let idlen = u32_at(&take(&mut r, 4)?) as usize;
    if idlen > 64 {
        return Err("bad topic id length".into());
    }
    let found_id = String::from_utf8_lossy(&take(&mut r, idlen)?).into_owned();
    let rest = take(&mut r, 12)?;
    let found_partition = i32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
    let offset = i64::from_le_bytes(rest[4..12].try_into().expect("8 bytes"));
    let mut crc = [0u8; 4];
    r.read_exact(&mut crc).map_err(|e| format!("header: {e}"))?;
    if crc32fast::hash(&header) != u32::from_le_bytes(crc) {
        return Err("header checksum mismatch".into());
    }
    if found_topic != topic || found_partition != partition {
        return Err(format!(
            "snapshot is of {found_topic}/{found_partition}, not {topic}/{partition}"
        ));
    }
    if found_id != topic_id {
        return Err(format!(
            "it was written for another incarnation of topic {topic} (id {found_id}; the topic's \
             id is now {topic_id}): the topic was deleted and created again"
        ));
    }
    let engine = Engine::read_snapshot(config, r).map_err(|e| e.to_string())?;
    Ok(Some((engine, offset)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nowcast_window::{Aggregation, FeatureDef, Hop, Input, SourceDef, Window};

    const ID: &str = "hJ4m2X0ZQjW1wV6b8C9d1A";

    fn config() -> EngineConfig {
        EngineConfig {
            sources: vec![SourceDef {
                name: "tx".into(),
                allowed_lateness: 0,
            }],
            features: vec![FeatureDef {
                name: "n".into(),
                source: 0,
                column: 0,
                agg: Aggregation::Count,
                window: Window {
                    duration: 60_000,
                    hop: Hop::Tiled(1_000),
                },
            }],
        }
    }

    #[test]
    fn a_snapshot_is_read_back_and_a_bad_one_is_refused_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path(), "f", ID, 3, config()).unwrap().is_none());
        let mut e = Engine::new(config()).unwrap();
        e.apply("k", 0, 1_000, &[Input::Num(1.0)], None).unwrap();
        write(dir.path(), "f", ID, 3, 42, &e).unwrap();
        let (back, offset) = read(dir.path(), "f", ID, 3, config()).unwrap().unwrap();
        assert_eq!(offset, 42);
        assert_eq!(back.entities(), 1);

        let err = read(dir.path(), "g", ID, 3, config()).err().unwrap();
        assert!(err.contains("snapshot is of f/3, not g/3"), "{err}");
        let mut other = config();
        other.features[0].name = "m".into();
        assert!(
            read(dir.path(), "f", ID, 3, other).is_err(),
            "another configuration"
        );

        let file = path(dir.path(), 3);
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[18] ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        let err = read(dir.path(), "f", ID, 3, config()).err().unwrap();
        assert!(err.contains("header checksum mismatch"), "{err}");
        bytes[18] ^= 1;
        let n = bytes.len();
        bytes[n - 1] ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        assert!(
            read(dir.path(), "f", ID, 3, config()).is_err(),
            "body checksum"
        );
        std::fs::write(&file, b"NCK").unwrap();
        assert!(read(dir.path(), "f", ID, 3, config()).is_err(), "truncated");
    }

    #[test]
    fn a_snapshot_of_a_deleted_and_recreated_topic_is_refused() {
        // Regression: a snapshot was accepted whenever its offset fell inside the changelog's
        // range, and a topic created again under the same name reuses offsets from 0.
        let dir = tempfile::tempdir().unwrap();
        let mut e = Engine::new(config()).unwrap();
        e.apply("k", 0, 1_000, &[Input::Num(1.0)], None).unwrap();
        write(dir.path(), "f", ID, 3, 42, &e).unwrap();
        let err = read(dir.path(), "f", "Yq0EfJz8TqO9m3cOzL5xgQ", 3, config())
            .err()
            .unwrap();
        assert!(err.contains("another incarnation of topic f"), "{err}");
        assert!(err.contains(ID), "{err}");
    }
}
