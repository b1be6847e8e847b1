//! The real server on a loopback socket: it answers, and it stops when told to.

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use common::FakeBackend;
use nowcast_serve::{serve, serve_on, ServeConfig, ServeError};
use tokio::net::TcpListener;

/// One HTTP/1.1 request over a fresh connection; returns the whole response text.
fn raw_request(addr: std::net::SocketAddr, request: String) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_over_tcp_and_shuts_down_gracefully() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_on(
        listener,
        Arc::new(FakeBackend::default()),
        None,
        ServeConfig::default(),
        async {
            let _ = stopped.await;
        },
    ));

    let body = r#"{"entity":"u1","fields":{"amount":2}}"#;
    let request = format!(
        "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let response = tokio::task::spawn_blocking(move || raw_request(addr, request))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""score":0.25"#), "{response}");

    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops after shutdown")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn serve_refuses_a_bad_config_and_a_busy_port() {
    let backend = Arc::new(FakeBackend::default());
    let config = ServeConfig {
        max_body_bytes: 0,
        ..ServeConfig::default()
    };
    let err = serve(backend.clone(), None, config, async {})
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ServeError::InvalidConfig {
                field: "max_body_bytes",
                ..
            }
        ),
        "{err}"
    );

    let busy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = ServeConfig {
        addr: busy.local_addr().unwrap(),
        ..ServeConfig::default()
    };
    let err = serve(backend, None, config, async {}).await.unwrap_err();
    assert!(matches!(err, ServeError::Bind { .. }), "{err}");
}
