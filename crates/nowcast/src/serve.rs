//! `nowcast serve`: a serving replica that follows a Kafka pipeline's feature store and answers
//! reads for every entity.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Arguments of `nowcast serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// The spec file (with `[kafka]`).
    #[arg(long)]
    config: std::path::PathBuf,
    /// Kafka bootstrap servers (default: the spec's, else `NOWCAST_KAFKA`).
    #[arg(long)]
    bootstrap: Option<String>,
    /// Serving address (default: the spec's `serving.addr`).
    #[arg(long)]
    addr: Option<std::net::SocketAddr>,
}

pub fn main(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let spec = crate::run::load_spec(&a.config)?;
    let metrics = crate::telemetry::install()?;
    let addr = a.addr.unwrap_or(spec.serving_addr);
    let serve = crate::run::serve_config(&spec, addr);
    let file = a.config.display().to_string();
    let replica = nowcast_kafka::Replica::start(spec, a.bootstrap.as_deref(), &file)?;
    let server = crate::run::Server::start(replica.backend(), metrics, serve)?;
    let stop = crate::demo::ctrl_c_flag()?;
    let mut last = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_secs(1));
        let now = replica.records();
        if now != last {
            eprintln!(
                "nowcast serve: {} feature-store records applied, {} unreadable",
                now.0, now.1
            );
            last = now;
        }
    }
    server.stop();
    replica.stop();
    Ok(ExitCode::SUCCESS)
}
