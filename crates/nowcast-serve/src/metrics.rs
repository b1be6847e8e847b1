//! Request metrics: one histogram of latency and one counter of responses, both labelled by
//! the route template (never the entity) so the label set stays small and fixed.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{counter, describe_counter, describe_histogram, histogram, SharedString, Unit};

use crate::routes::ROUTES;

/// Histogram of request latency in seconds, labelled `route`.
pub const REQUEST_DURATION_SECONDS: &str = "nowcast_serving_request_duration_seconds";
/// Counter of responses, labelled `route` and `status`.
pub const REQUESTS_TOTAL: &str = "nowcast_serving_requests_total";
/// The `route` label of requests whose path matches no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Registers descriptions and units of the serving metrics with the installed recorder.
pub fn describe() {
    describe_histogram!(
        REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Time from request start to response, by route template."
    );
    describe_counter!(
        REQUESTS_TOTAL,
        "HTTP responses, by route template and status code."
    );
}

/// Middleware: times the request and counts its response.
pub(crate) async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, |p| route_label(p.as_str()));
    let response = next.run(req).await;
    let status = status_label(response.status());
    histogram!(REQUEST_DURATION_SECONDS, "route" => route).record(start.elapsed().as_secs_f64());
    counter!(REQUESTS_TOTAL, "route" => route, "status" => status).increment(1);
    response
}

/// The static route template for a matched path.
fn route_label(matched: &str) -> &'static str {
    ROUTES
        .iter()
        .find(|r| r.path == matched)
        .map_or(UNMATCHED_ROUTE, |r| r.path)
}

/// The status code as a label, without allocating for the codes this API sends.
fn status_label(status: StatusCode) -> SharedString {
    let text = match status.as_u16() {
        200 => "200",
        400 => "400",
        404 => "404",
        405 => "405",
        413 => "413",
        415 => "415",
        500 => "500",
        503 => "503",
        other => return SharedString::from_owned(other.to_string()),
    };
    SharedString::const_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_templates() {
        assert_eq!(
            route_label("/v1/features/{entity}"),
            "/v1/features/{entity}"
        );
        assert_eq!(route_label("/nope"), UNMATCHED_ROUTE);
        assert_eq!(&*status_label(StatusCode::OK), "200");
        assert_eq!(&*status_label(StatusCode::IM_A_TEAPOT), "418");
    }
}
