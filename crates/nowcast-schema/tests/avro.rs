//! Avro decoding: values, resolution (defaults, aliases, promotion), refusals, and garbage.
#![allow(deprecated)] // to_avro_datum: the simplest reference encoder for tests

use std::borrow::Cow;

use apache_avro::types::{Record, Value};
use apache_avro::{to_avro_datum, Schema};
use nowcast_core::RejectReason;
use nowcast_schema::avro::AvroReader;
use nowcast_schema::{Need, Needs, Use, Val};
use proptest::prelude::*;

const V1: &str = r#"{"type":"record","name":"Tx","namespace":"shop","fields":[
  {"name":"user_id","type":"string"},
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-micros"}},
  {"name":"amount","type":"double"},
  {"name":"country","type":{"type":"enum","name":"Country","symbols":["US","DE","FR"]}},
  {"name":"tags","type":{"type":"array","items":"string"}},
  {"name":"extra","type":{"type":"map","values":"long"}},
  {"name":"merchant","type":["null","string"],"default":null},
  {"name":"qty","type":"int"}
]}"#;

/// v2 adds `channel` with a default and drops nothing.
const V2: &str = r#"{"type":"record","name":"Tx","namespace":"shop","fields":[
  {"name":"user_id","type":"string"},
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-micros"}},
  {"name":"amount","type":"double"},
  {"name":"country","type":{"type":"enum","name":"Country","symbols":["US","DE","FR"]}},
  {"name":"tags","type":{"type":"array","items":"string"}},
  {"name":"extra","type":{"type":"map","values":"long"}},
  {"name":"merchant","type":["null","string"],"default":null},
  {"name":"qty","type":"int"},
  {"name":"channel","type":"string","default":"web"}
]}"#;

fn need(name: &str, usage: Use) -> Need {
    Need {
        name: name.into(),
        usage,
        required: true,
    }
}

fn needs() -> Needs {
    Needs(vec![
        need("user_id", Use::Key),
        need("ts", Use::Time),
        need("amount", Use::Number),
        need("country", Use::Scalar),
        need("merchant", Use::Scalar),
        need("qty", Use::Number),
    ])
}

fn v1_record(schema: &Schema, merchant: Option<&str>) -> Vec<u8> {
    let mut r = Record::new(schema).unwrap();
    r.put("user_id", "u-17");
    r.put("ts", Value::TimestampMicros(1_700_000_000_123_456));
    r.put("amount", 42.5f64);
    r.put("country", Value::Enum(1, "DE".into()));
    r.put(
        "tags",
        Value::Array(vec![Value::String("a".into()), Value::String("b".into())]),
    );
    r.put(
        "extra",
        Value::Map([("k".to_string(), Value::Long(7))].into()),
    );
    r.put(
        "merchant",
        match merchant {
            Some(m) => Value::Union(1, Box::new(Value::String(m.into()))),
            None => Value::Union(0, Box::new(Value::Null)),
        },
    );
    r.put("qty", 3i32);
    to_avro_datum(schema, r).unwrap()
}

fn read<'a>(
    r: &'a AvroReader,
    bytes: &'a [u8],
    n: usize,
) -> Result<Vec<Val<'a>>, nowcast_schema::DecodeError> {
    let mut vals = vec![Val::Absent; n];
    r.read(bytes, &mut vals)?;
    Ok(vals)
}

#[test]
fn reads_the_needed_fields_and_skips_the_rest() {
    let w = Schema::parse_str(V1).unwrap();
    let r = AvroReader::compile(&w, None, &needs()).unwrap();
    let bytes = v1_record(&w, Some("m-1"));
    let vals = read(&r, &bytes, 6).unwrap();
    assert_eq!(
        vals,
        vec![
            Val::Str(Cow::Borrowed("u-17")),
            Val::Int(1_700_000_000_123), // micros → millis
            Val::Num(42.5),
            Val::Str(Cow::Borrowed("DE")),
            Val::Str(Cow::Borrowed("m-1")),
            Val::Int(3),
        ]
    );
    let bytes = v1_record(&w, None);
    assert_eq!(read(&r, &bytes, 6).unwrap()[4], Val::Null);
}

#[test]
fn a_field_the_writer_lacks_takes_the_reader_default() {
    let v1 = Schema::parse_str(V1).unwrap();
    let v2 = Schema::parse_str(V2).unwrap();
    let mut n = needs();
    n.0.push(need("channel", Use::Scalar));
    // Without a reader schema a v1 writer cannot feed `channel`.
    let err = AvroReader::compile(&v1, None, &n).unwrap_err();
    assert_eq!(err.reason, RejectReason::MissingField);
    assert!(err.detail.contains("`channel`"), "{}", err.detail);
    // With v2 as the reader schema, v1 records read the default.
    let r = AvroReader::compile(&v1, Some(&v2), &n).unwrap();
    let bytes = v1_record(&v1, None);
    assert_eq!(
        read(&r, &bytes, 7).unwrap()[6],
        Val::Str(Cow::Borrowed("web"))
    );
}

#[test]
fn a_reader_alias_matches_a_renamed_writer_field() {
    let writer = Schema::parse_str(
        r#"{"type":"record","name":"T","fields":[{"name":"uid","type":"string"},{"name":"t","type":"long"}]}"#,
    )
    .unwrap();
    let reader = Schema::parse_str(
        r#"{"type":"record","name":"T","fields":[{"name":"user_id","type":"string","aliases":["uid"]},{"name":"t","type":"long"}]}"#,
    )
    .unwrap();
    let n = Needs(vec![need("user_id", Use::Key), need("t", Use::Time)]);
    let r = AvroReader::compile(&writer, Some(&reader), &n).unwrap();
    let mut rec = Record::new(&writer).unwrap();
    rec.put("uid", "x");
    rec.put("t", 5i64);
    let bytes = to_avro_datum(&writer, rec).unwrap();
    assert_eq!(
        read(&r, &bytes, 2).unwrap(),
        vec![Val::Str("x".into()), Val::Int(5)]
    );
}

#[test]
fn unusable_types_are_refused_with_the_field_named() {
    let w = Schema::parse_str(
        r#"{"type":"record","name":"T","fields":[{"name":"user_id","type":"string"},{"name":"ts","type":"long"},{"name":"amount","type":"string"}]}"#,
    )
    .unwrap();
    let n = Needs(vec![
        need("user_id", Use::Key),
        need("ts", Use::Time),
        need("amount", Use::Number),
    ]);
    let err = AvroReader::compile(&w, None, &n).unwrap_err();
    assert_eq!(err.reason, RejectReason::TypeMismatch);
    assert!(err.detail.contains("`amount` is string"), "{}", err.detail);
    let top = Schema::parse_str(r#""string""#).unwrap();
    assert_eq!(
        AvroReader::compile(&top, None, &n).unwrap_err().reason,
        RejectReason::BadSchema
    );
}

#[test]
fn truncated_or_padded_records_are_corrupt() {
    let w = Schema::parse_str(V1).unwrap();
    let r = AvroReader::compile(&w, None, &needs()).unwrap();
    let bytes = v1_record(&w, Some("m-1"));
    for cut in 0..bytes.len() {
        let err = read(&r, &bytes[..cut], 6).unwrap_err();
        assert_eq!(err.reason, RejectReason::CorruptPayload, "cut at {cut}");
    }
    let mut padded = bytes.clone();
    padded.push(0);
    assert!(read(&r, &padded, 6)
        .unwrap_err()
        .detail
        .contains("1 bytes follow"));
}

proptest! {
    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let w = Schema::parse_str(V1).unwrap();
        let r = AvroReader::compile(&w, None, &needs()).unwrap();
        let mut vals = vec![Val::Absent; 6];
        let _ = r.read(&bytes, &mut vals);
    }
}

/// Found while writing the fuzz targets (a hand-built `avro_schema` input, kept in
/// fuzz/seeds): a record type used twice at every level expanded exponentially.
#[test]
fn a_schema_that_expands_exponentially_is_refused_quickly() {
    let depth = 30;
    let mut ty = format!(r#"{{"type":"record","name":"r{depth}","fields":[]}}"#);
    for i in (0..depth).rev() {
        ty = format!(
            r#"{{"type":"record","name":"r{i}","fields":[{{"name":"a","type":{ty}}},{{"name":"b","type":"r{}"}}]}}"#,
            i + 1
        );
    }
    let w = Schema::parse_str(&ty).unwrap();
    // Unbounded, this would build ~2^30 operations (time and memory run out long before).
    let err = AvroReader::compile(&w, None, &Needs(vec![need("k", Use::Key)])).unwrap_err();
    assert_eq!(err.reason, RejectReason::BadSchema);
    assert!(err.detail.contains("expands"), "{}", err.detail);
}
