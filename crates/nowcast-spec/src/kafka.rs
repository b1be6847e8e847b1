//! `[kafka]`: running the pipeline on Apache Kafka instead of the embedded log.

use std::collections::{BTreeMap, HashSet};

use nowcast_core::Millis;
use serde::Deserialize;

use crate::validate::Validator;

/// `[kafka]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSection {
    /// `host:port[,host:port...]`. Optional: `--bootstrap` or `NOWCAST_KAFKA` may give it.
    #[serde(default)]
    pub bootstrap: Option<String>,
    /// Consumer group. Default `nowcast-<pipeline name>`.
    #[serde(default)]
    pub group: Option<String>,
    /// `exactly-once` (default) or `at-least-once`.
    #[serde(default)]
    pub delivery: Option<String>,
    /// How often state, outputs and offsets are committed. Default `100ms`.
    #[serde(default, deserialize_with = "crate::raw::opt_duration")]
    pub commit_interval: Option<String>,
    /// Processing threads per instance; each is a consumer-group member with its own producer.
    /// Default 1.
    #[serde(default)]
    pub threads: Option<usize>,
    /// Stable identity of this instance (part of its transactional ids, so a restarted
    /// instance fences its previous incarnation). Default `0`; `--instance` overrides.
    #[serde(default)]
    pub instance: Option<String>,
    /// Partitions of every topic `nowcast topics apply` creates. Default `pipeline.partitions`.
    #[serde(default)]
    pub partitions: Option<u32>,
    /// Replication factor of created topics. Default 1.
    #[serde(default)]
    pub replication_factor: Option<u16>,
    /// `min.insync.replicas` of created topics. Default: min(2, replication_factor).
    #[serde(default)]
    pub min_insync_replicas: Option<u16>,
    /// Retention of raw event topics. Default `48h`.
    #[serde(default, deserialize_with = "crate::raw::opt_duration")]
    pub retention: Option<String>,
    /// How often each owned partition's state is also snapshotted to the local store
    /// (`<data_dir>/kafka/<group>/<instance>`), so a restart reads only the changelog after
    /// it. `0s` disables the store. Default `60s`.
    #[serde(default, deserialize_with = "crate::raw::opt_duration")]
    pub snapshot_interval: Option<String>,
    /// Output topics.
    #[serde(default)]
    pub topics: Option<TopicsSection>,
    /// librdkafka properties for every client.
    #[serde(default)]
    pub properties: BTreeMap<String, toml::Value>,
    /// librdkafka properties for the consumers only.
    #[serde(default)]
    pub consumer: BTreeMap<String, toml::Value>,
    /// librdkafka properties for the producers only.
    #[serde(default)]
    pub producer: BTreeMap<String, toml::Value>,
}

/// `[kafka.topics]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsSection {
    /// Compacted feature store / state changelog. Default `<name>.features`.
    #[serde(default)]
    pub features: Option<String>,
    /// Predictions. Default `<name>.predictions`.
    #[serde(default)]
    pub predictions: Option<String>,
    /// Dead letters. Default `<name>.dead-letters`.
    #[serde(default)]
    pub dead_letters: Option<String>,
    /// Late events. Default `<name>.late`.
    #[serde(default)]
    pub late: Option<String>,
}

/// Delivery guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Outputs may repeat after a failure; state may count replayed events twice.
    AtLeastOnce,
    /// State changelog, outputs and consumer offsets commit in one transaction.
    ExactlyOnce,
}

/// The validated `[kafka]` section.
#[derive(Debug, Clone)]
pub struct KafkaSpec {
    /// Bootstrap servers, if the spec gives them.
    pub bootstrap: Option<String>,
    /// Consumer group.
    pub group: String,
    /// Delivery guarantee.
    pub delivery: Delivery,
    /// Commit interval.
    pub commit_interval: Millis,
    /// Processing threads.
    pub threads: usize,
    /// Instance id.
    pub instance: String,
    /// Partitions of created topics.
    pub partitions: u32,
    /// Replication factor of created topics.
    pub replication_factor: u16,
    /// `min.insync.replicas` of created topics.
    pub min_insync_replicas: u16,
    /// Retention of raw event topics.
    pub retention: Millis,
    /// Local snapshot interval; 0 disables the local store.
    pub snapshot_interval: Millis,
    /// Feature-store (changelog) topic.
    pub features_topic: String,
    /// Predictions topic.
    pub predictions_topic: String,
    /// Dead-letter topic.
    pub dead_letters_topic: String,
    /// Late-events topic.
    pub late_topic: String,
    /// Properties for every client.
    pub properties: BTreeMap<String, String>,
    /// Consumer properties.
    pub consumer: BTreeMap<String, String>,
    /// Producer properties.
    pub producer: BTreeMap<String, String>,
}

/// Properties nowcast sets itself; the fix says which spec key controls them.
const OWNED: &[(&str, &str)] = &[
    (
        "bootstrap.servers",
        "set `kafka.bootstrap` (or pass --bootstrap)",
    ),
    ("group.id", "set `kafka.group`"),
    (
        "transactional.id",
        "set `kafka.instance`; transactional ids derive from it",
    ),
    (
        "enable.auto.commit",
        "nowcast commits offsets itself; remove it",
    ),
    (
        "isolation.level",
        "nowcast reads `read_committed`; remove it",
    ),
    ("enable.idempotence", "nowcast always enables it; remove it"),
    (
        "acks",
        "nowcast always produces with `acks=all` (exactly-once and no loss need it); remove it",
    ),
    (
        "request.required.acks",
        "nowcast always produces with `acks=all` (exactly-once and no loss need it); remove it",
    ),
    (
        "group.instance.id",
        "set `kafka.instance`; static member ids derive from it",
    ),
    (
        "enable.auto.offset.store",
        "nowcast stores offsets itself once their records are acknowledged; remove it",
    ),
    ("auto.commit.interval.ms", "set `kafka.commit_interval`"),
    (
        "partition.assignment.strategy",
        "nowcast uses `cooperative-sticky`; remove it",
    ),
];

/// Whether `name` is a legal Kafka topic name.
pub fn topic_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Some(format!("`{name}` is not a legal topic name"));
    }
    if name.len() > 249 {
        return Some(format!(
            "topic name of {} characters (at most 249)",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!("`{name}` contains `{c}`"));
    }
    None
}

impl Validator {
    fn props(
        &mut self,
        path: &str,
        raw: &BTreeMap<String, toml::Value>,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (k, v) in raw {
            let p = format!("{path}.\"{k}\"");
            if let Some((_, fix)) = OWNED.iter().find(|(name, _)| name == k) {
                self.push(p, format!("`{k}` is set by nowcast"), *fix);
                continue;
            }
            let text = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Float(f) => f.to_string(),
                _ => {
                    self.push(
                        p,
                        "a librdkafka property must be a string, number or boolean",
                        "write it as text, e.g. \"lz4\"",
                    );
                    continue;
                }
            };
            out.insert(k.clone(), text);
        }
        out
    }

    fn topic(&mut self, path: &str, name: Option<&String>, default: String) -> String {
        let name = name.cloned().unwrap_or(default);
        if let Some(problem) = topic_name_problem(&name) {
            self.push(
                path,
                problem,
                "use 1 to 249 characters from letters, digits, `.`, `_` and `-`",
            );
        }
        name
    }

    /// Validates `[kafka]`; `source_topics` are the sources' topics (for the distinctness check).
    pub(crate) fn kafka(
        &mut self,
        k: &KafkaSection,
        name: &str,
        default_partitions: u32,
        source_topics: &[(usize, String)],
    ) -> KafkaSpec {
        let delivery = match k.delivery.as_deref() {
            None | Some("exactly-once") => Delivery::ExactlyOnce,
            Some("at-least-once") => Delivery::AtLeastOnce,
            Some(other) => {
                self.push(
                    "kafka.delivery",
                    format!("unknown delivery `{other}`"),
                    "use `exactly-once` or `at-least-once`",
                );
                Delivery::ExactlyOnce
            }
        };
        let commit_interval = self.duration(
            "kafka.commit_interval".into(),
            k.commit_interval.as_deref(),
            100,
            true,
        );
        let threads = k.threads.unwrap_or(1);
        if threads == 0 || threads > 256 {
            self.push(
                "kafka.threads",
                format!("{threads} threads"),
                "use 1 to 256",
            );
        }
        let partitions = k.partitions.unwrap_or(default_partitions);
        if partitions == 0 {
            self.push("kafka.partitions", "0 partitions", "use at least 1");
        }
        let replication_factor = k.replication_factor.unwrap_or(1);
        if replication_factor == 0 {
            self.push(
                "kafka.replication_factor",
                "replication factor 0",
                "use at least 1",
            );
        }
        let min_insync_replicas = k
            .min_insync_replicas
            .unwrap_or(replication_factor.clamp(1, 2));
        if min_insync_replicas == 0 || min_insync_replicas > replication_factor.max(1) {
            self.push(
                "kafka.min_insync_replicas",
                format!(
                    "min.insync.replicas {min_insync_replicas} with replication factor {replication_factor}"
                ),
                "use 1 to the replication factor",
            );
        }
        let retention = self.duration(
            "kafka.retention".into(),
            k.retention.as_deref(),
            48 * 3_600_000,
            true,
        );
        let snapshot_interval = self.duration(
            "kafka.snapshot_interval".into(),
            k.snapshot_interval.as_deref(),
            60_000,
            false,
        );
        let instance = k.instance.clone().unwrap_or_else(|| "0".into());
        if instance.is_empty() || topic_name_problem(&instance).is_some() {
            self.push(
                "kafka.instance",
                format!("`{instance}` is not a usable instance id"),
                "use letters, digits, `.`, `_` and `-`",
            );
        }
        let group = k.group.clone().unwrap_or_else(|| format!("nowcast-{name}"));
        if group.is_empty() {
            self.push(
                "kafka.group",
                "empty group id",
                "give the consumer group a name",
            );
        }
        if let Some(b) = &k.bootstrap {
            if b.split(',').any(|h| !h.trim().contains(':')) {
                self.push(
                    "kafka.bootstrap",
                    format!("`{b}` is not a list of host:port"),
                    "write e.g. `127.0.0.1:9092` or `a:9092,b:9092`",
                );
            }
        }
        let t = k.topics.clone().unwrap_or_default();
        let features_topic = self.topic(
            "kafka.topics.features",
            t.features.as_ref(),
            format!("{name}.features"),
        );
        let predictions_topic = self.topic(
            "kafka.topics.predictions",
            t.predictions.as_ref(),
            format!("{name}.predictions"),
        );
        let dead_letters_topic = self.topic(
            "kafka.topics.dead_letters",
            t.dead_letters.as_ref(),
            format!("{name}.dead-letters"),
        );
        let late_topic = self.topic("kafka.topics.late", t.late.as_ref(), format!("{name}.late"));
        let mut seen = HashSet::new();
        let named = source_topics
            .iter()
            .map(|(i, t)| (format!("sources[{i}].topic"), t.clone()))
            .chain([
                ("kafka.topics.features".to_string(), features_topic.clone()),
                (
                    "kafka.topics.predictions".to_string(),
                    predictions_topic.clone(),
                ),
                (
                    "kafka.topics.dead_letters".to_string(),
                    dead_letters_topic.clone(),
                ),
                ("kafka.topics.late".to_string(), late_topic.clone()),
            ]);
        for (path, topic) in named {
            if !seen.insert(topic.clone()) {
                self.push(
                    path,
                    format!("topic `{topic}` is used twice"),
                    "give every source and output its own topic",
                );
            }
        }
        let properties = self.props("kafka.properties", &k.properties);
        let consumer = self.props("kafka.consumer", &k.consumer);
        let producer = self.props("kafka.producer", &k.producer);
        KafkaSpec {
            bootstrap: k.bootstrap.clone(),
            group,
            delivery,
            commit_interval,
            threads,
            instance,
            partitions,
            replication_factor,
            min_insync_replicas,
            retention,
            snapshot_interval,
            features_topic,
            predictions_topic,
            dead_letters_topic,
            late_topic,
            properties,
            consumer,
            producer,
        }
    }
}
