//! `nowcast generate`: the synthetic stream with simulated, evenly spaced event times.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use nowcast_pipeline::gen::{GenConfig, Generator};

/// Arguments of `nowcast generate`.
#[derive(clap::Args)]
pub struct GenerateArgs {
    /// Number of events.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Seed (same seed and times → same bytes).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Number of users.
    #[arg(long, default_value_t = 100_000)]
    users: u64,
    /// Number of merchants.
    #[arg(long, default_value_t = 20_000)]
    merchants: u64,
    /// Probability per event that a fraud burst starts.
    #[arg(long, default_value_t = 0.001)]
    fraud_rate: f64,
    /// Event time of the first event: RFC 3339 or epoch ms (default: so the last event is now).
    #[arg(long)]
    start: Option<String>,
    /// Events per second of event time (spacing of the simulated clock).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Output file (default stdout).
    #[arg(long, short)]
    output: Option<PathBuf>,
}

pub fn main(a: GenerateArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(a.rate > 0.0, "--rate must be positive");
    anyhow::ensure!(
        a.users > 0 && a.merchants > 0,
        "--users and --merchants must be positive"
    );
    let span_ms = (a.events as f64 * 1000.0 / a.rate) as i64;
    let start = match &a.start {
        Some(s) => nowcast_core::parse_event_time(s).context("--start")?,
        None => nowcast_pipeline::now_ms() - span_ms,
    };
    let out: Box<dyn Write> = match &a.output {
        Some(p) => {
            Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let mut g = Generator::new(GenConfig {
        seed: a.seed,
        users: a.users,
        merchants: a.merchants,
        fraud_rate: a.fraud_rate,
    });
    let (mut key, mut line) = (Vec::new(), Vec::new());
    for i in 0..a.events {
        line.clear();
        g.next_event(
            start + (i as f64 * 1000.0 / a.rate) as i64,
            &mut key,
            &mut line,
        );
        line.push(b'\n');
        out.write_all(&line)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
