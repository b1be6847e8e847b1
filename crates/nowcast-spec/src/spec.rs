//! The validated pipeline definition.

use std::net::SocketAddr;
use std::path::PathBuf;

use nowcast_core::Millis;
use nowcast_window::EngineConfig;

/// A validated pipeline, ready to build.
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    /// Pipeline name.
    pub name: String,
    /// Directory of the spec file; relative paths in the spec are resolved against it.
    pub spec_dir: PathBuf,
    /// Partitions of the embedded input log.
    pub partitions: u32,
    /// Embedded log, state and outputs live here.
    pub data_dir: PathBuf,
    /// Checkpoint interval.
    pub checkpoint_interval: Millis,
    /// Processing threads.
    pub workers: usize,
    /// Larger records are dead-lettered.
    pub max_record_bytes: usize,
    /// Sources, in spec order (index = source id in the engine).
    pub sources: Vec<Source>,
    /// How each feature reads its input from an event, in feature order.
    pub feature_inputs: Vec<FeatureInput>,
    /// The window engine's configuration (features in spec order).
    pub engine: EngineConfig,
    /// The model.
    pub model: ModelDef,
    /// Serving listen address.
    pub serving_addr: SocketAddr,
    /// Largest request body the API reads, in bytes (`serving.max_body_bytes`).
    pub serving_max_body_bytes: usize,
    /// Most entities in one batch read (`serving.max_batch_entities`).
    pub serving_max_batch_entities: usize,
    /// Objectives.
    pub slo: Slo,
    /// Write each event's feature vector to the outputs.
    pub write_features: bool,
    /// Predictions on Kafka in Avro (`outputs.format = "avro"`) instead of JSON.
    pub avro_predictions: bool,
    /// Run on Apache Kafka (`[kafka]`) instead of the embedded log.
    pub kafka: Option<crate::KafkaSpec>,
    /// The schema registry (`[registry]`).
    pub registry: Option<crate::RegistrySpec>,
}

/// A source of events.
#[derive(Debug, Clone)]
pub struct Source {
    /// Name.
    pub name: String,
    /// Kafka topic (used with `[kafka]`).
    pub topic: String,
    /// With `[kafka]`: the internal topic the source is re-keyed into by entity, when the
    /// source topic is not keyed by the entity.
    pub repartition_topic: Option<String>,
    /// Entity key field.
    pub key_field: String,
    /// Event-time field.
    pub time_field: String,
    /// Event-id field.
    pub id_field: Option<String>,
    /// How records are encoded.
    pub format: crate::SourceFormat,
    /// Allowed lateness.
    pub allowed_lateness: Millis,
    /// Largest accepted lead of event time over the wall clock.
    pub max_future: Millis,
    /// The unit of a numeric event time.
    pub time_unit: TimeUnit,
}

/// The unit of a numeric event-time field (`time_unit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeUnit {
    /// Epoch seconds (a fraction keeps its milliseconds).
    Seconds,
    /// Epoch milliseconds.
    #[default]
    Millis,
    /// Epoch microseconds (rounded down to the millisecond).
    Micros,
    /// Epoch nanoseconds (rounded down to the millisecond).
    Nanos,
}

impl TimeUnit {
    /// Every unit with its spec name.
    pub const ALL: [(TimeUnit, &'static str); 4] = [
        (TimeUnit::Seconds, "s"),
        (TimeUnit::Millis, "ms"),
        (TimeUnit::Micros, "us"),
        (TimeUnit::Nanos, "ns"),
    ];

    /// The unit named `name` in a spec.
    pub fn parse(name: &str) -> Option<TimeUnit> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(u, _)| *u)
    }

    /// An integer time in this unit as epoch milliseconds (`None` past the range of `i64`).
    pub fn int_to_millis(self, v: i64) -> Option<Millis> {
        match self {
            TimeUnit::Seconds => v.checked_mul(1000),
            TimeUnit::Millis => Some(v),
            TimeUnit::Micros => Some(v.div_euclid(1000)),
            TimeUnit::Nanos => Some(v.div_euclid(1_000_000)),
        }
    }

    /// A number in this unit as epoch milliseconds: a whole number of milliseconds (seconds
    /// may have a fraction, kept to the nearest millisecond); `None` for a fraction of a
    /// finer unit, or a magnitude no integer time can have.
    pub fn num_to_millis(self, v: f64) -> Option<Millis> {
        if !v.is_finite() || v.abs() >= 9.0e15 {
            return None;
        }
        match self {
            TimeUnit::Seconds => {
                let ms = (v * 1000.0).round();
                (ms.abs() < 9.0e15).then_some(ms as Millis)
            }
            _ if v.fract() == 0.0 => self.int_to_millis(v as i64),
            _ => None,
        }
    }
}

/// How a feature's input is read from the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// Any matching event counts (count, time_since_last).
    Presence,
    /// The field must be a number.
    Number,
    /// The field's value is hashed (distinct_count): strings, numbers and booleans.
    Hash,
}

/// A scalar in a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// Text.
    Str(String),
    /// Number (integers compare as numbers).
    Num(f64),
    /// Boolean.
    Bool(bool),
}

/// A filter's test.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterOp {
    /// Field equals the value.
    Equals(Scalar),
    /// Field is present and differs from the value.
    NotEquals(Scalar),
    /// Field equals one of the values.
    In(Vec<Scalar>),
}

/// A filter on one field.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// The field tested.
    pub field: String,
    /// The test.
    pub op: FilterOp,
}

/// Where one feature's input comes from.
#[derive(Debug, Clone)]
pub struct FeatureInput {
    /// Source index.
    pub source: usize,
    /// Aggregated field, if any.
    pub field: Option<String>,
    /// How it is read.
    pub kind: InputKind,
    /// Optional filter.
    pub filter: Option<Filter>,
    /// The window engine's input column of the source: features with the same source, field,
    /// kind and filter read one shared column.
    pub column: usize,
}

/// The model definition.
#[derive(Debug, Clone)]
pub struct ModelDef {
    /// Name.
    pub name: String,
    /// Kind and parameters.
    pub kind: ModelKindDef,
    /// Ordered inputs.
    pub inputs: Vec<ModelInput>,
    /// Fields read from the event or the predict request.
    pub request_fields: Vec<String>,
    /// Model file poll interval.
    pub reload_interval: Millis,
    /// `model.engine`: compile tree-ensemble graphs to native code (`auto`, the default) or
    /// always score through ONNX Runtime (`onnxruntime`).
    pub compile_trees: bool,
}

/// Model kinds.
#[derive(Debug, Clone)]
pub enum ModelKindDef {
    /// An ONNX file (absolute path after resolution).
    Onnx {
        /// The file.
        path: PathBuf,
    },
    /// An inline linear model; `logistic` applies the logistic function.
    Linear {
        /// One weight per input.
        weights: Vec<f64>,
        /// Intercept.
        intercept: f64,
        /// Apply the logistic function.
        logistic: bool,
    },
}

/// One model input.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelInput {
    /// A stream feature (element `element` of a `last_n` list, else 0).
    Feature {
        /// Input name as written.
        name: String,
        /// Feature index.
        feature: usize,
        /// List element.
        element: usize,
        /// Value when null.
        default: f64,
    },
    /// A request-time field.
    Request {
        /// Field name.
        name: String,
        /// Value when missing.
        default: f64,
    },
}

impl ModelInput {
    /// The input's name as written in the spec.
    pub fn name(&self) -> &str {
        match self {
            ModelInput::Feature { name, .. } | ModelInput::Request { name, .. } => name,
        }
    }
}

/// Service-level objectives.
#[derive(Debug, Clone, Copy)]
pub struct Slo {
    /// Target P99 event time → prediction.
    pub p99_event_to_prediction: Millis,
    /// Target P99 freshness.
    pub freshness_p99: Millis,
}
