#!/usr/bin/env bash
# VNN-COMP tool script: run_instance.sh v1 CATEGORY ONNX VNNLIB RESULTS_FILE TIMEOUT
# Runs `absint verify ONNX VNNLIB --timeout TIMEOUT --out RESULTS_FILE`; the result file
# (sat with the counterexample / unsat / unknown / timeout) is written atomically by absint.
# Options: ABSINT_DOMAIN (default zonotope), ABSINT_MEMORY (e.g. 4GiB), ABSINT_BIN, ABSINT_PYTHON.
set -u

VERSION=${1:-}
if [ "$VERSION" != "v1" ]; then
    echo "run_instance.sh: expected version string v1 as the first argument, got '$VERSION'" >&2
    exit 1
fi
if [ $# -ne 6 ]; then
    echo "usage: run_instance.sh v1 CATEGORY ONNX VNNLIB RESULTS_FILE TIMEOUT" >&2
    exit 1
fi
CATEGORY=$2
ONNX=$3
VNNLIB=$4
RESULTS_FILE=$5
TIMEOUT=$6

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=_common.sh
. "$SCRIPT_DIR/_common.sh"

ARGS=(verify "$ONNX" "$VNNLIB" --timeout "$TIMEOUT" --out "$RESULTS_FILE" --domain "${ABSINT_DOMAIN:-zonotope}")
if [ -n "${ABSINT_MEMORY:-}" ]; then
    ARGS+=(--memory "$ABSINT_MEMORY")
fi

echo "absint: $CATEGORY $(basename "$ONNX") $(basename "$VNNLIB") timeout $TIMEOUT s"
rm -f "$RESULTS_FILE"
mkdir -p "$RUN_DIR"
"${ABSINT_CMD[@]}" "${ARGS[@]}" &
pid=$!
echo "$pid" > "$RUN_DIR/$pid.pid"
trap 'kill -TERM "$pid" 2>/dev/null; rm -f "$RUN_DIR/$pid.pid"; exit 143' TERM INT
wait "$pid"
rc=$?
rm -f "$RUN_DIR/$pid.pid"
exit $rc
