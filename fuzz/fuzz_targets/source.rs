//! The full path the pipeline takes for a bare-framed source: `SchemaSource::resolve` then
//! the resolved `Compiled` reader, for an Avro local schema and a Protobuf local schema.
//! (Confluent framing resolves ids in a registry over HTTP, so only `Bare` is fuzzed here;
//! the Confluent header and message indexes are covered by the `wire` and `proto` targets.)
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use nowcast_core::RejectReason;
use nowcast_fuzz::{
    avro_needs, check_refusal, check_slots, proto_needs, proto_schema, AVRO_CARD, PROTO_MESSAGE,
};
use nowcast_schema::avro::parse;
use nowcast_schema::{
    Format, Framing, LocalSchema, Needs, OnRegistryError, SchemaSource, SourceConfig, Val,
};

struct Fixture {
    avro: SchemaSource,
    avro_needs: Needs,
    proto: SchemaSource,
    proto_needs: Needs,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let avro_needs = avro_needs();
    let proto_needs = proto_needs();
    let avro = SchemaSource::new(
        SourceConfig {
            format: Format::Avro,
            framing: Framing::Bare,
            local: Some(LocalSchema::Avro(parse(AVRO_CARD).expect("parses"))),
            on_registry_error: OnRegistryError::DeadLetter,
        },
        avro_needs.clone(),
        None,
    )
    .expect("avro source");
    let proto = SchemaSource::new(
        SourceConfig {
            format: Format::Protobuf,
            framing: Framing::Bare,
            local: Some(LocalSchema::Protobuf {
                schema: proto_schema(),
                message: PROTO_MESSAGE.into(),
            }),
            on_registry_error: OnRegistryError::Stop,
        },
        proto_needs.clone(),
        None,
    )
    .expect("proto source");
    Fixture {
        avro,
        avro_needs,
        proto,
        proto_needs,
    }
});

fn run(what: &str, source: &SchemaSource, needs: &Needs, data: &[u8], absent_ok: bool) {
    let (reader, payload) = match source.resolve(data) {
        Ok(r) => r,
        Err(Ok(e)) => panic!("{what}: bare framing refused a record at resolve: {e}"),
        Err(Err(stop)) => panic!("{what}: bare framing asked to stop: {}", stop.0),
    };
    assert_eq!(payload, data, "{what}: bare framing strips nothing");
    let compiled = reader
        .as_ref()
        .as_ref()
        .expect("bare reader compiled in new");
    let mut vals = vec![Val::Absent; needs.0.len()];
    match compiled.read(payload, &mut vals) {
        Ok(()) => check_slots(what, needs, &vals, absent_ok),
        Err(e) => check_refusal(
            what,
            &e,
            &[RejectReason::CorruptPayload, RejectReason::TypeMismatch],
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let f = &*FIXTURE;
    run("source/avro", &f.avro, &f.avro_needs, data, false);
    run("source/proto", &f.proto, &f.proto_needs, data, true);
});
