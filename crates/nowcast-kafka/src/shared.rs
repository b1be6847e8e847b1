//! What every processing thread of an instance shares: the spec, decoder, model, counters, and
//! the engines of the partitions this instance owns (read by serving).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use nowcast_model::ModelHandle;
use nowcast_pipeline::decode::Decoder;
use nowcast_pipeline::plan::InputPlan;
use nowcast_pipeline::stats::Stats;
use nowcast_spec::{KafkaSpec, PipelineSpec};
use nowcast_window::Engine;
use parking_lot::RwLock;

/// Shared by the processing threads and serving.
pub struct Shared {
    /// The validated spec.
    pub spec: PipelineSpec,
    /// Its `[kafka]` section.
    pub kafka: KafkaSpec,
    /// Bootstrap servers in use.
    pub bootstrap: String,
    /// This instance's id.
    pub instance: String,
    /// The source's decoder.
    pub decoder: Decoder,
    /// Predictions in Avro with this registered schema id (`outputs.format = "avro"`).
    pub predictions_avro: Option<u32>,
    /// Model input layout.
    pub plan: InputPlan,
    /// The model.
    pub model: ModelHandle,
    /// Counters and latencies.
    pub stats: Arc<Stats>,
    /// Engines of the source partitions owned by this instance.
    pub owned: RwLock<HashMap<i32, Arc<RwLock<Engine>>>>,
    /// The topic the processing members consume: the source, or its repartition topic.
    pub input_topic: String,
    /// Partitions of `input_topic` (and of the feature-store topic).
    pub partitions: i32,
    /// Partitions of the predictions, dead-letter and late topics.
    pub out_partitions: [i32; 3],
    /// Stop after the current batch, committing first.
    pub stop: AtomicBool,
    /// Abort the process (no commit) after this many records: crash tests.
    pub fault_abort_after: Option<u64>,
    /// Records processed by this instance.
    pub processed: AtomicU64,
    /// Transactions (or at-least-once commits) completed.
    pub commits: AtomicU64,
    /// Processing threads restarted after an error.
    pub restarts: AtomicU64,
    /// The local state store's directory (None: disabled).
    pub store_dir: Option<std::path::PathBuf>,
}
