//! `nowcast validate` on specs that need no services: the model is loaded as `run` loads it
//! (input width, which engine scores it), and librdkafka properties the spec gives are checked
//! by librdkafka itself, every refused one reported with its table and key.

#[path = "kafka/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};

use harness::{repo, validate};

/// The Kafka example spec with `extra` appended, written where its model path still resolves.
fn kafka_spec(dir: &Path, extra: &str) -> PathBuf {
    let model = repo().join("models/fraud_gbt.onnx").canonicalize().unwrap();
    let text = std::fs::read_to_string(repo().join("examples/kafka/pipeline.toml"))
        .unwrap()
        .replace("../../models/fraud_gbt.onnx", &model.display().to_string());
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, format!("{text}\n{extra}")).unwrap();
    path
}

#[test]
fn validate_loads_the_model_and_says_what_scores_it() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = validate(&kafka_spec(dir.path(), ""));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("model `fraud_gbt` version 70ed826bbbc1: scored by compiled TreeEnsembleClassifier, 100 trees"),
        "{out}"
    );
    // The GBT takes 12 inputs; a 13th model input is caught here, not at start.
    let text = std::fs::read_to_string(kafka_spec(dir.path(), "")).unwrap();
    let wider = text.replace(
        "\"secs_since_last_1d\", \"amount_p95_1d\",",
        "\"secs_since_last_1d\", \"amount_p95_1d\", \"amount_min_1d\",",
    );
    assert_ne!(wider, text, "the example's model inputs changed");
    let path = dir.path().join("wider.toml");
    std::fs::write(&path, wider).unwrap();
    let (code, out) = validate(&path);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("takes 12 inputs, the spec lists 13"), "{out}");
}

#[test]
fn validate_reports_every_librdkafka_property_librdkafka_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = validate(&kafka_spec(dir.path(), ""));
    assert_eq!(code, Some(0), "{out}");
    let bad = kafka_spec(
        dir.path(),
        "[kafka.producer]\n\"compression.type\" = \"zstd\"\n\"no.such.property\" = \"1\"\n",
    );
    let (code, out) = validate(&bad);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("[kafka.producer] \"compression.type\" = \"zstd\""),
        "{out}"
    );
    assert!(
        out.contains("[kafka.producer] \"no.such.property\""),
        "{out}"
    );
}

/// `nowcast validate` without `NOWCAST_REGISTRY` (so a spec's `[registry]` needs its `url`).
fn validate_without_registry(spec: &Path) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nowcast"))
        .env("RUST_BACKTRACE", "0")
        .env_remove("NOWCAST_REGISTRY")
        .args(["validate", "--config"])
        .arg(spec)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn validate_prints_ok_only_when_the_model_and_schema_checks_pass_too() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(kafka_spec(dir.path(), "")).unwrap();
    let model = repo().join("models/fraud_gbt.onnx").canonicalize().unwrap();
    let model = model.display().to_string();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let narrower = text.replace(
        "\"secs_since_last_1d\", \"amount_p95_1d\",",
        "\"secs_since_last_1d\",",
    );
    assert_ne!(narrower, text, "the example's model inputs changed");
    // The Avro example without a registry URL, its model path resolved.
    let avro = std::fs::read_to_string(repo().join("examples/kafka-avro/pipeline.toml"))
        .unwrap()
        .replace("../../models/fraud_gbt.onnx", &model)
        .replace(
            "schema = \"transaction.avsc\"",
            &format!(
                "schema = \"{}\"",
                repo()
                    .join("examples/kafka-avro/transaction.avsc")
                    .display()
            ),
        );
    assert!(
        !avro.contains("url ="),
        "the Avro example now gives a registry url"
    );
    for (name, spec, expected) in [
        (
            "missing-model.toml",
            text.replace(&model, "/nonexistent/model.onnx"),
            "model.path: /nonexistent/model.onnx does not exist",
        ),
        (
            "narrower.toml",
            narrower,
            "takes 12 inputs, the spec lists 11",
        ),
        ("avro.toml", avro, "[registry] has no `url`"),
    ] {
        let (code, out) = validate_without_registry(&write(name, spec));
        assert_eq!(code, Some(2), "{name}: {out}");
        assert!(out.contains(expected), "{name}: {out}");
        assert!(
            !out.contains(": ok:"),
            "{name}: `ok` despite a problem: {out}"
        );
    }
    let (code, out) = validate_without_registry(&write("good.toml", text));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(": ok: pipeline"), "{out}");
}
