//! Partition checkpoints: input offsets, output lengths and the window engine's state, written
//! atomically (temporary file, fsync, rename, fsync of the directory).
//!
//! Format (little-endian), version 1:
//! `b"NCCK"`, `u32` version, `u32` source count, that many `u64` input offsets, 4 × `u64`
//! output lengths, `u64` records processed, `i64` stream time, `u32` CRC32 of everything before it, then the
//! engine snapshot (its own versioned, checksummed format).

use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use nowcast_window::{Engine, EngineConfig};

use crate::PipelineError;

const MAGIC: &[u8; 4] = b"NCCK";
const VERSION: u32 = 1;

/// What a checkpoint records besides the engine state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    /// Next input offset per source.
    pub offsets: Vec<u64>,
    /// Durable output lengths (see [`crate::outputs::KINDS`]).
    pub output_lens: [u64; 4],
    /// Records processed so far in this partition (drives deterministic eviction).
    pub processed: u64,
    /// Newest applied event time in this partition (the stream time eviction is measured
    /// against), `i64::MIN` before the first event.
    pub stream_time: i64,
}

/// The checkpoint file of a partition.
pub fn path(state_dir: &Path, partition: u32) -> PathBuf {
    state_dir.join(format!("p-{partition:04}.ckpt"))
}

/// The checkpoint header for `pos` (everything before the engine snapshot), with room for
/// the snapshot of `entities` entities behind it.
pub fn header(pos: &Position, entities: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(entities * 512 + 128);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(pos.offsets.len() as u32).to_le_bytes());
    for o in &pos.offsets {
        out.extend_from_slice(&o.to_le_bytes());
    }
    for l in &pos.output_lens {
        out.extend_from_slice(&l.to_le_bytes());
    }
    out.extend_from_slice(&pos.processed.to_le_bytes());
    out.extend_from_slice(&pos.stream_time.to_le_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Encodes a checkpoint (header + engine snapshot) into memory in one go. The worker instead
/// writes the snapshot a slice at a time behind [`header`] (see `worker`); this is for the
/// final checkpoint and for tests.
pub fn encode(pos: &Position, engine: &Engine) -> Result<Vec<u8>, PipelineError> {
    let mut out = header(pos, engine.entities());
    engine
        .write_snapshot(&mut out)
        .map_err(|e| PipelineError::State(format!("encoding the checkpoint: {e}")))?;
    Ok(out)
}

/// Makes an encoded checkpoint durable: fsyncs the output files it refers to (so the lengths
/// it records are on disk), writes it to a temporary file, fsyncs, renames it over the previous
/// checkpoint and fsyncs the directory. A crash at any point leaves the previous checkpoint or
/// this one, never a mix.
pub fn persist(
    state_dir: &Path,
    partition: u32,
    bytes: &[u8],
    outputs: &[PathBuf],
) -> Result<(), PipelineError> {
    for p in outputs {
        let f = File::open(p).map_err(|e| PipelineError::io(p, e))?;
        f.sync_data().map_err(|e| PipelineError::io(p, e))?;
    }
    fs::create_dir_all(state_dir).map_err(|e| PipelineError::io(state_dir, e))?;
    let final_path = path(state_dir, partition);
    let tmp = final_path.with_extension("ckpt.tmp");
    let io = |e| PipelineError::io(&tmp, e);
    let mut file = File::create(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    fs::rename(&tmp, &final_path).map_err(|e| PipelineError::io(&final_path, e))?;
    if let Ok(dir) = File::open(state_dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Reads a partition's checkpoint; `Ok(None)` when there is none yet.
pub fn read(
    state_dir: &Path,
    partition: u32,
    sources: usize,
    config: EngineConfig,
) -> Result<Option<(Position, Engine)>, PipelineError> {
    let p = path(state_dir, partition);
    let file = match File::open(&p) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(PipelineError::io(&p, e)),
    };
    let corrupt = |what: &str| {
        PipelineError::Corrupt(format!(
            "{}: {what}; remove the state directory to rebuild from the log",
            p.display()
        ))
    };
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut fixed = [0u8; 12];
    r.read_exact(&mut fixed)
        .map_err(|_| corrupt("truncated header"))?;
    if &fixed[0..4] != MAGIC {
        return Err(corrupt("not a nowcast checkpoint"));
    }
    let version = u32::from_le_bytes(fixed[4..8].try_into().unwrap());
    if version != VERSION {
        return Err(corrupt(&format!(
            "checkpoint version {version}, this build reads {VERSION}"
        )));
    }
    let n = u32::from_le_bytes(fixed[8..12].try_into().unwrap()) as usize;
    if n != sources {
        return Err(corrupt(&format!(
            "checkpoint has {n} sources, the spec has {sources}"
        )));
    }
    let mut rest = vec![0u8; n * 8 + 4 * 8 + 8 + 8 + 4];
    r.read_exact(&mut rest)
        .map_err(|_| corrupt("truncated header"))?;
    let mut header = fixed.to_vec();
    header.extend_from_slice(&rest[..rest.len() - 4]);
    let crc = u32::from_le_bytes(rest[rest.len() - 4..].try_into().unwrap());
    if crc32fast::hash(&header) != crc {
        return Err(corrupt("header checksum mismatch"));
    }
    let u64_at = |i: usize| u64::from_le_bytes(rest[i * 8..i * 8 + 8].try_into().unwrap());
    let offsets = (0..n).map(u64_at).collect();
    let output_lens = [u64_at(n), u64_at(n + 1), u64_at(n + 2), u64_at(n + 3)];
    let processed = u64_at(n + 4);
    let stream_time = u64_at(n + 5) as i64;
    let engine = Engine::read_snapshot(config, r)
        .map_err(|e| PipelineError::State(format!("{}: {e}", p.display())))?;
    Ok(Some((
        Position {
            offsets,
            output_lens,
            processed,
            stream_time,
        },
        engine,
    )))
}
