//! The nowcast window engine: pure, deterministic per-entity windowed features. Events and an
//! evaluation time go in, feature values come out. No clocks, no threads, no I/O except
//! snapshots through [`std::io::Read`]/[`std::io::Write`] — whole
//! ([`Engine::write_snapshot`]) or a slice at a time while events keep arriving
//! ([`Engine::begin_snapshot`]).
//!
//! # Contract
//!
//! **Lateness** is per (entity, source). The *watermark* is the newest applied event time of
//! that entity and source minus the source's `allowed_lateness`. An event with
//! `time < watermark` is refused with [`Late`] and changes nothing. Ties and out-of-order
//! events at or after the watermark are applied.
//!
//! **Arrival seq**: an engine-wide counter, incremented per applied event and persisted in
//! snapshots, breaks time ties for `last` / `last_n`.
//!
//! **Windows** at evaluation time `t` (integer ms):
//! - [`Hop::Exact`]: events with `t − W < e <= t`.
//! - [`Hop::Tiled`]`(H)`: events with `floor((t−W+1)/H)·H <= e <= t` (floor toward −∞): the
//!   exact window with its tail rounded down to the epoch-aligned hop grid, so the window is
//!   up to `H − 1` ms longer than `W`. Tile `k` holds `[kH, (k+1)H)`.
//!
//! Only events applied before the evaluation count: [`Engine::apply`] evaluates *before*
//! applying its event. [`Engine::apply_batch`] applies many events exactly as `apply` one at a
//! time would, prefetching the memory of the next few (much faster on large state).
//!
//! **Evaluation time clamp.** Events at or before a source's watermark may be folded into
//! tiles (see *Memory*); newer ones always stay raw so the window head stays exact. A feature
//! is therefore evaluated at `max(t, watermark of its source for this entity)`. For the source
//! of the event being applied this never changes `t` (the event passed the lateness check); it
//! matters only for other sources whose events run ahead by more than their allowed lateness,
//! and for [`Engine::evaluate`] at a time before the watermark.
//!
//! **Inputs.** Each feature reads one input *column* of its source ([`FeatureDef::column`]);
//! features reading the same input (whatever their aggregations) share a column, and
//! [`Engine::apply`] takes one [`Input`] per column ([`Engine::source_columns`]).
//! [`Input::Skip`] means the event does not feed the features of that column. `Count` and
//! `TimeSinceLast` count any non-`Skip` input; `DistinctCount` takes [`Input::Hash`] (a `Num`
//! is hashed from its bits, `-0.0` as `0.0`); every other aggregation takes [`Input::Num`] (a
//! `Hash` there is a caller bug: skipped, with a debug assertion). A `Num` that is NaN or
//! infinite is treated as `Skip` everywhere.
//!
//! **Aggregations** over the window's events (`n` = events with a usable input):
//! - `Count`: `n` as f64. `Sum`: the sum (0 if empty). `Mean`: sum/n, `Null` if empty.
//! - `Min`, `Max`: `Null` if empty. `StdDev`: population standard deviation
//!   `sqrt(Σ(v−mean)²/n)`, merged with Chan/Welford (count, mean, M2); `Null` if empty.
//! - `DistinctCount`: exact count of distinct hashes while at most 256; beyond, a HyperLogLog
//!   with p = 12 (4096 registers, standard error ≈ 1.6%).
//! - `Last`: value of the event with the greatest (time, seq); `Null` if empty.
//! - `LastN(N)`: up to N values by (time, seq) descending, newest first; empty list if none.
//! - `Quantile { q, α }`: the value at 0-based rank `floor(q·(n−1))` of the sorted values:
//!   exact while every event of the window is raw (see *Memory*), otherwise a DDSketch
//!   estimate within relative error α (negatives mirrored; `|x| < 1e-9` counts as 0, so the
//!   error there is below 1e-9 absolute); `Null` if empty. Which case applies depends only on
//!   the sequence of applied events, so the same events give the same value, snapshots
//!   included.
//! - `TimeSinceLast`: `(t − newest event time in the window)` in seconds; `Null` if empty.
//! - `DecayedSum { half_life }`: `Σ v·2^(−(t−e)/half_life)`; 0 if empty.
//!
//! **Memory.** Per (entity, source) the engine keeps the recent events **raw**, in ONE
//! contiguous buffer sorted by (time, seq) and shared by every window of the source: per
//! event its time, arrival seq, 2 tag bits per input column and one 8-byte value per column
//! (none for columns read only by `count` / `time_since_last`). Evaluation is one scan of
//! that buffer per window (plus the window's tiles, if any). Events older than every window of
//! the source at the watermark are dropped (in batches of 4). Only when an entity's buffer exceeds 64 raw events
//! (`RAW_CAP`) are its oldest events at or before the watermark folded into per-window tiles,
//! down to 48: features sharing (source, duration, hop) share one tile index, kept as the
//! non-empty tiles, sorted, in ONE contiguous `Vec<u64>` per (entity, window) (see the `tile`
//! module), at most `ceil(W/H)+1` of them. Raw events newer than the watermark are never
//! folded, so the raw buffer can exceed the cap while events are within the allowed lateness.
//! In tiles, `LastN` keeps at most N values per tile; distinct sets and quantile sketches are
//! sparse while small. [`Hop::Exact`] is a 1 ms hop: once folded, memory grows with the
//! events in the window. Entity keys of up to 22 bytes and the first source's state live in
//! the map entry (104 bytes), found through an index of 8-byte slots at most half full.
//!
//! For example, 3 windows (5 m, 1 h, 1 d) × 12 features over 2 input columns at ~20 events
//! per entity per day keep ~21 raw rows of 40 bytes and no tiles: ~1.4 KB of state per entity
//! ([`Engine::state_bytes`], the map included) and ~0.9 KB of snapshot, against 6.1 KB and
//! 4.3 KB when every window kept its own tiles (see `benches/engine.rs`).
//!
//! Event times are epoch milliseconds; arithmetic saturates, but times within a few windows of
//! `i64::MIN`/`i64::MAX` are not meaningful.
//!
//! # Example
//! ```
//! use nowcast_window::*;
//! let config = EngineConfig {
//!     sources: vec![SourceDef { name: "tx".into(), allowed_lateness: 5_000 }],
//!     features: vec![FeatureDef {
//!         name: "amount_sum_1h".into(),
//!         source: 0,
//!         column: 0,
//!         agg: Aggregation::Sum,
//!         window: Window { duration: 3_600_000, hop: Hop::Tiled(60_000) },
//!     }],
//! };
//! let mut engine = Engine::new(config).unwrap();
//! let mut features = Vec::new();
//! engine.apply("card-1", 0, 1_000, &[Input::Num(12.5)], Some(&mut features)).unwrap();
//! assert_eq!(features, vec![FeatureValue::Num(0.0)]); // the event itself is excluded
//! engine.apply("card-1", 0, 2_000, &[Input::Num(7.5)], Some(&mut features)).unwrap();
//! assert_eq!(features, vec![FeatureValue::Num(12.5)]);
//! assert!(engine.evaluate("card-1", 2_000, &mut features));
//! assert_eq!(features, vec![FeatureValue::Num(20.0)]);
//! ```
#![deny(unsafe_code)] // one exception: the prefetch hint in `prefetch.rs`
#![deny(missing_docs)]

mod batch;
mod changes;
mod config;
mod ddsketch;
mod engine;
mod error;
mod eval;
mod gather;
mod hll;
mod input;
mod map;
mod pending;
mod prefetch;
mod rowcodec;
mod small;
mod snapshot;
mod state;
mod tile;

pub use batch::Event;
pub use config::{Aggregation, EngineConfig, FeatureDef, Hop, SourceDef, Window};
pub use engine::Engine;
pub use error::WindowError;
pub use nowcast_core::{FeatureValue, Millis};
pub use pending::SNAPSHOT_SLICE;

/// One event's input for one feature.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Input {
    /// The event does not feed this feature (filtered out or field absent).
    Skip,
    /// A number.
    Num(f64),
    /// A 64-bit hash of a categorical value (for `DistinctCount`).
    Hash(u64),
}

/// An event refused because it is older than the watermark of its (entity, source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Late {
    /// The watermark: `newest − allowed_lateness`.
    pub watermark: Millis,
    /// The newest applied event time of the entity and source.
    pub newest: Millis,
}
