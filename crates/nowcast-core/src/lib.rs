//! The small core every other nowcast crate builds on: event time, durations, entity
//! partitioning, the records that leave the pipeline (predictions, dead letters, late events)
//! and the reasons a record can be refused.
//!
//! Nothing here does I/O or reads a clock; everything is deterministic.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod partition;
pub mod record;
pub mod time;

pub use partition::{murmur2, partition_for_key};
pub use record::{FeatureValue, LateEvent, Prediction, RejectReason, Rejected};
pub use time::{format_duration, parse_duration, parse_event_time, Millis, TimeError};
