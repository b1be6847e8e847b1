//! Writing Avro binary from JSON objects (the generator's events, for Avro sources): each
//! field of the record schema from the JSON field of the same name, or the field's default.

use apache_avro::schema::{RecordSchema, UuidSchema};
use apache_avro::Schema;

use crate::wire::write_zigzag;

fn put_str(out: &mut Vec<u8>, s: &str) {
    write_zigzag(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

/// Appends the Avro encoding of the JSON object `v` under the record schema `schema`.
/// Supports what events hold: null, boolean, int, long (and the date/time logical types on
/// them), float, double, string, enum, unions (the first branch the value fits) and nested
/// records; not bytes, fixed, arrays or maps.
pub fn json_to_avro(
    schema: &Schema,
    v: &serde_json::Value,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    match schema {
        Schema::Record(r) => record(r, v, out),
        other => value(other, v, out, "the top"),
    }
}

fn record(r: &RecordSchema, v: &serde_json::Value, out: &mut Vec<u8>) -> Result<(), String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("record `{}` needs a JSON object", r.name))?;
    for f in &r.fields {
        let fv = obj.get(&f.name).or(f.default.as_ref());
        let fv = fv.unwrap_or(&serde_json::Value::Null);
        value(&f.schema, fv, out, &f.name)?;
    }
    Ok(())
}

fn fits(s: &Schema, v: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (s, v) {
        (Schema::Null, J::Null) => true,
        (Schema::Boolean, J::Bool(_)) => true,
        (
            Schema::Int
            | Schema::Long
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos,
            J::Number(n),
        ) => n.is_i64(),
        (Schema::Float | Schema::Double, J::Number(_)) => true,
        (Schema::String | Schema::Enum(_) | Schema::Uuid(UuidSchema::String), J::String(_)) => true,
        (Schema::Record(_), J::Object(_)) => true,
        _ => false,
    }
}

fn value(s: &Schema, v: &serde_json::Value, out: &mut Vec<u8>, field: &str) -> Result<(), String> {
    use serde_json::Value as J;
    let bad = || format!("field `{field}`: {v} does not fit {s:?}");
    match s {
        Schema::Null => {}
        Schema::Boolean => out.push(u8::from(v.as_bool().ok_or_else(bad)?)),
        Schema::Int
        | Schema::Long
        | Schema::Date
        | Schema::TimeMillis
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::LocalTimestampMillis => write_zigzag(out, v.as_i64().ok_or_else(bad)?),
        Schema::TimestampMicros | Schema::LocalTimestampMicros => {
            write_zigzag(out, v.as_i64().ok_or_else(bad)?.saturating_mul(1_000))
        }
        Schema::TimestampNanos | Schema::LocalTimestampNanos => {
            write_zigzag(out, v.as_i64().ok_or_else(bad)?.saturating_mul(1_000_000))
        }
        Schema::Float => out.extend_from_slice(&(v.as_f64().ok_or_else(bad)? as f32).to_le_bytes()),
        Schema::Double => out.extend_from_slice(&v.as_f64().ok_or_else(bad)?.to_le_bytes()),
        Schema::String | Schema::Uuid(UuidSchema::String) => {
            put_str(out, v.as_str().ok_or_else(bad)?)
        }
        Schema::Enum(e) => {
            let sym = v.as_str().ok_or_else(bad)?;
            let i = e.symbols.iter().position(|s| s == sym).ok_or_else(bad)?;
            write_zigzag(out, i as i64);
        }
        Schema::Union(u) => {
            let (i, branch) = u
                .variants()
                .iter()
                .enumerate()
                .find(|(_, b)| fits(b, v))
                .ok_or_else(bad)?;
            write_zigzag(out, i as i64);
            value(branch, v, out, field)?;
        }
        Schema::Record(r) => record(r, v, out)?,
        _ if matches!(v, J::Null) => return Err(format!("field `{field}` is missing")),
        _ => return Err(bad()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avro::AvroReader;
    use crate::{Need, Needs, Use, Val};

    #[test]
    fn json_events_round_trip_through_the_reader() {
        let s = Schema::parse_str(
            r#"{"type":"record","name":"E","fields":[
              {"name":"user_id","type":"string"},
              {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
              {"name":"amount","type":"double"},
              {"name":"channel","type":["null","string"],"default":null},
              {"name":"foreign","type":"boolean","default":false}]}"#,
        )
        .unwrap();
        let mut out = Vec::new();
        json_to_avro(
            &s,
            &serde_json::json!({"user_id":"u","ts":5,"amount":2.5,"channel":"pos"}),
            &mut out,
        )
        .unwrap();
        let needs = Needs(
            [
                ("user_id", Use::Key),
                ("ts", Use::Time),
                ("amount", Use::Number),
                ("channel", Use::Scalar),
                ("foreign", Use::Scalar),
            ]
            .into_iter()
            .map(|(n, u)| Need {
                name: n.into(),
                usage: u,
                required: true,
            })
            .collect(),
        );
        let r = AvroReader::compile(&s, None, &needs).unwrap();
        let mut vals = vec![Val::Absent; 5];
        r.read(&out, &mut vals).unwrap();
        assert_eq!(
            vals,
            vec![
                Val::Str("u".into()),
                Val::Int(5),
                Val::Num(2.5),
                Val::Str("pos".into()),
                Val::Bool(false)
            ]
        );
        let err = json_to_avro(&s, &serde_json::json!({"ts":5}), &mut Vec::new()).unwrap_err();
        assert!(err.contains("user_id"), "{err}");
    }
}
