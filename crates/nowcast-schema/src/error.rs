//! Errors: a refused record (`DecodeError`, a dead letter) and the crate's own failures
//! (`SchemaError`: loading schemas, talking to the registry).

use nowcast_core::RejectReason;

/// A refused record: the reason and what exactly was wrong. Becomes a dead letter.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError {
    /// Machine-readable reason.
    pub reason: RejectReason,
    /// Readable detail.
    pub detail: String,
}

impl DecodeError {
    /// A refusal for `reason`.
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        DecodeError {
            reason,
            detail: detail.into(),
        }
    }

    pub(crate) fn corrupt(detail: impl Into<String>) -> Self {
        DecodeError::new(RejectReason::CorruptPayload, detail)
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason.as_str(), self.detail)
    }
}

/// Failures outside a single record.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A local schema file could not be read.
    #[error("cannot read schema file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A schema's text is not a valid schema of its format.
    #[error("{origin}: not a valid {format} schema: {detail}")]
    Parse {
        /// Where the schema came from (a file, or a registry id or subject).
        origin: String,
        /// `Avro` or `Protobuf`.
        format: &'static str,
        /// The parser's message.
        detail: String,
    },
    /// A schema cannot feed the pipeline (a missing field, an unusable type).
    #[error("{origin}: {detail}")]
    Unusable {
        /// Where the schema came from.
        origin: String,
        /// The reason for refusing it.
        reason: RejectReason,
        /// What is wrong and how to fix it.
        detail: String,
    },
    /// The registry answered that it does not know the subject, version or id.
    #[error("schema registry {url}: {what} not found")]
    NotFound {
        /// The registry.
        url: String,
        /// What was asked for.
        what: String,
    },
    /// The registry could not be reached, or kept failing, within the retry budget.
    #[error("schema registry {url} unavailable after {attempts} attempt(s): {detail}")]
    Unavailable {
        /// The registry.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        detail: String,
    },
    /// The registry refused the request (bad credentials, incompatible schema, bad request).
    #[error("schema registry {url} refused {what}: HTTP {status}: {detail}")]
    Refused {
        /// The registry.
        url: String,
        /// The request.
        what: String,
        /// HTTP status.
        status: u16,
        /// The registry's message.
        detail: String,
    },
    /// The registry's client settings are unusable (a CA file that does not parse).
    #[error("schema registry settings: {0}")]
    Config(String),
}

impl SchemaError {
    /// The dead-letter reason a record gets when resolving its schema failed this way.
    pub fn reason(&self) -> RejectReason {
        match self {
            SchemaError::NotFound { .. } => RejectReason::UnknownSchema,
            SchemaError::Unavailable { .. } => RejectReason::RegistryUnavailable,
            SchemaError::Unusable { reason, .. } => *reason,
            SchemaError::Refused { .. } | SchemaError::Config(_) => {
                RejectReason::RegistryUnavailable
            }
            SchemaError::Read { .. } | SchemaError::Parse { .. } => RejectReason::BadSchema,
        }
    }
}
