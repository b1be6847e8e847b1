//! Scoring latency and throughput of the committed models.
//!
//! ```sh
//! scripts/setup-python.sh
//! RUST_BACKTRACE=0 CARGO_TARGET_DIR=target/h-model cargo bench -p nowcast-model --bench score
//! ```
//!
//! Prints markdown tables: single-row latency percentiles (one `score_batch` call per row, timed
//! one by one into an HDR histogram), per-row cost at batch sizes 1–1024, and two threads
//! scoring at once with one shared session (`max_sessions = 1`, i.e. a mutex) versus a pool.
//! Without `--bench` (as under `cargo test --benches`) it runs a few iterations as a smoke test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use nowcast_model::{LoadOptions, LoadedModel, ModelHandle, ModelKind, ModelSpec};

const N_INPUTS: usize = 12;

struct Config {
    single_calls: usize,
    batch_rows: usize,
    concurrent_for: Duration,
}

fn models_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

fn onnx(name: &str) -> ModelSpec {
    ModelSpec {
        name: name.into(),
        kind: ModelKind::Onnx {
            path: models_dir().join(format!("{name}.onnx")),
        },
        n_inputs: N_INPUTS,
    }
}

/// The fixture's rows (realistic values, both labels), repeated to `n` rows.
fn rows(n: usize) -> Vec<f32> {
    let text = std::fs::read_to_string(models_dir().join("fixtures/scoring.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let base: Vec<Vec<f32>> = serde_json::from_value(json["rows"].clone()).unwrap();
    base.iter().cycle().take(n).flatten().copied().collect()
}

fn us(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1000.0)
}

fn hist() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap()
}

/// Times `calls` single-row calls one by one (after a 10% warm-up).
fn single_row(score: &dyn Fn(&[f32], &mut Vec<f64>), data: &[f32], calls: usize) -> Histogram<u64> {
    let n_rows = data.len() / N_INPUTS;
    let mut h = hist();
    let mut out = Vec::with_capacity(1);
    for i in 0..calls / 10 {
        let r = i % n_rows;
        score(&data[r * N_INPUTS..(r + 1) * N_INPUTS], &mut out);
        out.clear();
    }
    for i in 0..calls {
        let r = i % n_rows;
        let row = &data[r * N_INPUTS..(r + 1) * N_INPUTS];
        let start = Instant::now();
        score(row, &mut out);
        h.record(start.elapsed().as_nanos() as u64).unwrap();
        out.clear();
    }
    h
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--bench");
    // `cargo bench -p nowcast-model --bench score -- concurrency` runs only matching sections.
    let filters: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    let run = |section: &str| filters.is_empty() || filters.iter().any(|f| section.contains(f));
    let cfg = if full {
        Config {
            single_calls: 200_000,
            batch_rows: 400_000,
            concurrent_for: Duration::from_secs(2),
        }
    } else {
        Config {
            single_calls: 200,
            batch_rows: 4_096,
            concurrent_for: Duration::from_millis(50),
        }
    };
    let (ort_version, ort_path) =
        nowcast_model::onnxruntime_version().unwrap_or_else(|e| panic!("{e}"));
    println!(
        "ONNX Runtime {ort_version} ({}); {} cores; {} mode\n",
        ort_path.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if full {
            "full"
        } else {
            "smoke (pass --bench for numbers)"
        }
    );
    let data = rows(1024);
    let linear = ModelSpec {
        name: "linear_logistic".into(),
        kind: ModelKind::Linear {
            weights: (0..N_INPUTS).map(|i| 0.01 * i as f64 - 0.05).collect(),
            intercept: -3.0,
            logistic: true,
        },
        n_inputs: N_INPUTS,
    };
    // The GBT twice: through ONNX Runtime, and compiled to native code (the default).
    let named = |name: &str, mut spec: ModelSpec| {
        spec.name = name.into();
        spec
    };
    let specs = [
        (onnx("fraud_logreg"), false),
        (named("fraud_gbt (onnxruntime)", onnx("fraud_gbt")), false),
        (named("fraud_gbt (compiled)", onnx("fraud_gbt")), true),
        (linear, false),
    ];
    let models: Vec<LoadedModel> = specs
        .iter()
        .map(|(s, compile_trees)| {
            let options = LoadOptions {
                compile_trees: *compile_trees,
                ..LoadOptions::default()
            };
            LoadedModel::load_with(s, &options).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    for m in &models {
        println!("{}: {}", m.name(), m.engine());
    }
    println!();

    if run("single") {
        single_section(&cfg, &models, &data);
    }
    if run("batch") {
        batch_section(&cfg, &models, &data);
    }
    if run("concurrency") {
        concurrency_section(&cfg, &data);
    }
}

/// Single-row calls in `ROUNDS` interleaved rounds per model (so a burst of load from elsewhere
/// on the machine hits all models alike): percentiles over all calls, and the best round's.
fn single_section(cfg: &Config, models: &[LoadedModel], data: &[f32]) {
    const ROUNDS: usize = 5;
    println!(
        "## Single-row latency (µs), {} calls per model in {ROUNDS} interleaved rounds\n",
        cfg.single_calls
    );
    println!("| model | p50 | p90 | p99 | p99.9 | max | mean | best round p50 | best round p99 |");
    println!("|---|---|---|---|---|---|---|---|---|");
    // Through the hot-reload handle: one arc-swap load per call on top.
    let handle = ModelHandle::new(onnx("fraud_gbt")).unwrap();
    let via_handle = |row: &[f32], out: &mut Vec<f64>| {
        handle.current().score_batch(row, 1, out).unwrap();
    };
    let mut names: Vec<String> = models.iter().map(|m| m.name().to_string()).collect();
    names.push("fraud_gbt (compiled) via ModelHandle::current()".into());
    let mut all: Vec<Histogram<u64>> = names.iter().map(|_| hist()).collect();
    let mut best: Vec<(u64, u64)> = names.iter().map(|_| (u64::MAX, u64::MAX)).collect();
    for _ in 0..ROUNDS {
        for (k, _) in names.iter().enumerate() {
            let h = match models.get(k) {
                Some(model) => single_row(
                    &|row, out| model.score_batch(row, 1, out).unwrap(),
                    data,
                    cfg.single_calls / ROUNDS,
                ),
                None => single_row(&via_handle, data, cfg.single_calls / ROUNDS),
            };
            best[k].0 = best[k].0.min(h.value_at_quantile(0.5));
            best[k].1 = best[k].1.min(h.value_at_quantile(0.99));
            all[k].add(h).unwrap();
        }
    }
    for (k, name) in names.iter().enumerate() {
        let h = &all[k];
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} |",
            us(h.value_at_quantile(0.5)),
            us(h.value_at_quantile(0.9)),
            us(h.value_at_quantile(0.99)),
            us(h.value_at_quantile(0.999)),
            us(h.max()),
            us(h.mean() as u64),
            us(best[k].0),
            us(best[k].1),
        );
    }
    println!();
}

fn batch_section(cfg: &Config, models: &[LoadedModel], data: &[f32]) {
    println!(
        "## Batches: per-row cost (ns) and per-batch p50/p99 (µs), ~{} rows per cell\n",
        cfg.batch_rows
    );
    println!("| model | batch | ns/row | batch p50 | batch p99 |");
    println!("|---|---|---|---|---|");
    for model in models {
        for batch in [1usize, 8, 64, 256, 1024] {
            let iters = (cfg.batch_rows / batch).max(20);
            let input = &data[..batch * N_INPUTS];
            let mut out = Vec::with_capacity(batch);
            let mut hist = hist();
            for _ in 0..iters / 10 {
                model.score_batch(input, batch, &mut out).unwrap();
                out.clear();
            }
            let total = Instant::now();
            for _ in 0..iters {
                let start = Instant::now();
                model.score_batch(input, batch, &mut out).unwrap();
                hist.record(start.elapsed().as_nanos() as u64).unwrap();
                out.clear();
            }
            let per_row = total.elapsed().as_nanos() as f64 / (iters * batch) as f64;
            println!(
                "| {} | {batch} | {per_row:.0} | {} | {} |",
                model.name(),
                us(hist.value_at_quantile(0.5)),
                us(hist.value_at_quantile(0.99))
            );
        }
    }

    println!();
}

fn concurrency_section(cfg: &Config, data: &[f32]) {
    println!(
        "## Concurrency: threads scoring single rows for {:?}; one session (mutex) vs a pool\n",
        cfg.concurrent_for
    );
    println!("| model | threads | max_sessions | sessions used | calls/s | p50 µs | p99 µs |");
    println!("|---|---|---|---|---|---|---|");
    for name in ["fraud_logreg", "fraud_gbt"] {
        for (threads, max_sessions) in [(1, 1), (2, 1), (2, 2)] {
            let model = Arc::new(
                LoadedModel::load_with(
                    &onnx(name),
                    &LoadOptions {
                        max_sessions,
                        compile_trees: false,
                    },
                )
                .unwrap(),
            );
            let data: Arc<[f32]> = data.into();
            let until = Instant::now() + cfg.concurrent_for;
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let (model, data) = (model.clone(), data.clone());
                    std::thread::spawn(move || {
                        let mut hist = hist();
                        let mut out = Vec::with_capacity(1);
                        let mut i = t * 17;
                        while Instant::now() < until {
                            let r = i % 1024;
                            let start = Instant::now();
                            model
                                .score_batch(&data[r * N_INPUTS..(r + 1) * N_INPUTS], 1, &mut out)
                                .unwrap();
                            hist.record(start.elapsed().as_nanos() as u64).unwrap();
                            out.clear();
                            i += 1;
                        }
                        hist
                    })
                })
                .collect();
            let mut all = hist();
            for w in workers {
                all.add(w.join().unwrap()).unwrap();
            }
            println!(
                "| {name} | {threads} | {max_sessions} | {} | {:.0} | {} | {} |",
                model.sessions(),
                all.len() as f64 / cfg.concurrent_for.as_secs_f64(),
                us(all.value_at_quantile(0.5)),
                us(all.value_at_quantile(0.99))
            );
        }
    }
}
