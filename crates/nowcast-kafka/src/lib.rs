//! nowcast on Apache Kafka.
//!
//! - [`client`]: librdkafka client configurations derived from the spec's `[kafka]` section;
//! - [`topics`]: `nowcast topics plan|apply` — the pipeline's topics, checked or created;
//! - [`processor`]: consumer-group members that decode, apply, score and produce, committing
//!   state changelog, outputs and offsets together (exactly-once) or in order (at-least-once);
//! - [`store`]: the feature-store topic's records (entity state) and restoring from them.
#![deny(missing_docs)]

pub mod client;
mod error;
pub mod topics;

pub use error::KafkaError;
