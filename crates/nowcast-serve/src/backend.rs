//! The contract between the HTTP layer and the engine: the [`Backend`] trait and the values it
//! returns. The pipeline crate implements it; this crate only calls it.
//!
//! Each value's `Serialize` form is exactly the JSON body the API returns for it, so ordered
//! name → value lists are written as JSON objects in the backend's order.

use nowcast_core::{FeatureValue, Millis, RejectReason};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

/// The most line errors an ingest response reports; later ones are only counted.
pub const MAX_REPORTED_ERRORS: usize = 100;

/// One feature of one entity, as served.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureEntry {
    /// Feature name, as declared in the spec.
    pub name: String,
    /// Its value at the request time.
    pub value: FeatureValue,
    /// Request time minus the event time of the newest event of the feature's source applied
    /// for this entity; `None` when that source has sent no event for the entity.
    pub age_ms: Option<i64>,
}

/// All features of one entity, evaluated at one time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntityFeatures {
    /// The entity key.
    pub entity: String,
    /// The evaluation time (the request time).
    pub as_of: Millis,
    /// The features in spec order; serialised as an object `name → {value, age_ms}`.
    #[serde(serialize_with = "feature_map")]
    pub features: Vec<FeatureEntry>,
}

/// The score of one entity and the model inputs that produced it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PredictOutput {
    /// The entity key.
    pub entity: String,
    /// False when the entity has no state and was scored on empty windows.
    pub entity_known: bool,
    /// The model's output.
    pub score: f64,
    /// Model name.
    pub model: String,
    /// Model version (e.g. a content hash).
    pub model_version: String,
    /// The model inputs as used, in model input order; serialised as an object `name → value`.
    #[serde(serialize_with = "number_map")]
    pub features: Vec<(String, f64)>,
    /// The evaluation time (the request time).
    pub as_of: Millis,
}

/// What happened to an ingested body of JSON lines.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct IngestOutcome {
    /// Lines appended to the input log.
    pub accepted: u64,
    /// Lines refused (and dead-lettered).
    pub rejected: u64,
    /// The first [`MAX_REPORTED_ERRORS`] refused lines.
    pub errors: Vec<IngestLineError>,
}

/// Why one ingested line was refused.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestLineError {
    /// 1-based line number in the request body.
    pub line: u64,
    /// Machine-readable reason, serialised in snake_case (`malformed`, `missing_key`, …).
    pub reason: RejectReason,
    /// What exactly was wrong.
    pub detail: String,
}

/// A failed backend call. Each kind maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackendError {
    /// The request is wrong (e.g. a request-time field is missing); HTTP 400. The text names
    /// the field and what was expected.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The backend cannot answer now but may later (e.g. still restoring state); HTTP 503.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The entity's state lives elsewhere (a Kafka instance asked about an entity of a
    /// partition it does not own); HTTP 404 `not_owned`. The text names the entity's
    /// partition, the partitions this instance owns and where to read it instead.
    #[error("not owned here: {0}")]
    NotOwned(String),
    /// A bug or a broken invariant in the backend; HTTP 500.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What `GET /healthz` and `GET /readyz` report besides liveness.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Health {
    /// Why this instance should not receive traffic now; empty when it is ready.
    pub not_ready: Vec<String>,
    /// Detail added to both answers as top-level members (e.g. `kafka → {…}`).
    pub detail: serde_json::Map<String, serde_json::Value>,
}

/// The engine as the HTTP layer sees it.
///
/// `features` and `predict` are called directly on the async runtime's worker threads, so they
/// must answer from memory without blocking (a lock held for microseconds is fine; I/O is
/// not). `ingest` is called on a blocking thread and may write to disk.
pub trait Backend: Send + Sync + 'static {
    /// Features of one entity evaluated at request time `now`; `Ok(None)` if the entity is
    /// unknown, [`BackendError::NotOwned`] if its state lives in another instance.
    fn features(&self, entity: &str, now: Millis) -> Result<Option<EntityFeatures>, BackendError>;

    /// Score an entity with its current stream features plus request-time `fields` (a JSON
    /// object, e.g. the transaction being authorised). Unknown entities are scored on empty
    /// windows (`entity_known = false`), but an entity whose state lives in another instance
    /// is [`BackendError::NotOwned`], never scored on empty windows. A missing or ill-typed
    /// request-time field is [`BackendError::BadRequest`] naming the field.
    fn predict(
        &self,
        entity: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
        now: Millis,
    ) -> Result<PredictOutput, BackendError>;

    /// Ingest JSON lines (one event per line) into the pipeline's input log. Bad lines are
    /// dead-lettered by the backend and reported (at most [`MAX_REPORTED_ERRORS`] of them);
    /// good lines are accepted. The body is valid UTF-8 and not blank.
    fn ingest(&self, body: &[u8]) -> Result<IngestOutcome, BackendError>;

    /// Names of the features, in spec order (for docs and validation).
    fn feature_names(&self) -> Vec<String>;

    /// Readiness and detail for `GET /healthz` and `GET /readyz`; called on the async
    /// runtime, so it must answer from memory. By default: ready, no detail.
    fn health(&self) -> Health {
        Health::default()
    }
}

/// Serialises features as an ordered object `name → {"value": …, "age_ms": …}`.
pub(crate) fn feature_map<S: Serializer>(
    features: &[FeatureEntry],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Entry<'a> {
        value: &'a FeatureValue,
        age_ms: Option<i64>,
    }
    let mut map = serializer.serialize_map(Some(features.len()))?;
    for f in features {
        map.serialize_entry(
            &f.name,
            &Entry {
                value: &f.value,
                age_ms: f.age_ms,
            },
        )?;
    }
    map.end()
}

/// Serialises `(name, number)` pairs as an ordered object `name → number`.
fn number_map<S: Serializer>(pairs: &[(String, f64)], serializer: S) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(pairs.len()))?;
    for (name, value) in pairs {
        map.serialize_entry(name, value)?;
    }
    map.end()
}
