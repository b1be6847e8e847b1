//! Arbitrary text as an Avro schema: `avro::parse`, then, when it parses, `AvroReader::compile`
//! with needs derived from its fields (and with the schema as its own reader schema), then a
//! read of a few fixed payloads and of the bytes after the first NUL (JSON text cannot hold a
//! raw NUL, so the input is `schema \0 payload`). Covers recursive, deeply nested and odd
//! schemas: compiling must end (with `bad_schema` for recursion) and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nowcast_core::RejectReason;
use nowcast_fuzz::{check_refusal, check_slots};
use nowcast_schema::avro::{parse, AvroReader};
use nowcast_schema::{Need, Needs, Use, Val};

use apache_avro::Schema;

const PAYLOADS: &[&[u8]] = &[
    b"",
    &[0],
    &[0; 16],
    &[2, b'a', 4, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1, 0],
    &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
    &[1, 1, 1, 1, 1, 1, 1, 1],
];

const USES: [Use; 4] = [Use::Key, Use::Time, Use::Number, Use::Scalar];

const COMPILE_REASONS: &[RejectReason] = &[
    RejectReason::BadSchema,
    RejectReason::TypeMismatch,
    RejectReason::MissingField,
];
const READ_REASONS: &[RejectReason] = &[RejectReason::CorruptPayload, RejectReason::TypeMismatch];

fn needs_for(schema: &Schema, salt: u8) -> Vec<Needs> {
    let mut sets = vec![
        // Names a schema may well use, none of which need be there.
        Needs(vec![
            Need {
                name: "id".into(),
                usage: Use::Key,
                required: false,
            },
            Need {
                name: "ts".into(),
                usage: Use::Time,
                required: false,
            },
            Need {
                name: "amount".into(),
                usage: Use::Number,
                required: false,
            },
            Need {
                name: "a".into(),
                usage: Use::Scalar,
                required: true,
            },
        ]),
    ];
    if let Schema::Record(r) = schema {
        let fields: Vec<&str> = r.fields.iter().take(16).map(|f| f.name.as_str()).collect();
        // Every field, uses rotated by the salt; and every field as a plain scalar.
        sets.push(Needs(
            fields
                .iter()
                .enumerate()
                .map(|(i, n)| Need {
                    name: (*n).into(),
                    usage: USES[(i + salt as usize) % 4],
                    required: !(i + salt as usize).is_multiple_of(3),
                })
                .collect(),
        ));
        sets.push(Needs(
            fields
                .iter()
                .map(|n| Need {
                    name: (*n).into(),
                    usage: Use::Scalar,
                    required: true,
                })
                .collect(),
        ));
    }
    sets
}

fn read_all(r: &AvroReader, needs: &Needs, payload: Option<&[u8]>) {
    for p in PAYLOADS.iter().copied().chain(payload) {
        let mut vals = vec![Val::Absent; needs.0.len()];
        match r.read(p, &mut vals) {
            // Fields the writer lacks that are not required stay absent.
            Ok(()) => check_slots("avro_schema", needs, &vals, true),
            Err(e) => check_refusal("avro_schema read", &e, READ_REASONS),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (text, payload) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(schema) = parse(text) else {
        return;
    };
    let salt = text.len() as u8;
    for needs in needs_for(&schema, salt) {
        for reader in [None, Some(&schema)] {
            match AvroReader::compile(&schema, reader, &needs) {
                Ok(r) => read_all(&r, &needs, payload),
                Err(e) => check_refusal("avro_schema compile", &e, COMPILE_REASONS),
            }
        }
    }
});
