#!/usr/bin/env bash
# The whole test suite, on a fresh machine: sets up what the tests need, then formatting,
# lints, unit, property, golden and crash tests. CI (.ci/run) runs exactly this.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/setup-python.sh | tail -n 1)}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-0}"
echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy -D warnings" >&2
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo test (release: the property and crash tests process many events)" >&2
cargo test --workspace --release
echo "== all tests passed" >&2
