//! Running the API: bind, log the address, serve until the shutdown future completes, then
//! finish in-flight requests.

use std::future::Future;
use std::sync::Arc;

use axum::serve::ListenerExt;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::error::ServeError;
use crate::{router, Backend, ServeConfig};

/// Validates `config`, binds `config.addr`, logs the bound address to stderr and serves the
/// API until `shutdown` completes; in-flight requests are then allowed to finish.
///
/// # Cancel safety
///
/// Dropping the future closes the listener and every open connection at once; prefer
/// completing `shutdown` for a graceful stop.
pub async fn serve<B: Backend>(
    backend: Arc<B>,
    metrics: Option<PrometheusHandle>,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    config.validate()?;
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.addr,
            source,
        })?;
    serve_on(listener, backend, metrics, config, shutdown).await
}

/// Like [`serve`], on a listener the caller has bound (e.g. to port 0 in tests);
/// `config.addr` is ignored.
pub async fn serve_on<B: Backend>(
    listener: TcpListener,
    backend: Arc<B>,
    metrics: Option<PrometheusHandle>,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    config.validate()?;
    let local = listener.local_addr().map_err(ServeError::Serve)?;
    eprintln!("nowcast-serve: listening on http://{local}");
    let app = router(backend, metrics, &config);
    // Responses are small and written at once: do not let Nagle hold them back.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServeError::Serve)
}
