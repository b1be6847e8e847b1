//! Throughput benchmark of the window engine at production-like load.
//!
//! 3 windows (5 m, 1 h, 1 d; hop = W/60) × 12 features (all aggregations, including a
//! distinct count and a quantile per window) on one source with 30 s allowed lateness; two
//! input columns (the amount, read by 33 features, and the merchant hash, read by the 3
//! distinct counts); `NOWCAST_BENCH_ENTITIES` entities (default 1 000 000) with random keys;
//! event times advance so each entity gets ~20 events per simulated day, with up to 5 s of
//! disorder. Each event's key (`user-` + 16 hex digits, 21 bytes) is formatted into a reused
//! buffer, as a decoder would; `NOWCAST_BENCH_KEYS=table` instead reads it from a table of
//! 1 M pre-built `String`s, as the benchmark did before, which adds two cache misses per
//! event that are the harness's, not the engine's.
//!
//! First one simulated day is applied through [`Engine::apply_batch`] without evaluation
//! (warm-up, fills the windows), then `ROUNDS` rounds of `ROUND` events each: batched (512
//! events per call, `NOWCAST_BENCH_BATCH` to change) with per-event evaluation and without,
//! then one event at a time ([`Engine::apply`]) with and without; medians are printed with
//! bytes per entity.
//!
//! Run: `RUST_BACKTRACE=0 cargo bench -p nowcast-window --bench engine`
//!
//! `NOWCAST_BENCH_EVAL_ONLY=1` runs only the batched rounds with evaluation (for profiling);
//! `NOWCAST_BENCH_ROUNDS=N` runs N rounds instead of 5. At the end the state is encoded as a
//! snapshot and decoded again (restore speed).
//!
//! `NOWCAST_BENCH_WINDOWS=1d` (or `5m,1h`, …) keeps only those windows.
//!
//! `NOWCAST_BENCH_ONLY=i` keeps only aggregation `i` of the list in [`config`] (one feature
//! per window, all on the amount): with `NOWCAST_BENCH_ENTITIES=20000` (state in cache) the
//! difference between the rates with and without evaluation is that aggregation's evaluation
//! cost. Measured so (one run each, load ~1), ns per event for its three windows: count 57,
//! sum 61, mean 159, min 172, max 190, stddev 222, distinct count 495, last 115, last_n(5) 204,
//! quantile 543, time since last 104, decayed sum 362.
//!
//! Measured on the 2-core dev machine (shared, load 1–2.5), 1 M entities, median events/s
//! with per-event evaluation / without:
//!
//! | state representation | keys | with eval | without | state B/entity | snapshot B/entity |
//! |---|---|---|---|---|---|
//! | tile arenas per window (before) | table | 74 k | 92 k | 6 126 | 4 296 |
//! | raw rows + overflow tiles | table | 204 k | 449 k | 1 433 | 936 |
//! | raw rows + overflow tiles | per event | 261 k | 617 k | 1 433 | 936 |
//! | same, `GLIBC_TUNABLES=glibc.malloc.hugetlb=1` | per event | 326 k | 796 k | 1 433 | 936 |
//! | same, `apply_batch` (512) with prefetching, own entity map | per event | 285 k | 1 174 k | 1 432 | 937 |
//!
//! The last row was measured back to back with the one before it (`apply`: 280 k / 667 k
//! then; load 1.2 → 2.7); in the same run `apply` one at a time gave 221 k / 568 k.
//!
//! An entity holds ~21 raw rows of 40 bytes (time, seq, tags, amount, merchant) and no
//! tiles. The working set (~1.6 GB) still misses the caches on every event: without
//! evaluation the time goes to the map probe (index slot, then the 104-byte entry: two
//! dependent DRAM misses, each with a TLB miss on 4 KB pages, hence the huge-page gain) and to
//! writing the row at the end of the entity's buffer (one more miss; the allocator's when the
//! buffer grows); `apply_batch` prefetches all three a few events ahead, which doubles the
//! apply-only rate. Evaluation reads the whole buffer (14 cache lines, sequentially) and
//! computes 36 features from it: ~2.5 µs per event when this table was measured, ~0.8 µs
//! since (29 Nov; BENCHMARKS.md has the steps), even with 20 k entities in cache. That is
//! compute (per-feature dispatch, gathering the columns, `exp2` for the decayed sums), which
//! prefetching cannot hide, so with evaluation batching gains little.

use std::time::Instant;

use nowcast_window::{
    Aggregation, Engine, EngineConfig, Event, FeatureDef, FeatureValue, Hop, Input, SourceDef,
    Window,
};

const ROUNDS: usize = 5;
const ROUND: usize = 1_000_000;
/// Events per [`Engine::apply_batch`] call (the pipeline reads batches of up to 512);
/// `NOWCAST_BENCH_BATCH` overrides it.
const BATCH: usize = 512;
const EVENTS_PER_DAY: f64 = 20.0;
const DAY: i64 = 86_400_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n as u128) >> 64) as u64
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn config() -> EngineConfig {
    let mut features = Vec::new();
    // `NOWCAST_BENCH_WINDOWS=1d` (or `5m,1h`, …) keeps only those windows.
    let windows = std::env::var("NOWCAST_BENCH_WINDOWS").ok();
    for (name, w) in [("5m", 300_000i64), ("1h", 3_600_000), ("1d", DAY)] {
        if windows
            .as_ref()
            .is_some_and(|ws| !ws.split(',').any(|x| x == name))
        {
            continue;
        }
        let aggs = [
            Aggregation::Count,
            Aggregation::Sum,
            Aggregation::Mean,
            Aggregation::Min,
            Aggregation::Max,
            Aggregation::StdDev,
            Aggregation::DistinctCount,
            Aggregation::Last,
            Aggregation::LastN(5),
            Aggregation::Quantile {
                q: 0.5,
                relative_accuracy: 0.01,
            },
            Aggregation::TimeSinceLast,
            Aggregation::DecayedSum { half_life: w / 4 },
        ];
        // `NOWCAST_BENCH_ONLY=3` keeps only aggregation 3 of the list (per-aggregation cost).
        let only: Option<usize> = std::env::var("NOWCAST_BENCH_ONLY")
            .ok()
            .and_then(|v| v.parse().ok());
        for (i, agg) in aggs.into_iter().enumerate() {
            if only.is_some_and(|o| o != i) {
                continue;
            }
            // Two input columns: the amount (0) and the merchant hash (1).
            // With NOWCAST_BENCH_ONLY everything reads the amount (a distinct count of amounts).
            let column = (only.is_none() && matches!(agg, Aggregation::DistinctCount)) as usize;
            features.push(FeatureDef {
                name: format!("f{i}_{name}"),
                source: 0,
                column,
                agg,
                window: Window {
                    duration: w,
                    hop: Hop::Tiled(w / 60),
                },
            });
        }
    }
    EngineConfig {
        sources: vec![SourceDef {
            name: "tx".into(),
            allowed_lateness: 30_000,
        }],
        features,
    }
}

struct Stream {
    rng: Rng,
    /// Pre-built keys (`NOWCAST_BENCH_KEYS=table`), or empty: keys are formatted per event.
    keys: Vec<String>,
    entities: u64,
    key: String,
    clock: f64,
    step: f64,
    inputs: Vec<Input>,
}

impl Stream {
    /// Next event: key index and time; fills `inputs`.
    fn next(&mut self) -> (usize, i64) {
        self.clock += self.step;
        let key = self.rng.below(self.entities) as usize;
        if self.keys.is_empty() {
            format_key(&mut self.key, key as u64);
        }
        let time = self.clock as i64 - self.rng.below(5_000) as i64;
        let amount = (self.rng.unit() * 6.0).exp() - 1.0;
        let merchant = self.rng.below(1_000);
        self.inputs[0] = Input::Num(amount);
        self.inputs[1] = Input::Hash(merchant);
        (key, time)
    }
}

/// The key of entity `i`: `user-` and 16 hex digits of a bijective mix of `i`.
fn format_key(out: &mut String, i: u64) {
    let mut z = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z ^= z >> 29;
    out.clear();
    out.push_str("user-");
    for k in (0..16).rev() {
        out.push(char::from(
            b"0123456789abcdef"[((z >> (4 * k)) & 15) as usize],
        ));
    }
}

fn run(
    engine: &mut Engine,
    s: &mut Stream,
    n: usize,
    eval: bool,
    out: &mut Vec<FeatureValue>,
) -> f64 {
    let start = Instant::now();
    let mut late = 0usize;
    for _ in 0..n {
        let (k, t) = s.next();
        let o = if eval { Some(&mut *out) } else { None };
        let key = if s.keys.is_empty() {
            &s.key
        } else {
            &s.keys[k]
        };
        let columns = engine.source_columns(0);
        late += engine.apply(key, 0, t, &s.inputs[..columns], o).is_err() as usize;
    }
    std::hint::black_box(late);
    n as f64 / start.elapsed().as_secs_f64()
}

/// Reused buffers of [`run_batched`].
#[derive(Default)]
struct Batch {
    keys: String,
    /// Per event: end of its key in `keys`, time, inputs.
    events: Vec<(usize, i64, [Input; 2])>,
    results: Vec<Result<(), nowcast_window::Late>>,
    /// Events per batch.
    size: usize,
}

/// As [`run`], through [`Engine::apply_batch`] in batches of `BATCH` events (keys and inputs
/// copied into a batch buffer, as a decoder would).
fn run_batched(
    engine: &mut Engine,
    s: &mut Stream,
    n: usize,
    eval: bool,
    out: &mut Vec<FeatureValue>,
    b: &mut Batch,
) -> f64 {
    let start = Instant::now();
    let mut late = 0usize;
    let mut done = 0;
    while done < n {
        let len = b.size.min(n - done);
        b.keys.clear();
        b.events.clear();
        for _ in 0..len {
            let (k, t) = s.next();
            b.keys.push_str(if s.keys.is_empty() {
                &s.key
            } else {
                &s.keys[k]
            });
            b.events.push((b.keys.len(), t, [s.inputs[0], s.inputs[1]]));
        }
        let mut from = 0;
        let columns = engine.source_columns(0);
        let events: Vec<Event> = b
            .events
            .iter()
            .map(|(end, time, inputs)| {
                let key = &b.keys[from..*end];
                from = *end;
                Event {
                    key,
                    source: 0,
                    time: *time,
                    inputs: &inputs[..columns],
                }
            })
            .collect();
        let o = if eval { Some(&mut *out) } else { None };
        engine.apply_batch(&events, o, &mut b.results);
        late += b.results.iter().filter(|r| r.is_err()).count();
        done += len;
    }
    std::hint::black_box(late);
    n as f64 / start.elapsed().as_secs_f64()
}

struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len();
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let entities: usize = std::env::var("NOWCAST_BENCH_ENTITIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let cfg = config();
    let mut engine = Engine::new(cfg).unwrap();
    let rng = Rng(42);
    let table = std::env::var("NOWCAST_BENCH_KEYS").is_ok_and(|v| v == "table");
    let keys = if table {
        (0..entities as u64)
            .map(|i| {
                let mut k = String::new();
                format_key(&mut k, i);
                k
            })
            .collect()
    } else {
        Vec::new()
    };
    let per_day = EVENTS_PER_DAY * entities as f64;
    let mut s = Stream {
        rng,
        keys,
        entities: entities as u64,
        key: String::new(),
        clock: 1.7e12,
        step: DAY as f64 / per_day,
        inputs: vec![Input::Skip; 2],
    };
    let mut out = Vec::new();
    let mut batch = Batch {
        size: std::env::var("NOWCAST_BENCH_BATCH")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(BATCH),
        ..Batch::default()
    };
    let warm = per_day as usize;
    let warm_rate = run_batched(&mut engine, &mut s, warm, false, &mut out, &mut batch);
    println!(
        "warm-up: {warm} events (1 simulated day) without evaluation: {warm_rate:.0} events/s"
    );
    // Per round: batched with and without evaluation, then one event at a time likewise.
    // `NOWCAST_BENCH_EVAL_ONLY=1` runs only the batched rounds with evaluation (to profile
    // them alone); the other three rates then print as NaN.
    let eval_only = std::env::var("NOWCAST_BENCH_EVAL_ONLY").is_ok_and(|v| v == "1");
    let mut rates = vec![Vec::new(); 4];
    // `NOWCAST_BENCH_ROUNDS=1` for a quick look (at the snapshot figures, say).
    let rounds = std::env::var("NOWCAST_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ROUNDS);
    for r in 0..rounds {
        let with = run_batched(&mut engine, &mut s, ROUND, true, &mut out, &mut batch);
        let round = if eval_only {
            [with, f64::NAN, f64::NAN, f64::NAN]
        } else {
            [
                with,
                run_batched(&mut engine, &mut s, ROUND, false, &mut out, &mut batch),
                run(&mut engine, &mut s, ROUND, true, &mut out),
                run(&mut engine, &mut s, ROUND, false, &mut out),
            ]
        };
        println!(
            "round {r}: apply_batch with evaluation {:.0} events/s, without {:.0}; \
             apply with evaluation {:.0}, without {:.0}",
            round[0], round[1], round[2], round[3]
        );
        for (v, x) in rates.iter_mut().zip(round) {
            v.push(x);
        }
    }
    let [bw, bwo, w, wo] = [0, 1, 2, 3].map(|i| median(rates[i].clone()));
    println!("median apply_batch + per-event evaluation (36 features): {bw:.0} events/s");
    println!("median apply_batch without evaluation:                   {bwo:.0} events/s");
    println!("median apply + per-event evaluation (36 features):       {w:.0} events/s");
    println!("median apply without evaluation:                         {wo:.0} events/s");
    let n = engine.entities();
    let mut c = Counter(0);
    let start = Instant::now();
    engine.write_snapshot(&mut c).unwrap();
    let took = start.elapsed().as_secs_f64();
    println!(
        "entities {n}; state_bytes/entity {:.0}; snapshot bytes/entity {:.0}; \
         snapshot encoded in {:.0} ms ({:.0} MB/s)",
        engine.state_bytes() as f64 / n as f64,
        c.0 as f64 / n as f64,
        took * 1e3,
        c.0 as f64 / took / 1e6
    );
    // Restore speed: decoding the snapshot from memory (what a restart reads from disk).
    let mut bytes = Vec::with_capacity(c.0);
    engine.write_snapshot(&mut bytes).unwrap();
    drop(engine);
    let start = Instant::now();
    let restored = Engine::read_snapshot(config(), &bytes[..]).unwrap();
    let took = start.elapsed().as_secs_f64();
    println!(
        "snapshot decoded in {:.0} ms ({:.0} MB/s, {:.0} k entities/s)",
        took * 1e3,
        bytes.len() as f64 / took / 1e6,
        restored.entities() as f64 / took / 1e3
    );
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for line in status
            .lines()
            .filter(|l| l.starts_with("VmHWM") || l.starts_with("VmRSS"))
        {
            println!("{line}");
        }
    }
}
