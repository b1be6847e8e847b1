#!/usr/bin/env bash
# Serving latency while the pipeline ingests: starts `nowcast demo` (generating RATE events/s,
# default 20000) on 127.0.0.1:18080, lets state fill for WARM seconds, then loads
# GET /v1/features/{random user} from a separate process with wrk (Debian package `wrk`).
# Prints wrk's latency distribution and the demo's final report.
#   scripts/bench-serve.sh [RATE] [CONNECTIONS] [SECONDS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rate="${1:-20000}" conns="${2:-8}" secs="${3:-20}" warm="${WARM:-15}"
command -v wrk >/dev/null || { echo "bench-serve.sh: install wrk (apt-get install wrk)" >&2; exit 1; }
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/setup-python.sh | tail -n 1)}"
export RUST_BACKTRACE=0
cargo build --release --quiet -p nowcast
work="$(mktemp -d)"
target/release/nowcast demo --rate "$rate" --duration $((warm + secs + 5)) --addr 127.0.0.1:18080 \
  --data-dir "$work/data" > "$work/report.txt" 2> "$work/live.txt" &
demo=$!
trap 'kill $demo 2>/dev/null || true; rm -rf "$work"' EXIT
sleep "$warm"
wrk -t1 -c"$conns" -d"${secs}s" --latency -s bench/features.lua http://127.0.0.1:18080
wait $demo
tail -n 5 "$work/live.txt"
cat "$work/report.txt"
