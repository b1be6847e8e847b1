//! The per-source path: bare framing with a local schema, and what a registry outage does
//! under each policy.

#![allow(deprecated)] // apache_avro::to_avro_datum: the reference encoder for test input

use std::sync::Arc;
use std::time::Duration;

use apache_avro::types::Record;
use apache_avro::{to_avro_datum, Schema};
use nowcast_core::RejectReason;
use nowcast_schema::{
    Format, Framing, LocalSchema, Need, Needs, OnRegistryError, Registry, RegistryConfig,
    SchemaSource, SourceConfig, Use, Val,
};

const SCHEMA: &str = r#"{"type":"record","name":"E","fields":[{"name":"k","type":"string"},{"name":"t","type":"long"}]}"#;

fn needs() -> Needs {
    Needs(vec![
        Need {
            name: "k".into(),
            usage: Use::Key,
            required: true,
        },
        Need {
            name: "t".into(),
            usage: Use::Time,
            required: true,
        },
    ])
}

fn unreachable_registry() -> Arc<Registry> {
    let mut cfg = RegistryConfig::new("http://127.0.0.1:9");
    cfg.retries = 1;
    cfg.backoff = Duration::from_millis(1);
    cfg.timeout = Duration::from_millis(300);
    Arc::new(Registry::new(&cfg).unwrap())
}

fn source(policy: OnRegistryError) -> SchemaSource {
    SchemaSource::new(
        SourceConfig {
            format: Format::Avro,
            framing: Framing::Confluent,
            local: None,
            on_registry_error: policy,
        },
        needs(),
        Some(unreachable_registry()),
    )
    .unwrap()
}

#[test]
fn bare_records_read_with_the_local_schema() {
    let schema = Schema::parse_str(SCHEMA).unwrap();
    let src = SchemaSource::new(
        SourceConfig {
            format: Format::Avro,
            framing: Framing::Bare,
            local: Some(LocalSchema::Avro(schema.clone())),
            on_registry_error: OnRegistryError::Stop,
        },
        needs(),
        None,
    )
    .unwrap();
    let mut r = Record::new(&schema).unwrap();
    r.put("k", "a");
    r.put("t", 7i64);
    let bytes = to_avro_datum(&schema, r).unwrap();
    let mut path = Vec::new();
    let (reader, payload) = src.resolve(&bytes, &mut path).unwrap();
    let mut vals = vec![Val::Absent; 2];
    reader
        .as_ref()
        .as_ref()
        .unwrap()
        .read(payload, &mut vals)
        .unwrap();
    assert_eq!(vals, vec![Val::Str("a".into()), Val::Int(7)]);
}

#[test]
fn a_registry_outage_dead_letters_or_stops_by_policy() {
    let record = [0u8, 0, 0, 0, 1, 2, b'a', 14];
    let mut path = Vec::new();
    let dl = source(OnRegistryError::DeadLetter);
    let err = dl.resolve(&record, &mut path).err().unwrap().unwrap();
    assert_eq!(err.reason, RejectReason::RegistryUnavailable);
    assert!(err.detail.contains("schema id 1"), "{}", err.detail);
    let stop = source(OnRegistryError::Stop);
    let stopped = stop.resolve(&record, &mut path).err().unwrap().unwrap_err();
    assert_eq!(stopped.0.reason, RejectReason::RegistryUnavailable);
}

#[test]
fn confluent_framing_without_a_registry_is_a_configuration_error() {
    let err = SchemaSource::new(
        SourceConfig {
            format: Format::Avro,
            framing: Framing::Confluent,
            local: None,
            on_registry_error: OnRegistryError::Stop,
        },
        needs(),
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("[registry]"), "{err}");
}
