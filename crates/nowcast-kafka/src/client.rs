//! librdkafka configurations: the spec's properties, then what nowcast owns.

use nowcast_spec::{Delivery, KafkaSpec};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::ClientConfig;

use crate::KafkaError;

/// Where the brokers are: the explicit override, else the spec, else `NOWCAST_KAFKA`.
pub fn bootstrap(
    spec: &KafkaSpec,
    override_: Option<&str>,
    spec_file: &str,
) -> Result<String, KafkaError> {
    override_
        .map(str::to_string)
        .or_else(|| spec.bootstrap.clone())
        .or_else(|| {
            std::env::var("NOWCAST_KAFKA")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .ok_or_else(|| KafkaError::NoBootstrap {
            spec: spec_file.to_string(),
        })
}

/// Checks every librdkafka property of the spec on its own, so a refused one (an unknown name, a
/// bad value, a codec this build lacks) stops the start with its table and key instead of
/// failing each client's creation later. Returns the first refused property; see
/// [`property_problems`] for all of them.
pub fn check_properties(spec: &KafkaSpec, spec_file: &str) -> Result<(), KafkaError> {
    match property_problems(spec, spec_file).into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Every librdkafka property of the spec that librdkafka refuses, in table order
/// ([`KafkaError::Property`] each); `nowcast validate` reports them all.
pub fn property_problems(spec: &KafkaSpec, spec_file: &str) -> Vec<KafkaError> {
    let mut problems = Vec::new();
    let tables = [
        ("kafka.properties", &spec.properties),
        ("kafka.consumer", &spec.consumer),
        ("kafka.producer", &spec.producer),
    ];
    for (table, map) in tables {
        for (key, value) in map {
            let mut c = ClientConfig::new();
            c.set(key, value);
            if let Err(e) = c.create_native_config() {
                let reason = match e {
                    rdkafka::error::KafkaError::ClientConfig(_, desc, _, _) => desc,
                    other => other.to_string(),
                };
                problems.push(KafkaError::Property {
                    spec: spec_file.to_string(),
                    table,
                    key: key.clone(),
                    value: value.clone(),
                    reason,
                });
            }
        }
    }
    problems
}

fn base(spec: &KafkaSpec, bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c.set("client.id", format!("nowcast-{}", spec.instance));
    // librdkafka backs reconnections off up to 10 s by default: a client that tried while
    // the broker restarted could then wait ~10 s for its next attempt, so its first request
    // after the restart (a snapshot's watermark query) timed out. Retry at least every 1 s.
    c.set("reconnect.backoff.max.ms", "1000");
    for (k, v) in &spec.properties {
        c.set(k, v);
    }
    // rdkafka derives the client's log level from the `log` facade, which nowcast does not
    // install (so only errors would pass); clients with a forwarding context (see
    // [`forward_log`]) get everything librdkafka emits: debug lines only for the contexts
    // the `debug` property enables.
    c.set_log_level(RDKafkaLogLevel::Debug);
    c
}

/// An admin client's configuration.
pub fn admin(spec: &KafkaSpec, bootstrap: &str) -> ClientConfig {
    base(spec, bootstrap)
}

/// A consumer-group member: `read_committed`, cooperative rebalancing, offsets stored by
/// nowcast only. Exactly-once commits offsets in its transactions. At-least-once stores the
/// offsets of acknowledged records and lets the client commit them every commit interval:
/// its periodic commit sends every stored offset above the last *successfully* committed
/// one, so a commit refused during a rebalance or a coordinator move is retried by the next
/// one. (Manual asynchronous commits report no result through this client, so a refused one
/// would be lost silently.)
pub fn consumer(spec: &KafkaSpec, bootstrap: &str) -> ClientConfig {
    let mut c = base(spec, bootstrap);
    c.set("fetch.wait.max.ms", "5");
    c.set("auto.offset.reset", "earliest");
    // A member learns that the group is rebalancing from its next heartbeat. At librdkafka's
    // 3 s default, a member that joins just after another (the threads of one process, an
    // instance added to scale out) waits up to 3 s while the first one takes and processes
    // every partition, which then move, state and all: measured as the slow half of the
    // two-thread Kafka benchmark runs. Heartbeats are small; 0.5 s bounds that wait.
    c.set("heartbeat.interval.ms", "500");
    for (k, v) in &spec.consumer {
        c.set(k, v);
    }
    c.set("group.id", &spec.group);
    match spec.delivery {
        Delivery::ExactlyOnce => c.set("enable.auto.commit", "false"),
        Delivery::AtLeastOnce => c
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", spec.commit_interval.to_string()),
    };
    c.set("enable.auto.offset.store", "false");
    c.set("isolation.level", "read_committed");
    c.set("partition.assignment.strategy", "cooperative-sticky");
    c
}

/// A consumer outside any group that reads assigned partitions (state restore, replicas,
/// tests). `read_committed`.
pub fn reader(spec: &KafkaSpec, bootstrap: &str) -> ClientConfig {
    let mut c = base(spec, bootstrap);
    c.set("fetch.wait.max.ms", "5");
    for (k, v) in &spec.consumer {
        c.set(k, v);
    }
    c.set("group.id", format!("{}-reader", spec.group));
    c.set("enable.auto.commit", "false");
    c.set("enable.auto.offset.store", "false");
    c.set("isolation.level", "read_committed");
    c
}

/// A producer: idempotent with `acks=all`; transactional with `transactional_id` under
/// exactly-once.
pub fn producer(spec: &KafkaSpec, bootstrap: &str, transactional_id: Option<&str>) -> ClientConfig {
    let mut c = base(spec, bootstrap);
    c.set("linger.ms", "2");
    c.set("compression.type", "lz4");
    // A transaction left open by a killed instance blocks read_committed readers (and the
    // restore of its partitions elsewhere) until it times out: keep that short. Commits
    // happen every commit interval, far below this.
    c.set("transaction.timeout.ms", "10000");
    for (k, v) in &spec.producer {
        c.set(k, v);
    }
    c.set("enable.idempotence", "true");
    c.set("acks", "all");
    if spec.delivery == Delivery::ExactlyOnce {
        if let Some(id) = transactional_id {
            c.set("transactional.id", id);
        }
    }
    c
}

/// Writes a librdkafka log line to standard error. Without this, rdkafka hands the lines to the
/// `log` facade, which nowcast does not install, and a `debug = "cgrp,…"` property (or a
/// configuration warning) would print nothing. librdkafka logs little unless something is
/// wrong or `debug` is set, so every line is kept.
pub(crate) fn forward_log(client: &str, level: RDKafkaLogLevel, facility: &str, message: &str) {
    let level = match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => "error",
        RDKafkaLogLevel::Warning => "warning",
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => "info",
        RDKafkaLogLevel::Debug => "debug",
    };
    eprintln!("nowcast: librdkafka {client} {level} {facility}: {message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with(extra: &str) -> KafkaSpec {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/kafka");
        let text = std::fs::read_to_string(dir.join("pipeline.toml")).expect("example spec");
        let spec = nowcast_spec::parse_spec(&format!("{text}\n{extra}"), "pipeline.toml", &dir)
            .expect("example spec parses");
        spec.kafka.expect("a [kafka] section")
    }

    #[test]
    fn producer_codec_missing_from_this_build_names_table_and_key() {
        let spec = spec_with("[kafka.producer]\n\"compression.type\" = \"zstd\"\n");
        let err = check_properties(&spec, "pipeline.toml").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("pipeline.toml: [kafka.producer] \"compression.type\" = \"zstd\": "),
            "{msg}"
        );
        assert!(msg.contains("zstd"), "{msg}");
    }

    #[test]
    fn unknown_property_is_refused() {
        let spec = spec_with("[kafka.properties]\n\"no.such.property\" = \"1\"\n");
        let msg = check_properties(&spec, "f.toml").unwrap_err().to_string();
        assert!(
            msg.contains("[kafka.properties] \"no.such.property\""),
            "{msg}"
        );
    }

    #[test]
    fn every_refused_property_is_reported() {
        let spec = spec_with(
            "[kafka.properties]\n\"no.such.property\" = \"1\"\n\
             [kafka.producer]\n\"linger.ms\" = \"soon\"\n",
        );
        let problems: Vec<String> = property_problems(&spec, "f.toml")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("[kafka.properties] \"no.such.property\""));
        assert!(problems[1].contains("[kafka.producer] \"linger.ms\" = \"soon\""));
    }

    #[test]
    fn members_heartbeat_every_half_second_unless_the_spec_says_otherwise() {
        // At librdkafka's 3 s default the first of two members started together processed
        // every partition for up to 3 s before handing half of them, state and all, over.
        let c = consumer(&spec_with(""), "127.0.0.1:9092");
        assert_eq!(c.get("heartbeat.interval.ms"), Some("500"));
        let mut spec = spec_with("");
        let heartbeat = ("heartbeat.interval.ms".to_string(), "2000".to_string());
        spec.consumer.extend([heartbeat]);
        let c = consumer(&spec, "127.0.0.1:9092");
        assert_eq!(c.get("heartbeat.interval.ms"), Some("2000"));
    }

    #[test]
    fn clients_reconnect_at_least_every_second_unless_the_spec_says_otherwise() {
        // At librdkafka's 10 s default a snapshot's watermark query right after a broker
        // restart timed out and stopped the member.
        for c in [
            consumer(&spec_with(""), "127.0.0.1:9092"),
            reader(&spec_with(""), "127.0.0.1:9092"),
            producer(&spec_with(""), "127.0.0.1:9092", None),
        ] {
            assert_eq!(c.get("reconnect.backoff.max.ms"), Some("1000"));
        }
        let mut spec = spec_with("");
        let backoff = ("reconnect.backoff.max.ms".to_string(), "5000".to_string());
        spec.properties.extend([backoff]);
        let c = reader(&spec, "127.0.0.1:9092");
        assert_eq!(c.get("reconnect.backoff.max.ms"), Some("5000"));
    }

    #[test]
    fn example_properties_pass() {
        check_properties(&spec_with(""), "pipeline.toml").unwrap();
    }
}
