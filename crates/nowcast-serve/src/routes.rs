//! The route table and the router built from it.
//!
//! [`ROUTES`] is the single list of (method, path) pairs: the router is built from it and the
//! OpenAPI test checks it against `openapi.json` in both directions.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::handlers::{self, Shared};
use crate::{Backend, ServeConfig};

/// Which handler serves a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteId {
    /// `GET /v1/features/{entity}`: one entity's features.
    FeaturesOne,
    /// `POST /v1/features`: many entities' features.
    FeaturesBatch,
    /// `POST /v1/predict`: score one entity.
    Predict,
    /// `POST /v1/events`: ingest JSON lines.
    Events,
    /// `GET /metrics`: Prometheus text.
    Metrics,
    /// `GET /healthz`: liveness.
    Health,
    /// `GET /readyz`: readiness.
    Ready,
}

/// One route: an HTTP method, a path template (axum syntax, which is also OpenAPI's) and its
/// handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Upper-case HTTP method.
    pub method: &'static str,
    /// Path template, e.g. `/v1/features/{entity}`; also the `route` metric label.
    pub path: &'static str,
    /// The handler.
    pub id: RouteId,
}

/// Every route the API serves. `HEAD` is served implicitly for every `GET`.
pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/v1/features/{entity}",
        id: RouteId::FeaturesOne,
    },
    Route {
        method: "POST",
        path: "/v1/features",
        id: RouteId::FeaturesBatch,
    },
    Route {
        method: "POST",
        path: "/v1/predict",
        id: RouteId::Predict,
    },
    Route {
        method: "POST",
        path: "/v1/events",
        id: RouteId::Events,
    },
    Route {
        method: "GET",
        path: "/metrics",
        id: RouteId::Metrics,
    },
    Route {
        method: "GET",
        path: "/healthz",
        id: RouteId::Health,
    },
    Route {
        method: "GET",
        path: "/readyz",
        id: RouteId::Ready,
    },
];

/// Builds the API router over `backend`. `/metrics` renders `metrics` (404 when `None`).
///
/// Every response, including rejections, unknown paths (404) and wrong methods (405), has a
/// JSON body; see [`ApiError`](crate::ApiError).
///
/// # Panics
///
/// Never for the built-in [`ROUTES`] (a test builds the router); the checks are invariants.
pub fn router<B: Backend>(
    backend: Arc<B>,
    metrics: Option<PrometheusHandle>,
    config: &ServeConfig,
) -> Router {
    crate::metrics::describe();
    let shared = Arc::new(Shared {
        backend,
        metrics,
        max_batch_entities: config.max_batch_entities,
        max_body_bytes: config.max_body_bytes,
    });
    let mut router = Router::new();
    for route in ROUTES {
        let method = Method::from_bytes(route.method.as_bytes()).expect("route method is valid");
        let filter = MethodFilter::try_from(method).expect("route method is a standard method");
        router = router.route(route.path, endpoint::<B>(route.id, filter));
    }
    router
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(axum::middleware::from_fn(crate::metrics::track))
        .with_state(shared)
}

/// The handler of `id`, answering `filter`.
fn endpoint<B: Backend>(id: RouteId, filter: MethodFilter) -> MethodRouter<Arc<Shared<B>>> {
    match id {
        RouteId::FeaturesOne => on(filter, handlers::features_one::<B>),
        RouteId::FeaturesBatch => on(filter, handlers::features_batch::<B>),
        RouteId::Predict => on(filter, handlers::predict::<B>),
        RouteId::Events => on(filter, handlers::events::<B>),
        RouteId::Metrics => on(filter, handlers::metrics::<B>),
        RouteId::Health => on(filter, handlers::healthz::<B>),
        RouteId::Ready => on(filter, handlers::readyz::<B>),
    }
}
