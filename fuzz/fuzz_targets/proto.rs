//! A compiled `ProtoReader` for a proto3 card-transaction message reading arbitrary bytes;
//! the same bytes also as a Confluent message-index list resolved in the schema.
//! Invariants: no panic; on Ok every slot holds a value its `Use` admits; a refusal is
//! `corrupt_payload`; reading is deterministic.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use nowcast_core::RejectReason;
use nowcast_fuzz::{check_refusal, check_slots, proto_needs, proto_reader, proto_schema};
use nowcast_schema::proto::{ProtoReader, ProtoSchema};
use nowcast_schema::wire::read_message_indexes;
use nowcast_schema::{Needs, Val};

static FIXTURE: LazyLock<(ProtoSchema, ProtoReader, Needs)> = LazyLock::new(|| {
    let schema = proto_schema();
    let reader = proto_reader(&schema);
    (schema, reader, proto_needs())
});

fuzz_target!(|data: &[u8]| {
    let (schema, reader, needs) = &*FIXTURE;
    let mut vals = vec![Val::Absent; needs.0.len()];
    let res = reader.read(data, &mut vals);
    match &res {
        Ok(()) => check_slots("proto", needs, &vals, true),
        Err(e) => check_refusal("proto", e, &[RejectReason::CorruptPayload]),
    }
    let mut again = vec![Val::Absent; needs.0.len()];
    let res2 = reader.read(data, &mut again);
    assert_eq!(res.is_ok(), res2.is_ok(), "not deterministic");
    if res.is_ok() {
        assert_eq!(
            format!("{vals:?}"),
            format!("{again:?}"),
            "not deterministic"
        );
    }

    // The bytes as a message-index path into the schema.
    let mut buf = data;
    let mut path = Vec::new();
    if read_message_indexes(&mut buf, &mut path).is_ok() {
        match schema.message_at(&path) {
            Ok(m) => {
                let back = schema.path_of(&m).expect("a resolved message has a path");
                assert_eq!(back, path, "message_at and path_of disagree");
            }
            Err(e) => check_refusal("message_at", &e, &[RejectReason::BadMessageIndex]),
        }
    }
});
