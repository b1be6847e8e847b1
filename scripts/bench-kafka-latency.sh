#!/usr/bin/env bash
# Event -> prediction latency of `nowcast run` on a real broker at a fixed input rate.
#
#   scripts/bench-kafka-latency.sh [--rate N] [--seconds S] [--delivery at-least-once|exactly-once]
#                                  [--threads N]
#
# A copy of examples/kafka/pipeline.toml with unique topics and group; `nowcast topics apply`;
# `nowcast run` starts and owns its partitions; then `nowcast generate --live` produces N events
# per second of wall-clock time for S seconds (event time = the moment each is generated) and
# the processor is stopped 3 s after the last one. Latency = event time -> prediction handed to
# the producer (the generator's producer linger, broker, fetch, decode, features, scoring).
# Printed: the whole run's P50/P99/P99.9 (the first second includes connection set-up and the
# consumer's first fetch), and the median and worst of the per-second P99 over the steady part
# (from the 3rd second to the end of input). Broker: NOWCAST_KAFKA, else scripts/kafka.sh start.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rate=30000 seconds=30 delivery=at-least-once threads=1
while [ $# -gt 0 ]; do
    case "$1" in
    --rate) rate="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --delivery) delivery="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    *) sed -n '2,12p' "$0" >&2; exit 2 ;;
    esac
done
export RUST_BACKTRACE=0
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/setup-python.sh | tail -n 1)}"
if [ -z "${NOWCAST_KAFKA:-}" ]; then
    trap 'scripts/kafka.sh stop >&2 || true' EXIT
    kafka_env="$(scripts/kafka.sh start)"
    export "${kafka_env?}"
fi
cargo build --release -p nowcast >&2
bin="${CARGO_TARGET_DIR:-$root/target}/release/nowcast"
work="$(mktemp -d /tmp/bench-kafka-latency.XXXXXX)"
id="lat$(date +%s%N | tail -c 10)"
sed -e "s/card-fraud\./$id./g" -e "s/\"nowcast-card-fraud\"/\"$id\"/" -e "s/^name = \"card-fraud\"/name = \"$id\"/" \
    -e "s#../../models#$root/models#" -e "s/^delivery = .*/delivery = \"$delivery\"/" \
    -e "s/^threads = 1 /threads = $threads /" -e 's/^data_dir = .*/data_dir = "data"/' \
    examples/kafka/pipeline.toml >"$work/pipeline.toml"
"$bin" topics apply --config "$work/pipeline.toml" >&2
"$bin" run --config "$work/pipeline.toml" --no-serve >"$work/report.json" 2>"$work/run.log" &
pid=$!
for _ in $(seq 1 300); do
    [ "$(grep -c 'assigned; restored' "$work/run.log" || true)" -ge 4 ] && break
    sleep 0.1
done
load="$(cut -d' ' -f1-3 /proc/loadavg)"
events=$((rate * seconds))
echo "bench-kafka-latency: $events events at $rate/s ($delivery, $threads thread(s)), load $load" >&2
"$bin" generate --live --rate "$rate" --events "$events" --users 100000 --kafka "$work/pipeline.toml"
sleep 3
kill -TERM "$pid"
wait "$pid"
echo "bench-kafka-latency: per-second lines in $work/run.log" >&2
python3 - "$work/report.json" "$work/run.log" "$rate" "$seconds" "$delivery" "$threads" "$load" <<'PY'
import json, re, statistics, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
rate, seconds, delivery, threads, load = sys.argv[3:]
secs = [(float(m.group(1)), float(m.group(2))) for m in
        (re.search(r"(\d+) ev/s \| this second p50 [\d.]+ ms p99 ([\d.]+) ms", l) for l in open(sys.argv[2]))
        if m]
busy = [p99 for n, p99 in secs if n > 0][2:]
med = statistics.median(busy) if busy else float("nan")
worst = max(busy) if busy else float("nan")
print(f"| {delivery} | {threads} | {rate} | {seconds} | {load} | {r['events_in']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['p999_ms']:.1f} | {med:.1f} | {worst:.1f} | {r['commits']} |")
PY
