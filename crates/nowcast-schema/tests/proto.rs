//! Protobuf decoding: values by field number, presence and defaults, message indexes,
//! well-known types, refusals, and garbage.

use std::borrow::Cow;
use std::collections::HashMap;

use nowcast_core::RejectReason;
use nowcast_schema::proto::{ProtoReader, ProtoSchema};
use nowcast_schema::{Need, Needs, Use, Val};
use proptest::prelude::*;
use prost::Message;
use prost_reflect::{DynamicMessage, Value};

const PROTO: &str = r#"
syntax = "proto3";
package shop.v1;
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

message Envelope { string note = 1; }

message Tx {
  string user_id = 1;
  google.protobuf.Timestamp ts = 2;
  double amount = 3;
  Country country = 4;
  repeated string tags = 5;
  optional string merchant = 6;
  int32 qty = 7;
  google.protobuf.DoubleValue discount = 8;
  message Line { int64 sku = 1; }
  repeated Line lines = 9;
  enum Country { US = 0; DE = 1; FR = 2; }
}
"#;

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
        need("discount", Use::Number),
    ])
}

fn schema() -> ProtoSchema {
    ProtoSchema::compile("tx.proto", PROTO, &HashMap::new()).unwrap()
}

fn tx(schema: &ProtoSchema, with_merchant: bool) -> Vec<u8> {
    let desc = schema.message_named("shop.v1.Tx").unwrap();
    let mut m = DynamicMessage::new(desc.clone());
    m.set_field_by_name("user_id", Value::String("u-9".into()));
    let ts_desc = desc.get_field_by_name("ts").unwrap();
    let mut ts = DynamicMessage::new(ts_desc.kind().as_message().unwrap().clone());
    ts.set_field_by_name("seconds", Value::I64(1_700_000_000));
    ts.set_field_by_name("nanos", Value::I32(250_000_000));
    m.set_field_by_name("ts", Value::Message(ts));
    m.set_field_by_name("amount", Value::F64(12.25));
    m.set_field_by_name("country", Value::EnumNumber(2));
    m.set_field_by_name(
        "tags",
        Value::List(vec![Value::String("a".into()), Value::String("b".into())]),
    );
    if with_merchant {
        m.set_field_by_name("merchant", Value::String("m-3".into()));
    }
    m.encode_to_vec()
}

fn read<'a>(
    r: &'a ProtoReader,
    bytes: &'a [u8],
) -> Result<Vec<Val<'a>>, nowcast_schema::DecodeError> {
    let mut vals = vec![Val::Absent; 7];
    r.read(bytes, &mut vals)?;
    Ok(vals)
}

#[test]
fn reads_fields_by_number_with_proto3_defaults_and_presence() {
    let s = schema();
    let r = ProtoReader::compile(&s.message_named("shop.v1.Tx").unwrap(), &needs()).unwrap();
    let bytes = tx(&s, true);
    assert_eq!(
        read(&r, &bytes).unwrap(),
        vec![
            Val::Str(Cow::Borrowed("u-9")),
            Val::Int(1_700_000_000_250),
            Val::Num(12.25),
            Val::Str(Cow::Borrowed("FR")),
            Val::Str(Cow::Borrowed("m-3")),
            Val::Int(0), // qty omitted: proto3 default
            Val::Absent, // discount: a wrapper, unset
        ]
    );
    // `optional` has presence: unset reads as absent, not "".
    let bytes = tx(&s, false);
    assert_eq!(read(&r, &bytes).unwrap()[4], Val::Absent);
}

#[test]
fn message_indexes_select_nested_messages_and_out_of_range_is_refused() {
    let s = schema();
    let tx = s.message_at(&[1]).unwrap();
    assert_eq!(tx.full_name(), "shop.v1.Tx");
    assert_eq!(
        s.message_at(&[1, 0]).unwrap().full_name(),
        "shop.v1.Tx.Line"
    );
    assert_eq!(s.path_of(&tx), Some(vec![1]));
    let err = s.message_at(&[5]).unwrap_err();
    assert_eq!(err.reason, RejectReason::BadMessageIndex);
    assert!(err.detail.contains("2 top-level"), "{}", err.detail);
    assert_eq!(
        s.message_at(&[1, 3]).unwrap_err().reason,
        RejectReason::BadMessageIndex
    );
}

#[test]
fn missing_and_mistyped_fields_are_refused_at_compile() {
    let s = schema();
    let env = s.message_named("shop.v1.Envelope").unwrap();
    let err = ProtoReader::compile(&env, &needs()).unwrap_err();
    assert_eq!(err.reason, RejectReason::MissingField);
    let tx = s.message_named("shop.v1.Tx").unwrap();
    let err = ProtoReader::compile(&tx, &Needs(vec![need("tags", Use::Number)])).unwrap_err();
    assert_eq!(err.reason, RejectReason::TypeMismatch);
    assert!(err.detail.contains("repeated string"), "{}", err.detail);
}

#[test]
fn a_field_with_the_wrong_wire_type_is_corrupt() {
    let s = schema();
    let r = ProtoReader::compile(&s.message_named("shop.v1.Tx").unwrap(), &needs()).unwrap();
    // Field 3 (amount, double = wire type 1) sent as a varint.
    let err = read(&r, &[3 << 3, 5]).unwrap_err();
    assert_eq!(err.reason, RejectReason::CorruptPayload);
    assert!(err.detail.contains("`amount`"), "{}", err.detail);
}

#[test]
fn truncated_records_are_corrupt() {
    let s = schema();
    let r = ProtoReader::compile(&s.message_named("shop.v1.Tx").unwrap(), &needs()).unwrap();
    let bytes = tx(&s, true);
    // Every cut inside a field fails; a cut at a field boundary is a shorter valid message.
    let mut failures = 0;
    for cut in 1..bytes.len() {
        if let Err(e) = read(&r, &bytes[..cut]) {
            assert_eq!(e.reason, RejectReason::CorruptPayload);
            failures += 1;
        }
    }
    assert!(failures > bytes.len() / 2);
}

proptest! {
    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let s = schema();
        let r = ProtoReader::compile(&s.message_named("shop.v1.Tx").unwrap(), &needs()).unwrap();
        let mut vals = vec![Val::Absent; 7];
        let _ = r.read(&bytes, &mut vals);
    }
}
