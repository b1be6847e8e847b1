//! Live statistics and Prometheus metrics.
//!
//! Workers count into atomics and record latencies into a local HDR histogram that they merge
//! into [`Stats`] once per batch, so the per-event cost is a few nanoseconds. The same numbers
//! are published through the `metrics` facade (rendered at `GET /metrics`):
//!
//! | metric | kind | meaning |
//! |---|---|---|
//! | `nowcast_events_in_total{source}` | counter | records read from the source (the embedded input log or the Kafka topic) |
//! | `nowcast_events_applied_total{source}` | counter | events applied to state |
//! | `nowcast_events_late_total{source}` | counter | events later than the allowed lateness |
//! | `nowcast_events_rejected_total{source,reason}` | counter | dead-lettered records |
//! | `nowcast_predictions_total{model}` | counter | predictions emitted |
//! | `nowcast_event_to_features_seconds` | histogram | event time → features updated |
//! | `nowcast_event_to_prediction_seconds` | histogram | event time → prediction emitted |
//! | `nowcast_ingest_to_prediction_seconds` | histogram | append to the log → prediction emitted (on Kafka: the record's timestamp, the broker's append time on a `LogAppendTime` topic) |
//! | `nowcast_freshness_seconds{source}` | gauge | now − newest applied event time |
//! | `nowcast_state_entities` / `nowcast_state_bytes` | gauge | entities held (every second), estimated heap bytes (once a minute: the estimate walks every entity); on Kafka over the owned partitions (a replica: every partition) |
//! | `nowcast_checkpoint_duration_seconds` | histogram | time to write one partition's checkpoint (encode + persist) |
//! | `nowcast_checkpoint_pause_seconds` | histogram | time a worker stops processing for one slice of a checkpoint (its start, a slice of entities, its end) |
//! | `nowcast_model_reloads_total` / `nowcast_model_reload_failures_total` | counter | model file changes |

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use hdrhistogram::Histogram;
use nowcast_core::RejectReason;
use parking_lot::Mutex;

/// Latency histograms in microseconds.
#[derive(Debug, Clone)]
pub struct Latencies {
    /// Event time → prediction emitted.
    pub event_to_prediction: Histogram<u64>,
    /// Append to the log → prediction emitted.
    pub ingest_to_prediction: Histogram<u64>,
    /// Freshness samples (now − newest applied event time of the partition after a batch).
    pub freshness: Histogram<u64>,
}

/// The largest latency the histograms hold, in µs (1 h). Longer ones are recorded as this
/// value, so a report shows "1 h" for them instead of leaving them out.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

impl Default for Latencies {
    fn default() -> Self {
        let h = || Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid bounds");
        Latencies {
            event_to_prediction: h(),
            ingest_to_prediction: h(),
            freshness: h(),
        }
    }
}

/// `us` clamped into the histograms' range (1 µs ..= [`MAX_LATENCY_US`]).
fn clamp_us(us: i64) -> u64 {
    (us.max(1) as u64).min(MAX_LATENCY_US)
}

impl Latencies {
    /// Records one prediction's latencies (µs, clamped to 1 µs ..= [`MAX_LATENCY_US`]).
    pub fn record(&mut self, event_to_prediction_us: i64, ingest_to_prediction_us: i64) {
        self.event_to_prediction
            .saturating_record(clamp_us(event_to_prediction_us));
        self.ingest_to_prediction
            .saturating_record(clamp_us(ingest_to_prediction_us));
    }

    /// Records one freshness sample: `now_ms − newest_event_ms` (clamped like
    /// [`Latencies::record`]; a newest event in the future counts as fresh).
    pub fn record_freshness(&mut self, now_ms: i64, newest_event_ms: i64) {
        let us = now_ms.saturating_sub(newest_event_ms).saturating_mul(1000);
        self.freshness.saturating_record(clamp_us(us));
    }

    /// Adds another set of histograms.
    pub fn add(&mut self, other: &Latencies) {
        let _ = self.event_to_prediction.add(&other.event_to_prediction);
        let _ = self.ingest_to_prediction.add(&other.ingest_to_prediction);
        let _ = self.freshness.add(&other.freshness);
    }

    /// Clears every histogram.
    pub fn reset(&mut self) {
        self.event_to_prediction.reset();
        self.ingest_to_prediction.reset();
        self.freshness.reset();
    }
}

/// Process-wide counters and histograms.
#[derive(Debug)]
pub struct Stats {
    /// Records read.
    pub events_in: AtomicU64,
    /// Events applied.
    pub applied: AtomicU64,
    /// Late events.
    pub late: AtomicU64,
    /// Rejected records by reason (index of [`RejectReason::ALL`]).
    pub rejected: [AtomicU64; RejectReason::ALL.len()],
    /// Predictions emitted.
    pub predictions: AtomicU64,
    /// Newest applied event time per source (ms).
    pub newest_event: Vec<AtomicI64>,
    /// Latencies since start.
    pub total: Mutex<Latencies>,
    /// Latencies since the last [`Stats::take_interval`].
    pub interval: Mutex<Latencies>,
    /// When the last worker finished processing (before its final checkpoint).
    pub done_at: Mutex<Option<std::time::Instant>>,
}

impl Stats {
    /// Stats for `sources` sources.
    pub fn new(sources: usize) -> Stats {
        Stats {
            events_in: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            late: AtomicU64::new(0),
            rejected: Default::default(),
            predictions: AtomicU64::new(0),
            newest_event: (0..sources).map(|_| AtomicI64::new(i64::MIN)).collect(),
            total: Mutex::new(Latencies::default()),
            interval: Mutex::new(Latencies::default()),
            done_at: Mutex::new(None),
        }
    }

    /// Total rejected records.
    pub fn rejected_total(&self) -> u64 {
        self.rejected
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .sum()
    }

    /// Merges a worker's batch histograms.
    pub fn merge(&self, batch: &Latencies) {
        self.total.lock().add(batch);
        self.interval.lock().add(batch);
    }

    /// Records that a worker has finished processing.
    pub fn mark_done(&self) {
        let now = std::time::Instant::now();
        let mut d = self.done_at.lock();
        *d = Some(d.map_or(now, |t| t.max(now)));
    }

    /// Returns and clears the interval histograms.
    pub fn take_interval(&self) -> Latencies {
        let mut guard = self.interval.lock();
        let out = guard.clone();
        guard.reset();
        out
    }
}

/// Index of a reason in [`RejectReason::ALL`].
pub fn reason_index(r: RejectReason) -> usize {
    RejectReason::ALL
        .iter()
        .position(|x| *x == r)
        .expect("listed")
}

/// Registers descriptions and histogram buckets for every metric.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "nowcast_events_in_total",
        "Records read from the source: the embedded input log, or the Kafka source (or repartition) topic."
    );
    describe_counter!(
        "nowcast_events_applied_total",
        "Events applied to feature state."
    );
    describe_counter!(
        "nowcast_events_late_total",
        "Events later than the source's allowed lateness (written to the late output)."
    );
    describe_counter!(
        "nowcast_events_rejected_total",
        "Records refused and dead-lettered, by reason."
    );
    describe_counter!("nowcast_predictions_total", "Predictions emitted.");
    describe_histogram!(
        "nowcast_event_to_features_seconds",
        Unit::Seconds,
        "Event time to features updated."
    );
    describe_histogram!(
        "nowcast_event_to_prediction_seconds",
        Unit::Seconds,
        "Event time to prediction emitted."
    );
    describe_histogram!(
        "nowcast_ingest_to_prediction_seconds",
        Unit::Seconds,
        "Append to the input log (on Kafka: the record's timestamp) to prediction emitted."
    );
    describe_gauge!(
        "nowcast_freshness_seconds",
        Unit::Seconds,
        "Now minus the newest applied event time, per source."
    );
    describe_gauge!("nowcast_state_entities", "Entities held in feature state.");
    describe_gauge!(
        "nowcast_state_bytes",
        Unit::Bytes,
        "Estimated heap bytes of feature state, refreshed once a minute (the estimate walks every entity)."
    );
    describe_histogram!(
        "nowcast_checkpoint_duration_seconds",
        Unit::Seconds,
        "Time to write one partition's checkpoint (encode in memory, then persist in the background)."
    );
    describe_histogram!(
        "nowcast_checkpoint_pause_seconds",
        Unit::Seconds,
        "Time a worker stops processing for one slice of a checkpoint: its start, a slice of entities encoded in memory, or its end."
    );
    describe_counter!(
        "nowcast_model_reloads_total",
        "Model versions loaded after a file change."
    );
    describe_counter!(
        "nowcast_model_reload_failures_total",
        "Model file changes that failed to load (old version kept)."
    );
}

/// Histogram bucket bounds (seconds) for latency metrics: 100 µs to 60 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// Publishes `nowcast_state_entities` (each call) and `nowcast_state_bytes` (every 60th
/// `tick`: the estimate walks every entity under the engine's read lock, which holds its
/// worker back) over the read guards `engines` yields, one at a time. Called once a second by
/// the embedded runtime, the Kafka monitor and the serving replica.
pub fn publish_state<G: std::ops::Deref<Target = nowcast_window::Engine>>(
    engines: impl Iterator<Item = G>,
    tick: u64,
) {
    let walk = tick.is_multiple_of(60);
    let (mut entities, mut bytes) = (0usize, 0usize);
    for e in engines {
        entities += e.entities();
        if walk {
            bytes += e.state_bytes();
        }
    }
    metrics::gauge!("nowcast_state_entities").set(entities as f64);
    if walk {
        metrics::gauge!("nowcast_state_bytes").set(bytes as f64);
    }
}

/// Publishes `nowcast_freshness_seconds{source}`: `now` minus each source's newest applied
/// event time (sources with none yet are left out).
pub fn publish_freshness(spec: &nowcast_spec::PipelineSpec, stats: &Stats, now: i64) {
    for (src, newest) in spec.sources.iter().zip(&stats.newest_event) {
        let t = newest.load(Ordering::Relaxed);
        if t != i64::MIN {
            metrics::gauge!("nowcast_freshness_seconds", "source" => src.name.clone())
                .set((now - t) as f64 / 1e3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_over_an_hour_are_reported_as_an_hour_not_dropped() {
        let mut lat = Latencies::default();
        let two_hours_us = 7_200_000_000;
        lat.record(two_hours_us, two_hours_us);
        lat.record_freshness(7_200_000, 0);
        for h in [
            &lat.event_to_prediction,
            &lat.ingest_to_prediction,
            &lat.freshness,
        ] {
            assert_eq!(h.len(), 1);
            let p99 = h.value_at_quantile(0.99);
            assert!(
                h.equivalent(p99, MAX_LATENCY_US),
                "P99 {p99} µs, want the 1 h cap"
            );
        }
    }

    #[test]
    fn freshness_of_an_event_from_the_future_or_of_no_event_is_recorded() {
        let mut lat = Latencies::default();
        lat.record_freshness(1_000, 5_000);
        lat.record_freshness(1_000, i64::MIN);
        assert_eq!(lat.freshness.len(), 2);
        assert_eq!(lat.freshness.min(), 1);
        assert!(lat
            .freshness
            .equivalent(lat.freshness.max(), MAX_LATENCY_US));
    }
}
