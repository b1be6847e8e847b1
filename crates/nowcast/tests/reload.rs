//! Model hot reload through the whole binary: replacing the model file while `nowcast run`
//! serves and processes switches predictions (and `/v1/predict`) to the new version without a
//! restart, and every prediction names the version that produced it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A minimal HTTP/1.1 client (one request per connection).
fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let status = resp.split(' ').nth(1)?.parse().ok()?;
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

fn predictions(dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir.join("out/predictions"))
        .into_iter()
        .flatten()
    {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        // Only complete lines: the worker may be mid-write.
        for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
            out.push(serde_json::from_str(line).unwrap());
        }
    }
    out
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn events(from: usize, n: usize) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    (from..from + n)
        .map(|i| {
            format!(
                r#"{{"txn_id":"r-{i}","user_id":"u-{}","merchant_id":"m-{i}","amount":{}.5,"country":"US","foreign":false,"ts":{now}}}"#,
                i % 7,
                i % 90
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn replacing_the_model_file_switches_versions_without_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model.onnx");
    std::fs::copy(repo().join("models/fraud_logreg.onnx"), &model).unwrap();
    let spec = std::fs::read_to_string(repo().join("examples/demo/pipeline.toml"))
        .unwrap()
        .replace(
            "path = \"../../models/fraud_gbt.onnx\"",
            "path = \"model.onnx\"\nreload_interval = \"100ms\"",
        )
        .replace("data_dir = \"../../data/demo\"", "data_dir = \"data\"")
        .replace(
            "checkpoint_interval = \"30s\"",
            "checkpoint_interval = \"200ms\"",
        );
    let spec_path = tmp.path().join("pipeline.toml");
    std::fs::write(&spec_path, spec).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nowcast"))
        .args(["run", "--config"])
        .arg(&spec_path)
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .env("RUST_BACKTRACE", "0")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let result = std::panic::catch_unwind(|| {
        wait_for("healthz", || {
            http(port, "GET", "/healthz", "").filter(|(s, _)| *s == 200)
        });
        let (status, body) = http(port, "POST", "/v1/events", &events(0, 40)).unwrap();
        assert_eq!(status, 200, "{body}");
        let data = tmp.path().join("data");
        let first = wait_for("40 predictions", || {
            Some(predictions(&data)).filter(|p| p.len() >= 40)
        });
        let v1 = first[0]["model_version"].as_str().unwrap().to_string();
        assert!(first.iter().all(|p| p["model_version"] == v1.as_str()));

        // Replace the file atomically with a different model.
        let staged = tmp.path().join("model.onnx.new");
        std::fs::copy(repo().join("models/fraud_gbt.onnx"), &staged).unwrap();
        std::fs::rename(&staged, &model).unwrap();
        let v2 = wait_for("/v1/predict to use the new version", || {
            let (_, body) = http(
                port,
                "POST",
                "/v1/predict",
                r#"{"entity":"u-1","fields":{"amount":10}}"#,
            )?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            let version = v["model_version"].as_str()?.to_string();
            (version != v1).then_some(version)
        });
        http(port, "POST", "/v1/events", &events(40, 40)).unwrap();
        let all = wait_for("80 predictions", || {
            Some(predictions(&data)).filter(|p| p.len() >= 80)
        });
        let later: Vec<_> = all
            .iter()
            .filter(|p| {
                p["event_id"].as_str().unwrap()[2..]
                    .parse::<usize>()
                    .unwrap()
                    >= 40
            })
            .collect();
        assert_eq!(later.len(), 40);
        assert!(
            later.iter().all(|p| p["model_version"] == v2.as_str()),
            "events sent after the swap were scored by the old model"
        );
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
