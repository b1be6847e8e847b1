//! The data directory as users meet it: one `nowcast` process at a time writes there, `ingest`
//! into a free directory is seen in full by the next `run`, `ingest` never touches the
//! outputs, and an input larger than one ingest chunk arrives whole.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{nowcast, repo, run_ok};

fn ingest(config: &Path, input: &Path, data: &Path) -> Command {
    let mut c = nowcast();
    c.args(["ingest", "--config"])
        .arg(config)
        .arg("--input")
        .arg(input)
        .arg("--data-dir")
        .arg(data);
    c
}

fn run_to_end(config: &Path, data: &Path) -> Command {
    let mut c = nowcast();
    c.args(["run", "--no-serve", "--exit-when-done", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data);
    c
}

fn report(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("run prints its report as JSON")
}

fn generate(events: u32, seed: u32, path: &Path) {
    run_ok(
        nowcast()
            .args(["generate", "--users", "500", "--rate", "50"])
            .args(["--start", "2026-03-01T00:00:00Z", "--fraud-rate", "0.001"])
            .args(["--events", &events.to_string(), "--seed", &seed.to_string()])
            .arg("--output")
            .arg(path),
    );
}

/// Asserts that `cmd` fails because `data` is locked by `pid`, with the fix in the message.
fn assert_refused(cmd: &mut Command, data: &Path, pid: u32) {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{cmd:?} succeeded: {stderr}");
    for part in [
        &format!("data directory {} is in use", data.display()),
        &format!("(pid {pid})"),
        "POST them to /v1/events",
    ] {
        assert!(stderr.contains(part), "`{part}` missing from: {stderr}");
    }
}

/// Every output file under `<data>/out`, with its bytes.
fn output_files(data: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for kind in std::fs::read_dir(data.join("out")).unwrap() {
        for f in std::fs::read_dir(kind.unwrap().path()).unwrap() {
            let path = f.unwrap().path();
            files.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    files.sort();
    files
}

/// Prediction lines per file without their wall-clock `emit_time`.
fn predictions(data: &Path) -> Vec<String> {
    output_files(data)
        .into_iter()
        .filter(|(p, _)| p.parent().unwrap().ends_with("predictions"))
        .flat_map(|(p, bytes)| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(|l| {
                    let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v.as_object_mut().unwrap().remove("emit_time");
                    format!("{name}:{v}")
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn ingest_or_run_into_a_data_dir_in_use_is_refused_with_the_holders_pid() {
    let config = repo().join("tests/golden/basic/pipeline.toml");
    let input = repo().join("tests/golden/basic/input.jsonl");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");

    // Held through the library call the commands use.
    let lock = nowcast_pipeline::lock_data_dir(&data).unwrap();
    assert_refused(
        &mut ingest(&config, &input, &data),
        &data,
        std::process::id(),
    );
    drop(lock);

    // Held by a running pipeline.
    let mut running = nowcast()
        .args(["run", "--no-serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = running.id();
    let started = Instant::now();
    let holder = || std::fs::read_to_string(data.join("LOCK")).unwrap_or_default();
    while holder().trim() != pid.to_string() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "`nowcast run` did not lock {}",
            data.display()
        );
        assert!(
            running.try_wait().unwrap().is_none(),
            "`nowcast run` exited"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_refused(&mut ingest(&config, &input, &data), &data, pid);
    assert_refused(&mut run_to_end(&config, &data), &data, pid);
    assert!(matches!(
        nowcast_pipeline::lock_data_dir(&data),
        Err(nowcast_pipeline::PipelineError::DataDirInUse { pid: Some(p), .. }) if p == pid
    ));

    // kill -9 leaves no stale lock: the next ingest and run go ahead and see every event.
    running.kill().unwrap();
    running.wait().unwrap();
    run_ok(&mut ingest(&config, &input, &data));
    let r = report(&run_ok(&mut run_to_end(&config, &data)));
    assert_eq!(r["events_in"], 23, "{r}");
}

#[test]
fn ingest_of_an_input_larger_than_one_chunk_appends_every_line() {
    let config = repo().join("tests/golden/generated/pipeline.toml");
    let tmp = tempfile::tempdir().unwrap();
    let generated = tmp.path().join("generated.jsonl");
    generate(40_000, 3, &generated);
    // A bad line in the middle and a last line without its newline.
    let text = std::fs::read_to_string(&generated).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut body = lines[..20_000].join("\n");
    body.push_str("\n{not json\n");
    body.push_str(&lines[20_000..].join("\n"));
    let input = tmp.path().join("input.jsonl");
    std::fs::write(&input, &body).unwrap();
    assert!(body.len() > 6 << 20, "{} bytes", body.len());

    for from_stdin in [false, true] {
        let data = tmp.path().join(format!("data-{from_stdin}"));
        let out = if from_stdin {
            let file = std::fs::File::open(&input).unwrap();
            run_ok(ingest(&config, Path::new("-"), &data).stdin(Stdio::from(file)))
        } else {
            run_ok(&mut ingest(&config, &input, &data))
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("appended 40000 events (1 refused lines appended for dead-lettering)"),
            "{stderr}"
        );
        let r = report(&run_ok(&mut run_to_end(&config, &data)));
        assert_eq!(
            (&r["events_in"], &r["rejected"]),
            (&40_001.into(), &1.into()),
            "{r}"
        );
    }
}

/// A crashed run leaves output bytes past its last checkpoint (a running one keeps writing
/// there); `ingest` used to truncate them, which under a live writer left runs of NUL bytes.
#[test]
fn ingest_after_a_crashed_run_leaves_the_output_files_alone() {
    let tmp = tempfile::tempdir().unwrap();
    // Rare checkpoints, so the crash leaves plenty written past the last one.
    let spec = std::fs::read_to_string(repo().join("tests/golden/generated/pipeline.toml"))
        .unwrap()
        .replace(
            "checkpoint_interval = \"1ms\"",
            "checkpoint_interval = \"1h\"",
        );
    let config = tmp.path().join("pipeline.toml");
    std::fs::write(&config, spec).unwrap();
    let (first, second) = (tmp.path().join("a.jsonl"), tmp.path().join("b.jsonl"));
    generate(20_000, 1, &first);
    generate(5_000, 2, &second);

    let crashed = tmp.path().join("crashed");
    run_ok(&mut ingest(&config, &first, &crashed));
    let status = run_to_end(&config, &crashed)
        .env("NOWCAST_FAULT_ABORT_AFTER", "15000")
        .output()
        .unwrap()
        .status;
    assert!(!status.success(), "the fault-injected run must die");
    let before = output_files(&crashed);
    let written: usize = before.iter().map(|(_, b)| b.len()).sum();
    assert!(written > 0, "the crashed run wrote no output");
    run_ok(&mut ingest(&config, &second, &crashed));
    assert!(
        output_files(&crashed) == before,
        "ingest changed the output files"
    );

    // The restart gives what one uninterrupted run over both inputs gives.
    run_ok(&mut run_to_end(&config, &crashed));
    let straight = tmp.path().join("straight");
    run_ok(&mut ingest(&config, &first, &straight));
    run_ok(&mut ingest(&config, &second, &straight));
    run_ok(&mut run_to_end(&config, &straight));
    let (got, want) = (predictions(&crashed), predictions(&straight));
    assert!(got == want, "{} vs {} predictions", got.len(), want.len());
    assert!(!got.iter().any(|l| l.contains('\0')));
}
