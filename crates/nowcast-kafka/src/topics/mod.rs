//! `nowcast topics plan|apply`: the pipeline's topics as the spec declares them, compared with
//! what the broker has, then created or reconfigured.
//!
//! The declared topics ([`TopicPlan`]) are every source topic (delete policy, the hot
//! `kafka.retention`), the feature store (compacted) and the predictions, dead-letter and late
//! topics (delete policy), all with `kafka.partitions` partitions, `kafka.replication_factor`
//! and `min.insync.replicas`. [`diff`] is pure; [`plan`] describes the broker and diffs;
//! [`apply`] creates missing topics and sets differing configs, then re-describes until the
//! broker agrees.
//!
//! What apply never does: change a partition count or a replication factor. The feature store
//! is co-partitioned with the sources (partition p of the features topic holds the state of the
//! keys in partition p of every source), and adding partitions to a keyed topic moves keys, so
//! a differing count of a source or the features topic is an error with the fix, never an
//! action. A differing replication factor is reported as a note.
//!
//! Alterations use AlterConfigs, which replaces a topic's whole override set (rdkafka 0.39 does
//! not wrap IncrementalAlterConfigs): apply re-reads the overrides and carries them over, so
//! other settings survive, but one changed by another client at the same moment can be lost.
//!
//! Every broker call has a deadline ([`TIMEOUT`] by default): a broker that does not answer is
//! [`KafkaError::Unreachable`], never a hang.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use nowcast_spec::{KafkaSpec, PipelineSpec};
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError as RdError;
use rdkafka::types::RDKafkaErrorCode;

use crate::KafkaError;

/// How long one broker call may take before the broker counts as unreachable.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// What a topic is for: decides its cleanup policy and whether its partition count is keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Raw events of a source (delete policy, hot retention, keyed); also the internal topic
    /// a source not keyed by the entity is re-keyed into.
    Source,
    /// Raw events of a source that is not keyed by the entity (delete policy, hot retention,
    /// any partition count): nowcast re-keys it into a `Source` topic.
    Input,
    /// The compacted feature store / state changelog (keyed, co-partitioned with the sources).
    Features,
    /// Predictions.
    Predictions,
    /// Dead letters.
    DeadLetters,
    /// Late events.
    Late,
}

impl Role {
    /// Whether the partition count is part of the data layout (sources, features).
    pub fn is_keyed(self) -> bool {
        matches!(self, Role::Source | Role::Features)
    }

    fn label(self) -> &'static str {
        match self {
            Role::Source => "source topic",
            Role::Input => "input topic (re-keyed by nowcast)",
            Role::Features => "features topic",
            Role::Predictions => "predictions topic",
            Role::DeadLetters => "dead-letter topic",
            Role::Late => "late topic",
        }
    }
}

/// One topic as the spec declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDecl {
    /// Topic name.
    pub name: String,
    /// What it is for.
    pub role: Role,
    /// Partition count.
    pub partitions: u32,
    /// Replication factor.
    pub replication_factor: u16,
    /// Topic configs nowcast owns (`cleanup.policy`, `min.insync.replicas`, `retention.ms`).
    pub configs: BTreeMap<String, String>,
}

/// Every topic the pipeline uses, as declared by one spec file.
#[derive(Debug, Clone)]
pub struct TopicPlan {
    /// The spec file (named in every error).
    pub spec_file: String,
    /// Sources first, then features, predictions, dead letters, late.
    pub topics: Vec<TopicDecl>,
}

impl TopicPlan {
    /// The declared topics of `spec`; [`KafkaError::NotKafka`] without a `[kafka]` section.
    pub fn new(spec: &PipelineSpec, spec_file: &str) -> Result<TopicPlan, KafkaError> {
        let k = spec.kafka.as_ref().ok_or_else(|| KafkaError::NotKafka {
            spec: spec_file.to_string(),
        })?;
        let decl = |name: &str, role: Role| {
            let mut configs = BTreeMap::new();
            let policy = if role == Role::Features {
                "compact"
            } else {
                "delete"
            };
            configs.insert("cleanup.policy".to_string(), policy.to_string());
            configs.insert(
                "min.insync.replicas".to_string(),
                k.min_insync_replicas.to_string(),
            );
            if matches!(role, Role::Source | Role::Input) {
                configs.insert("retention.ms".to_string(), k.retention.to_string());
            }
            TopicDecl {
                name: name.to_string(),
                role,
                partitions: k.partitions,
                replication_factor: k.replication_factor,
                configs,
            }
        };
        let mut topics: Vec<TopicDecl> = Vec::new();
        for s in &spec.sources {
            match &s.repartition_topic {
                Some(internal) => {
                    topics.push(decl(internal, Role::Source));
                    topics.push(decl(&s.topic, Role::Input));
                }
                None => topics.push(decl(&s.topic, Role::Source)),
            }
        }
        topics.push(decl(&k.features_topic, Role::Features));
        topics.push(decl(&k.predictions_topic, Role::Predictions));
        topics.push(decl(&k.dead_letters_topic, Role::DeadLetters));
        topics.push(decl(&k.late_topic, Role::Late));
        Ok(TopicPlan {
            spec_file: spec_file.to_string(),
            topics,
        })
    }
}

/// One topic as the broker has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicState {
    /// Partition count.
    pub partitions: u32,
    /// Replication factor (replicas of partition 0).
    pub replication_factor: u16,
    /// Every config value the broker reports (defaults included).
    pub configs: BTreeMap<String, String>,
    /// The per-topic overrides only (what a full AlterConfigs must carry over).
    pub overrides: BTreeMap<String, String>,
}

/// One line of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The topic is missing: create it.
    Create(TopicDecl),
    /// A config value differs: set it.
    Alter {
        /// Topic name.
        topic: String,
        /// Config key.
        key: String,
        /// The broker's value (`None` if it reports none).
        from: Option<String>,
        /// The declared value.
        to: String,
    },
    /// Nothing to do.
    UpToDate(String),
    /// A difference `apply` leaves alone (replication factor, an output's partition count).
    Note {
        /// Topic name.
        topic: String,
        /// What differs and why apply leaves it.
        message: String,
    },
    /// The topics cannot be brought in line by `apply`: nothing is changed.
    Error {
        /// What is wrong.
        message: String,
        /// How to fix it.
        fix: String,
    },
}

impl Change {
    /// Whether this line blocks `apply`.
    pub fn is_error(&self) -> bool {
        matches!(self, Change::Error { .. })
    }

    /// Whether `apply` would act on this line.
    pub fn is_action(&self) -> bool {
        matches!(self, Change::Create(_) | Change::Alter { .. })
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Create(t) => {
                write!(
                    f,
                    "+ create topic {} (partitions {}, rf {}",
                    t.name, t.partitions, t.replication_factor
                )?;
                for (k, v) in &t.configs {
                    write!(f, ", {k}={v}")?;
                }
                write!(f, ")")
            }
            Change::Alter {
                topic,
                key,
                from,
                to,
            } => write!(
                f,
                "~ alter {topic} {key} {} -> {to}",
                from.as_deref().unwrap_or("(unset)")
            ),
            Change::UpToDate(t) => write!(f, "= {t} up to date"),
            Change::Note { topic, message } => write!(f, "! {topic}: {message}"),
            Change::Error { message, fix } => write!(f, "x error: {message} (fix: {fix})"),
        }
    }
}

/// Whether any line of a plan blocks `apply`.
pub fn has_errors(changes: &[Change]) -> bool {
    changes.iter().any(Change::is_error)
}

fn policy_set(v: &str) -> Vec<&str> {
    let mut s: Vec<&str> = v
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    s.sort_unstable();
    s
}

fn same_value(key: &str, a: &str, b: &str) -> bool {
    if key == "cleanup.policy" {
        policy_set(a) == policy_set(b)
    } else {
        a.trim() == b.trim()
    }
}

fn names(topics: &[(&str, u32)]) -> String {
    topics
        .iter()
        .map(|(t, n)| format!("`{t}` ({n})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Compares the declared topics with the broker's (`actual` holds the existing ones): pure.
pub fn diff(plan: &TopicPlan, actual: &BTreeMap<String, TopicState>) -> Vec<Change> {
    let file = &plan.spec_file;
    let mut out = Vec::new();
    let declared = plan.topics.first().map_or(0, |t| t.partitions);
    let sources: Vec<&TopicDecl> = plan
        .topics
        .iter()
        .filter(|t| t.role == Role::Source)
        .collect();
    let existing_sources: Vec<(&str, u32)> = sources
        .iter()
        .filter_map(|t| actual.get(&t.name).map(|a| (t.name.as_str(), a.partitions)))
        .collect();
    // The partition count the keyed topics must share: the existing sources' if they agree.
    let mut keyed = declared;
    let mut counts: Vec<u32> = existing_sources.iter().map(|(_, n)| *n).collect();
    counts.sort_unstable();
    counts.dedup();
    if counts.len() > 1 {
        out.push(Change::Error {
            message: format!(
                "source topics differ in partition count: {}; events of one entity from \
                 different sources must land in the same partition number",
                names(&existing_sources)
            ),
            fix: format!(
                "recreate the odd ones with a common count (adding partitions to a keyed topic \
                 moves keys, so nowcast never does it), then set kafka.partitions to that count \
                 in {file}"
            ),
        });
    } else if let Some(&n) = counts.first() {
        keyed = n;
        if n != declared {
            let many = existing_sources.len() > 1;
            let list = existing_sources
                .iter()
                .map(|(t, _)| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ");
            out.push(Change::Error {
                message: format!(
                    "source topic{} {list} {} {n} partitions but kafka.partitions is {declared}",
                    if many { "s" } else { "" },
                    if many { "have" } else { "has" },
                ),
                fix: format!(
                    "set kafka.partitions = {n} in {file}; adding partitions to a keyed topic \
                     moves keys between partitions, and with them the entities' state, so \
                     nowcast never does it"
                ),
            });
        }
    }
    for t in &plan.topics {
        let Some(a) = actual.get(&t.name) else {
            out.push(Change::Create(t.clone()));
            continue;
        };
        let before = out.len();
        // A source whose count is wrong is named by the errors above: not "up to date".
        let flagged = t.role == Role::Source && a.partitions != declared;
        match t.role {
            // An input that nowcast re-keys may have any partition count.
            Role::Source | Role::Input => {}
            Role::Features if a.partitions != keyed => {
                let (with, how) = match existing_sources.as_slice() {
                    [] => (
                        names(
                            &sources
                                .iter()
                                .map(|s| (s.name.as_str(), declared))
                                .collect::<Vec<_>>(),
                        ),
                        "will be created with",
                    ),
                    some => (
                        some.iter()
                            .map(|(t, _)| format!("`{t}`"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        "have",
                    ),
                };
                let resize = if a.partitions == declared {
                    format!("recreate the sources with {declared} partitions")
                } else {
                    format!(
                        "set kafka.partitions = {} in {file} and recreate the sources",
                        a.partitions
                    )
                };
                out.push(Change::Error {
                    message: format!(
                        "features topic `{}` has {} partitions but the source topics {with} {how} \
                         {keyed}: the feature store must be co-partitioned with the sources \
                         (partition p of `{}` holds the state of the keys in partition p of every \
                         source), and adding partitions to a keyed topic moves keys, so nowcast \
                         will not change it",
                        t.name, a.partitions, t.name
                    ),
                    fix: format!(
                        "delete topic `{}` so `nowcast topics apply` recreates it with {keyed} \
                         partitions, then rebuild the state: reset the group's offsets on the \
                         sources to the earliest (only events still within their retention come \
                         back) and delete the instances' local stores; or, if the sources should \
                         have {} partitions, {resize}",
                        t.name, a.partitions
                    ),
                });
            }
            _ if !t.role.is_keyed() && a.partitions != t.partitions => out.push(Change::Note {
                topic: t.name.clone(),
                message: format!(
                    "{} has {} partitions, declared {}; apply leaves it (outputs need not be \
                     co-partitioned; adding partitions moves keys)",
                    t.role.label(),
                    a.partitions,
                    t.partitions
                ),
            }),
            _ => {}
        }
        if a.replication_factor != t.replication_factor {
            out.push(Change::Note {
                topic: t.name.clone(),
                message: format!(
                    "replication factor {}, declared {}: apply cannot change it (reassign the \
                     partitions with kafka-reassign-partitions.sh, or set \
                     kafka.replication_factor = {} in {file})",
                    a.replication_factor, t.replication_factor, a.replication_factor
                ),
            });
        }
        for (key, want) in &t.configs {
            let have = a.configs.get(key);
            if !have.is_some_and(|h| same_value(key, h, want)) {
                out.push(Change::Alter {
                    topic: t.name.clone(),
                    key: key.clone(),
                    from: have.cloned(),
                    to: want.clone(),
                });
            }
        }
        if out.len() == before && !flagged {
            out.push(Change::UpToDate(t.name.clone()));
        }
    }
    out
}

mod admin;

pub use admin::{apply, plan, Admin};

#[cfg(test)]
mod tests {
    use super::admin::block_on;
    use super::*;

    fn decl(name: &str, role: Role, partitions: u32) -> TopicDecl {
        let mut configs = BTreeMap::new();
        let policy = if role == Role::Features {
            "compact"
        } else {
            "delete"
        };
        configs.insert("cleanup.policy".into(), policy.into());
        configs.insert("min.insync.replicas".into(), "1".into());
        if role == Role::Source {
            configs.insert("retention.ms".into(), "172800000".into());
        }
        TopicDecl {
            name: name.into(),
            role,
            partitions,
            replication_factor: 1,
            configs,
        }
    }

    fn topics() -> TopicPlan {
        TopicPlan {
            spec_file: "p.toml".into(),
            topics: vec![
                decl("a", Role::Source, 4),
                decl("b", Role::Source, 4),
                decl("f", Role::Features, 4),
                decl("p", Role::Predictions, 4),
            ],
        }
    }

    fn state(d: &TopicDecl, partitions: u32) -> TopicState {
        TopicState {
            partitions,
            replication_factor: d.replication_factor,
            configs: d.configs.clone(),
            overrides: d.configs.clone(),
        }
    }

    fn matching(plan: &TopicPlan) -> BTreeMap<String, TopicState> {
        plan.topics
            .iter()
            .map(|d| (d.name.clone(), state(d, d.partitions)))
            .collect()
    }

    #[test]
    fn missing_topics_are_created_and_matching_ones_are_up_to_date() {
        let t = topics();
        let mut actual = matching(&t);
        actual.remove("f");
        let c = diff(&t, &actual);
        let lines: Vec<String> = c.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            lines,
            [
                "= a up to date",
                "= b up to date",
                "+ create topic f (partitions 4, rf 1, cleanup.policy=compact, min.insync.replicas=1)",
                "= p up to date",
            ]
        );
    }

    #[test]
    fn differing_configs_are_alterations_and_policy_order_does_not_matter() {
        let t = topics();
        let mut actual = matching(&t);
        let a = actual.get_mut("a").unwrap();
        a.configs.insert("retention.ms".into(), "3600000".into());
        a.configs.insert("cleanup.policy".into(), "delete".into());
        actual
            .get_mut("f")
            .unwrap()
            .configs
            .insert("cleanup.policy".into(), "delete,compact".into());
        actual
            .get_mut("p")
            .unwrap()
            .configs
            .insert("cleanup.policy".into(), " delete".into());
        let c = diff(&t, &actual);
        assert_eq!(
            c.iter()
                .filter(|c| c.is_action())
                .map(|c| c.to_string())
                .collect::<Vec<_>>(),
            [
                "~ alter a retention.ms 3600000 -> 172800000",
                "~ alter f cleanup.policy delete,compact -> compact"
            ]
        );
    }

    #[test]
    fn features_topic_must_match_the_sources_partition_count() {
        let t = topics();
        let mut actual = matching(&t);
        actual.insert("f".into(), state(&t.topics[2], 8));
        let c = diff(&t, &actual);
        assert!(has_errors(&c));
        let e = c.iter().find(|c| c.is_error()).unwrap().to_string();
        assert!(e.contains("features topic `f` has 8 partitions"), "{e}");
        // Regression: the counts were named twice ("`a` (4), `b` (4) have 4").
        assert!(e.contains("the source topics `a`, `b` have 4:"), "{e}");
        assert!(e.contains("set kafka.partitions = 8 in p.toml"), "{e}");

        // A feature store with the declared count and sources with another: the fix does not
        // suggest setting kafka.partitions to what it already is.
        let mut actual = matching(&t);
        actual.insert("a".into(), state(&t.topics[0], 6));
        actual.insert("b".into(), state(&t.topics[1], 6));
        let c = diff(&t, &actual);
        let e = c
            .iter()
            .filter(|c| c.is_error())
            .map(|c| c.to_string())
            .find(|e| e.contains("features topic"))
            .unwrap();
        assert!(e.contains("recreate the sources with 4 partitions"), "{e}");
        assert!(!e.contains("set kafka.partitions = 4"), "{e}");
    }

    #[test]
    fn sources_that_disagree_are_an_error_naming_them() {
        let t = topics();
        let mut actual = matching(&t);
        actual.insert("b".into(), state(&t.topics[1], 6));
        let e: Vec<String> = diff(&t, &actual)
            .iter()
            .filter(|c| c.is_error())
            .map(|c| c.to_string())
            .collect();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("source topics differ in partition count: `a` (4), `b` (6)"),
            "{e:?}"
        );
    }

    #[test]
    fn sources_with_another_count_than_declared_name_the_setting() {
        let t = topics();
        let mut actual = matching(&t);
        actual.insert("a".into(), state(&t.topics[0], 8));
        actual.remove("b");
        actual.insert("f".into(), state(&t.topics[2], 8));
        let e: Vec<String> = diff(&t, &actual)
            .iter()
            .filter(|c| c.is_error())
            .map(|c| c.to_string())
            .collect();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("source topic `a` has 8 partitions but kafka.partitions is 4"),
            "{e:?}"
        );
        assert!(e[0].contains("set kafka.partitions = 8 in p.toml"), "{e:?}");
    }

    #[test]
    fn replication_factor_is_a_note_not_an_action() {
        let t = topics();
        let mut actual = matching(&t);
        actual.get_mut("p").unwrap().replication_factor = 3;
        let c = diff(&t, &actual);
        assert!(!has_errors(&c));
        let p: Vec<String> = c
            .iter()
            .filter(|c| c.to_string().contains(" p"))
            .map(|c| c.to_string())
            .collect();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("! p: replication factor 3, declared 1: apply cannot change it"));
    }

    #[test]
    fn block_on_gives_up_at_the_deadline() {
        let start = Instant::now();
        let never = std::future::pending::<()>();
        assert!(block_on(never, start + Duration::from_millis(50)).is_none());
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert_eq!(block_on(async { 7 }, start), Some(7));
    }
}
