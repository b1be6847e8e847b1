//! The nowcast HTTP API: serve an entity's current features, score an entity with a request's
//! fields, and ingest events, over any engine that implements [`Backend`].
//!
//! | route | what |
//! |---|---|
//! | `GET /v1/features/{entity}` | one entity's features (404 `unknown_entity`, or `not_owned` when another instance holds it) |
//! | `POST /v1/features` | `{"entities": [..]}` → features of each (an item another instance holds carries an `error`) |
//! | `POST /v1/predict` | `{"entity": .., "fields": {..}}` → score and model inputs (404 `not_owned` as above) |
//! | `POST /v1/events` | JSON lines → accepted / rejected counts and line errors |
//! | `GET /metrics` | Prometheus text |
//! | `GET /healthz` | liveness: always 200 `{"status": "ok", …}` with the backend's detail |
//! | `GET /readyz` | readiness: 200 `{"status": "ready", …}`, or 503 `{"status": "not_ready", "reasons": [..], …}` |
//!
//! `openapi.json` beside this crate's `Cargo.toml` documents every body; a test keeps it in
//! step with [`ROUTES`] and with real responses. Every error is a JSON [`ApiError`].
//!
//! ```
//! use std::sync::Arc;
//! use nowcast_core::Millis;
//! use nowcast_serve::*;
//!
//! struct Empty;
//! impl Backend for Empty {
//!     fn features(&self, _: &str, _: Millis) -> Result<Option<EntityFeatures>, BackendError> {
//!         Ok(None)
//!     }
//!     fn predict(
//!         &self,
//!         entity: &str,
//!         _: &serde_json::Map<String, serde_json::Value>,
//!         now: Millis,
//!     ) -> Result<PredictOutput, BackendError> {
//!         Ok(PredictOutput {
//!             entity: entity.to_owned(),
//!             entity_known: false,
//!             score: 0.0,
//!             model: "constant".into(),
//!             model_version: "1".into(),
//!             features: vec![],
//!             as_of: now,
//!         })
//!     }
//!     fn ingest(&self, _: &[u8]) -> Result<IngestOutcome, BackendError> {
//!         Err(BackendError::Unavailable("read-only".into()))
//!     }
//!     fn feature_names(&self) -> Vec<String> { vec![] }
//! }
//!
//! let app: axum::Router = router(Arc::new(Empty), None, &ServeConfig::default());
//! # drop(app);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backend;
mod config;
mod error;
mod handlers;
pub mod metrics;
mod routes;
mod server;

pub use backend::{
    Backend, BackendError, EntityFeatures, FeatureEntry, Health, IngestLineError, IngestOutcome,
    PredictOutput, MAX_REPORTED_ERRORS,
};
pub use config::ServeConfig;
pub use error::{ApiError, ErrorCode, ServeError};
pub use routes::{router, Route, RouteId, ROUTES};
pub use server::{serve, serve_on};
