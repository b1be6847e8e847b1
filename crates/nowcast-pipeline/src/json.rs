//! JSON-lines writers for the outputs, writing straight into a reused buffer.

use nowcast_core::{FeatureValue, RejectReason};

fn push_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

/// `"name":` as JSON bytes (escaped), rendered once and reused for every record.
pub fn object_key(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 3);
    push_str(&mut out, name);
    out.push(b':');
    out
}

fn push_num<T: serde::Serialize>(out: &mut Vec<u8>, v: T) {
    // serde_json writes non-finite floats as `null`.
    serde_json::to_writer(&mut *out, &v).expect("writing to a Vec cannot fail");
}

fn push_i64(out: &mut Vec<u8>, v: i64) {
    use std::io::Write;
    let _ = write!(out, "{v}");
}

fn push_value(out: &mut Vec<u8>, v: &FeatureValue) {
    match v {
        FeatureValue::Null => out.extend_from_slice(b"null"),
        FeatureValue::Num(x) => push_num(out, *x),
        FeatureValue::List(items) => {
            out.push(b'[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_num(out, *x);
            }
            out.push(b']');
        }
    }
}

/// The original record as the field `"original"`: its text when it is UTF-8 (a JSON line
/// stays readable), else a lossy rendering for people plus `"original_base64"` with the exact
/// bytes (binary Avro or Protobuf records, or text with a bad byte), so nothing is lost.
fn push_original(out: &mut Vec<u8>, original: &[u8]) {
    out.extend_from_slice(b"\"original\":");
    match std::str::from_utf8(original) {
        Ok(text) => push_str(out, text),
        Err(_) => {
            use base64::Engine as _;
            push_str(out, &String::from_utf8_lossy(original));
            out.extend_from_slice(b",\"original_base64\":");
            push_str(
                out,
                &base64::engine::general_purpose::STANDARD.encode(original),
            );
        }
    }
}

/// Writers for each output kind.
pub struct JsonLine;

impl JsonLine {
    /// A dead letter: source, partition, offset, reason, detail, original (as a string).
    pub fn dead_letter(
        out: &mut Vec<u8>,
        source: &str,
        partition: u32,
        offset: u64,
        reason: RejectReason,
        detail: &str,
        original: &[u8],
    ) {
        out.extend_from_slice(b"{\"source\":");
        push_str(out, source);
        out.extend_from_slice(b",\"partition\":");
        push_i64(out, partition as i64);
        out.extend_from_slice(b",\"offset\":");
        push_i64(out, offset as i64);
        out.extend_from_slice(b",\"reason\":");
        push_str(out, reason.as_str());
        out.extend_from_slice(b",\"detail\":");
        push_str(out, detail);
        out.push(b',');
        push_original(out, original);
        out.push(b'}');
    }

    /// A late event: source, partition, offset, entity, event id and time, the watermark, the
    /// reason and the original record.
    #[allow(clippy::too_many_arguments)]
    pub fn late(
        out: &mut Vec<u8>,
        source: &str,
        partition: u32,
        offset: u64,
        entity: &str,
        id: Option<&str>,
        time: i64,
        watermark: i64,
        newest: i64,
        lateness: i64,
        original: &[u8],
    ) {
        out.extend_from_slice(b"{\"source\":");
        push_str(out, source);
        out.extend_from_slice(b",\"partition\":");
        push_i64(out, partition as i64);
        out.extend_from_slice(b",\"offset\":");
        push_i64(out, offset as i64);
        out.extend_from_slice(b",\"entity\":");
        push_str(out, entity);
        out.extend_from_slice(b",\"event_id\":");
        match id {
            Some(id) => push_str(out, id),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"event_time\":");
        push_i64(out, time);
        out.extend_from_slice(b",\"watermark\":");
        push_i64(out, watermark);
        out.extend_from_slice(b",\"reason\":");
        push_str(
            out,
            &format!("event time is {} ms behind the entity's newest event ({newest}); allowed lateness is {lateness} ms", newest - time),
        );
        out.push(b',');
        push_original(out, original);
        out.push(b'}');
    }

    /// An emitted feature vector (every feature, by name).
    pub fn features(
        out: &mut Vec<u8>,
        event_id: &str,
        entity: &str,
        time: i64,
        keys: &[Vec<u8>],
        values: &[FeatureValue],
    ) {
        out.extend_from_slice(b"{\"event_id\":");
        push_str(out, event_id);
        out.extend_from_slice(b",\"entity\":");
        push_str(out, entity);
        out.extend_from_slice(b",\"event_time\":");
        push_i64(out, time);
        out.extend_from_slice(b",\"features\":{");
        for (i, (k, v)) in keys.iter().zip(values).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(k);
            push_value(out, v);
        }
        out.extend_from_slice(b"}}");
    }
}

/// A prediction record.
pub struct PredictionLine<'a> {
    /// Event id.
    pub event_id: &'a str,
    /// Entity.
    pub entity: &'a str,
    /// Score.
    pub score: f64,
    /// Model name.
    pub model: &'a str,
    /// Model version.
    pub model_version: &'a str,
    /// Model input names as pre-rendered JSON keys ([`object_key`]).
    pub keys: &'a [Vec<u8>],
    /// Model input values as fed to the model, written in the shortest form that reads back as
    /// the same `f32`.
    pub values: &'a [f32],
    /// Event time.
    pub event_time: i64,
    /// Emit time.
    pub emit_time: i64,
}

impl PredictionLine<'_> {
    /// Writes the record as one JSON object.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"event_id\":");
        push_str(out, self.event_id);
        out.extend_from_slice(b",\"entity\":");
        push_str(out, self.entity);
        out.extend_from_slice(b",\"score\":");
        push_num(out, self.score);
        out.extend_from_slice(b",\"model\":");
        push_str(out, self.model);
        out.extend_from_slice(b",\"model_version\":");
        push_str(out, self.model_version);
        out.extend_from_slice(b",\"features\":{");
        for (i, (k, v)) in self.keys.iter().zip(self.values).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(k);
            // An `f32` is written as the shortest decimal that reads back as exactly that
            // `f32` (`21.78`, not the widened `21.780000686645508`).
            push_num(out, *v);
        }
        out.extend_from_slice(b"},\"event_time\":");
        push_i64(out, self.event_time);
        out.extend_from_slice(b",\"emit_time\":");
        push_i64(out, self.emit_time);
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prediction_features_are_the_f32_the_model_saw_in_shortest_form() {
        let keys = [
            object_key("amount"),
            object_key("sum_1h"),
            object_key("bad"),
        ];
        let mut out = Vec::new();
        PredictionLine {
            event_id: "e-1",
            entity: "u-\"1\"",
            score: 0.25,
            model: "m",
            model_version: "v",
            keys: &keys,
            values: &[21.78, 2681.58, f32::NAN],
            event_time: 5,
            emit_time: 6,
        }
        .write(&mut out);
        let line = String::from_utf8(out).unwrap();
        assert_eq!(
            line,
            r#"{"event_id":"e-1","entity":"u-\"1\"","score":0.25,"model":"m","model_version":"v","features":{"amount":21.78,"sum_1h":2681.58,"bad":null},"event_time":5,"emit_time":6}"#
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        // Read back and narrowed, each value is bit for bit the model's input.
        assert_eq!(
            (v["features"]["sum_1h"].as_f64().unwrap() as f32).to_bits(),
            2681.58f32.to_bits()
        );
    }

    #[test]
    fn dead_letter_of_bytes_that_are_not_utf8_keeps_them_exactly() {
        use base64::Engine as _;
        let dead = |original: &[u8]| -> serde_json::Value {
            let mut out = Vec::new();
            JsonLine::dead_letter(
                &mut out,
                "s",
                1,
                7,
                RejectReason::Malformed,
                "bad",
                original,
            );
            serde_json::from_slice(&out).unwrap()
        };
        let original = [b'{', b'"', b'u', 0xff, b'"', b':', 0x00, 0x80, b'}'];
        let v = dead(&original);
        let exact = base64::engine::general_purpose::STANDARD
            .decode(v["original_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(exact, original);
        assert_eq!(v["original"], String::from_utf8_lossy(&original).as_ref());

        let v = dead(b"{\"a\":1");
        assert_eq!(v["original"], "{\"a\":1");
        assert!(v.get("original_base64").is_none());
    }
}
