//! The serving backend over a live pipeline: features are evaluated at request time (so they
//! decay when no events arrive), each carries its age, unknown entities are `None` for reads
//! and scored on empty windows for predictions, and bad ingest lines are reported and
//! dead-lettered.

use std::path::Path;
use std::time::{Duration, Instant};

use nowcast_core::FeatureValue;
use nowcast_pipeline::{now_ms, RunOptions, Runtime};
use nowcast_serve::Backend as _;

fn spec() -> nowcast_spec::PipelineSpec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/basic/pipeline.toml");
    nowcast_spec::read_spec(&path).unwrap()
}

fn value(f: &nowcast_serve::EntityFeatures, name: &str) -> FeatureValue {
    f.features
        .iter()
        .find(|e| e.name == name)
        .unwrap()
        .value
        .clone()
}

#[test]
fn features_decay_at_request_time_and_carry_their_age() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = Runtime::start(
        spec(),
        RunOptions {
            data_dir: Some(tmp.path().into()),
            ..Default::default()
        },
    )
    .unwrap();
    let backend = rt.backend();
    let t0 = now_ms() - 10_000;
    let body = format!(
        "{}\n{}\n{}\nnot json\n",
        format_args!(
            r#"{{"id":"a","user":"u1","ts":{},"amount":10,"merchant":"m1","country":"US"}}"#,
            t0
        ),
        format_args!(
            r#"{{"id":"b","user":"u1","ts":{},"amount":20,"merchant":"m2","country":"FR"}}"#,
            t0 + 1_000
        ),
        format_args!(
            r#"{{"id":"c","user":"u1","ts":{},"amount":30,"merchant":"m2","country":"US"}}"#,
            t0 + 2_000
        ),
    );
    let outcome = backend.ingest(body.as_bytes()).unwrap();
    assert_eq!((outcome.accepted, outcome.rejected), (3, 1));
    assert_eq!(outcome.errors[0].line, 4);
    rt.flush_logs().unwrap();

    let start = Instant::now();
    let now = loop {
        let now = now_ms();
        if let Ok(Some(f)) = backend.features("u1", now) {
            if value(&f, "count_1m") == FeatureValue::Num(3.0) {
                break now;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "events were not applied"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let f = backend.features("u1", now).unwrap().unwrap();
    assert_eq!(value(&f, "sum_5m"), FeatureValue::Num(60.0));
    assert_eq!(value(&f, "merchants_1h"), FeatureValue::Num(2.0));
    assert_eq!(value(&f, "abroad_1h"), FeatureValue::Num(1.0));
    assert_eq!(value(&f, "last2"), FeatureValue::List(vec![30.0, 20.0]));
    let age = f.features[0].age_ms.unwrap();
    assert_eq!(
        age,
        now - (t0 + 2_000),
        "age is request time minus the newest event time"
    );

    // Two minutes later with no new events: the 1-minute window is empty, the 1-hour one not.
    let later = backend.features("u1", now + 120_000).unwrap().unwrap();
    assert_eq!(value(&later, "count_1m"), FeatureValue::Num(0.0));
    assert_eq!(value(&later, "max_1h"), FeatureValue::Num(30.0));
    // The embedded runtime owns every partition: unknown, never `not_owned`.
    assert_eq!(backend.features("nobody", now), Ok(None));

    // Predict: a known entity uses its features; an unknown one is scored on empty windows.
    let mut fields = serde_json::Map::new();
    fields.insert("amount".into(), serde_json::json!(5.0));
    let known = backend.predict("u1", &fields, now).unwrap();
    let unknown = backend.predict("nobody", &fields, now).unwrap();
    assert!(known.entity_known && !unknown.entity_known);
    assert!(
        known.score > unknown.score,
        "more activity, higher score for this model"
    );
    let missing = backend
        .predict("u1", &serde_json::Map::new(), now)
        .unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("request field `amount` is missing"),
        "{missing}"
    );
    // Regression: keys the model does not take were ignored, so a typo or an attempt to
    // set a stream feature scored silently on something else.
    for (key, says) in [
        ("amout", "is not a request-time input of the model"),
        ("count_1m", "is a stream feature"),
    ] {
        let mut extra = fields.clone();
        extra.insert(key.into(), serde_json::json!(1000.0));
        let err = backend.predict("u1", &extra, now).unwrap_err().to_string();
        assert!(err.contains(&format!("`fields.{key}` {says}")), "{err}");
        assert!(err.contains("the request fields are: amount"), "{err}");
    }

    let report = rt.stop(true).unwrap();
    assert_eq!((report.events_applied, report.rejected), (3, 1));
    let dead = std::fs::read_dir(tmp.path().join("out/dead_letters")).unwrap();
    let text: String = dead
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(
        text.contains(r#""reason":"malformed""#) && text.contains("not json"),
        "{text}"
    );
}
