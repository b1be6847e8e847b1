//! Installs the Prometheus recorder behind the `metrics` facade.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Installs the global recorder (latency metrics as histograms) and returns its handle.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".into()),
            nowcast_pipeline::stats::LATENCY_BUCKETS,
        )?
        .install_recorder()?;
    nowcast_pipeline::stats::describe();
    nowcast_serve::metrics::describe();
    nowcast_kafka::telemetry::describe();
    Ok(handle)
}
