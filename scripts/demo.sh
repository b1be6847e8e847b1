#!/usr/bin/env bash
# Runs the nowcast demo on the embedded default (no Kafka, no services) on a fresh machine:
# sets up ONNX Runtime (PyPI wheel, repo-local .venv), builds the release binary, runs
# `nowcast demo` with the arguments given (e.g. `--events 2000000 --json`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/setup-python.sh | tail -n 1)}"
export RUST_BACKTRACE=0
cargo build --release --quiet -p nowcast
exec target/release/nowcast demo "$@"
