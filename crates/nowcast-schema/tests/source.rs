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
    let (reader, payload) = src.resolve(&bytes).unwrap();
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
    let dl = source(OnRegistryError::DeadLetter);
    let err = dl.resolve(&record).err().unwrap().unwrap();
    assert_eq!(err.reason, RejectReason::RegistryUnavailable);
    assert!(err.detail.contains("schema id 1"), "{}", err.detail);
    let stop = source(OnRegistryError::Stop);
    let stopped = stop.resolve(&record).err().unwrap().unwrap_err();
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

/// A one-endpoint HTTP server: answers each connection with the next of `answers`
/// (status, body) and records the request heads it saw.
fn serve(answers: Vec<(u16, &'static str)>) -> (String, std::thread::JoinHandle<Vec<String>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut heads = Vec::new();
        for (status, body) in answers {
            let (mut conn, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            heads.push(head);
            write!(
                conn,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        }
        heads
    });
    (url, handle)
}

#[test]
fn basic_auth_is_sent_and_server_errors_are_retried() {
    let (url, server) = serve(vec![
        (503, r#"{"error_code":50301,"message":"busy"}"#),
        (200, r#"{"schema":"\"string\""}"#),
    ]);
    let mut cfg = RegistryConfig::new(url);
    cfg.username = Some("svc".into());
    cfg.password = Some("s3cret".into());
    cfg.backoff = Duration::from_millis(1);
    let schema = Registry::new(&cfg).unwrap().schema_by_id(42).unwrap();
    assert_eq!(schema.schema, "\"string\"");
    assert_eq!(schema.schema_type, nowcast_schema::SchemaType::Avro);
    let heads = server.join().unwrap();
    assert_eq!(heads.len(), 2, "one retry after the 503");
    for h in &heads {
        assert!(h.starts_with("GET /schemas/ids/42 "), "{h}");
        // base64("svc:s3cret")
        let auth = h
            .lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            })
            .map(|(_, v)| v.trim());
        assert_eq!(auth, Some("Basic c3ZjOnMzY3JldA=="), "{h}");
    }
}

#[test]
fn client_errors_are_not_retried_and_unknown_ids_are_not_found() {
    let (url, server) = serve(vec![(
        404,
        r#"{"error_code":40403,"message":"Schema 7 not found."}"#,
    )]);
    let err = Registry::new(&RegistryConfig::new(url))
        .unwrap()
        .schema_by_id(7)
        .unwrap_err();
    assert_eq!(err.reason(), RejectReason::UnknownSchema);
    assert_eq!(server.join().unwrap().len(), 1);
}
