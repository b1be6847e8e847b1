//! librdkafka configurations: the spec's properties, then what nowcast owns.

use nowcast_spec::{Delivery, KafkaSpec};
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

fn base(spec: &KafkaSpec, bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c.set("client.id", format!("nowcast-{}", spec.instance));
    for (k, v) in &spec.properties {
        c.set(k, v);
    }
    c
}

/// An admin client's configuration.
pub fn admin(spec: &KafkaSpec, bootstrap: &str) -> ClientConfig {
    base(spec, bootstrap)
}

/// A consumer-group member: manual offsets, `read_committed`, cooperative rebalancing.
pub fn consumer(spec: &KafkaSpec, bootstrap: &str) -> ClientConfig {
    let mut c = base(spec, bootstrap);
    c.set("fetch.wait.max.ms", "5");
    c.set("auto.offset.reset", "earliest");
    for (k, v) in &spec.consumer {
        c.set(k, v);
    }
    c.set("group.id", &spec.group);
    c.set("enable.auto.commit", "false");
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
