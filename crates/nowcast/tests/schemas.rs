//! Avro and Protobuf sources against a real schema registry (Apicurio, started by
//! `scripts/test.sh`, or `NOWCAST_REGISTRY`) and a real broker: producers evolve their schema
//! while `nowcast run` keeps running, and corrupt or wrong-schema records become dead letters
//! with the right reasons while everything else is processed exactly once, with features equal
//! to an oracle computed from the same events written as JSON.

#![allow(deprecated)] // apache_avro::to_avro_datum: the reference encoder for test input

#[path = "kafka/harness.rs"]
mod harness;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use apache_avro::types::{Record, Value};
use apache_avro::{to_avro_datum, Schema};
use harness::{assert_same_state, broker, registry, terminate, wait, Pipeline, Rec};
use nowcast_schema::proto::ProtoSchema;
use nowcast_schema::wire::{write_header, write_message_indexes};
use nowcast_schema::{Registry, RegistryConfig, SchemaType};
use prost::Message;

/// One generated event, in the fields the example pipeline reads.
#[derive(Debug, Clone)]
struct Ev {
    txn: String,
    user: String,
    merchant: String,
    amount: f64,
    country: &'static str,
    foreign: bool,
    ts: i64,
}

impl Ev {
    /// The event as JSON, for the oracle. `foreign` as the reader sees it.
    fn json(&self) -> Vec<u8> {
        serde_json::json!({
            "txn_id": self.txn, "user_id": self.user, "merchant_id": self.merchant,
            "amount": self.amount, "country": self.country, "foreign": self.foreign,
            "ts": self.ts, "is_fraud": false,
        })
        .to_string()
        .into_bytes()
    }
}

/// `n` events of `users` users with increasing times ending near now.
fn events(prefix: &str, n: usize, users: usize, start: i64) -> Vec<Ev> {
    (0..n)
        .map(|i| Ev {
            txn: format!("{prefix}-{i}"),
            user: format!("u-{}", (i * 7919) % users),
            merchant: format!("m-{}", i % 13),
            amount: ((i * 37) % 500) as f64 / 4.0 + 1.0,
            country: ["US", "DE", "FR"][i % 3],
            foreign: i % 5 == 0,
            ts: start + i as i64 * 3,
        })
        .collect()
}

fn client(url: &str) -> Registry {
    Registry::new(&RegistryConfig::new(url)).unwrap()
}

fn home(p: &Pipeline, user: &str) -> i32 {
    nowcast_core::partition_for_key(user.as_bytes(), p.partitions as u32) as i32
}

fn reasons(dead: &[Rec]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in dead {
        assert!(r.headers.contains_key("nowcast.detail"), "{r:?}");
        *out.entry(r.headers["nowcast.reason"].clone()).or_default() += 1;
    }
    out
}

/// Exactly one prediction per event of `all`, and no other.
fn assert_one_prediction_each(preds: &[Rec], all: &[Ev]) {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in preds {
        *counts
            .entry(r.json()["event_id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let missing: Vec<_> = all
        .iter()
        .filter(|e| !counts.contains_key(&e.txn))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "events without a prediction, e.g. {missing:?}"
    );
    let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(dups.is_empty(), "duplicated predictions, e.g. {dups:?}");
    assert_eq!(preds.len(), all.len(), "one prediction per valid event");
}

/// Produces `batch` (events with their encoded records), each keyed by its user on the
/// user's partition.
fn produce_keyed(p: &Pipeline, batch: &[(Ev, Vec<u8>)]) {
    let keys: Vec<(i32, Vec<u8>)> = batch
        .iter()
        .map(|(e, _)| (home(p, &e.user), e.user.clone().into_bytes()))
        .collect();
    let raw: Vec<_> = keys
        .iter()
        .zip(batch)
        .map(|((part, k), (_, v))| (*part, Some(&k[..]), &v[..]))
        .collect();
    p.produce_raw(&raw);
}

/// Stops `nowcast run` with SIGTERM and asserts that it exits cleanly (showing its log if not).
fn stop_cleanly(mut child: harness::Proc, log: &std::path::Path) {
    terminate(&child);
    let status = wait(&mut child, Duration::from_secs(60));
    assert!(
        status.success(),
        "nowcast run failed: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// Starts `nowcast run`, waits until it has committed all its input, and stops it.
fn run_until_caught_up(p: &Pipeline) {
    let (child, log) = p.spawn_logged("0", &[]);
    p.wait_caught_up(Duration::from_secs(120));
    stop_cleanly(child, &log);
}

/// Runs the pipeline over `first`, lets `evolve` register the next schema and produce
/// `second` while it runs, then checks predictions, dead letters and state.
fn run_and_check(
    p: &Pipeline,
    first: &[(Ev, Vec<u8>)],
    bad: &[(i32, Vec<u8>)],
    second: impl FnOnce() -> Vec<(Ev, Vec<u8>)>,
    expected_dead: &BTreeMap<String, usize>,
) {
    produce_keyed(p, first);
    let bad_raw: Vec<_> = bad.iter().map(|(part, v)| (*part, None, &v[..])).collect();
    p.produce_raw(&bad_raw);
    let (child, log) = p.spawn_logged("0", &[]);
    p.wait_caught_up(Duration::from_secs(120));
    // The producer evolves while nowcast runs.
    let second = second();
    produce_keyed(p, &second);
    p.wait_caught_up(Duration::from_secs(120));
    stop_cleanly(child, &log);

    let k = p.kafka();
    let all: Vec<Ev> = first
        .iter()
        .chain(&second)
        .map(|(e, _)| e.clone())
        .collect();
    assert_one_prediction_each(&p.read_all(&k.predictions_topic), &all);
    assert_eq!(&reasons(&p.read_all(&k.dead_letters_topic)), expected_dead);
    let json: Vec<(i32, Vec<u8>)> = all.iter().map(|e| (home(p, &e.user), e.json())).collect();
    let (oracle, keys) = p.oracle_of_json(&json);
    let stored = p.stored();
    let t = all.iter().map(|e| e.ts).max().unwrap() + 1;
    assert_same_state(&oracle, &stored, &keys, t);
    assert_same_state(&oracle, &stored, &keys, t + 4 * 60_000);
}

// --- Avro ----------------------------------------------------------------------------------

/// v1 as the producer first writes it; also nowcast's reader schema (defaults for fields
/// later writers drop).
const AVRO_V1: &str = r#"{"type":"record","name":"Transaction","namespace":"shop","fields":[
  {"name":"txn_id","type":"string"},
  {"name":"user_id","type":"string"},
  {"name":"merchant_id","type":"string"},
  {"name":"amount","type":"double"},
  {"name":"country","type":"string"},
  {"name":"foreign","type":"boolean","default":false},
  {"name":"channel","type":["null","string"],"default":null},
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"is_fraud","type":"boolean","default":false}
]}"#;

/// v2 reorders fields, drops the optional `channel` and `foreign` (defaulted), adds `device`.
const AVRO_V2: &str = r#"{"type":"record","name":"Transaction","namespace":"shop","fields":[
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"amount","type":"double"},
  {"name":"user_id","type":"string"},
  {"name":"txn_id","type":"string"},
  {"name":"merchant_id","type":"string"},
  {"name":"country","type":"string"},
  {"name":"device","type":"string","default":"web"},
  {"name":"is_fraud","type":"boolean","default":false}
]}"#;

fn avro_framed(id: u32, datum: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(datum.len() + 5);
    write_header(&mut out, id);
    out.extend(datum);
    out
}

fn avro_v1(schema: &Schema, id: u32, e: &Ev) -> Vec<u8> {
    let mut r = Record::new(schema).unwrap();
    r.put("txn_id", e.txn.as_str());
    r.put("user_id", e.user.as_str());
    r.put("merchant_id", e.merchant.as_str());
    r.put("amount", e.amount);
    r.put("country", e.country);
    r.put("foreign", e.foreign);
    r.put(
        "channel",
        Value::Union(1, Box::new(Value::String("pos".into()))),
    );
    r.put("ts", Value::TimestampMillis(e.ts));
    r.put("is_fraud", false);
    avro_framed(id, to_avro_datum(schema, r).unwrap())
}

fn avro_v2(schema: &Schema, id: u32, e: &Ev) -> Vec<u8> {
    let mut r = Record::new(schema).unwrap();
    r.put("ts", Value::TimestampMillis(e.ts));
    r.put("amount", e.amount);
    r.put("user_id", e.user.as_str());
    r.put("txn_id", e.txn.as_str());
    r.put("merchant_id", e.merchant.as_str());
    r.put("country", e.country);
    r.put("device", "app");
    r.put("is_fraud", false);
    avro_framed(id, to_avro_datum(schema, r).unwrap())
}

#[test]
fn avro_producer_evolves_while_running_and_bad_records_are_dead_lettered() {
    let (Some(b), Some(reg_url)) = (broker(), registry()) else {
        return;
    };
    let schemas = tempfile::tempdir().unwrap();
    let reader = schemas.path().join("transaction.avsc");
    std::fs::write(&reader, AVRO_V1).unwrap();
    let p = Pipeline::with_edit(&b, 4, "exactly-once", None, |t| {
        t.replace(
            "format = \"json\"",
            &format!("format = \"avro\"\nschema = {:?}", reader.to_str().unwrap()),
        ) + &format!("\n[registry]\nurl = {reg_url:?}\n")
    });
    let reg = client(&reg_url);
    let subject = format!("{}-value", p.source_topic());
    reg.set_compatibility(&subject, "BACKWARD").unwrap();
    let v1 = Schema::parse_str(AVRO_V1).unwrap();
    let v1_id = reg
        .register(&subject, SchemaType::Avro, AVRO_V1, &[])
        .unwrap();

    let now = nowcast_pipeline::now_ms();
    let first: Vec<_> = events("a", 3000, 200, now - 60_000)
        .into_iter()
        .map(|e| {
            let v = avro_v1(&v1, v1_id, &e);
            (e, v)
        })
        .collect();

    // Records of schemas nowcast cannot use, registered under another subject.
    let other = format!("{}-other-value", p.source_topic());
    let no_amount = AVRO_V1.replace(r#"{"name":"amount","type":"double"},"#, "");
    let no_amount_id = reg
        .register(&other, SchemaType::Avro, &no_amount, &[])
        .unwrap();
    let text_amount = AVRO_V1.replace(
        r#"{"name":"amount","type":"double"}"#,
        r#"{"name":"amount","type":"string"}"#,
    );
    let text_amount_id = reg
        .register(&format!("{other}-2"), SchemaType::Avro, &text_amount, &[])
        .unwrap();
    let proto_id = reg
        .register(
            &format!("{other}-3"),
            SchemaType::Protobuf,
            "syntax = \"proto3\";\nmessage X { string user_id = 1; }\n",
            &[],
        )
        .unwrap();
    let valid = &first[0].1;
    let bad = vec![
        (0, br#"{"user_id":"u-1"}"#.to_vec()), // no Confluent framing
        (1, avro_framed(0x7fff_fff0, valid[5..].to_vec())), // unknown schema id
        (2, valid[..valid.len() - 3].to_vec()), // truncated payload
        (3, avro_framed(no_amount_id, valid[5..].to_vec())), // writer lacks `amount`
        (0, avro_framed(text_amount_id, valid[5..].to_vec())), // `amount` is text
        (1, avro_framed(proto_id, valid[5..].to_vec())), // a Protobuf schema
    ];
    let expected_dead: BTreeMap<String, usize> = [
        "bad_framing",
        "unknown_schema",
        "corrupt_payload",
        "missing_field",
        "type_mismatch",
        "bad_schema",
    ]
    .into_iter()
    .map(|r| (r.to_string(), 1))
    .collect();

    run_and_check(
        &p,
        &first,
        &bad,
        || {
            let v2 = Schema::parse_str(AVRO_V2).unwrap();
            assert!(reg
                .is_compatible(&subject, SchemaType::Avro, AVRO_V2, &[])
                .unwrap());
            let v2_id = reg
                .register(&subject, SchemaType::Avro, AVRO_V2, &[])
                .unwrap();
            assert_ne!(v2_id, v1_id);
            events("b", 3000, 200, now - 30_000)
                .into_iter()
                .map(|mut e| {
                    let v = avro_v2(&v2, v2_id, &e);
                    e.foreign = false; // dropped by v2: the reader's default
                    (e, v)
                })
                .collect()
        },
        &expected_dead,
    );
}

// --- Protobuf ------------------------------------------------------------------------------

const PROTO_V1: &str = r#"syntax = "proto3";
package shop.v1;

message Header { string source = 1; }

message Transaction {
  string txn_id = 1;
  string user_id = 2;
  string merchant_id = 3;
  double amount = 4;
  string country = 5;
  bool foreign = 6;
  optional string channel = 7;
  int64 ts = 8;
  bool is_fraud = 9;
}
"#;

/// v2 drops the optional `channel` and adds `device`.
const PROTO_V2: &str = r#"syntax = "proto3";
package shop.v1;

message Header { string source = 1; }

message Transaction {
  reserved 7;
  string txn_id = 1;
  string user_id = 2;
  string merchant_id = 3;
  double amount = 4;
  string country = 5;
  bool foreign = 6;
  int64 ts = 8;
  bool is_fraud = 9;
  string device = 10;
}
"#;

fn proto_record(schema: &ProtoSchema, id: u32, e: &Ev, v2: bool) -> Vec<u8> {
    use prost_reflect::{DynamicMessage, Value as P};
    let desc = schema.message_named("shop.v1.Transaction").unwrap();
    let mut m = DynamicMessage::new(desc.clone());
    m.set_field_by_name("txn_id", P::String(e.txn.clone()));
    m.set_field_by_name("user_id", P::String(e.user.clone()));
    m.set_field_by_name("merchant_id", P::String(e.merchant.clone()));
    m.set_field_by_name("amount", P::F64(e.amount));
    m.set_field_by_name("country", P::String(e.country.into()));
    m.set_field_by_name("foreign", P::Bool(e.foreign));
    m.set_field_by_name("ts", P::I64(e.ts));
    if v2 {
        m.set_field_by_name("device", P::String("app".into()));
    } else {
        m.set_field_by_name("channel", P::String("pos".into()));
    }
    let mut out = Vec::new();
    write_header(&mut out, id);
    write_message_indexes(&mut out, &schema.path_of(&desc).unwrap());
    out.extend(m.encode_to_vec());
    out
}

#[test]
fn protobuf_producer_evolves_while_running_and_bad_records_are_dead_lettered() {
    let (Some(b), Some(reg_url)) = (broker(), registry()) else {
        return;
    };
    let p = Pipeline::with_edit(&b, 4, "exactly-once", None, |t| {
        t.replace("format = \"json\"", "format = \"protobuf\"")
            + &format!("\n[registry]\nurl = {reg_url:?}\n")
    });
    let reg = client(&reg_url);
    let subject = format!("{}-value", p.source_topic());
    let v1 = ProtoSchema::compile("v1.proto", PROTO_V1, &HashMap::new()).unwrap();
    let v1_id = reg
        .register(&subject, SchemaType::Protobuf, PROTO_V1, &[])
        .unwrap();
    let now = nowcast_pipeline::now_ms();
    let first: Vec<_> = events("a", 2000, 150, now - 60_000)
        .into_iter()
        .map(|e| {
            let v = proto_record(&v1, v1_id, &e, false);
            (e, v)
        })
        .collect();
    let valid = &first[0].1;
    // The header: magic byte, schema id, then the message-index list of `[1]` (2 bytes).
    let head = 5 + 2;
    // Message index 5: the schema declares two messages.
    let mut bad_index = Vec::new();
    write_header(&mut bad_index, v1_id);
    write_message_indexes(&mut bad_index, &[5]);
    bad_index.extend(&valid[head..]);
    // A string field (txn_id, number 1) cut short.
    let mut truncated = valid[..head].to_vec();
    truncated.extend([0x0a, 0x40, b'x']);
    let bad = vec![(0, bad_index), (1, truncated)];
    let expected_dead: BTreeMap<String, usize> = [("bad_message_index", 1), ("corrupt_payload", 1)]
        .into_iter()
        .map(|(r, n)| (r.to_string(), n))
        .collect();
    run_and_check(
        &p,
        &first,
        &bad,
        || {
            let v2 = ProtoSchema::compile("v2.proto", PROTO_V2, &HashMap::new()).unwrap();
            let v2_id = reg
                .register(&subject, SchemaType::Protobuf, PROTO_V2, &[])
                .unwrap();
            assert_ne!(v2_id, v1_id);
            events("b", 2000, 150, now - 30_000)
                .into_iter()
                .map(|e| {
                    let v = proto_record(&v2, v2_id, &e, true);
                    (e, v)
                })
                .collect()
        },
        &expected_dead,
    );
}

// --- validate ------------------------------------------------------------------------------

fn validate(spec: &std::path::Path) -> (bool, String) {
    let (code, out) = harness::validate(spec);
    (code == Some(0), out)
}

#[test]
fn validate_checks_the_fields_read_against_the_registered_schema() {
    let Some(reg_url) = registry() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("validate-{}.transactions", std::process::id());
    let text = std::fs::read_to_string(harness::repo().join("examples/kafka/pipeline.toml"))
        .unwrap()
        .replace("card-fraud.transactions", &topic)
        .replace(
            "../../models",
            harness::repo().join("models").to_str().unwrap(),
        )
        .replace("format = \"json\"", "format = \"avro\"")
        + &format!("\n[registry]\nurl = {reg_url:?}\n");
    let spec = dir.path().join("pipeline.toml");
    std::fs::write(&spec, text).unwrap();
    let subject = format!("{topic}-value");

    // Nothing registered yet: the subject is named in the error.
    let (ok, out) = validate(&spec);
    assert!(!ok, "{out}");
    assert!(out.contains(&subject) && out.contains("not found"), "{out}");

    // A schema whose `amount` is text: the field and the type are named.
    let reg = client(&reg_url);
    let text_amount = AVRO_V1.replace(
        r#"{"name":"amount","type":"double"}"#,
        r#"{"name":"amount","type":"string"}"#,
    );
    reg.register(&subject, SchemaType::Avro, &text_amount, &[])
        .unwrap();
    let (ok, out) = validate(&spec);
    assert!(!ok, "{out}");
    assert!(out.contains("`amount` is string"), "{out}");

    // A usable version registered on top: valid.
    reg.register(&subject, SchemaType::Avro, AVRO_V1, &[])
        .unwrap();
    let (ok, out) = validate(&spec);
    assert!(ok, "{out}");
    assert!(out.contains("version 2"), "{out}");
}

// --- the demo flow in Avro -----------------------------------------------------------------

#[test]
fn generate_writes_avro_that_run_scores_like_the_oracle() {
    let (Some(b), Some(reg_url)) = (broker(), registry()) else {
        return;
    };
    let reader = harness::repo().join("examples/kafka-avro/transaction.avsc");
    let p = Pipeline::with_edit(&b, 2, "at-least-once", None, |t| {
        t.replace(
            "format = \"json\"",
            &format!("format = \"avro\"\nschema = {:?}", reader.to_str().unwrap()),
        ) + &format!("\n[registry]\nurl = {reg_url:?}\n")
    });
    p.generate(3000, 500, 11);
    run_until_caught_up(&p);
    let k = p.kafka();
    let source = p.read_all(&p.source_topic());
    assert_eq!(source.len(), 3000);
    assert!(
        source.iter().all(|r| r.value.as_deref().unwrap()[0] == 0),
        "Confluent framing"
    );
    assert_eq!(p.read_all(&k.predictions_topic).len(), 3000);
    assert!(p.read_all(&k.dead_letters_topic).is_empty());
    let (oracle, keys) = p.oracle();
    assert!(keys.len() > 100);
    let stored = p.stored();
    let t = nowcast_pipeline::now_ms();
    assert_same_state(&oracle, &stored, &keys, t);
}

// --- Avro predictions ----------------------------------------------------------------------

#[test]
fn predictions_are_written_in_avro_with_a_registered_schema() {
    let (Some(b), Some(reg_url)) = (broker(), registry()) else {
        return;
    };
    let p = Pipeline::with_edit(&b, 2, "exactly-once", None, |t| {
        t.replace("features = false", "features = false\nformat = \"avro\"")
            + &format!("\n[registry]\nurl = {reg_url:?}\n")
    });
    let reg = client(&reg_url);
    let k = p.kafka().clone();
    let subject = format!("{}-value", k.predictions_topic);
    // Before the first run, `validate` finds nothing registered to conflict with.
    let (ok, out) = validate(&p.spec_path);
    assert!(ok, "{out}");
    p.generate(2000, 300, 5);
    run_until_caught_up(&p);

    let preds = p.read_all(&k.predictions_topic);
    assert_eq!(preds.len(), 2000);
    let latest = reg.version(&subject, "latest").unwrap();
    let id = latest.id.unwrap();
    let schema = Schema::parse_str(&latest.schema).unwrap();
    let mut ids = std::collections::HashSet::new();
    for r in &preds {
        let v = r.value.as_deref().unwrap();
        assert_eq!(
            v[..5],
            [
                0,
                (id >> 24) as u8,
                (id >> 16) as u8,
                (id >> 8) as u8,
                id as u8
            ]
        );
        let Value::Record(fields) =
            apache_avro::from_avro_datum(&schema, &mut &v[5..], None).unwrap()
        else {
            panic!("not a record")
        };
        let get = |n: &str| fields.iter().find(|(f, _)| f == n).unwrap().1.clone();
        let Value::String(event_id) = get("event_id") else {
            panic!()
        };
        let Value::Double(score) = get("score") else {
            panic!()
        };
        let Value::String(entity) = get("entity") else {
            panic!()
        };
        assert_eq!(r.key.as_deref(), Some(entity.as_bytes()));
        assert!((0.0..=1.0).contains(&score), "{score}");
        assert!(ids.insert(event_id), "one prediction per event");
        let Value::Record(features) = get("features") else {
            panic!()
        };
        assert_eq!(features.len(), p.spec.model.inputs.len());
    }

    // A registered version nowcast's schema cannot follow makes `validate` fail.
    assert!(reg.subjects().unwrap().contains(&subject));
    reg.set_compatibility(&subject, "BACKWARD").unwrap();
    assert_eq!(
        reg.compatibility(&subject).unwrap().as_deref(),
        Some("BACKWARD")
    );
    let (ok, out) = validate(&p.spec_path);
    assert!(ok, "{out}");
    // A version without `emit_time`: nowcast's schema cannot read its records (BACKWARD).
    let mut older: serde_json::Value = serde_json::from_str(&latest.schema).unwrap();
    older["fields"]
        .as_array_mut()
        .unwrap()
        .retain(|f| f["name"] != "emit_time");
    let stricter = older.to_string();
    reg.set_compatibility(&subject, "NONE").unwrap();
    reg.register(&subject, SchemaType::Avro, &stricter, &[])
        .unwrap();
    reg.set_compatibility(&subject, "BACKWARD").unwrap();
    let (ok, out) = validate(&p.spec_path);
    assert!(!ok, "{out}");
    assert!(
        out.contains("not compatible") && out.contains(&subject),
        "{out}"
    );
}

// --- registry outages ----------------------------------------------------------------------

#[test]
fn a_registry_outage_stops_without_loss_or_dead_letters_by_policy() {
    let (Some(b), Some(reg_url)) = (broker(), registry()) else {
        return;
    };
    let down = "http://127.0.0.1:9";
    let spec_for = |url: &str, policy: &str| {
        let (url, policy) = (url.to_string(), policy.to_string());
        move |t: String| {
            t.replace(
                "format = \"json\"",
                &format!("format = \"avro\"\non_registry_error = \"{policy}\""),
            ) + &format!(
                "\n[registry]\nurl = {url:?}\nretries = 1\nbackoff = \"50ms\"\ntimeout = \"500ms\"\n"
            )
        }
    };
    let reg = client(&reg_url);
    let v1 = Schema::parse_str(AVRO_V1).unwrap();
    let now = nowcast_pipeline::now_ms();

    // `dead_letter`: every record whose schema cannot be fetched is dead-lettered.
    let p = Pipeline::with_edit(&b, 2, "exactly-once", None, spec_for(down, "dead_letter"));
    let id = reg
        .register(
            &format!("{}-value", p.source_topic()),
            SchemaType::Avro,
            AVRO_V1,
            &[],
        )
        .unwrap();
    let evs: Vec<_> = events("d", 50, 10, now - 10_000);
    let batch: Vec<_> = evs
        .iter()
        .map(|e| (e.clone(), avro_v1(&v1, id, e)))
        .collect();
    produce_keyed(&p, &batch);
    run_until_caught_up(&p);
    let k = p.kafka().clone();
    assert_eq!(
        reasons(&p.read_all(&k.dead_letters_topic)),
        [("registry_unavailable".to_string(), 50)]
            .into_iter()
            .collect()
    );

    // `stop` (the default): nothing is committed while the registry is down; once it is back
    // every record is processed and none is dead-lettered.
    let p = Pipeline::with_edit(&b, 2, "exactly-once", None, spec_for(down, "stop"));
    let id = reg
        .register(
            &format!("{}-value", p.source_topic()),
            SchemaType::Avro,
            AVRO_V1,
            &[],
        )
        .unwrap();
    let batch: Vec<_> = evs
        .iter()
        .map(|e| (e.clone(), avro_v1(&v1, id, e)))
        .collect();
    produce_keyed(&p, &batch);
    let (mut child, log) = p.spawn_logged("0", &[]);
    std::thread::sleep(Duration::from_secs(8));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the member keeps retrying"
    );
    assert_eq!(
        p.committed(),
        0,
        "nothing committed past an unresolvable record: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    terminate(&child);
    wait(&mut child, Duration::from_secs(60));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("schema registry"), "{text}");
    // The registry is back (the spec now names the running one).
    let spec = std::fs::read_to_string(&p.spec_path)
        .unwrap()
        .replace(down, &reg_url);
    std::fs::write(&p.spec_path, spec).unwrap();
    run_until_caught_up(&p);
    assert_eq!(p.read_all(&p.kafka().dead_letters_topic).len(), 0);
    assert_eq!(p.read_all(&p.kafka().predictions_topic).len(), 50);
}
