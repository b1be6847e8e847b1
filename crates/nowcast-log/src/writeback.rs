//! Background writeback of appended files.
//!
//! The kernel writes dirty pages back when they are 30 s old (`vm.dirty_expire_centisecs`),
//! so a file appended at tens of MB/s gets its first half-minute written back in one burst.
//! On the machines measured, the appenders (the log writer, the output writers) then stall for
//! 100–600 ms while their last pages are under writeback, and every event in flight shows it.
//! A tracked file instead has its written range handed to the kernel for writeback
//! (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which starts I/O and does not wait for it) every
//! [`PERIOD`] by one background thread, in small steps. Durability is unchanged: only a
//! flush (fsync) promises anything. Elsewhere than Linux tracking does nothing.

use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use parking_lot::Mutex;

/// How often written ranges are handed to the kernel.
pub const PERIOD: Duration = Duration::from_millis(100);

/// Smallest range worth a call.
const MIN_STEP: u64 = 256 * 1024;

struct Entry {
    file: Weak<File>,
    written: Weak<AtomicU64>,
    /// Bytes before this were handed over already.
    done: u64,
}

fn registry() -> &'static Mutex<Vec<Entry>> {
    static REGISTRY: OnceLock<Mutex<Vec<Entry>>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        std::thread::Builder::new()
            .name("nowcast-writeback".into())
            .spawn(run)
            .expect("spawn the writeback thread");
        Mutex::new(Vec::new())
    })
}

/// Tracks `file`, whose appended length the caller keeps in `written`, from byte `from` on.
/// Tracking ends when either is dropped.
pub fn track(file: &Arc<File>, written: &Arc<AtomicU64>, from: u64) {
    if cfg!(target_os = "linux") {
        registry().lock().push(Entry {
            file: Arc::downgrade(file),
            written: Arc::downgrade(written),
            done: from & !4095,
        });
    }
}

/// Lowers the calling thread's CPU priority to nice +10, for threads doing background I/O
/// (writeback, checkpoint persistence) that must not take the cores from event processing
/// and serving on a busy machine. On Linux `setpriority(PRIO_PROCESS, 0, …)` applies to the
/// calling thread only. Failure is harmless (the thread keeps its priority); elsewhere than
/// Linux it does nothing.
pub fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its integer arguments.
    #[allow(unsafe_code)]
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

fn run() {
    lower_thread_priority();
    loop {
        std::thread::sleep(PERIOD);
        let mut work = Vec::new();
        registry().lock().retain_mut(|e| {
            let (Some(file), Some(written)) = (e.file.upgrade(), e.written.upgrade()) else {
                return false;
            };
            // Whole pages only: the last, partly written page is still being appended to.
            let end = written.load(Ordering::Acquire) & !4095;
            if end >= e.done + MIN_STEP {
                work.push((file, e.done, end - e.done));
                e.done = end;
            }
            true
        });
        for (file, offset, len) in work {
            start_writeback(&file, offset, len);
        }
    }
}

#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open descriptor (the Arc keeps it open); the call only reads its
    // arguments. A failure only means the kernel writes the pages back later by itself.
    #[allow(unsafe_code)]
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_: &File, _: u64, _: u64) {}
