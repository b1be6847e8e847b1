//! A processing worker: owns a set of partitions and, for each, reads the input logs, decodes,
//! applies events to the partition's window engine, scores each applied event in a
//! micro-batch, writes the outputs and checkpoints.
//!
//! Per-event rule: the feature vector of an event is evaluated at the event's time over the
//! events applied before it (the event itself excluded); its own fields reach the model as
//! request-time inputs, exactly as in `POST /v1/predict`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nowcast_core::{FeatureValue, RejectReason};
use nowcast_log::{LogReader, RecordBatch};
use nowcast_window::{Late, SNAPSHOT_SLICE};

use crate::checkpoint::{self, Position};
use crate::checkpointer::{Checkpointer, Job};
use crate::decode::Decoded;
use crate::json::{JsonLine, PredictionLine};
use crate::outputs::PartitionOutputs;
use crate::runtime::Shared;
use crate::stats::{reason_index, Latencies};
use crate::{now_ms, PipelineError};

/// Records read from one log per poll.
const POLL_MAX: usize = 512;
/// Records applied per engine lock acquisition (keeps serving reads waiting ≤ ~100 µs).
const LOCK_CHUNK: usize = 64;
/// Latency histograms are merged into the shared ones this often (merging costs a pass over
/// the histogram buckets, too much to do per batch).
const MERGE_EVERY: Duration = Duration::from_millis(50);
/// Eviction of idle entities runs each time a partition has processed this many more records.
pub const EVICT_EVERY: u64 = 1 << 16;

/// One partition owned by a worker.
pub struct PartitionTask {
    /// Partition number.
    pub partition: u32,
    /// One reader per source.
    pub readers: Vec<LogReader>,
    /// Output files.
    pub outputs: PartitionOutputs,
    /// Position as of the last checkpoint plus progress since.
    pub pos: Position,
}

/// Scratch buffers reused across batches.
struct Scratch {
    batch: RecordBatch,
    decoded: Decoded,
    features: Vec<FeatureValue>,
    rows: Vec<f32>,
    scores: Vec<f64>,
    metas: Vec<Meta>,
    texts: String,
    line: Vec<u8>,
    lat: Latencies,
}

/// What a prediction needs besides its row, kept until the micro-batch is scored.
struct Meta {
    /// `event_id` is `texts[start..mid]`, the entity `texts[mid..end]` (one arena per batch
    /// instead of two allocations per event).
    start: usize,
    mid: usize,
    end: usize,
    event_time: i64,
    ingest_time: i64,
}

/// Runs worker `slot.0` of `slot.1` until stopped (or, in drain mode, until every partition is
/// caught up).
///
/// Checkpoints are taken one partition at a time and staggered: with `m` partitions per
/// worker, partition task `j` of worker `i` of `n` takes its first one after
/// `(j·n + i + 1) / (m·n)` of the interval, then one per interval. A checkpoint fixes the
/// partition's position and begins an engine snapshot of that moment; the worker then
/// writes it `SNAPSHOT_SLICE` entities at a time between batches (an event about to change an
/// entity not yet written writes it first, see `nowcast_window::Engine::begin_snapshot`),
/// so processing never stops for more than a slice, and hands the finished bytes to the
/// persisting thread.
pub fn run(
    shared: Arc<Shared>,
    mut tasks: Vec<PartitionTask>,
    slot: (usize, usize),
) -> Result<(), PipelineError> {
    let mut s = Scratch {
        batch: RecordBatch::default(),
        decoded: Decoded::default(),
        features: Vec::new(),
        rows: Vec::new(),
        scores: Vec::new(),
        metas: Vec::new(),
        texts: String::new(),
        line: Vec::with_capacity(1024),
        lat: Latencies::default(),
    };
    let interval = Duration::from_millis(shared.spec.checkpoint_interval as u64);
    let name = std::thread::current()
        .name()
        .unwrap_or("nowcast-worker")
        .replace("worker", "ckpt");
    let checkpointer = Checkpointer::start(shared.state_dir.clone(), name);
    let (i, n, m) = (
        slot.0 as u32,
        slot.1.max(1) as u32,
        tasks.len().max(1) as u32,
    );
    let start = Instant::now();
    let mut next_ckpt: Vec<Instant> = (0..m)
        .map(|j| start + interval * (j * n + i + 1) / (m * n))
        .collect();
    let mut slicing: Option<Slicing> = None;
    let mut last_merge = Instant::now();
    let mut idle_rounds = 0u32;
    loop {
        let mut read = 0usize;
        for task in tasks.iter_mut() {
            for source in 0..task.readers.len() {
                read += process(&shared, task, source, &mut s)?;
            }
        }
        if last_merge.elapsed() >= MERGE_EVERY {
            shared.stats.merge(&s.lat);
            s.lat.reset();
            last_merge = Instant::now();
        }
        checkpointer.check()?;
        if let Some(c) = &slicing {
            let task = &tasks[c.task];
            let shard = &shared.shards[task.partition as usize];
            let t0 = Instant::now();
            let done = shard.read().snapshot_step(SNAPSHOT_SLICE);
            let pause = metrics::histogram!("nowcast_checkpoint_pause_seconds");
            pause.record(t0.elapsed().as_secs_f64());
            if done {
                let t0 = Instant::now();
                let bytes = shard
                    .write()
                    .finish_snapshot()
                    .map_err(|e| PipelineError::State(format!("encoding the checkpoint: {e}")))?
                    .expect("a snapshot in progress");
                pause.record(t0.elapsed().as_secs_f64());
                let c = slicing.take().expect("checked above");
                checkpointer.submit(Job {
                    parts: vec![(task.partition, bytes, c.outputs)],
                    started: c.started,
                });
                next_ckpt[c.task] = Instant::now() + interval;
            }
        } else if !checkpointer.busy() {
            let now = Instant::now();
            if let Some(j) = (0..tasks.len()).find(|&j| now >= next_ckpt[j]) {
                slicing = Some(begin_checkpoint(&shared, &mut tasks[j], j)?);
                metrics::histogram!("nowcast_checkpoint_pause_seconds")
                    .record(now.elapsed().as_secs_f64());
            }
        }
        if shared.stop.load(Ordering::Acquire) {
            break;
        }
        if read == 0 {
            if shared.drain.load(Ordering::Acquire) {
                break;
            }
            if slicing.is_some() {
                // Nothing to process: go on with the checkpoint, yielding the core between
                // slices so serving and the other threads are not starved while it runs.
                std::thread::yield_now();
                continue;
            }
            for task in tasks.iter_mut() {
                task.outputs.flush()?;
            }
            idle_rounds = (idle_rounds + 1).min(10);
            std::thread::sleep(Duration::from_micros(50 * idle_rounds as u64));
        } else {
            idle_rounds = 0;
        }
    }
    shared.stats.merge(&s.lat);
    shared.stats.mark_done();
    checkpointer.finish()?;
    if let Some(c) = slicing {
        // The final checkpoint below supersedes the one in progress.
        shared.shards[tasks[c.task].partition as usize]
            .write()
            .cancel_snapshot();
    }
    for task in tasks.iter_mut() {
        let (bytes, outputs) = encode_task(&shared, task)?;
        checkpoint::persist(&shared.state_dir, task.partition, &bytes, &outputs)?;
    }
    Ok(())
}

/// A checkpoint whose engine snapshot is being written a slice at a time.
struct Slicing {
    /// Index of the task in the worker's list.
    task: usize,
    /// Output files the checkpoint's lengths refer to (fsynced before it is written).
    outputs: Vec<std::path::PathBuf>,
    started: Instant,
}

/// Starts task `j`'s checkpoint: flushes its outputs, records its position and begins the
/// engine snapshot behind the checkpoint header (under the write lock, for a moment).
fn begin_checkpoint(
    shared: &Shared,
    task: &mut PartitionTask,
    j: usize,
) -> Result<Slicing, PipelineError> {
    let started = Instant::now();
    let (lens, outputs) = task.outputs.flush_for_checkpoint()?;
    task.pos.output_lens = lens;
    task.pos.offsets = task.readers.iter().map(|r| r.position()).collect();
    let mut engine = shared.shards[task.partition as usize].write();
    let header = checkpoint::header(&task.pos, engine.entities());
    engine
        .begin_snapshot(header)
        .map_err(|e| PipelineError::State(format!("encoding the checkpoint: {e}")))?;
    Ok(Slicing {
        task: j,
        outputs,
        started,
    })
}

/// Flushes the task's outputs and encodes its checkpoint under the engine's read lock.
fn encode_task(
    shared: &Shared,
    task: &mut PartitionTask,
) -> Result<(Vec<u8>, Vec<std::path::PathBuf>), PipelineError> {
    let (lens, outputs) = task.outputs.flush_for_checkpoint()?;
    task.pos.output_lens = lens;
    task.pos.offsets = task.readers.iter().map(|r| r.position()).collect();
    let engine = shared.shards[task.partition as usize].read();
    Ok((checkpoint::encode(&task.pos, &engine)?, outputs))
}

/// Reads and processes one batch of `source` on the task's partition; returns records read.
fn process(
    shared: &Shared,
    task: &mut PartitionTask,
    source: usize,
    s: &mut Scratch,
) -> Result<usize, PipelineError> {
    s.batch.clear();
    let n = task.readers[source].poll(&mut s.batch, POLL_MAX)?;
    if n == 0 {
        return Ok(0);
    }
    let now = now_ms();
    let src = &shared.spec.sources[source];
    let decoder = &shared.decoders[source];
    let partition = task.partition;
    let shard = &shared.shards[partition as usize];
    let (mut late, mut applied) = (0u64, 0u64);
    let mut rejected = [0u64; RejectReason::ALL.len()];
    s.rows.clear();
    s.metas.clear();
    s.texts.clear();
    let mut engine = shard.write();
    for (i, rec) in s.batch.iter().enumerate() {
        if i > 0 && i % LOCK_CHUNK == 0 {
            // Let waiting serving reads in between chunks.
            parking_lot::RwLockWriteGuard::bump(&mut engine);
        }
        if let Err(e) = decoder.decode(rec.value, now, &mut s.decoded) {
            if decoder.stops_on(&e) {
                return Err(PipelineError::Schema(format!(
                    "source `{}` partition {partition} offset {}: {} (on_registry_error = \"stop\")",
                    src.name, rec.offset, e.detail
                )));
            }
            rejected[reason_index(e.reason)] += 1;
            s.line.clear();
            JsonLine::dead_letter(
                &mut s.line,
                &src.name,
                partition,
                rec.offset,
                e.reason,
                &e.detail,
                rec.value,
            );
            task.outputs.line(1, &s.line)?;
            continue;
        }
        let d = &s.decoded;
        match engine.apply(&d.key, source, d.time, &d.inputs, Some(&mut s.features)) {
            Err(Late { watermark, newest }) => {
                late += 1;
                s.line.clear();
                JsonLine::late(
                    &mut s.line,
                    &src.name,
                    partition,
                    rec.offset,
                    &d.key,
                    d.id.as_deref(),
                    d.time,
                    watermark,
                    newest,
                    src.allowed_lateness,
                    rec.value,
                );
                task.outputs.line(2, &s.line)?;
            }
            Ok(()) => {
                applied += 1;
                task.pos.stream_time = task.pos.stream_time.max(d.time);
                let start = s.texts.len();
                match &d.id {
                    Some(id) => s.texts.push_str(id),
                    None => {
                        use std::fmt::Write;
                        let _ = write!(s.texts, "{}-{}-{}", src.name, partition, rec.offset);
                    }
                }
                let mid = s.texts.len();
                s.texts.push_str(&d.key);
                let event_id = &s.texts[start..mid];
                shared.plan.row(&s.features, &d.request, &mut s.rows);
                if shared.write_features {
                    s.line.clear();
                    JsonLine::features(
                        &mut s.line,
                        event_id,
                        &d.key,
                        d.time,
                        &shared.feature_keys,
                        &s.features,
                    );
                    task.outputs.line(3, &s.line)?;
                }
                s.metas.push(Meta {
                    start,
                    mid,
                    end: s.texts.len(),
                    event_time: d.time,
                    ingest_time: rec.timestamp,
                });
            }
        }
    }
    drop(engine);
    let features_at = now_ms();
    // Score the micro-batch outside the engine lock.
    s.scores.clear();
    let model = shared.model.current();
    let n_inputs = shared.plan.len();
    if !s.metas.is_empty() {
        model
            .score_batch(&s.rows, s.metas.len(), &mut s.scores)
            .map_err(|e| PipelineError::Model(e.to_string()))?;
    }
    let emit = now_ms();
    let e2f = metrics::histogram!("nowcast_event_to_features_seconds");
    let e2p = metrics::histogram!("nowcast_event_to_prediction_seconds");
    let i2p = metrics::histogram!("nowcast_ingest_to_prediction_seconds");
    for (i, meta) in s.metas.iter().enumerate() {
        s.line.clear();
        let row = &s.rows[i * n_inputs..(i + 1) * n_inputs];
        PredictionLine {
            event_id: &s.texts[meta.start..meta.mid],
            entity: &s.texts[meta.mid..meta.end],
            score: s.scores[i],
            model: model.name(),
            model_version: model.version(),
            keys: &shared.plan.json_keys,
            values: row,
            event_time: meta.event_time,
            emit_time: emit,
        }
        .write(&mut s.line);
        task.outputs.line(0, &s.line)?;
        e2f.record((features_at - meta.event_time) as f64 / 1e3);
        e2p.record((emit - meta.event_time) as f64 / 1e3);
        i2p.record((emit - meta.ingest_time) as f64 / 1e3);
        s.lat.record(
            (emit - meta.event_time) * 1000,
            (emit - meta.ingest_time) * 1000,
        );
    }
    if applied > 0 {
        let newest = &shared.stats.newest_event[source];
        newest.fetch_max(task.pos.stream_time, Ordering::Relaxed);
        s.lat.record_freshness(emit, task.pos.stream_time);
    }
    let before = task.pos.processed;
    task.pos.processed += n as u64;
    if before / EVICT_EVERY != task.pos.processed / EVICT_EVERY {
        shard.write().evict_idle(task.pos.stream_time);
    }
    let st = &shared.stats;
    st.events_in.fetch_add(n as u64, Ordering::Relaxed);
    st.applied.fetch_add(applied, Ordering::Relaxed);
    st.late.fetch_add(late, Ordering::Relaxed);
    st.predictions
        .fetch_add(s.metas.len() as u64, Ordering::Relaxed);
    let label = src.name.clone();
    metrics::counter!("nowcast_events_in_total", "source" => label.clone()).increment(n as u64);
    metrics::counter!("nowcast_events_applied_total", "source" => label.clone()).increment(applied);
    metrics::counter!("nowcast_events_late_total", "source" => label.clone()).increment(late);
    metrics::counter!("nowcast_predictions_total", "model" => model.name().to_string())
        .increment(s.metas.len() as u64);
    for (i, count) in rejected.iter().enumerate() {
        if *count > 0 {
            st.rejected[i].fetch_add(*count, Ordering::Relaxed);
            metrics::counter!("nowcast_events_rejected_total", "source" => label.clone(), "reason" => RejectReason::ALL[i].as_str())
                .increment(*count);
        }
    }
    if let Some(limit) = shared.fault_abort_after {
        if shared
            .global_processed
            .fetch_add(n as u64, Ordering::Relaxed)
            + n as u64
            >= limit
        {
            task.outputs.flush()?;
            eprintln!("nowcast: fault injection: aborting after {limit} records (NOWCAST_FAULT_ABORT_AFTER)");
            std::process::abort();
        }
    }
    Ok(n)
}
