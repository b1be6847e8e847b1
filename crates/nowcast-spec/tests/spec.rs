//! Spec parsing: every example in the repository is valid, and broken specs name every
//! problem with its path and fix.

use std::path::{Path, PathBuf};

mod common;

use common::{problems, GOOD};
use nowcast_spec::{parse_spec, read_spec, ModelInput};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn example_specs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            example_specs(&path, out);
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
}

#[test]
fn every_example_spec_in_the_repository_is_valid() {
    let mut specs = Vec::new();
    example_specs(&repo_root().join("examples"), &mut specs);
    example_specs(&repo_root().join("tests/golden"), &mut specs);
    assert!(!specs.is_empty());
    for path in specs {
        if let Err(e) = read_spec(&path) {
            panic!("{e}");
        }
    }
}

#[test]
fn demo_spec_declares_three_windows_and_the_model_inputs() {
    let spec = read_spec(&repo_root().join("examples/demo/pipeline.toml")).unwrap();
    let mut windows: Vec<i64> = spec
        .engine
        .features
        .iter()
        .map(|f| f.window.duration)
        .collect();
    windows.sort();
    windows.dedup();
    assert_eq!(windows, vec![300_000, 3_600_000, 86_400_000]);
    assert_eq!(spec.model.inputs.len(), 12);
    assert!(matches!(&spec.model.inputs[0], ModelInput::Request { name, .. } if name == "amount"));
    let default_secs = spec
        .model
        .inputs
        .iter()
        .find(|i| i.name() == "secs_since_last_1d")
        .unwrap();
    assert!(matches!(default_secs, ModelInput::Feature { default, .. } if *default == -1.0));
    assert!(
        spec.model.compile_trees,
        "engine = \"auto\" compiles tree ensembles"
    );
}

#[test]
fn model_engine_is_checked_with_its_fix() {
    let spec = parse_spec(GOOD, "test.toml", Path::new(".")).unwrap();
    assert!(spec.model.compile_trees, "the default is auto");
    let p = problems(&GOOD.replace("[model]", "[model]\nengine = \"tract\""));
    assert!(
        p.iter()
            .any(|p| p.contains("model.engine: unknown engine `tract`")
                && p.contains("`auto`")
                && p.contains("`onnxruntime`")),
        "{p:?}"
    );
    // GOOD's model is linear: forcing ONNX Runtime there is a mistake worth naming.
    let p = problems(&GOOD.replace("[model]", "[model]\nengine = \"onnxruntime\""));
    assert!(
        p.iter()
            .any(|p| p.contains("model.engine: `engine` applies to onnx models only")),
        "{p:?}"
    );
}

#[test]
fn a_good_spec_has_no_problems() {
    assert_eq!(problems(GOOD), Vec::<String>::new());
    let spec = parse_spec(GOOD, "test.toml", Path::new(".")).unwrap();
    assert_eq!(
        spec.engine.features[0].window.hop,
        nowcast_window::Hop::Tiled(60_000),
        "default hop is window/60"
    );
}

#[test]
fn every_problem_is_reported_with_path_and_fix() {
    let bad = GOOD
        .replace("window = \"1h\"", "window = \"1 hour\"")
        .replace("aggregation = \"count\"", "aggregation = \"cuont\"")
        .replace(
            "source = \"tx\"\naggregation = \"last_n\"",
            "source = \"txs\"\naggregation = \"last_n\"",
        )
        .replace(
            "inputs = [\"amount\", \"n_1h\", \"last3[0]\"]",
            "inputs = [\"amount\", \"n_1h\", \"last3[0]\", \"velocity\"]",
        )
        .replace("[model]", "[modle]\n[model]");
    let p = problems(&bad);
    let joined = p.join("\n");
    for expected in [
        "modle: unknown section `modle` (fix: did you mean `model`?)",
        "features[0].window: `1 hour` is not a duration",
        "features[0].aggregation: unknown aggregation `cuont` (fix: did you mean `count`?)",
        "features[1].source: unknown source `txs` (fix: did you mean `tx`?)",
        "model.inputs[3]: `velocity` is neither a feature nor a request field",
        "model.weights: 3 weights for 4 inputs",
    ] {
        assert!(
            joined.contains(expected),
            "missing `{expected}` in:\n{joined}"
        );
    }
}

#[test]
fn unknown_keys_are_refused_with_the_accepted_list() {
    let p = problems(&GOOD.replace("window = \"1h\"", "window = \"1h\"\nwindoww = \"2h\""));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("features[0]: unknown field `windoww`, expected one of"),
        "{}",
        p[0]
    );
    assert!(p[0].ends_with("(fix: did you mean `window`?)"), "{}", p[0]);
}

#[test]
fn aggregating_a_string_field_numerically_is_refused() {
    let p = problems(&GOOD.replace("field = \"amount\"\nn = 3", "field = \"merchant\"\nn = 3"));
    assert!(
        p[0].contains(
            "field `merchant` of source `tx` is a string; this aggregation needs a number"
        ),
        "{p:?}"
    );
}

#[test]
fn list_features_must_be_indexed_as_model_inputs() {
    let p = problems(&GOOD.replace("\"last3[0]\"", "\"last3\""));
    assert!(
        p[0].contains("`last3` is a last_n list (fix: name one element, e.g. `last3[0]` (newest))"),
        "{p:?}"
    );
    let p = problems(&GOOD.replace("\"last3[0]\"", "\"last3[3]\""));
    assert!(p[0].contains("past the end"), "{p:?}");
}

#[test]
fn toml_syntax_errors_give_line_and_column() {
    let p = problems("[pipeline\nname = 1");
    assert!(p[0].starts_with("(toml line 1, column"), "{p:?}");
}

#[test]
fn hop_longer_than_window_is_refused() {
    let p = problems(&GOOD.replace("window = \"1h\"", "window = \"1h\"\nhop = \"2h\""));
    assert!(
        p[0].contains("hop 2h is longer than the window 1h"),
        "{p:?}"
    );
}

#[test]
fn kafka_section_defaults_follow_the_pipeline() {
    let text = format!("{GOOD}\n[kafka]\nbootstrap = \"127.0.0.1:9092\"\n");
    let spec = parse_spec(&text, "test.toml", Path::new(".")).unwrap();
    let k = spec.kafka.expect("kafka section");
    assert_eq!(k.group, "nowcast-t");
    assert_eq!(k.delivery, nowcast_spec::Delivery::ExactlyOnce);
    assert_eq!(k.commit_interval, 100);
    assert_eq!(k.partitions, 4);
    assert_eq!(k.features_topic, "t.features");
    assert_eq!(k.dead_letters_topic, "t.dead-letters");
    assert_eq!(k.retention, 48 * 3_600_000);
    assert_eq!(spec.sources[0].topic, "tx");
    assert!(parse_spec(GOOD, "test.toml", Path::new("."))
        .unwrap()
        .kafka
        .is_none());
}

#[test]
fn kafka_problems_name_the_field_and_the_fix() {
    let text = GOOD.replace(
        "name = \"tx\"\nkey_field",
        "name = \"tx\"\ntopic = \"t.predictions\"\nkey_field",
    ) + r#"
[kafka]
bootstrap = "localhost"
delivery = "exactly_once"
commit_interval = "0ms"
replication_factor = 1
min_insync_replicas = 2
[kafka.topics]
late = "bad topic"
[kafka.consumer]
"group.id" = "x"
"fetch.min.bytes" = 1
[kafka.producer]
"compression.type" = ["lz4"]
"acks" = "1"
"#;
    let joined = problems(&text).join("\n");
    for expected in [
        "kafka.bootstrap: `localhost` is not a list of host:port",
        "kafka.delivery: unknown delivery `exactly_once` (fix: use `exactly-once` or `at-least-once`)",
        "kafka.commit_interval: `0ms` must be longer than zero",
        "kafka.min_insync_replicas: min.insync.replicas 2 with replication factor 1",
        "kafka.topics.late: `bad topic` contains ` `",
        "kafka.topics.predictions: topic `t.predictions` is used twice",
        "kafka.consumer.\"group.id\": `group.id` is set by nowcast (fix: set `kafka.group`)",
        "kafka.producer.\"compression.type\": a librdkafka property must be a string",
        // Regression: `acks` was accepted, then silently replaced with `all`.
        "kafka.producer.\"acks\": `acks` is set by nowcast (fix: nowcast always produces with `acks=all`",
    ] {
        assert!(
            joined.contains(expected),
            "missing `{expected}` in:\n{joined}"
        );
    }
    assert!(!joined.contains("fetch.min.bytes"), "{joined}");
}

#[test]
fn repartition_names_an_internal_topic_and_needs_kafka() {
    let text = GOOD.replace(
        "key_field = \"user\"",
        "repartition = true\nkey_field = \"user\"",
    );
    let joined = problems(&text).join("\n");
    assert!(
        joined.contains("sources[0].repartition: repartitioning applies to Kafka sources only"),
        "{joined}"
    );
    let spec = parse_spec(&format!("{text}\n[kafka]\n"), "test.toml", Path::new(".")).unwrap();
    assert_eq!(
        spec.sources[0].repartition_topic.as_deref(),
        Some("t.tx.repartition")
    );
}

#[test]
fn binary_source_settings_are_checked_with_their_fix() {
    let with = |extra: &str| {
        GOOD.replace(
            "time_field = \"ts\"",
            &format!("time_field = \"ts\"\n{extra}"),
        )
    };
    // Avro without a registry is bare and needs its schema file.
    let p = problems(&with("format = \"avro\""));
    assert!(
        p.iter()
            .any(|p| p.contains("sources[0].schema") && p.contains("needs its schema")),
        "{p:?}"
    );
    // The Confluent framing needs a registry.
    let p = problems(&with("format = \"avro\"\nframing = \"confluent\""));
    assert!(
        p.iter()
            .any(|p| p.contains("sources[0].framing") && p.contains("[registry]")),
        "{p:?}"
    );
    // A missing schema file is named.
    let p = problems(&with("format = \"avro\"\nschema = \"nope.avsc\""));
    assert!(
        p.iter()
            .any(|p| p.contains("nope.avsc") && p.contains("does not exist")),
        "{p:?}"
    );
    // Bare Protobuf names its message; schema settings do not apply to JSON.
    let p = problems(&with("format = \"protobuf\"\nschema = \"nope.proto\""));
    assert!(p.iter().any(|p| p.contains("sources[0].message")), "{p:?}");
    let p = problems(&with("schema = \"x.avsc\""));
    assert!(
        p.iter().any(|p| p.contains("applies to Avro and Protobuf")),
        "{p:?}"
    );
    let p = problems(&with("format = \"xml\""));
    assert!(
        p.iter().any(|p| p.contains("unknown format `xml`")),
        "{p:?}"
    );
    // With a registry, Avro defaults to the Confluent framing and needs no file.
    let ok = with("format = \"avro\"") + "\n[registry]\nurl = \"http://127.0.0.1:8081\"\n";
    assert_eq!(problems(&ok), Vec::<String>::new());
    let p = problems(&(with("format = \"avro\"") + "\n[registry]\nurl = \"localhost:8081\"\n"));
    assert!(p.iter().any(|p| p.contains("registry.url")), "{p:?}");
}
