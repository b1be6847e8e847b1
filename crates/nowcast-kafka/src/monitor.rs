//! What an instance or a replica knows about itself beyond its records, measured once a
//! second on a thread of its own (never the processing or following thread, which only
//! publish their positions): whether the broker answers, whether the topic is still the one
//! it started on, consumer lag per partition, and the state gauges. It feeds `/metrics`,
//! `/healthz` and `/readyz`.
//!
//! Lag is the end of a partition as a `read_committed` reader sees it (the last stable
//! offset, so an open transaction is not lag) minus the consumer's position. Positions come
//! from librdkafka's `position()`, which steps over transaction markers, so a caught-up
//! consumer of a transactional topic shows 0, not 1.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::TopicPartitionList;

/// How long a metadata or watermark request of the monitor may take.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the monitor measures.
pub(crate) const TICK: Duration = Duration::from_secs(1);
/// An instance that owned partitions and has owned none for this long is not ready. A
/// rebalance that moves every partition usually takes a few seconds (one heartbeat, the
/// revocation's commit, the restore); an instance idle for longer has no work in the group.
pub const NOT_OWNING_GRACE: Duration = Duration::from_secs(10);
/// A position not known (yet): no record read since the partition was assigned.
pub(crate) const UNKNOWN: i64 = -1;

/// Positions per partition, written by the thread that consumes and read by the monitor.
pub(crate) struct Positions(Vec<AtomicI64>);

impl Positions {
    pub(crate) fn new(partitions: usize) -> Positions {
        Positions((0..partitions).map(|_| AtomicI64::new(UNKNOWN)).collect())
    }

    pub(crate) fn get(&self, partition: i32) -> i64 {
        self.0
            .get(partition as usize)
            .map_or(UNKNOWN, |a| a.load(Ordering::Relaxed))
    }

    pub(crate) fn set(&self, partition: i32, offset: i64) {
        if let Some(a) = self.0.get(partition as usize) {
            a.store(offset, Ordering::Relaxed);
        }
    }

    /// Copies `consumer`'s positions on `topic` (a local call: no request to the broker).
    pub(crate) fn publish<C: rdkafka::consumer::ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        topic: &str,
    ) {
        let Ok(tpl) = consumer.position() else { return };
        for el in tpl.elements() {
            if el.topic() != topic {
                continue;
            }
            if let Some(offset) = el.offset().to_raw().filter(|o| *o >= 0) {
                self.set(el.partition(), offset);
            }
        }
    }
}

/// What the last measurement found about the broker and the topic.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The error of the last metadata request, if it failed (`None`: the broker answered,
    /// or it has not been asked yet).
    pub broker_error: Option<String>,
    /// The topic is missing or not the one this process started on.
    pub topic_problem: Option<String>,
    /// Lag per partition measured (owned or followed ones), ascending partition order.
    pub lag: Vec<(i32, i64)>,
    /// When the lag was last measured.
    pub measured_at: Option<Instant>,
}

impl Observed {
    /// Total lag over the measured partitions; `None` before the first measurement.
    pub fn lag_total(&self) -> Option<i64> {
        self.measured_at
            .map(|_| self.lag.iter().map(|(_, l)| l).sum())
    }
}

/// The result of asking the broker about `topic`: `Ok(partitions)` or why not. A topic that
/// does not exist is `Ok(0)`.
pub(crate) fn probe_topic<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
) -> Result<usize, String> {
    let md = consumer
        .fetch_metadata(Some(topic), PROBE_TIMEOUT)
        .map_err(|e| e.to_string())?;
    Ok(md
        .topics()
        .first()
        .filter(|t| t.error().is_none())
        .map_or(0, |t| t.partitions().len()))
}

/// Why `topic` as the broker describes it (`found` partitions) is not the one started on
/// (`expected` partitions); `None` when it is.
pub(crate) fn topic_problem(topic: &str, found: usize, expected: usize) -> Option<String> {
    if found == 0 {
        Some(format!(
            "topic `{topic}` does not exist (deleted?): re-create the pipeline's topics with `nowcast topics apply --config FILE`, then restart this process"
        ))
    } else if found != expected {
        Some(format!(
            "topic `{topic}` has {found} partitions but had {expected} when this process started (re-created or altered): restart this process"
        ))
    } else {
        None
    }
}

/// The end (last stable offset) of each of `partitions` of `topic`, and its start; a
/// partition whose request failed is left out.
pub(crate) fn ends<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partitions: &[i32],
) -> Vec<(i32, i64, i64)> {
    partitions
        .iter()
        .filter_map(|&p| {
            consumer
                .fetch_watermarks(topic, p, PROBE_TIMEOUT)
                .ok()
                .map(|(low, high)| (p, low, high))
        })
        .collect()
}

/// Committed offsets of `group`'s `partitions` of `topic` (the monitor's consumer has that
/// `group.id`); partitions without one are left out.
pub(crate) fn committed<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partitions: &[i32],
) -> Vec<(i32, i64)> {
    if partitions.is_empty() {
        return Vec::new();
    }
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition(topic, p);
    }
    let Ok(done) = consumer.committed_offsets(tpl, PROBE_TIMEOUT) else {
        return Vec::new();
    };
    done.elements()
        .iter()
        .filter_map(|el| {
            el.offset()
                .to_raw()
                .filter(|o| *o >= 0)
                .map(|o| (el.partition(), o))
        })
        .collect()
}

/// Records from `position` to the end `high`; before anything was read (`UNKNOWN`), from
/// the start `low`.
pub(crate) fn lag(low: i64, high: i64, position: i64) -> i64 {
    let from = if position == UNKNOWN { low } else { position };
    (high - from).max(0)
}

/// Sleeps `d` in short steps; returns early (true) once `stop()` says so.
pub(crate) fn sleep_unless(d: Duration, stop: impl Fn() -> bool) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stop() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
    }
    stop()
}

/// Reports repeated errors at most once per interval, with how many were not reported: a
/// replica or member that cannot reach the broker gets an error from every poll.
pub(crate) struct Throttle {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    pub(crate) fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// The line to print for `message` now, or `None` to count it silently.
    pub(crate) fn line(&mut self, message: &str) -> Option<String> {
        if self.last.is_some_and(|t| t.elapsed() < self.every) {
            self.suppressed += 1;
            return None;
        }
        let line = match std::mem::take(&mut self.suppressed) {
            0 => message.to_string(),
            n => format!(
                "{message} (and {n} more errors in the last {} s)",
                self.last.map_or(0, |t| t.elapsed().as_secs())
            ),
        };
        self.last = Some(Instant::now());
        Some(line)
    }
}

/// The instance's monitor: runs until the instance stops.
pub(crate) fn watch_instance(
    shared: std::sync::Arc<crate::shared::Shared>,
    consumer: BaseConsumer,
) {
    let topic = shared.input_topic.clone();
    let label = |p: i32| -> [(&'static str, String); 2] {
        [("topic", topic.clone()), ("partition", p.to_string())]
    };
    // Partitions whose lag gauge this instance has set: set to 0 once they leave, so a sum
    // over instances counts each partition once.
    let mut reported = std::collections::BTreeSet::new();
    let mut tick = 0u64;
    let stop = || shared.stop.load(Ordering::Acquire);
    loop {
        let owned: Vec<i32> = {
            let mut v: Vec<i32> = shared.owned.read().keys().copied().collect();
            v.sort_unstable();
            v
        };
        let probe = probe_topic(&consumer, &topic);
        let mut lags = Vec::with_capacity(owned.len());
        if let Ok(found) = probe.as_ref() {
            if *found > 0 {
                let ends = ends(&consumer, &topic, &owned);
                let unknown: Vec<i32> = ends
                    .iter()
                    .map(|e| e.0)
                    .filter(|&p| shared.positions.get(p) == UNKNOWN)
                    .collect();
                let committed = committed(&consumer, &topic, &unknown);
                for (p, low, high) in ends {
                    let position = match shared.positions.get(p) {
                        UNKNOWN => committed.iter().find(|c| c.0 == p).map_or(UNKNOWN, |c| c.1),
                        at => at,
                    };
                    lags.push((p, lag(low, high, position)));
                }
            }
        }
        for (p, l) in &lags {
            metrics::gauge!("nowcast_kafka_consumer_lag_records", &label(*p)).set(*l as f64);
            reported.insert(*p);
        }
        let gone: Vec<i32> = reported
            .iter()
            .copied()
            .filter(|p| !owned.contains(p))
            .collect();
        for p in gone {
            metrics::gauge!("nowcast_kafka_consumer_lag_records", &label(p)).set(0.0);
            reported.remove(&p);
        }
        {
            let mut o = shared.observed.lock();
            match &probe {
                Ok(found) => {
                    o.broker_error = None;
                    o.topic_problem = topic_problem(&topic, *found, shared.partitions as usize);
                    o.lag = lags;
                    o.measured_at = Some(Instant::now());
                }
                Err(e) => o.broker_error = Some(e.clone()),
            }
        }
        metrics::gauge!("nowcast_kafka_broker_reachable").set(probe.is_ok() as u8 as f64);
        metrics::gauge!("nowcast_kafka_partitions_owned").set(owned.len() as f64);
        let last = shared.last_commit_ms.load(Ordering::Relaxed);
        let now = nowcast_pipeline::now_ms();
        if last != i64::MIN {
            metrics::gauge!("nowcast_kafka_last_commit_age_seconds")
                .set((now - last).max(0) as f64 / 1e3);
        }
        publish_state(&shared, tick, now);
        tick += 1;
        if sleep_unless(TICK, stop) {
            return;
        }
    }
}

/// The state gauges the embedded runtime also publishes (see
/// [`nowcast_pipeline::stats::publish_state`]) over the partitions this instance owns.
fn publish_state(shared: &crate::shared::Shared, tick: u64, now: i64) {
    let engines: Vec<_> = shared.owned.read().values().cloned().collect();
    nowcast_pipeline::stats::publish_state(engines.iter().map(|e| e.read()), tick);
    nowcast_pipeline::stats::publish_freshness(&shared.spec, &shared.stats, now);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_broker_errors_are_printed_once_per_interval_with_a_count() {
        let mut t = Throttle::new(Duration::from_millis(200));
        assert_eq!(t.line("down").as_deref(), Some("down"));
        for _ in 0..50 {
            assert_eq!(t.line("down"), None);
        }
        std::thread::sleep(Duration::from_millis(220));
        let line = t.line("down").unwrap();
        assert!(
            line.starts_with("down (and 50 more errors in the last "),
            "{line}"
        );
        assert_eq!(t.line("down"), None);
    }

    #[test]
    fn lag_counts_from_the_position_or_the_start_and_is_never_negative() {
        assert_eq!(lag(0, 100, 40), 60);
        assert_eq!(lag(10, 100, UNKNOWN), 90);
        // A position past the end (the end fetched just before it moved) is caught up.
        assert_eq!(lag(0, 100, 101), 0);
    }

    #[test]
    fn deleted_or_recreated_topics_are_named_with_the_fix() {
        assert!(topic_problem("t", 0, 4).unwrap().contains("does not exist"));
        assert!(topic_problem("t", 8, 4)
            .unwrap()
            .contains("has 8 partitions but had 4"));
        assert_eq!(topic_problem("t", 4, 4), None);
    }
}
