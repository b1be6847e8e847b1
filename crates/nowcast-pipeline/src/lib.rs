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

/// Wall-clock milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
