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
    /// Produce the events to the source topic of this spec's `[kafka]` pipeline (keyed by
    /// user) instead of writing JSON lines.
    #[arg(long, value_name = "CONFIG", conflicts_with = "output")]
    kafka: Option<PathBuf>,
    /// Real time: emit at --rate events per second of wall-clock time, each stamped with the
    /// current time (for latency measurements against a live pipeline).
    #[arg(long)]
    live: bool,
    /// Kafka bootstrap servers (with --kafka; default: the spec's, else `NOWCAST_KAFKA`).
    #[arg(long, requires = "kafka")]
    bootstrap: Option<String>,
}

/// Where generated events go.
enum Sink {
    Lines(BufWriter<Box<dyn Write>>),
    Kafka(nowcast_kafka::TopicProducer),
}

fn kafka_sink(config: &std::path::Path, bootstrap: Option<&str>) -> anyhow::Result<Sink> {
    let spec = crate::run::load_spec(config)?;
    let file = config.display().to_string();
    let k = spec.kafka.as_ref().ok_or_else(|| {
        anyhow::anyhow!(
            "{file} has no [kafka] section (fix: add one, or write lines with --output)"
        )
    })?;
    let bootstrap = nowcast_kafka::client::bootstrap(k, bootstrap, &file)?;
    let topic = &spec.sources[0].topic;
    let partitions = nowcast_kafka::runtime::topic_partitions(k, &bootstrap, topic)?;
    Ok(Sink::Kafka(nowcast_kafka::TopicProducer::new(
        k,
        &bootstrap,
        topic,
        partitions as u32,
    )?))
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
    let mut sink = match &a.kafka {
        Some(config) => kafka_sink(config, a.bootstrap.as_deref())?,
        None => {
            let out: Box<dyn Write> = match &a.output {
                Some(p) => Box::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("creating {}", p.display()))?,
                ),
                None => Box::new(std::io::stdout().lock()),
            };
            Sink::Lines(BufWriter::with_capacity(1 << 20, out))
        }
    };
    let mut g = Generator::new(GenConfig {
        seed: a.seed,
        users: a.users,
        merchants: a.merchants,
        fraud_rate: a.fraud_rate,
    });
    let (mut key, mut line) = (Vec::new(), Vec::new());
    let began = std::time::Instant::now();
    for i in 0..a.events {
        line.clear();
        let time = if a.live {
            // Pace: event i is due at i / rate seconds after the start.
            let due = std::time::Duration::from_secs_f64(i as f64 / a.rate);
            if let Some(wait) = due.checked_sub(began.elapsed()) {
                std::thread::sleep(wait);
            }
            nowcast_pipeline::now_ms()
        } else {
            start + (i as f64 * 1000.0 / a.rate) as i64
        };
        g.next_event(time, &mut key, &mut line);
        match &mut sink {
            Sink::Lines(out) => {
                line.push(b'\n');
                out.write_all(&line)?;
            }
            Sink::Kafka(p) => p.send(&key, &line)?,
        }
    }
    match &mut sink {
        Sink::Lines(out) => out.flush()?,
        Sink::Kafka(p) => p.flush(std::time::Duration::from_secs(60))?,
    }
    Ok(ExitCode::SUCCESS)
}
