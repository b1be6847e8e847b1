#!/usr/bin/env bash
# Serving latency while the pipeline ingests. Starts `nowcast demo` (generating EVENT_RATE
# events/s, default 20000) on 127.0.0.1:18080, lets state fill for WARM seconds (default 12),
# then loads GET /v1/features/{random user u-0 … u-99999} from a separate process:
#   - by default open loop with `http_load` (crates/nowcast-serve/examples/http_load.rs):
#     REQ_RATE requests/s at fixed send times over CONNECTIONS keep-alive connections,
#     latency counted from each request's scheduled send time; prints one JSON object;
#   - with LOAD=wrk, closed loop with wrk (Debian package `wrk`): as fast as responses return
#     on CONNECTIONS connections (REQ_RATE is then ignored); its tail is the saturated
#     machine's queueing.
# Then prints the demo's last live lines (did the pipeline keep up?) and its final report.
#   scripts/bench-serve.sh [REQ_RATE] [CONNECTIONS] [SECONDS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
req_rate="${1:-20000}" conns="${2:-8}" secs="${3:-20}"
event_rate="${EVENT_RATE:-20000}" warm="${WARM:-12}" load="${LOAD:-http_load}"
if [ "$load" = wrk ] && ! command -v wrk >/dev/null; then
  echo "bench-serve.sh: LOAD=wrk needs wrk (apt-get install wrk)" >&2
  exit 1
fi
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/setup-python.sh | tail -n 1)}"
export RUST_BACKTRACE=0
cargo build --release --quiet -p nowcast
cargo build --release --quiet -p nowcast-serve --example http_load
work="$(mktemp -d)"
target/release/nowcast demo --rate "$event_rate" --duration $((warm + secs + 4)) \
  --addr 127.0.0.1:18080 --data-dir "$work/data" > "$work/report.txt" 2> "$work/live.txt" &
demo=$!
trap 'kill $demo 2>/dev/null || true; rm -rf "$work"' EXIT
sleep "$warm"
if [ "$load" = wrk ]; then
  wrk -t1 -c"$conns" -d"${secs}s" --latency -s bench/features.lua http://127.0.0.1:18080
else
  target/release/examples/http_load --addr 127.0.0.1:18080 --rate "$req_rate" \
    --connections "$conns" --seconds "$secs" --path /v1/features/u- --ids 100000
fi
wait $demo
tail -n 6 "$work/live.txt"
cat "$work/report.txt"
