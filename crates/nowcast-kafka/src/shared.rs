//! What every processing thread of an instance shares: the spec, decoder, model, counters, and
//! the engines of the partitions this instance owns (read by serving).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nowcast_model::ModelHandle;
use nowcast_pipeline::decode::Decoder;
use nowcast_pipeline::plan::InputPlan;
use nowcast_pipeline::stats::Stats;
use nowcast_spec::{KafkaSpec, PipelineSpec};
use nowcast_window::Engine;
use parking_lot::{Condvar, Mutex, RwLock};

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
    /// Fail the commit of the next revocation once (`NOWCAST_FAULT_FAIL_REVOKE`): tests.
    pub fault_fail_revoke: AtomicBool,
    /// Stall the next call adding offsets to a transaction past its deadline, once
    /// (`NOWCAST_FAULT_STALL_OFFSETS`): tests.
    pub fault_stall_offsets: AtomicBool,
    /// Records processed by this instance.
    pub processed: AtomicU64,
    /// Transactions (or at-least-once commits) completed.
    pub commits: AtomicU64,
    /// Processing threads restarted after an error.
    pub restarts: AtomicU64,
    /// The local state store's directory (None: disabled).
    pub store_dir: Option<std::path::PathBuf>,
    /// Holds the members' first subscription until all of them are ready to join.
    pub start_gate: StartGate,
    /// The spec file, for messages.
    pub spec_file: String,
    /// Positions of the processing members on `input_topic` (see [`crate::monitor`]).
    pub(crate) positions: crate::monitor::Positions,
    /// Epoch ms when a processing member last completed a commit interval (committed, or had
    /// nothing to commit); `i64::MIN` before the first.
    pub last_commit_ms: AtomicI64,
    /// Whether this instance has owned a partition since it started.
    pub ever_owned: AtomicBool,
    /// Epoch ms since when this instance owns no partition (`i64::MIN` while it owns some).
    pub empty_since_ms: AtomicI64,
    /// The monitor's last measurement (broker, topic, lag).
    pub observed: Mutex<crate::monitor::Observed>,
}

/// Makes the members (processing threads) of an instance subscribe together when it starts.
///
/// Each member first creates its producer (and, exactly-once, waits for
/// `init_transactions`, a few broker round trips); a member that subscribed as soon as its own
/// producer was ready joined the group alone, took every partition and handed half of them
/// over, state and all, when the next member joined a moment later. Members pass the gate once
/// every one of them has arrived (or after a time limit, so a member that cannot start does
/// not hold the others); a member rebuilt after an error passes at once.
pub struct StartGate {
    arrived: Mutex<usize>,
    all_in: Condvar,
    members: usize,
}

impl StartGate {
    /// A gate for `members` members.
    pub fn new(members: usize) -> StartGate {
        StartGate {
            arrived: Mutex::new(0),
            all_in: Condvar::new(),
            members,
        }
    }

    /// Counts the caller in and waits until every member has arrived, `limit` has passed or
    /// `stop` is set. Returns whether every member had arrived.
    pub fn arrive(&self, limit: Duration, stop: &AtomicBool) -> bool {
        let deadline = Instant::now() + limit;
        let mut arrived = self.arrived.lock();
        *arrived += 1;
        if *arrived >= self.members {
            self.all_in.notify_all();
            return true;
        }
        while *arrived < self.members {
            if Instant::now() >= deadline || stop.load(Ordering::Acquire) {
                return false;
            }
            let step = Instant::now() + Duration::from_millis(50);
            self.all_in.wait_until(&mut arrived, step.min(deadline));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_pass_the_start_gate_together() {
        let gate = Arc::new(StartGate::new(3));
        let stop = Arc::new(AtomicBool::new(false));
        let passed = Arc::new(AtomicU64::new(0));
        let spawn = |delay_ms: u64| {
            let (gate, stop, passed) = (gate.clone(), stop.clone(), passed.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(delay_ms));
                let all = gate.arrive(Duration::from_secs(30), &stop);
                passed.fetch_add(1, Ordering::SeqCst);
                all
            })
        };
        let early = [spawn(0), spawn(0)];
        std::thread::sleep(Duration::from_millis(100));
        // Two members arrived; neither may pass before the third.
        assert_eq!(passed.load(Ordering::SeqCst), 0);
        let last = spawn(0);
        for h in early.into_iter().chain([last]) {
            assert!(h.join().unwrap());
        }
        // A member rebuilt later passes at once.
        assert!(gate.arrive(Duration::from_secs(30), &stop));
    }

    #[test]
    fn a_missing_member_holds_the_gate_only_until_the_limit_or_stop() {
        let gate = StartGate::new(2);
        let stop = AtomicBool::new(false);
        assert!(!gate.arrive(Duration::from_millis(20), &stop));
        let gate = StartGate::new(2);
        stop.store(true, Ordering::Release);
        assert!(!gate.arrive(Duration::from_secs(30), &stop));
    }
}
