//! The serving metrics, through a globally installed Prometheus recorder (its own test binary,
//! so the global recorder touches no other test).

mod common;

use axum::body::Body;
use common::*;
use metrics_exporter_prometheus::PrometheusBuilder;
use nowcast_serve::ServeConfig;

#[tokio::test]
async fn requests_are_counted_and_timed_by_route_template() {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .expect("first recorder in this process");
    let app = app_with(&ServeConfig::default(), Some(handle));
    get(&app, "/v1/features/u1").await;
    get(&app, "/v1/features/secret-entity").await;
    get(&app, "/v1/features/secret-entity").await;
    get(&app, "/nowhere/secret-path").await;
    send(&app, "DELETE", "/healthz", None, Body::empty()).await;
    post_json(
        &app,
        "/v1/predict",
        r#"{"entity":"u1","fields":{"amount":1}}"#,
    )
    .await;

    let text = get(&app, "/metrics").await.text();
    let has = |line: &str| {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    };
    has(r#"nowcast_serving_requests_total{route="/v1/features/{entity}",status="200"} 1"#);
    has(r#"nowcast_serving_requests_total{route="/v1/features/{entity}",status="404"} 2"#);
    has(r#"nowcast_serving_requests_total{route="unmatched",status="404"} 1"#);
    has(r#"nowcast_serving_requests_total{route="/healthz",status="405"} 1"#);
    has(r#"nowcast_serving_requests_total{route="/v1/predict",status="200"} 1"#);
    has(r#"nowcast_serving_request_duration_seconds_count{route="/v1/features/{entity}"} 3"#);
    assert!(
        !text.contains("secret"),
        "entity ids or paths leaked into labels:\n{text}"
    );
}
