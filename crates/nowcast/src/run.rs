//! `nowcast ingest` and `nowcast run`.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use nowcast_pipeline::{RunOptions, Runtime};
use nowcast_serve::Backend as _;
use nowcast_spec::PipelineSpec;

/// Arguments of `nowcast ingest`.
#[derive(clap::Args)]
pub struct IngestArgs {
    /// The spec file.
    #[arg(long)]
    config: PathBuf,
    /// JSON-lines file or Avro object container file, or `-` for stdin.
    #[arg(long)]
    input: PathBuf,
    /// Overrides the spec's data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Arguments of `nowcast run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The spec file.
    #[arg(long)]
    pub config: PathBuf,
    /// Overrides the spec's data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where outputs go (default `<data_dir>/out`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write every emitted feature vector.
    #[arg(long)]
    features: bool,
    /// Process what is in the log, checkpoint, print the report as JSON and exit.
    #[arg(long)]
    exit_when_done: bool,
    /// Do not start the HTTP API.
    #[arg(long)]
    pub no_serve: bool,
    /// Serving address (default: the spec's `serving.addr`).
    #[arg(long)]
    pub addr: Option<std::net::SocketAddr>,
    /// Kafka bootstrap servers (with `[kafka]`; default: the spec's, else `NOWCAST_KAFKA`).
    #[arg(long)]
    pub bootstrap: Option<String>,
    /// Instance id (with `[kafka]`; default: the spec's `kafka.instance`).
    #[arg(long)]
    pub instance: Option<String>,
    /// How long an unreachable broker is retried at start (with `[kafka]`), e.g. `2m`.
    #[arg(long, default_value = "2m", value_parser = parse_duration_arg)]
    pub connect_timeout: std::time::Duration,
}

fn parse_duration_arg(s: &str) -> Result<std::time::Duration, String> {
    nowcast_core::parse_duration(s)
        .map(|ms| std::time::Duration::from_millis(ms.max(0) as u64))
        .map_err(|e| e.to_string())
}

pub fn load_spec(path: &std::path::Path) -> anyhow::Result<PipelineSpec> {
    nowcast_spec::read_spec(path).map_err(|e| anyhow::anyhow!("invalid spec\n{e}"))
}

/// JSON lines are handed to the log in chunks of about this many bytes (whole lines).
const INGEST_CHUNK_BYTES: usize = 4 << 20;

/// The input of `nowcast ingest` (a file, or stdin for `-`), read as a stream, and whether it
/// is an Avro object container file (starts with `Obj\x01`).
fn open_input(path: &std::path::Path) -> anyhow::Result<(bool, Box<dyn BufRead>)> {
    let shown = path.display();
    let mut raw: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(path)
                .with_context(|| format!("reading {shown} (fix: check the --input path)"))?,
        )
    };
    let mut head = Vec::with_capacity(4);
    raw.by_ref()
        .take(4)
        .read_to_end(&mut head)
        .with_context(|| format!("reading {shown}"))?;
    let container = head == b"Obj\x01";
    let input = std::io::Cursor::new(head).chain(raw);
    Ok((
        container,
        Box::new(BufReader::with_capacity(256 << 10, input)),
    ))
}

/// Feeds JSON lines through the serving backend's ingest (validates each line, appends good
/// and bad lines alike so bad ones are dead-lettered with their reason), a chunk at a time:
/// memory stays at one chunk plus one line, whatever the input's size.
fn ingest_lines(rt: &Runtime, input: &mut dyn BufRead, shown: &str) -> anyhow::Result<(u64, u64)> {
    let max_line = nowcast_log::MAX_RECORD_BYTES as u64;
    let backend = rt.backend();
    let (mut ok, mut bad, mut lines) = (0, 0, 0u64);
    let mut chunk = Vec::with_capacity(INGEST_CHUNK_BYTES + (64 << 10));
    let mut flush = |chunk: &mut Vec<u8>| -> anyhow::Result<()> {
        if !chunk.is_empty() {
            let outcome = backend.ingest(chunk).map_err(|e| anyhow::anyhow!("{e}"))?;
            ok += outcome.accepted;
            bad += outcome.rejected;
            chunk.clear();
        }
        Ok(())
    };
    loop {
        let line_start = chunk.len();
        let read = input.take(max_line + 1).read_until(b'\n', &mut chunk);
        // An input that fails part-way: the whole lines before it are appended first, so
        // the error can say exactly what is in the log.
        let (n, failed) = match read {
            Ok(n) if n as u64 > max_line && chunk.last() != Some(&b'\n') => (n, Some(anyhow::anyhow!(
                "{shown}: line {} is longer than {max_line} bytes, the largest record the log takes (fix: split it, or check that the input is JSON lines)",
                lines + 1
            ))),
            Ok(n) => (n, None),
            Err(e) => (0, Some(anyhow::Error::new(e).context(format!("reading {shown} after line {lines}")))),
        };
        if let Some(e) = failed {
            chunk.truncate(line_start);
            flush(&mut chunk)?;
            return Err(e.context(format!(
                "{shown}: lines 1 to {lines} were appended (re-ingest from line {} on once it is fixed)",
                lines + 1
            )));
        }
        if n > 0 {
            lines += 1;
        }
        if n == 0 || chunk.len() >= INGEST_CHUNK_BYTES {
            flush(&mut chunk)?;
        }
        if n == 0 {
            return Ok((ok, bad));
        }
    }
}

pub fn ingest(a: IngestArgs) -> anyhow::Result<ExitCode> {
    let spec = load_spec(&a.config)?;
    let shown = a.input.display().to_string();
    let (container, mut input) = open_input(&a.input)?;
    let avro = if container {
        Some(avro_source_schema(&spec, &shown)?)
    } else {
        None
    };
    // Ingest only appends: no workers, no state, no outputs.
    let rt = Runtime::start(
        spec,
        RunOptions {
            data_dir: a.data_dir,
            ingest_only: true,
            ..Default::default()
        },
    )?;
    let counted = match &avro {
        Some(schema) => ingest_avro_container(&rt, schema, &mut input, &shown),
        None => ingest_lines(&rt, &mut input, &shown),
    };
    // Stopping flushes what was appended, also when the input failed part-way.
    rt.stop(false)?;
    let (ok, bad) = counted?;
    let unit = if container { "records" } else { "lines" };
    eprintln!("nowcast: appended {ok} events ({bad} refused {unit} appended for dead-lettering)");
    Ok(ExitCode::SUCCESS)
}

/// The local Avro schema of sources[0], which must be a `framing = "bare"` Avro source to take
/// an Avro object container file.
fn avro_source_schema(spec: &PipelineSpec, shown: &str) -> anyhow::Result<apache_avro::Schema> {
    use nowcast_spec::{BinaryFormat, Framing, SourceFormat};
    let f = match &spec.sources[0].format {
        SourceFormat::Schema(f) if f.format == BinaryFormat::Avro && f.framing == Framing::Bare => f,
        _ => anyhow::bail!(
            "{shown} is an Avro container file, but sources[0] is not an Avro source with `framing = \"bare\"` (fix: set `format = \"avro\"` and `schema`, or ingest JSON lines)"
        ),
    };
    let Some(nowcast_schema::LocalSchema::Avro(schema)) =
        nowcast_pipeline::formats::local_schema(f)?
    else {
        anyhow::bail!("sources[0] has no local Avro schema");
    };
    Ok(schema)
}

/// Appends the records of an Avro object container file, re-encoded as bare datums of the
/// source's local schema (resolved from the file's writer schema), a chunk at a time.
#[allow(deprecated)] // to_avro_datum: one datum without container framing
fn ingest_avro_container(
    rt: &Runtime,
    schema: &apache_avro::Schema,
    input: &mut dyn BufRead,
    shown: &str,
) -> anyhow::Result<(u64, u64)> {
    let reader = apache_avro::Reader::builder(input)
        .reader_schema(schema)
        .build()
        .with_context(|| format!("{shown}: not a readable Avro container file"))?;
    let (mut ok, mut bad) = (0, 0);
    let mut chunk: Vec<Vec<u8>> = Vec::new();
    let mut bytes = 0;
    let mut append = |chunk: &mut Vec<Vec<u8>>| -> anyhow::Result<()> {
        let outcome = rt
            .append_records(0, chunk.iter().map(Vec::as_slice))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        ok += outcome.accepted;
        bad += outcome.rejected;
        chunk.clear();
        Ok(())
    };
    for (i, value) in reader.enumerate() {
        // A record that fails: the records before it are appended first, so the error says
        // exactly what is in the log.
        let datum = match value
            .with_context(|| "it cannot be read with the source's schema".to_string())
            .and_then(|v| apache_avro::to_avro_datum(schema, v).map_err(anyhow::Error::from))
        {
            Ok(d) => d,
            Err(e) => {
                append(&mut chunk)?;
                return Err(e.context(format!(
                    "{shown}: record {} failed; the {i} records before it were appended",
                    i + 1
                )));
            }
        };
        bytes += datum.len();
        chunk.push(datum);
        if bytes >= INGEST_CHUNK_BYTES {
            append(&mut chunk)?;
            bytes = 0;
        }
    }
    append(&mut chunk)?;
    Ok((ok, bad))
}

/// The API's settings: `addr` (the spec's `serving.addr` unless overridden) and the spec's
/// `[serving]` limits.
pub fn serve_config(spec: &PipelineSpec, addr: std::net::SocketAddr) -> nowcast_serve::ServeConfig {
    nowcast_serve::ServeConfig {
        addr,
        max_body_bytes: spec.serving_max_body_bytes,
        max_batch_entities: spec.serving_max_batch_entities,
    }
}

/// Starts the HTTP API on its own runtime thread; returns a handle that stops it.
pub struct Server {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Serves `backend` as `config` says (see [`serve_config`]).
    pub fn start<B: nowcast_serve::Backend>(
        backend: Arc<B>,
        metrics: metrics_exporter_prometheus::PrometheusHandle,
        config: nowcast_serve::ServeConfig,
    ) -> anyhow::Result<Server> {
        let addr = config.addr;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("nowcast-http")
            .enable_all()
            .build()?;
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(addr))
            .with_context(|| format!("binding {addr} (serving.addr)"))?;
        let thread = std::thread::Builder::new()
            .name("nowcast-http".into())
            .spawn(move || {
                let shutdown = async move {
                    let _ = rx.await;
                };
                if let Err(e) = rt.block_on(nowcast_serve::serve_on(
                    listener,
                    backend,
                    Some(metrics),
                    config,
                    shutdown,
                )) {
                    eprintln!("nowcast: serving stopped: {e}");
                }
            })?;
        Ok(Server {
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    pub fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn main(a: RunArgs) -> anyhow::Result<ExitCode> {
    let spec = load_spec(&a.config)?;
    let metrics = crate::telemetry::install()?;
    if spec.kafka.is_some() {
        return crate::kafka::run(spec, a, metrics);
    }
    let addr = a.addr.unwrap_or(spec.serving_addr);
    let serve = serve_config(&spec, addr);
    let fault = std::env::var("NOWCAST_FAULT_ABORT_AFTER")
        .ok()
        .and_then(|v| v.parse().ok());
    let rt = Runtime::start(
        spec,
        RunOptions {
            data_dir: a.data_dir,
            out_dir: a.out,
            write_features: a.features,
            fresh: false,
            fault_abort_after: fault,
            ingest_only: false,
        },
    )?;
    let server = if a.no_serve {
        None
    } else {
        Some(Server::start(rt.backend(), metrics, serve)?)
    };
    if a.exit_when_done {
        let report = rt.stop(true)?;
        if let Some(s) = server {
            s.stop();
        }
        println!("{}", serde_json::to_string(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let stop = crate::demo::ctrl_c_flag()?;
    let mut reporter = crate::demo::LiveLine::new();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) && rt.healthy() {
        std::thread::sleep(std::time::Duration::from_secs(1));
        reporter.print(&rt);
    }
    let report = rt.stop(false)?;
    if let Some(s) = server {
        s.stop();
    }
    eprintln!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}
