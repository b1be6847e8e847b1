//! A serving replica (`nowcast serve`): follows every partition of the feature-store topic
//! (`read_committed`) into one window engine per partition and answers reads for any entity,
//! evaluated at request time. It lags the processors by about one commit interval.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nowcast_core::{partition_for_key, Millis};
use nowcast_model::ModelHandle;
use nowcast_pipeline::plan::InputPlan;
use nowcast_pipeline::serving::{evaluate_in, Evaluated, Served, StateView};
use nowcast_serve::{BackendError, IngestOutcome};
use nowcast_spec::PipelineSpec;
use nowcast_window::Engine;
use parking_lot::RwLock;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::{client, runtime, KafkaError};

struct Inner {
    spec: PipelineSpec,
    plan: InputPlan,
    model: ModelHandle,
    engines: Vec<RwLock<Engine>>,
    stop: AtomicBool,
    records: AtomicU64,
    bad: AtomicU64,
}

/// A running replica.
pub struct Replica {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
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
        let consumer: BaseConsumer = client::reader(&k, &bootstrap)
            .create()
            .map_err(|e| KafkaError::client("creating the replica consumer", e))?;
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
        });
        let follower = inner.clone();
        let thread = std::thread::Builder::new()
            .name("nowcast-replica".into())
            .spawn(move || follow(&follower, &consumer))
            .expect("spawn the replica thread");
        Ok(Replica {
            inner,
            thread: Some(thread),
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
    }
}

fn follow(inner: &Inner, consumer: &BaseConsumer) {
    while !inner.stop.load(Ordering::Acquire) {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e)) => eprintln!("nowcast: replica: {e}"),
            Some(Ok(m)) => {
                let p = m.partition() as usize;
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

    fn evaluate(&self, entity: &str, now: Millis) -> Option<Evaluated> {
        let n = self.inner.engines.len() as u32;
        let engine = &self.inner.engines[partition_for_key(entity.as_bytes(), n) as usize];
        let found = evaluate_in(&engine.read(), entity, now);
        found
    }

    fn ingest(&self, _body: &[u8]) -> Result<IngestOutcome, BackendError> {
        Err(BackendError::Unavailable(format!(
            "a serving replica does not ingest: produce events to Kafka topic `{}`",
            self.inner.spec.sources[0].topic
        )))
    }
}
