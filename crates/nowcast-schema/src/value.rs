//! What a decoder hands the pipeline: one value per field the pipeline reads.

use std::borrow::Cow;

/// A field value as read from a record, whatever its format.
#[derive(Debug, Clone, PartialEq)]
pub enum Val<'a> {
    /// The record does not carry the field.
    Absent,
    /// The field is null (JSON `null`, an Avro union's `null` branch, an unset Protobuf
    /// field with presence).
    Null,
    /// A boolean.
    Bool(bool),
    /// A floating-point number.
    Num(f64),
    /// An integer (keys, epoch-millisecond times, counts).
    Int(i64),
    /// Text (also Avro and Protobuf enum symbols).
    Str(Cow<'a, str>),
    /// An object, array, map or nested message: present, but not a scalar.
    Composite,
}

impl Val<'_> {
    /// The value for an error message.
    pub fn describe(&self) -> String {
        match self {
            Val::Absent => "absent".into(),
            Val::Null => "null".into(),
            Val::Bool(b) => b.to_string(),
            Val::Num(n) => n.to_string(),
            Val::Int(n) => n.to_string(),
            Val::Str(s) => format!("{s:?}"),
            Val::Composite => "an object or array".into(),
        }
    }

    /// The value as a number, when it is one.
    pub fn number(&self) -> Option<f64> {
        match self {
            Val::Num(n) => Some(*n),
            Val::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
}

/// How the pipeline uses a field, which decides the types a schema may give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// The entity key: text, an integer or an enum.
    Key,
    /// The event time: epoch milliseconds (an integer, or a timestamp logical type, converted
    /// to milliseconds) or RFC 3339 text.
    Time,
    /// Aggregated or fed to the model as a number: any integer or floating-point type.
    Number,
    /// Compared, counted distinct or carried: any scalar.
    Scalar,
}

impl Use {
    /// What the use needs, for error messages.
    pub fn wants(self) -> &'static str {
        match self {
            Use::Key => "text, an integer or an enum (the entity key)",
            Use::Time => "a long or int of epoch milliseconds, a timestamp logical type or RFC 3339 text (the event time)",
            Use::Number => "a number (int, long, float or double)",
            Use::Scalar => "a scalar (not a record, array or map)",
        }
    }
}

/// One field the pipeline reads from a source's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// Top-level field name.
    pub name: String,
    /// How it is used (the strictest use when it has several).
    pub usage: Use,
    /// Whether the record's schema must give it a value. A required field that the writer
    /// schema lacks, and the reader schema gives no default, makes every record of that schema
    /// a dead letter (`missing_field`). Only the optional event id is not required.
    pub required: bool,
}

/// The fields a pipeline reads from one source, in slot order: a decoder writes the value of
/// `needs[i]` into slot `i`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs(pub Vec<Need>);

impl Needs {
    /// The slot of field `name`.
    pub fn slot(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|n| n.name == name)
    }
}
