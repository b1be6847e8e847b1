//! The embedded default transport of nowcast: a local, durable, partitioned, append-only log
//! with the shape of a Kafka topic, so the pipeline runs without a broker.
//!
//! Records (key, value, timestamp) are appended to numbered partitions; each partition gives
//! them consecutive offsets from 0. [`LogReader`]s read a partition from any stored offset and
//! follow its tail. [`OffsetStore`] keeps consumer-group offsets. [`Log::append_keyed`] picks
//! the partition like Kafka's default partitioner, so keys land on the same partition number
//! as they would in a Kafka topic with the same partition count.
//!
//! # Guarantees
//! - **Visibility**: a record is readable once its `append` returns.
//! - **Durability**: with [`Fsync::OnFlush`], everything appended before a successful
//!   [`Log::flush`] survives a machine crash; anything appended survives a process crash.
//! - **Integrity**: readers verify a CRC per record and never return a partial record.
//!
//! # Directory layout
//! ```text
//! <dir>/LOCK                      OS file lock held while the log is open (holder's pid)
//! <dir>/meta.json                  {"version": 1, "partitions": N}
//! <dir>/recovery.json              per partition: {"segment": base, "bytes": len} fsynced by the last flush()
//! <dir>/p00000/00000000000000000000.log   segment files, named by base offset (20 digits)
//! <dir>/p00000/00000000000000052311.log
//! <dir>/offsets/<group>.json       committed consumer offsets (OffsetStore)
//! ```
//! JSON files are replaced atomically (temporary file, fsync, rename, fsync of the directory).
//!
//! # Segment format (all integers little-endian)
//! | bytes | field |
//! |---|---|
//! | 4 | magic `NCLG` |
//! | 4 | format version (1) |
//! | 8 | base offset (must match the file name) |
//!
//! followed by frames, one per record, with no padding:
//!
//! | bytes | field |
//! |---|---|
//! | 4 | `len`: bytes after this field (16 + key + value) |
//! | 4 | CRC-32 (IEEE) of everything after this field |
//! | 8 | timestamp (`i64`) |
//! | 4 | key length |
//! | k | key |
//! | v | value (the rest of the frame) |
//!
//! Offsets are not stored: the n-th frame of the segment based at `b` has offset `b + n`,
//! and a segment ends where the next one's base begins. A 200-byte record takes 220 bytes.
//! A segment is rolled before an append would make it exceed
//! [`LogConfig::segment_bytes`] (a single larger record gets a segment of its own).
//!
//! # Finding an offset
//! Every segment has an in-memory sparse index of `(offset, byte position)` pairs, one per
//! 64 KiB of frames. A reader starting at offset `o` picks the segment with the largest base
//! `<= o` (binary search over the segment list), then the closest index entry at or below `o`,
//! and skips at most 64 KiB of frames. The active segment's index is built while appending
//! (and by the recovery scan on open); an older segment's index is built the first time a
//! reader starts inside it, by one sequential scan that also verifies it. No index files are
//! kept, so there is nothing to get out of step with the data.
//!
//! # Writing and publishing
//! Each append call encodes its frames into a reusable buffer and hands them to the OS in one
//! `write` (per 1 MiB, and at segment boundaries). After the write returns, the writer
//! publishes the segment's readable length and the partition's end offset with release
//! stores; readers load them with acquire and never read past them. Readers therefore never
//! see the writer's in-memory buffer or a partially written frame, and a record is visible as
//! soon as its append returns. When a segment is rolled, the new segment is added to the
//! segment list *before* the old one is marked sealed, so a reader that reaches the end of a
//! sealed segment always finds its successor.
//!
//! The price of "visible when `append` returns" is one `write` system call per append call,
//! so single-record appends cost a few microseconds; [`Log::append_batch`] amortises it
//! (`cargo bench -p nowcast-log --bench log` measures both). Letting readers see the
//! writer's buffer would make single appends cheaper but would need a second, in-memory read
//! path and careful lifetime handling; batching callers do not need it.
//!
//! Readers do not block: [`LogReader::poll`] returns 0 when caught up, and the caller decides
//! how long to wait before polling again.
//!
//! One process at a time has a log directory open: [`Log::open`] takes a [`DirLock`] on
//! `<dir>/LOCK` (an OS file lock, released by the kernel when the process exits or is killed)
//! and fails with [`LogError::Locked`], naming the holder's pid, while another holds it.
//!
//! # Recovery
//! Rolling a segment does not fsync it: the next `flush()` syncs every segment rolled since
//! the previous one, then the directory, then records its durable point. So on open, every
//! segment from the one holding the durable point on (only the last one with
//! [`Fsync::Never`], where nothing survives a machine crash anyway) is read frame by frame.
//! A segment that is not the newest but ends early or torn is cut there and the segments
//! after it are removed (their bytes count as recovered). The first frame that is
//! incomplete or fails its length or CRC check starts the torn tail: the file is truncated
//! there and the bytes are counted in [`Log::recovered_bytes`]. The exception is data below
//! the point recorded in `recovery.json` by the last completed `flush()`: that was fsynced,
//! so a bad frame there is corruption and `open` fails with [`LogError::Corrupt`] rather
//! than throw durable records away. Invalid frames anywhere else (older segments, or data
//! corrupted while the log is open) are reported by readers as [`LogError::Corrupt`] naming
//! the file and byte position.
#![deny(unsafe_code)] // two exceptions in `writeback.rs`: the writeback hint and the thread priority
#![deny(missing_docs)]

mod batch;
mod config;
mod error;
mod frame;
mod frames;
mod fsutil;
mod lock;
mod log;
mod offsets;
mod partition;
mod reader;
mod recovery;
mod segment;
pub mod writeback;
mod writer;

pub use batch::{Iter, RecordBatch, RecordRef};
pub use config::{Fsync, LogConfig, DEFAULT_SEGMENT_BYTES, MIN_SEGMENT_BYTES};
pub use error::{ErrorKind, LogError};
pub use frame::{FRAME_OVERHEAD, MAX_RECORD_BYTES};
pub use lock::{DirLock, LOCK_FILE};
pub use log::Log;
pub use offsets::OffsetStore;
pub use reader::LogReader;
pub use writeback::lower_thread_priority;
