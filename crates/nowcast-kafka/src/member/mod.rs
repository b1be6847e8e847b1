//! One processing thread: a consumer-group member with its own producer.
//!
//! Exactly-once: one transactional producer per member (`transactional.id` =
//! `<group>-<instance>-<thread>`, so a restarted instance fences its previous incarnation and
//! aborts what it left open). Every commit interval, one transaction holds the outputs of the
//! records processed since the last commit, the latest state of every entity they changed
//! (the feature-store topic) and the consumer offsets (`send_offsets_to_transaction` with the
//! group metadata, so a member that lost its partitions is fenced by the group generation).
//! Any transaction error ends the member; it is rebuilt from scratch (new producer, new
//! consumer, state restored from the committed changelog) rather than retried on the same
//! producer epoch.
//!
//! At-least-once: the same records without a transaction, and no waiting: each commit closes
//! an *epoch* of produced records; its offsets are stored once every record of that epoch and
//! the earlier ones is acknowledged, while processing goes on, and the consumer commits the
//! stored offsets every commit interval, retrying refused commits. A failed
//! delivery rebuilds the member before the offsets move past it. Revocation and stopping wait
//! for the acknowledgements and commit synchronously.
//!
//! Partitions are committed before they are revoked (`pre_rebalance`) and restored from the
//! changelog when assigned (`post_rebalance`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nowcast_core::{partition_for_key, FeatureValue, RejectReason};
use nowcast_pipeline::decode::Decoded;
use nowcast_pipeline::json::PredictionLine;
use nowcast_pipeline::stats::{reason_index, Latencies};
use nowcast_spec::Delivery;
use nowcast_window::{Engine, Late};
use parking_lot::{Mutex, RwLock};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError as RdError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

mod commit;
mod deadline;
mod records;
mod snapshot;
mod watchdog;

use crate::restore::restore;
use crate::shared::Shared;
use crate::{client, KafkaError};

/// Records taken from the consumer per batch (one model call per batch).
const BATCH: usize = 512;
/// Timeout of transaction and commit calls.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Eviction of idle entities runs each time a partition has processed this many more records.
const EVICT_EVERY: u64 = 1 << 16;

/// What a member does with its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Decode, apply, score, produce outputs and the changelog.
    Process,
    /// Re-key a source that is not keyed by the entity into its repartition topic.
    Repartition,
}

/// Epochs of produced records tracked at once (at-least-once commits in flight).
const EPOCHS: usize = 64;

/// Counts records in flight per epoch and failed deliveries (at-least-once must not commit
/// past a lost record).
pub(crate) struct ProdCtx {
    failures: AtomicU64,
    last: Mutex<Option<String>>,
    outstanding: [std::sync::atomic::AtomicI64; EPOCHS],
}

impl Default for ProdCtx {
    fn default() -> Self {
        ProdCtx {
            failures: AtomicU64::new(0),
            last: Mutex::new(None),
            outstanding: std::array::from_fn(|_| std::sync::atomic::AtomicI64::new(0)),
        }
    }
}

impl ClientContext for ProdCtx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        client::forward_log("producer", level, fac, log_message);
    }
}

impl ProducerContext for ProdCtx {
    type DeliveryOpaque = usize;
    fn delivery(&self, result: &DeliveryResult<'_>, epoch: usize) {
        if let Err((e, _)) = result {
            self.failures.fetch_add(1, Ordering::Relaxed);
            *self.last.lock() = Some(e.to_string());
        }
        self.outstanding[epoch % EPOCHS].fetch_sub(1, Ordering::AcqRel);
    }
}

/// An owned partition.
struct Part {
    engine: Arc<RwLock<Engine>>,
    /// Next source offset to process (None until the first record).
    next_offset: Option<i64>,
    /// Offset as of the last commit.
    committed: Option<i64>,
    processed: u64,
    stream_time: i64,
    /// When the partition's state was last written to the local store.
    snapshot_at: Instant,
}

/// What a prediction needs besides its row, kept until the batch is scored: its event id
/// is `texts[start..mid]` and its entity `texts[mid..end]` of the member's text buffer.
struct Meta {
    start: usize,
    mid: usize,
    end: usize,
    event_time: i64,
    ingest_time: i64,
}

struct MemberState {
    shared: Arc<Shared>,
    name: String,
    stage: Stage,
    /// The broker's id of the feature-store topic (empty when re-keying).
    topic_id: String,
    /// The topic this member consumes.
    topic: String,
    /// Shared with calls run against a deadline (see [`deadline`]).
    producer: Arc<ThreadedProducer<ProdCtx>>,
    reader: BaseConsumer,
    parts: BTreeMap<i32, Part>,
    /// A transaction is open (exactly-once) / records were produced since the last commit.
    pending: bool,
    /// After an error: revocations must not try to commit.
    failed: bool,
    /// Epoch of the records being produced now (at-least-once).
    epoch: usize,
    /// Offsets to commit once their epoch (and every earlier one) is acknowledged.
    awaiting: std::collections::VecDeque<(usize, TopicPartitionList)>,
    last_commit: Instant,
    decoded: Decoded,
    features: Vec<FeatureValue>,
    rows: Vec<f32>,
    scores: Vec<f64>,
    metas: Vec<Meta>,
    /// Event ids and entities of the batch's predictions (see [`Meta`]).
    texts: String,
    line: Vec<u8>,
    lat: Latencies,
    /// Local-store snapshots in progress and being written.
    snapshots: snapshot::Snapshots,
}

/// The consumer's context: the member's state, reachable from the rebalance callbacks.
pub(crate) struct MemberCtx {
    state: Mutex<MemberState>,
    error: Mutex<Option<KafkaError>>,
    /// When a failed offset commit was last reported (at most one report per 10 s).
    commit_warned: Mutex<Option<Instant>>,
}

impl ClientContext for MemberCtx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        client::forward_log("consumer", level, fac, log_message);
    }
}

impl ConsumerContext for MemberCtx {
    /// Results of the client's periodic commits of stored offsets (at-least-once). A refused
    /// commit needs no action: the next one sends the same offsets again.
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        let problem = match result {
            Err(RdError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => None,
            Err(e) => Some(e.to_string()),
            Ok(()) => offsets.elements().iter().find_map(|el| {
                el.error()
                    .err()
                    .map(|e| format!("partition {}: {e}", el.partition()))
            }),
        };
        let Some(problem) = problem else { return };
        metrics::counter!("nowcast_kafka_commit_failures_total").increment(1);
        let mut warned = self.commit_warned.lock();
        if warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            *warned = Some(Instant::now());
            eprintln!("nowcast: committing offsets failed ({problem}); the next commit retries");
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut st = self.state.lock();
            if st.stage == Stage::Process && tpl.count() > 0 {
                metrics::counter!("nowcast_kafka_rebalances_total", "kind" => "revoke")
                    .increment(1);
            }
            if !st.failed && st.shared.fault_fail_revoke.swap(false, Ordering::AcqRel) {
                eprintln!(
                    "nowcast: fault injection: failing the commit of a revocation (NOWCAST_FAULT_FAIL_REVOKE)"
                );
                st.failed = true;
                self.error.lock().get_or_insert(KafkaError::Unreachable(
                    "injected: the revocation's commit failed".into(),
                ));
            }
            if !st.failed {
                if let Err(e) = st.commit(consumer, true) {
                    st.failed = true;
                    self.error.lock().get_or_insert(e);
                }
            }
            for el in tpl.elements() {
                st.drop_part(el.partition());
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let mut st = self.state.lock();
                if st.stage == Stage::Process && tpl.count() > 0 {
                    metrics::counter!("nowcast_kafka_rebalances_total", "kind" => "assign")
                        .increment(1);
                }
                for el in tpl.elements() {
                    if let Err(e) = st.add_part(el.partition()) {
                        st.failed = true;
                        self.error.lock().get_or_insert(e);
                    }
                }
            }
            Rebalance::Error(e) => {
                self.error
                    .lock()
                    .get_or_insert(KafkaError::client("rebalance", e.clone()));
            }
            Rebalance::Revoke(_) => {}
        }
    }
}

fn is_fatal(e: &KafkaError) -> bool {
    match e {
        KafkaError::Client {
            source: RdError::Transaction(t),
            ..
        } => t.is_fatal(),
        // A configuration librdkafka refuses does not get better by rebuilding the member.
        KafkaError::Client {
            source: RdError::ClientConfig(..) | RdError::ClientCreation(_),
            ..
        } => true,
        KafkaError::State(_)
        | KafkaError::Model(_)
        | KafkaError::NotKafka { .. }
        | KafkaError::Property { .. } => true,
        _ => false,
    }
}

/// Runs member `index` until the instance stops; rebuilds it after recoverable errors.
pub(crate) fn run(shared: Arc<Shared>, index: usize, stage: Stage) -> Result<(), KafkaError> {
    let mut backoff = Duration::from_millis(200);
    loop {
        let started = Instant::now();
        match run_once(&shared, index, stage) {
            Ok(()) => return Ok(()),
            Err(e) if is_fatal(&e) => return Err(e),
            Err(e) => {
                if shared.stop.load(Ordering::Acquire) {
                    return Err(e);
                }
                shared.restarts.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("nowcast_kafka_member_restarts_total").increment(1);
                if started.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_millis(200);
                }
                eprintln!(
                    "nowcast: processing thread {index}: {e}; rebuilding its producer and consumer in {} ms",
                    backoff.as_millis()
                );
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

fn run_once(shared: &Arc<Shared>, index: usize, stage: Stage) -> Result<(), KafkaError> {
    let k = &shared.kafka;
    let (name, group, topic) = match stage {
        Stage::Process => (
            format!("{}-{}-{index}", k.group, shared.instance),
            k.group.clone(),
            shared.input_topic.clone(),
        ),
        Stage::Repartition => (
            format!("{}-{}-r{index}", k.group, shared.instance),
            format!("{}-repartition", k.group),
            shared.spec.sources[0].topic.clone(),
        ),
    };
    let member_id = name.clone();
    let producer: ThreadedProducer<ProdCtx> = client::producer(k, &shared.bootstrap, Some(&name))
        .create_with_context(ProdCtx::default())
        .map_err(|e| KafkaError::client("creating the producer", e))?;
    if k.delivery == Delivery::ExactlyOnce {
        producer
            .init_transactions(CALL_TIMEOUT)
            .map_err(|e| KafkaError::client(format!("initialising transactions as `{name}`"), e))?;
    }
    let reader: BaseConsumer = client::reader(k, &shared.bootstrap)
        .set("enable.partition.eof", "true")
        .create()
        .map_err(|e| KafkaError::client("creating the restore reader", e))?;
    // The feature store's id, recorded in and checked against local snapshots (a snapshot of
    // a deleted and re-created topic must not be restored, see `topic_id`).
    // Unknown (the topic missing, the broker away): local snapshots are neither read nor
    // written by this incarnation, and the member goes on (a missing topic is reported by
    // /readyz; failing here would only rebuild the member in a loop).
    let topic_id = match stage {
        Stage::Process => {
            crate::topic_id::topic_id(reader.client(), &k.features_topic, CALL_TIMEOUT)
                .unwrap_or_else(|e| {
                    eprintln!(
                        "nowcast: {name}: the feature store's topic id is unknown ({e}): local \
                         snapshots are not used until the member restarts"
                    );
                    String::new()
                })
        }
        Stage::Repartition => String::new(),
    };
    let ctx = MemberCtx {
        state: Mutex::new(MemberState {
            shared: shared.clone(),
            name,
            stage,
            topic: topic.clone(),
            topic_id,
            producer: Arc::new(producer),
            reader,
            parts: BTreeMap::new(),
            pending: false,
            failed: false,
            epoch: 0,
            awaiting: std::collections::VecDeque::new(),
            last_commit: Instant::now(),
            snapshots: snapshot::Snapshots::default(),
            decoded: Decoded::default(),
            features: Vec::new(),
            rows: Vec::new(),
            scores: Vec::new(),
            metas: Vec::new(),
            texts: String::new(),
            line: Vec::with_capacity(1024),
            lat: Latencies::default(),
        }),
        error: Mutex::new(None),
        commit_warned: Mutex::new(None),
    };
    // Join the group together with the instance's other members (see `StartGate`).
    shared
        .start_gate
        .arrive(Duration::from_secs(10), &shared.stop);
    // Static membership: a restarted instance takes its partitions back at once instead of
    // waiting for the killed incarnation's session to time out.
    let consumer: BaseConsumer<MemberCtx> = client::consumer(k, &shared.bootstrap)
        .set("group.instance.id", &member_id)
        .set("group.id", &group)
        .create_with_context(ctx)
        .map_err(|e| KafkaError::client("creating the consumer", e))?;
    consumer
        .subscribe(&[&topic])
        .map_err(|e| KafkaError::client(format!("subscribing to {topic}"), e))?;
    let result = poll_loop(shared, &group, &consumer);
    if result.is_err() {
        consumer.context().state.lock().failed = true;
        leave_group(&consumer);
    }
    {
        let mut st = consumer.context().state.lock();
        let drop: Vec<i32> = st.parts.keys().copied().collect();
        if result.is_err() {
            for p in drop {
                st.drop_part(p);
            }
        }
    }
    drop(consumer);
    result
}

/// Leaves the group before a member is rebuilt after an error. The rebuilt member has the
/// same `group.instance.id`, and a static member that just disappears keeps its place: its
/// next incarnation gets the old assignment back without a rebalance. If it died in the middle
/// of a cooperative rebalance, the partitions it was giving up were never handed to anyone
/// (seen in the exactly-once benchmark: a member's transaction failed with ILLEGAL_GENERATION
/// as the process's second member joined, and half the partitions had no owner until the next
/// rebalance). Unsubscribing, unlike closing, makes librdkafka send LeaveGroup even for a
/// static member, so the group rebalances in full. The revocation this causes commits nothing
/// (the member has failed); a broker that cannot be reached only costs the wait below.
fn leave_group(consumer: &BaseConsumer<MemberCtx>) {
    consumer.unsubscribe();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        // Serves the revocation callback; records still arriving are dropped unprocessed.
        let _ = consumer.poll(Duration::from_millis(50));
        if consumer.assignment().map_or(true, |a| a.count() == 0) {
            break;
        }
    }
    // Gives the LeaveGroup request, sent once the assignment is gone, time to leave.
    let _ = consumer.poll(Duration::from_millis(100));
}

fn poll_loop(
    shared: &Shared,
    group: &str,
    consumer: &BaseConsumer<MemberCtx>,
) -> Result<(), KafkaError> {
    let interval = Duration::from_millis(shared.kafka.commit_interval as u64);
    let mut batch: Vec<BorrowedMessage<'_>> = Vec::with_capacity(BATCH);
    let mut last_merge = Instant::now();
    let mut watchdog = watchdog::Watchdog::default();
    let mut last_positions = Instant::now();
    let mut errors = crate::monitor::Throttle::new(Duration::from_secs(10));
    let process = consumer.context().state.lock().stage == Stage::Process;
    loop {
        if let Some(e) = consumer.context().error.lock().take() {
            return Err(e);
        }
        if shared.stop.load(Ordering::Acquire) {
            let mut st = consumer.context().state.lock();
            st.commit(consumer, true)?;
            // The commit is done: a snapshot that cannot be written must not fail the stop
            // (see `snapshot_failed`). A partition without a fresh snapshot keeps its older
            // one, which is consistent with its offset, or restores from the changelog.
            if let Err(e) = st.snapshot_due(true) {
                st.snapshot_failed(&e);
            }
            shared.stats.merge(&st.lat);
            return Ok(());
        }
        batch.clear();
        // While a snapshot is being written, do not sleep in poll: its slices run between
        // batches.
        let slicing = consumer.context().state.lock().snapshots.slicing();
        let mut wait = Duration::from_millis(if slicing { 0 } else { 20 });
        while batch.len() < BATCH {
            match consumer.poll(wait) {
                None => break,
                Some(Ok(m)) => batch.push(m),
                // A fatal error ends the consumer's part in the group for good: it never
                // rejoins, and its member sat subscribed with no partitions while the broker
                // listed no member at all. Seen after a broker freeze: a request of the
                // member's previous incarnation, held in the frozen broker's socket, reached
                // the group after the new one had joined with the same `group.instance.id`
                // and fenced it (FENCED_INSTANCE_ID). A new consumer takes its place back.
                Some(Err(e @ RdError::MessageConsumptionFatal(_))) => {
                    return Err(KafkaError::client(
                        "the consumer failed for good (a fatal error; a consumer with the same \
                         group.instance.id fences this one: a previous incarnation's late \
                         request, or a second process with this instance id)",
                        e,
                    ));
                }
                Some(Err(e)) => {
                    // Every poll reports a broker that cannot be reached: once per 10 s.
                    if let Some(line) = errors.line(&format!("nowcast: consumer: {e}")) {
                        eprintln!("{line}");
                    }
                    break;
                }
            }
            wait = Duration::ZERO;
        }
        if let Some(e) = consumer.context().error.lock().take() {
            return Err(e);
        }
        let unassigned = consumer.context().state.lock().parts.is_empty();
        watchdog.check(group, consumer, unassigned)?;
        let mut st = consumer.context().state.lock();
        if !batch.is_empty() {
            st.process(&batch)?;
        }
        if st.last_commit.elapsed() >= interval {
            st.commit(consumer, false)?;
        } else if !st.awaiting.is_empty() {
            st.commit_acked(consumer, false)?;
        }
        if let Err(e) = st.snapshot_step().and_then(|()| st.snapshot_when_idle()) {
            st.snapshot_failed(&e);
        }
        // Positions for the monitor's lag (a local call, no request to the broker).
        if process && last_positions.elapsed() >= crate::monitor::TICK {
            shared.positions.publish(consumer, &shared.input_topic);
            last_positions = Instant::now();
        }
        if last_merge.elapsed() >= Duration::from_millis(50) {
            shared.stats.merge(&st.lat);
            st.lat.reset();
            last_merge = Instant::now();
        }
    }
}

impl MemberState {
    fn add_part(&mut self, partition: i32) -> Result<(), KafkaError> {
        if self.stage == Stage::Repartition {
            let engine = Engine::new(self.shared.spec.engine.clone())
                .map_err(|e| KafkaError::State(e.to_string()))?;
            self.parts.insert(
                partition,
                Part {
                    engine: Arc::new(RwLock::new(engine)),
                    next_offset: None,
                    committed: None,
                    processed: 0,
                    stream_time: i64::MIN,
                    snapshot_at: Instant::now(),
                },
            );
            eprintln!(
                "nowcast: {}: partition {partition} of {} assigned (re-keying by entity)",
                self.name, self.topic
            );
            return Ok(());
        }
        let topic = &self.shared.kafka.features_topic;
        let (mut engine, info) = restore(
            &self.reader,
            topic,
            &self.topic_id,
            partition,
            self.shared.spec.engine.clone(),
            self.shared.store_dir.as_deref(),
        )?;
        engine.track_changes(true);
        if let Some(reason) = &info.snapshot_refused {
            eprintln!(
                "nowcast: {}: partition {partition}: local snapshot not used ({reason}); restoring from the whole changelog",
                self.name
            );
        }
        let from = match info.snapshot_offset {
            Some(off) => format!("the local snapshot at changelog offset {off} and "),
            None => String::new(),
        };
        eprintln!(
            "nowcast: {}: partition {partition} assigned; restored {} entities from {from}{} changelog records in {} ms",
            self.name,
            info.entities,
            info.records,
            info.elapsed.as_millis()
        );
        metrics::histogram!("nowcast_kafka_restore_seconds").record(info.elapsed.as_secs_f64());
        let engine = Arc::new(RwLock::new(engine));
        // Lag counts from the group's committed offset until this member reads a record.
        self.shared
            .positions
            .set(partition, crate::monitor::UNKNOWN);
        let owned = {
            let mut owned = self.shared.owned.write();
            owned.insert(partition, engine.clone());
            owned.len()
        };
        self.shared.ever_owned.store(true, Ordering::Release);
        self.shared
            .empty_since_ms
            .store(i64::MIN, Ordering::Release);
        metrics::gauge!("nowcast_kafka_partitions_owned").set(owned as f64);
        self.parts.insert(
            partition,
            Part {
                engine,
                next_offset: None,
                committed: None,
                processed: 0,
                stream_time: i64::MIN,
                snapshot_at: Instant::now(),
            },
        );
        Ok(())
    }

    fn drop_part(&mut self, partition: i32) {
        self.snapshot_cancel(partition);
        if self.parts.remove(&partition).is_some() {
            if self.stage == Stage::Process {
                let mut owned = self.shared.owned.write();
                owned.remove(&partition);
                if owned.is_empty() {
                    self.shared
                        .empty_since_ms
                        .store(nowcast_pipeline::now_ms(), Ordering::Release);
                }
                metrics::gauge!("nowcast_kafka_partitions_owned").set(owned.len() as f64);
            }
            eprintln!("nowcast: {}: partition {partition} revoked", self.name);
        }
    }

    fn ensure_txn(&mut self) -> Result<(), KafkaError> {
        if !self.pending && self.shared.kafka.delivery == Delivery::ExactlyOnce {
            self.producer
                .begin_transaction()
                .map_err(|e| KafkaError::client("beginning a transaction", e))?;
        }
        self.pending = true;
        Ok(())
    }

    fn send(
        &self,
        topic: &str,
        partition: i32,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: Option<OwnedHeaders>,
    ) -> Result<(), KafkaError> {
        self.send_at(topic, partition, key, value, headers, None)
    }

    fn send_at(
        &self,
        topic: &str,
        partition: i32,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: Option<OwnedHeaders>,
        timestamp: Option<i64>,
    ) -> Result<(), KafkaError> {
        let mut rec: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(topic, self.epoch).partition(partition);
        if let Some(t) = timestamp {
            rec = rec.timestamp(t);
        }
        if let Some(k) = key {
            rec = rec.key(k);
        }
        if let Some(v) = value {
            rec = rec.payload(v);
        }
        if let Some(h) = headers {
            rec = rec.headers(h);
        }
        let outstanding = &self.producer.context().outstanding[self.epoch % EPOCHS];
        outstanding.fetch_add(1, Ordering::AcqRel);
        // A full queue empties as the broker acknowledges; one that stays full (a broker that
        // stays away) fails the member after CALL_TIMEOUT instead of holding it here.
        let mut full_since: Option<Instant> = None;
        loop {
            match self.producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((RdError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    let since = *full_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= CALL_TIMEOUT {
                        outstanding.fetch_sub(1, Ordering::AcqRel);
                        return Err(KafkaError::Unreachable(format!(
                            "producing to {topic}: the producer's queue stayed full for {} s ({} records not acknowledged)",
                            CALL_TIMEOUT.as_secs(),
                            self.producer.in_flight_count()
                        )));
                    }
                    rec = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => {
                    outstanding.fetch_sub(1, Ordering::AcqRel);
                    return Err(KafkaError::client(format!("producing to {topic}"), e));
                }
            }
        }
    }

    /// Waits until every produced record is acknowledged. (`Producer::flush` on a threaded
    /// producer sleeps in 100 ms polls while the producer's own thread takes the events.)
    fn wait_delivered(&self) -> Result<(), KafkaError> {
        let deadline = Instant::now() + CALL_TIMEOUT;
        while self.producer.in_flight_count() > 0 {
            if Instant::now() > deadline {
                return Err(KafkaError::Unreachable(format!(
                    "{} records not acknowledged after {} s",
                    self.producer.in_flight_count(),
                    CALL_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    }
}
