//! Running the `nowcast` binary from the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The binary under test, without backtraces.
pub fn nowcast() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nowcast"));
    c.env("RUST_BACKTRACE", "0");
    c
}

/// Runs `cmd`, which must succeed (its stderr and stdout are shown if not).
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn nowcast");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}
