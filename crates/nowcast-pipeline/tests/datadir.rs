//! One process at a time in a data directory, and `ingest` (an ingest-only runtime) touches
//! nothing but the input log.

use std::path::{Path, PathBuf};

use nowcast_pipeline::{lock_data_dir, PipelineError, RunOptions, Runtime};
use nowcast_serve::Backend as _;

fn spec() -> nowcast_spec::PipelineSpec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/basic/pipeline.toml");
    nowcast_spec::read_spec(&path).unwrap()
}

fn input() -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/basic/input.jsonl"),
    )
    .unwrap()
}

fn opts(dir: &Path, ingest_only: bool) -> RunOptions {
    RunOptions {
        data_dir: Some(dir.into()),
        ingest_only,
        ..Default::default()
    }
}

fn assert_in_use(result: Result<Runtime, PipelineError>, dir: &Path) {
    let Err(err) = result else {
        panic!("a second runtime on a data dir in use must be refused");
    };
    let pid = std::process::id();
    assert!(
        matches!(&err, PipelineError::DataDirInUse { pid: Some(p), .. } if *p == pid),
        "{err:?}"
    );
    let msg = err.to_string();
    for part in [
        &dir.display().to_string(),
        &format!("pid {pid}"),
        "POST them to /v1/events",
    ] {
        assert!(msg.contains(part), "`{part}` missing from: {msg}");
    }
}

/// Output files of every kind, with their bytes.
fn output_files(out: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for kind in std::fs::read_dir(out).unwrap() {
        for f in std::fs::read_dir(kind.unwrap().path()).unwrap() {
            let path = f.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            files.push((path, bytes));
        }
    }
    files.sort();
    files
}

#[test]
fn second_run_or_ingest_on_a_data_dir_in_use_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let running = Runtime::start(spec(), opts(&dir, false)).unwrap();
    assert_in_use(Runtime::start(spec(), opts(&dir, true)), &dir);
    assert_in_use(Runtime::start(spec(), opts(&dir, false)), &dir);
    // `demo` starts fresh: it must not delete what a running pipeline uses either.
    running.backend().ingest(&input()).unwrap();
    running.flush_logs().unwrap();
    let fresh = RunOptions {
        fresh: true,
        ..opts(&dir, false)
    };
    assert_in_use(Runtime::start(spec(), fresh), &dir);
    assert!(matches!(
        lock_data_dir(&dir),
        Err(PipelineError::DataDirInUse { .. })
    ));
    let report = running.stop(true).unwrap();
    assert_eq!(report.events_in, 23, "{report:?}");

    // Released with the runtime: the next one starts and resumes where the first stopped.
    let ingest = Runtime::start(spec(), opts(&dir, true)).unwrap();
    ingest.backend().ingest(&input()).unwrap();
    ingest.stop(false).unwrap();
    let rerun = Runtime::start(spec(), opts(&dir, false)).unwrap();
    let report = rerun.stop(true).unwrap();
    assert_eq!(
        report.events_in, 23,
        "only the second ingest is new: {report:?}"
    );
}

/// A crashed (or still running) writer leaves output bytes past its last checkpoint; the
/// ingest runtime used to truncate them, under the feet of the process writing there.
#[test]
fn ingest_only_runtime_leaves_output_files_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let rt = Runtime::start(spec(), opts(&dir, false)).unwrap();
    rt.backend().ingest(&input()).unwrap();
    rt.stop(true).unwrap();
    let out = dir.join("out");
    let preds = out.join("predictions/p-0000.jsonl");
    let mut past_checkpoint = std::fs::read(&preds).unwrap();
    past_checkpoint.extend_from_slice(b"{\"written\":\"after the last checkpoint\"}\n");
    std::fs::write(&preds, &past_checkpoint).unwrap();
    let before = output_files(&out);

    let ingest = Runtime::start(spec(), opts(&dir, true)).unwrap();
    let outcome = ingest.backend().ingest(&input()).unwrap();
    assert_eq!(outcome.accepted + outcome.rejected, 23);
    ingest.stop(false).unwrap();
    assert!(
        output_files(&out) == before,
        "ingest changed the output files"
    );
}
