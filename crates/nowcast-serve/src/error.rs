//! Errors: [`ApiError`], the JSON error body every failed request gets, and [`ServeError`],
//! why the server could not start or stopped.
//!
//! Every error response is `{"error": "<snake_case code>", "detail": "<human text>"}`. The codes
//! are a closed set ([`ErrorCode`]) so the OpenAPI document and clients can rely on them.

use std::net::SocketAddr;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::backend::BackendError;

/// The machine-readable code of an error response, with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 404: the entity has no state.
    UnknownEntity,
    /// 404: the entity's state lives in another instance (a Kafka partition this instance
    /// does not own); read it from a serving replica or the owning instance.
    NotOwned,
    /// 404: no route has this path (or metrics are disabled).
    NotFound,
    /// 405: the path exists but not with this method.
    MethodNotAllowed,
    /// 400: the body is not valid JSON.
    MalformedJson,
    /// 400: the body is JSON but not the expected shape.
    InvalidRequest,
    /// 400: more entities than `max_batch_entities` in one batch.
    TooManyEntities,
    /// 400: the body is empty or blank.
    EmptyBody,
    /// 400: a path parameter could not be decoded.
    InvalidPath,
    /// 400: the backend refused the request (e.g. a missing request-time field).
    BadRequest,
    /// 413: the body is larger than `max_body_bytes`.
    PayloadTooLarge,
    /// 415: the content type is not JSON.
    UnsupportedMediaType,
    /// 500: a bug.
    Internal,
    /// 503: the backend cannot answer now.
    Unavailable,
}

impl ErrorCode {
    /// Every code, in a stable order (for docs and tests).
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::UnknownEntity,
        ErrorCode::NotOwned,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::MalformedJson,
        ErrorCode::InvalidRequest,
        ErrorCode::TooManyEntities,
        ErrorCode::EmptyBody,
        ErrorCode::InvalidPath,
        ErrorCode::BadRequest,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::Internal,
        ErrorCode::Unavailable,
    ];

    /// The HTTP status this code is sent with.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::UnknownEntity | ErrorCode::NotOwned | ErrorCode::NotFound => {
                StatusCode::NOT_FOUND
            }
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MalformedJson
            | ErrorCode::InvalidRequest
            | ErrorCode::TooManyEntities
            | ErrorCode::EmptyBody
            | ErrorCode::InvalidPath
            | ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// A failed request: a code and a readable detail, sent as a JSON body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiError {
    /// What went wrong, for machines.
    #[serde(rename = "error")]
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub detail: String,
}

impl ApiError {
    /// An error with `code` and `detail`.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError {
            code,
            detail: detail.into(),
        }
    }

    /// A request body that serde_json could not read: a syntax error is `malformed_json`, a
    /// wrong shape `invalid_request`; the detail is serde's message with line and column.
    pub(crate) fn from_json(err: serde_json::Error) -> Self {
        let code = match err.classify() {
            serde_json::error::Category::Data => ErrorCode::InvalidRequest,
            _ => ErrorCode::MalformedJson,
        };
        ApiError::new(code, format!("request body: {err}"))
    }

    /// A body axum could not buffer: too large is 413, anything else 400.
    pub(crate) fn from_body(
        rejection: axum::extract::rejection::BytesRejection,
        max_body_bytes: usize,
    ) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "the body is larger than this server's limit of {max_body_bytes} bytes: split \
                     it into smaller requests (for a file of events, `nowcast ingest --input FILE` \
                     appends it with no size limit)"
                ),
            )
        } else {
            ApiError::new(ErrorCode::InvalidRequest, rejection.body_text())
        }
    }
}

impl From<BackendError> for ApiError {
    fn from(err: BackendError) -> Self {
        match err {
            BackendError::BadRequest(d) => ApiError::new(ErrorCode::BadRequest, d),
            BackendError::Unavailable(d) => ApiError::new(ErrorCode::Unavailable, d),
            BackendError::NotOwned(d) => ApiError::new(ErrorCode::NotOwned, d),
            BackendError::Internal(d) => ApiError::new(ErrorCode::Internal, d),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        crate::handlers::json_response(self.code.status(), &self, 64 + self.detail.len())
    }
}

/// Why [`serve`](crate::serve) could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is invalid.
    #[error("invalid serve config: `{field}` {detail}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// What is wrong and how to fix it.
        detail: &'static str,
    },
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("HTTP server failed")]
    Serve(#[source] std::io::Error),
}
