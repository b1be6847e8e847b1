//! Keeps `openapi.json` honest: its operations are exactly [`ROUTES`], the router serves every
//! route, every real response is documented for its route and status and matches the
//! documented schema, and every documented JSON response is produced by some case below.

mod common;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::StatusCode;
use common::*;
use nowcast_core::RejectReason;
use nowcast_serve::{ErrorCode, ServeConfig, ROUTES};
use serde_json::{json, Value};

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn doc() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
        .expect("openapi.json exists");
    serde_json::from_str(&text).expect("openapi.json is JSON")
}

/// Follows a local `$ref` (`#/a/b`) until a non-reference node.
fn resolve<'a>(doc: &'a Value, mut node: &'a Value) -> &'a Value {
    while let Some(r) = node.get("$ref").and_then(Value::as_str) {
        let pointer = r.strip_prefix('#').expect("only local refs");
        node = doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("dangling $ref {r}"));
    }
    node
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match ty {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        other => panic!("unknown schema type {other}"),
    }
}

/// A small structural JSON Schema check: `$ref`, `oneOf`/`anyOf`, `type` (one or a list),
/// `enum`, `required`, `properties`, `additionalProperties`, `items`, `maxItems`, `minimum`,
/// `minLength`. Returns every violation with its JSON path.
fn check(doc: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let matching = options
                .iter()
                .filter(|s| {
                    let mut e = Vec::new();
                    check(doc, s, v, at, &mut e);
                    e.is_empty()
                })
                .count();
            let ok = if key == "oneOf" {
                matching == 1
            } else {
                matching >= 1
            };
            if !ok {
                errors.push(format!("{at}: {v} matches {matching} of {key}"));
            }
        }
    }
    if let Some(ty) = schema.get("type") {
        let ok = match ty {
            Value::String(t) => type_matches(t, v),
            Value::Array(ts) => ts.iter().any(|t| type_matches(t.as_str().unwrap(), v)),
            _ => panic!("bad type in schema at {at}"),
        };
        if !ok {
            errors.push(format!("{at}: {v} is not of type {ty}"));
            return;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(v) {
            errors.push(format!("{at}: {v} is not one of {options:?}"));
        }
    }
    if let (Some(min), Some(n)) = (schema.get("minimum").and_then(Value::as_f64), v.as_f64()) {
        if n < min {
            errors.push(format!("{at}: {n} < minimum {min}"));
        }
    }
    if let (Some(min), Some(s)) = (schema.get("minLength").and_then(Value::as_u64), v.as_str()) {
        if (s.chars().count() as u64) < min {
            errors.push(format!("{at}: {s:?} shorter than {min}"));
        }
    }
    if let Some(obj) = v.as_object() {
        let props = schema.get("properties").and_then(Value::as_object);
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = name.as_str().unwrap();
            if !obj.contains_key(name) {
                errors.push(format!("{at}: missing required property `{name}`"));
            }
        }
        for (key, value) in obj {
            let here = format!("{at}.{key}");
            match props.and_then(|p| p.get(key)) {
                Some(s) => check(doc, s, value, &here, errors),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        errors.push(format!("{at}: property `{key}` is not allowed"))
                    }
                    Some(s @ Value::Object(_)) => check(doc, s, value, &here, errors),
                    _ => {}
                },
            }
        }
    }
    if let Some(items) = v.as_array() {
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
            if items.len() as u64 > max {
                errors.push(format!("{at}: {} items > maxItems {max}", items.len()));
            }
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                check(doc, item_schema, item, &format!("{at}[{i}]"), errors);
            }
        }
    }
}

fn assert_conforms(doc: &Value, schema: &Value, v: &Value, what: &str) {
    let mut errors = Vec::new();
    check(doc, schema, v, "$", &mut errors);
    assert!(errors.is_empty(), "{what}: {v}\n{}", errors.join("\n"));
}

/// The documented operations as (METHOD, path).
fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            if METHODS.contains(&method.as_str()) {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

#[test]
fn document_operations_are_exactly_the_route_table() {
    let doc = doc();
    assert_eq!(doc["openapi"].as_str().unwrap(), "3.1.0");
    let routes: BTreeSet<_> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(routes.len(), ROUTES.len(), "route table has duplicates");
    assert_eq!(documented_operations(&doc), routes);
}

#[test]
fn documented_error_codes_and_reasons_are_the_real_ones() {
    let doc = doc();
    let documented = &doc["components"]["schemas"]["Error"]["properties"]["error"]["enum"];
    let real: Vec<Value> = ErrorCode::ALL.iter().map(|c| json!(c)).collect();
    assert_eq!(documented, &json!(real));
    let documented =
        &doc["components"]["schemas"]["IngestLineError"]["properties"]["reason"]["enum"];
    let real: Vec<&str> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(documented, &json!(real));
}

#[tokio::test]
async fn router_serves_every_route_in_the_table() {
    let app = app();
    for route in ROUTES {
        let uri = route.path.replace("{entity}", "u1");
        let body = if route.method == "POST" { "{}" } else { "" };
        let r = send(
            &app,
            route.method,
            &uri,
            Some("application/json"),
            body.to_owned(),
        )
        .await;
        if r.headers["content-type"] == "application/json" {
            let code = r.json()["error"].clone();
            assert!(
                code != "method_not_allowed" && !(code == "not_found" && route.path != "/metrics"),
                "{} {} not routed: {}",
                route.method,
                route.path,
                r.text()
            );
        }
    }
}

#[test]
fn the_checker_catches_violations() {
    let doc = doc();
    let schema = json!({"$ref": "#/components/schemas/PredictResponse"});
    let mut errors = Vec::new();
    check(
        &doc,
        &schema,
        &json!({"entity": "u1", "score": "high"}),
        "$",
        &mut errors,
    );
    assert!(
        errors.iter().any(|e| e.contains("`entity_known`")),
        "{errors:?}"
    );
    assert!(errors.iter().any(|e| e.contains("$.score")), "{errors:?}");
    let schema = json!({"$ref": "#/components/schemas/FeatureValue"});
    let mut errors = Vec::new();
    check(&doc, &schema, &json!(["a"]), "$", &mut errors);
    assert_eq!(errors.len(), 1, "{errors:?}");
}

/// One request: method, uri, content type, body.
type Case = (&'static str, &'static str, Option<&'static str>, Vec<u8>);

fn cases() -> Vec<Case> {
    let j = Some("application/json");
    let b = |s: &str| s.as_bytes().to_vec();
    vec![
        ("GET", "/v1/features/u1", None, vec![]),
        ("GET", "/v1/features/nobody", None, vec![]),
        ("GET", "/v1/features/elsewhere", None, vec![]),
        ("GET", "/v1/features/%FF", None, vec![]),
        (
            "POST",
            "/v1/features",
            j,
            b(r#"{"entities":["u1","nobody","elsewhere"]}"#),
        ),
        (
            "POST",
            "/v1/features",
            j,
            b(r#"{"entities":["a","b","c","d"]}"#),
        ),
        ("POST", "/v1/features", j, b("{")),
        ("POST", "/v1/features", j, vec![b'x'; 5000]),
        ("POST", "/v1/features", Some("text/csv"), b("a,b")),
        (
            "POST",
            "/v1/predict",
            j,
            b(r#"{"entity":"u1","fields":{"amount":42.5}}"#),
        ),
        (
            "POST",
            "/v1/predict",
            j,
            b(r#"{"entity":"new","fields":{"amount":1}}"#),
        ),
        ("POST", "/v1/predict", j, b(r#"{"entity":"u1"}"#)),
        (
            "POST",
            "/v1/predict",
            j,
            b(r#"{"entity":"down","fields":{"amount":1}}"#),
        ),
        (
            "POST",
            "/v1/predict",
            j,
            b(r#"{"entity":"bug","fields":{"amount":1}}"#),
        ),
        (
            "POST",
            "/v1/predict",
            j,
            b(r#"{"entity":"elsewhere","fields":{"amount":1}}"#),
        ),
        ("POST", "/v1/predict", j, vec![b' '; 5000]),
        ("POST", "/v1/predict", Some("text/plain"), b("{}")),
        ("POST", "/v1/events", None, b("{\"user\":\"a\"}\n{}\nbad\n")),
        ("POST", "/v1/events", None, b("")),
        ("POST", "/v1/events", None, vec![b'x'; 5000]),
        ("POST", "/v1/events", None, b("#down")),
        ("POST", "/v1/events", None, b("#bug")),
        ("GET", "/metrics", None, vec![]),
        ("GET", "/healthz", None, vec![]),
        ("GET", "/readyz", None, vec![]),
    ]
}

#[tokio::test]
async fn real_responses_match_the_document() {
    let doc = doc();
    let config = ServeConfig {
        max_body_bytes: 4096,
        max_batch_entities: 3,
        ..ServeConfig::default()
    };
    let app = app_with(&config, None);
    let unready = nowcast_serve::router(
        std::sync::Arc::new(FakeBackend {
            not_ready: Some("owns no partitions yet"),
            ..FakeBackend::default()
        }),
        None,
        &config,
    );
    let runs = cases()
        .into_iter()
        .map(|case| (&app, case))
        .chain([(&unready, ("GET", "/readyz", None, vec![]))]);
    let mut produced = BTreeSet::new();
    for (app, (method, uri, ct, body)) in runs {
        let r = send(app, method, uri, ct, body).await;
        let path = ROUTES
            .iter()
            .map(|r| r.path)
            .find(|p| *p == uri || (p.contains("{entity}") && uri.starts_with("/v1/features/")))
            .unwrap_or_else(|| panic!("case {uri} hits no route"));
        let status = r.status.as_str().to_owned();
        let what = format!("{method} {uri} → {status}");
        let operation = &doc["paths"][path][method.to_lowercase()];
        let response = resolve(&doc, &operation["responses"][&status]);
        assert!(
            response.is_object(),
            "{what} is not documented: {}",
            r.text()
        );
        produced.insert((path, method.to_lowercase(), status));
        let content_type = r.headers["content-type"].to_str().unwrap();
        let media = content_type.split(';').next().unwrap();
        let schema = &response["content"][media]["schema"];
        assert!(
            schema.is_object(),
            "{what}: content type {media} is not documented"
        );
        if media == "application/json" {
            assert_conforms(&doc, schema, &r.json(), &what);
        }
    }
    // Every documented response is exercised by some case.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for status in op["responses"].as_object().unwrap().keys() {
                let key = (path.as_str(), method.clone(), status.clone());
                if path == "/metrics" && status == "200" {
                    continue; // this app has no metrics handle; 200 is checked below
                }
                assert!(produced.contains(&key), "no case produces {key:?}");
            }
        }
    }
}

#[tokio::test]
async fn metrics_and_fallback_responses_match_the_document() {
    let doc = doc();
    let error = json!({"$ref": "#/components/schemas/Error"});
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let with_metrics = app_with(&ServeConfig::default(), Some(recorder.handle()));
    let r = get(&with_metrics, "/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]["text/plain"].is_object()
    );

    let r = get(&app(), "/metrics").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_conforms(&doc, &error, &r.json(), "GET /metrics without handle");

    let r = get(&app(), "/nowhere").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_conforms(
        &doc,
        &doc["components"]["responses"]["NotFound"]["content"]["application/json"]["schema"],
        &r.json(),
        "unknown path",
    );

    let r = send(&app(), "DELETE", "/healthz", None, Body::empty()).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_conforms(
        &doc,
        &doc["components"]["responses"]["MethodNotAllowed"]["content"]["application/json"]
            ["schema"],
        &r.json(),
        "wrong method",
    );
}
