#!/usr/bin/env bash
# Creates the repo-local Python environment `.venv` used by nowcast-model.
#
#   scripts/setup-python.sh           # onnxruntime only (the runtime library the Rust crate loads)
#   scripts/setup-python.sh --train   # also numpy, scikit-learn, skl2onnx, onnx (for models/train.py)
#
# Idempotent: a stamp file inside .venv records what was installed; a second run with the same
# pins returns at once. Prints the absolute path of libonnxruntime.so on stdout (last line);
# everything else goes to stderr. Needs python3.11 and PyPI, nothing else.
set -euo pipefail

# Pinned versions. Bumping one invalidates the stamp and reinstalls.
ONNXRUNTIME_VERSION="1.32.0"
TRAIN_PINS=(
    "numpy==2.4.6"
    "scikit-learn==1.9.1"
    "skl2onnx==1.20.0"
    "onnx==1.23.2"
)

train=0
for arg in "$@"; do
    case "$arg" in
        --train) train=1 ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "setup-python.sh: unknown argument '$arg' (expected --train)" >&2; exit 2 ;;
    esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${PYTHON:-python3.11}"

runtime_stamp="onnxruntime==$ONNXRUNTIME_VERSION"
train_stamp="$runtime_stamp ${TRAIN_PINS[*]}"

find_lib() {
    # The wheel ships the versioned file only (libonnxruntime.so.1.X.Y).
    local lib
    lib="$(ls "$venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so* 2>/dev/null | head -n 1 || true)"
    [[ -n "$lib" ]] && echo "$lib"
}

stamp_ok() {
    local want="$1" file="$venv/.nowcast-stamp-$2"
    [[ -f "$file" ]] && [[ "$(cat "$file")" == "$want" ]] && find_lib >/dev/null
}

if stamp_ok "$runtime_stamp" runtime && { [[ $train -eq 0 ]] || stamp_ok "$train_stamp" train; }; then
    find_lib
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    command -v "$python" >/dev/null || { echo "setup-python.sh: $python not found; install Python 3.11 or set PYTHON" >&2; exit 1; }
    echo "setup-python.sh: creating $venv" >&2
    "$python" -m venv "$venv"
fi

pip=("$venv/bin/python" -m pip install --disable-pip-version-check --quiet)
if ! stamp_ok "$runtime_stamp" runtime; then
    echo "setup-python.sh: installing onnxruntime==$ONNXRUNTIME_VERSION" >&2
    "${pip[@]}" "onnxruntime==$ONNXRUNTIME_VERSION" >&2
    echo "$runtime_stamp" > "$venv/.nowcast-stamp-runtime"
fi
if [[ $train -eq 1 ]] && ! stamp_ok "$train_stamp" train; then
    echo "setup-python.sh: installing ${TRAIN_PINS[*]}" >&2
    "${pip[@]}" "onnxruntime==$ONNXRUNTIME_VERSION" "${TRAIN_PINS[@]}" >&2
    echo "$train_stamp" > "$venv/.nowcast-stamp-train"
fi

lib="$(find_lib)" || { echo "setup-python.sh: onnxruntime installed but libonnxruntime.so* not found under $venv" >&2; exit 1; }
echo "$lib"
