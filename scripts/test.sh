#!/usr/bin/env bash
# The whole test suite, on a fresh machine: sets up what the tests need, then formatting,
# lints, unit, property, golden and crash tests, and the integration tests against a real
# Apache Kafka broker. CI (.ci/run) runs exactly this.
#
# NOWCAST_KAFKA=host:port uses that broker; unset, a single-node KRaft broker is started from
# Maven Central jars (scripts/kafka.sh) and stopped at the end.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/setup-python.sh | tail -n 1)}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-0}"
if [[ -z "${NOWCAST_KAFKA:-}" ]]; then
    echo "== starting Apache Kafka (scripts/kafka.sh)" >&2
    started_kafka=1
    trap 'scripts/kafka.sh stop >&2 || true' EXIT
    kafka_env="$(scripts/kafka.sh start)"
    export "${kafka_env?}"
fi
# Kafka tests fail instead of skipping when no broker is given.
export NOWCAST_REQUIRE_KAFKA=1
echo "== Kafka at $NOWCAST_KAFKA${started_kafka:+ (started here)}" >&2
echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy -D warnings" >&2
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo test (release: the property and crash tests process many events)" >&2
cargo test --workspace --release
echo "== all tests passed" >&2
