//! CPU cost of answering `GET /v1/features/{entity}` in process, without sockets.
//!
//! ```sh
//! scripts/setup-python.sh
//! RUST_BACKTRACE=0 cargo bench -p nowcast-pipeline --bench serve
//! ```
//!
//! Starts the embedded runtime on the demo spec (`examples/demo/pipeline.toml`) in a temporary
//! directory, ingests `NOWCAST_BENCH_EVENTS` generated events (default 400 000, ~4 per user
//! for the generator's 100 000 users, event times spread over the last hour), waits until they
//! are applied, then times three layers for random users (median of 7 rounds, ns per read):
//!
//! - `backend`: [`nowcast_serve::Backend::features`] (shard lock, evaluation, the answer);
//! - `backend + json`: the same plus serialising the answer as the handler does;
//! - `router`: one request through the axum router (`tower::ServiceExt::oneshot`, as hyper
//!   would call it) including the body collected by the caller.
//!
//! What is not here is the socket and hyper's HTTP/1 codec; `examples/http_load.rs` in
//! `nowcast-serve` measures the whole path against a running `nowcast demo`. Without
//! `--bench` (as under `cargo test --benches`) it runs a few reads as a smoke test.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use http_body_util::BodyExt;
use nowcast_pipeline::gen::{GenConfig, Generator};
use nowcast_pipeline::{now_ms, RunOptions, Runtime};
use nowcast_serve::{Backend, ServeConfig};
use tower::ServiceExt;

const ROUNDS: usize = 7;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let events: u64 = std::env::var("NOWCAST_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 400_000 } else { 2_000 });
    let reads = if full { 200_000 } else { 200 };

    let spec_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo/pipeline.toml");
    let spec = nowcast_spec::read_spec(&spec_path).expect("demo spec");
    let tmp = tempfile::tempdir().expect("temp dir");
    let rt = Runtime::start(
        spec,
        RunOptions {
            data_dir: Some(tmp.path().into()),
            ..Default::default()
        },
    )
    .expect("runtime");
    let users = ingest(&rt, events);
    let backend = rt.backend();

    let keys: Vec<String> = (0..reads as u64)
        .map(|i| format!("u-{}", mix(i) % users))
        .collect();
    let found = keys
        .iter()
        .filter(|k| matches!(backend.features(k, now_ms()), Ok(Some(_))))
        .count();
    println!(
        "{events} events, {} entities; {:.1} % of the read keys are known\n",
        rt.state_summary().0,
        100.0 * found as f64 / keys.len() as f64
    );

    let tokio = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio");
    let app = nowcast_serve::router(Arc::clone(&backend), None, &ServeConfig::default());
    let paths: Vec<String> = keys.iter().map(|k| format!("/v1/features/{k}")).collect();

    let mut rows: Vec<(&str, Vec<f64>)> = vec![
        ("backend", Vec::new()),
        ("backend + json", Vec::new()),
        ("router", Vec::new()),
    ];
    let rounds = if full { ROUNDS } else { 1 };
    for _ in 0..rounds {
        let now = now_ms();
        let t = Instant::now();
        let mut sink = 0usize;
        for k in &keys {
            sink += backend
                .features(k, now)
                .ok()
                .flatten()
                .map_or(0, |f| f.features.len());
        }
        rows[0].1.push(per_read(t, keys.len()));

        let t = Instant::now();
        let mut buf = Vec::with_capacity(2048);
        for k in &keys {
            if let Ok(Some(f)) = backend.features(k, now) {
                buf.clear();
                serde_json::to_writer(&mut buf, &f).expect("json");
                sink += buf.len();
            }
        }
        rows[1].1.push(per_read(t, keys.len()));

        let t = Instant::now();
        tokio.block_on(async {
            for p in &paths {
                let request = http::Request::get(p.as_str())
                    .body(Body::empty())
                    .expect("request");
                let response = app.clone().oneshot(request).await.expect("infallible");
                let body = response.into_body().collect().await.expect("body");
                sink += body.to_bytes().len();
            }
        });
        rows[2].1.push(per_read(t, keys.len()));
        std::hint::black_box(sink);
    }

    println!("| layer | ns per read (median of {rounds}) | min |");
    println!("|---|---|---|");
    for (name, mut v) in rows {
        v.sort_by(f64::total_cmp);
        println!("| {name} | {:.0} | {:.0} |", v[v.len() / 2], v[0]);
    }
    rt.stop(false).expect("stop");
}

/// Appends `n` generated events with event times over the last hour, then waits until every
/// one is applied. Returns the generator's user count.
fn ingest(rt: &Runtime, n: u64) -> u64 {
    let cfg = GenConfig::default();
    let users = cfg.users;
    let mut gen = Generator::new(cfg);
    let start = now_ms() - 3_600_000;
    let (mut key, mut value) = (Vec::new(), Vec::new());
    for i in 0..n {
        key.clear();
        value.clear();
        gen.next_event(start + (i * 3_500_000 / n) as i64, &mut key, &mut value);
        rt.append(0, &key, &value).expect("append");
    }
    rt.flush_logs().expect("flush");
    let t = Instant::now();
    while rt.report().events_applied + rt.report().rejected < n {
        assert!(t.elapsed().as_secs() < 300, "events were not applied");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    users
}

fn per_read(t: Instant, n: usize) -> f64 {
    t.elapsed().as_nanos() as f64 / n as f64
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^ (x >> 29)
}
