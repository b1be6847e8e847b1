//! Engine configuration: sources (with their allowed lateness), windows, aggregations and
//! features, plus the pure validation that runs before an [`Engine`](crate::Engine) is built and
//! the fingerprint that ties a snapshot to the configuration it was written with.

use nowcast_core::Millis;

use crate::WindowError;

/// An event source, e.g. a topic. Lateness is tracked per (entity, source).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceDef {
    /// Name, used in messages and the fingerprint.
    pub name: String,
    /// How far (ms) behind the newest applied event of the same entity and source an event may
    /// be and still be applied. Must be `>= 0`.
    pub allowed_lateness: Millis,
}

/// How a window's tail moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// The tail is rounded down to a grid of this many ms, aligned to the epoch. Memory per
    /// window is at most `ceil(duration / hop) + 1` tiles.
    Tiled(Millis),
    /// The tail is exact (a 1 ms grid); memory grows with the events in the window.
    Exact,
}

/// A sliding window ending at the evaluation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Length in ms; must be `> 0`.
    pub duration: Millis,
    /// Tail granularity.
    pub hop: Hop,
}

impl Window {
    /// The hop in ms (`1` for [`Hop::Exact`]).
    pub fn hop_millis(&self) -> Millis {
        match self.hop {
            Hop::Tiled(h) => h,
            Hop::Exact => 1,
        }
    }
}

/// What a feature computes over its window's events. See the crate docs for exact definitions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Aggregation {
    /// Number of events with a non-`Skip` input.
    Count,
    /// Sum of the values.
    Sum,
    /// Arithmetic mean (`Null` if empty).
    Mean,
    /// Smallest value (`Null` if empty).
    Min,
    /// Largest value (`Null` if empty).
    Max,
    /// Population standard deviation (`Null` if empty).
    StdDev,
    /// Distinct hashes: exact up to 256, HyperLogLog (p = 12) beyond.
    DistinctCount,
    /// Value of the newest event by (time, arrival) (`Null` if empty).
    Last,
    /// Up to `n` newest values, newest first; `n` in `1..=64`.
    LastN(usize),
    /// Value at rank `floor(q·(count−1))` within relative error `relative_accuracy` (DDSketch).
    Quantile {
        /// The quantile, in `[0, 1]`.
        q: f64,
        /// Relative accuracy α, in `(0, 1)`.
        relative_accuracy: f64,
    },
    /// Seconds from the newest event in the window to the evaluation time (`Null` if empty).
    TimeSinceLast,
    /// `Σ v·2^(−(t−e)/half_life)` over the window's events.
    DecayedSum {
        /// Half-life in ms; must be `> 0`.
        half_life: Millis,
    },
}

/// One feature: an aggregation of one source's input over one window.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureDef {
    /// Name, used in messages and the fingerprint.
    pub name: String,
    /// Index into [`EngineConfig::sources`].
    pub source: usize,
    /// Index of the input column of the source this feature reads (the position of its
    /// [`Input`](crate::Input) in the slice passed to [`Engine::apply`](crate::Engine::apply)).
    /// Features reading the same input share a column, whatever their aggregations; the
    /// columns of a source must be `0..n` with every column read by at least one feature.
    pub column: usize,
    /// What to compute.
    pub agg: Aggregation,
    /// Over which window.
    pub window: Window,
}

/// Everything the engine needs to know; immutable once the engine is built.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EngineConfig {
    /// The sources, referred to by index.
    pub sources: Vec<SourceDef>,
    /// The features; outputs are in this order.
    pub features: Vec<FeatureDef>,
}

impl EngineConfig {
    /// Checks every rule listed on [`Engine::new`](crate::Engine::new); the error names the
    /// offending feature or source and the fix.
    pub fn validate(&self) -> Result<(), WindowError> {
        for s in &self.sources {
            if s.allowed_lateness < 0 {
                return Err(WindowError::InvalidSource {
                    source_name: s.name.clone(),
                    problem: format!(
                        "allowed lateness is {} ms; use 0 or a positive duration",
                        s.allowed_lateness
                    ),
                });
            }
        }
        for f in &self.features {
            validate_feature(f, self.sources.len())?;
        }
        for (si, s) in self.sources.iter().enumerate() {
            let mut used = Vec::new();
            let n = self.features.iter().filter(|f| f.source == si).count();
            for f in self.features.iter().filter(|f| f.source == si) {
                if f.column >= n {
                    return Err(WindowError::feature(
                        &f.name,
                        format!(
                            "input column {} is out of range: source `{}` has {n} features, so \
                             at most {n} columns; number the columns densely from 0",
                            f.column, s.name
                        ),
                    ));
                }
                if used.len() <= f.column {
                    used.resize(f.column + 1, false);
                }
                used[f.column] = true;
            }
            if let Some(c) = used.iter().position(|u| !u) {
                return Err(WindowError::InvalidSource {
                    source_name: s.name.clone(),
                    problem: format!(
                        "input column {c} is read by no feature (columns 0..{} are used); \
                         number the columns of a source densely from 0",
                        used.len()
                    ),
                });
            }
        }
        Ok(())
    }

    /// A 64-bit hash of a canonical encoding of the whole configuration (names included).
    pub fn fingerprint(&self) -> u64 {
        let mut b: Vec<u8> = Vec::new();
        let put = |b: &mut Vec<u8>, v: u64| b.extend_from_slice(&v.to_le_bytes());
        let put_str = |b: &mut Vec<u8>, s: &str| {
            b.extend_from_slice(&(s.len() as u64).to_le_bytes());
            b.extend_from_slice(s.as_bytes());
        };
        put(&mut b, self.sources.len() as u64);
        for s in &self.sources {
            put_str(&mut b, &s.name);
            put(&mut b, s.allowed_lateness as u64);
        }
        put(&mut b, self.features.len() as u64);
        for f in &self.features {
            put_str(&mut b, &f.name);
            put(&mut b, f.source as u64);
            put(&mut b, f.column as u64);
            put(&mut b, f.window.duration as u64);
            put(&mut b, matches!(f.window.hop, Hop::Exact) as u64);
            put(&mut b, f.window.hop_millis() as u64);
            let (tag, a, c) = match f.agg {
                Aggregation::Count => (0, 0, 0),
                Aggregation::Sum => (1, 0, 0),
                Aggregation::Mean => (2, 0, 0),
                Aggregation::Min => (3, 0, 0),
                Aggregation::Max => (4, 0, 0),
                Aggregation::StdDev => (5, 0, 0),
                Aggregation::DistinctCount => (6, 0, 0),
                Aggregation::Last => (7, 0, 0),
                Aggregation::LastN(n) => (8, n as u64, 0),
                Aggregation::Quantile {
                    q,
                    relative_accuracy,
                } => (9, q.to_bits(), relative_accuracy.to_bits()),
                Aggregation::TimeSinceLast => (10, 0, 0),
                Aggregation::DecayedSum { half_life } => (11, half_life as u64, 0),
            };
            put(&mut b, tag);
            put(&mut b, a);
            put(&mut b, c);
        }
        xxhash_rust::xxh3::xxh3_64(&b)
    }
}

fn validate_feature(f: &FeatureDef, sources: usize) -> Result<(), WindowError> {
    let err = |p: String| Err(WindowError::feature(&f.name, p));
    if f.source >= sources {
        return err(format!(
            "source index {} is out of range (there are {sources} sources); use an index below {sources}",
            f.source
        ));
    }
    let d = f.window.duration;
    if d <= 0 {
        return err(format!(
            "window duration is {d} ms; use a duration of at least 1 ms"
        ));
    }
    if let Hop::Tiled(h) = f.window.hop {
        if h <= 0 || h > d {
            return err(format!(
                "hop is {h} ms for a {d} ms window; use a hop between 1 ms and the window \
                 duration (e.g. duration/60), or Hop::Exact"
            ));
        }
    }
    match f.agg {
        Aggregation::LastN(n) if !(1..=64).contains(&n) => {
            err(format!("last_n keeps {n} values; use between 1 and 64"))
        }
        Aggregation::Quantile { q, .. } if !(0.0..=1.0).contains(&q) => err(format!(
            "quantile q is {q}; use a value between 0 and 1 (0.5 = median)"
        )),
        Aggregation::Quantile {
            relative_accuracy: a,
            ..
        } if !(a > 0.0 && a < 1.0) => err(format!(
            "quantile relative accuracy is {a}; use a value strictly between 0 and 1 (e.g. 0.01)"
        )),
        Aggregation::DecayedSum { half_life } if half_life <= 0 => err(format!(
            "decayed sum half-life is {half_life} ms; use at least 1 ms"
        )),
        _ => Ok(()),
    }
}
