//! The crate's one error type: configuration problems (each names the feature or source and the
//! fix) and snapshot problems (bad magic, unsupported version, configuration mismatch, corrupt or
//! truncated bytes, I/O).

use thiserror::Error;

/// Everything that can go wrong building an [`Engine`](crate::Engine) or moving its state through
/// a snapshot. Bad snapshot bytes always produce an error, never a panic.
#[derive(Debug, Error)]
pub enum WindowError {
    /// A feature definition is invalid. `problem` says what is wrong and how to fix it.
    #[error("feature `{feature}`: {problem}")]
    InvalidFeature {
        /// The feature's name.
        feature: String,
        /// What is wrong and the fix.
        problem: String,
    },
    /// A source definition is invalid. `problem` says what is wrong and how to fix it.
    #[error("source `{source_name}`: {problem}")]
    InvalidSource {
        /// The source's name.
        source_name: String,
        /// What is wrong and the fix.
        problem: String,
    },
    /// The bytes do not start with the snapshot magic: they are not a window-engine snapshot.
    #[error(
        "not a window snapshot (bad magic bytes); pass a file written by Engine::write_snapshot"
    )]
    BadMagic,
    /// The snapshot or entity record was written by a format version this build cannot read.
    #[error(
        "snapshot format version {found} is not supported (this build reads versions {oldest} \
         to {newest})"
    )]
    UnsupportedVersion {
        /// The version found in the snapshot.
        found: u32,
        /// The oldest version this build reads.
        oldest: u32,
        /// The version this build writes (and the newest it reads).
        newest: u32,
    },
    /// The snapshot was written for a different configuration (sources, features or windows).
    #[error(
        "snapshot was written for a different configuration (fingerprint {found:016x}, this \
         configuration {expected:016x}); restore with the configuration it was written with, or \
         start without the snapshot"
    )]
    ConfigMismatch {
        /// Fingerprint of the configuration passed to `read_snapshot`.
        expected: u64,
        /// Fingerprint stored in the snapshot.
        found: u64,
    },
    /// The snapshot is truncated or its bytes are damaged (checksum or structure).
    #[error("snapshot is corrupt or truncated: {detail}")]
    Corrupt {
        /// What was found wrong.
        detail: String,
    },
    /// Reading or writing the underlying stream failed.
    #[error("snapshot I/O failed")]
    Io(#[from] std::io::Error),
}

impl WindowError {
    pub(crate) fn feature(feature: &str, problem: impl Into<String>) -> WindowError {
        WindowError::InvalidFeature {
            feature: feature.to_owned(),
            problem: problem.into(),
        }
    }

    pub(crate) fn corrupt(detail: impl Into<String>) -> WindowError {
        WindowError::Corrupt {
            detail: detail.into(),
        }
    }
}
