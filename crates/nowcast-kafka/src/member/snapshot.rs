//! The member's local-store snapshots, off its processing path.
//!
//! Right after a commit, or at any moment nothing was produced since the last one (state =
//! committed changelog), a partition whose interval has passed *begins* a snapshot of that
//! moment, with the feature-store offset it reflects
//! (`Engine::begin_snapshot`); the poll loop then writes it `SNAPSHOT_SLICE` entities at a time
//! between batches, under the engine's read lock, and a background thread writes the
//! finished bytes to disk (temporary file, fsync, rename). One partition at a time per
//! member. Stopping writes every partition's snapshot whole, as before.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{MemberState, Stage};
use crate::KafkaError;
use nowcast_window::SNAPSHOT_SLICE;

/// Snapshots in progress for one member.
#[derive(Default)]
pub(super) struct Snapshots {
    /// The partition whose snapshot is being written into memory, and when it began.
    slicing: Option<(i32, Instant)>,
    /// The background write of the last finished one: `(started, thread)`.
    writing: Option<(Instant, JoinHandle<Result<u64, KafkaError>>)>,
}

impl Snapshots {
    /// True while a snapshot is being written into memory (the poll loop should not wait).
    pub(super) fn slicing(&self) -> bool {
        self.slicing.is_some()
    }
}

impl MemberState {
    /// When the state is the committed one (right after a commit, or nothing produced
    /// since): begins the snapshot of a partition whose interval has passed, unless one is in
    /// progress (with `all`, instead writes every partition's whole, now, and waits for the
    /// disk).
    pub(super) fn snapshot_due(&mut self, all: bool) -> Result<(), KafkaError> {
        let Some(dir) = self.shared.store_dir.clone() else {
            return Ok(());
        };
        // Re-keying keeps no state; without the topic's id a snapshot could not be checked
        // against the topic's incarnation when read.
        if self.stage == Stage::Repartition || self.topic_id.is_empty() {
            return Ok(());
        }
        let topic = self.shared.kafka.features_topic.clone();
        if all {
            if let Some((p, _)) = self.snapshots.slicing {
                self.snapshot_cancel(p);
            }
            self.snapshot_written(true)?;
            for (&p, part) in self.parts.iter_mut() {
                let started = Instant::now();
                let high = high_watermark(&self.reader, &topic, p)?;
                let bytes = crate::store::write(
                    &dir,
                    &topic,
                    &self.topic_id,
                    p,
                    high,
                    &part.engine.read(),
                )?;
                part.snapshot_at = Instant::now();
                record(started, bytes);
            }
            return Ok(());
        }
        self.snapshot_written(false)?;
        if self.snapshots.slicing.is_some() || self.snapshots.writing.is_some() {
            return Ok(());
        }
        let Some(p) = self.due_partition() else {
            return Ok(());
        };
        let started = Instant::now();
        let high = high_watermark(&self.reader, &topic, p)?;
        self.parts[&p]
            .engine
            .write()
            .begin_snapshot(crate::store::header(&topic, &self.topic_id, p, high))
            .map_err(|e| KafkaError::State(format!("snapshot of partition {p}: {e}")))?;
        self.snapshots.slicing = Some((p, started));
        Ok(())
    }

    /// Between commits: if nothing changed since the last one (nothing produced, no change
    /// waiting for the changelog), the state is the committed one, so a partition still due
    /// (one begins per commit) need not wait for more input.
    pub(super) fn snapshot_when_idle(&mut self) -> Result<(), KafkaError> {
        if self.pending || self.snapshots.slicing.is_some() || self.shared.store_dir.is_none() {
            return Ok(());
        }
        if self.due_partition().is_none() {
            return Ok(());
        }
        if self
            .parts
            .values()
            .any(|p| p.engine.read().pending_changes() > 0)
        {
            return Ok(());
        }
        self.snapshot_due(false)
    }

    /// A snapshot could not begin or be written (the feature store's watermark unreadable
    /// just after a broker restart, a full disk): never fatal, since the local store only
    /// shortens the next restore. Counted and reported, and every partition due now waits
    /// another snapshot interval (no retry, and no report, per commit).
    pub(super) fn snapshot_failed(&mut self, e: &KafkaError) {
        metrics::counter!("nowcast_kafka_snapshot_failures_total").increment(1);
        if let Some((p, _)) = self.snapshots.slicing {
            self.snapshot_cancel(p);
        }
        let interval = Duration::from_millis(self.shared.kafka.snapshot_interval as u64);
        eprintln!(
            "nowcast: {}: local snapshot not written ({e}); until one is, a restart reads more of the changelog (retried every {} s while running)",
            self.name,
            interval.as_secs()
        );
        for part in self.parts.values_mut() {
            if part.snapshot_at.elapsed() >= interval {
                part.snapshot_at = Instant::now();
            }
        }
    }

    /// The first partition whose snapshot interval has passed.
    fn due_partition(&self) -> Option<i32> {
        let interval = Duration::from_millis(self.shared.kafka.snapshot_interval as u64);
        self.parts
            .iter()
            .find(|(_, part)| part.snapshot_at.elapsed() >= interval)
            .map(|(&p, _)| p)
    }

    /// Writes one slice of the snapshot in progress; once it is whole, hands it to a
    /// background thread for the disk.
    pub(super) fn snapshot_step(&mut self) -> Result<(), KafkaError> {
        let Some((p, started)) = self.snapshots.slicing else {
            return Ok(());
        };
        let Some(part) = self.parts.get_mut(&p) else {
            // Revoked meanwhile (`drop_part` cancelled it).
            self.snapshots.slicing = None;
            return Ok(());
        };
        if !part.engine.read().snapshot_step(SNAPSHOT_SLICE) {
            return Ok(());
        }
        let bytes = part
            .engine
            .write()
            .finish_snapshot()
            .map_err(|e| KafkaError::State(format!("snapshot of partition {p}: {e}")))?
            .expect("a snapshot in progress");
        part.snapshot_at = Instant::now();
        self.snapshots.slicing = None;
        let dir = self
            .shared
            .store_dir
            .clone()
            .expect("snapshots only with a store");
        let thread = std::thread::Builder::new()
            .name(format!("nowcast-snap-{p}"))
            .spawn(move || {
                nowcast_log::lower_thread_priority();
                crate::store::write_bytes(&dir, p, &bytes)
            })
            .map_err(|e| KafkaError::State(format!("starting the snapshot writer: {e}")))?;
        self.snapshots.writing = Some((started, thread));
        Ok(())
    }

    /// Reaps the background write if it is done (or, with `wait`, waits for it); its error
    /// becomes the member's.
    fn snapshot_written(&mut self, wait: bool) -> Result<(), KafkaError> {
        let done = self
            .snapshots
            .writing
            .as_ref()
            .is_some_and(|(_, t)| wait || t.is_finished());
        if !done {
            return Ok(());
        }
        let (started, thread) = self.snapshots.writing.take().expect("checked above");
        let bytes = thread
            .join()
            .map_err(|_| KafkaError::State("the snapshot writer panicked".into()))??;
        record(started, bytes);
        Ok(())
    }

    /// A partition is revoked: its snapshot in progress, if any, is dropped.
    pub(super) fn snapshot_cancel(&mut self, partition: i32) {
        if self.snapshots.slicing.is_some_and(|(p, _)| p == partition) {
            self.snapshots.slicing = None;
            if let Some(part) = self.parts.get(&partition) {
                part.engine.write().cancel_snapshot();
            }
        }
    }
}

fn high_watermark(
    reader: &rdkafka::consumer::BaseConsumer,
    topic: &str,
    p: i32,
) -> Result<i64, KafkaError> {
    use rdkafka::consumer::Consumer;
    let (_, high) = reader
        .fetch_watermarks(topic, p, Duration::from_secs(10))
        .map_err(|e| KafkaError::client(format!("watermarks of {topic}/{p}"), e))?;
    Ok(high)
}

fn record(started: Instant, bytes: u64) {
    metrics::histogram!("nowcast_kafka_snapshot_seconds").record(started.elapsed().as_secs_f64());
    metrics::counter!("nowcast_kafka_snapshot_bytes_total").increment(bytes);
}
