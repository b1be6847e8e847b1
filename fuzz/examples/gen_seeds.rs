//! Writes the seed inputs of every fuzz target to `fuzz/seeds/<target>/` (or the directory
//! given as the first argument), checking each valid record against the decoders and, for
//! Avro, against the apache-avro reference decoder.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example gen_seeds

use std::path::{Path, PathBuf};

use nowcast_fuzz::seeds::{avro_cards, proto_cards};
use nowcast_fuzz::{
    avro_needs, avro_reader_needs, check_slots, proto_needs, proto_reader, proto_schema, AVRO_CARD,
    AVRO_CARD_READER,
};
use nowcast_schema::avro::{parse, AvroReader};
use nowcast_schema::wire::{write_header, write_message_indexes};
use nowcast_schema::Val;

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).expect("create seed dir");
    std::fs::write(d.join(name), bytes).expect("write seed");
}

/// Schemas for `avro_schema`: ordinary, recursive, nested, and odd ones.
const SCHEMAS: &[(&str, &str)] = &[
    (
        "linked_list",
        r#"{"type":"record","name":"Node","fields":[{"name":"id","type":"long"},{"name":"next","type":["null","Node"]}]}"#,
    ),
    (
        "self_direct",
        r#"{"type":"record","name":"Loop","fields":[{"name":"a","type":"string"},{"name":"me","type":{"type":"array","items":"Loop"}}]}"#,
    ),
    (
        "logical_types",
        r#"{"type":"record","name":"T","fields":[{"name":"id","type":{"type":"string","logicalType":"uuid"}},{"name":"ts","type":{"type":"long","logicalType":"timestamp-micros"}},{"name":"d","type":{"type":"int","logicalType":"date"}},{"name":"n","type":{"type":"long","logicalType":"timestamp-nanos"}},{"name":"amount","type":{"type":"fixed","name":"Dec","size":9,"logicalType":"decimal","precision":20,"scale":4}},{"name":"dur","type":{"type":"fixed","name":"Dur","size":12,"logicalType":"duration"}},{"name":"f","type":"float"}]}"#,
    ),
    (
        "named_refs",
        r#"{"type":"record","name":"R","namespace":"a.b","fields":[{"name":"a","type":{"type":"enum","name":"E","symbols":["X","Y"]}},{"name":"b","type":"E"},{"name":"c","type":{"type":"fixed","name":"F","size":2}},{"name":"d","type":["null","F","E","string"]},{"name":"e","type":{"type":"map","values":{"type":"record","name":"In","fields":[{"name":"x","type":"boolean"}]}}},{"name":"g","type":{"type":"array","items":"In"}}]}"#,
    ),
    ("not_a_record", r#"["null","string"]"#),
    (
        "empty_record",
        r#"{"type":"record","name":"Z","fields":[{"name":"z","type":{"type":"record","name":"Empty","fields":[]}},{"name":"zs","type":{"type":"array","items":"Empty"}},{"name":"nulls","type":{"type":"array","items":"null"}}]}"#,
    ),
];

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds"));

    // Avro records, checked against the compiled readers and apache-avro itself.
    let writer = parse(AVRO_CARD).unwrap();
    let reader = parse(AVRO_CARD_READER).unwrap();
    let (n1, n2) = (avro_needs(), avro_reader_needs());
    let plain = AvroReader::compile(&writer, None, &n1).unwrap();
    let resolved = AvroReader::compile(&writer, Some(&reader), &n2).unwrap();
    for (name, bytes) in avro_cards() {
        let mut vals = vec![Val::Absent; n1.0.len()];
        plain.read(&bytes, &mut vals).unwrap();
        check_slots(name, &n1, &vals, false);
        let mut vals = vec![Val::Absent; n2.0.len()];
        resolved.read(&bytes, &mut vals).unwrap();
        check_slots(name, &n2, &vals, false);
        let mut cur = &bytes[..];
        #[allow(deprecated)] // the one-call reference decoder; GenericDatumReader is more setup
        apache_avro::from_avro_datum(&writer, &mut cur, None)
            .unwrap_or_else(|e| panic!("seed {name} is not valid for apache-avro: {e}"));
        assert!(
            cur.is_empty(),
            "seed {name}: apache-avro left {} bytes",
            cur.len()
        );
        write(&dir, "avro", &format!("{name}.avro"), &bytes);
        write(&dir, "source", &format!("avro_{name}.bin"), &bytes);
        let mut s = AVRO_CARD.as_bytes().to_vec();
        s.push(0);
        s.extend_from_slice(&bytes);
        write(&dir, "avro_schema", &format!("card_{name}.bin"), &s);
    }
    for (name, text) in SCHEMAS {
        write(
            &dir,
            "avro_schema",
            &format!("{name}.json"),
            text.as_bytes(),
        );
    }
    // A linked list of three nodes after its schema.
    let mut s = SCHEMAS[0].1.as_bytes().to_vec();
    s.extend_from_slice(&[0, 2, 2, 4, 2, 6, 0]);
    write(&dir, "avro_schema", "linked_list_payload.bin", &s);

    // Protobuf records.
    let schema = proto_schema();
    let pr = proto_reader(&schema);
    let pn = proto_needs();
    for (name, bytes) in proto_cards() {
        let mut vals = vec![Val::Absent; pn.0.len()];
        pr.read(&bytes, &mut vals).unwrap();
        check_slots(name, &pn, &vals, true);
        write(&dir, "proto", &format!("{name}.pb"), &bytes);
        write(&dir, "source", &format!("proto_{name}.bin"), &bytes);
    }
    // Message-index lists as the proto target also reads them.
    write(&dir, "proto", "index_nested.bin", &[4, 2, 0]);

    // Confluent frames: Avro, Protobuf with [0], with a nested path, and a bad magic byte.
    let avro_rec = &avro_cards()[0].1;
    let proto_rec = &proto_cards()[0].1;
    let mut f = Vec::new();
    write_header(&mut f, 7);
    f.extend_from_slice(avro_rec);
    write(&dir, "wire", "avro_frame.bin", &f);
    for (name, path) in [("proto_first", vec![0usize]), ("proto_nested", vec![1, 0])] {
        let mut f = Vec::new();
        write_header(&mut f, 100_001);
        write_message_indexes(&mut f, &path);
        f.extend_from_slice(proto_rec);
        write(&dir, "wire", &format!("{name}.bin"), &f);
    }
    write(&dir, "wire", "json.bin", br#"{"card_id":"c"}"#);
    println!("seeds written under {}", dir.display());
}
