//! The raw, user-facing spec as written in TOML. Unknown keys are refused. Durations are text
//! (`"5m"`); everything is checked later by [`crate::validate`].

use serde::de::{Deserializer, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// Reads duration text, so that a wrong type names what a duration looks like
/// ("expected a duration string like \"30s\", got integer 5").
struct DurationText;

impl Visitor<'_> for DurationText {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration string like \"30s\"")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// `deserialize_with` for a required duration.
pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_string(DurationText)
}

/// `deserialize_with` for an optional duration (with `#[serde(default)]`).
pub(crate) fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    duration(d).map(Some)
}

/// `[pipeline]`: global settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    /// Name of the pipeline; used in metric labels and file names.
    pub name: String,
    /// Partitions of the embedded input log (entity-hash partitioned). Default 4.
    #[serde(default)]
    pub partitions: Option<u32>,
    /// Directory for the embedded log, state snapshots and outputs, relative to the spec file.
    /// Default `data/<name>`.
    #[serde(default)]
    pub data_dir: Option<String>,
    /// How often each worker checkpoints its state and output positions. Default `5s`.
    #[serde(default, deserialize_with = "opt_duration")]
    pub checkpoint_interval: Option<String>,
    /// Processing threads. Default: the number of CPU cores, at most `partitions`.
    #[serde(default)]
    pub workers: Option<usize>,
    /// Events larger than this go to the dead-letter output. Default 65536.
    #[serde(default)]
    pub max_record_bytes: Option<usize>,
}

/// `[[sources]]`: a stream of events.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    /// Unique source name.
    pub name: String,
    /// Kafka topic of the source (with `[kafka]`). Default: the source name.
    #[serde(default)]
    pub topic: Option<String>,
    /// With `[kafka]`: the topic is not keyed by `key_field` (e.g. keyed by session), so
    /// nowcast first re-keys its records by entity through the internal topic
    /// `<pipeline>.<source>.repartition`. Default false.
    #[serde(default)]
    pub repartition: Option<bool>,
    /// `json` (default), `avro` or `protobuf`.
    #[serde(default)]
    pub format: Option<String>,
    /// Avro or Protobuf: a local schema file (`.avsc`, `.proto`), relative to the spec file.
    /// The writer schema under `framing = "bare"`; for Avro in the Confluent framing, the
    /// reader schema (defaults and aliases for fields a writer lacks).
    #[serde(default)]
    pub schema: Option<String>,
    /// Bare Protobuf: the message the records hold (`package.Message`).
    #[serde(default)]
    pub message: Option<String>,
    /// `confluent` (magic byte and schema id; default with `[registry]`) or `bare` (payload
    /// only, written with `schema`; default without).
    #[serde(default)]
    pub framing: Option<String>,
    /// The registry subject of the source's schemas (checked by `validate`). Default by the
    /// registry's subject strategy (`<topic>-value`).
    #[serde(default)]
    pub subject: Option<String>,
    /// When the registry cannot be reached for a schema id not yet cached: `stop` (default;
    /// nothing past the record is committed) or `dead_letter`.
    #[serde(default)]
    pub on_registry_error: Option<String>,
    /// The field holding the entity key (string or integer).
    pub key_field: String,
    /// The field holding the event time: RFC 3339 text or epoch milliseconds.
    pub time_field: String,
    /// Optional field holding a unique event id.
    #[serde(default)]
    pub id_field: Option<String>,
    /// How far behind the entity's newest event an event may be and still be applied.
    /// Default `0s`.
    #[serde(default, deserialize_with = "opt_duration")]
    pub allowed_lateness: Option<String>,
    /// Event times further than this ahead of the wall clock are refused as absurd. Default `1h`.
    #[serde(default, deserialize_with = "opt_duration")]
    pub max_future: Option<String>,
    /// The unit of a numeric event time: `ms` (default), `s`, `us` or `ns`. RFC 3339 text is
    /// read as it is whatever the unit.
    #[serde(default)]
    pub time_unit: Option<String>,
    /// Declared fields and their types (`number`, `string`, `bool`, `any`). When present,
    /// features, filters and model inputs may only use declared fields of a usable type.
    #[serde(default)]
    pub fields: Option<BTreeMap<String, String>>,
}

/// A filter on one field's value: the event feeds the feature only when it matches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSection {
    /// The field to test.
    pub field: String,
    /// Match when the field equals this value.
    #[serde(default)]
    pub equals: Option<toml::Value>,
    /// Match when the field is present and differs from this value.
    #[serde(default)]
    pub not_equals: Option<toml::Value>,
    /// Match when the field equals one of these values.
    #[serde(default, rename = "in")]
    pub one_of: Option<Vec<toml::Value>>,
}

/// `[[features]]`: one windowed aggregation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSection {
    /// Unique feature name.
    pub name: String,
    /// The source whose events feed it.
    pub source: String,
    /// count, sum, mean, min, max, stddev, distinct_count, last, last_n, quantile,
    /// time_since_last, decayed_sum.
    pub aggregation: String,
    /// The aggregated field (not for count and time_since_last).
    #[serde(default)]
    pub field: Option<String>,
    /// Window length, e.g. `5m`, `1h`, `1d`.
    #[serde(deserialize_with = "duration")]
    pub window: String,
    /// Tile size for the tiled window. Default: window / 60.
    #[serde(default, deserialize_with = "opt_duration")]
    pub hop: Option<String>,
    /// Keep every event in the window instead of tiles (exact, more memory).
    #[serde(default)]
    pub exact: Option<bool>,
    /// `last_n`: how many values.
    #[serde(default)]
    pub n: Option<usize>,
    /// `quantile`: which quantile, 0..=1.
    #[serde(default)]
    pub quantile: Option<f64>,
    /// `quantile`: the sketch's relative accuracy. Default 0.01.
    #[serde(default)]
    pub relative_accuracy: Option<f64>,
    /// `decayed_sum`: half-life, e.g. `10m`.
    #[serde(default, deserialize_with = "opt_duration")]
    pub half_life: Option<String>,
    /// Only events matching the filter feed the feature.
    #[serde(default)]
    pub filter: Option<FilterSection>,
}

/// `[model]`: what scores every event.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Model name carried on predictions.
    pub name: String,
    /// `onnx`, `linear` or `logistic`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `onnx`: the model file, relative to the spec file.
    #[serde(default)]
    pub path: Option<String>,
    /// `linear` / `logistic`: one weight per input.
    #[serde(default)]
    pub weights: Option<Vec<f64>>,
    /// `linear` / `logistic`: the intercept. Default 0.
    #[serde(default)]
    pub intercept: Option<f64>,
    /// Fields read from the event itself (per-event scoring) or from the request
    /// (`POST /v1/predict`).
    #[serde(default)]
    pub request_fields: Vec<String>,
    /// Ordered model inputs: each a feature name or a request field.
    pub inputs: Vec<String>,
    /// Value fed to the model when an input is null (empty window, missing field). Default 0.
    #[serde(default)]
    pub defaults: BTreeMap<String, f64>,
    /// How often the model file is checked for a new version. Default `1s`.
    #[serde(default, deserialize_with = "opt_duration")]
    pub reload_interval: Option<String>,
    /// `onnx`: `auto` (default) compiles a tree-ensemble graph to native code when it scores
    /// exactly as ONNX Runtime does; `onnxruntime` always scores through ONNX Runtime.
    #[serde(default)]
    pub engine: Option<String>,
}

/// `[serving]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServingSection {
    /// Listen address. Default `127.0.0.1:8080`.
    #[serde(default)]
    pub addr: Option<String>,
    /// Largest request body in bytes; larger ones get 413. Default 8388608 (8 MiB).
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// Most entities in one `POST /v1/features`; more get 400. Default 1000.
    #[serde(default)]
    pub max_batch_entities: Option<usize>,
}

/// `[slo]`: the service-level objective reported against.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloSection {
    /// Target P99 of event time → prediction. Default `100ms`.
    #[serde(default, deserialize_with = "opt_duration")]
    pub p99_event_to_prediction: Option<String>,
    /// Target P99 freshness (now − newest applied event time). Default `1s`.
    #[serde(default, deserialize_with = "opt_duration")]
    pub freshness_p99: Option<String>,
}

/// `[outputs]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputsSection {
    /// Also write each event's feature vector. Default false.
    #[serde(default)]
    pub features: Option<bool>,
    /// Encoding of the predictions topic on Kafka: `json` (default) or `avro` (in the
    /// Confluent wire format, with a schema nowcast registers; needs `[registry]`).
    #[serde(default)]
    pub format: Option<String>,
}
