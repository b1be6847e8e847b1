//! Records that leave the pipeline: predictions, dead letters and late events, and the values
//! a feature can take.

use serde::{Deserialize, Serialize};

use crate::Millis;

/// The value of one feature at one evaluation time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FeatureValue {
    /// No value: the window holds no event the aggregation can summarise (the mean, minimum or
    /// last value of an empty window). Serialised as JSON `null`.
    Null,
    /// A number.
    Num(f64),
    /// A list of numbers, newest first (`last_n`).
    List(Vec<f64>),
}

impl FeatureValue {
    /// The value as a model input: numbers as they are, `Null` as `default`, a list as its
    /// element `index` (or `default` past its end).
    pub fn as_model_input(&self, index: usize, default: f64) -> f64 {
        match self {
            FeatureValue::Null => default,
            FeatureValue::Num(v) => *v,
            FeatureValue::List(items) => items.get(index).copied().unwrap_or(default),
        }
    }
}

/// Why an input record was refused. Each reason is a metric label
/// (`nowcast_events_rejected_total{reason=…}`) and travels with the dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The bytes are not a JSON object (or not valid for the source's format).
    Malformed,
    /// The entity key field is absent, null or empty.
    MissingKey,
    /// The event-time field is absent.
    MissingTime,
    /// The event-time field is not RFC 3339 or epoch milliseconds.
    BadTime,
    /// The event time is before 1970 or too far in the future.
    AbsurdTime,
    /// A field that a feature aggregates numerically is not a number.
    NotNumeric,
    /// The record is larger than the source's `max_record_bytes`.
    Oversized,
    /// The record sits on a different partition than its entity key hashes to, so the
    /// entity's state would be split (the topic is not keyed by the entity).
    WrongPartition,
    /// The record is not in the Confluent wire format (magic byte 0, 4-byte schema id).
    BadFraming,
    /// The record's schema id is unknown to the registry (or to the local schemas).
    UnknownSchema,
    /// The registry could not be reached to resolve the record's schema id (after retries,
    /// under the source's `on_registry_error = "dead_letter"` policy).
    RegistryUnavailable,
    /// The record's writer schema cannot be used: another format than the source's, not a
    /// record or message at the top, or unparsable.
    BadSchema,
    /// The Avro or Protobuf payload is truncated or corrupt.
    CorruptPayload,
    /// The Protobuf message-index list points at no message of the schema.
    BadMessageIndex,
    /// The record's schema gives a field the pipeline reads a type it cannot use.
    TypeMismatch,
    /// The record's schema lacks a field the pipeline reads, and no reader default fills it.
    MissingField,
}

impl RejectReason {
    /// Every reason, in a stable order (for metrics and reports).
    pub const ALL: [RejectReason; 16] = [
        RejectReason::Malformed,
        RejectReason::MissingKey,
        RejectReason::MissingTime,
        RejectReason::BadTime,
        RejectReason::AbsurdTime,
        RejectReason::NotNumeric,
        RejectReason::Oversized,
        RejectReason::WrongPartition,
        RejectReason::BadFraming,
        RejectReason::UnknownSchema,
        RejectReason::RegistryUnavailable,
        RejectReason::BadSchema,
        RejectReason::CorruptPayload,
        RejectReason::BadMessageIndex,
        RejectReason::TypeMismatch,
        RejectReason::MissingField,
    ];

    /// The snake_case label of this reason.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Malformed => "malformed",
            RejectReason::MissingKey => "missing_key",
            RejectReason::MissingTime => "missing_time",
            RejectReason::BadTime => "bad_time",
            RejectReason::AbsurdTime => "absurd_time",
            RejectReason::NotNumeric => "not_numeric",
            RejectReason::Oversized => "oversized",
            RejectReason::WrongPartition => "wrong_partition",
            RejectReason::BadFraming => "bad_framing",
            RejectReason::UnknownSchema => "unknown_schema",
            RejectReason::RegistryUnavailable => "registry_unavailable",
            RejectReason::BadSchema => "bad_schema",
            RejectReason::CorruptPayload => "corrupt_payload",
            RejectReason::BadMessageIndex => "bad_message_index",
            RejectReason::TypeMismatch => "type_mismatch",
            RejectReason::MissingField => "missing_field",
        }
    }
}

/// A dead letter: the original bytes of a refused record with the reason and a readable detail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejected {
    /// The source the record came from.
    pub source: String,
    /// Partition and offset of the record in its log, when it came from one.
    pub partition: u32,
    /// Offset of the record in its partition.
    pub offset: u64,
    /// Machine-readable reason.
    pub reason: RejectReason,
    /// What exactly was wrong, e.g. ``field `amount` is "abc", not a number``.
    pub detail: String,
    /// The original record, lossily decoded as UTF-8 for JSON output.
    pub original: String,
}

/// An event that arrived later than its source's allowed lateness and was not applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LateEvent {
    /// The source the event came from.
    pub source: String,
    /// The entity it belongs to.
    pub entity: String,
    /// Its event id, when the source has one.
    pub event_id: Option<String>,
    /// Its event time.
    pub event_time: Millis,
    /// The entity's watermark when it arrived (newest event time minus allowed lateness).
    pub watermark: Millis,
    /// Readable reason.
    pub reason: String,
    /// The original record.
    pub original: String,
}

/// A prediction: one per applied event.
///
/// `features` are the entity's stream features evaluated at the event's time over the events
/// applied *before* this one (the event itself is not included; its own fields reach the model
/// as request-time inputs). Training data built later must use the same rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The event's id (from the source's `id_field`, or `<source>-<partition>-<offset>`).
    pub event_id: String,
    /// The entity the event belongs to.
    pub entity: String,
    /// The model's score: the positive-class probability for a binary classifier.
    pub score: f64,
    /// The model's name.
    pub model: String,
    /// The model's version (content hash of the model file, or the inline model's version).
    pub model_version: String,
    /// Feature name → value, for every model input, as used by the model.
    pub features: Vec<(String, f64)>,
    /// The event time, epoch milliseconds.
    pub event_time: Millis,
    /// Wall-clock time at which the prediction was emitted, epoch milliseconds.
    pub emit_time: Millis,
}
