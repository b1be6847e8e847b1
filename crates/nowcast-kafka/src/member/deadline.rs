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

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use crate::KafkaError;

/// Abandoned calls of this process that have not returned yet.
pub(super) static STUCK: AtomicUsize = AtomicUsize::new(0);

/// Past this many stuck calls the instance stops (fatal error) instead of rebuilding its
/// members again: each holds its thread and an abandoned producer with librdkafka's threads
/// until the call returns, which may be never. Two per processing thread, at least 4: one
/// broker restart can catch every member of the process mid-call.
pub(super) fn max_stuck(threads: usize) -> usize {
    (2 * threads).max(4)
}

const RUNNING: u8 = 0;
const RETURNED: u8 = 1;
const ABANDONED: u8 = 2;

/// Runs `call` on a thread of its own with `target` (shared, so an abandoned call keeps it
/// alive) and returns its result, or an error naming `what` if it has not returned within
/// `deadline`. An abandoned call counts in `stuck` until it returns; abandoning more than
/// `max_stuck` at once is a fatal error.
pub(super) fn within<T, R, F>(
    target: &Arc<T>,
    deadline: Duration,
    what: &str,
    stuck: &'static AtomicUsize,
    max_stuck: usize,
    call: F,
) -> Result<R, KafkaError>
where
    T: Send + Sync + 'static,
    R: Send + 'static,
    F: FnOnce(&T) -> R + Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel(1);
    let target = Arc::clone(target);
    let state = Arc::new(AtomicU8::new(RUNNING));
    let done = Done {
        state: Arc::clone(&state),
        stuck,
    };
    std::thread::Builder::new()
        .name("nowcast-txn-call".into())
        .spawn(move || {
            // Marks the call returned when dropped, after the send (or on a panic).
            let _done = done;
            // The receiver is gone if the member stopped waiting: nothing to report to.
            let _ = tx.send(call(&target));
        })
        .map_err(|e| KafkaError::State(format!("starting a thread for {what}: {e}")))?;
    let panicked = || KafkaError::State(format!("{what}: the calling thread panicked"));
    match rx.recv_timeout(deadline) {
        Ok(r) => Ok(r),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            // Counted before it is marked abandoned: the thread's decrement, which follows
            // that mark, can then never come first.
            let now = stuck.fetch_add(1, Ordering::AcqRel) + 1;
            if state
                .compare_exchange(RUNNING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                // It returned (or panicked) just now.
                stuck.fetch_sub(1, Ordering::AcqRel);
                return rx.recv().map_err(|_| panicked());
            }
            metrics::counter!("nowcast_kafka_abandoned_calls_total").increment(1);
            let secs = deadline.as_secs_f64();
            if now > max_stuck {
                return Err(KafkaError::State(format!(
                    "{what} did not return within {secs} s, and {now} such calls are stuck in \
                     librdkafka; stopping so that a restart of the process frees them"
                )));
            }
            Err(KafkaError::Unreachable(format!(
                "{what} did not return within {secs} s (librdkafka can wait for good on a group \
                 coordinator that went away); the producer is abandoned"
            )))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(panicked()),
    }
}

/// Owned by the calling thread: marks the call returned when the thread ends, and takes
/// an abandoned call off the stuck count.
struct Done {
    state: Arc<AtomicU8>,
    stuck: &'static AtomicUsize,
}

impl Drop for Done {
    fn drop(&mut self) {
        if self
            .state
            .compare_exchange(RUNNING, RETURNED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            self.stuck.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    fn wait_until(what: &str, ok: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !ok() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_call_that_returns_in_time_gives_its_result() {
        static NONE: AtomicUsize = AtomicUsize::new(0);
        let target = Arc::new(41);
        let r = within(&target, Duration::from_secs(10), "adding", &NONE, 1, |t| {
            t + 1
        });
        assert_eq!(r.unwrap(), 42);
        assert_eq!(NONE.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_call_that_never_returns_is_abandoned_with_an_error_naming_it() {
        static STUCK_HERE: AtomicUsize = AtomicUsize::new(0);
        let release = Arc::new(AtomicBool::new(false));
        let hang = |r: &AtomicBool| {
            while !r.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        let abandon = || {
            within(
                &release,
                Duration::from_millis(50),
                "adding offsets",
                &STUCK_HERE,
                1,
                hang,
            )
            .unwrap_err()
        };
        let err = abandon();
        assert!(
            matches!(&err, KafkaError::Unreachable(m) if m.contains("adding offsets did not return within")),
            "{err}"
        );
        // The abandoned thread still holds its reference and counts as stuck.
        assert_eq!(Arc::strong_count(&release), 2);
        assert_eq!(STUCK_HERE.load(Ordering::Acquire), 1);
        // A second stuck call is one too many: fatal.
        let err = abandon();
        assert!(
            matches!(&err, KafkaError::State(m) if m.contains("2 such calls are stuck")),
            "{err}"
        );
        release.store(true, Ordering::Release);
        wait_until("the abandoned threads never ended", || {
            Arc::strong_count(&release) == 1 && STUCK_HERE.load(Ordering::Acquire) == 0
        });
    }

    #[test]
    fn an_abandoned_call_that_panics_leaves_the_stuck_count() {
        static STUCK_PANIC: AtomicUsize = AtomicUsize::new(0);
        let release = Arc::new(AtomicBool::new(false));
        let err = within(
            &release,
            Duration::from_millis(50),
            "adding offsets",
            &STUCK_PANIC,
            4,
            |r: &AtomicBool| {
                while !r.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                panic!("the call failed late");
            },
        )
        .unwrap_err();
        assert!(matches!(err, KafkaError::Unreachable(_)), "{err}");
        assert_eq!(STUCK_PANIC.load(Ordering::Acquire), 1);
        release.store(true, Ordering::Release);
        wait_until("the panicked call is still counted", || {
            STUCK_PANIC.load(Ordering::Acquire) == 0
        });
    }

    #[test]
    fn a_call_that_panics_in_time_is_an_error() {
        static STUCK_NONE: AtomicUsize = AtomicUsize::new(0);
        let target = Arc::new(());
        let result: Result<(), KafkaError> = within(
            &target,
            Duration::from_secs(10),
            "adding",
            &STUCK_NONE,
            4,
            |_| panic!("at once"),
        );
        let err = result.unwrap_err();
        assert!(
            matches!(&err, KafkaError::State(m) if m.contains("panicked")),
            "{err}"
        );
        assert_eq!(STUCK_NONE.load(Ordering::Acquire), 0);
    }
}
