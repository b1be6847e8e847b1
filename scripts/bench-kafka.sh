#!/usr/bin/env bash
# End-to-end benchmark of `nowcast run` on a real Apache Kafka broker (the demo pipeline of
# examples/kafka/pipeline.toml: 16 windowed features + the ONNX fraud model per event).
#
#   scripts/bench-kafka.sh [--events N] [--users N] [--repeat K] [--modes "M ..."]
#                          [--recovery-users N] [--no-recovery] [--no-build] [--keep]
#
#   --events N          events produced per run (default 1000000)
#   --users N           distinct users (= entities) in those events (default 100000)
#   --repeat K          measure every mode K times (default 1)
#   --modes "M ..."     delivery modes (default "at-least-once exactly-once")
#   --commit-interval D commit_interval of every mode (default 100ms, the example's); under
#                       at-least-once it sets how often offsets and the changelog are written
#   --recovery-users N  also run an exactly-once recovery measurement on a state of N users
#                       (e.g. 1000000; produces max(--events, N) events for it first)
#   --no-recovery       skip the recovery measurement
#   --no-build          use the existing $CARGO_TARGET_DIR/release/nowcast
#   --threads N         processing threads (consumer-group members) per process (default 1)
#   --append FILE       TOML appended to every generated spec (e.g. a [kafka.producer] table
#                       to compare librdkafka settings)
#   --keep              keep the benchmark topics on the broker (default: deleted at the end)
#
# Per mode and repetition: a copy of the example spec with unique topics and group in a temp
# dir; `nowcast topics apply`; `nowcast generate --kafka` produces all events BEFORE the
# processor starts (producer throughput); then `nowcast run --no-serve` starts and the time
# until the group's committed offsets reach the end of the source topic is the end-to-end
# time (events/s = N / that time, including start-up, group join and restore).
# Recovery (exactly-once, after a run has caught up): `nowcast run` again, kill -9 once it has
# restored its partitions, produce 1 event, restart, and time restart -> that event committed.
#
# Offsets are watched by a small Java program (Kafka Admin API, compiled with javac against
# the broker's kafka-clients jar) polling every 0.1 s (at 0.5 s the end-to-end time moved in
# steps of 8 % of a 1 M-event run, hiding smaller changes): `kafka.sh run consumer-groups` is a
# fresh JVM per call (3 CPU-seconds, up to 10 s wall on the 2-core test machine), too slow and
# too costly to poll with. Without javac the script falls back to polling consumer-groups.
#
# Broker: NOWCAST_KAFKA if set (never stopped), else `scripts/kafka.sh start` (stopped at the
# end). Build: `cargo build --release -p nowcast` in CARGO_TARGET_DIR (default
# /work/target-bench). Results: markdown table rows on stdout; logs and specs in the work dir
# named on stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

EVENTS=1000000
USERS=100000
REPEAT=1
MODES="at-least-once exactly-once"
RECOVERY_USERS=""
RECOVERY=1
BUILD=1
KEEP=0
APPEND=""
THREADS=1
COMMIT_INTERVAL=100ms
POLL_MS=100
CAUGHT_UP_TIMEOUT=900

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit "${1:-2}"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --events) EVENTS="$2"; shift 2 ;;
        --users) USERS="$2"; shift 2 ;;
        --threads) THREADS="$2"; shift 2 ;;
        --commit-interval) COMMIT_INTERVAL="$2"; shift 2 ;;
        --append)
            [ -f "$2" ] || { echo "bench-kafka: --append $2: no such file" >&2; exit 2; }
            APPEND="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"; shift 2 ;;
        --repeat) REPEAT="$2"; shift 2 ;;
        --modes) MODES="$2"; shift 2 ;;
        --recovery-users) RECOVERY_USERS="$2"; shift 2 ;;
        --no-recovery) RECOVERY=0; shift ;;
        --no-build) BUILD=0; shift ;;
        --keep) KEEP=1; shift ;;
        -h | --help) usage 0 ;;
        *) echo "bench-kafka.sh: unknown argument '$1'" >&2; usage 2 ;;
    esac
done

say() { echo "bench-kafka: $*" >&2; }
die() {
    echo "bench-kafka: error: $*" >&2
    exit 1
}
now_ms() { date +%s%3N; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

export RUST_BACKTRACE=0
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-bench}"
ORT_DYLIB_PATH="$(scripts/setup-python.sh | tail -1)"
export ORT_DYLIB_PATH
NOWCAST="$CARGO_TARGET_DIR/release/nowcast"

WORK="$(mktemp -d /tmp/bench-kafka.XXXXXX)"
RUN_ID="bench$(date +%s)$$"
PREFIXES=()
STARTED_BROKER=0
PIDS=()

cleanup() {
    local rc=$? p
    for p in "${PIDS[@]}"; do
        kill -9 "$p" 2>/dev/null || true
    done
    if [ "$KEEP" = 0 ] && [ "${#PREFIXES[@]}" -gt 0 ] && [ -n "${NOWCAST_KAFKA:-}" ] && [ "$STARTED_BROKER" = 0 ]; then
        local re
        re="($(IFS='|'; echo "${PREFIXES[*]}"))\\..*"
        say "deleting the benchmark topics ($re)"
        scripts/kafka.sh run topics --bootstrap-server "$NOWCAST_KAFKA" --delete --topic "$re" \
            >/dev/null 2>&1 || say "could not delete the topics $re"
    fi
    if [ "$STARTED_BROKER" = 1 ]; then
        scripts/kafka.sh stop >&2 || true
    fi
    say "logs and specs in $WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- broker and build ---------------------------------------------------------------------

if [ -z "${NOWCAST_KAFKA:-}" ]; then
    say "NOWCAST_KAFKA unset: starting a broker with scripts/kafka.sh start"
    line="$(scripts/kafka.sh start)" || die "scripts/kafka.sh start failed"
    export "${line?}"
    STARTED_BROKER=1
fi
B="$NOWCAST_KAFKA"
say "broker $B; work dir $WORK"

if [ "$BUILD" = 1 ]; then
    say "cargo build --release -p nowcast (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    cargo build --release -p nowcast >&2
fi
[ -x "$NOWCAST" ] || die "$NOWCAST missing (build it, or drop --no-build)"

# --- offset watcher -----------------------------------------------------------------------

LIBS="$(scripts/kafka.sh fetch)"
WATCH_CP=""
if command -v javac >/dev/null 2>&1; then
    mkdir -p "$WORK/watch"
    cat >"$WORK/watch/LagWatch.java" <<'EOF'
import java.util.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;

/** LagWatch BOOTSTRAP GROUP TOPIC POLL_MS TIMEOUT_S: polls the group's committed offsets and the
 *  topic's end offsets; prints "ready MS", one "poll MS committed C end E lag L" per poll, and
 *  "caught_up MS" (exit 0) once every partition's committed offset >= its end offset (MS = when
 *  the answer arrived), or "timeout MS" (exit 3). */
public class LagWatch {
    public static void main(String[] a) throws Exception {
        String topic = a[2];
        long poll = Long.parseLong(a[3]);
        Properties p = new Properties();
        p.put("bootstrap.servers", a[0]);
        try (Admin admin = Admin.create(p)) {
            int n = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().size();
            Map<TopicPartition, OffsetSpec> req = new HashMap<>();
            for (int i = 0; i < n; i++) req.put(new TopicPartition(topic, i), OffsetSpec.latest());
            admin.listConsumerGroupOffsets(a[1]).partitionsToOffsetAndMetadata().get();
            System.out.println("ready " + System.currentTimeMillis());
            long deadline = System.currentTimeMillis() + Long.parseLong(a[4]) * 1000;
            while (true) {
                var ends = admin.listOffsets(req).all().get();
                Map<TopicPartition, OffsetAndMetadata> com =
                    admin.listConsumerGroupOffsets(a[1]).partitionsToOffsetAndMetadata().get();
                long t = System.currentTimeMillis(), lag = 0, end = 0, c = 0;
                for (var e : ends.entrySet()) {
                    long eo = e.getValue().offset();
                    OffsetAndMetadata m = com.get(e.getKey());
                    long co = m == null ? 0 : m.offset();
                    lag += Math.max(0, eo - co);
                    end += eo;
                    c += co;
                }
                System.out.println("poll " + t + " committed " + c + " end " + end + " lag " + lag);
                if (lag == 0 && end > 0) { System.out.println("caught_up " + t); return; }
                if (t > deadline) { System.out.println("timeout " + t); System.exit(3); }
                Thread.sleep(poll);
            }
        }
    }
}
EOF
    if javac -nowarn -cp "$LIBS/*" -d "$WORK/watch" "$WORK/watch/LagWatch.java" >&2; then
        WATCH_CP="$LIBS/*:$WORK/watch"
    else
        say "javac failed: falling back to polling kafka.sh run consumer-groups"
    fi
else
    say "no javac: falling back to polling kafka.sh run consumer-groups (coarse: one JVM per poll)"
fi

# Starts a watcher for GROUP on TOPIC writing to FILE; returns once it is ready (sets WATCH_PID).
start_watch() {
    local group="$1" topic="$2" file="$3"
    if [ -n "$WATCH_CP" ]; then
        java -Xmx128m -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$ROOT/scripts/kafka/tools-log4j2.xml" \
            -cp "$WATCH_CP" LagWatch "$B" "$group" "$topic" "$POLL_MS" "$CAUGHT_UP_TIMEOUT" \
            >"$file" 2>"$file.err" &
    else
        (
            echo "ready $(now_ms)"
            deadline=$(($(now_ms) + CAUGHT_UP_TIMEOUT * 1000))
            while :; do
                out="$(scripts/kafka.sh run consumer-groups --bootstrap-server "$B" --describe \
                    --group "$group" 2>/dev/null || true)"
                t=$(now_ms)
                lag="$(awk -v t="$topic" '$2 == t && $6 ~ /^[0-9]+$/ { s += $6; n++ }
                    $2 == t && $6 !~ /^[0-9]+$/ { bad = 1 }
                    END { if (n == 0 || bad) print "x"; else print s }' <<<"$out")"
                echo "poll $t lag $lag"
                if [ "$lag" = 0 ]; then echo "caught_up $t"; exit 0; fi
                if [ "$t" -gt "$deadline" ]; then echo "timeout $t"; exit 3; fi
                sleep "0.$POLL_MS"
            done
        ) >"$file" 2>"$file.err" &
    fi
    WATCH_PID=$!
    PIDS+=("$WATCH_PID")
    local i
    for i in $(seq 1 600); do
        grep -q '^ready' "$file" 2>/dev/null && return 0
        kill -0 "$WATCH_PID" 2>/dev/null || die "offset watcher failed: $(cat "$file.err")"
        sleep 0.1
    done
    die "offset watcher not ready after 60 s"
}

# Waits for the watcher (in this shell: it is our child); sets CAUGHT_UP to the ms timestamp.
wait_watch() {
    local file="$1"
    wait "$WATCH_PID" || die "not caught up within $CAUGHT_UP_TIMEOUT s: $(tail -3 "$file")"
    CAUGHT_UP="$(sed -n 's/^caught_up //p' "$file")"
}

# --- one pipeline -------------------------------------------------------------------------

# make_spec DIR DELIVERY PREFIX GROUP: the example spec with unique topics/group, absolute paths.
make_spec() {
    local dir="$1" delivery="$2" prefix="$3" group="$4"
    mkdir -p "$dir/data"
    sed -e "s#card-fraud\\.#$prefix.#g" \
        -e "s#^group = .*#group = \"$group\"#" \
        -e "s#\\.\\./\\.\\./models#$ROOT/models#" \
        -e "s#^data_dir = .*#data_dir = \"$dir/data\"#" \
        -e "s#^delivery = .*#delivery = \"$delivery\"#" \
        -e "s#^commit_interval = .*#commit_interval = \"$COMMIT_INTERVAL\"#" \
        -e "s#^threads = [0-9]*#threads = $THREADS#" \
        examples/kafka/pipeline.toml >"$dir/pipeline.toml"
    if [ -n "$APPEND" ]; then
        { echo; cat "$APPEND"; } >>"$dir/pipeline.toml"
    fi
    grep -q "^threads = $THREADS\b" "$dir/pipeline.toml" || die "could not set threads in $dir/pipeline.toml"
    grep -q "^delivery = \"$delivery\"" "$dir/pipeline.toml" || die "could not set delivery in $dir/pipeline.toml"
    grep -q "$prefix.transactions" "$dir/pipeline.toml" || die "could not rename the topics in $dir/pipeline.toml"
}

create_topics() {
    local spec="$1" prefix="$2"
    if "$NOWCAST" topics apply --config "$spec" --bootstrap "$B" >&2; then
        return 0
    fi
    say "nowcast topics apply failed: creating the topics with kafka.sh run topics"
    local t extra
    for t in transactions features predictions dead-letters late; do
        extra=()
        [ "$t" = features ] && extra=(--config cleanup.policy=compact)
        scripts/kafka.sh run topics --bootstrap-server "$B" --create --topic "$prefix.$t" \
            --partitions 4 --replication-factor 1 "${extra[@]}" >&2
    done
}

# produce SPEC N USERS: prints the wall seconds.
produce() {
    local spec="$1" n="$2" users="$3" t0 t1
    t0=$(now_ms)
    "$NOWCAST" generate --events "$n" --users "$users" --rate 20000 --kafka "$spec" --bootstrap "$B" >&2
    t1=$(now_ms)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1000 }'
}

# Snapshot of where the CPU goes, a few seconds into a run.
snapshot_top() {
    local file="$1"
    (sleep 10 && top -b -n1 -w 200 | head -n 20 >"$file") &
    PIDS+=($!)
}

json_field() { sed -n "s/.*\"$2\":\\([^,}]*\\).*/\\1/p" "$1"; }

ROWS=()
RECOVERY_ROWS=()

# bench_mode DELIVERY REP: one full measurement; sets LAST_DIR/LAST_GROUP/LAST_PREFIX.
bench_mode() {
    local delivery="$1" rep="$2" short
    case "$delivery" in at-least-once) short=alo ;; exactly-once) short=eos ;; *) short="$delivery" ;; esac
    local prefix="$RUN_ID-$short-$rep" dir="$WORK/$short-$rep"
    local group="$prefix-group" spec="$dir/pipeline.toml"
    PREFIXES+=("$prefix")
    make_spec "$dir" "$delivery" "$prefix" "$group"
    create_topics "$spec" "$prefix"
    local load_gen load_run gen_s t0 t1 pid
    load_gen="$(loadavg)"
    say "$delivery #$rep: producing $EVENTS events ($USERS users) [load $load_gen]"
    gen_s="$(produce "$spec" "$EVENTS" "$USERS")"
    sleep 5 # let the broker settle (log flushes) before the processor starts
    load_run="$(loadavg)"
    say "$delivery #$rep: produced in $gen_s s; starting nowcast run [load $load_run]"
    start_watch "$group" "$prefix.transactions" "$dir/watch.log"
    t0=$(now_ms)
    "$NOWCAST" run --config "$spec" --bootstrap "$B" --no-serve >"$dir/run.out" 2>"$dir/run.err" &
    pid=$!
    PIDS+=("$pid")
    snapshot_top "$dir/top.txt"
    wait_watch "$dir/watch.log"
    t1="$CAUGHT_UP"
    kill -TERM "$pid"
    wait "$pid" || die "nowcast run exited with an error: $(tail -5 "$dir/run.err")"
    local secs eps first steady
    secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1000 }')"
    eps="$(awk -v n="$EVENTS" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')"
    # Start-up (process start, group formation, first commit) apart from processing: the
    # first poll that saw committed offsets, and the rate from there to caught up.
    read -r first steady < <(awk -v t0="$t0" -v t1="$t1" -v n="$EVENTS" '
        $1 == "poll" && $3 == "committed" && $4 > 0 && !seen {
            seen = 1; printf "%.2f %.0f\n", ($2 - t0) / 1000, (n - $4) / ((t1 - $2) / 1000 + 1e-9) }
        END { if (!seen) print "n/a n/a" }' "$dir/watch.log")
    local f="$dir/run.out"
    say "$delivery #$rep: caught up in $secs s = $eps events/s (first commit seen at $first s, then $steady events/s); report $(cat "$f")"
    ROWS+=("| $delivery | $rep | $EVENTS | $USERS | $load_run | $(awk -v n="$EVENTS" -v s="$gen_s" 'BEGIN { printf "%.0f", n / s }') | $secs | **$eps** | $first | $steady | $(printf '%.0f' "$(json_field "$f" throughput_eps)") | $(json_field "$f" elapsed_s) | $(json_field "$f" p50_ms) | $(json_field "$f" p99_ms) | $(json_field "$f" commits) | $(sed -n 's/.*| entities \([0-9]*\) |.*/\1/p' "$dir/run.err" | tail -1) |")
    LAST_DIR="$dir"
    LAST_GROUP="$group"
    LAST_PREFIX="$prefix"
}

# recovery DIR GROUP PREFIX USERS: kill -9 after restore, 1 new event, restart -> committed.
recovery() {
    local dir="$1" group="$2" prefix="$3" users="$4" spec="$1/pipeline.toml"
    local pid i load t_kill t0 t1 restored_ms entities
    load="$(loadavg)"
    say "recovery ($users users): start, wait for the restore of 4 partitions, kill -9 [load $load]"
    "$NOWCAST" run --config "$spec" --bootstrap "$B" --no-serve >"$dir/rec1.out" 2>"$dir/rec1.err" &
    pid=$!
    PIDS+=("$pid")
    for i in $(seq 1 1200); do
        [ "$(grep -c 'assigned; restored' "$dir/rec1.err" || true)" -ge 4 ] && break
        kill -0 "$pid" 2>/dev/null || die "nowcast run ended: $(tail -5 "$dir/rec1.err")"
        sleep 0.1
    done
    kill -9 "$pid"
    t_kill=$(now_ms)
    wait "$pid" 2>/dev/null || true
    "$NOWCAST" generate --events 1 --users "$users" --seed "$RANDOM" --kafka "$spec" --bootstrap "$B" >&2
    start_watch "$group" "$prefix.transactions" "$dir/rec-watch.log"
    t0=$(now_ms)
    "$NOWCAST" run --config "$spec" --bootstrap "$B" --no-serve >"$dir/rec2.out" 2>"$dir/rec2.err" &
    pid=$!
    PIDS+=("$pid")
    wait_watch "$dir/rec-watch.log"
    t1="$CAUGHT_UP"
    kill -TERM "$pid"
    wait "$pid" || true
    restored_ms="$(sed -n 's/.*assigned; restored .* in \([0-9]*\) ms.*/\1/p' "$dir/rec2.err" | awk '{ s += $1 } END { print s + 0 }')"
    entities="$(sed -n 's/.*restored \([0-9]*\) entities from.*/\1/p' "$dir/rec2.err" | awk '{ s += $1 } END { print s + 0 }')"
    local secs since_kill
    secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1000 }')"
    since_kill="$(awk -v a="$t_kill" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1000 }')"
    say "recovery: restart -> new event committed in $secs s (kill -> committed $since_kill s); restored $entities entities, restore ms summed $restored_ms"
    RECOVERY_ROWS+=("| $users | $entities | $load | $restored_ms | **$secs** | $since_kill |")
}

# --- main ---------------------------------------------------------------------------------

say "$(nproc) cores; load $(loadavg); $(date -u +%FT%TZ); nowcast $("$NOWCAST" --version 2>/dev/null || echo '?')"
EOS_DIRS=()
for rep in $(seq 1 "$REPEAT"); do
    for mode in $MODES; do
        bench_mode "$mode" "$rep"
        if [ "$mode" = exactly-once ]; then
            EOS_DIRS+=("$LAST_DIR $LAST_GROUP $LAST_PREFIX")
        fi
    done
done

if [ "$RECOVERY" = 1 ]; then
    for d in "${EOS_DIRS[@]}"; do
        # shellcheck disable=SC2086
        recovery $d "$USERS"
    done
    if [ -n "$RECOVERY_USERS" ]; then
        saved_events="$EVENTS" saved_users="$USERS"
        USERS="$RECOVERY_USERS"
        [ "$EVENTS" -lt "$RECOVERY_USERS" ] && EVENTS="$RECOVERY_USERS"
        bench_mode exactly-once "big"
        recovery "$LAST_DIR" "$LAST_GROUP" "$LAST_PREFIX" "$RECOVERY_USERS"
        EVENTS="$saved_events" USERS="$saved_users"
    fi
fi

echo "| delivery | run | events | users | load avg before run | producer events/s | processor start -> caught up, s | end-to-end events/s | start -> first commit seen, s | first commit -> caught up, events/s | process throughput_eps | process elapsed_s | p50 ms | p99 ms | commits | entities (last progress line) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
if [ "${#RECOVERY_ROWS[@]}" -gt 0 ]; then
    echo
    echo "| users | entities restored | load avg before | restore ms (sum of 4 partitions) | restart -> new event committed, s | kill -9 -> new event committed, s |"
    echo "|---|---|---|---|---|---|"
    printf '%s\n' "${RECOVERY_ROWS[@]}"
fi
for d in "$WORK"/*/top.txt; do
    echo
    echo "top during ${d%/top.txt}:"
    echo '```'
    cat "$d"
    echo '```'
done
