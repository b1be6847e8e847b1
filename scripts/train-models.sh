#!/usr/bin/env bash
# Retrains models/fraud_{logreg,gbt}.onnx on features computed by nowcast itself:
# a seeded generated stream at the demo's traffic (100 000 users, 50 000 events/s of event
# time) → nowcast ingest + run --features with the demo spec → join with the labels → train.py.
#   scripts/train-models.sh [EVENTS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
events="${1:-1500000}"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/setup-python.sh --train | tail -n 1)}"
export RUST_BACKTRACE=0
[ -n "${NOWCAST_BIN:-}" ] || cargo build --release --quiet -p nowcast
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
nc="${NOWCAST_BIN:-target/release/nowcast}"
$nc generate --events "$events" --users 100000 --rate 50000 --fraud-rate 0.001 --start 2026-01-01T00:00:00Z --seed 11 -o "$work/events.jsonl"
$nc ingest --config examples/demo/pipeline.toml --data-dir "$work/data" --input "$work/events.jsonl"
$nc run --config examples/demo/pipeline.toml --data-dir "$work/data" --features --exit-when-done --no-serve > "$work/report.json"
.venv/bin/python models/join_features.py "$work/events.jsonl" "$work/data/out/features" "$work/rows.jsonl"
.venv/bin/python models/train.py --features "$work/rows.jsonl" --seed 11
