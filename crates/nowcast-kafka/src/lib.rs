//! nowcast on Apache Kafka.
//!
//! - [`client`]: librdkafka client configurations derived from the spec's `[kafka]` section;
//! - [`topics`]: `nowcast topics plan|apply` — the pipeline's topics, checked or created;
//! - [`runtime`]: an instance — consumer-group members (one thread, consumer and producer
//!   each) that decode, apply, score and produce, committing the state changelog, outputs and
//!   offsets together (exactly-once) or in order (at-least-once); serving over owned state;
//! - [`restore`]: rebuilding a partition's state from the feature-store topic;
//! - [`monitor`]: broker reachability, consumer lag and state gauges, once a second;
//! - [`telemetry`]: descriptions of the metrics recorded here.
#![deny(missing_docs)]

pub mod client;
mod error;
mod member;
pub mod monitor;
pub mod produce;
pub mod replica;
pub mod restore;
pub mod runtime;
pub mod shared;
pub mod store;
pub mod telemetry;
pub mod topic_id;
pub mod topics;

pub use error::KafkaError;
pub use produce::TopicProducer;
pub use replica::{Replica, ReplicaBackend};
pub use runtime::{KafkaOptions, KafkaReport, KafkaRuntime, OwnedBackend};
