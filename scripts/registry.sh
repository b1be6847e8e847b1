#!/usr/bin/env bash
# A real Confluent-compatible schema registry on 127.0.0.1 for tests and CI, without Docker:
# Apicurio Registry (a Quarkus app) from Maven Central, fetched once and reused, with in-memory
# H2 storage (every start begins empty; nothing survives a stop). NOWCAST_REGISTRY is its
# Confluent-compatible API (http://127.0.0.1:PORT/apis/ccompat/v7), what clients are given.
#
#   scripts/registry.sh start    start (or report the running registry); when ready prints
#                                NOWCAST_REGISTRY=http://127.0.0.1:PORT/apis/ccompat/v7 on stdout
#   scripts/registry.sh stop     stop the registry and wait until the process is gone
#   scripts/registry.sh status   whether it runs and answers (exit 0 = answering, 1 = not
#                                running, 2 = running but not answering)
#   scripts/registry.sh fetch    only download and unpack the app (warms the cache for CI)
#
# Typical use in a test script:
#   eval "export $(scripts/registry.sh start)" # exports NOWCAST_REGISTRY (start exits 1 on failure)
#   ...; scripts/registry.sh stop
#
# Environment (all optional):
#   NOWCAST_REGISTRY_PORT        HTTP port on 127.0.0.1 (default 18081); the Quarkus management
#                                interface gets a random free port on 127.0.0.1
#   NOWCAST_REGISTRY_VERSION     io.apicurio:apicurio-registry-app version (default 3.3.3; 3.2+
#                                needs Java 21+, 3.0.x/3.1.x run on Java 17)
#   NOWCAST_REGISTRY_JAVA_HOME   JDK to use; otherwise the first new enough of $JAVA_HOME, `java`
#                                on PATH, then the newest /usr/lib/jvm/*/bin/java
#   NOWCAST_REGISTRY_TIMEOUT     seconds to wait until the registry answers (default 120)
#   NOWCAST_REGISTRY_HEAP        -Xmx (default 384m)
#   NOWCAST_REGISTRY_RUN_DIR     run directory (default .cache/registry-run): a second registry
#                                needs its own (and its own port)
#   NOWCAST_REGISTRY_CDS         0 disables the class-data-sharing archive (see Files)
#   NOWCAST_REGISTRY_EXTRA_OPTS  extra JVM options, split on spaces, after the defaults, e.g.
#                                -Dapicurio.ccompat.use-canonical-hash=true
#   MAVEN_OPTS                   passed to Maven as usual (e.g. -Dmaven.repo.local=DIR)
#
# Files: the unpacked app in .cache/registry/<version>/app (fetched once with Maven, which keeps
# the tar.gz in its local repository); log, pid and state in .cache/registry-run/, wiped by every
# start. The first start with a JDK writes a dynamic CDS archive when it stops (stop takes about
# 7 s instead of 0.2 s, once) into .cache/registry/<version>/cds-<jdk>.jsa; later starts map it.
#
# Measured (2 cores shared with a compile, Temurin 25, 3.3.3): start -> ready 5.4-9.4 s without
# the CDS archive, 3.6-4.7 s with it; RSS 255-260 MB when ready (280-290 MB with the archive
# mapped); stop 0.2 s. 3.0.9 on Java 17: 6 s alone, 15 s beside a busy 3.3.3.
#
# Quirks of Apicurio 3.3.3's Confluent API, as observed (bodies, more cases and how 3.0.9
# differs: scripts/registry-notes.md):
#   - schemaType may be omitted for AVRO and even for PROTOBUF (detected from the text).
#     GET /schemas/ids/{id} gives {"schema":...} with no schemaType for AVRO, and
#     "schemaType":"PROTOBUF" / "JSON" for the others; never a "references" field.
#   - Ids are content ids: the same text under two subjects gets the same id. Re-registering
#     under the same subject is idempotent (same id, no new version), even with other
#     whitespace; the whitespace variant under a new subject is new content with a new id. A
#     rejected registration can use up an id: ids have gaps.
#   - GET /config is {"compatibilityLevel":"NONE"} on a fresh registry (Confluent: BACKWARD).
#     GET /config/{subject}: 404 error_code 40401 before the subject exists, then
#     {"compatibilityLevel":"NONE"} while none is set for it, whatever the global level (unless
#     ?defaultToGlobal=true). PUT /config/{subject} {"compatibility":"BACKWARD"} also works
#     before the subject exists and answers {"compatibility":"BACKWARD","normalize":false}.
#   - Registration checks the subject's level, else the global one (409, error_code 409).
#     POST /compatibility/subjects/{s}/versions/latest judges as BACKWARD while neither is set
#     ({"is_compatible":false} for a change registration accepts); ?verbose=true adds no
#     messages; for an unknown subject it answers {"is_compatible":true}.
#   - Unknown schema id: 404 {"message":"Schema 999 not found.","error_code":40403}; unknown
#     subject 40401, unknown version 40402; unparsable schema 422 error_code 42201; a body
#     without a JSON content type: 415 with an empty body.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="$ROOT/.cache"
RUN_DIR="${NOWCAST_REGISTRY_RUN_DIR:-$CACHE_DIR/registry-run}"
LOCK_FILE="$RUN_DIR.lock"
VERSION="${NOWCAST_REGISTRY_VERSION:-3.3.3}"
LIB_ROOT="$CACHE_DIR/registry/$VERSION"
APP_DIR="$LIB_ROOT/app"
PORT="${NOWCAST_REGISTRY_PORT:-18081}"
TIMEOUT="${NOWCAST_REGISTRY_TIMEOUT:-120}"
HEAP="${NOWCAST_REGISTRY_HEAP:-384m}"
CDS="${NOWCAST_REGISTRY_CDS:-1}"
# 2.8 (what a bare `mvn dependency:copy` picks with Maven 3.8) copies the file alone; 3.x also reads
# the artifact's pom and its parent, and fails where the parent pom is not served (3.0.9 here).
DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:2.8"
STOP_TIMEOUT=30
JAVA=""
JAR=""

say() { echo "registry.sh: $*" >&2; }
die() {
    echo "registry.sh: error: $*" >&2
    exit 1
}

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit "${1:-2}"
}

# shellcheck source=lib/services.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/services.sh"

now_ms() { date +%s%3N; }

# --- Java ------------------------------------------------------------------------------------

# Java major version the registry version needs: 3.2 and later are built for Java 21.
java_needed() {
    local major minor rest
    major="${VERSION%%.*}"
    rest="${VERSION#*.}"
    minor="${rest%%.*}"
    if ! is_uint "$major" || ! is_uint "$minor"; then
        die "NOWCAST_REGISTRY_VERSION '$VERSION' is not a version like 3.3.3"
    fi
    [ "$major" -ge 3 ] || die "Apicurio Registry $VERSION is not supported: this script runs the 3.x layout"
    if [ "$major" -gt 3 ] || [ "$minor" -ge 2 ]; then echo 21; else echo 17; fi
}

# The major version of the Java at $1, or nothing when it does not run.
java_major() {
    local spec
    spec="$("$1" -XshowSettings:properties -version 2>&1 |
        sed -n 's/^ *java\.specification\.version = //p' | head -n 1)" || true
    spec="${spec#1.}"
    spec="${spec%%.*}"
    is_uint "$spec" && echo "$spec"
    return 0
}

find_java() {
    local need m cand best="" best_m=0
    need="$(java_needed)"
    if [ -n "${NOWCAST_REGISTRY_JAVA_HOME:-}" ]; then
        [ -x "$NOWCAST_REGISTRY_JAVA_HOME/bin/java" ] ||
            die "NOWCAST_REGISTRY_JAVA_HOME=$NOWCAST_REGISTRY_JAVA_HOME has no bin/java"
        JAVA="$NOWCAST_REGISTRY_JAVA_HOME/bin/java"
        m="$(java_major "$JAVA")"
        [ -n "$m" ] || die "could not run '$JAVA -version': is this a working Java?"
        [ "$m" -ge "$need" ] ||
            die "$JAVA is Java $m; Apicurio Registry $VERSION needs Java $need+ (NOWCAST_REGISTRY_JAVA_HOME)"
        return 0
    fi
    for cand in "${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java 2>/dev/null || true)"; do
        [ -n "$cand" ] && [ -x "$cand" ] || continue
        m="$(java_major "$cand")"
        if [ -n "$m" ] && [ "$m" -ge "$need" ]; then
            JAVA="$cand"
            return 0
        fi
    done
    for cand in /usr/lib/jvm/*/bin/java; do
        [ -x "$cand" ] || continue
        m="$(java_major "$cand")"
        if [ -n "$m" ] && [ "$m" -ge "$need" ] && [ "$m" -gt "$best_m" ]; then
            best="$cand" best_m="$m"
        fi
    done
    [ -n "$best" ] || die "Apicurio Registry $VERSION needs Java $need+ and none was found (\$JAVA_HOME," \
        "java on PATH, /usr/lib/jvm/*/bin/java): set NOWCAST_REGISTRY_JAVA_HOME to a JDK $need+, or" \
        "NOWCAST_REGISTRY_VERSION=3.0.9 to run on Java 17 (its API differs in details: scripts/registry-notes.md)"
    JAVA="$best"
}

# --- the app ---------------------------------------------------------------------------------

# The runnable jar of the unpacked app: quarkus-run.jar (fast-jar layout, 3.1+) or
# apicurio-registry-app-V-runner.jar (uber-jar with lib/, 3.0.x).
find_jar() {
    local j
    if [ -f "$APP_DIR/quarkus-run.jar" ]; then
        echo "$APP_DIR/quarkus-run.jar"
        return 0
    fi
    for j in "$APP_DIR"/*-runner.jar; do
        [ -f "$j" ] && echo "$j" && return 0
    done
    return 1
}

# Downloads io.apicurio:apicurio-registry-app:$VERSION:tar.gz:all through Maven (so through the
# configured mirror) and unpacks it into $APP_DIR once. While the marker matches, no network and
# no Maven are touched.
fetch_app() {
    local want="$VERSION" tmp log tgz
    if [ -f "$LIB_ROOT/complete" ] && [ "$(cat "$LIB_ROOT/complete")" = "$want" ] && JAR="$(find_jar)"; then
        return 0
    fi
    mkdir -p "$LIB_ROOT"
    exec 8>"$LIB_ROOT/.fetch.lock"
    flock -w 900 8 || die "timed out waiting for another registry.sh fetching into $LIB_ROOT"
    if [ -f "$LIB_ROOT/complete" ] && [ "$(cat "$LIB_ROOT/complete")" = "$want" ] && JAR="$(find_jar)"; then
        exec 8>&-
        return 0
    fi
    command -v mvn >/dev/null 2>&1 ||
        die "Maven (mvn) not found; it is needed once to fetch Apicurio Registry $VERSION into $APP_DIR (apt-get install maven)"
    tmp="$LIB_ROOT/fetch.tmp.$$"
    log="$LIB_ROOT/mvn.log"
    rm -rf "$tmp"
    mkdir -p "$tmp/dl" "$tmp/app"
    say "fetching Apicurio Registry $VERSION from Maven Central into $APP_DIR (once; log: $log)"
    # Run from a directory without a pom: dependency:copy needs no project.
    if ! (cd "$tmp" && mvn -B -ntp "$DEPENDENCY_PLUGIN:copy" \
        -Dartifact="io.apicurio:apicurio-registry-app:$VERSION:tar.gz:all" \
        -DoutputDirectory="$tmp/dl") >"$log" 2>&1 </dev/null; then
        rm -rf "$tmp"
        grep -E '^\[(ERROR|WARNING)\]' "$log" | tail -n 20 >&2 || tail -n 20 "$log" >&2
        die "Maven failed to fetch io.apicurio:apicurio-registry-app:$VERSION:tar.gz:all (full log: $log)"
    fi
    tgz="$tmp/dl/apicurio-registry-app-$VERSION-all.tar.gz"
    [ -f "$tgz" ] || {
        rm -rf "$tmp"
        die "Maven finished but $(basename "$tgz") is missing (log: $log)"
    }
    tar -xzf "$tgz" -C "$tmp/app" || {
        rm -rf "$tmp"
        die "could not unpack $(basename "$tgz")"
    }
    # Some releases may wrap the app in one top-level directory.
    if [ ! -f "$tmp/app/quarkus-run.jar" ] && ! compgen -G "$tmp/app/*-runner.jar" >/dev/null; then
        local only
        only="$(find "$tmp/app" -mindepth 1 -maxdepth 1)"
        if [ -d "$only" ] && [ "$(wc -l <<<"$only")" = 1 ]; then
            mv "$tmp/app" "$tmp/wrapped" && mv "$tmp/wrapped/$(basename "$only")" "$tmp/app"
        fi
    fi
    rm -rf "$APP_DIR" "$LIB_ROOT"/cds-*.jsa
    mv "$tmp/app" "$APP_DIR"
    rm -rf "$tmp"
    JAR="$(find_jar)" || die "unpacked Apicurio Registry $VERSION has neither quarkus-run.jar nor *-runner.jar in $APP_DIR"
    echo "$want" >"$LIB_ROOT/complete"
    say "fetched Apicurio Registry $VERSION ($(du -sh "$APP_DIR" | cut -f1))"
    exec 8>&-
}

# Where the dynamic CDS archive for this JDK and app lives (the JDK's build is in the name, so
# an updated JDK writes a new one).
cds_archive() {
    local id
    id="$( (
        readlink -f "$JAVA"
        "$JAVA" -version 2>&1
        echo "$JAR"
    ) | sha256sum | cut -c1-12)"
    echo "$LIB_ROOT/cds-$id.jsa"
}

# --- run state -------------------------------------------------------------------------------

state_get() {
    [ -f "$RUN_DIR/registry" ] || return 0
    sed -n "s/^$1=//p" "$RUN_DIR/registry" | head -n 1
}

# The registry's pid if that process is alive and is the registry of this run dir, else nothing.
registry_pid() {
    local pid
    [ -f "$RUN_DIR/pid" ] || return 1
    pid="$(cat "$RUN_DIR/pid" 2>/dev/null)" || return 1
    is_uint "$pid" || return 1
    [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "-Dnowcast.registry.run.dir=$RUN_DIR" || return 1
    echo "$pid"
}

# SIGTERM, wait up to STOP_TIMEOUT s (a CDS dump at exit takes a few), then SIGKILL. Returns 1
# when nothing was running. A CDS archive written at a clean exit is moved into the cache.
stop_registry() {
    local pid deadline killed=0
    pid="$(registry_pid)" || return 1
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT))
    while ! pid_gone "$pid"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            say "the registry did not exit within ${STOP_TIMEOUT}s after SIGTERM; sending SIGKILL to $pid"
            kill -KILL "$pid" 2>/dev/null || true
            killed=1
            deadline=$((SECONDS + 10))
            while ! pid_gone "$pid"; do
                [ "$SECONDS" -ge "$deadline" ] && die "process $pid survives SIGKILL"
                sleep 0.2
            done
            break
        fi
        sleep 0.1
    done
    rm -f "$RUN_DIR/pid"
    local out dest
    out="$(state_get cds_out)"
    dest="$(state_get cds_dest)"
    if [ -n "$out" ] && [ -n "$dest" ] && [ -s "$out" ]; then
        if [ "$killed" = 0 ] && [ ! -e "$dest" ] && [ -d "$(dirname "$dest")" ]; then
            # Copy next to the target, then rename: a JVM that maps an older archive keeps its inode.
            cp "$out" "$dest.tmp.$$" && mv -f "$dest.tmp.$$" "$dest" &&
                say "saved the class-data-sharing archive for the next starts: $dest"
        fi
        rm -f "$out"
    fi
    return 0
}

# The HTTP status of GET $1 (000 when nothing answers).
http_status() {
    if command -v curl >/dev/null 2>&1; then
        curl -s -o /dev/null --max-time 3 -w '%{http_code}' "$1" 2>/dev/null || true
    else
        python3 - "$1" <<'EOF' 2>/dev/null || echo 000
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=3) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
EOF
    fi
}

answering() { [ "$(http_status "$1/apis/ccompat/v7/subjects")" = 200 ]; }

show_log() {
    local log="$RUN_DIR/registry.log"
    [ -s "$log" ] || return 0
    if grep -qE '^[0-9:,]+ (ERROR|FATAL) ' "$log"; then
        echo "---- first errors in $log (with the line after each) ----" >&2
        grep -A1 -E '^[0-9:,]+ (ERROR|FATAL) ' "$log" | grep -v '^--$' | head -n 12 | cut -c1-400 >&2
    fi
    echo "---- last lines of $log ----" >&2
    tail -n "${1:-25}" "$log" | cut -c1-400 >&2
}

# --- commands --------------------------------------------------------------------------------

cmd_start() {
    while [ $# -gt 0 ]; do
        case "$1" in
        -h | --help) usage 0 ;;
        *) die "start takes no arguments (got '$1'); configure it with NOWCAST_REGISTRY_* variables" ;;
        esac
    done
    if ! is_uint "$PORT" || ! is_uint "$TIMEOUT"; then
        die "NOWCAST_REGISTRY_PORT and NOWCAST_REGISTRY_TIMEOUT must be numbers"
    fi
    local url="http://127.0.0.1:$PORT"

    mkdir -p "$CACHE_DIR" "$(dirname "$RUN_DIR")"
    exec 9>"$LOCK_FILE"
    flock -w 900 9 || die "timed out waiting for another scripts/registry.sh start/stop to finish"

    # Already running?
    if registry_pid >/dev/null; then
        local have
        have="$(state_get url)"
        [ "$have" = "$url" ] ||
            die "the registry is already running at $have, not at $url; run 'scripts/registry.sh stop' first"
        if answering "$have"; then
            say "Apicurio Registry $(state_get version) already running at $have"
            echo "NOWCAST_REGISTRY=$have/apis/ccompat/v7"
            return 0
        fi
        die "the registry runs (pid $(registry_pid)) but does not answer at $have/apis/ccompat/v7;" \
            "see $RUN_DIR/registry.log, or run 'scripts/registry.sh stop' and start again"
    fi

    find_java
    fetch_app

    if port_busy "$PORT"; then
        local owner
        owner="$(port_owner "$PORT")"
        die "cannot start the registry: port $PORT is in use${owner:+ by $owner} (set NOWCAST_REGISTRY_PORT to a free port)"
    fi

    rm -rf "$RUN_DIR"
    mkdir -p "$RUN_DIR/tmp"

    local cds_opts=() cds_out="" cds_dest=""
    if [ "$CDS" != 0 ]; then
        cds_dest="$(cds_archive)"
        if [ -s "$cds_dest" ]; then
            cds_opts=(-XX:SharedArchiveFile="$cds_dest" -Xshare:auto)
        else
            cds_out="$RUN_DIR/cds.jsa"
            # (the dump warns once per class it skips, e.g. from signed jars: not worth a log)
            cds_opts=(-XX:ArchiveClassesAtExit="$cds_out" '-Xlog:cds*=error')
        fi
    fi
    {
        echo "url=$url"
        echo "port=$PORT"
        echo "version=$VERSION"
        echo "java=$JAVA"
        echo "cds_out=$cds_out"
        echo "cds_dest=$cds_dest"
    } >"$RUN_DIR/registry"

    local extra=()
    # shellcheck disable=SC2206 # split on spaces, as documented
    [ -n "${NOWCAST_REGISTRY_EXTRA_OPTS:-}" ] && extra=($NOWCAST_REGISTRY_EXTRA_OPTS)

    # C1 only and the serial GC: a test registry starts often and serves little. Storage is the
    # default, spelled out: H2 in memory (the pool keeps connections open, so the database lives
    # as long as the process). The management interface (health, metrics) is compiled in; it gets
    # a random port on loopback so it can neither clash nor be reached from outside.
    local t0
    t0="$(now_ms)"
    # shellcheck disable=SC2016 # $$, $0 and $@ belong to the inner bash
    setsid bash -c 'echo $$ >"$0/pid"; exec "$@"' "$RUN_DIR" \
        "$JAVA" "-Xmx$HEAP" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
        "${cds_opts[@]}" -Djava.io.tmpdir="$RUN_DIR/tmp" \
        "-Dnowcast.registry.run.dir=$RUN_DIR" \
        -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$PORT" \
        -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port=0 \
        -Dapicurio.storage.kind=sql -Dapicurio.storage.sql.kind=h2 \
        -Dapicurio.storage.snapshot.location="$RUN_DIR/tmp" -Dapicurio.import.work-dir="$RUN_DIR/tmp" \
        -Dquarkus.banner.enabled=false \
        "-Dquarkus.log.console.format=%d{HH:mm:ss,SSS} %-5p [%c{3.}] (%t) %m%n" \
        "${extra[@]}" \
        -jar "$JAR" >"$RUN_DIR/registry.log" 2>&1 </dev/null 8>&- 9>&- &
    say "starting Apicurio Registry $VERSION at $url on $JAVA (log: $RUN_DIR/registry.log)"

    local err=""
    if ! err="$(wait_ready "$url")"; then
        show_log 25
        stop_registry || true
        die "$err"
    fi
    local ms=$(($(now_ms) - t0)) rss
    rss="$(awk '/^VmRSS:/ {printf "%d MB", $2 / 1024}' "/proc/$(registry_pid)/status" 2>/dev/null || true)"
    say "ready in $((ms / 1000)).$(printf '%03d' $((ms % 1000)) | cut -c1)s${rss:+ (RSS $rss)}"
    echo "NOWCAST_REGISTRY=$url/apis/ccompat/v7"
}

# Waits until GET /apis/ccompat/v7/subjects answers 200; prints the reason when it gives up.
wait_ready() {
    local url="$1" deadline=$((SECONDS + TIMEOUT)) code
    while [ ! -s "$RUN_DIR/pid" ]; do
        [ "$SECONDS" -lt "$deadline" ] || {
            echo "the registry did not start (no pid file in $RUN_DIR)"
            return 1
        }
        sleep 0.05
    done
    while :; do
        registry_pid >/dev/null || {
            echo "the registry exited during startup (see $RUN_DIR/registry.log above)"
            return 1
        }
        code="$(http_status "$url/apis/ccompat/v7/subjects")"
        [ "$code" = 200 ] && return 0
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "timed out after ${TIMEOUT}s: GET $url/apis/ccompat/v7/subjects answers ${code/#000/nothing}"
            return 1
        fi
        sleep 0.2
    done
}

cmd_stop() {
    [ $# -eq 0 ] || die "stop takes no arguments"
    mkdir -p "$CACHE_DIR" "$(dirname "$RUN_DIR")"
    exec 9>"$LOCK_FILE"
    flock -w 900 9 || die "timed out waiting for another scripts/registry.sh start/stop to finish"
    if stop_registry; then
        say "stopped the registry"
    else
        say "the registry is not running"
    fi
    rm -f "$RUN_DIR/registry"
}

cmd_status() {
    [ $# -eq 0 ] || die "status takes no arguments"
    local pid url
    if ! pid="$(registry_pid)" || [ ! -f "$RUN_DIR/registry" ]; then
        echo "the registry is not running"
        return 1
    fi
    url="$(state_get url)"
    if answering "$url"; then
        echo "Apicurio Registry $(state_get version): running (pid $pid), answering at $url"
        echo "NOWCAST_REGISTRY=$url/apis/ccompat/v7"
        return 0
    fi
    echo "Apicurio Registry $(state_get version): running (pid $pid) but not answering at $url"
    return 2
}

cmd_fetch() {
    [ $# -eq 0 ] || die "fetch takes no arguments"
    fetch_app
    echo "$APP_DIR"
}

[ $# -ge 1 ] || usage 2
cmd="$1"
shift
case "$cmd" in
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
status) cmd_status "$@" ;;
fetch) cmd_fetch "$@" ;;
-h | --help | help) usage 0 ;;
*)
    echo "registry.sh: unknown command '$cmd'" >&2
    usage 2
    ;;
esac
