#!/usr/bin/env bash
# VNN-COMP tool script: prepare_instance.sh v1 CATEGORY ONNX VNNLIB
# Stops absint verifiers left over from earlier instances (only those that run_instance.sh
# started and recorded in $ABSINT_VNNCOMP_RUN_DIR) and warms numba's compilation cache, so the
# timed run_instance.sh does not pay for compiling the kernels.
set -u

VERSION=${1:-}
CATEGORY=${2:-}
ONNX=${3:-}
VNNLIB=${4:-}

if [ "$VERSION" != "v1" ]; then
    echo "prepare_instance.sh: expected version string v1 as the first argument, got '$VERSION'" >&2
    exit 1
fi
if [ $# -ne 4 ]; then
    echo "usage: prepare_instance.sh v1 CATEGORY ONNX VNNLIB" >&2
    exit 1
fi

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=_common.sh
. "$SCRIPT_DIR/_common.sh"

echo "absint: preparing $CATEGORY instance $(basename "$ONNX") $(basename "$VNNLIB")"

# 1. leftover verifiers: the pids recorded by run_instance.sh, checked to still be `absint verify` processes
if [ -d "$RUN_DIR" ]; then
    for pidfile in "$RUN_DIR"/*.pid; do
        [ -e "$pidfile" ] || continue
        pid=$(cat "$pidfile" 2>/dev/null)
        case "$pid" in ''|*[!0-9]*) rm -f "$pidfile"; continue ;; esac
        cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)
        if [[ "$cmd" == *absint* && "$cmd" == *" verify "* ]]; then
            echo "absint: stopping leftover verifier (pid $pid)"
            kill -TERM "$pid" 2>/dev/null
            for _ in 1 2 3 4 5 6 7 8 9 10; do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.2
            done
            kill -KILL "$pid" 2>/dev/null
        fi
        rm -f "$pidfile"
    done
fi

# 2. the files must be readable (gzipped ones too: absint reads .gz directly)
for f in "$ONNX" "$VNNLIB"; do
    if [ ! -r "$f" ]; then
        echo "prepare_instance.sh: cannot read $f" >&2
        exit 1
    fi
done

# 3. compile (or load from numba's on-disk cache) every kernel once
"$ABSINT_PYTHON" -c "import kernels; print(f'absint: kernels ready in {kernels.warmup():.1f} s')" || exit 1
exit 0
