//! The nowcast processor on the embedded default transport.
//!
//! ```text
//! events ──► embedded log (per source, entity-hash partitioned)
//!              │  one worker thread owns several partitions
//!              ▼
//!   decode (JSON) ──► window engine (per partition) ──► model (micro-batch) ──► outputs
//!     │ bad → dead letters        │ late → late output          predictions, features
//!     ▼                           ▼
//!   checkpoint: input offsets + output lengths + engine state, atomically, every interval
//! ```
//! Serving reads the same per-partition engines under a read lock (see [`runtime::Backend`]).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod checkpoint;
pub mod checkpointer;
pub mod decode;
pub mod formats;
pub mod gen;
pub mod json;
pub mod outputs;
pub mod plan;
pub mod runtime;
pub mod serving;
pub mod stats;
pub mod worker;

use std::path::Path;

pub use runtime::{Backend, Report, RunOptions, Runtime};

/// Errors of the processor.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The embedded log failed.
    #[error("input log: {0}")]
    Log(#[from] nowcast_log::LogError),
    /// The model failed to load or score.
    #[error("model: {0}")]
    Model(String),
    /// The window engine refused its configuration or state.
    #[error("state: {0}")]
    State(String),
    /// Stored data is inconsistent.
    #[error("{0}")]
    Corrupt(String),
    /// Another process has the data directory open (see [`lock_data_dir`]).
    #[error(
        "data directory {dir} is in use by {} (fix: stop that process first, or pass another --data-dir; to add events to a running pipeline, POST them to /v1/events on its serving address)",
        holder(*pid)
    )]
    DataDirInUse {
        /// The data directory.
        dir: String,
        /// The holder's process id, when it has written it into the lock file.
        pid: Option<u32>,
    },
    /// A schema or the schema registry is unusable (a local schema that does not parse, an
    /// unreachable registry under the `stop` policy).
    #[error("schema: {0}")]
    Schema(String),
}

impl PipelineError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> PipelineError {
        PipelineError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

fn holder(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("another nowcast process (pid {pid})"),
        None => "another nowcast process".to_string(),
    }
}

/// Takes the exclusive lock on a data directory (`<dir>/LOCK`, created with the directory if
/// needed) that every process writing there holds for its lifetime: `nowcast run`, `demo`
/// and `ingest` through [`Runtime::start`], a Kafka instance on its local store. The OS
/// releases it when the process exits or is killed.
///
/// # Errors
/// [`PipelineError::DataDirInUse`] naming the directory and the holder's pid while another
/// process (or another runtime in this one) holds it.
pub fn lock_data_dir(dir: &Path) -> Result<nowcast_log::DirLock, PipelineError> {
    nowcast_log::DirLock::acquire(dir).map_err(|e| match e {
        nowcast_log::LogError::Locked { dir, pid } => PipelineError::DataDirInUse {
            dir: dir.display().to_string(),
            pid,
        },
        e => PipelineError::Log(e),
    })
}

/// Wall-clock milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
