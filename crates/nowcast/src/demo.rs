//! `nowcast demo`: generator, processor, model and serving in one process on the embedded log,
//! with a live line every second and a final report.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use nowcast_pipeline::gen::{GenConfig, Generator};
use nowcast_pipeline::{now_ms, Report, RunOptions, Runtime};
use rand::{Rng, SeedableRng};

use crate::run::{load_spec, Server};

/// Arguments of `nowcast demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// The spec file.
    #[arg(long, default_value = "examples/demo/pipeline.toml")]
    config: PathBuf,
    /// Process this many events as fast as possible, then report and exit.
    #[arg(long)]
    events: Option<u64>,
    /// Events per second to generate (default 50000 live; unlimited with --events).
    #[arg(long)]
    rate: Option<f64>,
    /// Stop after this many seconds (live mode).
    #[arg(long)]
    duration: Option<f64>,
    /// Print only the final report, as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Also write the input events, predictions, dead letters and late events here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// With --out: also write every emitted feature vector.
    #[arg(long)]
    features: bool,
    /// Number of users in the synthetic stream.
    #[arg(long, default_value_t = 100_000)]
    users: u64,
    /// Seed of the synthetic stream's random choices (users, amounts, merchants, countries,
    /// bursts). The demo stamps events with the wall clock so it can measure latency, and burst
    /// timing and lateness follow those times: two runs with one seed differ slightly (e.g. the
    /// late count). For identical input, write a file once with `nowcast generate --seed S
    /// --start T -o FILE` and feed it with `nowcast ingest`.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Fraction of records deliberately broken (malformed, missing key, non-numeric amount,
    /// absurd or late time) to show dead letters and late events.
    #[arg(long, default_value_t = 0.0005)]
    bad_rate: f64,
    /// Serving address (default: the spec's `serving.addr`).
    #[arg(long)]
    addr: Option<std::net::SocketAddr>,
    /// Do not start the HTTP API.
    #[arg(long)]
    no_serve: bool,
    /// Overrides the spec's data directory (wiped at start).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// A flag set by Ctrl-C.
pub fn ctrl_c_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    std::thread::Builder::new()
        .name("nowcast-signal".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("signal runtime");
            rt.block_on(async {
                #[cfg(unix)]
                {
                    use tokio::signal::unix::{signal, SignalKind};
                    match signal(SignalKind::terminate()) {
                        Ok(mut term) => {
                            tokio::select! {
                                _ = tokio::signal::ctrl_c() => {}
                                _ = term.recv() => {}
                            }
                        }
                        Err(_) => {
                            let _ = tokio::signal::ctrl_c().await;
                        }
                    }
                }
                #[cfg(not(unix))]
                let _ = tokio::signal::ctrl_c().await;
            });
            f.store(true, Ordering::Relaxed);
        })?;
    Ok(flag)
}

/// Prints one status line per call from the interval statistics.
pub struct LiveLine {
    last: Instant,
    last_in: u64,
}

impl LiveLine {
    pub fn new() -> LiveLine {
        LiveLine {
            last: Instant::now(),
            last_in: 0,
        }
    }

    pub fn print(&mut self, rt: &Runtime) {
        let st = &rt.shared().stats;
        let lat = st.take_interval();
        let now = Instant::now();
        let events_in = st.events_in.load(Ordering::Relaxed);
        let eps = (events_in - self.last_in) as f64 / now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.last_in = events_in;
        let ms = |h: &hdrhistogram::Histogram<u64>, q: f64| {
            if h.is_empty() {
                0.0
            } else {
                h.value_at_quantile(q) as f64 / 1000.0
            }
        };
        let slo = rt.shared().spec.slo;
        let p99 = ms(&lat.event_to_prediction, 0.99);
        let fresh = ms(&lat.freshness, 0.99);
        let mark = |v: f64, target: i64| if v <= target as f64 { "ok" } else { "MISS" };
        eprintln!(
            "{:>9.0} ev/s | event→prediction p50 {:>7.2} ms p99 {:>7.2} ms [{}] | freshness p99 {:>7.2} ms [{}] | predictions {:>10} | late {:>6} | rejected {:>6}",
            eps,
            ms(&lat.event_to_prediction, 0.5),
            p99,
            mark(p99, slo.p99_event_to_prediction),
            fresh,
            mark(fresh, slo.freshness_p99),
            st.predictions.load(Ordering::Relaxed),
            st.late.load(Ordering::Relaxed),
            st.rejected_total(),
        );
    }
}

/// Breaks a generated event in one of five ways (a dead letter or a late event).
fn corrupt(rng: &mut rand_chacha::ChaCha8Rng, key: &mut Vec<u8>, line: &mut Vec<u8>, now: i64) {
    let text = String::from_utf8_lossy(line).into_owned();
    let broken = match rng.gen_range(0..5) {
        0 => text[..text.len() / 2].to_string(),
        1 => {
            key.clear();
            key.extend_from_slice(b"?");
            text.replacen("\"user_id\"", "\"user\"", 1)
        }
        2 => text.replacen("\"amount\":", "\"amount\":\"n/a\",\"was\":", 1),
        3 => text.replacen("\"ts\":", "\"ts\":99999999999999,\"was\":", 1),
        _ => text.replacen("\"ts\":", &format!("\"ts\":{},\"was\":", now - 60_000), 1),
    };
    line.clear();
    line.extend_from_slice(broken.as_bytes());
}

struct GenStats {
    generated: AtomicU64,
}

/// The entity of the stream's first event: one the API knows as soon as the demo starts.
fn first_user(a: &DemoArgs) -> String {
    let mut g = Generator::new(gen_config(a));
    let (mut key, mut line) = (Vec::new(), Vec::new());
    g.next_event(now_ms(), &mut key, &mut line);
    String::from_utf8_lossy(&key).into_owned()
}

fn gen_config(a: &DemoArgs) -> GenConfig {
    GenConfig {
        seed: a.seed,
        users: a.users,
        ..GenConfig::default()
    }
}

#[allow(clippy::too_many_arguments)]
fn generate(
    rt: &Runtime,
    a: &DemoArgs,
    stop: &AtomicBool,
    stats: &GenStats,
    mut events_out: Option<BufWriter<std::fs::File>>,
) -> anyhow::Result<()> {
    let mut g = Generator::new(gen_config(a));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed ^ 0xbad);
    let limit = a.events.unwrap_or(u64::MAX);
    let rate = match (a.rate, a.events) {
        (Some(r), _) => Some(r),
        (None, None) => Some(50_000.0),
        (None, Some(_)) => None,
    };
    let batch = 1024u64;
    let started = Instant::now();
    let mut sent = 0u64;
    // One buffer for the whole batch: keys and values back to back, with their spans.
    let mut buf: Vec<u8> = Vec::with_capacity(batch as usize * 256);
    let mut spans: Vec<(usize, usize, usize)> = Vec::with_capacity(batch as usize);
    let (mut key, mut line) = (Vec::with_capacity(16), Vec::with_capacity(256));
    while sent < limit && !stop.load(Ordering::Relaxed) {
        let n = batch.min(limit - sent);
        // Small batches at low rates keep the pacing smooth.
        let n = match rate {
            Some(r) => n.min(((r / 1000.0).ceil() as u64).max(1)),
            None => n,
        };
        buf.clear();
        spans.clear();
        let now = now_ms();
        for _ in 0..n {
            key.clear();
            line.clear();
            g.next_event(now, &mut key, &mut line);
            if a.bad_rate > 0.0 && rng.gen_bool(a.bad_rate.min(1.0)) {
                corrupt(&mut rng, &mut key, &mut line, now);
            }
            if let Some(out) = events_out.as_mut() {
                out.write_all(&line)?;
                out.write_all(b"\n")?;
            }
            let start = buf.len();
            buf.extend_from_slice(&key);
            buf.extend_from_slice(&line);
            spans.push((start, start + key.len(), buf.len()));
        }
        rt.append_many(0, spans.iter().map(|&(a, b, c)| (&buf[a..b], &buf[b..c])))?;
        sent += n;
        stats.generated.store(sent, Ordering::Relaxed);
        if let Some(r) = rate {
            let due = Duration::from_secs_f64(sent as f64 / r);
            let elapsed = started.elapsed();
            if due > elapsed {
                std::thread::sleep(due - elapsed);
            }
        }
    }
    if let Some(mut out) = events_out {
        out.flush()?;
    }
    rt.flush_logs()?;
    Ok(())
}

fn print_text(r: &Report) {
    println!("--- nowcast demo report ---");
    println!("events in           {:>12}", r.events_in);
    println!("events applied      {:>12}", r.events_applied);
    println!("predictions out     {:>12}", r.predictions_out);
    println!("late                {:>12}", r.late);
    println!(
        "rejected            {:>12}  {:?}",
        r.rejected, r.rejected_by_reason
    );
    println!("elapsed             {:>12.2} s", r.elapsed_s);
    println!("throughput          {:>12.0} events/s", r.throughput_eps);
    println!(
        "event→prediction    p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms",
        r.p50_ms, r.p99_ms, r.p999_ms
    );
    println!(
        "ingest→prediction   p99 {:.2} ms",
        r.ingest_to_prediction_p99_ms
    );
    println!("freshness           p99 {:.2} ms", r.freshness_p99_ms);
    println!(
        "state               {} entities, {} bytes ({:.0} bytes/entity)",
        r.state_entities, r.state_bytes, r.bytes_per_entity
    );
    println!("model               {} {}", r.model, r.model_version);
    println!("scored by           {}", r.model_engine);
}

pub fn main(a: DemoArgs) -> anyhow::Result<ExitCode> {
    let spec = load_spec(&a.config).with_context(|| {
        format!(
            "loading {} (run from the repository root or pass --config)",
            a.config.display()
        )
    })?;
    let metrics = crate::telemetry::install()?;
    let addr = a.addr.unwrap_or(spec.serving_addr);
    let serve = crate::run::serve_config(&spec, addr);
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let rt = Runtime::start(
        spec,
        RunOptions {
            data_dir: a.data_dir.clone(),
            out_dir: a.out.clone(),
            write_features: a.features,
            fresh: true,
            fault_abort_after: None,
            ingest_only: false,
        },
    )?;
    let server = if a.no_serve {
        None
    } else {
        Some(Server::start(rt.backend(), metrics, serve)?)
    };
    if !a.json {
        let user = first_user(&a);
        eprintln!(
            "nowcast demo: {} → features → model → predictions; API on http://{addr} (try GET /v1/features/{user}, GET /metrics); Ctrl-C stops",
            match a.events {
                Some(n) => format!("{n} events as fast as possible"),
                None => format!("{} events/s", a.rate.unwrap_or(50_000.0)),
            }
        );
    }
    let stop = ctrl_c_flag()?;
    let gen_stats = GenStats {
        generated: AtomicU64::new(0),
    };
    let events_out = match &a.out {
        Some(dir) => Some(BufWriter::new(std::fs::File::create(
            dir.join("events.jsonl"),
        )?)),
        None => None,
    };
    let deadline = a
        .duration
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    let gen_done = AtomicBool::new(false);
    let result = std::thread::scope(|scope| -> anyhow::Result<()> {
        let gen = scope.spawn(|| {
            let r = generate(&rt, &a, &stop, &gen_stats, events_out);
            gen_done.store(true, Ordering::Release);
            r
        });
        let mut live = LiveLine::new();
        let mut next = Instant::now() + Duration::from_secs(1);
        while !gen_done.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(20));
            if deadline.is_some_and(|d| Instant::now() >= d) {
                stop.store(true, Ordering::Relaxed);
            }
            if Instant::now() >= next {
                next += Duration::from_secs(1);
                if !a.json {
                    live.print(&rt);
                }
            }
            anyhow::ensure!(rt.healthy(), "a worker stopped; see the error above");
        }
        gen.join()
            .map_err(|_| anyhow::anyhow!("generator panicked"))?
    });
    result?;
    let report = rt.stop(true)?;
    if let Some(s) = server {
        s.stop();
    }
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_text(&report);
    }
    Ok(ExitCode::SUCCESS)
}
