//! Producing events to a pipeline's source topic (`nowcast generate --kafka`, tests): keyed by
//! entity, partitioned with Kafka's default (murmur2) partitioner, idempotent, `acks=all`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nowcast_core::partition_for_key;
use nowcast_spec::KafkaSpec;
use parking_lot::Mutex;
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use crate::{client, KafkaError};

/// Counts the records the broker did not take (a delivery report with an error), so a
/// flush that empties the queue is not mistaken for every record being written.
#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
    last: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            *self.last.lock() = Some(e.to_string());
        }
    }
}

/// A producer to one topic.
pub struct TopicProducer {
    producer: ThreadedProducer<Deliveries>,
    topic: String,
    partitions: u32,
}

impl TopicProducer {
    /// A producer to `topic`, which has `partitions` partitions.
    pub fn new(
        spec: &KafkaSpec,
        bootstrap: &str,
        topic: &str,
        partitions: u32,
    ) -> Result<TopicProducer, KafkaError> {
        let producer = client::producer(spec, bootstrap, None)
            .create_with_context(Deliveries::default())
            .map_err(|e| KafkaError::client("creating the producer", e))?;
        Ok(TopicProducer {
            producer,
            topic: topic.to_string(),
            partitions,
        })
    }

    /// Sends one record keyed by `key` to the key's partition (waits while the local queue
    /// is full).
    pub fn send(&self, key: &[u8], value: &[u8]) -> Result<(), KafkaError> {
        let p = partition_for_key(key, self.partitions) as i32;
        let mut rec = BaseRecord::<[u8], [u8]>::to(&self.topic)
            .partition(p)
            .key(key)
            .payload(value);
        loop {
            match self.producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((RdError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    rec = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => {
                    return Err(KafkaError::client(
                        format!("producing to {}", self.topic),
                        e,
                    ))
                }
            }
        }
    }

    /// Waits until every record is acknowledged; an error if any was not delivered.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer
            .flush(timeout)
            .map_err(|e| KafkaError::client(format!("flushing to {}", self.topic), e))?;
        let ctx = self.producer.context();
        match ctx.failed.load(Ordering::Relaxed) {
            0 => Ok(()),
            n => Err(KafkaError::Unreachable(format!(
                "{n} records were not delivered to {} (last error: {})",
                self.topic,
                ctx.last.lock().clone().unwrap_or_default()
            ))),
        }
    }
}
