//! nowcast's predictions as Avro: the schema nowcast registers for its predictions topic, and
//! a writer that encodes straight into a buffer.

use crate::wire::{write_header, write_zigzag};

/// An Avro name from arbitrary text: letters, digits and `_`, not starting with a digit.
fn avro_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The Avro layout of one pipeline's predictions.
#[derive(Debug, Clone)]
pub struct PredictionSchema {
    json: String,
    full_name: String,
}

impl PredictionSchema {
    /// The schema for pipeline `pipeline` whose model reads `inputs` (in order). Each input is
    /// a `float` field of the nested `features` record, named after the input with characters
    /// Avro does not allow replaced by `_` (`last3[0]` → `last3_0_`); the original name is the
    /// field's `doc`.
    pub fn new(pipeline: &str, inputs: &[String]) -> PredictionSchema {
        let namespace = format!("nowcast.{}", avro_name(pipeline));
        let mut used = std::collections::HashSet::new();
        let fields: Vec<serde_json::Value> = inputs
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mut n = avro_name(name);
                if !used.insert(n.clone()) {
                    n = format!("{n}_{i}");
                    used.insert(n.clone());
                }
                serde_json::json!({"name": n, "type": "float", "doc": name})
            })
            .collect();
        let ts = serde_json::json!({"type": "long", "logicalType": "timestamp-millis"});
        let schema = serde_json::json!({
            "type": "record",
            "name": "Prediction",
            "namespace": namespace,
            "doc": "One scored event: the model's score on the entity's features as of the event.",
            "fields": [
                {"name": "event_id", "type": "string"},
                {"name": "entity", "type": "string"},
                {"name": "score", "type": "double"},
                {"name": "model", "type": "string"},
                {"name": "model_version", "type": "string"},
                {"name": "features", "type": {"type": "record", "name": "Features", "fields": fields}},
                {"name": "event_time", "type": ts},
                {"name": "emit_time", "type": ts},
            ]
        });
        PredictionSchema {
            json: schema.to_string(),
            full_name: format!("{namespace}.Prediction"),
        }
    }

    /// The schema as JSON text (what is registered).
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The record's full name (for the `record` subject strategies).
    pub fn full_name(&self) -> &str {
        &self.full_name
    }
}

/// One prediction, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct PredictionRecord<'a> {
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
    /// Model inputs, in schema order.
    pub values: &'a [f32],
    /// Event time.
    pub event_time: i64,
    /// Emit time.
    pub emit_time: i64,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    write_zigzag(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

impl PredictionRecord<'_> {
    /// Appends the record in the Confluent wire format with schema id `id`.
    pub fn write(&self, id: u32, out: &mut Vec<u8>) {
        write_header(out, id);
        put_str(out, self.event_id);
        put_str(out, self.entity);
        out.extend_from_slice(&self.score.to_le_bytes());
        put_str(out, self.model);
        put_str(out, self.model_version);
        for v in self.values {
            out.extend_from_slice(&v.to_le_bytes());
        }
        write_zigzag(out, self.event_time);
        write_zigzag(out, self.emit_time);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_records_read_back_with_the_schema() {
        #[allow(deprecated)]
        use apache_avro::from_avro_datum;
        use apache_avro::types::Value;
        let inputs = vec!["amount".to_string(), "last3[0]".into(), "last3_0_".into()];
        let s = PredictionSchema::new("card-fraud", &inputs);
        let schema = apache_avro::Schema::parse_str(s.json()).unwrap();
        assert_eq!(s.full_name(), "nowcast.card_fraud.Prediction");
        let mut out = Vec::new();
        PredictionRecord {
            event_id: "e1",
            entity: "u1",
            score: 0.25,
            model: "m",
            model_version: "v1",
            values: &[1.5, 2.0, 3.0],
            event_time: 10,
            emit_time: 12,
        }
        .write(7, &mut out);
        assert_eq!(&out[..5], &[0, 0, 0, 0, 7]);
        #[allow(deprecated)]
        let v = from_avro_datum(&schema, &mut &out[5..], None).unwrap();
        let Value::Record(fields) = v else { panic!() };
        assert_eq!(fields[0], ("event_id".into(), Value::String("e1".into())));
        assert_eq!(fields[2], ("score".into(), Value::Double(0.25)));
        let Value::Record(feats) = &fields[5].1 else {
            panic!()
        };
        let names: Vec<_> = feats.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["amount", "last3_0_", "last3_0__2"]);
        assert_eq!(feats[1].1, Value::Float(2.0));
        assert_eq!(fields[7], ("emit_time".into(), Value::TimestampMillis(12)));
    }
}
