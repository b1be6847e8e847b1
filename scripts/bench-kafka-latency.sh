#!/usr/bin/env bash
# Event -> prediction latency of `nowcast run` on a real broker at a fixed input rate.
#
#   scripts/bench-kafka-latency.sh [--rate N] [--seconds S] [--warmup W]
#                                  [--delivery at-least-once|exactly-once] [--threads N]
#                                  [--commit-interval DURATION] [--snapshot-interval DURATION]
#                                  [--producer KEY=VALUE]...
#
# A copy of examples/kafka/pipeline.toml with unique topics and group; `nowcast topics apply`;
# `nowcast run` starts and owns its partitions; then `nowcast generate --live` produces N events
# per second of wall-clock time (event time = the moment each is generated), without a break,
# for W seconds (default 20) of warm-up — connections, the producer's and the consumer's first
# requests, the broker's JIT and heap sizing — and then the S measured seconds; the processor
# is stopped 3 s after the last event. Latency = event time -> prediction handed to the producer (the generator's
# producer linger, broker, fetch, decode, features, scoring).
# The measured window is read exactly from the processor's Prometheus histogram
# (`nowcast_event_to_prediction_seconds`, scraped before and after it): the share of its
# events within 5, 10 and 25 ms, and the bucket holding its P99. The source topic stamps
# records with the broker's append time (`message.timestamp.type = LogAppendTime`), so the
# same shares are printed for append -> prediction (`nowcast_ingest_to_prediction_seconds`:
# fetch, decode, features, scoring); the difference from event -> prediction is the time before
# the append (the generator's producer and the broker's request handling). Also printed: the whole run's
# P50/P99/P99.9 (warm-up included) and the median and worst per-second P99 of the measured
# window. Broker: NOWCAST_KAFKA, else scripts/kafka.sh start.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rate=30000 seconds=30 warmup=20 delivery=at-least-once threads=1 port=18089 commit=100ms snapshot=60s
producer=()
while [ $# -gt 0 ]; do
    case "$1" in
    --rate) rate="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --delivery) delivery="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --commit-interval) commit="$2"; shift 2 ;;
    --snapshot-interval) snapshot="$2"; shift 2 ;;
    --producer) producer+=("$2"); shift 2 ;;
    *) sed -n '2,24p' "$0" >&2; exit 2 ;;
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
    -e "s/^commit_interval = .*/commit_interval = \"$commit\"/" \
    -e "s/^snapshot_interval = \"[^\"]*\"/snapshot_interval = \"$snapshot\"/" \
    -e "s/^threads = 1 /threads = $threads /" -e 's/^data_dir = .*/data_dir = "data"/' \
    examples/kafka/pipeline.toml >"$work/pipeline.toml"
# --producer KEY=VALUE: librdkafka properties of every producer (the generator's and nowcast's).
if [ ${#producer[@]} -gt 0 ]; then
    printf '\n[kafka.producer]\n' >>"$work/pipeline.toml"
    for kv in "${producer[@]}"; do
        printf '"%s" = "%s"\n' "${kv%%=*}" "${kv#*=}" >>"$work/pipeline.toml"
    done
fi
"$bin" topics apply --config "$work/pipeline.toml" >&2
scripts/kafka.sh run kafka.admin.ConfigCommand --bootstrap-server "$NOWCAST_KAFKA" --alter \
    --entity-type topics --entity-name "$id.transactions" \
    --add-config message.timestamp.type=LogAppendTime >&2
"$bin" run --config "$work/pipeline.toml" --addr "127.0.0.1:$port" >"$work/report.json" 2>"$work/run.log" &
pid=$!
for _ in $(seq 1 300); do
    [ "$(grep -c 'assigned; restored' "$work/run.log" || true)" -ge 4 ] && break
    sleep 0.1
done
load="$(cut -d' ' -f1-3 /proc/loadavg)"
scrape() { curl -sf "http://127.0.0.1:$port/metrics" | grep -E '^nowcast_(event_to_prediction|ingest_to_prediction|kafka_commit)_seconds_' >"$1"; }
echo "bench-kafka-latency: $((rate * (warmup + seconds))) events at $rate/s ($delivery, $threads thread(s)): ${warmup} s of warm-up, then ${seconds} s measured; load $load" >&2
"$bin" generate --live --rate "$rate" --events $((rate * (warmup + seconds))) --users 100000 \
    --kafka "$work/pipeline.toml" &
gen=$!
sleep "$warmup"
scrape "$work/before.txt"
before_lines="$(wc -l <"$work/run.log")"
sleep "$seconds"
scrape "$work/after.txt"
after_lines="$(wc -l <"$work/run.log")"
wait "$gen"
sleep 3
sed -n "$((before_lines + 1)),${after_lines}p" "$work/run.log" >"$work/measured.log"
kill -TERM "$pid"
wait "$pid"
echo "bench-kafka-latency: per-second lines in $work/run.log" >&2
python3 - "$work/report.json" "$work/measured.log" "$work/before.txt" "$work/after.txt" \
    "$rate" "$seconds" "$delivery" "$threads" "$load" <<'PY'
import json, re, statistics, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
rate, seconds, delivery, threads, load = sys.argv[5:]

def buckets(path, name):
    out, count = {}, 0.0
    for line in open(path):
        m = re.match(name + r'_bucket\{le="([^"]+)"\} (\S+)', line)
        if m:
            out[m.group(1)] = float(m.group(2))
        m = re.match(name + r"_count (\S+)", line)
        if m:
            count = float(m.group(1))
    return out, count

def shares(name):
    (b0, c0), (b1, c1) = buckets(sys.argv[3], name), buckets(sys.argv[4], name)
    n = c1 - c0
    return n, {le: (b1[le] - b0.get(le, 0.0)) / n if n else float("nan") for le in b1}

n, share = shares("nowcast_event_to_prediction_seconds")
_, appended = shares("nowcast_ingest_to_prediction_seconds")
def within(le, s=share):
    return 100.0 * s.get(le, float("nan"))
p99_bucket = next((le for le in sorted(share, key=lambda x: float(x) if x != "+Inf" else 1e9)
                   if share[le] >= 0.99), "+Inf")
secs = [(float(m.group(1)), float(m.group(2))) for m in
        (re.search(r"(\d+) ev/s \| this second p50 [\d.]+ ms p99 ([\d.]+) ms", l) for l in open(sys.argv[2]))
        if m]
busy = [p99 for k, p99 in secs if k > 0]
med = statistics.median(busy) if busy else float("nan")
worst = max(busy) if busy else float("nan")
ok = sum(1 for p in busy if p <= 10.0)
def total(path, name):
    return {k: float(v) for line in open(path)
            for k, v in [line.split()] if k in (name + "_sum", name + "_count")}
c0, c1 = (total(p, "nowcast_kafka_commit_seconds") for p in sys.argv[3:5])
commits = c1.get("nowcast_kafka_commit_seconds_count", 0) - c0.get("nowcast_kafka_commit_seconds_count", 0)
commit_s = c1.get("nowcast_kafka_commit_seconds_sum", 0) - c0.get("nowcast_kafka_commit_seconds_sum", 0)
_, commit_share = shares("nowcast_kafka_commit_seconds")
print(f"commits in the window: {commits:.0f}, mean {1000 * commit_s / commits if commits else float('nan'):.2f} ms, "
      + ", ".join(f"<= {float(le) * 1000:g} ms {100 * v:.1f} %" for le, v in commit_share.items()
                  if le != "+Inf" and float(le) <= 0.05))
print("| delivery | threads | rate | measured s | load before | events in window | within 5 / 10 / 25 ms | P99 bucket | per-second P99 median / worst | seconds with P99 <= 10 ms | whole run P50 / P99 / P99.9 (warm-up included) | append -> prediction within 5 / 10 / 25 ms |")
print(f"| {delivery} | {threads} | {rate} | {seconds} | {load} | {n:.0f} | {within('0.005'):.2f} / {within('0.01'):.2f} / {within('0.025'):.2f} % | <= {float(p99_bucket) * 1000:g} ms | {med:.1f} / {worst:.1f} ms | {ok} of {len(busy)} | {r['p50_ms']:.1f} / {r['p99_ms']:.1f} / {r['p999_ms']:.1f} ms | {within('0.005', appended):.2f} / {within('0.01', appended):.2f} / {within('0.025', appended):.2f} % |")
PY
