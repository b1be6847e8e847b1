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
    /// user) instead of writing JSON lines; in Avro when the source is Avro with a local
    /// schema (registered under the source's subject in the Confluent framing).
    #[arg(long, value_name = "CONFIG", conflicts_with = "output")]
    kafka: Option<PathBuf>,
    /// Real time: emit at --rate events per second of wall-clock time, each stamped with the
    /// current time (for latency measurements against a live pipeline).
    #[arg(long)]
    live: bool,
    /// Write an Avro object container file with this schema (`.avsc`) instead of JSON lines
    /// (needs --output): input for `nowcast ingest` into a bare Avro source.
    #[arg(
        long,
        value_name = "SCHEMA",
        requires = "output",
        conflicts_with = "kafka"
    )]
    avro: Option<PathBuf>,
    /// Kafka bootstrap servers (with --kafka; default: the spec's, else `NOWCAST_KAFKA`).
    #[arg(long, requires = "kafka")]
    bootstrap: Option<String>,
}

/// Where generated events go.
enum Sink<'s> {
    Lines(BufWriter<Box<dyn Write>>),
    Container(Box<apache_avro::Writer<'s, BufWriter<std::fs::File>>>),
    Kafka(nowcast_kafka::TopicProducer, Box<Encoding>),
}

/// Pushes one generated JSON event into an Avro container file.
fn push_avro(
    w: &mut apache_avro::Writer<'_, BufWriter<std::fs::File>>,
    schema: &apache_avro::Schema,
    json: &[u8],
) -> anyhow::Result<()> {
    let v: serde_json::Value = serde_json::from_slice(json)?;
    let v = apache_avro::types::Value::try_from(v)?
        .resolve(schema)
        .context("a generated event does not fit the --avro schema")?;
    w.append_value(v)?;
    Ok(())
}

/// How events are written to a Kafka source: as the generator's JSON, or in Avro with the
/// source's local schema (registered under the source's subject; Confluent framing).
enum Encoding {
    Json,
    Avro {
        schema: Box<apache_avro::Schema>,
        /// The Confluent header (magic byte and schema id), empty for bare framing.
        header: Vec<u8>,
        buf: Vec<u8>,
    },
}

impl Encoding {
    fn for_source(spec: &nowcast_spec::PipelineSpec, file: &str) -> anyhow::Result<Encoding> {
        use nowcast_spec::{BinaryFormat, Framing, SourceFormat};
        let src = &spec.sources[0];
        let SourceFormat::Schema(f) = &src.format else {
            return Ok(Encoding::Json);
        };
        anyhow::ensure!(
            f.format == BinaryFormat::Avro,
            "{file}: sources[0]: `generate` writes JSON or Avro; this source is Protobuf (fix: produce with your own Protobuf producer)"
        );
        let Some(nowcast_schema::LocalSchema::Avro(schema)) =
            nowcast_pipeline::formats::local_schema(f)?
        else {
            anyhow::bail!(
                "{file}: sources[0]: `generate` encodes with the source's local schema (fix: set `schema = \"file.avsc\"`)"
            );
        };
        let mut header = Vec::new();
        if f.framing == Framing::Confluent {
            let reg = nowcast_pipeline::formats::registry_client(spec)?
                .ok_or_else(|| anyhow::anyhow!("{file}: the Confluent framing needs [registry]"))?;
            let subject = f
                .subject
                .clone()
                .unwrap_or_else(|| format!("{}-value", src.topic));
            // The file as written: the canonical form would drop defaults and logical types.
            let path = f.schema_file.as_ref().expect("a local schema has a file");
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let id = reg
                .register(&subject, nowcast_schema::SchemaType::Avro, &text, &[])
                .with_context(|| format!("registering the schema under `{subject}`"))?;
            eprintln!("nowcast: writing Avro with schema id {id} (subject `{subject}`)");
            nowcast_schema::wire::write_header(&mut header, id);
        }
        Ok(Encoding::Avro {
            schema: Box::new(schema),
            header,
            buf: Vec::new(),
        })
    }

    fn encode<'a>(&'a mut self, json: &'a [u8]) -> anyhow::Result<&'a [u8]> {
        match self {
            Encoding::Json => Ok(json),
            Encoding::Avro {
                schema,
                header,
                buf,
            } => {
                buf.clear();
                buf.extend_from_slice(header);
                let v: serde_json::Value = serde_json::from_slice(json)?;
                nowcast_schema::encode::json_to_avro(schema, &v, buf)
                    .map_err(|e| anyhow::anyhow!("encoding an event in Avro: {e}"))?;
                Ok(buf)
            }
        }
    }
}

fn kafka_sink(config: &std::path::Path, bootstrap: Option<&str>) -> anyhow::Result<Sink<'static>> {
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
    let encoding = Encoding::for_source(&spec, &file)?;
    Ok(Sink::Kafka(
        nowcast_kafka::TopicProducer::new(k, &bootstrap, topic, partitions as u32)?,
        Box::new(encoding),
    ))
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
    let avro_schema = match &a.avro {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(
                apache_avro::Schema::parse_str(&text)
                    .with_context(|| format!("{}: not an Avro schema", path.display()))?,
            )
        }
        None => None,
    };
    let mut sink = match (&a.kafka, &a.avro, &a.output) {
        (Some(config), _, _) => kafka_sink(config, a.bootstrap.as_deref())?,
        (None, Some(_), Some(output)) => {
            let out = std::fs::File::create(output)
                .with_context(|| format!("creating {}", output.display()))?;
            let schema = avro_schema.as_ref().expect("parsed above");
            Sink::Container(Box::new(apache_avro::Writer::new(
                schema,
                BufWriter::new(out),
            )?))
        }
        _ => {
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
            // Pace: event i is due at i / rate seconds after the start. Sleep only once a
            // whole millisecond ahead (event times have millisecond resolution): a sleep per
            // event at tens of thousands per second costs a timer wake-up each, which took a
            // third of a core from the broker and the processor sharing the machine.
            let due = std::time::Duration::from_secs_f64(i as f64 / a.rate);
            if let Some(wait) = due.checked_sub(began.elapsed()) {
                if wait >= std::time::Duration::from_millis(1) {
                    std::thread::sleep(wait);
                }
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
            Sink::Kafka(p, enc) => p.send(&key, enc.encode(&line)?)?,
            Sink::Container(w) => push_avro(w, avro_schema.as_ref().expect("set"), &line)?,
        }
    }
    match sink {
        Sink::Lines(mut out) => out.flush()?,
        Sink::Kafka(p, _) => {
            p.flush(std::time::Duration::from_secs(60))?;
            let secs = began.elapsed().as_secs_f64();
            eprintln!(
                "nowcast: produced {} events to the source topic in {secs:.1} s ({:.0} events/s), all acknowledged",
                a.events,
                a.events as f64 / secs.max(1e-9)
            );
        }
        Sink::Container(w) => w.into_inner()?.flush()?,
    }
    Ok(ExitCode::SUCCESS)
}
