//! Shared test fixtures: a fake [`Backend`] with a fixed state and helpers to call a router
//! in-process with `tower::ServiceExt::oneshot`.
#![allow(dead_code)] // each test binary uses a different part

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use nowcast_core::{FeatureValue, Millis, RejectReason};
use nowcast_serve::*;
use serde_json::{Map, Value};
use tower::ServiceExt;

/// Known entities: `u1` and `u/2` (a key that needs percent-encoding in a path).
pub const KNOWN: [&str; 2] = ["u1", "u/2"];

/// An entity whose state lives in another instance (`not_owned`).
pub const ELSEWHERE: &str = "elsewhere";

/// A backend with fixed state: two known entities with three features in non-alphabetical
/// order; `predict` needs a numeric `amount` field, answers 503 for entity `down` and 500 for
/// entity `bug`; `ingest` accepts objects with a string `user` and fails wholesale for a body
/// starting with `#down` (503) or `#bug` (500). Entity [`ELSEWHERE`] is owned by another
/// instance. `/readyz` is 503 with `not_ready` as its reason when set.
#[derive(Default)]
pub struct FakeBackend {
    pub ingested: AtomicU64,
    pub not_ready: Option<&'static str>,
}

fn not_owned(entity: &str) -> BackendError {
    BackendError::NotOwned(format!(
        "entity `{entity}` is on partition 3, which this instance does not own (it owns 0, 1)"
    ))
}

impl FakeBackend {
    fn entries(now: Millis) -> Vec<FeatureEntry> {
        let _ = now;
        vec![
            FeatureEntry {
                name: "txn_count_5m".into(),
                value: FeatureValue::Num(3.0),
                age_ms: Some(1200),
            },
            FeatureEntry {
                name: "amount_mean_1h".into(),
                value: FeatureValue::Null,
                age_ms: None,
            },
            FeatureEntry {
                name: "last_amounts".into(),
                value: FeatureValue::List(vec![5.0, 2.5]),
                age_ms: Some(1200),
            },
        ]
    }
}

impl Backend for FakeBackend {
    fn features(&self, entity: &str, now: Millis) -> Result<Option<EntityFeatures>, BackendError> {
        if entity == ELSEWHERE {
            return Err(not_owned(entity));
        }
        Ok(KNOWN.contains(&entity).then(|| EntityFeatures {
            entity: entity.to_owned(),
            as_of: now,
            features: Self::entries(now),
        }))
    }

    fn health(&self) -> Health {
        let mut detail = Map::new();
        detail.insert(
            "kafka".into(),
            serde_json::json!({"partitions_owned": 2, "broker_reachable": true}),
        );
        Health {
            not_ready: self.not_ready.iter().map(|r| r.to_string()).collect(),
            detail,
        }
    }

    fn predict(
        &self,
        entity: &str,
        fields: &Map<String, Value>,
        now: Millis,
    ) -> Result<PredictOutput, BackendError> {
        match entity {
            "down" => return Err(BackendError::Unavailable("restoring state".into())),
            "bug" => return Err(BackendError::Internal("model input length mismatch".into())),
            ELSEWHERE => return Err(not_owned(entity)),
            _ => {}
        }
        let amount = match fields.get("amount") {
            None => return Err(BackendError::BadRequest("field `amount` is missing".into())),
            Some(v) => v.as_f64().ok_or_else(|| {
                BackendError::BadRequest(format!("field `amount` is {v}, not a number"))
            })?,
        };
        let known = KNOWN.contains(&entity);
        Ok(PredictOutput {
            entity: entity.to_owned(),
            entity_known: known,
            score: 0.25,
            model: "fraud".into(),
            model_version: "abc123".into(),
            features: vec![
                ("txn_count_5m".into(), if known { 3.0 } else { 0.0 }),
                ("amount".into(), amount),
            ],
            as_of: now,
        })
    }

    fn ingest(&self, body: &[u8]) -> Result<IngestOutcome, BackendError> {
        if body.starts_with(b"#down") {
            return Err(BackendError::Unavailable("input log is full".into()));
        }
        if body.starts_with(b"#bug") {
            return Err(BackendError::Internal("log writer gone".into()));
        }
        let mut outcome = IngestOutcome::default();
        for (i, line) in body.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let reject = match serde_json::from_slice::<Value>(line) {
                Ok(v) if v.get("user").and_then(Value::as_str).is_some() => None,
                Ok(v) if v.is_object() => Some((RejectReason::MissingKey, "no `user`".into())),
                Ok(_) => Some((RejectReason::Malformed, "not an object".into())),
                Err(e) => Some((RejectReason::Malformed, e.to_string())),
            };
            match reject {
                None => outcome.accepted += 1,
                Some((reason, detail)) => {
                    outcome.rejected += 1;
                    // Deliberately reports every error: the router must cap the list.
                    outcome.errors.push(IngestLineError {
                        line: i as u64 + 1,
                        reason,
                        detail,
                    });
                }
            }
        }
        self.ingested.fetch_add(outcome.accepted, Ordering::Relaxed);
        Ok(outcome)
    }

    fn feature_names(&self) -> Vec<String> {
        Self::entries(0).into_iter().map(|f| f.name).collect()
    }
}

/// A router over a fresh [`FakeBackend`] with `config`.
pub fn app_with(config: &ServeConfig, metrics: Option<PrometheusHandle>) -> Router {
    router(Arc::new(FakeBackend::default()), metrics, config)
}

/// A router over a fresh [`FakeBackend`] with the default config and no metrics.
pub fn app() -> Router {
    app_with(&ServeConfig::default(), None)
}

/// One response, fully read.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON; panics with the body text if it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a JSON error with `status` and `code`; returns the detail.
    pub fn assert_error(&self, status: StatusCode, code: &str) -> String {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert_eq!(
            self.headers["content-type"], "application/json",
            "error responses are JSON"
        );
        let v = self.json();
        assert_eq!(v["error"], code, "body: {v}");
        let detail = v["detail"].as_str().expect("detail is a string");
        assert!(!detail.is_empty());
        detail.to_owned()
    }
}

/// Sends one request to `app`.
pub async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    let response = app
        .clone()
        .oneshot(request.body(body.into()).unwrap())
        .await
        .expect("router is infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    Reply {
        status,
        headers,
        body: body.to_vec(),
    }
}

/// `GET uri`.
pub async fn get(app: &Router, uri: &str) -> Reply {
    send(app, "GET", uri, None, Body::empty()).await
}

/// `POST uri` with a JSON body.
pub async fn post_json(app: &Router, uri: &str, body: &str) -> Reply {
    send(app, "POST", uri, Some("application/json"), body.to_owned()).await
}
