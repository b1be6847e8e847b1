//! librdkafka calls that can outlive their own timeout, run against a deadline of ours.
//!
//! `rd_kafka_send_offsets_to_transaction` waits without a limit for the group coordinator
//! request it starts, and that request's timeout is never checked (librdkafka issue #5456,
//! still open in 2.14). If the coordinator goes away mid-call and librdkafka drops the broker
//! from its metadata, the request is never retried either (#5511): the call blocks for good,
//! even once the broker is back. Seen in the broker-restart test: a member stopped in its
//! commit with the broker up again, processing nothing, for minutes.
//!
//! So the call runs on a thread of its own that owns a reference to the producer, and the
//! member waits for its answer only until a deadline. Past it, the member fails with an
//! error and is rebuilt like after any transaction error: a new producer with the same
//! `transactional.id` fences the abandoned one and the coordinator aborts its transaction.
//! The abandoned thread (and the producer it holds) end whenever the call does.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use crate::KafkaError;

/// Runs `call` on a thread of its own with `target` (shared, so an abandoned call keeps it
/// alive) and returns its result, or an error naming `what` if it has not returned within
/// `deadline`.
pub(super) fn within<T, R, F>(
    target: &Arc<T>,
    deadline: Duration,
    what: &str,
    call: F,
) -> Result<R, KafkaError>
where
    T: Send + Sync + 'static,
    R: Send + 'static,
    F: FnOnce(&T) -> R + Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel(1);
    let target = Arc::clone(target);
    std::thread::Builder::new()
        .name("nowcast-txn-call".into())
        .spawn(move || {
            // The receiver is gone if the member stopped waiting: nothing to report to.
            let _ = tx.send(call(&target));
        })
        .map_err(|e| KafkaError::State(format!("starting a thread for {what}: {e}")))?;
    match rx.recv_timeout(deadline) {
        Ok(r) => Ok(r),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            metrics::counter!("nowcast_kafka_abandoned_calls_total").increment(1);
            Err(KafkaError::Unreachable(format!(
                "{what} did not return within {} s (librdkafka can wait for good on a group \
                 coordinator that went away); the producer is abandoned",
                deadline.as_secs()
            )))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(KafkaError::State(format!(
            "{what}: the calling thread panicked"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn a_call_that_returns_in_time_gives_its_result() {
        let target = Arc::new(41);
        let r = within(&target, Duration::from_secs(10), "adding", |t| t + 1).unwrap();
        assert_eq!(r, 42);
    }

    #[test]
    fn a_call_that_never_returns_is_abandoned_with_an_error_naming_it() {
        let release = Arc::new(AtomicBool::new(false));
        let err = within(&release, Duration::from_millis(50), "adding offsets", |r| {
            while !r.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(5));
            }
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("adding offsets did not return within"),
            "{err}"
        );
        // The abandoned thread still holds its reference until the call ends.
        assert_eq!(Arc::strong_count(&release), 2);
        release.store(true, Ordering::Release);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&release) > 1 {
            assert!(std::time::Instant::now() < deadline, "thread never ended");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
