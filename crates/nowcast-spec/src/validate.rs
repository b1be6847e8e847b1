//! Pure validation: raw TOML → [`PipelineSpec`], collecting every problem with its path and fix.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use nowcast_core::{parse_duration, Millis};
use nowcast_window::{Aggregation, EngineConfig, FeatureDef, Hop, SourceDef, Window};
use serde::Deserialize;

use crate::hints::suggest;
use crate::names::{unknown_input_fix, unused_request_field_fix};
use crate::raw::*;
use crate::spec::*;
use crate::{Problem, SpecError};

const TOP_KEYS: &[&str] = &[
    "pipeline", "sources", "features", "model", "serving", "slo", "outputs", "kafka", "registry",
];
const AGGREGATIONS: &[&str] = &[
    "count",
    "sum",
    "mean",
    "min",
    "max",
    "stddev",
    "distinct_count",
    "last",
    "last_n",
    "quantile",
    "time_since_last",
    "decayed_sum",
];
const FIELD_TYPES: &[&str] = &["number", "string", "bool", "any"];

/// Reads and validates a spec file. Relative paths in it are resolved against its directory.
pub fn read_spec(path: &Path) -> Result<PipelineSpec, SpecError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| SpecError {
        file: file.clone(),
        problems: vec![Problem {
            path: "(file)".into(),
            message: format!("cannot read the spec: {e}"),
            fix: "check the --config path".into(),
        }],
    })?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse_spec(&text, &file, &dir)
}

/// Validates spec text. `file` names it in errors; `dir` resolves relative paths.
pub fn parse_spec(text: &str, file: &str, dir: &Path) -> Result<PipelineSpec, SpecError> {
    let mut v = Validator {
        problems: Vec::new(),
    };
    let spec = v.spec(text, dir);
    match spec {
        Some(spec) if v.problems.is_empty() => Ok(spec),
        _ => Err(SpecError {
            file: file.to_string(),
            problems: v.problems,
        }),
    }
}

pub(crate) struct Validator {
    problems: Vec<Problem>,
}

/// serde's "invalid type: integer `5`, expected a string" → "expected a string, got integer 5".
fn type_message(msg: &str) -> String {
    match msg
        .strip_prefix("invalid type: ")
        .and_then(|m| m.split_once(", expected "))
    {
        Some((got, expected)) => format!("expected {expected}, got {}", got.replace('`', "")),
        None => msg.to_string(),
    }
}

/// The fix for one of serde's messages.
fn fix_for(msg: &str) -> String {
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        // "unknown field `x`, expected one of `a`, `b`" → suggest the closest key.
        let (word, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let keys: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        match suggest(word, keys.iter().copied()) {
            s if s.starts_with("did you mean") => s,
            _ => "remove or rename the key; the message lists the accepted keys".to_string(),
        }
    } else if msg.starts_with("missing field") {
        "add the field".to_string()
    } else if msg.contains("expected a duration string") {
        "write the duration as text with a unit, e.g. `\"30s\"`".to_string()
    } else {
        "correct the value's type".to_string()
    }
}

impl Validator {
    pub(crate) fn push(
        &mut self,
        path: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
            fix: fix.into(),
        });
    }

    /// Deserialises one section. On failure each offending key is reported at its own path
    /// (`sources[0].allowed_lateness: expected …, got integer 5`), and a missing required key
    /// too, instead of serde's first error only.
    fn section<T: for<'de> Deserialize<'de>>(
        &mut self,
        path: &str,
        value: toml::Value,
    ) -> Option<T> {
        let first = match T::deserialize(value.clone()) {
            Ok(v) => return Some(v),
            Err(e) => e.message().to_string(),
        };
        let toml::Value::Table(table) = value else {
            self.push(path, type_message(&first), fix_for(&first));
            return None;
        };
        // Each key alone: an error other than "missing field" is that key's own.
        let mut rest = table.clone();
        for (key, v) in &table {
            let alone = toml::Table::from_iter([(key.clone(), v.clone())]);
            let Err(e) = T::deserialize(toml::Value::Table(alone)) else {
                continue;
            };
            let msg = e.message().to_string();
            if msg.starts_with("missing field") {
                continue;
            }
            rest.remove(key);
            if msg.starts_with(&format!("unknown field `{key}`")) {
                self.push(path, msg.clone(), fix_for(&msg));
            } else {
                self.push(format!("{path}.{key}"), type_message(&msg), fix_for(&msg));
            }
        }
        let reported = rest.len() < table.len();
        match T::deserialize(toml::Value::Table(rest)) {
            Err(e) if e.message().starts_with("missing field `") => {
                let msg = e.message();
                let field = msg["missing field `".len()..]
                    .split('`')
                    .next()
                    .unwrap_or("");
                if table.contains_key(field) {
                    return None; // present with a problem reported above
                }
                self.push(
                    format!("{path}.{field}"),
                    format!("missing field `{field}`"),
                    format!("add `{field}`"),
                );
            }
            _ if reported => {}
            _ => self.push(path, type_message(&first), fix_for(&first)),
        }
        None
    }

    pub(crate) fn duration(
        &mut self,
        path: String,
        text: Option<&str>,
        default: Millis,
        positive: bool,
    ) -> Millis {
        let Some(text) = text else { return default };
        match parse_duration(text) {
            Err(_)
                if text
                    .trim()
                    .strip_prefix('-')
                    .is_some_and(|t| parse_duration(t).is_ok()) =>
            {
                self.push(
                    path,
                    format!("`{text}`: durations must not be negative"),
                    format!("write `{}`", text.trim().trim_start_matches('-')),
                );
                default
            }
            Ok(ms) if positive && ms <= 0 => {
                self.push(
                    path,
                    format!("`{text}` must be longer than zero"),
                    "give a positive duration such as `5m`",
                );
                default
            }
            Ok(ms) => ms,
            Err(e) => {
                self.push(path, e.to_string(), "write e.g. `30s`, `5m`, `1h`, `1d`");
                default
            }
        }
    }

    /// A source's `time_unit` (default milliseconds).
    fn time_unit(&mut self, source: &str, name: Option<&str>) -> TimeUnit {
        let Some(name) = name else {
            return TimeUnit::default();
        };
        TimeUnit::parse(name).unwrap_or_else(|| {
            let names: Vec<_> = TimeUnit::ALL
                .iter()
                .map(|(_, n)| format!("`{n}`"))
                .collect();
            self.push(
                format!("{source}.time_unit"),
                format!("unknown time unit `{name}`"),
                format!(
                    "use one of {} (epoch seconds, milliseconds, microseconds, nanoseconds)",
                    names.join(", ")
                ),
            );
            TimeUnit::default()
        })
    }

    fn spec(&mut self, text: &str, dir: &Path) -> Option<PipelineSpec> {
        let table: toml::Table = match text.parse() {
            Ok(t) => t,
            Err(e) => {
                let at = e
                    .span()
                    .map(|s| line_col(text, s.start))
                    .unwrap_or_default();
                self.push(
                    format!("(toml{at})"),
                    e.message().to_string(),
                    "fix the TOML syntax",
                );
                return None;
            }
        };
        for key in table.keys() {
            if !TOP_KEYS.contains(&key.as_str()) {
                self.push(
                    key.clone(),
                    format!("unknown section `{key}`"),
                    suggest(key, TOP_KEYS.iter().copied()),
                );
            }
        }
        let get = |k: &str| table.get(k).cloned();
        let pipeline: Option<PipelineSection> = match get("pipeline") {
            Some(v) => self.section("pipeline", v),
            None => {
                self.push(
                    "pipeline",
                    "missing section `[pipeline]`",
                    "add `[pipeline]` with `name = \"...\"`",
                );
                None
            }
        };
        let sources_raw = self.array::<SourceSection>(&table, "sources");
        let features_raw = self.array::<FeatureSection>(&table, "features");
        let model_raw: Option<ModelSection> = match get("model") {
            Some(v) => self.section("model", v),
            None => {
                self.push(
                    "model",
                    "missing section `[model]`",
                    "add a `[model]` section (type = \"onnx\", \"linear\" or \"logistic\")",
                );
                None
            }
        };
        let serving: Option<ServingSection> =
            get("serving").and_then(|v| self.section("serving", v));
        let slo: Option<SloSection> = get("slo").and_then(|v| self.section("slo", v));
        let outputs: Option<OutputsSection> =
            get("outputs").and_then(|v| self.section("outputs", v));
        let kafka_raw: Option<crate::kafka::KafkaSection> =
            get("kafka").and_then(|v| self.section("kafka", v));

        let registry_raw: Option<crate::RegistrySection> =
            get("registry").and_then(|v| self.section("registry", v));
        let registry = registry_raw.map(|r| self.registry(&r, dir));

        let pipeline = pipeline?;
        let sources = self.sources(&sources_raw, registry.is_some(), dir);
        // Names of sources and features that failed to parse are still known: their own
        // problems are reported, references to them are not (no cascade of errors).
        let declared_sources = declared_names(&table, "sources");
        let declared = declared_names(&table, "features");
        let (feature_defs, feature_inputs) =
            self.features(&features_raw, &sources_raw, &sources, &declared_sources);
        let model =
            model_raw.and_then(|m| self.model(&m, &declared, &feature_defs, &sources_raw, dir));

        let partitions = pipeline.partitions.unwrap_or(4);
        if partitions == 0 || partitions > 4096 {
            self.push(
                "pipeline.partitions",
                format!("{partitions} partitions"),
                "use 1 to 4096",
            );
        }
        let workers = pipeline.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(partitions.max(1) as usize)
        });
        if workers == 0 {
            self.push("pipeline.workers", "0 workers", "use at least 1");
        }
        let checkpoint_interval = self.duration(
            "pipeline.checkpoint_interval".into(),
            pipeline.checkpoint_interval.as_deref(),
            5_000,
            true,
        );
        let max_record_bytes = pipeline.max_record_bytes.unwrap_or(65_536);
        if max_record_bytes < 64 {
            self.push(
                "pipeline.max_record_bytes",
                format!("{max_record_bytes} bytes is too small"),
                "use at least 64",
            );
        }
        let limit = |v: &mut Validator, key: &str, value: Option<usize>, default: usize| match value
        {
            Some(0) => {
                v.push(
                    format!("serving.{key}"),
                    "must be at least 1",
                    format!("remove it for the default ({default}) or give a positive number"),
                );
                default
            }
            Some(n) => n,
            None => default,
        };
        let serving_max_body_bytes = limit(
            self,
            "max_body_bytes",
            serving.as_ref().and_then(|s| s.max_body_bytes),
            8 * 1024 * 1024,
        );
        let serving_max_batch_entities = limit(
            self,
            "max_batch_entities",
            serving.as_ref().and_then(|s| s.max_batch_entities),
            1000,
        );
        let addr_text = serving
            .and_then(|s| s.addr)
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let serving_addr = match addr_text.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                self.push(
                    "serving.addr",
                    format!("`{addr_text}` is not an address"),
                    "write `host:port`, e.g. `127.0.0.1:8080`",
                );
                SocketAddr::from(([127, 0, 0, 1], 8080))
            }
        };
        let slo = slo.unwrap_or(SloSection {
            p99_event_to_prediction: None,
            freshness_p99: None,
        });
        let slo = Slo {
            p99_event_to_prediction: self.duration(
                "slo.p99_event_to_prediction".into(),
                slo.p99_event_to_prediction.as_deref(),
                100,
                true,
            ),
            freshness_p99: self.duration(
                "slo.freshness_p99".into(),
                slo.freshness_p99.as_deref(),
                1_000,
                true,
            ),
        };
        let data_dir = dir.join(
            pipeline
                .data_dir
                .clone()
                .unwrap_or_else(|| format!("data/{}", pipeline.name)),
        );
        if pipeline.name.is_empty()
            || !pipeline
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.push(
                "pipeline.name",
                format!("`{}` is not a usable name", pipeline.name),
                "use letters, digits, `-` and `_`",
            );
        }
        let source_topics: Vec<(usize, String)> = sources_raw
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let s = s.as_ref()?;
                Some((i, s.topic.clone().unwrap_or_else(|| s.name.clone())))
            })
            .collect();
        for (i, t) in &source_topics {
            if let Some(problem) = crate::kafka::topic_name_problem(t) {
                self.push(
                    format!("sources[{i}].topic"),
                    problem,
                    "set `topic` to a name of letters, digits, `.`, `_` and `-`",
                );
            }
        }
        let kafka = kafka_raw.map(|k| self.kafka(&k, &pipeline.name, partitions, &source_topics));
        let mut sources = sources;
        for (i, raw) in sources_raw.iter().enumerate() {
            let Some(raw) = raw else { continue };
            if raw.repartition != Some(true) {
                continue;
            }
            if kafka.is_none() {
                self.push(
                    format!("sources[{i}].repartition"),
                    "repartitioning applies to Kafka sources only",
                    "remove it, or add a `[kafka]` section",
                );
                continue;
            }
            let name = format!("{}.{}.repartition", pipeline.name, raw.name);
            if let Some(s) = sources.iter_mut().find(|s| s.name == raw.name) {
                s.repartition_topic = Some(name);
            }
        }
        let avro_predictions = match outputs.as_ref().and_then(|o| o.format.as_deref()) {
            None | Some("json") => false,
            Some("avro") => {
                if kafka.is_none() || registry.is_none() {
                    self.push(
                        "outputs.format",
                        "Avro predictions go to Kafka with a registered schema",
                        "add `[kafka]` and `[registry]` sections, or use `format = \"json\"`",
                    );
                }
                true
            }
            Some(other) => {
                self.push(
                    "outputs.format",
                    format!("unknown output format `{other}`"),
                    "use `json` or `avro`",
                );
                false
            }
        };
        let engine = EngineConfig {
            sources: sources
                .iter()
                .map(|s| SourceDef {
                    name: s.name.clone(),
                    allowed_lateness: s.allowed_lateness,
                })
                .collect(),
            features: feature_defs,
        };
        if !self.problems.is_empty() {
            return None;
        }
        Some(PipelineSpec {
            name: pipeline.name,
            spec_dir: dir.to_path_buf(),
            partitions,
            data_dir,
            checkpoint_interval,
            workers,
            max_record_bytes,
            sources,
            feature_inputs,
            engine,
            model: model?,
            serving_addr,
            serving_max_body_bytes,
            serving_max_batch_entities,
            slo,
            write_features: outputs.as_ref().and_then(|o| o.features).unwrap_or(false),
            avro_predictions,
            kafka,
            registry,
        })
    }

    fn array<T: for<'de> Deserialize<'de>>(
        &mut self,
        table: &toml::Table,
        key: &str,
    ) -> Vec<Option<T>> {
        match table.get(key) {
            None => {
                self.push(
                    key,
                    format!("no `[[{key}]]` declared"),
                    format!("declare at least one `[[{key}]]`"),
                );
                Vec::new()
            }
            Some(toml::Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| self.section(&format!("{key}[{i}]"), v.clone()))
                .collect(),
            Some(_) => {
                self.push(
                    key,
                    format!("`{key}` must be an array of tables"),
                    format!("write `[[{key}]]` sections"),
                );
                Vec::new()
            }
        }
    }

    fn sources(
        &mut self,
        raw: &[Option<SourceSection>],
        has_registry: bool,
        dir: &Path,
    ) -> Vec<Source> {
        let mut out = Vec::new();
        let mut seen = HashMap::new();
        for (i, s) in raw.iter().enumerate() {
            let Some(s) = s else { continue };
            let p = format!("sources[{i}]");
            if let Some(first) = seen.insert(s.name.clone(), i) {
                self.push(
                    format!("{p}.name"),
                    format!(
                        "source `{}` is declared twice (also sources[{first}])",
                        s.name
                    ),
                    "give each source a unique name",
                );
            }
            let format = self.source_format(&p, s, has_registry, dir);
            if let Some(fields) = &s.fields {
                for (name, ty) in fields {
                    if !FIELD_TYPES.contains(&ty.as_str()) {
                        self.push(
                            format!("{p}.fields.{name}"),
                            format!("unknown type `{ty}`"),
                            suggest(ty, FIELD_TYPES.iter().copied()),
                        );
                    }
                }
                for (what, f) in [
                    ("key_field", Some(&s.key_field)),
                    ("time_field", Some(&s.time_field)),
                    ("id_field", s.id_field.as_ref()),
                ] {
                    if let Some(f) = f {
                        if !fields.contains_key(f) {
                            self.push(
                                format!("{p}.{what}"),
                                format!("field `{f}` is not declared in `fields`"),
                                suggest(f, fields.keys().map(String::as_str)),
                            );
                        }
                    }
                }
            }
            let time_unit = self.time_unit(&p, s.time_unit.as_deref());
            if time_unit != TimeUnit::Millis && !matches!(format, crate::SourceFormat::Json) {
                self.push(
                    format!("{p}.time_unit"),
                    "applies to JSON sources only: Avro and Protobuf event times are read in \
                     milliseconds from their types (timestamp-millis, timestamp-micros, \
                     google.protobuf.Timestamp)",
                    "remove it",
                );
            }
            out.push(Source {
                name: s.name.clone(),
                topic: s.topic.clone().unwrap_or_else(|| s.name.clone()),
                repartition_topic: None,
                key_field: s.key_field.clone(),
                time_field: s.time_field.clone(),
                id_field: s.id_field.clone(),
                format,
                allowed_lateness: self.duration(
                    format!("{p}.allowed_lateness"),
                    s.allowed_lateness.as_deref(),
                    0,
                    false,
                ),
                max_future: self.duration(
                    format!("{p}.max_future"),
                    s.max_future.as_deref(),
                    3_600_000,
                    true,
                ),
                time_unit,
            });
        }
        out
    }

    /// Checks that `field` exists in the source's declared fields with a type usable as `kind`.
    fn check_field(&mut self, path: String, src: &SourceSection, field: &str, kind: InputKind) {
        let Some(fields) = &src.fields else { return };
        match fields.get(field) {
            // An unknown type is reported at the source's `fields`: no follow-up here.
            Some(ty) if !FIELD_TYPES.contains(&ty.as_str()) => {}
            None => self.push(
                path,
                format!("source `{}` has no field `{field}`", src.name),
                suggest(field, fields.keys().map(String::as_str)),
            ),
            Some(ty) if kind == InputKind::Number && ty != "number" && ty != "any" => self.push(
                path,
                format!(
                    "field `{field}` of source `{}` is a {ty}; this aggregation needs a number",
                    src.name
                ),
                "aggregate a numeric field, or use count/distinct_count",
            ),
            Some(_) => {}
        }
    }

    fn features(
        &mut self,
        raw: &[Option<FeatureSection>],
        raw_sources: &[Option<SourceSection>],
        sources: &[Source],
        declared_sources: &[String],
    ) -> (Vec<FeatureDef>, Vec<FeatureInput>) {
        let mut defs = Vec::new();
        let mut inputs = Vec::new();
        let mut seen = HashMap::new();
        for (i, f) in raw.iter().enumerate() {
            let Some(f) = f else { continue };
            let p = format!("features[{i}]");
            if let Some(first) = seen.insert(f.name.clone(), i) {
                self.push(
                    format!("{p}.name"),
                    format!(
                        "feature `{}` is declared twice (also features[{first}])",
                        f.name
                    ),
                    "give each feature a unique name",
                );
            }
            let source = sources.iter().position(|s| s.name == f.source);
            if source.is_none() && !declared_sources.contains(&f.source) {
                self.push(
                    format!("{p}.source"),
                    format!("unknown source `{}`", f.source),
                    suggest(&f.source, named(declared_sources)),
                );
            }
            // `None` for a declared source with problems of its own: the feature's fields are
            // not checked against it.
            let src_raw =
                source.and_then(|_| raw_sources.iter().flatten().find(|s| s.name == f.source));
            let window = self.duration(format!("{p}.window"), Some(&f.window), 60_000, true);
            let exact = f.exact.unwrap_or(false);
            let hop = if exact {
                if f.hop.is_some() {
                    self.push(
                        format!("{p}.hop"),
                        "`hop` has no meaning with `exact = true`",
                        "remove `hop` or `exact`",
                    );
                }
                Hop::Exact
            } else {
                let default = (window / 60).max(1);
                let hop = self.duration(format!("{p}.hop"), f.hop.as_deref(), default, true);
                if hop > window {
                    self.push(
                        format!("{p}.hop"),
                        format!(
                            "hop {} is longer than the window {}",
                            nowcast_core::format_duration(hop),
                            f.window
                        ),
                        "use a hop no longer than the window (default: window/60)",
                    );
                }
                Hop::Tiled(hop)
            };
            let (agg, kind) = self.aggregation(&p, f);
            let needs_field = kind != InputKind::Presence;
            let field = match (&f.field, needs_field) {
                (Some(field), _) => {
                    if let Some(src) = src_raw {
                        self.check_field(format!("{p}.field"), src, field, kind);
                    }
                    Some(field.clone())
                }
                (None, true) => {
                    self.push(
                        format!("{p}.field"),
                        format!("aggregation `{}` needs a field", f.aggregation),
                        "add `field = \"...\"`",
                    );
                    None
                }
                (None, false) => None,
            };
            let filter = f
                .filter
                .as_ref()
                .and_then(|flt| self.filter(&format!("{p}.filter"), flt, src_raw));
            let Some(source) = source else { continue };
            // Features with the same (source, field, kind, filter) share an input column.
            let same = |x: &FeatureInput| {
                x.source == source && x.field == field && x.kind == kind && x.filter == filter
            };
            let column = match inputs.iter().find(|x| same(x)) {
                Some(x) => x.column,
                None => inputs
                    .iter()
                    .filter(|x| x.source == source)
                    .map(|x| x.column + 1)
                    .max()
                    .unwrap_or(0),
            };
            inputs.push(FeatureInput {
                source,
                field,
                kind,
                filter,
                column,
            });
            defs.push(FeatureDef {
                name: f.name.clone(),
                source,
                column,
                agg,
                window: Window {
                    duration: window,
                    hop,
                },
            });
        }
        (defs, inputs)
    }

    fn aggregation(&mut self, p: &str, f: &FeatureSection) -> (Aggregation, InputKind) {
        let unexpected = |v: &mut Self, present: bool, key: &str| {
            if present {
                v.push(
                    format!("{p}.{key}"),
                    format!("`{key}` does not apply to aggregation `{}`", f.aggregation),
                    format!("remove `{key}`"),
                );
            }
        };
        unexpected(self, f.n.is_some() && f.aggregation != "last_n", "n");
        unexpected(
            self,
            f.quantile.is_some() && f.aggregation != "quantile",
            "quantile",
        );
        unexpected(
            self,
            f.relative_accuracy.is_some() && f.aggregation != "quantile",
            "relative_accuracy",
        );
        unexpected(
            self,
            f.half_life.is_some() && f.aggregation != "decayed_sum",
            "half_life",
        );
        use InputKind::*;
        match f.aggregation.as_str() {
            "count" => (Aggregation::Count, Presence),
            "time_since_last" => (Aggregation::TimeSinceLast, Presence),
            "sum" => (Aggregation::Sum, Number),
            "mean" => (Aggregation::Mean, Number),
            "min" => (Aggregation::Min, Number),
            "max" => (Aggregation::Max, Number),
            "stddev" => (Aggregation::StdDev, Number),
            "last" => (Aggregation::Last, Number),
            "distinct_count" => (Aggregation::DistinctCount, Hash),
            "last_n" => {
                let n = f.n.unwrap_or(0);
                match f.n {
                    None => self.push(
                        format!("{p}.n"),
                        "last_n needs `n`, how many values to keep (1 to 64); it is missing",
                        "add e.g. `n = 5`",
                    ),
                    Some(n) if !(1..=64).contains(&n) => self.push(
                        format!("{p}.n"),
                        format!("last_n needs `n` between 1 and 64, got {n}"),
                        "use e.g. `n = 5`",
                    ),
                    Some(_) => {}
                }
                (Aggregation::LastN(n.clamp(1, 64)), Number)
            }
            "quantile" => {
                let q = f.quantile.unwrap_or(-1.0);
                if !(0.0..=1.0).contains(&q) {
                    self.push(
                        format!("{p}.quantile"),
                        "quantile needs `quantile` between 0 and 1",
                        "add e.g. `quantile = 0.95`",
                    );
                }
                let a = f.relative_accuracy.unwrap_or(0.01);
                if !(a > 0.0 && a < 1.0) {
                    self.push(
                        format!("{p}.relative_accuracy"),
                        format!("{a} is not a relative accuracy"),
                        "use a value between 0 and 1, e.g. 0.01",
                    );
                }
                (
                    Aggregation::Quantile {
                        q: q.clamp(0.0, 1.0),
                        relative_accuracy: a.clamp(1e-6, 0.5),
                    },
                    Number,
                )
            }
            "decayed_sum" => {
                let h = self.duration(format!("{p}.half_life"), f.half_life.as_deref(), 0, true);
                if f.half_life.is_none() {
                    self.push(
                        format!("{p}.half_life"),
                        "decayed_sum needs a half-life",
                        "add e.g. `half_life = \"10m\"`",
                    );
                }
                (
                    Aggregation::DecayedSum {
                        half_life: h.max(1),
                    },
                    Number,
                )
            }
            other => {
                self.push(
                    format!("{p}.aggregation"),
                    format!("unknown aggregation `{other}`"),
                    suggest(other, AGGREGATIONS.iter().copied()),
                );
                (Aggregation::Count, Presence)
            }
        }
    }

    fn filter(
        &mut self,
        p: &str,
        f: &FilterSection,
        src: Option<&SourceSection>,
    ) -> Option<Filter> {
        if let Some(src) = src {
            self.check_field(format!("{p}.field"), src, &f.field, InputKind::Hash);
        }
        let scalar = |v: &mut Self, path: String, value: &toml::Value| match value {
            toml::Value::String(s) => Some(Scalar::Str(s.clone())),
            toml::Value::Integer(i) => Some(Scalar::Num(*i as f64)),
            toml::Value::Float(x) => Some(Scalar::Num(*x)),
            toml::Value::Boolean(b) => Some(Scalar::Bool(*b)),
            _ => {
                v.push(
                    path,
                    "a filter value must be a string, number or boolean",
                    "use a scalar value",
                );
                None
            }
        };
        let given = usize::from(f.equals.is_some())
            + usize::from(f.not_equals.is_some())
            + usize::from(f.one_of.is_some());
        if given != 1 {
            self.push(
                p,
                "a filter needs exactly one of `equals`, `not_equals`, `in`",
                "keep one test",
            );
            return None;
        }
        let op = if let Some(v) = &f.equals {
            FilterOp::Equals(scalar(self, format!("{p}.equals"), v)?)
        } else if let Some(v) = &f.not_equals {
            FilterOp::NotEquals(scalar(self, format!("{p}.not_equals"), v)?)
        } else {
            let items = f.one_of.as_ref().expect("counted above");
            let mut out = Vec::new();
            for (i, v) in items.iter().enumerate() {
                out.push(scalar(self, format!("{p}.in[{i}]"), v)?);
            }
            FilterOp::In(out)
        };
        Some(Filter {
            field: f.field.clone(),
            op,
        })
    }

    fn model(
        &mut self,
        m: &ModelSection,
        declared: &[String],
        defs: &[FeatureDef],
        raw_sources: &[Option<SourceSection>],
        dir: &Path,
    ) -> Option<ModelDef> {
        let kind = match m.kind.as_str() {
            "onnx" => {
                if m.weights.is_some() || m.intercept.is_some() {
                    self.push(
                        "model.weights",
                        "`weights`/`intercept` apply to linear and logistic models only",
                        "remove them or change `type`",
                    );
                }
                match &m.path {
                    Some(p) => Some(ModelKindDef::Onnx {
                        path: resolve(dir, p),
                    }),
                    None => {
                        self.push(
                            "model.path",
                            "an onnx model needs `path`",
                            "add `path = \"models/model.onnx\"` (relative to this file)",
                        );
                        None
                    }
                }
            }
            "linear" | "logistic" => {
                if m.path.is_some() {
                    self.push(
                        "model.path",
                        "`path` applies to onnx models only",
                        "remove `path` or set `type = \"onnx\"`",
                    );
                }
                let weights = m.weights.clone().unwrap_or_default();
                if weights.len() != m.inputs.len() {
                    self.push(
                        "model.weights",
                        format!("{} weights for {} inputs", weights.len(), m.inputs.len()),
                        "give exactly one weight per input",
                    );
                }
                Some(ModelKindDef::Linear {
                    weights,
                    intercept: m.intercept.unwrap_or(0.0),
                    logistic: m.kind == "logistic",
                })
            }
            other => {
                self.push(
                    "model.type",
                    format!("unknown model type `{other}`"),
                    suggest(other, ["onnx", "linear", "logistic"]),
                );
                None
            }
        };
        if m.inputs.is_empty() {
            self.push(
                "model.inputs",
                "the model has no inputs",
                "list the features and request fields it takes, in order",
            );
        }
        self.shared_names(m, declared);
        let mut used: BTreeMap<&str, usize> = BTreeMap::new();
        let mut inputs = Vec::new();
        for (i, name) in m.inputs.iter().enumerate() {
            if let Some(first) = used.insert(name, i) {
                self.push(
                    format!("model.inputs[{i}]"),
                    format!("`{name}` is listed twice (also inputs[{first}])"),
                    "list each input once",
                );
            }
            let default = m.defaults.get(name).copied().unwrap_or(0.0);
            let (base, element) = split_element(name);
            if let Some(feature) = defs.iter().position(|d| d.name == base) {
                let is_list = matches!(defs[feature].agg, Aggregation::LastN(_));
                match (is_list, element) {
                    (true, None) => self.push(
                        format!("model.inputs[{i}]"),
                        format!("`{base}` is a last_n list"),
                        format!("name one element, e.g. `{base}[0]` (newest)"),
                    ),
                    (false, Some(_)) => self.push(
                        format!("model.inputs[{i}]"),
                        format!("`{base}` is not a list"),
                        format!("write `{base}`"),
                    ),
                    (true, Some(e)) if matches!(defs[feature].agg, Aggregation::LastN(n) if e >= n) => {
                        self.push(
                            format!("model.inputs[{i}]"),
                            format!("`{name}` is past the end of the list"),
                            "use an index below the feature's `n`",
                        )
                    }
                    _ => {}
                }
                inputs.push(ModelInput::Feature {
                    name: name.clone(),
                    feature,
                    element: element.unwrap_or(0),
                    default,
                });
            } else if m.request_fields.contains(name) {
                inputs.push(ModelInput::Request {
                    name: name.clone(),
                    default,
                });
            } else if declared.iter().any(|d| d == base) {
                // The feature itself has a problem, reported at its own path.
            } else {
                self.push(
                    format!("model.inputs[{i}]"),
                    format!("`{name}` is neither a feature nor a request field"),
                    unknown_input_fix(name, m, declared, raw_sources),
                );
            }
        }
        for (i, field) in m.request_fields.iter().enumerate() {
            if !m.inputs.contains(field) {
                self.push(
                    format!("model.request_fields[{i}]"),
                    format!("`{field}` is not a model input"),
                    unused_request_field_fix(field, m, declared, raw_sources),
                );
                continue; // whether the events carry it is beside the point
            }
            for src in raw_sources.iter().flatten() {
                self.check_field(
                    format!("model.request_fields[{i}]"),
                    src,
                    field,
                    InputKind::Number,
                );
            }
        }
        for name in m.defaults.keys() {
            if !m.inputs.contains(name) {
                self.push(
                    format!("model.defaults.{name}"),
                    format!("`{name}` is not a model input"),
                    "remove it or add it to `model.inputs`",
                );
            }
        }
        let reload_interval = self.duration(
            "model.reload_interval".into(),
            m.reload_interval.as_deref(),
            1_000,
            true,
        );
        let compile_trees = match (m.engine.as_deref(), m.kind.as_str()) {
            (None | Some("auto"), _) => true,
            (Some("onnxruntime"), "onnx") => false,
            (Some("onnxruntime"), _) => {
                self.push(
                    "model.engine",
                    "`engine` applies to onnx models only",
                    "remove `engine` or set `type = \"onnx\"`",
                );
                true
            }
            (Some(other), _) => {
                self.push(
                    "model.engine",
                    format!("unknown engine `{other}`"),
                    "use `auto` (compile tree ensembles, checked against ONNX Runtime) or `onnxruntime`",
                );
                true
            }
        };
        Some(ModelDef {
            name: m.name.clone(),
            kind: kind?,
            inputs,
            request_fields: m.request_fields.clone(),
            reload_interval,
            compile_trees,
        })
    }
}

/// The `name` of every table in the array `key`, parsed or not, by position (empty when a
/// table has none).
fn declared_names(table: &toml::Table, key: &str) -> Vec<String> {
    match table.get(key) {
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|f| {
                let name = f.get("name").and_then(|n| n.as_str());
                name.unwrap_or_default().to_string()
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The non-empty names of `declared_names`.
fn named(names: &[String]) -> impl Iterator<Item = &str> {
    names.iter().map(String::as_str).filter(|n| !n.is_empty())
}

fn resolve(dir: &Path, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        dir.join(path)
    }
}

/// `name[3]` → (`name`, Some(3)).
pub(crate) fn split_element(name: &str) -> (&str, Option<usize>) {
    if let Some(open) = name
        .strip_suffix(']')
        .and_then(|s| s.rfind('[').map(|i| (i, s)))
    {
        let (i, s) = open;
        if let Ok(n) = s[i + 1..].parse() {
            return (&s[..i], Some(n));
        }
    }
    (name, None)
}

fn line_col(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map(|i| offset - i).unwrap_or(offset + 1);
    format!(" line {line}, column {col}")
}
