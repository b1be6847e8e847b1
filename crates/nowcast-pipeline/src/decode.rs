//! JSON event decoding: one pass over the record, picking only the fields the pipeline needs
//! (entity key, event time, event id, feature inputs, filter fields, request-time fields) and
//! skipping the rest without allocating.
//!
//! Only top-level fields are read. A record is refused (dead-lettered) with a precise reason
//! when it is larger than `max_record_bytes`, is not a JSON object, lacks its key or time, has an absurd time, or holds a
//! non-number where a number is aggregated. A field that is absent or `null` simply does not
//! feed the features that read it.

use std::borrow::Cow;
use std::collections::HashMap;

/// Field name → slot. A handful of short names: a linear scan beats hashing them.
#[derive(Debug, Clone, Default)]
struct FieldTable(Vec<(Box<str>, usize)>);

impl FieldTable {
    fn get(&self, name: &str) -> Option<usize> {
        self.0.iter().find(|(n, _)| &**n == name).map(|(_, s)| *s)
    }
}
use std::fmt;

use nowcast_core::{parse_event_time, Millis, RejectReason};
use nowcast_spec::{FilterOp, InputKind, PipelineSpec, Scalar, TimeUnit};
use nowcast_window::Input;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::Deserializer;

pub use nowcast_schema::DecodeError;
use nowcast_schema::{
    Format, Framing, Need, Needs, OnRegistryError, Registry, SchemaSource, SourceConfig, Use, Val,
};
use nowcast_spec::{BinaryFormat, RegistryPolicy, SourceFormat};
use std::sync::Arc;

use crate::PipelineError;

fn matches(v: &Val<'_>, s: &Scalar) -> bool {
    match (v, s) {
        (Val::Str(a), Scalar::Str(b)) => a == b,
        (Val::Bool(a), Scalar::Bool(b)) => a == b,
        (v, Scalar::Num(b)) => v.number() == Some(*b),
        _ => false,
    }
}

/// Where a feature's input comes from, resolved to field slots.
#[derive(Debug, Clone)]
struct FeatureSlot {
    field: Option<usize>,
    kind: InputKind,
    filter: Option<(usize, FilterOp)>,
}

/// Decodes one source's records — JSON, or Avro / Protobuf through
/// [`nowcast_schema::SchemaSource`] — into the parts the pipeline uses.
#[derive(Debug, Clone)]
pub struct Decoder {
    fields: FieldTable,
    names: Vec<String>,
    key: usize,
    time: usize,
    id: Option<usize>,
    features: Vec<FeatureSlot>,
    request: Vec<usize>,
    max_future: Millis,
    /// The unit of a numeric event time.
    time_unit: TimeUnit,
    max_bytes: usize,
    /// Avro or Protobuf; `None` for JSON.
    binary: Option<Arc<SchemaSource>>,
    /// A registry outage stops processing instead of dead-lettering (`on_registry_error`).
    stop_on_registry_error: bool,
}

/// The decoded parts of one event, in buffers reused between records.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Entity key.
    pub key: String,
    /// Event time.
    pub time: Millis,
    /// Event id, when the source has an id field and the record carries it.
    pub id: Option<String>,
    /// One input per input column of the source, in column order (the engine's `inputs`).
    pub inputs: Vec<Input>,
    /// Request-time field values, in `model.request_fields` order (None when absent).
    pub request: Vec<Option<f64>>,
}

impl Decoder {
    /// Builds the decoder for source `source` of `spec`: for Avro and Protobuf it loads the
    /// local schema and connects the registry client (`registry`, see [`registry_client`]).
    pub fn new(
        spec: &PipelineSpec,
        source: usize,
        registry: Option<Arc<Registry>>,
    ) -> Result<Decoder, PipelineError> {
        let mut d = Decoder::fields(spec, source);
        if let SourceFormat::Schema(f) = &spec.sources[source].format {
            let needs = d.needs();
            let local = crate::formats::local_schema(f)?;
            let config = SourceConfig {
                format: match f.format {
                    BinaryFormat::Avro => Format::Avro,
                    BinaryFormat::Protobuf => Format::Protobuf,
                },
                framing: match f.framing {
                    nowcast_spec::Framing::Confluent => Framing::Confluent,
                    nowcast_spec::Framing::Bare => Framing::Bare,
                },
                local,
                on_registry_error: match f.on_registry_error {
                    RegistryPolicy::Stop => OnRegistryError::Stop,
                    RegistryPolicy::DeadLetter => OnRegistryError::DeadLetter,
                },
            };
            let name = &spec.sources[source].name;
            let src = SchemaSource::new(config, needs, registry)
                .map_err(|e| PipelineError::Schema(format!("source `{name}`: {e}")))?;
            d.binary = Some(Arc::new(src));
            d.stop_on_registry_error = f.on_registry_error == RegistryPolicy::Stop;
        }
        Ok(d)
    }

    /// Whether refusing a record for `e` must stop processing instead of dead-lettering it
    /// (the registry is down and the source's policy is `stop`). Nothing past the record may
    /// be committed then: it is read again after a restart.
    pub fn stops_on(&self, e: &DecodeError) -> bool {
        self.stop_on_registry_error && e.reason == RejectReason::RegistryUnavailable
    }

    /// The fields this decoder reads, in slot order, with how the pipeline uses each.
    pub fn needs(&self) -> Needs {
        let mut usage: Vec<Option<Use>> = vec![None; self.names.len()];
        let mut set = |slot: usize, u: Use| {
            let rank = |u: Use| match u {
                Use::Key | Use::Time => 3,
                Use::Number => 2,
                Use::Scalar => 1,
            };
            if usage[slot].is_none_or(|old| rank(u) > rank(old)) {
                usage[slot] = Some(u);
            }
        };
        set(self.key, Use::Key);
        set(self.time, Use::Time);
        for f in &self.features {
            if let Some(field) = f.field {
                set(
                    field,
                    match f.kind {
                        InputKind::Number => Use::Number,
                        InputKind::Presence | InputKind::Hash => Use::Scalar,
                    },
                );
            }
            if let Some((field, _)) = &f.filter {
                set(*field, Use::Scalar);
            }
        }
        for &r in &self.request {
            set(r, Use::Number);
        }
        if let Some(id) = self.id {
            set(id, Use::Scalar);
        }
        Needs(
            self.names
                .iter()
                .zip(usage)
                .enumerate()
                .map(|(slot, (name, u))| Need {
                    name: name.clone(),
                    usage: u.unwrap_or(Use::Scalar),
                    required: Some(slot) != self.id,
                })
                .collect(),
        )
    }

    fn fields(spec: &PipelineSpec, source: usize) -> Decoder {
        let src = &spec.sources[source];
        let mut fields = HashMap::new();
        let mut names = Vec::new();
        let mut slot = |name: &str| -> usize {
            *fields.entry(name.to_string()).or_insert_with(|| {
                names.push(name.to_string());
                names.len() - 1
            })
        };
        let key = slot(&src.key_field);
        let time = slot(&src.time_field);
        let id = src.id_field.as_deref().map(&mut slot);
        // One slot per input column of the source (features sharing a column read the same
        // field, kind and filter), in column order.
        let mut columns: Vec<_> = spec
            .feature_inputs
            .iter()
            .filter(|f| f.source == source)
            .collect();
        columns.sort_by_key(|f| f.column);
        columns.dedup_by_key(|f| f.column);
        let features = columns
            .into_iter()
            .map(|f| FeatureSlot {
                field: f.field.as_deref().map(&mut slot),
                kind: f.kind,
                filter: f
                    .filter
                    .as_ref()
                    .map(|flt| (slot(&flt.field), flt.op.clone())),
            })
            .collect();
        let request = spec.model.request_fields.iter().map(|f| slot(f)).collect();
        Decoder {
            binary: None,
            stop_on_registry_error: false,
            fields: FieldTable(
                fields
                    .into_iter()
                    .map(|(k, v)| (k.into_boxed_str(), v))
                    .collect(),
            ),
            names,
            key,
            time,
            id,
            features,
            request,
            max_future: src.max_future,
            time_unit: src.time_unit,
            max_bytes: spec.max_record_bytes,
        }
    }

    /// The spec name of the source's `time_unit`, for messages.
    fn unit_name(&self) -> &'static str {
        TimeUnit::ALL
            .iter()
            .find(|(u, _)| *u == self.time_unit)
            .map_or("ms", |(_, n)| n)
    }

    /// Decodes `bytes` into `out`. `now` is the wall clock, for the far-future check.
    pub fn decode(&self, bytes: &[u8], now: Millis, out: &mut Decoded) -> Result<(), DecodeError> {
        if bytes.len() > self.max_bytes {
            return Err(DecodeError::new(
                RejectReason::Oversized,
                format!(
                    "record is {} bytes; the limit is {}",
                    bytes.len(),
                    self.max_bytes
                ),
            ));
        }
        // The compiled reader of a binary record's writer schema, held while the values
        // borrow from it.
        let held;
        // Field values live on the stack for up to 16 fields (no allocation per record).
        let mut on_stack: [Val<'_>; 16] = std::array::from_fn(|_| Val::Absent);
        let mut on_heap: Vec<Val<'_>>;
        let vals: &mut [Val<'_>] = if self.names.len() <= on_stack.len() {
            &mut on_stack[..self.names.len()]
        } else {
            on_heap = vec![Val::Absent; self.names.len()];
            &mut on_heap
        };
        match &self.binary {
            None => {
                let mut de = serde_json::Deserializer::from_slice(bytes);
                de.deserialize_map(RecordVisitor {
                    fields: &self.fields,
                    vals: &mut *vals,
                })
                .and_then(|()| de.end())
                .map_err(|e| {
                    DecodeError::new(RejectReason::Malformed, format!("not a JSON object: {e}"))
                })?;
            }
            Some(src) => {
                let (reader, payload) = src
                    .resolve(bytes)
                    .map_err(|e| e.unwrap_or_else(|stop| stop.0))?;
                held = reader;
                match &*held {
                    Ok(compiled) => compiled.read(payload, vals)?,
                    Err(e) => return Err(e.clone()),
                }
            }
        }

        out.key.clear();
        match &vals[self.key] {
            Val::Str(s) if !s.is_empty() => out.key.push_str(s),
            Val::Int(i) => {
                use std::fmt::Write;
                let _ = write!(out.key, "{i}");
            }
            Val::Absent | Val::Null | Val::Str(_) => {
                return Err(DecodeError::new(
                    RejectReason::MissingKey,
                    format!(
                        "entity key field `{}` is missing or empty",
                        self.names[self.key]
                    ),
                ))
            }
            other => {
                return Err(DecodeError::new(
                    RejectReason::MissingKey,
                    format!(
                        "entity key field `{}` is {}, not a string or integer",
                        self.names[self.key],
                        other.describe()
                    ),
                ))
            }
        }
        let tname = &self.names[self.time];
        let numeric = matches!(vals[self.time], Val::Int(_) | Val::Num(_));
        out.time = match &vals[self.time] {
            Val::Absent | Val::Null => {
                return Err(DecodeError::new(
                    RejectReason::MissingTime,
                    format!("event-time field `{tname}` is missing"),
                ))
            }
            Val::Int(v) => self.time_unit.int_to_millis(*v).ok_or_else(|| {
                DecodeError::new(
                    RejectReason::AbsurdTime,
                    format!("field `{tname}`: {v} {} is out of range", self.unit_name()),
                )
            })?,
            Val::Num(n) if self.time_unit.num_to_millis(*n).is_some() => {
                self.time_unit.num_to_millis(*n).expect("checked")
            }
            Val::Str(s) => parse_event_time(s).map_err(|e| {
                DecodeError::new(RejectReason::BadTime, format!("field `{tname}`: {e}"))
            })?,
            other => {
                return Err(DecodeError::new(
                    RejectReason::BadTime,
                    format!(
                        "field `{tname}` is {}; use RFC 3339 text or an integer epoch time in {} (`time_unit`)",
                        other.describe(),
                        self.unit_name()
                    ),
                ))
            }
        };
        check_time(
            out.time,
            numeric && self.time_unit == TimeUnit::Millis,
            now,
            self.max_future,
        )?;
        out.id = match self.id.map(|i| &vals[i]) {
            Some(Val::Str(s)) => Some(s.to_string()),
            Some(Val::Int(i)) => Some(i.to_string()),
            _ => None,
        };
        out.inputs.clear();
        for f in &self.features {
            let passes = match &f.filter {
                None => true,
                Some((slot, op)) => {
                    let v = &vals[*slot];
                    match op {
                        FilterOp::Equals(s) => matches(v, s),
                        FilterOp::NotEquals(s) => {
                            !matches!(v, Val::Absent | Val::Null) && !matches(v, s)
                        }
                        FilterOp::In(items) => items.iter().any(|s| matches(v, s)),
                    }
                }
            };
            let input = if !passes {
                Input::Skip
            } else {
                match (f.kind, f.field.map(|s| &vals[s])) {
                    (InputKind::Presence, _) => Input::Num(1.0),
                    (_, None | Some(Val::Absent | Val::Null)) => Input::Skip,
                    (InputKind::Number, Some(v)) => match v.number() {
                        Some(n) if n.is_finite() => Input::Num(n),
                        _ => return Err(self.not_numeric(f.field.unwrap(), v)),
                    },
                    (InputKind::Hash, Some(v)) => Input::Hash(hash_val(v)),
                }
            };
            out.inputs.push(input);
        }
        out.request.clear();
        for &slot in &self.request {
            let v = &vals[slot];
            out.request.push(match v {
                Val::Absent | Val::Null => None,
                v => match v.number() {
                    Some(n) if n.is_finite() => Some(n),
                    _ => return Err(self.not_numeric(slot, v)),
                },
            });
        }
        Ok(())
    }

    fn not_numeric(&self, slot: usize, v: &Val<'_>) -> DecodeError {
        DecodeError::new(
            RejectReason::NotNumeric,
            format!(
                "field `{}` is {}, not a number",
                self.names[slot],
                v.describe()
            ),
        )
    }
}

/// Stable 64-bit hash of a value for distinct counting: text by its UTF-8 bytes, numbers by
/// their decimal text when integral (so `42` and `"42"` count as one), booleans as text.
fn hash_val(v: &Val<'_>) -> u64 {
    use xxhash_rust::xxh3::xxh3_64;
    match v {
        Val::Str(s) => xxh3_64(s.as_bytes()),
        Val::Int(i) => xxh3_64(i.to_string().as_bytes()),
        Val::Num(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => {
            xxh3_64((*n as i64).to_string().as_bytes())
        }
        Val::Num(n) => xxh3_64(&n.to_bits().to_le_bytes()),
        Val::Bool(b) => xxh3_64(if *b { b"true" } else { b"false" }),
        Val::Absent | Val::Null | Val::Composite => 0,
    }
}

struct RecordVisitor<'v, 'a> {
    fields: &'v FieldTable,
    vals: &'v mut [Val<'a>],
}

impl<'de, 'v> Visitor<'de> for RecordVisitor<'v, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match self.fields.get(key.as_ref()) {
                Some(slot) => self.vals[slot] = map.next_value_seed(ValSeed)?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct ValSeed;

impl<'de> DeserializeSeed<'de> for ValSeed {
    type Value = Val<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Val<'de>, D::Error> {
        d.deserialize_any(ValVisitor)
    }
}

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Val<'de>, E> {
        Ok(Val::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Val<'de>, E> {
        Ok(Val::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Val<'de>, E> {
        Ok(Val::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Val<'de>, E> {
        Ok(i64::try_from(v).map(Val::Int).unwrap_or(Val::Num(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Val<'de>, E> {
        Ok(Val::Num(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(v)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Val::Composite)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Val<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Val::Composite)
    }
}

/// Epoch-millisecond times from here up to [`SECONDS_END`] (1970-01-12 to 1973-03-03) are
/// what epoch *seconds* from 2001 to 5138 look like: the most common producer mistake.
const SECONDS_START: Millis = 1_000_000_000;
const SECONDS_END: Millis = 100_000_000_000;
/// Epoch milliseconds past this (year 5138) are what epoch micro- or nanoseconds look like.
const MICROS_START: Millis = 100_000_000_000_000;

/// Refuses an absurd event time (`numeric`: it was a number, not RFC 3339 text): before 1970,
/// further ahead of `now` than `max_future`, or a number that looks like epoch seconds,
/// microseconds or nanoseconds rather than milliseconds.
fn check_time(
    time: Millis,
    numeric: bool,
    now: Millis,
    max_future: Millis,
) -> Result<(), DecodeError> {
    let absurd = |why: String| Err(DecodeError::new(RejectReason::AbsurdTime, why));
    if time < 0 {
        return absurd(format!("event time {time} is before 1970"));
    }
    if numeric && (SECONDS_START..SECONDS_END).contains(&time) {
        return absurd(format!(
            "event time {time} read as epoch milliseconds is in 1970–1973; it looks like epoch \
             seconds: send epoch milliseconds ({time}000) or RFC 3339 text (a JSON source can \
             also declare `time_unit = \"s\"`)"
        ));
    }
    if time > now.saturating_add(max_future) {
        let hint = if numeric && time >= MICROS_START {
            "; it looks like epoch micro- or nanoseconds: send epoch milliseconds or RFC 3339 text \
             (a JSON source can also declare `time_unit = \"us\"` or `\"ns\"`)"
        } else {
            ""
        };
        return absurd(format!(
            "event time {time} is further ahead of the clock than max_future ({max_future} ms){hint}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_796_000_000_000;

    fn reason(time: Millis, numeric: bool) -> Option<(RejectReason, String)> {
        check_time(time, numeric, NOW, 3_600_000)
            .err()
            .map(|e| (e.reason, e.detail))
    }

    #[test]
    fn epoch_seconds_are_refused_as_absurd_with_the_fix_not_read_as_1970() {
        let (why, message) = reason(1_796_000_000, true).expect("refused");
        assert_eq!(why, RejectReason::AbsurdTime);
        assert!(message.contains("epoch seconds"), "{message}");
        assert!(message.contains("1796000000000"), "{message}");
        // The same instant as RFC 3339 text is not a number: only the range checks apply.
        assert_eq!(reason(1_796_000_000, false), None);
    }

    #[test]
    fn epoch_microseconds_and_nanoseconds_name_the_unit() {
        for time in [NOW * 1000, NOW * 1_000_000] {
            let (why, message) = reason(time, true).expect("refused");
            assert_eq!(why, RejectReason::AbsurdTime);
            assert!(message.contains("micro- or nanoseconds"), "{message}");
        }
    }

    fn decoder(unit: Option<&str>) -> Decoder {
        let unit = unit.map_or(String::new(), |u| format!("time_unit = \"{u}\"\n"));
        let text = format!(
            "[pipeline]\nname = \"t\"\n[[sources]]\nname = \"s\"\nkey_field = \"k\"\n\
             time_field = \"ts\"\n{unit}[[features]]\nname = \"n\"\nsource = \"s\"\n\
             aggregation = \"count\"\nwindow = \"1m\"\n[model]\nname = \"m\"\n\
             type = \"logistic\"\ninputs = [\"n\"]\nweights = [1.0]\nintercept = 0.0\n"
        );
        let spec = nowcast_spec::parse_spec(&text, "t.toml", std::path::Path::new("."))
            .unwrap_or_else(|e| panic!("{e}"));
        Decoder::new(&spec, 0, None).unwrap()
    }

    fn time_of(d: &Decoder, ts: &str) -> Result<Millis, (RejectReason, String)> {
        let mut out = Decoded::default();
        let line = format!(r#"{{"k":"u","ts":{ts}}}"#);
        d.decode(line.as_bytes(), NOW, &mut out)
            .map(|()| out.time)
            .map_err(|e| (e.reason, e.detail))
    }

    #[test]
    fn time_unit_reads_numeric_times_in_that_unit_and_text_as_it_is() {
        let ms = NOW;
        let text = r#""2026-11-29T00:00:00.250Z""#;
        let text_ms = parse_event_time("2026-11-29T00:00:00.250Z").unwrap();
        for (unit, numeric) in [
            (None, ms.to_string()),
            (Some("ms"), ms.to_string()),
            (Some("s"), format!("{}.5", ms / 1000)),
            (Some("us"), (ms * 1000 + 999).to_string()),
            (Some("ns"), (ms as i128 * 1_000_000 + 999_999).to_string()),
        ] {
            let d = decoder(unit);
            let want = if unit == Some("s") {
                ms / 1000 * 1000 + 500
            } else {
                ms
            };
            assert_eq!(time_of(&d, &numeric), Ok(want), "{unit:?} {numeric}");
            assert_eq!(time_of(&d, text), Ok(text_ms), "{unit:?}");
        }
        // Epoch seconds are plausible under `s`, not under the default.
        let secs = (ms / 1000).to_string();
        assert_eq!(time_of(&decoder(Some("s")), &secs), Ok(ms / 1000 * 1000));
        let (why, message) = time_of(&decoder(None), &secs).unwrap_err();
        assert_eq!(why, RejectReason::AbsurdTime);
        assert!(message.contains(r#"time_unit = "s""#), "{message}");
        // A fraction of a millisecond unit is not a time.
        let (why, _) = time_of(&decoder(Some("us")), "1.5").unwrap_err();
        assert_eq!(why, RejectReason::BadTime);
    }

    #[test]
    fn plausible_epoch_milliseconds_and_small_test_times_pass() {
        for time in [0, 1_000, 999_999_999, SECONDS_END, NOW, NOW + 3_600_000] {
            assert_eq!(reason(time, true), None, "{time}");
        }
        assert!(reason(-1, true).is_some());
        assert!(reason(NOW + 3_600_001, true).is_some());
    }
}
