//! The pipeline spec: one TOML file declaring sources, features, the model, outputs, serving
//! and the freshness objective.
//!
//! Reading happens in two pure steps, as in Vector's `XConfig → X`:
//! 1. [`raw`]: serde structs that refuse unknown keys;
//! 2. [`validate`]: every semantic check, collecting *all* problems, each with its field path
//!    and the fix, into a [`SpecError`]; the result is a [`PipelineSpec`] ready to build.
//!
//! Nothing here touches the network or the model file; building the runtime parts happens in
//! `nowcast-pipeline`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod formats;
mod hints;
mod kafka;
mod names;
pub mod raw;
mod spec;
mod validate;

pub use formats::{
    BinaryFormat, Framing, RegistryPolicy, RegistrySection, RegistrySpec, SchemaFormat,
    SourceFormat, SubjectStrategy,
};
pub use kafka::{topic_name_problem, Delivery, KafkaSection, KafkaSpec, TopicsSection};
pub use spec::*;
pub use validate::{parse_spec, read_spec};

use std::fmt;

/// One problem in a spec: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Field path, e.g. `features[3].window`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)?;
        if !self.fix.is_empty() {
            write!(f, " (fix: {})", self.fix)?;
        }
        Ok(())
    }
}

/// Every problem found in one spec file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct SpecError {
    /// The spec file (or `<inline>`).
    pub file: String,
    /// The problems, in file order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "{}: {} problem{}",
            self.file,
            n,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "  {}: {p}", self.file)?;
        }
        Ok(())
    }
}
