#!/usr/bin/env bash
# Builds and runs every cargo-fuzz target in fuzz/ (the decoders of crates/nowcast-schema)
# for a bounded time, prints per target the executions and whether it found a crash, writes
# fuzz/RESULTS.md, and exits non-zero if any target crashed (or timed out, or ran out of
# memory) or the build failed.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]      (default 60)
#
# Environment:
#   FUZZ_TARGETS     targets to run, space-separated (default: all of them)
#   FUZZ_TOOLCHAIN   auto (default) | nightly | bootstrap
#                    auto: `cargo +nightly` if a nightly toolchain is installed, else try
#                    `rustup toolchain install nightly --profile minimal`, else the default
#                    (stable) toolchain with RUSTC_BOOTSTRAP=1.
#   FUZZ_SANITIZER   none (default) | address | ...  The decoders are `#![deny(unsafe_code)]`,
#                    so the default skips ASan for ~2x the executions; panics, overflow checks
#                    and debug assertions are on either way.
#   FUZZ_MAX_LEN     libFuzzer -max_len (default 4096)
#   FUZZ_TIMEOUT     libFuzzer -timeout per input, seconds (default 10)
#   FUZZ_RESULTS     where to write the summary (default fuzz/RESULTS.md)
#   CARGO_TARGET_DIR build directory (default target-fuzz/ at the repository root)
#
# Inputs: fuzz/corpus/<target>/ (grows, not committed) and fuzz/seeds/<target>/ (committed,
# read-only). Crash inputs: fuzz/artifacts/<target>/; full logs: fuzz/artifacts/logs/.
set -uo pipefail

SECS=${1:-60}
if ! [[ $SECS =~ ^[0-9]+$ ]] || [ "$SECS" -lt 1 ]; then
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
FUZZ="$ROOT/fuzz"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target-fuzz}"
read -r -a TARGETS <<<"${FUZZ_TARGETS:-wire avro avro_schema proto source}"
SANITIZER=${FUZZ_SANITIZER:-none}
MAX_LEN=${FUZZ_MAX_LEN:-4096}
TIMEOUT=${FUZZ_TIMEOUT:-10}
RSS_MB=2048
RESULTS=${FUZZ_RESULTS:-$FUZZ/RESULTS.md}
LOGS="$FUZZ/artifacts/logs"
mkdir -p "$LOGS"

log() { printf '[fuzz] %s\n' "$*" >&2; }

# --- toolchain ---------------------------------------------------------------------------
CARGO=(cargo)
CARGO_SHOWN="cargo"
use_nightly() {
    CARGO=(cargo +nightly)
    CARGO_SHOWN="cargo +nightly"
    TOOLCHAIN_DESC="nightly: $(rustc +nightly --version)"
}
use_bootstrap() {
    export RUSTC_BOOTSTRAP=1
    CARGO=(cargo)
    CARGO_SHOWN="RUSTC_BOOTSTRAP=1 cargo"
    TOOLCHAIN_DESC="default toolchain with RUSTC_BOOTSTRAP=1: $(rustc --version)"
}
have_nightly() {
    command -v rustup >/dev/null 2>&1 &&
        rustup toolchain list 2>/dev/null | grep -q '^nightly' &&
        rustc +nightly --version >/dev/null 2>&1
}
case "${FUZZ_TOOLCHAIN:-auto}" in
nightly) use_nightly ;;
bootstrap) use_bootstrap ;;
auto)
    if have_nightly; then
        use_nightly
    elif command -v rustup >/dev/null 2>&1 &&
        log "no nightly toolchain; installing one (rustup toolchain install nightly --profile minimal)" &&
        rustup toolchain install nightly --profile minimal >&2 && have_nightly; then
        use_nightly
    else
        log "no nightly toolchain available; using the default toolchain with RUSTC_BOOTSTRAP=1"
        use_bootstrap
    fi
    ;;
*)
    echo "FUZZ_TOOLCHAIN must be auto, nightly or bootstrap" >&2
    exit 2
    ;;
esac
log "toolchain: $TOOLCHAIN_DESC"

# --- cargo-fuzz --------------------------------------------------------------------------
FUZZ_BIN_DIR="$ROOT/.cache/cargo-bin"
INSTALL_NOTE=""
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    export PATH="$FUZZ_BIN_DIR/bin:$PATH"
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    log "cargo-fuzz not found; installing it into $FUZZ_BIN_DIR (cargo install cargo-fuzz --locked)"
    t0=$(date +%s)
    # A temporary build directory, not CARGO_TARGET_DIR; the default toolchain builds it.
    if ! env -u CARGO_TARGET_DIR -u RUSTC_BOOTSTRAP cargo install cargo-fuzz --locked \
        --root "$FUZZ_BIN_DIR" >&2; then
        log "cargo install cargo-fuzz failed"
        exit 2
    fi
    INSTALL_NOTE="cargo-fuzz was installed by this run in $(($(date +%s) - t0)) s."
    log "$INSTALL_NOTE"
fi
FUZZ_VERSION=$(cargo-fuzz --version 2>/dev/null || echo "cargo-fuzz ?")
log "$FUZZ_VERSION ($(command -v cargo-fuzz))"

# --- build -------------------------------------------------------------------------------
BUILD_FLAGS=(--fuzz-dir "$FUZZ" -s "$SANITIZER")
log "building ${TARGETS[*]} (sanitizer: $SANITIZER, target dir: $CARGO_TARGET_DIR)"
t0=$(date +%s)
build_ok=1
declare -A BUILT
for t in "${TARGETS[@]}"; do
    BUILT[$t]=1
    if ! "${CARGO[@]}" fuzz build "${BUILD_FLAGS[@]}" "$t" >"$LOGS/build-$t.log" 2>&1; then
        build_ok=0
        BUILT[$t]=0
        log "build of $t failed; see $LOGS/build-$t.log"
        tail -n 30 "$LOGS/build-$t.log" >&2
    fi
done
BUILD_SECS=$(($(date +%s) - t0))
log "build took ${BUILD_SECS} s"

# --- run ---------------------------------------------------------------------------------
LIBFUZZER_ARGS=(-max_total_time="$SECS" -rss_limit_mb="$RSS_MB" -max_len="$MAX_LEN"
    -timeout="$TIMEOUT" -print_final_stats=1)
declare -A RUNS SECONDS_RUN RATE CORPUS STATUS REPRO DETAIL
failed=0
list_artifacts() { find "$FUZZ/artifacts/$1" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) 2>/dev/null | sort; }

for t in "${TARGETS[@]}"; do
    corpus="$FUZZ/corpus/$t"
    seeds="$FUZZ/seeds/$t"
    mkdir -p "$corpus" "$FUZZ/artifacts/$t"
    args=("${LIBFUZZER_ARGS[@]}")
    [ -f "$FUZZ/dicts/$t.dict" ] && args+=(-dict="$FUZZ/dicts/$t.dict")
    dirs=("$corpus")
    [ -d "$seeds" ] && dirs+=("$seeds")
    shown_dirs="fuzz/corpus/$t"
    [ -d "$seeds" ] && shown_dirs+=" fuzz/seeds/$t"
    shown_args="-max_total_time=$SECS -rss_limit_mb=$RSS_MB -max_len=$MAX_LEN -timeout=$TIMEOUT"
    [ -f "$FUZZ/dicts/$t.dict" ] && shown_args+=" -dict=fuzz/dicts/$t.dict"
    REPRO[$t]="$CARGO_SHOWN fuzz run -s $SANITIZER $t $shown_dirs -- $shown_args"
    logf="$LOGS/$t.log"
    before=$(list_artifacts "$t")
    if [ "${BUILT[$t]}" = 0 ]; then
        RUNS[$t]=0 SECONDS_RUN[$t]=0 RATE[$t]=0 CORPUS[$t]=0
        STATUS[$t]="not run: build failed" DETAIL[$t]=$(grep -m1 -A3 '^error' "$LOGS/build-$t.log")
        failed=1
        continue
    fi
    log "running $t for ${SECS}s"
    t0=$(date +%s)
    "${CARGO[@]}" fuzz run "${BUILD_FLAGS[@]}" "$t" "${dirs[@]}" -- "${args[@]}" >"$logf" 2>&1
    rc=$?
    wall=$(($(date +%s) - t0))
    new=$(comm -13 <(echo "$before") <(list_artifacts "$t") | sed '/^$/d')

    # Executions: libFuzzer's final "Done N runs in M second(s)", else the final stats,
    # else the last status line.
    runs=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$logf" | tail -n1 | awk '{print $2}')
    secs=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$logf" | tail -n1 | awk '{print $5}')
    [ -z "$runs" ] && runs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$logf" | tail -n1 | awk '{print $2}')
    [ -z "$runs" ] && runs=$(grep -oE '^#[0-9]+' "$logf" | tail -n1 | tr -d '#')
    [ -z "$runs" ] && runs=0
    [ -z "$secs" ] && secs=$wall
    RUNS[$t]=$runs
    SECONDS_RUN[$t]=$secs
    RATE[$t]=$(( secs > 0 ? runs / secs : runs ))
    CORPUS[$t]=$(find "$corpus" -type f | wc -l)

    if [ "$rc" = 0 ] && [ -z "$new" ]; then
        STATUS[$t]="ok"
        DETAIL[$t]=""
    else
        failed=1
        kind="failed (exit $rc)"
        grep -q 'ERROR: libFuzzer: deadly signal' "$logf" && kind="crash"
        grep -q 'ERROR: libFuzzer: timeout' "$logf" && kind="timeout"
        grep -qE 'ERROR: libFuzzer: out-of-memory|malloc limit' "$logf" && kind="out-of-memory"
        grep -q 'ERROR: AddressSanitizer' "$logf" && kind="crash (AddressSanitizer)"
        artifact=$(echo "$new" | head -n1)
        if [ -n "$artifact" ]; then
            rel=${artifact#"$ROOT"/}
            kind+=": $rel"
            REPRO[$t]="$CARGO_SHOWN fuzz run -s $SANITIZER $t $rel"
        fi
        STATUS[$t]=$kind
        DETAIL[$t]=$(grep -m1 -A2 'panicked at' "$logf" | head -n3)
        [ -z "${DETAIL[$t]}" ] && DETAIL[$t]=$(grep -m1 -E 'ERROR: libFuzzer|==ERROR' "$logf")
    fi
    printf '%-12s %10s execs in %4ss (%s/s), corpus %s: %s\n' "$t" "$runs" "$secs" \
        "${RATE[$t]}" "${CORPUS[$t]}" "${STATUS[$t]}"
done

# --- summary -----------------------------------------------------------------------------
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=""
[ -n "$(git status --porcelain 2>/dev/null | head -n1)" ] && dirty=" (with uncommitted changes in the checkout)"
{
    echo "# Fuzzing results"
    echo
    echo "Written by \`scripts/fuzz.sh $SECS\`; rerun it to refresh this file."
    echo
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "- Commit: \`$commit\`$dirty"
    echo "- Toolchain: $TOOLCHAIN_DESC"
    echo "- $FUZZ_VERSION; sanitizer \`$SANITIZER\`; build took ${BUILD_SECS} s"
    [ -n "$INSTALL_NOTE" ] && echo "- $INSTALL_NOTE"
    echo "- libFuzzer options: \`-max_total_time=$SECS -rss_limit_mb=$RSS_MB -max_len=$MAX_LEN -timeout=$TIMEOUT\` (plus \`-dict\` where \`fuzz/dicts/<target>.dict\` exists)"
    echo "- Machine: $(nproc) core(s), one target at a time, one libFuzzer job each"
    echo
    echo "| Target | Seconds | Executions | Exec/s | Corpus files | Crashes | Reproduce |"
    echo "|---|---:|---:|---:|---:|---|---|"
    for t in "${TARGETS[@]}"; do
        st=${STATUS[$t]}
        [ "$st" = ok ] && st=none
        echo "| \`$t\` | ${SECONDS_RUN[$t]} | ${RUNS[$t]} | ${RATE[$t]} | ${CORPUS[$t]} | $st | \`${REPRO[$t]}\` |"
    done
    echo
    if [ "$failed" = 1 ]; then
        echo "## Findings"
        echo
        for t in "${TARGETS[@]}"; do
            [ "${STATUS[$t]}" = ok ] && continue
            echo "### \`$t\`: ${STATUS[$t]}"
            echo
            echo '```'
            echo "${DETAIL[$t]}"
            echo '```'
            echo
            echo "Full log: \`fuzz/artifacts/logs/$t.log\` (not committed)."
            echo
        done
    fi
    [ "$build_ok" = 0 ] && echo "**The build failed for some targets**: see \`fuzz/artifacts/logs/build-*.log\`." && echo
    echo "Targets (\`fuzz/fuzz_targets/\`): \`wire\` (Confluent header and message indexes),"
    echo "\`avro\` (compiled AvroReader over a 12-field card schema, plain and through a reader"
    echo "schema), \`avro_schema\` (schema text → parse → compile → read), \`proto\` (compiled"
    echo "ProtoReader over a proto3 card message, and message-index paths), \`source\`"
    echo "(SchemaSource, bare framing, Avro and Protobuf). Besides \"no panic\", they assert that"
    echo "a successful read leaves every slot with a value its \`Use\` admits and that refusals"
    echo "carry record-level reasons (see \`fuzz/src/lib.rs\`)."
} >"$RESULTS"
log "summary written to ${RESULTS#"$ROOT"/}"

[ "$build_ok" = 0 ] && exit 1
exit "$failed"
