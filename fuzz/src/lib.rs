//! Shared by the fuzz targets and the seed generator: the schemas the targets compile, the
//! needs they read, the invariants they check, and encoders for valid seed records.
//!
//! The invariants are stricter than "no panic": a decoder that returns `Ok` must have
//! written, into every slot, a value whose variant the slot's [`Use`] admits, and a refusal
//! must carry one of the dead-letter reasons a record-level failure may have.

use std::collections::HashMap;

use nowcast_core::RejectReason;
use nowcast_schema::proto::{ProtoReader, ProtoSchema};
use nowcast_schema::wire::{write_varint, write_zigzag};
use nowcast_schema::{DecodeError, Need, Needs, Use, Val};

/// A 12-field card-transaction writer schema: string key, timestamp-millis, doubles, an
/// enum, a `["null","string"]` union, an array, a map, a nested record, a decimal (bytes)
/// and a boolean.
pub const AVRO_CARD: &str = r#"{
  "type": "record", "name": "CardTransaction", "namespace": "com.acme.payments",
  "fields": [
    {"name": "card_id", "type": "string"},
    {"name": "event_time", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "amount", "type": "double"},
    {"name": "fx_rate", "type": "double"},
    {"name": "channel", "type": {"type": "enum", "name": "Channel", "symbols": ["POS", "ECOM", "ATM", "MOTO"]}},
    {"name": "merchant_id", "type": ["null", "string"], "default": null},
    {"name": "mcc", "type": "int"},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "attributes", "type": {"type": "map", "values": "string"}},
    {"name": "device", "type": {"type": "record", "name": "Device", "fields": [
      {"name": "id", "type": "string"},
      {"name": "os", "type": ["null", "string"], "default": null},
      {"name": "trusted", "type": "boolean"}
    ]}},
    {"name": "fee", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
    {"name": "is_contactless", "type": "boolean"}
  ]
}"#;

/// A reader schema for [`AVRO_CARD`] writers: `card_id` renamed `pan_token` (with the old
/// name as an alias), `fx_rate` dropped, `risk_score` and `region` added with defaults.
pub const AVRO_CARD_READER: &str = r#"{
  "type": "record", "name": "CardTransaction", "namespace": "com.acme.payments",
  "fields": [
    {"name": "pan_token", "type": "string", "aliases": ["card_id"]},
    {"name": "event_time", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "amount", "type": "double"},
    {"name": "channel", "type": {"type": "enum", "name": "Channel", "symbols": ["POS", "ECOM", "ATM", "MOTO"]}},
    {"name": "merchant_id", "type": ["null", "string"], "default": null},
    {"name": "mcc", "type": "int"},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "attributes", "type": {"type": "map", "values": "string"}},
    {"name": "device", "type": {"type": "record", "name": "Device", "fields": [
      {"name": "id", "type": "string"},
      {"name": "os", "type": ["null", "string"], "default": null},
      {"name": "trusted", "type": "boolean"}
    ]}},
    {"name": "fee", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
    {"name": "is_contactless", "type": "boolean"},
    {"name": "risk_score", "type": "double", "default": 0.5},
    {"name": "region", "type": "string", "default": "eu-west"}
  ]
}"#;

/// A proto3 card-transaction schema: string key, `google.protobuf.Timestamp`, double, enum,
/// `optional` string, repeated fields (packed and not), a nested message, wrapper types and
/// the other scalar encodings (sint, fixed, uint64, float).
pub const PROTO_CARD: &str = r#"
syntax = "proto3";
package acme.payments.v1;

import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

message Envelope { string note = 1; }

message CardTransaction {
  string card_id = 1;
  google.protobuf.Timestamp event_time = 2;
  double amount = 3;
  Channel channel = 4;
  optional string merchant_id = 5;
  repeated string tags = 6;
  Device device = 7;
  google.protobuf.DoubleValue fee = 8;
  repeated int64 history = 9;
  sint64 balance_delta = 10;
  fixed64 auth_code = 11;
  bool is_contactless = 12;
  uint64 sequence = 13;
  google.protobuf.StringValue note = 14;
  int32 mcc = 15;
  float risk = 16;
  sfixed32 terminal = 17;
  map<string, string> attributes = 18;

  enum Channel { CHANNEL_UNSPECIFIED = 0; POS = 1; ECOM = 2; ATM = 3; }
  message Device { string id = 1; string os = 2; bool trusted = 3; }
}
"#;

/// The full name of the message [`PROTO_CARD`] records hold.
pub const PROTO_MESSAGE: &str = "acme.payments.v1.CardTransaction";

fn need(name: &str, usage: Use) -> Need {
    Need {
        name: name.into(),
        usage,
        required: true,
    }
}

/// What the Avro targets read from [`AVRO_CARD`] records (`fx_rate`, `tags` and `device` are
/// skipped; `attributes` is a map read as a scalar, i.e. `Composite`).
pub fn avro_needs() -> Needs {
    Needs(vec![
        need("card_id", Use::Key),
        need("event_time", Use::Time),
        need("amount", Use::Number),
        need("channel", Use::Scalar),
        need("merchant_id", Use::Scalar),
        need("mcc", Use::Number),
        need("fee", Use::Number),
        need("is_contactless", Use::Scalar),
        need("attributes", Use::Scalar),
    ])
}

/// What the Avro targets read through [`AVRO_CARD_READER`]: the renamed key, and the two
/// fields the writer lacks (filled from the reader defaults).
pub fn avro_reader_needs() -> Needs {
    Needs(vec![
        need("pan_token", Use::Key),
        need("event_time", Use::Time),
        need("amount", Use::Number),
        need("channel", Use::Scalar),
        need("risk_score", Use::Number),
        need("region", Use::Scalar),
        need("fee", Use::Number),
    ])
}

/// What the Protobuf targets read from [`PROTO_MESSAGE`] records (`tags`, `device`,
/// `history` and `attributes` are skipped).
pub fn proto_needs() -> Needs {
    Needs(vec![
        need("card_id", Use::Key),
        need("event_time", Use::Time),
        need("amount", Use::Number),
        need("channel", Use::Scalar),
        need("merchant_id", Use::Scalar),
        need("fee", Use::Number),
        need("balance_delta", Use::Number),
        need("auth_code", Use::Scalar),
        need("is_contactless", Use::Scalar),
        need("sequence", Use::Scalar),
        need("note", Use::Scalar),
        need("mcc", Use::Number),
        need("risk", Use::Number),
        need("terminal", Use::Number),
    ])
}

/// Compiles [`PROTO_CARD`].
pub fn proto_schema() -> ProtoSchema {
    ProtoSchema::compile("card.proto", PROTO_CARD, &HashMap::new()).expect("PROTO_CARD compiles")
}

/// The compiled reader of [`PROTO_MESSAGE`] for [`proto_needs`].
pub fn proto_reader(schema: &ProtoSchema) -> ProtoReader {
    let msg = schema.message_named(PROTO_MESSAGE).expect("message exists");
    ProtoReader::compile(&msg, &proto_needs()).expect("proto needs compile")
}

/// Whether `v` is a value a slot used as `usage` may hold after a successful read
/// (`Absent` is judged separately).
pub fn fits(usage: Use, v: &Val<'_>) -> bool {
    match usage {
        // Text, an integer or an enum symbol; null from a nullable union.
        Use::Key => matches!(v, Val::Str(_) | Val::Int(_) | Val::Null | Val::Absent),
        // Epoch milliseconds, or RFC 3339 text; null from a nullable union.
        Use::Time => matches!(v, Val::Int(_) | Val::Str(_) | Val::Null | Val::Absent),
        // Any integer or floating-point type; null from a nullable union.
        Use::Number => matches!(v, Val::Int(_) | Val::Num(_) | Val::Null | Val::Absent),
        // Any scalar; records, arrays and maps read as `Composite` (skipped).
        Use::Scalar => true,
    }
}

/// Panics (which libFuzzer reports as a crash) unless every slot of a successful read holds
/// a value its use admits. `absent_ok`: whether a slot may be left `Absent` (Protobuf omits
/// fields; an Avro writer schema that compiled for required needs writes every slot).
pub fn check_slots(what: &str, needs: &Needs, vals: &[Val<'_>], absent_ok: bool) {
    assert_eq!(needs.0.len(), vals.len(), "{what}: slot count");
    for (need, v) in needs.0.iter().zip(vals) {
        assert!(
            fits(need.usage, v),
            "{what}: slot `{}` ({:?}) holds {v:?}, which that use does not admit",
            need.name,
            need.usage
        );
        if !absent_ok && need.required {
            assert!(
                !matches!(v, Val::Absent),
                "{what}: required slot `{}` left absent after Ok",
                need.name
            );
        }
    }
}

/// Panics unless a record-level refusal carries a reason a decoder may give a record
/// (a compiled reader's refusals are about the payload, never about the schema).
pub fn check_refusal(what: &str, e: &DecodeError, allowed: &[RejectReason]) {
    assert!(
        allowed.contains(&e.reason),
        "{what}: refused with unexpected reason {:?}: {}",
        e.reason,
        e.detail
    );
    assert!(!e.detail.is_empty(), "{what}: refusal without detail");
}

/// Valid records to seed the corpora with.
pub mod seeds {
    use super::*;

    fn avro_str(out: &mut Vec<u8>, s: &str) {
        write_zigzag(out, s.len() as i64);
        out.extend_from_slice(s.as_bytes());
    }

    /// One [`AVRO_CARD`] datum. `blocks_with_size`: write the array and map as a
    /// negative-count block followed by its size in bytes (the form writers use to allow
    /// skipping).
    #[allow(clippy::too_many_arguments)]
    pub fn avro_card(
        card: &str,
        ts: i64,
        amount: f64,
        channel: i64,
        merchant: Option<&str>,
        tags: &[&str],
        attrs: &[(&str, &str)],
        fee_cents: i64,
        blocks_with_size: bool,
    ) -> Vec<u8> {
        let mut o = Vec::new();
        avro_str(&mut o, card);
        write_zigzag(&mut o, ts);
        o.extend_from_slice(&amount.to_le_bytes());
        o.extend_from_slice(&1.0842f64.to_le_bytes());
        write_zigzag(&mut o, channel);
        match merchant {
            None => write_zigzag(&mut o, 0),
            Some(m) => {
                write_zigzag(&mut o, 1);
                avro_str(&mut o, m);
            }
        }
        write_zigzag(&mut o, 5411); // mcc
        let mut block = Vec::new();
        for t in tags {
            avro_str(&mut block, t);
        }
        write_block(&mut o, tags.len(), &block, blocks_with_size);
        let mut block = Vec::new();
        for (k, v) in attrs {
            avro_str(&mut block, k);
            avro_str(&mut block, v);
        }
        write_block(&mut o, attrs.len(), &block, blocks_with_size);
        // device
        avro_str(&mut o, "dev-42");
        write_zigzag(&mut o, 1);
        avro_str(&mut o, "android");
        o.push(1);
        // fee: decimal bytes, minimal two's complement big-endian
        let be = fee_cents.to_be_bytes();
        let mut start = 0;
        while start < 7
            && ((be[start] == 0 && be[start + 1] & 0x80 == 0)
                || (be[start] == 0xff && be[start + 1] & 0x80 != 0))
        {
            start += 1;
        }
        write_zigzag(&mut o, (8 - start) as i64);
        o.extend_from_slice(&be[start..]);
        o.push(0); // is_contactless
        o
    }

    fn write_block(o: &mut Vec<u8>, n: usize, items: &[u8], with_size: bool) {
        if n > 0 {
            if with_size {
                write_zigzag(o, -(n as i64));
                write_zigzag(o, items.len() as i64);
            } else {
                write_zigzag(o, n as i64);
            }
            o.extend_from_slice(items);
        }
        write_zigzag(o, 0);
    }

    /// A handful of valid [`AVRO_CARD`] datums.
    pub fn avro_cards() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            (
                "full",
                avro_card(
                    "card-0001",
                    1_700_000_000_123,
                    42.5,
                    1,
                    Some("m-77"),
                    &["online", "3ds"],
                    &[("ip", "10.0.0.1"), ("ua", "x")],
                    1999,
                    false,
                ),
            ),
            (
                "null_merchant_sized_blocks",
                avro_card("c", 0, -0.0, 3, None, &["a"], &[("k", "v")], -5, true),
            ),
            (
                "empty_collections",
                avro_card("", -1, f64::MAX, 0, Some(""), &[], &[], 0, false),
            ),
        ]
    }

    fn tag(o: &mut Vec<u8>, number: u32, wire: u8) {
        write_varint(o, (u64::from(number) << 3) | u64::from(wire));
    }

    fn pb_bytes(o: &mut Vec<u8>, number: u32, b: &[u8]) {
        tag(o, number, 2);
        write_varint(o, b.len() as u64);
        o.extend_from_slice(b);
    }

    /// One [`PROTO_MESSAGE`] record.
    pub fn proto_card(card: &str, secs: i64, nanos: i32, merchant: Option<&str>) -> Vec<u8> {
        let mut o = Vec::new();
        pb_bytes(&mut o, 1, card.as_bytes());
        let mut ts = Vec::new();
        tag(&mut ts, 1, 0);
        write_varint(&mut ts, secs as u64);
        tag(&mut ts, 2, 0);
        write_varint(&mut ts, nanos as i64 as u64);
        pb_bytes(&mut o, 2, &ts);
        tag(&mut o, 3, 1);
        o.extend_from_slice(&12.25f64.to_le_bytes());
        tag(&mut o, 4, 0);
        write_varint(&mut o, 2);
        if let Some(m) = merchant {
            pb_bytes(&mut o, 5, m.as_bytes());
        }
        pb_bytes(&mut o, 6, b"online");
        pb_bytes(&mut o, 6, b"3ds");
        let mut dev = Vec::new();
        pb_bytes(&mut dev, 1, b"dev-42");
        tag(&mut dev, 3, 0);
        write_varint(&mut dev, 1);
        pb_bytes(&mut o, 7, &dev);
        let mut fee = Vec::new();
        tag(&mut fee, 1, 1);
        fee.extend_from_slice(&0.35f64.to_le_bytes());
        pb_bytes(&mut o, 8, &fee);
        // history, packed
        let mut hist = Vec::new();
        for v in [1u64, 300, u64::MAX] {
            write_varint(&mut hist, v);
        }
        pb_bytes(&mut o, 9, &hist);
        tag(&mut o, 10, 0);
        write_zigzag(&mut o, -1234);
        tag(&mut o, 11, 1);
        o.extend_from_slice(&u64::MAX.to_le_bytes());
        tag(&mut o, 12, 0);
        write_varint(&mut o, 1);
        tag(&mut o, 13, 0);
        write_varint(&mut o, u64::MAX - 1);
        let mut note = Vec::new();
        pb_bytes(&mut note, 1, b"hello");
        pb_bytes(&mut o, 14, &note);
        tag(&mut o, 15, 0);
        write_varint(&mut o, (-7i64) as u64); // int32 negative: 10-byte varint
        tag(&mut o, 16, 5);
        o.extend_from_slice(&0.75f32.to_le_bytes());
        tag(&mut o, 17, 5);
        o.extend_from_slice(&(-3i32).to_le_bytes());
        let mut entry = Vec::new();
        pb_bytes(&mut entry, 1, b"ip");
        pb_bytes(&mut entry, 2, b"10.0.0.1");
        pb_bytes(&mut o, 18, &entry);
        o
    }

    /// A handful of valid [`PROTO_MESSAGE`] records.
    pub fn proto_cards() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            (
                "full",
                proto_card("card-0001", 1_700_000_000, 250_000_000, Some("m-77")),
            ),
            ("no_merchant", proto_card("c", 0, 0, None)),
            ("negative_time", proto_card("", -1, -1, Some(""))),
            ("empty", Vec::new()),
        ]
    }
}
