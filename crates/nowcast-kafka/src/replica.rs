//! A serving replica (`nowcast serve`): follows every partition of the feature-store topic
//! (`read_committed`) into one window engine per partition and answers reads for any entity,
//! evaluated at request time. It lags the processors by about one commit interval.
//!
//! A monitor thread (see [`crate::monitor`]) measures its lag and whether the broker answers
//! and the topic is still the one it started on; `/readyz` is 503 until the replica has
//! reached the end of every partition once, and while the broker or the topic is gone.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use std::time::Instant;

use nowcast_core::{partition_for_key, Millis};
use nowcast_model::ModelHandle;
use nowcast_pipeline::plan::InputPlan;
use nowcast_pipeline::serving::{evaluate_in, Evaluated, Served, StateView};
use nowcast_serve::{BackendError, Health, IngestOutcome};
use nowcast_spec::PipelineSpec;
use nowcast_window::Engine;
use parking_lot::{Mutex, RwLock};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::monitor::{self, Observed, Positions, Throttle};
use crate::{client, runtime, KafkaError};

struct Inner {
    spec: PipelineSpec,
    plan: InputPlan,
    model: ModelHandle,
    engines: Vec<RwLock<Engine>>,
    stop: AtomicBool,
    records: AtomicU64,
    bad: AtomicU64,
    topic: String,
    bootstrap: String,
    /// Next offset per partition, published by the following thread once a second.
    positions: Positions,
    /// Per partition: the end was reached and no record came since.
    at_end: Vec<AtomicBool>,
    /// Per partition: the end was reached at least once.
    reached_end: Vec<AtomicBool>,
    observed: Mutex<Observed>,
}

/// A running replica.
pub struct Replica {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
    monitor: Option<JoinHandle<()>>,
}

impl Replica {
    /// Starts following the feature store of `spec` (which must have `[kafka]`).
    pub fn start(
        spec: PipelineSpec,
        bootstrap: Option<&str>,
        spec_file: &str,
    ) -> Result<Replica, KafkaError> {
        let k = spec.kafka.clone().ok_or_else(|| KafkaError::NotKafka {
            spec: spec_file.to_string(),
        })?;
        let bootstrap = client::bootstrap(&k, bootstrap, spec_file)?;
        let partitions = runtime::topic_partitions(&k, &bootstrap, &k.features_topic)?;
        // End-of-partition events tell when the replica has caught up.
        let consumer: BaseConsumer = client::reader(&k, &bootstrap)
            .set("enable.partition.eof", "true")
            .create()
            .map_err(|e| KafkaError::client("creating the replica consumer", e))?;
        let watcher: BaseConsumer = client::reader(&k, &bootstrap)
            .create()
            .map_err(|e| KafkaError::client("creating the replica's monitor client", e))?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(&k.features_topic, p, Offset::Beginning)
                .map_err(|e| KafkaError::client("replica assignment", e))?;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| KafkaError::client("assigning the feature store", e))?;
        let engines = (0..partitions)
            .map(|_| Engine::new(spec.engine.clone()).map(RwLock::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| KafkaError::State(e.to_string()))?;
        let model = ModelHandle::with_options(
            nowcast_pipeline::runtime::model_spec(&spec),
            nowcast_pipeline::runtime::model_options(&spec),
        )
        .map_err(|e| KafkaError::Model(e.to_string()))?;
        model.spawn_watcher(Duration::from_millis(spec.model.reload_interval as u64));
        let inner = Arc::new(Inner {
            plan: InputPlan::new(&spec),
            spec,
            model,
            engines,
            stop: AtomicBool::new(false),
            records: AtomicU64::new(0),
            bad: AtomicU64::new(0),
            topic: k.features_topic.clone(),
            bootstrap,
            positions: Positions::new(partitions as usize),
            at_end: (0..partitions).map(|_| AtomicBool::new(false)).collect(),
            reached_end: (0..partitions).map(|_| AtomicBool::new(false)).collect(),
            observed: Mutex::new(Observed::default()),
        });
        metrics::gauge!("nowcast_replica_partitions_followed").set(partitions as f64);
        let follower = inner.clone();
        let thread = std::thread::Builder::new()
            .name("nowcast-replica".into())
            .spawn(move || follow(&follower, &consumer))
            .expect("spawn the replica thread");
        let watched = inner.clone();
        let monitor = std::thread::Builder::new()
            .name("nowcast-replica-monitor".into())
            .spawn(move || watch(&watched, &watcher))
            .expect("spawn the replica's monitor thread");
        Ok(Replica {
            inner,
            thread: Some(thread),
            monitor: Some(monitor),
        })
    }

    /// Feature-store records applied so far, and records that could not be decoded.
    pub fn records(&self) -> (u64, u64) {
        (
            self.inner.records.load(Ordering::Relaxed),
            self.inner.bad.load(Ordering::Relaxed),
        )
    }

    /// The serving backend.
    pub fn backend(&self) -> Arc<ReplicaBackend> {
        Arc::new(Served(ReplicaState {
            inner: self.inner.clone(),
        }))
    }

    /// Stops following.
    pub fn stop(mut self) {
        self.inner.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(t) = self.monitor.take() {
            let _ = t.join();
        }
    }

    /// `/healthz` detail and `/readyz` reasons (also for the status line).
    pub fn health(&self) -> Health {
        replica_health(&self.inner)
    }
}

fn follow(inner: &Inner, consumer: &BaseConsumer) {
    // A broker that cannot be reached makes every poll report it: once per 10 s.
    let mut errors = Throttle::new(Duration::from_secs(10));
    let mut last_positions = Instant::now();
    while !inner.stop.load(Ordering::Acquire) {
        if last_positions.elapsed() >= monitor::TICK {
            inner.positions.publish(consumer, &inner.topic);
            last_positions = Instant::now();
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                if let (Some(end), Some(reached)) = (
                    inner.at_end.get(p as usize),
                    inner.reached_end.get(p as usize),
                ) {
                    end.store(true, Ordering::Release);
                    reached.store(true, Ordering::Release);
                }
            }
            Some(Err(e)) => {
                if let Some(line) = errors.line(&format!("nowcast: replica: {e}")) {
                    eprintln!("{line}");
                }
            }
            Some(Ok(m)) => {
                let p = m.partition() as usize;
                if let Some(end) = inner.at_end.get(p) {
                    end.store(false, Ordering::Release);
                }
                let key = m.key().and_then(|k| std::str::from_utf8(k).ok());
                let (Some(key), Some(engine)) = (key, inner.engines.get(p)) else {
                    inner.bad.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                // A record this build cannot read is counted and skipped: serving goes on.
                if let Err(e) = engine.write().restore_entity(key, m.payload()) {
                    inner.bad.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("nowcast_replica_bad_records_total").increment(1);
                    eprintln!("nowcast: replica: partition {p} offset {}: {e}", m.offset());
                    continue;
                }
                inner.records.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Serving over the replica's state.
pub type ReplicaBackend = Served<ReplicaState>;

/// The replica's engines, as serving reads them.
pub struct ReplicaState {
    inner: Arc<Inner>,
}

impl StateView for ReplicaState {
    fn spec(&self) -> &PipelineSpec {
        &self.inner.spec
    }

    fn plan(&self) -> &InputPlan {
        &self.inner.plan
    }

    fn model(&self) -> &ModelHandle {
        &self.inner.model
    }

    fn evaluate(&self, entity: &str, now: Millis) -> Result<Option<Evaluated>, BackendError> {
        // A replica follows every partition: an entity is known here or nowhere.
        let n = self.inner.engines.len() as u32;
        let engine = &self.inner.engines[partition_for_key(entity.as_bytes(), n) as usize];
        let found = evaluate_in(&engine.read(), entity, now);
        Ok(found)
    }

    fn health(&self) -> Health {
        replica_health(&self.inner)
    }

    fn ingest(&self, _body: &[u8]) -> Result<IngestOutcome, BackendError> {
        Err(BackendError::Unavailable(format!(
            "a serving replica does not ingest: produce events to Kafka topic `{}`",
            self.inner.spec.sources[0].topic
        )))
    }
}

/// The replica's monitor: lag per partition, the broker, the topic; runs until it stops.
fn watch(inner: &Inner, consumer: &BaseConsumer) {
    let partitions: Vec<i32> = (0..inner.engines.len() as i32).collect();
    let mut tick = 0u64;
    loop {
        let probe = monitor::probe_topic(consumer, &inner.topic);
        let mut lags = Vec::with_capacity(partitions.len());
        let mut recreated = None;
        if matches!(probe, Ok(n) if n > 0) {
            for (p, low, high) in monitor::ends(consumer, &inner.topic, &partitions) {
                let position = inner.positions.get(p);
                // Offsets below the replica's position: the topic was deleted and re-created.
                if position > high && recreated.is_none() {
                    recreated = Some(format!(
                        "topic `{}` partition {p} ends at offset {high}, below this replica's position {position}: the topic was re-created; restart `nowcast serve` to reload it",
                        inner.topic
                    ));
                }
                let at_end = inner.at_end[p as usize].load(Ordering::Acquire);
                let lag = if at_end {
                    0
                } else {
                    monitor::lag(low, high, position)
                };
                if lag == 0 {
                    inner.reached_end[p as usize].store(true, Ordering::Release);
                }
                metrics::gauge!(
                    "nowcast_kafka_consumer_lag_records",
                    "topic" => inner.topic.clone(),
                    "partition" => p.to_string()
                )
                .set(lag as f64);
                lags.push((p, lag));
            }
        }
        {
            let mut o = inner.observed.lock();
            match &probe {
                Ok(found) => {
                    o.broker_error = None;
                    o.topic_problem =
                        monitor::topic_problem(&inner.topic, *found, inner.engines.len())
                            .or(recreated);
                    o.lag = lags;
                    o.measured_at = Some(Instant::now());
                }
                Err(e) => o.broker_error = Some(e.clone()),
            }
        }
        metrics::gauge!("nowcast_kafka_broker_reachable").set(probe.is_ok() as u8 as f64);
        metrics::counter!("nowcast_replica_records_applied_total")
            .absolute(inner.records.load(Ordering::Relaxed));
        let caught_up = inner.reached_end.iter().all(|r| r.load(Ordering::Acquire));
        metrics::gauge!("nowcast_replica_caught_up").set(caught_up as u8 as f64);
        nowcast_pipeline::stats::publish_state(inner.engines.iter().map(|e| e.read()), tick);
        tick += 1;
        if monitor::sleep_unless(monitor::TICK, || inner.stop.load(Ordering::Acquire)) {
            return;
        }
    }
}

/// `/healthz` detail and `/readyz` reasons of a replica.
fn replica_health(inner: &Inner) -> Health {
    let observed = inner.observed.lock().clone();
    let n = inner.reached_end.len();
    let reached = inner
        .reached_end
        .iter()
        .filter(|r| r.load(Ordering::Acquire))
        .count();
    let mut not_ready = Vec::new();
    if reached < n {
        not_ready.push(format!(
            "the replica has not caught up with topic `{}` yet: {reached} of {n} partitions read to their end once{}",
            inner.topic,
            observed
                .lag_total()
                .map_or(String::new(), |l| format!(", {l} records behind"))
        ));
    }
    if let Some(e) = &observed.broker_error {
        not_ready.push(format!(
            "cannot reach the Kafka broker(s) at {}: {e}",
            inner.bootstrap
        ));
    }
    not_ready.extend(observed.topic_problem.clone());
    let mut kafka = serde_json::Map::new();
    kafka.insert("mode".into(), "replica".into());
    kafka.insert("partitions_followed".into(), n.into());
    kafka.insert("caught_up".into(), (reached == n).into());
    kafka.insert(
        "broker_reachable".into(),
        observed.broker_error.is_none().into(),
    );
    if let Some(e) = observed.broker_error.clone() {
        kafka.insert("broker_error".into(), e.into());
    }
    kafka.insert("lag_records".into(), observed.lag_total().into());
    let mut detail = serde_json::Map::new();
    detail.insert("kafka".into(), kafka.into());
    Health { not_ready, detail }
}
