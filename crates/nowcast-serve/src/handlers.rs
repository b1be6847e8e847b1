//! The request handlers. Each reads the wall clock once at its start (`now`), decodes the body
//! itself (so every failure is a JSON [`ApiError`], never an axum plain-text rejection), calls
//! the backend and writes the answer with serde_json into one pre-sized buffer.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use nowcast_core::Millis;
use serde::{Deserialize, Serialize};

use crate::backend::{feature_map, EntityFeatures, FeatureEntry, MAX_REPORTED_ERRORS};
use crate::error::{ApiError, ErrorCode};
use crate::Backend;

/// What every handler shares: the backend and the request limits.
pub(crate) struct Shared<B> {
    pub(crate) backend: Arc<B>,
    pub(crate) metrics: Option<PrometheusHandle>,
    pub(crate) max_batch_entities: usize,
    /// The body limit (`max_body_bytes`), named in a 413's detail.
    pub(crate) max_body_bytes: usize,
}

type AppState<B> = State<Arc<Shared<B>>>;
type Reply = Result<Response, ApiError>;

/// `GET /v1/features/{entity}`.
pub(crate) async fn features_one<B: Backend>(
    State(s): AppState<B>,
    entity: Result<Path<String>, PathRejection>,
) -> Reply {
    let now = now_ms();
    let Path(entity) = entity.map_err(|r| ApiError::new(ErrorCode::InvalidPath, r.body_text()))?;
    match s.backend.features(&entity, now)? {
        Some(found) => Ok(json_response(
            StatusCode::OK,
            &found,
            features_size(&found.features),
        )),
        None => Err(ApiError::new(
            ErrorCode::UnknownEntity,
            format!("no state for entity `{entity}`"),
        )),
    }
}

/// An entity key in a request body, borrowed from the body unless it has escapes.
#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest<'a> {
    #[serde(borrow)]
    entities: Vec<Key<'a>>,
}

#[derive(Serialize)]
struct BatchResponse<'a> {
    as_of: Millis,
    results: BatchResults<'a>,
}

/// One entity's answer: its features, none (unknown), or why this server cannot answer for
/// it (e.g. `not_owned`).
type Found = Result<Option<EntityFeatures>, ApiError>;

struct BatchResults<'a>(&'a [(Key<'a>, Found)]);

#[derive(Serialize)]
struct BatchItem<'a> {
    entity: &'a str,
    found: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    features: Option<Features<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a ApiError>,
}

struct Features<'a>(&'a [FeatureEntry]);

impl Serialize for Features<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        feature_map(self.0, serializer)
    }
}

impl Serialize for BatchResults<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(key, found)| {
            let (features, error) = match found {
                Ok(f) => (f.as_ref(), None),
                Err(e) => (None, Some(e)),
            };
            BatchItem {
                entity: &key.0,
                found: features.is_some(),
                features: features.map(|f| Features(&f.features)),
                error,
            }
        }))
    }
}

/// `POST /v1/features`.
pub(crate) async fn features_batch<B: Backend>(
    State(s): AppState<B>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let now = now_ms();
    require_json(&headers)?;
    let body = body.map_err(|r| ApiError::from_body(r, s.max_body_bytes))?;
    let request: BatchRequest = serde_json::from_slice(&body).map_err(ApiError::from_json)?;
    if request.entities.len() > s.max_batch_entities {
        return Err(ApiError::new(
            ErrorCode::TooManyEntities,
            format!(
                "{} entities in one request; at most {} are allowed",
                request.entities.len(),
                s.max_batch_entities
            ),
        ));
    }
    let mut size = 32;
    let results: Vec<_> = request
        .entities
        .into_iter()
        .map(|key| {
            let found = s.backend.features(&key.0, now).map_err(ApiError::from);
            size += 48
                + key.0.len()
                + match &found {
                    Ok(f) => f.as_ref().map_or(0, |f| features_size(&f.features)),
                    Err(e) => 48 + e.detail.len(),
                };
            (key, found)
        })
        .collect();
    let response = BatchResponse {
        as_of: now,
        results: BatchResults(&results),
    };
    Ok(json_response(StatusCode::OK, &response, size))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PredictRequest<'a> {
    #[serde(borrow)]
    entity: Cow<'a, str>,
    #[serde(default)]
    fields: serde_json::Map<String, serde_json::Value>,
}

/// `POST /v1/predict`.
pub(crate) async fn predict<B: Backend>(
    State(s): AppState<B>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let now = now_ms();
    require_json(&headers)?;
    let body = body.map_err(|r| ApiError::from_body(r, s.max_body_bytes))?;
    let request: PredictRequest = serde_json::from_slice(&body).map_err(ApiError::from_json)?;
    if request.entity.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "`entity` must not be empty",
        ));
    }
    let output = s.backend.predict(&request.entity, &request.fields, now)?;
    let size = 160 + output.entity.len() + output.features.len() * 48;
    Ok(json_response(StatusCode::OK, &output, size))
}

/// `POST /v1/events`. Any content type is accepted (JSON lines have no registered one); the
/// backend runs on a blocking thread because ingest writes to the input log.
pub(crate) async fn events<B: Backend>(
    State(s): AppState<B>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let body = body.map_err(|r| ApiError::from_body(r, s.max_body_bytes))?;
    // A line that is not UTF-8 is one bad line (the decoder refuses it and it is
    // dead-lettered with its reason), not a reason to refuse the lines around it.
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            ErrorCode::EmptyBody,
            "body is empty; send one JSON event per line",
        ));
    }
    let backend = Arc::clone(&s.backend);
    let mut outcome = tokio::task::spawn_blocking(move || backend.ingest(&body))
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("ingest task failed: {e}")))??;
    outcome.errors.truncate(MAX_REPORTED_ERRORS);
    let size = 64 + outcome.errors.len() * 128;
    Ok(json_response(StatusCode::OK, &outcome, size))
}

/// `GET /metrics`.
pub(crate) async fn metrics<B: Backend>(State(s): AppState<B>) -> Reply {
    let handle = s.metrics.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            "metrics are not enabled on this server",
        )
    })?;
    let mut response = Response::new(Body::from(handle.render()));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// `GET /healthz`: 200 while the process serves requests, with the backend's detail.
pub(crate) async fn healthz<B: Backend>(State(s): AppState<B>) -> Response {
    let health = s.backend.health();
    let mut body = serde_json::Map::with_capacity(1 + health.detail.len());
    body.insert("status".into(), "ok".into());
    body.extend(health.detail);
    json_response(StatusCode::OK, &body, 256)
}

/// `GET /readyz`: 200 when the backend is ready for traffic, else 503 with the reasons.
pub(crate) async fn readyz<B: Backend>(State(s): AppState<B>) -> Response {
    let health = s.backend.health();
    let mut body = serde_json::Map::with_capacity(2 + health.detail.len());
    let status = if health.not_ready.is_empty() {
        body.insert("status".into(), "ready".into());
        StatusCode::OK
    } else {
        body.insert("status".into(), "not_ready".into());
        body.insert("reasons".into(), health.not_ready.into());
        StatusCode::SERVICE_UNAVAILABLE
    };
    body.extend(health.detail);
    json_response(status, &body, 512)
}

/// Fallback for paths no route matches.
pub(crate) async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("no route for {method} {}", uri.path()),
    )
}

/// Fallback for a known path with a method it does not serve (axum adds the `Allow` header).
pub(crate) async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("method {method} is not allowed on {}", uri.path()),
    )
}

/// Refuses a body declared as something other than JSON; a missing content type is accepted.
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Ok(());
    };
    let mime = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    let is_json = mime.eq_ignore_ascii_case("application/json")
        || (mime.len() > 5
            && mime.is_char_boundary(mime.len() - 5)
            && mime[mime.len() - 5..].eq_ignore_ascii_case("+json"));
    if is_json {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("content type `{mime}` is not JSON; send `application/json`"),
        ))
    }
}

/// Rough size of a features object, to pre-size the output buffer.
fn features_size(features: &[FeatureEntry]) -> usize {
    64 + features
        .iter()
        .map(|f| {
            let list = match &f.value {
                nowcast_core::FeatureValue::List(items) => items.len() * 24,
                _ => 0,
            };
            f.name.len() + 56 + list
        })
        .sum::<usize>()
}

/// Serialises `value` into a buffer of `capacity` bytes and wraps it as a JSON response.
pub(crate) fn json_response<T: Serialize + ?Sized>(
    status: StatusCode,
    value: &T,
    capacity: usize,
) -> Response {
    let mut buf = Vec::with_capacity(capacity);
    if serde_json::to_writer(&mut buf, value).is_err() {
        // Our types serialise infallibly into a Vec; this is a broken invariant, not a panic.
        return static_json(
            StatusCode::INTERNAL_SERVER_ERROR,
            br#"{"error":"internal","detail":"response serialisation failed"}"#,
        );
    }
    with_json_type(status, Body::from(buf))
}

fn static_json(status: StatusCode, body: &'static [u8]) -> Response {
    with_json_type(status, Body::from(body))
}

fn with_json_type(status: StatusCode, body: Body) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Wall-clock time in epoch milliseconds.
fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}
