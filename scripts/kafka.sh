#!/usr/bin/env bash
# A real Apache Kafka broker (KRaft, combined broker+controller) on 127.0.0.1 for tests and CI,
# without Docker: the jars come from Maven Central once and are reused.
#
#   scripts/kafka.sh start [--nodes 1|3]   start (or report the running cluster); when ready prints
#                                          NOWCAST_KAFKA=127.0.0.1:PORT[,...] on stdout
#   scripts/kafka.sh stop                  stop the nodes and wait until they are gone
#   scripts/kafka.sh restart               stop the running nodes and start them again on the
#                                          same data (a broker restart, for fault tests)
#   scripts/kafka.sh status                whether the nodes run and answer (exit 0 = answering)
#   scripts/kafka.sh fetch                 only download the jars (warms the cache for CI)
#   scripts/kafka.sh run CLASS|TOOL [ARGS] run a Kafka main class with the fetched jars; TOOL is
#                                          one of the short names listed by `run --list`
#
# Typical use in a test script:
#   eval "export $(scripts/kafka.sh start)" # exports NOWCAST_KAFKA (start exits 1 on failure)
#   ...; scripts/kafka.sh stop
#
# Environment (all optional):
#   NOWCAST_KAFKA_PORT             first PLAINTEXT port (default 19092; node i uses PORT+i-1)
#   NOWCAST_KAFKA_CONTROLLER_PORT  first controller port (default PORT+100)
#   NOWCAST_KAFKA_VERSION          Kafka version to fetch (default 4.1.1)
#   NOWCAST_KAFKA_TIMEOUT          seconds to wait for the cluster to answer (default 120)
#   NOWCAST_KAFKA_HEAP             broker heap, fixed (-Xms = -Xmx, pre-touched, as Kafka's own
#                                  start script fixes it; default 512m): a heap that grows from
#                                  a small start collects far more often while it grows
#   NOWCAST_KAFKA_EXTRA_PROPERTIES extra server.properties lines (newline-separated) for every node
#   NOWCAST_KAFKA_RUN_DIR          run directory (default .cache/kafka-run): a second cluster
#                                  needs its own (and its own ports)
#   JAVA_HOME                      JDK to use (Java 17+); otherwise `java` on PATH
#   MAVEN_OPTS                     passed to Maven as usual (e.g. -Dmaven.repo.local=DIR)
#
# Files: jars in .cache/kafka/<version>/libs (fetched once; a pom change refetches); per-node
# config, data, server.log and pid in .cache/kafka-run/node-<id>/, wiped by every start.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONF_DIR="$ROOT/scripts/kafka"
CACHE_DIR="$ROOT/.cache"
RUN_DIR="${NOWCAST_KAFKA_RUN_DIR:-$CACHE_DIR/kafka-run}"
LOCK_FILE="$RUN_DIR.lock"
VERSION="${NOWCAST_KAFKA_VERSION:-4.1.1}"
LIB_ROOT="$CACHE_DIR/kafka/$VERSION"
LIBS="$LIB_ROOT/libs"
PORT="${NOWCAST_KAFKA_PORT:-19092}"
CONTROLLER_PORT="${NOWCAST_KAFKA_CONTROLLER_PORT:-$((PORT + 100))}"
TIMEOUT="${NOWCAST_KAFKA_TIMEOUT:-120}"
HEAP="${NOWCAST_KAFKA_HEAP:-512m}"
STOP_TIMEOUT=30
JAVA=""

say() { echo "kafka.sh: $*" >&2; }
die() {
    echo "kafka.sh: error: $*" >&2
    exit 1
}

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit "${1:-2}"
}

# shellcheck source=lib/services.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/services.sh"

# --- Java ------------------------------------------------------------------------------------

find_java() {
    if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
        JAVA="$JAVA_HOME/bin/java"
    elif command -v java >/dev/null 2>&1; then
        JAVA="$(command -v java)"
    else
        die "Java not found (no \$JAVA_HOME/bin/java, no java on PATH): Kafka needs Java 17+" \
            "(apt-get install openjdk-17-jre-headless, or set JAVA_HOME)"
    fi
    local spec major
    spec="$("$JAVA" -XshowSettings:properties -version 2>&1 |
        sed -n 's/^ *java\.specification\.version = //p')" || true
    [ -n "$spec" ] || die "could not run '$JAVA -version': is this a working Java?"
    major="${spec#1.}"
    major="${major%%.*}"
    if ! is_uint "$major" || [ "$major" -lt 17 ]; then
        die "$JAVA is Java $spec; Kafka $VERSION needs Java 17+ (set JAVA_HOME to a newer JDK)"
    fi
}

# --- jars ------------------------------------------------------------------------------------

# Downloads kafka_2.13 + kafka-tools (+ log4j2 backend) into $LIBS once. The marker records the
# version and the pom's hash; while it matches, no network and no Maven are touched.
fetch_libs() {
    local pom="$CONF_DIR/pom.xml" want tmp log
    [ -f "$pom" ] || die "missing $pom"
    want="$VERSION $(sha256sum <"$pom" | cut -c1-64)"
    if [ -f "$LIB_ROOT/complete" ] && [ "$(cat "$LIB_ROOT/complete")" = "$want" ] && [ -d "$LIBS" ]; then
        return 0
    fi
    mkdir -p "$LIB_ROOT"
    exec 8>"$LIB_ROOT/.fetch.lock"
    flock -w 900 8 || die "timed out waiting for another kafka.sh fetching into $LIB_ROOT"
    if [ -f "$LIB_ROOT/complete" ] && [ "$(cat "$LIB_ROOT/complete")" = "$want" ] && [ -d "$LIBS" ]; then
        exec 8>&-
        return 0
    fi
    command -v mvn >/dev/null 2>&1 ||
        die "Maven (mvn) not found; it is needed once to fetch Kafka $VERSION into $LIBS (apt-get install maven)"
    tmp="$LIB_ROOT/libs.tmp.$$"
    log="$LIB_ROOT/mvn.log"
    rm -rf "$tmp"
    say "fetching Apache Kafka $VERSION from Maven Central into $LIBS (once; log: $log)"
    if ! (cd "$CONF_DIR" && mvn -B -ntp -f "$pom" -Dkafka.version="$VERSION" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp") >"$log" 2>&1 </dev/null; then
        rm -rf "$tmp"
        grep -E '^\[(ERROR|WARNING)\]' "$log" | tail -n 20 >&2 || tail -n 20 "$log" >&2
        die "Maven failed to fetch org.apache.kafka:kafka_2.13:$VERSION / kafka-tools:$VERSION (full log: $log)"
    fi
    local jar
    for jar in "kafka_2.13-$VERSION.jar" "kafka-tools-$VERSION.jar" "kafka-clients-$VERSION.jar"; do
        [ -f "$tmp/$jar" ] || {
            rm -rf "$tmp"
            die "Maven finished but $jar is missing (log: $log)"
        }
    done
    compgen -G "$tmp/log4j-slf4j-impl-*.jar" >/dev/null || {
        rm -rf "$tmp"
        die "Maven finished but the log4j-slf4j-impl backend is missing (log: $log)"
    }
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
    echo "$want" >"$LIB_ROOT/complete"
    say "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars ($(du -sh "$LIBS" | cut -f1))"
    exec 8>&-
}

# Probes a running cluster with the jars of the version it runs (never fetches).
use_running_version() {
    local v
    v="$(state_get version)"
    [ -n "$v" ] && VERSION="$v" LIB_ROOT="$CACHE_DIR/kafka/$v" LIBS="$CACHE_DIR/kafka/$v/libs"
    [ -d "$LIBS" ] || die "Kafka $VERSION runs but its jars are gone from $LIBS"
}

# Runs a Kafka main class with the fetched jars; tool logging (warnings) goes to stderr.
java_tool() {
    "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$CONF_DIR/tools-log4j2.xml" -cp "$LIBS/*" "$@"
}

# --- run state -------------------------------------------------------------------------------

node_dir() { echo "$RUN_DIR/node-$1"; }

# The pid of node $1 if that process is alive and is that node's broker, else nothing.
node_pid() {
    local dir pid
    dir="$(node_dir "$1")"
    [ -f "$dir/pid" ] || return 1
    pid="$(cat "$dir/pid" 2>/dev/null)" || return 1
    is_uint "$pid" || return 1
    [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $dir/server.properties" || return 1
    echo "$pid"
}

state_get() {
    [ -f "$RUN_DIR/cluster" ] || return 0
    sed -n "s/^$1=//p" "$RUN_DIR/cluster" | head -n 1
}

# Node ids recorded in the run dir (from the cluster file, else from node-* dirs).
recorded_nodes() {
    local n
    n="$(state_get nodes)"
    if is_uint "$n" && [ "$n" -gt 0 ]; then
        seq 1 "$n"
    else
        local d
        for d in "$RUN_DIR"/node-*; do
            [ -d "$d" ] && echo "${d##*-}"
        done
    fi
}

alive_pids() {
    local id pid
    for id in $(recorded_nodes); do
        pid="$(node_pid "$id")" && echo "$pid"
    done
    return 0
}

# SIGTERM every node, wait up to STOP_TIMEOUT s, then SIGKILL what is left. Returns 1 when
# nothing was running.
stop_nodes() {
    local pids pid left deadline
    pids="$(alive_pids)"
    [ -n "$pids" ] || return 1
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT))
    while :; do
        left=""
        for pid in $pids; do pid_gone "$pid" || left="$left $pid"; done
        [ -z "$left" ] && break
        if [ "$SECONDS" -ge "$deadline" ]; then
            say "nodes did not exit within ${STOP_TIMEOUT}s after SIGTERM; sending SIGKILL to$left"
            # shellcheck disable=SC2086
            kill -KILL $left 2>/dev/null || true
            deadline=$((SECONDS + 10))
            while :; do
                left=""
                for pid in $pids; do pid_gone "$pid" || left="$left $pid"; done
                [ -z "$left" ] && break
                [ "$SECONDS" -ge "$deadline" ] && die "processes$left survive SIGKILL"
                sleep 0.2
            done
            break
        fi
        sleep 0.2
    done
    local id
    for id in $(recorded_nodes); do rm -f "$(node_dir "$id")/pid"; done
    return 0
}

show_logs() {
    local id dir
    for id in $(recorded_nodes); do
        dir="$(node_dir "$id")"
        if [ -s "$dir/server.log" ]; then
            if grep -qE '^\[[^]]*\] (ERROR|FATAL) ' "$dir/server.log"; then
                echo "---- first errors in $dir/server.log (with the line after each) ----" >&2
                grep -A1 -E '^\[[^]]*\] (ERROR|FATAL) ' "$dir/server.log" | grep -v '^--$' | head -n 12 | cut -c1-400 >&2
            fi
            echo "---- last lines of $dir/server.log ----" >&2
            tail -n "${1:-25}" "$dir/server.log" | cut -c1-400 >&2
        fi
        if [ -s "$dir/stdout.log" ]; then
            echo "---- last lines of $dir/stdout.log ----" >&2
            tail -n "${1:-25}" "$dir/stdout.log" >&2
        fi
    done
}

# Number of brokers the cluster reports in its metadata (each answering ApiVersions), or 0.
brokers_answering() {
    local out
    out="$(timeout 40 "$JAVA" -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
        -Dlog4j2.configurationFile="$CONF_DIR/tools-log4j2.xml" -cp "$LIBS/*" \
        org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server "$1" \
        --command-config "$RUN_DIR/probe.properties" 2>/dev/null)" || {
        echo 0
        return 0
    }
    grep -cE '^[^[:space:]]+ \(id: [0-9]+[ )].*-> \($' <<<"$out" || true
}

write_probe_config() {
    printf '%s\n' 'request.timeout.ms=5000' 'default.api.timeout.ms=10000' \
        'socket.connection.setup.timeout.ms=2000' >"$RUN_DIR/probe.properties"
}

# --- commands --------------------------------------------------------------------------------

cmd_start() {
    local nodes=1
    while [ $# -gt 0 ]; do
        case "$1" in
        --nodes) [ $# -ge 2 ] || die "--nodes needs a value (1 or 3)"; nodes="$2"; shift 2 ;;
        --nodes=*) nodes="${1#--nodes=}"; shift ;;
        -h | --help) usage 0 ;;
        *) die "unknown option for start: $1 (expected --nodes 1|3)" ;;
        esac
    done
    [ "$nodes" = 1 ] || [ "$nodes" = 3 ] || die "--nodes must be 1 or 3, not '$nodes'"
    is_uint "$PORT" && is_uint "$CONTROLLER_PORT" && is_uint "$TIMEOUT" ||
        die "NOWCAST_KAFKA_PORT, NOWCAST_KAFKA_CONTROLLER_PORT and NOWCAST_KAFKA_TIMEOUT must be numbers"

    find_java
    mkdir -p "$CACHE_DIR"
    mkdir -p "$(dirname "$RUN_DIR")"
    exec 9>"$LOCK_FILE"
    flock -w 900 9 || die "timed out waiting for another scripts/kafka.sh start/stop to finish"

    # Already running?
    if [ -f "$RUN_DIR/cluster" ]; then
        local have alive bootstrap
        have="$(state_get nodes)"
        alive="$(alive_pids | wc -l)"
        if [ "$alive" -gt 0 ] && [ "$alive" = "$have" ]; then
            bootstrap="$(state_get bootstrap)"
            [ "$have" = "$nodes" ] ||
                die "Kafka is already running with $have node(s) at $bootstrap; run 'scripts/kafka.sh stop' first"
            [ "$(state_get port)" = "$PORT" ] ||
                die "Kafka is already running at $bootstrap, not on port $PORT; run 'scripts/kafka.sh stop' first"
            use_running_version
            write_probe_config
            if [ "$(brokers_answering "$bootstrap")" = "$have" ]; then
                say "Kafka $(state_get version) already running: $have node(s) at $bootstrap"
                echo "NOWCAST_KAFKA=$bootstrap"
                return 0
            fi
            die "Kafka runs ($have node(s), pids $(alive_pids | tr '\n' ' ')) but does not answer at $bootstrap;" \
                "see $RUN_DIR/node-*/server.log, or run 'scripts/kafka.sh stop' and start again"
        elif [ "$alive" -gt 0 ]; then
            say "only $alive of $have node(s) alive: stopping the leftovers before a fresh start"
            stop_nodes || true
        fi
    elif [ -d "$RUN_DIR" ] && [ -n "$(alive_pids)" ]; then
        say "stopping leftover nodes from an interrupted start"
        stop_nodes || true
    fi

    fetch_libs

    # Ports.
    local i p cp owner busy=""
    for i in $(seq 1 "$nodes"); do
        p=$((PORT + i - 1))
        cp=$((CONTROLLER_PORT + i - 1))
        for p in "$p:broker" "$cp:controller"; do
            if port_busy "${p%%:*}"; then
                owner="$(port_owner "${p%%:*}")"
                busy="$busy
  port ${p%%:*} (node $i ${p#*:} listener) is in use${owner:+ by $owner}"
            fi
        done
    done
    [ -z "$busy" ] || die "cannot start Kafka:$busy
  (set NOWCAST_KAFKA_PORT / NOWCAST_KAFKA_CONTROLLER_PORT to free ports)"

    # Fresh run dir, configs.
    rm -rf "$RUN_DIR"
    mkdir -p "$RUN_DIR"
    write_probe_config
    local cluster_id voters="" bootstrap="" quorum internal_rf min_isr default_rf dir
    cluster_id="$(new_cluster_id)"
    for i in $(seq 1 "$nodes"); do
        voters="${voters:+$voters,}$i@127.0.0.1:$((CONTROLLER_PORT + i - 1))"
        bootstrap="${bootstrap:+$bootstrap,}127.0.0.1:$((PORT + i - 1))"
    done
    if [ "$nodes" = 1 ]; then
        quorum="controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT"
        internal_rf=1 min_isr=1 default_rf=1
    else
        quorum="controller.quorum.voters=$voters"
        internal_rf=3 min_isr=2 default_rf=3
    fi
    for i in $(seq 1 "$nodes"); do
        dir="$(node_dir "$i")"
        mkdir -p "$dir/data"
        sed -e "s|@NODE_ID@|$i|g" -e "s|@QUORUM@|$quorum|g" \
            -e "s|@PORT@|$((PORT + i - 1))|g" -e "s|@CONTROLLER_PORT@|$((CONTROLLER_PORT + i - 1))|g" \
            -e "s|@DATA_DIR@|$dir/data|g" -e "s|@INTERNAL_RF@|$internal_rf|g" \
            -e "s|@INTERNAL_MIN_ISR@|$min_isr|g" -e "s|@DEFAULT_RF@|$default_rf|g" \
            "$CONF_DIR/server.properties.template" >"$dir/server.properties"
        if [ -n "${NOWCAST_KAFKA_EXTRA_PROPERTIES:-}" ]; then
            printf '\n# NOWCAST_KAFKA_EXTRA_PROPERTIES\n%s\n' "$NOWCAST_KAFKA_EXTRA_PROPERTIES" >>"$dir/server.properties"
        fi
    done
    {
        echo "nodes=$nodes"
        echo "bootstrap=$bootstrap"
        echo "port=$PORT"
        echo "version=$VERSION"
        echo "cluster_id=$cluster_id"
    } >"$RUN_DIR/cluster"

    # Format the KRaft storage (in parallel: each is a JVM start).
    local fpids=() fail=""
    for i in $(seq 1 "$nodes"); do
        dir="$(node_dir "$i")"
        local fargs=(format --cluster-id "$cluster_id" --config "$dir/server.properties")
        [ "$nodes" = 1 ] && fargs+=(--standalone)
        java_tool kafka.tools.StorageTool "${fargs[@]}" >"$dir/format.log" 2>&1 9>&- </dev/null &
        fpids+=($!)
    done
    for i in $(seq 1 "$nodes"); do
        wait "${fpids[$((i - 1))]}" || fail="$fail $i"
    done
    if [ -n "$fail" ]; then
        for i in $fail; do
            echo "---- $(node_dir "$i")/format.log ----" >&2
            tail -n 20 "$(node_dir "$i")/format.log" >&2
        done
        die "formatting the KRaft storage failed for node(s)$fail (kafka.tools.StorageTool)"
    fi

    launch_nodes "$nodes" "$bootstrap"
}

# launch_nodes NODES BOOTSTRAP: starts the configured nodes and waits until they answer.
launch_nodes() {
    local nodes="$1" bootstrap="$2" i dir
    local t0=$SECONDS
    for i in $(seq 1 "$nodes"); do
        dir="$(node_dir "$i")"
        setsid bash -c 'echo $$ >"$0/pid"; exec "$@"' "$dir" \
            "$JAVA" "-Xmx$HEAP" "-Xms$HEAP" -XX:+AlwaysPreTouch -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
            -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
            -Dlog4j2.configurationFile="$CONF_DIR/log4j2.xml" \
            -Dnowcast.kafka.log.file="$dir/server.log" -Dkafka.logs.dir="$dir" \
            -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" \
            >"$dir/stdout.log" 2>&1 </dev/null 8>&- 9>&- &
    done
    say "starting $nodes node(s) of Kafka $VERSION at $bootstrap (logs: $RUN_DIR/node-*/server.log)"

    if ! wait_ready "$nodes" "$bootstrap"; then
        show_logs 15
        stop_nodes || true
        die "$WAIT_ERROR"
    fi
    say "ready in $((SECONDS - t0))s"
    echo "NOWCAST_KAFKA=$bootstrap"
}

new_cluster_id() {
    # A random 16-byte Kafka Uuid in URL-safe base64 (what StorageTool random-uuid prints),
    # not starting with '-' (Kafka avoids those so they cannot be mistaken for options).
    local id
    while :; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
        [ "${id#-}" = "$id" ] && break
    done
    echo "$id"
}

WAIT_ERROR=""
# Waits until every node has logged "Kafka Server started" and the metadata lists all brokers.
wait_ready() {
    local nodes=$1 bootstrap=$2 deadline=$((SECONDS + TIMEOUT)) i dir pid n
    # pid files appear as soon as each launcher shell runs.
    for i in $(seq 1 "$nodes"); do
        dir="$(node_dir "$i")"
        while [ ! -s "$dir/pid" ]; do
            [ "$SECONDS" -lt "$deadline" ] || {
                WAIT_ERROR="node $i did not start (no pid file in $dir)"
                return 1
            }
            sleep 0.05
        done
    done
    local started
    while :; do
        started=0
        for i in $(seq 1 "$nodes"); do
            dir="$(node_dir "$i")"
            if ! node_pid "$i" >/dev/null; then
                WAIT_ERROR="Kafka node $i exited during startup (see $dir/server.log and $dir/stdout.log above)"
                return 1
            fi
            grep -q 'Kafka Server started' "$dir/server.log" 2>/dev/null && started=$((started + 1))
        done
        [ "$started" = "$nodes" ] && break
        if [ "$SECONDS" -ge "$deadline" ]; then
            WAIT_ERROR="timed out after ${TIMEOUT}s: only $started of $nodes node(s) logged 'Kafka Server started'"
            return 1
        fi
        sleep 0.2
    done
    while :; do
        n="$(brokers_answering "$bootstrap")"
        [ "$n" = "$nodes" ] && return 0
        for i in $(seq 1 "$nodes"); do
            node_pid "$i" >/dev/null || {
                WAIT_ERROR="Kafka node $i exited during startup"
                return 1
            }
        done
        if [ "$SECONDS" -ge "$deadline" ]; then
            WAIT_ERROR="timed out after ${TIMEOUT}s: metadata at $bootstrap lists $n of $nodes broker(s)"
            return 1
        fi
        sleep 0.5
    done
}

cmd_stop() {
    [ $# -eq 0 ] || die "stop takes no arguments"
    mkdir -p "$CACHE_DIR"
    mkdir -p "$(dirname "$RUN_DIR")"
    exec 9>"$LOCK_FILE"
    flock -w 900 9 || die "timed out waiting for another scripts/kafka.sh start/stop to finish"
    local n
    n="$(alive_pids | wc -l)"
    if stop_nodes; then
        say "stopped $n Kafka node(s)"
    else
        say "Kafka is not running"
    fi
    rm -f "$RUN_DIR/cluster"
}

cmd_restart() {
    [ $# -eq 0 ] || die "restart takes no arguments"
    find_java
    mkdir -p "$(dirname "$RUN_DIR")"
    exec 9>"$LOCK_FILE"
    flock -w 900 9 || die "timed out waiting for another scripts/kafka.sh start/stop to finish"
    [ -f "$RUN_DIR/cluster" ] || die "no cluster to restart in $RUN_DIR; use start"
    local nodes bootstrap
    nodes="$(state_get nodes)"
    bootstrap="$(state_get bootstrap)"
    VERSION="$(state_get version)"
    LIBS="$CACHE_DIR/kafka/$VERSION/libs"
    write_probe_config
    stop_nodes || true
    say "restarting $nodes node(s) at $bootstrap on their data"
    launch_nodes "$nodes" "$bootstrap"
}

cmd_status() {
    [ $# -eq 0 ] || die "status takes no arguments"
    local have alive bootstrap pids n
    have="$(state_get nodes)"
    pids="$(alive_pids | tr '\n' ' ')"
    alive="$(wc -w <<<"$pids")"
    if [ ! -f "$RUN_DIR/cluster" ] || [ "$alive" = 0 ]; then
        echo "Kafka is not running"
        return 1
    fi
    bootstrap="$(state_get bootstrap)"
    find_java
    use_running_version
    write_probe_config
    n="$(brokers_answering "$bootstrap")"
    echo "Kafka $(state_get version): $alive of $have node(s) running (pids ${pids% }), $n answering at $bootstrap"
    if [ "$alive" = "$have" ] && [ "$n" = "$have" ]; then
        echo "NOWCAST_KAFKA=$bootstrap"
        return 0
    fi
    return 2
}

# Short names for common tools (as the kafka-*.sh scripts of the distribution call them).
tool_class() {
    case "$1" in
    topics) echo org.apache.kafka.tools.TopicCommand ;;
    console-producer) echo org.apache.kafka.tools.ConsoleProducer ;;
    console-consumer) echo org.apache.kafka.tools.consumer.ConsoleConsumer ;;
    consumer-groups) echo org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
    producer-perf-test) echo org.apache.kafka.tools.ProducerPerformance ;;
    consumer-perf-test) echo org.apache.kafka.tools.ConsumerPerformance ;;
    transactions) echo org.apache.kafka.tools.TransactionsCommand ;;
    get-offsets) echo org.apache.kafka.tools.GetOffsetShell ;;
    broker-api-versions) echo org.apache.kafka.tools.BrokerApiVersionsCommand ;;
    metadata-quorum) echo org.apache.kafka.tools.MetadataQuorumCommand ;;
    storage) echo kafka.tools.StorageTool ;;
    *) echo "$1" ;;
    esac
}

cmd_run() {
    [ $# -ge 1 ] || die "usage: scripts/kafka.sh run CLASS|TOOL [ARGS...] (run --list for tools)"
    if [ "$1" = --list ]; then
        local t
        for t in topics console-producer console-consumer consumer-groups producer-perf-test \
            consumer-perf-test transactions get-offsets broker-api-versions metadata-quorum storage; do
            printf '%-20s %s\n' "$t" "$(tool_class "$t")"
        done
        return 0
    fi
    local class
    class="$(tool_class "$1")"
    shift
    find_java
    fetch_libs
    exec "$JAVA" -Xmx512m -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$CONF_DIR/tools-log4j2.xml" -cp "$LIBS/*" "$class" "$@"
}

cmd_fetch() {
    find_java
    fetch_libs
    echo "$LIBS"
}

[ $# -ge 1 ] || usage 2
cmd="$1"
shift
case "$cmd" in
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
restart) cmd_restart "$@" ;;
status) cmd_status "$@" ;;
run) cmd_run "$@" ;;
fetch) cmd_fetch "$@" ;;
-h | --help | help) usage 0 ;;
*)
    echo "kafka.sh: unknown command '$cmd'" >&2
    usage 2
    ;;
esac
