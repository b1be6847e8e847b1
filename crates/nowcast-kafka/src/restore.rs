//! Restoring a partition's window engine from the feature-store topic (the state changelog):
//! every committed record of the partition, in order, last one per entity wins, tombstones
//! remove. Reads `read_committed`, so records of aborted or still-open transactions are never
//! restored.

use std::time::{Duration, Instant};

use nowcast_window::{Engine, EngineConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::KafkaError;

/// How long a restore may take before it is given up (an open transaction of a dead producer
/// holds the read_committed end back until `transaction.timeout.ms`).
pub const RESTORE_TIMEOUT: Duration = Duration::from_secs(120);

/// What a restore found.
#[derive(Debug, Default, Clone)]
pub struct Restored {
    /// The local snapshot's changelog offset, when the restore started from one.
    pub snapshot_offset: Option<i64>,
    /// Why a local snapshot was not used, if there was one.
    pub snapshot_refused: Option<String>,
    /// Changelog records read.
    pub records: u64,
    /// Entities in the restored engine.
    pub entities: usize,
    /// Time taken.
    pub elapsed: Duration,
}

/// Rebuilds partition `partition`'s engine from `topic` (whose broker id is `topic_id`, see
/// [`crate::topic_id`]) using `reader` (a consumer outside any group, `enable.partition.eof`
/// on): from the local snapshot in `local` plus the changelog after it when there is a usable
/// one (of this incarnation of the topic, inside its offsets), else from the whole changelog.
pub fn restore(
    reader: &BaseConsumer,
    topic: &str,
    topic_id: &str,
    partition: i32,
    config: EngineConfig,
    local: Option<&std::path::Path>,
) -> Result<(Engine, Restored), KafkaError> {
    let started = Instant::now();
    let (low, high) = reader
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .map_err(|e| KafkaError::client(format!("watermarks of {topic}/{partition}"), e))?;
    let mut info = Restored::default();
    let mut start = Offset::Beginning;
    let mut engine = None;
    if let (Some(_), true) = (local, topic_id.is_empty()) {
        info.snapshot_refused = Some("the feature store's topic id is unknown".into());
    } else if let Some(dir) = local {
        match crate::store::read(dir, topic, topic_id, partition, config.clone()) {
            Ok(Some((e, off))) if off >= low && off <= high => {
                engine = Some(e);
                start = Offset::Offset(off);
                info.snapshot_offset = Some(off);
            }
            Ok(Some((_, off))) => {
                info.snapshot_refused = Some(format!(
                    "its changelog offset {off} is outside the topic's {low}..{high} (topic recreated?)"
                ))
            }
            Ok(None) => {}
            Err(reason) => info.snapshot_refused = Some(reason),
        }
    }
    let mut engine = match engine {
        Some(e) => e,
        None => Engine::new(config).map_err(|e| KafkaError::State(e.to_string()))?,
    };
    let first = info.snapshot_offset.unwrap_or(low);
    if high <= first {
        info.entities = engine.entities();
        info.elapsed = started.elapsed();
        return Ok((engine, info));
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, start)
        .map_err(|e| KafkaError::client("restore assignment", e))?;
    reader
        .assign(&tpl)
        .map_err(|e| KafkaError::client(format!("assigning {topic}/{partition}"), e))?;
    let mut report_at = started + Duration::from_secs(10);
    let result = (|| {
        loop {
            if Instant::now() >= report_at {
                // A slow restore (an open transaction holding the read_committed end back)
                // would otherwise look like a hang.
                eprintln!(
                    "nowcast: restoring {topic}/{partition}: {} records read in {} s, the end ({high}) not reached yet",
                    info.records,
                    started.elapsed().as_secs()
                );
                report_at += Duration::from_secs(10);
            }
            if started.elapsed() > RESTORE_TIMEOUT {
                return Err(KafkaError::State(format!(
                    "restoring {topic}/{partition} did not reach the end in {}s (an open transaction?)",
                    RESTORE_TIMEOUT.as_secs()
                )));
            }
            match reader.poll(Duration::from_millis(100)) {
                None => continue,
                Some(Err(RdError::PartitionEOF(p))) if p == partition => return Ok(()),
                Some(Err(RdError::PartitionEOF(_))) => continue,
                Some(Err(e)) => {
                    // Transport errors are retried by librdkafka; report and go on.
                    eprintln!("nowcast: restoring {topic}/{partition}: {e}");
                }
                Some(Ok(m)) => {
                    info.records += 1;
                    let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                        return Err(KafkaError::State(format!(
                            "{topic}/{partition} offset {}: a record without a UTF-8 entity key (was the topic written by something other than nowcast?)",
                            m.offset()
                        )));
                    };
                    engine.restore_entity(key, m.payload()).map_err(|e| {
                        KafkaError::State(format!(
                            "{topic}/{partition} offset {}: entity `{key}`: {e}",
                            m.offset()
                        ))
                    })?;
                }
            }
        }
    })();
    let _ = reader.unassign();
    result?;
    info.entities = engine.entities();
    info.elapsed = started.elapsed();
    Ok((engine, info))
}
