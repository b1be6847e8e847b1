//! Golden pipeline tests: `tests/golden/<case>/{pipeline.toml,input.jsonl}` in, the outputs
//! compared with `tests/golden/<case>/expected/*.jsonl` (`BLESS=1` rewrites them). Each case
//! also runs with a crash in the middle (the process aborts after some records, then restarts
//! from its checkpoint) and must give exactly the same outputs as the uninterrupted run.

use std::path::{Path, PathBuf};
use std::process::Command;

const KINDS: [&str; 3] = ["predictions", "dead_letters", "late"];

mod common;

use common::{nowcast, repo};

/// Runs `cmd`, which must succeed; its stdout.
fn run_ok(cmd: &mut Command) -> String {
    String::from_utf8(common::run_ok(cmd).stdout).unwrap()
}

/// Reads every partition's output of `kind`, in partition order, dropping the wall-clock
/// `emit_time`.
fn outputs(data: &Path, kind: &str) -> String {
    let dir = data.join("out").join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    let mut out = String::new();
    for f in files {
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            let mut v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: bad line {line}: {e}", f.display()));
            if let Some(obj) = v.as_object_mut() {
                obj.remove("emit_time");
            }
            out.push_str(&format!(
                "{}:{}\n",
                f.file_name().unwrap().to_string_lossy(),
                v
            ));
        }
    }
    out
}

fn ingest(case: &Path, data: &Path) {
    run_ok(
        nowcast()
            .args(["ingest", "--config"])
            .arg(case.join("pipeline.toml"))
            .arg("--input")
            .arg(case.join("input.jsonl"))
            .arg("--data-dir")
            .arg(data),
    );
}

fn run_to_end(case: &Path, data: &Path) -> serde_json::Value {
    let stdout = run_ok(
        nowcast()
            .args(["run", "--no-serve", "--exit-when-done", "--config"])
            .arg(case.join("pipeline.toml"))
            .arg("--data-dir")
            .arg(data),
    );
    serde_json::from_str(stdout.trim()).expect("run prints its report as JSON")
}

fn check_case(name: &str) {
    let case = repo().join("tests/golden").join(name);
    let tmp = tempfile::tempdir().unwrap();

    // Uninterrupted run.
    let straight = tmp.path().join("straight");
    ingest(&case, &straight);
    let report = run_to_end(&case, &straight);
    let expected_dir = case.join("expected");
    for kind in KINDS {
        let got = outputs(&straight, kind);
        let path = expected_dir.join(format!("{kind}.jsonl"));
        if std::env::var_os("BLESS").is_some() {
            std::fs::create_dir_all(&expected_dir).unwrap();
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{} missing; run with BLESS=1", path.display()));
        assert!(
            got == want,
            "{name}/{kind} differs from {}:\n--- got\n{got}\n--- want\n{want}",
            path.display()
        );
    }
    let total = report["events_in"].as_u64().unwrap();
    assert!(total > 4, "{report}");

    // Crash part-way (the process aborts without a final checkpoint), then restart.
    for abort_after in [total / 3, total / 2 + 1] {
        let crashed = tmp.path().join(format!("crash-{abort_after}"));
        ingest(&case, &crashed);
        let status = nowcast()
            .args(["run", "--no-serve", "--exit-when-done", "--config"])
            .arg(case.join("pipeline.toml"))
            .arg("--data-dir")
            .arg(&crashed)
            .env("NOWCAST_FAULT_ABORT_AFTER", abort_after.to_string())
            .output()
            .unwrap()
            .status;
        assert!(
            !status.success(),
            "the fault-injected run must die (abort after {abort_after})"
        );
        run_to_end(&case, &crashed);
        for kind in KINDS {
            assert_eq!(
                outputs(&crashed, kind),
                outputs(&straight, kind),
                "{name}/{kind} after a crash at {abort_after} records"
            );
        }
    }
}

#[test]
fn golden_basic_late_out_of_order_and_bad_records() {
    check_case("basic");
}

#[test]
fn golden_generated_stream_with_crash_and_restart() {
    check_case("generated");
}

/// `kill -9` at an arbitrary moment (not at a fault-injection point) while processing a larger
/// stream; the restarted run must produce the same outputs as an uninterrupted one.
#[test]
fn sigkill_mid_run_then_restart_matches_uninterrupted_run() {
    let case = repo().join("tests/golden/generated");
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("big.jsonl");
    run_ok(
        nowcast()
            .args([
                "generate",
                "--events",
                "200000",
                "--users",
                "5000",
                "--start",
                "2026-03-01T00:00:00Z",
                "--rate",
                "50",
                "--fraud-rate",
                "0.001",
                "--output",
            ])
            .arg(&input),
    );
    let cmd_ingest = |data: &Path| {
        run_ok(
            nowcast()
                .args(["ingest", "--config"])
                .arg(case.join("pipeline.toml"))
                .arg("--input")
                .arg(&input)
                .arg("--data-dir")
                .arg(data),
        );
    };
    let straight = tmp.path().join("straight");
    cmd_ingest(&straight);
    run_to_end(&case, &straight);

    let killed = tmp.path().join("killed");
    cmd_ingest(&killed);
    let mut child = nowcast()
        .args(["run", "--no-serve", "--exit-when-done", "--config"])
        .arg(case.join("pipeline.toml"))
        .arg("--data-dir")
        .arg(&killed)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until some predictions are out and a checkpoint has been written (so the restart
    // resumes from one taken while events kept changing the state), then SIGKILL.
    let preds = killed.join("out/predictions");
    let state = killed.join("state");
    let started = std::time::Instant::now();
    loop {
        let size: u64 = std::fs::read_dir(&preds)
            .map(|d| d.map(|e| e.unwrap().metadata().unwrap().len()).sum())
            .unwrap_or(0);
        let checkpointed = std::fs::read_dir(&state).is_ok_and(|d| {
            d.filter_map(Result::ok)
                .any(|e| e.path().extension().is_some_and(|x| x == "ckpt"))
        });
        if (size > 2_000_000 && checkpointed) || started.elapsed().as_secs() > 60 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let finished_early = child.try_wait().unwrap().is_some();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !finished_early,
        "the run finished before it could be killed; make the input larger"
    );
    run_to_end(&case, &killed);
    for kind in KINDS {
        let (a, b) = (outputs(&killed, kind), outputs(&straight, kind));
        assert!(
            a == b,
            "{kind} differs after kill -9 ({} vs {} lines)",
            a.lines().count(),
            b.lines().count()
        );
    }
}

/// The embedded default without a registry: the demo events written as an Avro container
/// file (`generate --avro`), ingested into a bare Avro source, give exactly the predictions of
/// the same events as JSON lines.
#[test]
fn avro_container_input_gives_the_predictions_of_the_json_input() {
    let tmp = tempfile::tempdir().unwrap();
    let (json, avro) = (
        tmp.path().join("events.jsonl"),
        tmp.path().join("events.avro"),
    );
    let schema = repo().join("examples/avro-local/transaction.avsc");
    let generate = |extra: &[&std::ffi::OsStr]| {
        run_ok(
            nowcast()
                .args([
                    "generate", "--events", "4000", "--users", "300", "--seed", "9",
                ])
                .args(["--start", "2026-01-01T00:00:00Z"])
                .args(extra),
        )
    };
    generate(&["-o".as_ref(), json.as_os_str()]);
    generate(&[
        "--avro".as_ref(),
        schema.as_os_str(),
        "-o".as_ref(),
        avro.as_os_str(),
    ]);
    assert!(std::fs::metadata(&avro).unwrap().len() < std::fs::metadata(&json).unwrap().len() / 2);
    let mut results = Vec::new();
    for (spec, input) in [("examples/demo", &json), ("examples/avro-local", &avro)] {
        let data = tmp.path().join(spec.replace('/', "-"));
        let config = repo().join(spec).join("pipeline.toml");
        run_ok(
            nowcast()
                .args(["ingest", "--config"])
                .arg(&config)
                .arg("--input")
                .arg(input)
                .arg("--data-dir")
                .arg(&data),
        );
        let report: serde_json::Value = serde_json::from_str(&run_ok(
            nowcast()
                .args(["run", "--no-serve", "--exit-when-done", "--config"])
                .arg(&config)
                .arg("--data-dir")
                .arg(&data),
        ))
        .unwrap();
        assert_eq!(report["predictions_out"], 4000, "{report}");
        results.push(outputs(&data, "predictions"));
    }
    assert!(!results[0].is_empty());
    assert_eq!(results[0], results[1]);
}
