//! Background persistence of checkpoints, so a worker's partitions keep flowing while a
//! checkpoint is fsynced. The worker encodes the checkpoint in memory (the only step that needs
//! the engine) and hands it over; at most one checkpoint per worker is in flight — while one
//! is, the worker simply tries again at its next interval.
//!
//! The thread runs at a lower CPU priority (nice +10): persisting is background work, and on
//! a busy machine it must not take the cores from the workers and serving (on 2 cores a
//! checkpoint written at normal priority stretched serving's tail to tens of milliseconds).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use parking_lot::Mutex;

use crate::{checkpoint, PipelineError};

/// One encoded checkpoint per partition, with the output files to fsync first.
pub struct Job {
    /// `(partition, encoded checkpoint, output paths)` per partition.
    pub parts: Vec<(u32, Vec<u8>, Vec<PathBuf>)>,
    /// When encoding started (for the duration metric).
    pub started: Instant,
}

/// A worker's checkpoint thread.
pub struct Checkpointer {
    tx: Option<SyncSender<Job>>,
    busy: Arc<AtomicBool>,
    error: Arc<Mutex<Option<PipelineError>>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread for checkpoints under `state_dir`.
    pub fn start(state_dir: PathBuf, name: String) -> Checkpointer {
        let (tx, rx) = sync_channel::<Job>(1);
        let busy = Arc::new(AtomicBool::new(false));
        let error = Arc::new(Mutex::new(None));
        let (b, e) = (busy.clone(), error.clone());
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                nowcast_log::lower_thread_priority();
                for job in rx {
                    for (partition, bytes, outputs) in &job.parts {
                        if let Err(err) =
                            checkpoint::persist(&state_dir, *partition, bytes, outputs)
                        {
                            *e.lock() = Some(err);
                            break;
                        }
                    }
                    metrics::histogram!("nowcast_checkpoint_duration_seconds")
                        .record(job.started.elapsed().as_secs_f64());
                    b.store(false, Ordering::Release);
                }
            })
            .expect("spawn checkpoint thread");
        Checkpointer {
            tx: Some(tx),
            busy,
            error,
            thread: Some(thread),
        }
    }

    /// True while a checkpoint is being persisted.
    pub fn busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// Reports a failure of an earlier checkpoint.
    pub fn check(&self) -> Result<(), PipelineError> {
        match self.error.lock().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Hands a job over. Call only when not [`busy`](Self::busy).
    pub fn submit(&self, job: Job) {
        self.busy.store(true, Ordering::Release);
        self.tx
            .as_ref()
            .expect("running")
            .send(job)
            .expect("checkpoint thread alive");
    }

    /// Waits for the job in flight (if any) and stops the thread.
    pub fn finish(mut self) -> Result<(), PipelineError> {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.check()
    }
}
