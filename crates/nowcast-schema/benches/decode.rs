//! Decoding throughput of a 12-field card-transaction event (issue target: Avro ≥ 2 M
//! records/s/core with a warm schema cache), and message sizes of the demo events.
//!
//! Every benchmark decodes a pool of `POOL` distinct records per iteration (so branch
//! prediction and caches see varied data) and reports `Throughput::Elements(POOL)`.
//!
//! - `avro/12-field/compiled`: `AvroReader::read` into a reused `Vec<Val>`.
//! - `avro/12-field/through-source`: `SchemaSource::resolve` + `Compiled::read` with bare
//!   framing and a local schema, values in a stack array as the pipeline's decoder holds them.
//! - `avro/12-field/apache-avro-generic`: `apache_avro::from_avro_datum` into a generic
//!   `Value` (the deprecated one-call API: it resolves the schema's names on every call).
//! - `avro/12-field/apache-avro-generic-prebuilt`: the same through a `GenericDatumReader`
//!   built once (the library's best generic path).
//! - `json/12-field`: `serde_json::from_slice::<serde_json::Value>` (context only).
//! - `proto/12-field`: proto3 through `ProtoReader::read`.
//!
//! The size report (printed to stderr at setup) encodes the demo events of `nowcast generate`
//! as JSON (as generated), Avro and Protobuf. Set `NOWCAST_DEMO_EVENTS` to a JSON-lines file
//! written by `nowcast generate` to measure its events; otherwise look-alike events with the
//! generator's field shapes are synthesised.
//!
//! On a shared, busy machine wall time includes the time the bench thread waits for a core.
//! `NOWCAST_BENCH_CPU_TIME=1` (Linux) measures the thread's on-CPU time instead
//! (`CLOCK_THREAD_CPUTIME_ID`), under benchmark names prefixed `cpu-time/`; the default is
//! criterion's wall time.
#![allow(deprecated)] // to_avro_datum / from_avro_datum: the simplest reference codec

use std::borrow::Cow;
use std::collections::HashMap;
use std::hint::black_box;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::{Record, Value as AvroValue};
use apache_avro::{from_avro_datum, to_avro_datum, Schema};
use criterion::measurement::Measurement;
use criterion::{Criterion, Throughput};
use nowcast_schema::avro::AvroReader;
use nowcast_schema::proto::{ProtoReader, ProtoSchema};
use nowcast_schema::{
    Format, Framing, LocalSchema, Need, Needs, OnRegistryError, SchemaSource, SourceConfig, Use,
    Val,
};
use prost::Message;
use prost_reflect::{DynamicMessage, Value as PValue};

/// Distinct records decoded per iteration.
const POOL: usize = 1024;

const CATEGORIES: &[&str] = &[
    "GROCERY",
    "FUEL",
    "RESTAURANT",
    "TRAVEL",
    "ELECTRONICS",
    "APPAREL",
    "ENTERTAINMENT",
    "HEALTH",
    "UTILITIES",
    "ONLINE_SERVICES",
    "CASH",
    "OTHER",
];

const COUNTRIES: &[&str] = &["US", "GB", "DE", "FR", "CA", "BR", "IN", "JP", "NG", "RU"];
/// The generator's country weights (gen.rs).
const COUNTRY_W: &[f64] = &[0.55, 0.1, 0.08, 0.07, 0.05, 0.04, 0.04, 0.03, 0.02, 0.02];

const AVRO_12: &str = r#"{"type":"record","name":"CardTx","namespace":"bench","fields":[
  {"name":"user_id","type":"string"},
  {"name":"event_id","type":"string"},
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"amount","type":"double"},
  {"name":"merchant","type":"string"},
  {"name":"merchant_category","type":{"type":"enum","name":"MerchantCategory","symbols":
    ["GROCERY","FUEL","RESTAURANT","TRAVEL","ELECTRONICS","APPAREL","ENTERTAINMENT","HEALTH",
     "UTILITIES","ONLINE_SERVICES","CASH","OTHER"]}},
  {"name":"country","type":"string"},
  {"name":"channel","type":"string"},
  {"name":"card_present","type":"boolean"},
  {"name":"device_id","type":["null","string"],"default":null},
  {"name":"lat","type":"double"},
  {"name":"lon","type":"double"}
]}"#;

const PROTO_12: &str = r#"
syntax = "proto3";
package bench.v1;
message CardTx {
  string user_id = 1;
  string event_id = 2;
  int64 ts = 3;
  double amount = 4;
  string merchant = 5;
  MerchantCategory merchant_category = 6;
  string country = 7;
  string channel = 8;
  bool card_present = 9;
  optional string device_id = 10;
  double lat = 11;
  double lon = 12;
  enum MerchantCategory {
    MERCHANT_CATEGORY_UNSPECIFIED = 0;
    GROCERY = 1; FUEL = 2; RESTAURANT = 3; TRAVEL = 4; ELECTRONICS = 5; APPAREL = 6;
    ENTERTAINMENT = 7; HEALTH = 8; UTILITIES = 9; ONLINE_SERVICES = 10; CASH = 11; OTHER = 12;
  }
}
"#;

/// The demo events of `nowcast generate` (gen.rs), strings as generated.
const AVRO_DEMO: &str = r#"{"type":"record","name":"Txn","namespace":"demo","fields":[
  {"name":"txn_id","type":"string"},
  {"name":"user_id","type":"string"},
  {"name":"merchant_id","type":"string"},
  {"name":"amount","type":"double"},
  {"name":"country","type":"string"},
  {"name":"foreign","type":"boolean"},
  {"name":"channel","type":"string"},
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"is_fraud","type":"boolean"}
]}"#;

/// The same with `country` and `channel` as enums.
const AVRO_DEMO_ENUMS: &str = r#"{"type":"record","name":"Txn","namespace":"demo","fields":[
  {"name":"txn_id","type":"string"},
  {"name":"user_id","type":"string"},
  {"name":"merchant_id","type":"string"},
  {"name":"amount","type":"double"},
  {"name":"country","type":{"type":"enum","name":"Country","symbols":
    ["US","GB","DE","FR","CA","BR","IN","JP","NG","RU"]}},
  {"name":"foreign","type":"boolean"},
  {"name":"channel","type":{"type":"enum","name":"Channel","symbols":["pos","online"]}},
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"is_fraud","type":"boolean"}
]}"#;

const PROTO_DEMO: &str = r#"
syntax = "proto3";
package demo.v1;
message Txn {
  string txn_id = 1;
  string user_id = 2;
  string merchant_id = 3;
  double amount = 4;
  string country = 5;
  bool foreign = 6;
  string channel = 7;
  int64 ts = 8;
  bool is_fraud = 9;
}
message TxnEnums {
  string txn_id = 1;
  string user_id = 2;
  string merchant_id = 3;
  double amount = 4;
  Country country = 5;
  bool foreign = 6;
  Channel channel = 7;
  int64 ts = 8;
  bool is_fraud = 9;
  // proto3: the first value is the default (0, never written); US is the most common.
  enum Country { US = 0; GB = 1; DE = 2; FR = 3; CA = 4; BR = 5; IN = 6; JP = 7; NG = 8; RU = 9; }
  enum Channel { CHANNEL_UNSPECIFIED = 0; POS = 1; ONLINE = 2; }
}
"#;

/// SplitMix64: a small deterministic generator for the bench data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::EPSILON);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
    fn country(&mut self) -> usize {
        let u = self.unit();
        let mut acc = 0.0;
        for (i, w) in COUNTRY_W.iter().enumerate() {
            acc += w;
            if u < acc {
                return i;
            }
        }
        0
    }
}

/// The 12-field event.
struct CardTx {
    user_id: String,
    event_id: String,
    ts: i64,
    amount: f64,
    merchant: String,
    merchant_category: usize,
    country: usize,
    channel: &'static str,
    card_present: bool,
    device_id: Option<String>,
    lat: f64,
    lon: f64,
}

fn card_txs(n: usize) -> Vec<CardTx> {
    let mut rng = Rng(7);
    (0..n)
        .map(|i| {
            let pos = rng.chance(0.6);
            let cents = ((2.5 + 2.0 * rng.unit() + 0.6 * rng.normal()).exp() * 100.0).round();
            let (a, b) = (rng.next(), rng.next());
            CardTx {
                user_id: format!("u-{}", rng.below(100_000)),
                // A UUID's text form.
                event_id: format!(
                    "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
                    a >> 32,
                    (a >> 16) & 0xffff,
                    a & 0xfff,
                    (b >> 48) | 0x8000,
                    b & 0xffff_ffff_ffff
                ),
                ts: 1_700_000_000_000 + i as i64 * 37 + rng.below(37) as i64,
                amount: cents / 100.0,
                merchant: format!("m-{}", rng.below(20_000)),
                merchant_category: rng.below(CATEGORIES.len() as u64) as usize,
                country: rng.country(),
                channel: if pos { "pos" } else { "online" },
                card_present: pos,
                device_id: (!pos).then(|| format!("d-{:016x}", rng.next())),
                lat: rng.unit() * 180.0 - 90.0,
                lon: rng.unit() * 360.0 - 180.0,
            }
        })
        .collect()
}

fn avro_12(schema: &Schema, t: &CardTx) -> Vec<u8> {
    let mut r = Record::new(schema).unwrap();
    r.put("user_id", t.user_id.as_str());
    r.put("event_id", t.event_id.as_str());
    r.put("ts", AvroValue::TimestampMillis(t.ts));
    r.put("amount", t.amount);
    r.put("merchant", t.merchant.as_str());
    r.put(
        "merchant_category",
        AvroValue::Enum(
            t.merchant_category as u32,
            CATEGORIES[t.merchant_category].into(),
        ),
    );
    r.put("country", COUNTRIES[t.country]);
    r.put("channel", t.channel);
    r.put("card_present", t.card_present);
    r.put(
        "device_id",
        match &t.device_id {
            Some(d) => AvroValue::Union(1, Box::new(AvroValue::String(d.clone()))),
            None => AvroValue::Union(0, Box::new(AvroValue::Null)),
        },
    );
    r.put("lat", t.lat);
    r.put("lon", t.lon);
    to_avro_datum(schema, r).unwrap()
}

fn json_12(t: &CardTx) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "user_id": t.user_id,
        "event_id": t.event_id,
        "ts": t.ts,
        "amount": t.amount,
        "merchant": t.merchant,
        "merchant_category": CATEGORIES[t.merchant_category],
        "country": COUNTRIES[t.country],
        "channel": t.channel,
        "card_present": t.card_present,
        "device_id": t.device_id,
        "lat": t.lat,
        "lon": t.lon,
    }))
    .unwrap()
}

fn proto_12(desc: &prost_reflect::MessageDescriptor, t: &CardTx) -> Vec<u8> {
    let mut m = DynamicMessage::new(desc.clone());
    m.set_field_by_name("user_id", PValue::String(t.user_id.clone()));
    m.set_field_by_name("event_id", PValue::String(t.event_id.clone()));
    m.set_field_by_name("ts", PValue::I64(t.ts));
    m.set_field_by_name("amount", PValue::F64(t.amount));
    m.set_field_by_name("merchant", PValue::String(t.merchant.clone()));
    m.set_field_by_name(
        "merchant_category",
        PValue::EnumNumber(t.merchant_category as i32 + 1),
    );
    m.set_field_by_name("country", PValue::String(COUNTRIES[t.country].into()));
    m.set_field_by_name("channel", PValue::String(t.channel.into()));
    m.set_field_by_name("card_present", PValue::Bool(t.card_present));
    if let Some(d) = &t.device_id {
        m.set_field_by_name("device_id", PValue::String(d.clone()));
    }
    m.set_field_by_name("lat", PValue::F64(t.lat));
    m.set_field_by_name("lon", PValue::F64(t.lon));
    m.encode_to_vec()
}

/// What the pipeline reads from the 12-field event.
fn needs_12() -> Needs {
    let need = |name: &str, usage| Need {
        name: name.into(),
        usage,
        required: true,
    };
    Needs(vec![
        need("user_id", Use::Key),
        need("ts", Use::Time),
        need("amount", Use::Number),
        need("merchant_category", Use::Scalar),
        need("country", Use::Scalar),
        need("channel", Use::Scalar),
        need("card_present", Use::Scalar),
    ])
}

/// The values the decoders must produce for `t`.
fn expected(t: &CardTx) -> Vec<Val<'static>> {
    vec![
        Val::Str(Cow::Owned(t.user_id.clone())),
        Val::Int(t.ts),
        Val::Num(t.amount),
        Val::Str(Cow::Borrowed(CATEGORIES[t.merchant_category])),
        Val::Str(Cow::Borrowed(COUNTRIES[t.country])),
        Val::Str(Cow::Borrowed(t.channel)),
        Val::Bool(t.card_present),
    ]
}

// ---------------------------------------------------------------------------------------
// Demo events and the size report.

/// One event of `nowcast generate`.
struct DemoTx {
    txn_id: String,
    user_id: String,
    merchant_id: String,
    amount: f64,
    country: String,
    foreign: bool,
    channel: String,
    ts: i64,
    is_fraud: bool,
    /// The JSON line as generated (without the newline).
    json: Vec<u8>,
}

fn demo_from_json(line: &[u8]) -> DemoTx {
    let v: serde_json::Value = serde_json::from_slice(line).expect("a JSON event");
    let s = |k: &str| v[k].as_str().expect(k).to_string();
    DemoTx {
        txn_id: s("txn_id"),
        user_id: s("user_id"),
        merchant_id: s("merchant_id"),
        amount: v["amount"].as_f64().unwrap(),
        country: s("country"),
        foreign: v["foreign"].as_bool().unwrap(),
        channel: s("channel"),
        ts: v["ts"].as_i64().unwrap(),
        is_fraud: v["is_fraud"].as_bool().unwrap(),
        json: line.to_vec(),
    }
}

/// Events with the generator's field shapes (gen.rs, default settings: seed 42, 100 000
/// users, 20 000 merchants, fraud rate 0.001 giving ~1 % fraud events, 1000 events/s).
fn demo_synthetic(n: usize) -> Vec<DemoTx> {
    let mut rng = Rng(42);
    (0..n)
        .map(|i| {
            let seq = i + 1;
            let home = rng.country();
            let fraud = rng.chance(0.011);
            let country = if rng.chance(if fraud { 0.7 } else { 0.03 }) {
                rng.below(COUNTRIES.len() as u64) as usize
            } else {
                home
            };
            let mu = 2.5 + 2.0 * rng.unit() + if fraud { 1.5 } else { 0.0 };
            let amount = (mu + if fraud { 0.8 } else { 0.6 } * rng.normal()).exp();
            let channel = if rng.chance(0.6) { "pos" } else { "online" };
            let ts = 1_700_000_000_000 + i as i64;
            let json = format!(
                r#"{{"txn_id":"t-42-{seq}","user_id":"u-{}","merchant_id":"m-{}","amount":{amount:.2},"country":"{}","foreign":{},"channel":"{channel}","ts":{ts},"is_fraud":{fraud}}}"#,
                rng.below(100_000),
                rng.below(20_000),
                COUNTRIES[country],
                country != home,
            );
            demo_from_json(json.as_bytes())
        })
        .collect()
}

fn demo_events() -> (Vec<DemoTx>, String) {
    match std::env::var("NOWCAST_DEMO_EVENTS") {
        Ok(path) if !path.is_empty() => {
            let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            let events: Vec<DemoTx> = text
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(demo_from_json)
                .collect();
            (events, format!("`nowcast generate` output {path}"))
        }
        _ => (
            demo_synthetic(10_000),
            "10 000 synthetic look-alikes of `nowcast generate` events (set NOWCAST_DEMO_EVENTS \
             to a generated file to measure real ones)"
                .into(),
        ),
    }
}

fn avro_demo(schema: &Schema, t: &DemoTx, enums: bool) -> Vec<u8> {
    let mut r = Record::new(schema).unwrap();
    r.put("txn_id", t.txn_id.as_str());
    r.put("user_id", t.user_id.as_str());
    r.put("merchant_id", t.merchant_id.as_str());
    r.put("amount", t.amount);
    if enums {
        let c = COUNTRIES.iter().position(|c| *c == t.country).unwrap();
        r.put("country", AvroValue::Enum(c as u32, t.country.clone()));
        let ch = u32::from(t.channel == "online");
        r.put("channel", AvroValue::Enum(ch, t.channel.clone()));
    } else {
        r.put("country", t.country.as_str());
        r.put("channel", t.channel.as_str());
    }
    r.put("foreign", t.foreign);
    r.put("ts", AvroValue::TimestampMillis(t.ts));
    r.put("is_fraud", t.is_fraud);
    to_avro_datum(schema, r).unwrap()
}

fn proto_demo(desc: &prost_reflect::MessageDescriptor, t: &DemoTx, enums: bool) -> Vec<u8> {
    let mut m = DynamicMessage::new(desc.clone());
    m.set_field_by_name("txn_id", PValue::String(t.txn_id.clone()));
    m.set_field_by_name("user_id", PValue::String(t.user_id.clone()));
    m.set_field_by_name("merchant_id", PValue::String(t.merchant_id.clone()));
    m.set_field_by_name("amount", PValue::F64(t.amount));
    if enums {
        let c = COUNTRIES.iter().position(|c| *c == t.country).unwrap();
        m.set_field_by_name("country", PValue::EnumNumber(c as i32));
        let ch = if t.channel == "online" { 2 } else { 1 };
        m.set_field_by_name("channel", PValue::EnumNumber(ch));
    } else {
        m.set_field_by_name("country", PValue::String(t.country.clone()));
        m.set_field_by_name("channel", PValue::String(t.channel.clone()));
    }
    m.set_field_by_name("foreign", PValue::Bool(t.foreign));
    m.set_field_by_name("ts", PValue::I64(t.ts));
    m.set_field_by_name("is_fraud", PValue::Bool(t.is_fraud));
    m.encode_to_vec()
}

fn mean(sizes: impl Iterator<Item = usize>) -> f64 {
    let (mut sum, mut n) = (0usize, 0usize);
    for s in sizes {
        sum += s;
        n += 1;
    }
    sum as f64 / n as f64
}

fn size_report(card: &[CardTx]) {
    let (events, origin) = demo_events();
    let n = events.len();
    let json = mean(events.iter().map(|e| e.json.len()));
    let avro_s = Schema::parse_str(AVRO_DEMO).unwrap();
    let avro_e = Schema::parse_str(AVRO_DEMO_ENUMS).unwrap();
    let proto = ProtoSchema::compile("demo.proto", PROTO_DEMO, &HashMap::new()).unwrap();
    let p_s = proto.message_named("demo.v1.Txn").unwrap();
    let p_e = proto.message_named("demo.v1.TxnEnums").unwrap();
    let a_s = mean(events.iter().map(|e| avro_demo(&avro_s, e, false).len()));
    let a_e = mean(events.iter().map(|e| avro_demo(&avro_e, e, true).len()));
    let pr_s = mean(events.iter().map(|e| proto_demo(&p_s, e, false).len()));
    let pr_e = mean(events.iter().map(|e| proto_demo(&p_e, e, true).len()));
    let row = |name: &str, bytes: f64| {
        eprintln!("| {name} | {bytes:.1} | {:.1} % |", 100.0 * bytes / json);
    };
    eprintln!("\nmessage size, demo events: {n} events, {origin}");
    eprintln!("| encoding | mean bytes/event | vs JSON |");
    eprintln!("|---|---:|---:|");
    row("JSON (as generated)", json);
    row("Avro, bare (country, channel strings)", a_s);
    row("Avro, Confluent-framed (+5)", a_s + 5.0);
    row("Avro, bare (country, channel enums)", a_e);
    row("Avro, Confluent-framed, enums (+5)", a_e + 5.0);
    row("Protobuf, bare (strings)", pr_s);
    row(
        "Protobuf, Confluent-framed (+6: header, index [0])",
        pr_s + 6.0,
    );
    row("Protobuf, bare (enums)", pr_e);
    row("Protobuf, Confluent-framed, enums (+6)", pr_e + 6.0);

    let avro12 = Schema::parse_str(AVRO_12).unwrap();
    let p12 = ProtoSchema::compile("cardtx.proto", PROTO_12, &HashMap::new()).unwrap();
    let d12 = p12.message_named("bench.v1.CardTx").unwrap();
    let j = mean(card.iter().map(|t| json_12(t).len()));
    let a = mean(card.iter().map(|t| avro_12(&avro12, t).len()));
    let p = mean(card.iter().map(|t| proto_12(&d12, t).len()));
    eprintln!(
        "\nmessage size, the 12-field bench event ({} records): JSON {j:.1}, Avro bare {a:.1}, \
         Protobuf bare {p:.1} bytes/event\n",
        card.len()
    );
}

// ---------------------------------------------------------------------------------------
// Benchmarks.

fn bench<M: Measurement>(c: &mut Criterion<M>, prefix: &str) {
    let txs = card_txs(POOL);
    size_report(&txs);
    let needs = needs_12();
    let n = needs.0.len();

    // Avro.
    let schema = Schema::parse_str(AVRO_12).unwrap();
    let avro: Vec<Vec<u8>> = txs.iter().map(|t| avro_12(&schema, t)).collect();
    let reader = AvroReader::compile(&schema, None, &needs).unwrap();
    let source = SchemaSource::new(
        SourceConfig {
            format: Format::Avro,
            framing: Framing::Bare,
            local: Some(LocalSchema::Avro(schema.clone())),
            on_registry_error: OnRegistryError::DeadLetter,
        },
        needs.clone(),
        None,
    )
    .unwrap();
    let generic = GenericDatumReader::builder(&schema).build().unwrap();

    // JSON and Protobuf.
    let json: Vec<Vec<u8>> = txs.iter().map(json_12).collect();
    let pschema = ProtoSchema::compile("cardtx.proto", PROTO_12, &HashMap::new()).unwrap();
    let pdesc = pschema.message_named("bench.v1.CardTx").unwrap();
    let proto: Vec<Vec<u8>> = txs.iter().map(|t| proto_12(&pdesc, t)).collect();
    let preader = ProtoReader::compile(&pdesc, &needs).unwrap();

    // Every decoder reads what was written.
    {
        let mut vals = vec![Val::Absent; n];
        for (i, t) in txs.iter().enumerate() {
            let want = expected(t);
            reader.read(&avro[i], &mut vals).unwrap();
            assert_eq!(vals, want, "compiled avro, record {i}");
            let (r, payload) = source.resolve(&avro[i]).unwrap();
            let mut vals2 = vec![Val::Absent; n];
            r.as_ref()
                .as_ref()
                .unwrap()
                .read(payload, &mut vals2)
                .unwrap();
            assert_eq!(vals2, want, "through source, record {i}");
            preader.read(&proto[i], &mut vals).unwrap();
            // Protobuf reads the enum by its .proto name, which matches.
            assert_eq!(vals, want, "proto, record {i}");
            let g = from_avro_datum(&schema, &mut &avro[i][..], None).unwrap();
            assert!(matches!(g, AvroValue::Record(ref f) if f.len() == 12));
            let v: serde_json::Value = serde_json::from_slice(&json[i]).unwrap();
            assert_eq!(v["user_id"], t.user_id.as_str());
        }
    }
    let mean_len = |v: &[Vec<u8>]| mean(v.iter().map(Vec::len));
    eprintln!(
        "12-field pool: {POOL} records; mean bytes Avro {:.1}, JSON {:.1}, Protobuf {:.1}",
        mean_len(&avro),
        mean_len(&json),
        mean_len(&proto)
    );

    let mut g = c.benchmark_group(format!("{prefix}avro/12-field"));
    g.throughput(Throughput::Elements(POOL as u64));
    g.bench_function("compiled", |b| {
        let mut vals: Vec<Val<'_>> = vec![Val::Absent; n];
        b.iter(|| {
            for rec in &avro {
                reader.read(black_box(rec), &mut vals).unwrap();
                black_box(&vals);
            }
        })
    });
    g.bench_function("through-source", |b| {
        b.iter(|| {
            for rec in &avro {
                // As the pipeline's decoder: message-index scratch, values on the stack,
                // the reader held while the values borrow from it.
                let (held, payload) = source.resolve(black_box(rec)).unwrap();
                let mut on_stack: [Val<'_>; 16] = std::array::from_fn(|_| Val::Absent);
                match &*held {
                    Ok(compiled) => compiled.read(payload, &mut on_stack[..n]).unwrap(),
                    Err(e) => panic!("{e}"),
                }
                black_box(&on_stack[..n]);
            }
        })
    });
    g.bench_function("apache-avro-generic", |b| {
        b.iter(|| {
            for rec in &avro {
                let v = from_avro_datum(&schema, &mut black_box(&rec[..]), None).unwrap();
                black_box(&v);
            }
        })
    });
    g.bench_function("apache-avro-generic-prebuilt", |b| {
        b.iter(|| {
            for rec in &avro {
                let v = generic.read_value(&mut black_box(&rec[..])).unwrap();
                black_box(&v);
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group(format!("{prefix}json"));
    g.throughput(Throughput::Elements(POOL as u64));
    g.bench_function("12-field", |b| {
        b.iter(|| {
            for rec in &json {
                let v: serde_json::Value = serde_json::from_slice(black_box(rec)).unwrap();
                black_box(&v);
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group(format!("{prefix}proto"));
    g.throughput(Throughput::Elements(POOL as u64));
    g.bench_function("12-field", |b| {
        let mut vals: Vec<Val<'_>> = vec![Val::Absent; n];
        b.iter(|| {
            for rec in &proto {
                preader.read(black_box(rec), &mut vals).unwrap();
                black_box(&vals);
            }
        })
    });
    g.finish();
}

/// The bench thread's on-CPU time, in nanoseconds.
#[cfg(target_os = "linux")]
mod cpu_time {
    use criterion::measurement::{Measurement, ValueFormatter};
    use criterion::Throughput;

    #[repr(C)]
    struct Timespec {
        tv_sec: std::ffi::c_long,
        tv_nsec: std::ffi::c_long,
    }

    extern "C" {
        fn clock_gettime(clock: std::ffi::c_int, ts: *mut Timespec) -> std::ffi::c_int;
    }

    const CLOCK_THREAD_CPUTIME_ID: std::ffi::c_int = 3;

    fn now_ns() -> u64 {
        let mut ts = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; the clock id exists on Linux.
        let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    /// Thread CPU time, as a criterion measurement.
    pub struct CpuTime;

    impl Measurement for CpuTime {
        type Intermediate = u64;
        type Value = u64;
        fn start(&self) -> u64 {
            now_ns()
        }
        fn end(&self, start: u64) -> u64 {
            now_ns() - start
        }
        fn add(&self, a: &u64, b: &u64) -> u64 {
            a + b
        }
        fn zero(&self) -> u64 {
            0
        }
        fn to_f64(&self, v: &u64) -> f64 {
            *v as f64
        }
        fn formatter(&self) -> &dyn ValueFormatter {
            &Ns
        }
    }

    struct Ns;

    impl ValueFormatter for Ns {
        fn scale_values(&self, ns: f64, values: &mut [f64]) -> &'static str {
            let (factor, unit) = if ns < 1e3 {
                (1.0, "ns")
            } else if ns < 1e6 {
                (1e-3, "µs")
            } else if ns < 1e9 {
                (1e-6, "ms")
            } else {
                (1e-9, "s")
            };
            values.iter_mut().for_each(|v| *v *= factor);
            unit
        }

        fn scale_throughputs(
            &self,
            typical: f64,
            throughput: &Throughput,
            values: &mut [f64],
        ) -> &'static str {
            let per = match *throughput {
                Throughput::Elements(n) => n as f64,
                Throughput::Bytes(n) | Throughput::BytesDecimal(n) => n as f64,
            };
            let per_s = per * 1e9 / typical;
            let (den, unit) = if per_s < 1e3 {
                (1.0, " elem/s (CPU)")
            } else if per_s < 1e6 {
                (1e3, "Kelem/s (CPU)")
            } else {
                (1e6, "Melem/s (CPU)")
            };
            values.iter_mut().for_each(|v| *v = per * 1e9 / *v / den);
            unit
        }

        fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
            "ns"
        }
    }
}

fn main() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("NOWCAST_BENCH_CPU_TIME").is_some_and(|v| !v.is_empty() && v != "0") {
        let mut c = Criterion::default()
            .with_measurement(cpu_time::CpuTime)
            .configure_from_args();
        bench(&mut c, "cpu-time/");
        c.final_summary();
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, "");
    c.final_summary();
}
