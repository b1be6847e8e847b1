//! `nowcast run` for a spec with `[kafka]`: one instance of the consumer group.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use nowcast_kafka::{KafkaOptions, KafkaRuntime};
use nowcast_spec::PipelineSpec;

use crate::run::{RunArgs, Server};

pub fn run(
    spec: PipelineSpec,
    a: RunArgs,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> anyhow::Result<ExitCode> {
    let addr = a.addr.unwrap_or(spec.serving_addr);
    let serve = crate::run::serve_config(&spec, addr);
    let fault = std::env::var("NOWCAST_FAULT_ABORT_AFTER")
        .ok()
        .and_then(|v| v.parse().ok());
    let opts = KafkaOptions {
        spec_file: a.config.display().to_string(),
        bootstrap: a.bootstrap.clone(),
        instance: a.instance.clone(),
        fault_abort_after: fault,
        fault_fail_revoke: std::env::var("NOWCAST_FAULT_FAIL_REVOKE").is_ok_and(|v| v == "1"),
        fault_stall_offsets: std::env::var("NOWCAST_FAULT_STALL_OFFSETS").is_ok_and(|v| v == "1"),
    };
    let stop = crate::demo::ctrl_c_flag()?;
    let mut rt = KafkaRuntime::start(spec, opts, a.connect_timeout)?;
    let server = if a.no_serve {
        None
    } else {
        Some(Server::start(rt.backend(), metrics, serve)?)
    };
    let mut last = rt.report();
    let mut failure = None;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_secs(1));
        if !rt.healthy() {
            failure = rt.failed();
            if failure.is_some() {
                break;
            }
        }
        let r = rt.report();
        // This second's latencies (the report's are since the start).
        let iv = rt.shared().stats.take_interval();
        let q = |h: &hdrhistogram::Histogram<u64>, q: f64| {
            if h.is_empty() {
                0.0
            } else {
                h.value_at_quantile(q) as f64 / 1000.0
            }
        };
        eprintln!(
            "nowcast: {:>8.0} ev/s | this second p50 {:.1} ms p99 {:.1} ms | since start p99 {:.1} ms | predictions {} | late {} | rejected {} | partitions {} | entities {} | commits {}",
            (r.events_in - last.events_in) as f64 / (r.elapsed_s - last.elapsed_s).max(1e-9),
            q(&iv.event_to_prediction, 0.5),
            q(&iv.event_to_prediction, 0.99),
            r.p99_ms,
            r.predictions_out,
            r.late,
            r.rejected,
            r.partitions_owned,
            r.state_entities,
            r.commits
        );
        last = r;
    }
    let result = rt.stop();
    if let Some(s) = server {
        s.stop();
    }
    if let Some(e) = failure {
        return Err(e.into());
    }
    let report = result?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(ExitCode::SUCCESS)
}
