//! An instance: its processing threads, serving over the partitions it owns, and its report.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nowcast_core::{partition_for_key, Millis};
use nowcast_model::ModelHandle;
use nowcast_pipeline::decode::Decoder;
use nowcast_pipeline::plan::InputPlan;
use nowcast_pipeline::serving::{evaluate_in, Evaluated, Served, StateView};
use nowcast_pipeline::stats::Stats;
use nowcast_serve::{BackendError, Health, IngestOutcome};
use nowcast_spec::PipelineSpec;
use parking_lot::{Mutex, RwLock};
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;

use crate::shared::Shared;
use crate::{client, member, KafkaError};

/// How to run on Kafka.
#[derive(Debug, Clone, Default)]
pub struct KafkaOptions {
    /// The spec file (for messages).
    pub spec_file: String,
    /// Overrides the bootstrap servers.
    pub bootstrap: Option<String>,
    /// Overrides the instance id.
    pub instance: Option<String>,
    /// Abort the process after this many records (crash tests).
    pub fault_abort_after: Option<u64>,
    /// Fail the first revocation's commit as a broker refusal would (rebalance tests).
    pub fault_fail_revoke: bool,
    /// Make the first call adding offsets to a transaction never return in time, as
    /// librdkafka's can after a broker restart (recovery tests).
    pub fault_stall_offsets: bool,
}

/// A running instance.
pub struct KafkaRuntime {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<Result<(), KafkaError>>>,
    /// Measures lag, the broker and the state gauges (see [`crate::monitor`]).
    monitor: Option<JoinHandle<()>>,
    started: Instant,
    /// Held while this instance may write its local state store.
    _store_lock: Option<nowcast_log::DirLock>,
}

/// Counters of an instance.
#[derive(Debug, Clone, Serialize)]
pub struct KafkaReport {
    /// Records read from the source topic.
    pub events_in: u64,
    /// Events applied to state.
    pub events_applied: u64,
    /// Predictions produced.
    pub predictions_out: u64,
    /// Late events.
    pub late: u64,
    /// Dead-lettered records.
    pub rejected: u64,
    /// Commits (transactions under exactly-once).
    pub commits: u64,
    /// Processing threads rebuilt after an error.
    pub restarts: u64,
    /// Partitions owned now.
    pub partitions_owned: usize,
    /// Entities in owned state.
    pub state_entities: u64,
    /// Seconds since start.
    pub elapsed_s: f64,
    /// events_in / elapsed_s.
    pub throughput_eps: f64,
    /// Event time → prediction P50, ms.
    pub p50_ms: f64,
    /// P99.
    pub p99_ms: f64,
    /// P99.9.
    pub p999_ms: f64,
}

/// Partitions of `topic` as the broker reports them (a clear error when it does not exist).
pub fn topic_partitions(
    spec: &nowcast_spec::KafkaSpec,
    bootstrap: &str,
    topic: &str,
) -> Result<i32, KafkaError> {
    let c: BaseConsumer = client::reader(spec, bootstrap)
        .create()
        .map_err(|e| KafkaError::client("creating a metadata client", e))?;
    partition_count(&c, bootstrap, topic)
}

fn partition_count(c: &BaseConsumer, bootstrap: &str, topic: &str) -> Result<i32, KafkaError> {
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .map_err(|e| {
            KafkaError::Unreachable(format!(
                "cannot read the metadata of topic `{topic}` from Kafka at {bootstrap}: {e} (is \
                 the broker up, and is the address right? It comes from --bootstrap, \
                 `kafka.bootstrap` in the spec or NOWCAST_KAFKA)"
            ))
        })?;
    let t = md
        .topics()
        .first()
        .ok_or_else(|| KafkaError::Topics(format!("topic `{topic}` is not in the metadata")))?;
    if t.error().is_some() || t.partitions().is_empty() {
        return Err(KafkaError::Topics(format!(
            "topic `{topic}` does not exist: create the pipeline's topics with `nowcast topics apply --config FILE`"
        )));
    }
    Ok(t.partitions().len() as i32)
}

/// Refuses a feature store that is not compacted: under `cleanup.policy=delete` the latest
/// state of an entity idle for longer than the retention is deleted from the changelog, and a
/// restore silently loses it.
fn check_compacted(
    kafka: &nowcast_spec::KafkaSpec,
    bootstrap: &str,
    spec_file: &str,
) -> Result<(), KafkaError> {
    let admin = crate::topics::Admin::connect(kafka, bootstrap, spec_file)?;
    let topic = &kafka.features_topic;
    let described = admin.describe(&[topic])?;
    let policy = described
        .get(topic)
        .and_then(|t| t.configs.get("cleanup.policy"))
        .map_or("delete", String::as_str);
    if policy.split(',').any(|p| p.trim() == "compact") {
        return Ok(());
    }
    Err(KafkaError::Topics(format!(
        "the feature store `{topic}` has cleanup.policy={policy}, not compact: the state of an \
         entity idle for longer than the topic's retention would be deleted and lost on restore \
         (fix: `nowcast topics apply --config {spec_file}` sets cleanup.policy=compact)"
    )))
}

impl KafkaRuntime {
    /// Checks the topics, loads the model and starts the processing threads. A broker that
    /// does not answer is retried with backoff for up to `connect_timeout`.
    pub fn start(
        spec: PipelineSpec,
        opts: KafkaOptions,
        connect_timeout: Duration,
    ) -> Result<KafkaRuntime, KafkaError> {
        let mut kafka = spec.kafka.clone().ok_or_else(|| KafkaError::NotKafka {
            spec: opts.spec_file.clone(),
        })?;
        if spec.sources.len() != 1 {
            return Err(KafkaError::Topics(format!(
                "{}: on Kafka a pipeline reads exactly one source ({} declared): split it into one pipeline per source",
                opts.spec_file,
                spec.sources.len()
            )));
        }
        client::check_properties(&kafka, &opts.spec_file)?;
        let bootstrap = client::bootstrap(&kafka, opts.bootstrap.as_deref(), &opts.spec_file)?;
        if let Some(i) = &opts.instance {
            kafka.instance = i.clone();
        }
        let store_dir = (kafka.snapshot_interval > 0).then(|| {
            spec.data_dir
                .join("kafka")
                .join(&kafka.group)
                .join(&kafka.instance)
        });
        let store_lock = store_dir
            .as_deref()
            .map(|dir| lock_store(dir, &kafka.instance))
            .transpose()?;
        let probe: BaseConsumer = client::reader(&kafka, &bootstrap)
            .create()
            .map_err(|e| KafkaError::client("creating a metadata client", e))?;
        let deadline = Instant::now() + connect_timeout;
        let mut backoff = Duration::from_millis(250);
        let source_topic = spec.sources[0].topic.clone();
        let repartition = spec.sources[0].repartition_topic.clone();
        let input_topic = repartition.clone().unwrap_or_else(|| source_topic.clone());
        let partitions = loop {
            match partition_count(&probe, &bootstrap, &source_topic) {
                Ok(n) => break n,
                Err(KafkaError::Unreachable(msg)) if Instant::now() < deadline => {
                    eprintln!("nowcast: {msg}; retrying in {} ms", backoff.as_millis());
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(KafkaError::Unreachable(msg)) => {
                    return Err(KafkaError::Unreachable(format!(
                        "{msg}; gave up after {} s of retries (--connect-timeout)",
                        connect_timeout.as_secs_f64()
                    )))
                }
                Err(e) => return Err(e),
            }
        };
        let count = |topic: &str| partition_count(&probe, &bootstrap, topic);
        let partitions = match &repartition {
            Some(t) => count(t)?,
            None => partitions,
        };
        let features = count(&kafka.features_topic)?;
        if features != partitions {
            return Err(KafkaError::Topics(format!(
                "the feature store `{}` has {features} partitions but `{input_topic}` has {partitions}: they must be co-partitioned (see `nowcast topics plan`)",
                kafka.features_topic
            )));
        }
        let out_partitions = [
            count(&kafka.predictions_topic)?,
            count(&kafka.dead_letters_topic)?,
            count(&kafka.late_topic)?,
        ];
        drop(probe);
        check_compacted(&kafka, &bootstrap, &opts.spec_file)?;
        let model = ModelHandle::with_options(
            nowcast_pipeline::runtime::model_spec(&spec),
            nowcast_pipeline::runtime::model_options(&spec),
        )
        .map_err(|e| KafkaError::Model(e.to_string()))?;
        let threads = kafka.threads;
        let registry = nowcast_pipeline::formats::registry_client(&spec)?;
        let predictions_avro = match (&registry, spec.avro_predictions) {
            (Some(reg), true) => Some(nowcast_pipeline::formats::register_predictions(
                &spec,
                reg,
                &kafka.predictions_topic,
            )?),
            _ => None,
        };
        let mut stages = vec![member::Stage::Process];
        if spec.sources[0].repartition_topic.is_some() {
            stages.push(member::Stage::Repartition);
        }
        let shared = Arc::new(Shared {
            start_gate: crate::shared::StartGate::new(stages.len() * threads),
            decoder: Decoder::new(&spec, 0, registry.clone())?,
            predictions_avro,
            plan: InputPlan::new(&spec),
            model,
            stats: Arc::new(Stats::new(1)),
            owned: RwLock::new(HashMap::new()),
            partitions,
            input_topic,
            out_partitions,
            stop: AtomicBool::new(false),
            fault_abort_after: opts.fault_abort_after,
            fault_fail_revoke: AtomicBool::new(opts.fault_fail_revoke),
            fault_stall_offsets: AtomicBool::new(opts.fault_stall_offsets),
            processed: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            store_dir,
            spec_file: opts.spec_file.clone(),
            positions: crate::monitor::Positions::new(partitions as usize),
            last_commit_ms: AtomicI64::new(i64::MIN),
            ever_owned: AtomicBool::new(false),
            empty_since_ms: AtomicI64::new(nowcast_pipeline::now_ms()),
            observed: Mutex::new(crate::monitor::Observed::default()),
            instance: kafka.instance.clone(),
            bootstrap,
            kafka,
            spec,
        });
        shared.model.spawn_watcher(Duration::from_millis(
            shared.spec.model.reload_interval as u64,
        ));
        // The monitor's consumer never joins the group; its `group.id` only lets it read the
        // group's committed offsets.
        let watcher: BaseConsumer = client::reader(&shared.kafka, &shared.bootstrap)
            .set("group.id", &shared.kafka.group)
            .create()
            .map_err(|e| KafkaError::client("creating the monitor's client", e))?;
        let monitor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("nowcast-kafka-monitor".into())
                .spawn(move || crate::monitor::watch_instance(shared, watcher))
                .expect("spawn the monitor thread")
        };
        let threads = stages
            .into_iter()
            .flat_map(|stage| (0..threads).map(move |i| (stage, i)))
            .map(|(stage, i)| {
                let shared = shared.clone();
                let name = match stage {
                    member::Stage::Process => format!("nowcast-kafka-{i}"),
                    member::Stage::Repartition => format!("nowcast-rekey-{i}"),
                };
                std::thread::Builder::new()
                    .name(name)
                    .spawn(move || member::run(shared, i, stage))
                    .expect("spawn a processing thread")
            })
            .collect();
        Ok(KafkaRuntime {
            shared,
            threads,
            monitor: Some(monitor),
            started: Instant::now(),
            _store_lock: store_lock,
        })
    }

    /// The shared state.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Counters so far.
    pub fn report(&self) -> KafkaReport {
        let st = &self.shared.stats;
        let total = st.total.lock().clone();
        let ms = |q: f64| {
            let h = &total.event_to_prediction;
            if h.is_empty() {
                0.0
            } else {
                h.value_at_quantile(q) as f64 / 1000.0
            }
        };
        let owned = self.shared.owned.read();
        let elapsed = self.started.elapsed().as_secs_f64();
        let events_in = st.events_in.load(Ordering::Relaxed);
        KafkaReport {
            events_in,
            events_applied: st.applied.load(Ordering::Relaxed),
            predictions_out: st.predictions.load(Ordering::Relaxed),
            late: st.late.load(Ordering::Relaxed),
            rejected: st.rejected_total(),
            commits: self.shared.commits.load(Ordering::Relaxed),
            restarts: self.shared.restarts.load(Ordering::Relaxed),
            partitions_owned: owned.len(),
            state_entities: owned.values().map(|e| e.read().entities() as u64).sum(),
            elapsed_s: elapsed,
            throughput_eps: events_in as f64 / elapsed.max(1e-9),
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
        }
    }

    /// True while every processing thread runs.
    pub fn healthy(&self) -> bool {
        self.threads.iter().all(|t| !t.is_finished())
    }

    /// The first processing thread that ended with an error, if any (the instance cannot go on).
    pub fn failed(&mut self) -> Option<KafkaError> {
        let i = self.threads.iter().position(|t| t.is_finished())?;
        match self.threads.remove(i).join() {
            Ok(Err(e)) => Some(e),
            Ok(Ok(())) => None,
            Err(_) => Some(KafkaError::State("a processing thread panicked".into())),
        }
    }

    /// A serving backend over the partitions this instance owns.
    pub fn backend(&self) -> Arc<OwnedBackend> {
        Arc::new(Served(OwnedState {
            shared: self.shared.clone(),
        }))
    }

    /// Commits and stops every processing thread, leaving the group.
    pub fn stop(mut self) -> Result<KafkaReport, KafkaError> {
        self.shared.stop.store(true, Ordering::Release);
        let mut first = None;
        for t in self.threads.drain(..) {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first.get_or_insert(e);
                }
                Err(_) => {
                    first.get_or_insert(KafkaError::State("a processing thread panicked".into()));
                }
            }
        }
        if let Some(m) = self.monitor.take() {
            let _ = m.join();
        }
        match first {
            Some(e) => Err(e),
            None => Ok(self.report()),
        }
    }
}

/// Serving from the live state of the partitions this instance owns; an entity of a
/// partition it does not own is [`BackendError::NotOwned`] (404 `not_owned`), naming the
/// partition, the owned ones and where to read it instead.
pub type OwnedBackend = Served<OwnedState>;

/// The engines of the partitions this instance owns, as serving reads them.
pub struct OwnedState {
    shared: Arc<Shared>,
}

impl StateView for OwnedState {
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
        let p = partition_for_key(entity.as_bytes(), self.shared.partitions as u32) as i32;
        let engine = self.shared.owned.read().get(&p).cloned();
        let Some(engine) = engine else {
            return Err(BackendError::NotOwned(not_owned(&self.shared, entity, p)));
        };
        let found = evaluate_in(&engine.read(), entity, now);
        Ok(found)
    }

    fn health(&self) -> Health {
        instance_health(&self.shared)
    }

    fn ingest(&self, _body: &[u8]) -> Result<IngestOutcome, BackendError> {
        Err(BackendError::Unavailable(format!(
            "this pipeline reads Kafka topic `{}`: produce events there",
            self.shared.spec.sources[0].topic
        )))
    }
}

/// Partitions this instance owns now, ascending.
fn owned_partitions(shared: &Shared) -> Vec<i32> {
    let mut owned: Vec<i32> = shared.owned.read().keys().copied().collect();
    owned.sort_unstable();
    owned
}

fn list(partitions: &[i32]) -> String {
    partitions
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `not_owned` detail: the entity's partition, what this instance owns, and the fix.
fn not_owned(shared: &Shared, entity: &str, partition: i32) -> String {
    let owned = owned_partitions(shared);
    let owns = if owned.is_empty() {
        "it owns no partitions now (joining the group, or in a rebalance)".to_string()
    } else {
        format!("it owns partitions {}", list(&owned))
    };
    format!(
        "entity `{entity}` is on partition {partition} of `{}`, which this instance (`{}`) does not own (another instance's, or being restored after a rebalance); {owns} of {}. Read it from a serving replica (`nowcast serve --config {}`), which follows every partition, or from the instance of group `{}` that owns partition {partition}",
        shared.input_topic,
        shared.instance,
        shared.partitions,
        shared.spec_file,
        shared.kafka.group,
    )
}

/// `/healthz` detail and `/readyz` reasons of an instance.
pub fn instance_health(shared: &Shared) -> Health {
    let owned = owned_partitions(shared);
    let observed = shared.observed.lock().clone();
    let now = nowcast_pipeline::now_ms();
    let mut not_ready = Vec::new();
    let group = &shared.kafka.group;
    if !shared.ever_owned.load(Ordering::Acquire) {
        not_ready.push(format!(
            "instance `{}` owns no partitions yet: it is joining consumer group `{group}` and restoring the state of its partitions",
            shared.instance
        ));
    } else if owned.is_empty() {
        let since = shared.empty_since_ms.load(Ordering::Acquire);
        let for_ms = if since == i64::MIN { 0 } else { now - since };
        if for_ms >= crate::monitor::NOT_OWNING_GRACE.as_millis() as i64 {
            not_ready.push(format!(
                "instance `{}` has owned no partitions of `{}` for {} s: group `{group}` has more members than the topic's {} partitions, or a rebalance is stuck; its entities are served by the instances that own them and by `nowcast serve`",
                shared.instance,
                shared.input_topic,
                for_ms / 1000,
                shared.partitions
            ));
        }
    }
    if let Some(e) = &observed.broker_error {
        not_ready.push(format!(
            "cannot reach the Kafka broker(s) at {}: {e}",
            shared.bootstrap
        ));
    }
    not_ready.extend(observed.topic_problem.clone());
    let last_commit = shared.last_commit_ms.load(Ordering::Relaxed);
    let mut kafka = serde_json::Map::new();
    kafka.insert("mode".into(), "instance".into());
    kafka.insert("partitions_owned".into(), owned.len().into());
    kafka.insert("partitions".into(), owned.into());
    kafka.insert(
        "broker_reachable".into(),
        observed.broker_error.is_none().into(),
    );
    if let Some(e) = observed.broker_error.clone() {
        kafka.insert("broker_error".into(), e.into());
    }
    kafka.insert(
        "last_commit_age_s".into(),
        if last_commit == i64::MIN {
            serde_json::Value::Null
        } else {
            ((now - last_commit).max(0) as f64 / 1e3).into()
        },
    );
    kafka.insert("lag_records".into(), observed.lag_total().into());
    let mut detail = serde_json::Map::new();
    detail.insert("kafka".into(), kafka.into());
    Health { not_ready, detail }
}

/// Locks the instance's local state store: two processes with one instance id on one machine
/// would overwrite each other's snapshots.
fn lock_store(dir: &std::path::Path, instance: &str) -> Result<nowcast_log::DirLock, KafkaError> {
    nowcast_log::DirLock::acquire(dir).map_err(|e| match e {
        nowcast_log::LogError::Locked { dir, pid } => KafkaError::StoreInUse {
            dir: dir.display().to_string(),
            instance: instance.to_string(),
            pid,
        },
        e => KafkaError::State(e.to_string()),
    })
}
