#!/usr/bin/env bash
# The whole test suite, on a fresh machine: sets up what the tests need, then formatting,
# lints, unit, property, golden and crash tests, and the integration tests against a real
# Apache Kafka broker. CI (.ci/run) runs exactly this.
#
# NOWCAST_KAFKA=host:port uses that broker; unset, a single-node KRaft broker is started from
# Maven Central jars (scripts/kafka.sh) and stopped at the end. NOWCAST_REGISTRY=URL (a
# Confluent-compatible API) likewise; unset, Apicurio Registry is started (scripts/registry.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/setup-python.sh | tail -n 1)}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-0}"
cleanup=()
trap 'for c in "${cleanup[@]}"; do $c >&2 || true; done' EXIT
if [[ -z "${NOWCAST_KAFKA:-}" ]]; then
    echo "== starting Apache Kafka (scripts/kafka.sh)" >&2
    started_kafka=1
    cleanup+=("scripts/kafka.sh stop")
    kafka_env="$(scripts/kafka.sh start)"
    export "${kafka_env?}"
fi
if [[ -z "${NOWCAST_REGISTRY:-}" ]]; then
    echo "== starting Apicurio Registry (scripts/registry.sh)" >&2
    started_registry=1
    cleanup+=("scripts/registry.sh stop")
    registry_env="$(scripts/registry.sh start)"
    export "${registry_env?}"
fi
# Kafka and registry tests fail instead of skipping when no broker or registry is given.
export NOWCAST_REQUIRE_KAFKA=1 NOWCAST_REQUIRE_REGISTRY=1
echo "== Kafka at $NOWCAST_KAFKA${started_kafka:+ (started here)}" >&2
echo "== schema registry at $NOWCAST_REGISTRY${started_registry:+ (started here)}" >&2
echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy -D warnings" >&2
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo test (release: the property and crash tests process many events)" >&2
cargo test --workspace --release
echo "== all tests passed" >&2
