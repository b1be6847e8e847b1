//! Wiring: opens the embedded logs, restores each partition from its checkpoint, loads the
//! model, starts the workers, and answers serving calls from the live state.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use nowcast_core::{partition_for_key, Millis, RejectReason};
use nowcast_log::{Log, LogConfig};
use nowcast_model::{LoadOptions, ModelHandle, ModelKind, ModelSpec};
use nowcast_serve::{BackendError, IngestLineError, IngestOutcome};
use nowcast_spec::{ModelKindDef, PipelineSpec};
use nowcast_window::Engine;
use parking_lot::RwLock;
use serde::Serialize;

use crate::decode::{Decoded, Decoder};
use crate::outputs::PartitionOutputs;
use crate::plan::InputPlan;
use crate::serving::{evaluate_in, Evaluated, Served, StateView};
use crate::stats::Stats;
use crate::worker::{self, PartitionTask};
use crate::{checkpoint, now_ms, PipelineError};

/// `(key, value, timestamp)` as appended to the log.
type LogRecord<'a> = (&'a [u8], &'a [u8], i64);

/// How to run a pipeline.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Overrides the spec's data directory.
    pub data_dir: Option<PathBuf>,
    /// Where outputs go (default `<data_dir>/out`).
    pub out_dir: Option<PathBuf>,
    /// Also write every emitted feature vector.
    pub write_features: bool,
    /// Empty the data directory first (start from nothing), once its lock is held.
    pub fresh: bool,
    /// Abort the process after this many records (fault-injection for crash tests).
    pub fault_abort_after: Option<u64>,
    /// Only append to the input logs (`nowcast ingest`): start no workers, restore no state,
    /// and leave the output files alone.
    pub ingest_only: bool,
}

/// State shared by workers and serving.
pub struct Shared {
    /// The validated spec.
    pub spec: PipelineSpec,
    /// Input log per source.
    pub logs: Vec<Arc<Log>>,
    /// Window engine per partition.
    pub shards: Vec<Arc<RwLock<Engine>>>,
    /// Decoder per source.
    pub decoders: Vec<Decoder>,
    /// The model.
    pub model: ModelHandle,
    /// Model input layout.
    pub plan: InputPlan,
    /// Feature names as pre-rendered JSON keys.
    pub feature_keys: Vec<Vec<u8>>,
    /// Counters and latencies.
    pub stats: Arc<Stats>,
    /// Stop after the current batch.
    pub stop: AtomicBool,
    /// Stop once every partition is caught up.
    pub drain: AtomicBool,
    /// Checkpoints live here.
    pub state_dir: PathBuf,
    /// Write feature vectors.
    pub write_features: bool,
    /// Fault injection.
    pub fault_abort_after: Option<u64>,
    /// Records processed by all workers (for fault injection).
    pub global_processed: AtomicU64,
    /// Held while anything can still write to the data directory (serving can append).
    _data_dir_lock: nowcast_log::DirLock,
}

/// A running pipeline.
pub struct Runtime {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<Result<(), PipelineError>>>,
    started: Instant,
    /// Output directory.
    pub out_dir: PathBuf,
}

/// The final (or current) report of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Records read from the input logs.
    pub events_in: u64,
    /// Events applied to state.
    pub events_applied: u64,
    /// Predictions emitted.
    pub predictions_out: u64,
    /// Late events.
    pub late: u64,
    /// Rejected records.
    pub rejected: u64,
    /// Rejected records by reason.
    pub rejected_by_reason: std::collections::BTreeMap<String, u64>,
    /// Seconds since start.
    pub elapsed_s: f64,
    /// Seconds spent writing the final checkpoint after processing ended.
    pub final_checkpoint_s: f64,
    /// events_in / elapsed_s.
    pub throughput_eps: f64,
    /// Event time → prediction, milliseconds.
    pub p50_ms: f64,
    /// P99 event time → prediction.
    pub p99_ms: f64,
    /// P99.9 event time → prediction.
    pub p999_ms: f64,
    /// P99 append → prediction.
    pub ingest_to_prediction_p99_ms: f64,
    /// P99 freshness (now − newest applied event time after each batch).
    pub freshness_p99_ms: f64,
    /// Entities in state.
    pub state_entities: u64,
    /// Estimated heap bytes of state.
    pub state_bytes: u64,
    /// state_bytes / state_entities.
    pub bytes_per_entity: f64,
    /// Model name.
    pub model: String,
    /// Model version at the end.
    pub model_version: String,
    /// What scored it (e.g. `compiled TreeEnsembleClassifier, 100 trees, …` or `onnxruntime`).
    pub model_engine: String,
}

/// The load options the spec asks for (`model.engine`).
pub fn model_options(spec: &PipelineSpec) -> LoadOptions {
    LoadOptions {
        compile_trees: spec.model.compile_trees,
        ..LoadOptions::default()
    }
}

/// The model runtime's description of the spec's model.
pub fn model_spec(spec: &PipelineSpec) -> ModelSpec {
    let kind = match &spec.model.kind {
        ModelKindDef::Onnx { path } => ModelKind::Onnx { path: path.clone() },
        ModelKindDef::Linear {
            weights,
            intercept,
            logistic,
        } => ModelKind::Linear {
            weights: weights.clone(),
            intercept: *intercept,
            logistic: *logistic,
        },
    };
    ModelSpec {
        name: spec.model.name.clone(),
        kind,
        n_inputs: spec.model.inputs.len(),
    }
}

impl Runtime {
    /// Opens everything, restores partitions from their checkpoints and starts the workers.
    pub fn start(spec: PipelineSpec, opts: RunOptions) -> Result<Runtime, PipelineError> {
        let data_dir = opts
            .data_dir
            .clone()
            .unwrap_or_else(|| spec.data_dir.clone());
        let lock = crate::lock_data_dir(&data_dir)?;
        if opts.fresh {
            clear_except_lock(&data_dir)?;
        }
        let out_dir = opts.out_dir.clone().unwrap_or_else(|| data_dir.join("out"));
        let state_dir = data_dir.join("state");
        let mut logs = Vec::new();
        for src in &spec.sources {
            let cfg = LogConfig {
                partitions: spec.partitions,
                ..LogConfig::with_partitions(spec.partitions)
            };
            logs.push(Arc::new(Log::open(
                &data_dir.join("log").join(&src.name),
                cfg,
            )?));
        }
        let model = ModelHandle::with_options(model_spec(&spec), model_options(&spec))
            .map_err(|e| PipelineError::Model(e.to_string()))?;
        let mut shards = Vec::new();
        let mut tasks = Vec::new();
        let write_features = opts.write_features || spec.write_features;
        for p in 0..spec.partitions {
            if opts.ingest_only {
                // Appending needs neither state nor outputs: leave checkpoints and output
                // files alone (opening outputs would truncate them to the checkpoint).
                let engine = Engine::new(spec.engine.clone())
                    .map_err(|e| PipelineError::State(e.to_string()))?;
                shards.push(Arc::new(RwLock::new(engine)));
                continue;
            }
            let restored =
                checkpoint::read(&state_dir, p, spec.sources.len(), spec.engine.clone())?;
            let (pos, engine) = match restored {
                Some(r) => r,
                None => {
                    let engine = Engine::new(spec.engine.clone())
                        .map_err(|e| PipelineError::State(e.to_string()))?;
                    let pos = checkpoint::Position {
                        offsets: vec![0; spec.sources.len()],
                        output_lens: [0; 4],
                        processed: 0,
                        stream_time: i64::MIN,
                    };
                    (pos, engine)
                }
            };
            let readers = logs
                .iter()
                .zip(&pos.offsets)
                .map(|(log, off)| log.reader(p, *off))
                .collect::<Result<Vec<_>, _>>()?;
            let outputs = PartitionOutputs::open(&out_dir, p, pos.output_lens, write_features)?;
            shards.push(Arc::new(RwLock::new(engine)));
            tasks.push(PartitionTask {
                partition: p,
                readers,
                outputs,
                pos,
            });
        }
        let shared = Arc::new(Shared {
            decoders: {
                let registry = crate::formats::registry_client(&spec)?;
                (0..spec.sources.len())
                    .map(|i| Decoder::new(&spec, i, registry.clone()))
                    .collect::<Result<_, _>>()?
            },
            plan: InputPlan::new(&spec),
            feature_keys: spec
                .engine
                .features
                .iter()
                .map(|f| crate::json::object_key(&f.name))
                .collect(),
            stats: Arc::new(Stats::new(spec.sources.len())),
            logs,
            shards,
            model,
            stop: AtomicBool::new(false),
            drain: AtomicBool::new(false),
            state_dir,
            write_features,
            fault_abort_after: opts.fault_abort_after,
            global_processed: AtomicU64::new(0),
            _data_dir_lock: lock,
            spec,
        });
        shared.model.spawn_watcher(std::time::Duration::from_millis(
            shared.spec.model.reload_interval as u64,
        ));
        let n_workers = shared.spec.workers.max(1).min(tasks.len());
        let mut per_worker: Vec<Vec<PartitionTask>> = (0..n_workers).map(|_| Vec::new()).collect();
        for (i, t) in tasks.into_iter().enumerate() {
            per_worker[i % n_workers].push(t);
        }
        let workers = per_worker
            .into_iter()
            .enumerate()
            .map(|(i, tasks)| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("nowcast-worker-{i}"))
                    .spawn(move || worker::run(shared, tasks, (i, n_workers)))
                    .expect("spawn worker thread")
            })
            .collect();
        spawn_gauges(Arc::downgrade(&shared));
        Ok(Runtime {
            shared,
            workers,
            started: Instant::now(),
            out_dir,
        })
    }

    /// The shared state (for serving and reporting).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// A serving backend over this runtime.
    pub fn backend(&self) -> Arc<Backend> {
        Arc::new(Served(LiveState {
            shared: self.shared.clone(),
        }))
    }

    /// Appends encoded records (any format the source reads) to `source`'s log, each on its
    /// entity's partition; refused records are appended too, to be dead-lettered. Records
    /// are numbered from 1 in the report.
    pub fn append_records<'r>(
        &self,
        source: usize,
        records: impl Iterator<Item = &'r [u8]>,
    ) -> Result<IngestOutcome, BackendError> {
        append_records(
            &self.shared,
            source,
            records.enumerate().map(|(i, r)| (i as u64 + 1, r)),
        )
    }

    /// Appends one record for `source` keyed by `key` (the generator's fast path).
    pub fn append(&self, source: usize, key: &[u8], value: &[u8]) -> Result<(), PipelineError> {
        self.shared.logs[source].append_keyed(key, value, now_ms())?;
        Ok(())
    }

    /// Appends many records of one source, each `(key, value)`, grouping them by partition.
    pub fn append_many<'a>(
        &self,
        source: usize,
        records: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<(), PipelineError> {
        let log = &self.shared.logs[source];
        let n = log.partitions();
        let now = now_ms();
        let mut by_part: Vec<Vec<LogRecord<'_>>> = (0..n).map(|_| Vec::new()).collect();
        for (k, v) in records {
            by_part[partition_for_key(k, n) as usize].push((k, v, now));
        }
        for (p, recs) in by_part.iter().enumerate() {
            if !recs.is_empty() {
                log.append_batch(p as u32, recs)?;
            }
        }
        Ok(())
    }

    /// Flushes the input logs to disk.
    pub fn flush_logs(&self) -> Result<(), PipelineError> {
        for log in &self.shared.logs {
            log.flush()?;
        }
        Ok(())
    }

    /// The report so far.
    pub fn report(&self) -> Report {
        let st = &self.shared.stats;
        let total = st.total.lock().clone();
        // Processing time: until the last worker finished (the final checkpoint is reported
        // separately), or until now while running.
        let done = *st.done_at.lock();
        let elapsed = done
            .map_or_else(
                || self.started.elapsed(),
                |d| d.duration_since(self.started),
            )
            .as_secs_f64();
        let final_checkpoint_s = done.map_or(0.0, |d| d.elapsed().as_secs_f64());
        let events_in = st.events_in.load(Ordering::Relaxed);
        let (entities, bytes) = self.state_summary();
        let ms = |h: &hdrhistogram::Histogram<u64>, q: f64| {
            if h.is_empty() {
                0.0
            } else {
                h.value_at_quantile(q) as f64 / 1000.0
            }
        };
        let model = self.shared.model.current();
        Report {
            events_in,
            events_applied: st.applied.load(Ordering::Relaxed),
            predictions_out: st.predictions.load(Ordering::Relaxed),
            late: st.late.load(Ordering::Relaxed),
            rejected: st.rejected_total(),
            rejected_by_reason: RejectReason::ALL
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    (
                        r.as_str().to_string(),
                        st.rejected[i].load(Ordering::Relaxed),
                    )
                })
                .filter(|(_, n)| *n > 0)
                .collect(),
            elapsed_s: elapsed,
            final_checkpoint_s,
            throughput_eps: events_in as f64 / elapsed.max(1e-9),
            p50_ms: ms(&total.event_to_prediction, 0.5),
            p99_ms: ms(&total.event_to_prediction, 0.99),
            p999_ms: ms(&total.event_to_prediction, 0.999),
            ingest_to_prediction_p99_ms: ms(&total.ingest_to_prediction, 0.99),
            freshness_p99_ms: ms(&total.freshness, 0.99),
            state_entities: entities,
            state_bytes: bytes,
            bytes_per_entity: if entities == 0 {
                0.0
            } else {
                bytes as f64 / entities as f64
            },
            model: model.name().to_string(),
            model_version: model.version().to_string(),
            model_engine: model.engine().to_string(),
        }
    }

    /// Entities and estimated bytes over all partitions.
    pub fn state_summary(&self) -> (u64, u64) {
        let mut entities = 0;
        let mut bytes = 0;
        for shard in &self.shared.shards {
            let e = shard.read();
            entities += e.entities() as u64;
            bytes += e.state_bytes() as u64;
        }
        (entities, bytes)
    }

    /// Total records appended to the input logs.
    pub fn appended(&self) -> u64 {
        self.shared
            .logs
            .iter()
            .map(|log| {
                (0..log.partitions())
                    .map(|p| log.end_offset(p))
                    .sum::<u64>()
            })
            .sum()
    }

    /// Stops the workers: with `drain`, after they have processed everything appended so far.
    /// Each partition is checkpointed on the way out.
    pub fn stop(mut self, drain: bool) -> Result<Report, PipelineError> {
        self.flush_logs()?;
        if drain {
            self.shared.drain.store(true, Ordering::Release);
        } else {
            self.shared.stop.store(true, Ordering::Release);
        }
        for w in self.workers.drain(..) {
            w.join()
                .map_err(|_| PipelineError::State("a worker thread panicked".into()))??;
        }
        Ok(self.report())
    }

    /// True while every worker thread is running.
    pub fn healthy(&self) -> bool {
        self.workers.iter().all(|w| !w.is_finished())
    }
}

/// Empties `dir` for a fresh start, keeping the lock file this process holds.
fn clear_except_lock(dir: &std::path::Path) -> Result<(), PipelineError> {
    let entries = std::fs::read_dir(dir).map_err(|e| PipelineError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| PipelineError::io(dir, e))?;
        if entry.file_name() == nowcast_log::LOCK_FILE {
            continue;
        }
        let path = entry.path();
        let removed = match entry.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
            _ => std::fs::remove_file(&path),
        };
        removed.map_err(|e| PipelineError::io(&path, e))?;
    }
    Ok(())
}

/// Publishes the gauges once a second (the state's byte estimate once a minute) until the
/// runtime is dropped.
fn spawn_gauges(shared: std::sync::Weak<Shared>) {
    let _ = std::thread::Builder::new()
        .name("nowcast-gauges".into())
        .spawn(move || {
            let mut tick = 0u64;
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let now = now_ms();
                crate::stats::publish_freshness(&shared.spec, &shared.stats, now);
                crate::stats::publish_state(shared.shards.iter().map(|s| s.read()), tick);
                tick += 1;
            }
        });
}

/// Serving over the live state.
pub type Backend = Served<LiveState>;

/// The embedded runtime's per-partition engines, as serving reads them.
pub struct LiveState {
    shared: Arc<Shared>,
}

impl StateView for LiveState {
    fn spec(&self) -> &PipelineSpec {
        &self.shared.spec
    }

    fn plan(&self) -> &InputPlan {
        &self.shared.plan
    }

    fn model(&self) -> &ModelHandle {
        &self.shared.model
    }

    fn evaluate(&self, entity: &str, now: Millis) -> Result<Option<Evaluated>, BackendError> {
        // The embedded runtime owns every partition: an entity is known here or nowhere.
        let p = partition_for_key(entity.as_bytes(), self.shared.spec.partitions);
        Ok(evaluate_in(
            &self.shared.shards[p as usize].read(),
            entity,
            now,
        ))
    }

    fn ingest(&self, body: &[u8]) -> Result<IngestOutcome, BackendError> {
        // Events go to the first source, one per line (numbered as lines of the body).
        let lines = body
            .split(|b| *b == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .enumerate()
            .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
            .map(|(i, line)| (i as u64 + 1, line));
        append_records(&self.shared, 0, lines)
    }
}

/// Appends `records` to `source`'s log, each on its entity's partition. Every record is
/// appended — refused ones too, so the worker dead-letters them with their reason in one
/// place — and the refusals are reported with the number given with each record.
fn append_records<'r>(
    shared: &Shared,
    source: usize,
    records: impl Iterator<Item = (u64, &'r [u8])>,
) -> Result<IngestOutcome, BackendError> {
    let log = &shared.logs[source];
    let decoder = &shared.decoders[source];
    let now = now_ms();
    let mut outcome = IngestOutcome::default();
    let mut decoded = Decoded::default();
    let n = log.partitions();
    for (number, line) in records {
        let checked = decoder
            .decode(line, now, &mut decoded)
            .map_err(|e| (e.reason, e.detail));
        let (partition, key) = match checked {
            Ok(()) => {
                outcome.accepted += 1;
                (
                    partition_for_key(decoded.key.as_bytes(), n),
                    decoded.key.as_bytes(),
                )
            }
            Err((reason, detail)) => {
                outcome.rejected += 1;
                if outcome.errors.len() < nowcast_serve::MAX_REPORTED_ERRORS {
                    outcome.errors.push(IngestLineError {
                        line: number,
                        reason,
                        detail,
                    });
                }
                (partition_for_key(line, n), &b""[..])
            }
        };
        log.append(partition, key, line, now)
            .map_err(|e| BackendError::Unavailable(format!("input log: {e}")))?;
    }
    Ok(outcome)
}
