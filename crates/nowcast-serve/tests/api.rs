//! Every route's success and error paths, in-process against a fake backend.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::StatusCode;
use common::*;
use nowcast_serve::ServeConfig;
use serde_json::json;

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn features_of_a_known_entity_in_spec_order() {
    let before = wall_ms();
    let r = get(&app(), "/v1/features/u1").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.headers["content-type"], "application/json");
    let v = r.json();
    assert_eq!(v["entity"], "u1");
    let as_of = v["as_of"].as_i64().unwrap();
    assert!(
        as_of >= before && as_of <= wall_ms(),
        "as_of is the request time"
    );
    assert_eq!(
        v["features"],
        json!({
            "txn_count_5m": {"value": 3.0, "age_ms": 1200},
            "amount_mean_1h": {"value": null, "age_ms": null},
            "last_amounts": {"value": [5.0, 2.5], "age_ms": 1200},
        })
    );
    // Order is the backend's, not alphabetical.
    let text = r.text();
    let pos = |k: &str| text.find(k).unwrap();
    assert!(pos("txn_count_5m") < pos("amount_mean_1h"));
    assert!(pos("amount_mean_1h") < pos("last_amounts"));
}

#[tokio::test]
async fn features_path_is_percent_decoded() {
    let r = get(&app(), "/v1/features/u%2F2").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["entity"], "u/2");
}

#[tokio::test]
async fn unknown_entity_is_404_json() {
    let r = get(&app(), "/v1/features/nobody").await;
    let detail = r.assert_error(StatusCode::NOT_FOUND, "unknown_entity");
    assert_eq!(detail, "no state for entity `nobody`");
}

#[tokio::test]
async fn entity_owned_by_another_instance_is_not_owned_not_unknown() {
    let r = get(&app(), "/v1/features/elsewhere").await;
    let detail = r.assert_error(StatusCode::NOT_FOUND, "not_owned");
    assert!(detail.contains("partition 3"), "{detail}");
    let r = post_json(&app(), "/v1/features", r#"{"entities":["elsewhere","u1"]}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let results = r.json()["results"].clone();
    assert_eq!(results[0]["found"], false);
    assert_eq!(results[0]["error"]["error"], "not_owned");
    assert!(results[0].get("features").is_none());
    assert!(results[1].get("error").is_none(), "{results}");
    // Never scored on empty windows as if it were new.
    let r = post_json(
        &app(),
        "/v1/predict",
        r#"{"entity":"elsewhere","fields":{"amount":1}}"#,
    )
    .await;
    r.assert_error(StatusCode::NOT_FOUND, "not_owned");
}

#[tokio::test]
async fn undecodable_path_is_400_json() {
    let r = get(&app(), "/v1/features/%FF").await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_path");
}

#[tokio::test]
async fn batch_features_keep_request_order() {
    let r = post_json(
        &app(),
        "/v1/features",
        r#"{"entities":["u1","nobody","u\/2"]}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert!(v["as_of"].is_i64());
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["entity"], "u1");
    assert_eq!(results[0]["found"], true);
    assert_eq!(results[0]["features"]["txn_count_5m"]["value"], 3.0);
    assert_eq!(results[1], json!({"entity": "nobody", "found": false}));
    assert_eq!(results[2]["entity"], "u/2", "escaped keys are decoded");
    assert_eq!(results[2]["found"], true);
}

#[tokio::test]
async fn batch_of_zero_entities_is_fine() {
    let r = post_json(&app(), "/v1/features", r#"{"entities":[]}"#).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["results"], json!([]));
}

#[tokio::test]
async fn batch_above_the_limit_is_400() {
    let config = ServeConfig {
        max_batch_entities: 2,
        ..ServeConfig::default()
    };
    let app = app_with(&config, None);
    let ok = post_json(&app, "/v1/features", r#"{"entities":["a","b"]}"#).await;
    assert_eq!(ok.status, StatusCode::OK);
    let r = post_json(&app, "/v1/features", r#"{"entities":["a","b","c"]}"#).await;
    let detail = r.assert_error(StatusCode::BAD_REQUEST, "too_many_entities");
    assert!(
        detail.contains("3 entities") && detail.contains("at most 2"),
        "{detail}"
    );
}

#[tokio::test]
async fn malformed_json_is_400_with_the_reason() {
    let r = post_json(&app(), "/v1/features", r#"{"entities":["a",}"#).await;
    let detail = r.assert_error(StatusCode::BAD_REQUEST, "malformed_json");
    assert!(detail.contains("line 1 column"), "{detail}");
}

#[tokio::test]
async fn wrong_shape_is_400_naming_the_field() {
    let app = app();
    let r = post_json(&app, "/v1/features", r#"{"entity":["a"]}"#).await;
    let detail = r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(detail.contains("entity"), "{detail}");
    let r = post_json(&app, "/v1/features", r#"{"entities":"a"}"#).await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    let r = post_json(&app, "/v1/features", "").await;
    r.assert_error(StatusCode::BAD_REQUEST, "malformed_json");
}

#[tokio::test]
async fn non_json_content_type_is_415() {
    let r = send(
        &app(),
        "POST",
        "/v1/features",
        Some("text/plain"),
        r#"{"entities":[]}"#,
    )
    .await;
    r.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    // A missing content type and JSON variants are accepted.
    for ct in [
        None,
        Some("application/json; charset=utf-8"),
        Some("application/vnd.x+json"),
    ] {
        let r = send(&app(), "POST", "/v1/features", ct, r#"{"entities":[]}"#).await;
        assert_eq!(r.status, StatusCode::OK, "{ct:?}");
    }
}

#[tokio::test]
async fn predict_known_and_unknown_entities() {
    let app = app();
    let r = post_json(
        &app,
        "/v1/predict",
        r#"{"entity":"u1","fields":{"amount":42.5}}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["entity"], "u1");
    assert_eq!(v["entity_known"], true);
    assert_eq!(v["score"], 0.25);
    assert_eq!(v["model"], "fraud");
    assert_eq!(v["model_version"], "abc123");
    assert_eq!(v["features"], json!({"txn_count_5m": 3.0, "amount": 42.5}));
    assert!(v["as_of"].is_i64());
    let text = r.text();
    assert!(text.find("txn_count_5m").unwrap() < text.find("\"amount\"").unwrap());

    let r = post_json(
        &app,
        "/v1/predict",
        r#"{"entity":"new","fields":{"amount":1}}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["entity_known"], false);
}

#[tokio::test]
async fn predict_errors() {
    let app = app();
    let r = post_json(&app, "/v1/predict", r#"{"entity":"u1"}"#).await;
    let detail = r.assert_error(StatusCode::BAD_REQUEST, "bad_request");
    assert!(detail.contains("`amount`"), "{detail}");
    let r = post_json(
        &app,
        "/v1/predict",
        r#"{"entity":"u1","fields":{"amount":"x"}}"#,
    )
    .await;
    r.assert_error(StatusCode::BAD_REQUEST, "bad_request");
    let r = post_json(&app, "/v1/predict", r#"{"fields":{}}"#).await;
    let detail = r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(detail.contains("entity"), "{detail}");
    let r = post_json(&app, "/v1/predict", r#"{"entity":""}"#).await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    let r = post_json(&app, "/v1/predict", r#"{"entity":"u1","extra":1}"#).await;
    let detail = r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(detail.contains("extra"), "{detail}");
    let r = post_json(&app, "/v1/predict", r#"{"entity":"u1","fields":[1]}"#).await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    let r = post_json(&app, "/v1/predict", "nope").await;
    r.assert_error(StatusCode::BAD_REQUEST, "malformed_json");
    let r = post_json(
        &app,
        "/v1/predict",
        r#"{"entity":"down","fields":{"amount":1}}"#,
    )
    .await;
    r.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    let r = post_json(
        &app,
        "/v1/predict",
        r#"{"entity":"bug","fields":{"amount":1}}"#,
    )
    .await;
    r.assert_error(StatusCode::INTERNAL_SERVER_ERROR, "internal");
}

#[tokio::test]
async fn events_accept_good_lines_and_report_bad_ones() {
    let body = "{\"user\":\"a\",\"amount\":1}\nnot json\n\n{\"amount\":2}\n{\"user\":\"b\"}\n";
    let r = send(
        &app(),
        "POST",
        "/v1/events",
        Some("application/x-ndjson"),
        body,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["accepted"], 2);
    assert_eq!(v["rejected"], 2);
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors[0]["line"], 2);
    assert_eq!(errors[0]["reason"], "malformed");
    assert_eq!(errors[1]["line"], 4);
    assert_eq!(errors[1]["reason"], "missing_key");
    assert!(errors[1]["detail"].is_string());
}

#[tokio::test]
async fn events_report_at_most_100_errors() {
    let body = "x\n".repeat(150);
    let r = send(&app(), "POST", "/v1/events", None, body).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["rejected"], 150);
    assert_eq!(v["errors"].as_array().unwrap().len(), 100);
}

#[tokio::test]
async fn events_refuse_empty_bodies_and_take_a_non_utf8_line_as_one_bad_line() {
    let app = app();
    send(&app, "POST", "/v1/events", None, "")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "empty_body");
    send(&app, "POST", "/v1/events", None, " \n\n")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "empty_body");
    // Regression: one line with a byte that is not UTF-8 refused the whole body, good lines
    // included, and nothing was dead-lettered or counted.
    let mut body = b"{\"user\":\"u-1\"}\n{\"user\":\"u-".to_vec();
    body.extend_from_slice(&[0xff, b'"', b'}', b'\n']);
    let reply = send(&app, "POST", "/v1/events", None, body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let v = reply.json();
    assert_eq!(
        (v["accepted"].as_u64(), v["rejected"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(v["errors"][0]["line"], 2);
    assert_eq!(v["errors"][0]["reason"], "malformed");
    send(&app, "POST", "/v1/events", None, "#down\n")
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
}

#[tokio::test]
async fn oversized_bodies_are_413_on_every_post_route() {
    let config = ServeConfig {
        max_body_bytes: 1024,
        ..ServeConfig::default()
    };
    let app = app_with(&config, None);
    let big = format!(r#"{{"entities":["{}"]}}"#, "a".repeat(2000));
    for uri in ["/v1/features", "/v1/predict", "/v1/events"] {
        let r = post_json(&app, uri, &big).await;
        let detail = r.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
        // Regression: the detail was axum's "length limit exceeded", with neither the
        // limit nor what to do.
        assert!(detail.contains("limit of 1024 bytes"), "{detail}");
        assert!(detail.contains("nowcast ingest"), "{detail}");
    }
    // A streamed body without a known length is cut off too.
    let chunks = (0..3).map(|_| "x".repeat(800)).collect();
    let body = Body::new(Chunked(chunks));
    let r = send(&app, "POST", "/v1/events", None, body).await;
    r.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // Just under the limit is fine.
    let r = send(&app, "POST", "/v1/events", None, "x".repeat(1024)).await;
    assert_eq!(r.status, StatusCode::OK);
}

/// A body of chunks with no length hint, like a chunked upload.
struct Chunked(std::collections::VecDeque<String>);

impl http_body::Body for Chunked {
    type Data = axum::body::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let chunk = self.0.pop_front();
        std::task::Poll::Ready(chunk.map(|c| Ok(http_body::Frame::data(c.into()))))
    }
}

#[tokio::test]
async fn unknown_path_is_404_json() {
    let app = app();
    for uri in ["/", "/v1/nothing", "/v1/features/u1/extra", "/v2/predict"] {
        let detail = get(&app, uri)
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
        assert!(detail.contains(uri), "{detail}");
    }
}

#[tokio::test]
async fn wrong_method_is_405_json_with_allow() {
    let app = app();
    let cases = [
        ("DELETE", "/v1/features/u1", "GET,HEAD"),
        ("GET", "/v1/features", "POST"),
        ("GET", "/v1/predict", "POST"),
        ("PUT", "/v1/events", "POST"),
        ("POST", "/metrics", "GET,HEAD"),
        ("POST", "/healthz", "GET,HEAD"),
    ];
    for (method, uri, allow) in cases {
        let r = send(&app, method, uri, None, Body::empty()).await;
        r.assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        assert_eq!(r.headers["allow"], allow, "{method} {uri}");
    }
}

#[tokio::test]
async fn head_is_served_for_get_routes() {
    let r = send(&app(), "HEAD", "/healthz", None, Body::empty()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn healthz() {
    let r = get(&app(), "/healthz").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(
        r.json(),
        json!({"status": "ok", "kafka": {"partitions_owned": 2, "broker_reachable": true}})
    );
}

#[tokio::test]
async fn readyz_is_503_with_the_reasons_until_ready_while_healthz_stays_200() {
    let r = get(&app(), "/readyz").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["status"], "ready");
    let backend = FakeBackend {
        not_ready: Some("owns no partitions yet"),
        ..FakeBackend::default()
    };
    let app = nowcast_serve::router(std::sync::Arc::new(backend), None, &ServeConfig::default());
    let r = get(&app, "/readyz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let v = r.json();
    assert_eq!(v["status"], "not_ready");
    assert_eq!(v["reasons"], json!(["owns no partitions yet"]));
    assert_eq!(v["kafka"]["partitions_owned"], 2);
    assert_eq!(get(&app, "/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn metrics_route_without_a_handle_is_404_json() {
    get(&app(), "/metrics")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn metrics_route_renders_the_handle() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("nowcast_test_total").increment(7);
    });
    let r = get(&app_with(&ServeConfig::default(), Some(handle)), "/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert!(r.text().contains("nowcast_test_total 7"), "{}", r.text());
}
