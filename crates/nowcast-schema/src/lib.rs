//! Record formats for nowcast sources beyond JSON: Apache Avro and Protocol Buffers, framed in
//! the Confluent wire format (magic byte, schema id, Protobuf message indexes) or bare with a
//! local schema; writer schemas resolved by id in a Confluent-compatible schema registry and
//! cached; Avro reader/writer resolution.
//!
//! Decoders do not build generic values: each writer schema compiles into a small program
//! that reads only the fields the pipeline needs (the [`Needs`]) into slots and skips the
//! rest, so a warm cache decodes without allocating. Every failure is a [`DecodeError`] with
//! the dead-letter reason, never a panic.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod avro;
pub mod encode;
mod error;
pub mod prediction;
pub mod proto;
pub mod registry;
pub mod source;
mod value;
pub mod wire;

pub use error::{DecodeError, SchemaError};
pub use registry::{Registry, RegistryConfig, SchemaType};
pub use source::{
    Compiled, Format, Framing, LocalSchema, OnRegistryError, SchemaSource, SourceConfig, Stop,
};
pub use value::{Need, Needs, Use, Val};
