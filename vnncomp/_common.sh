# Shared by prepare_instance.sh and run_instance.sh (sourced, not run).
# ABSINT_CMD: how to call the CLI (ABSINT_BIN, else `absint` on PATH, else `python -m absint.cli`);
# ABSINT_PYTHON: the interpreter that has absint installed (beside the absint script by default);
# RUN_DIR: where run_instance.sh records the pids of running verifiers for prepare_instance.sh.
if [ -n "${ABSINT_BIN:-}" ]; then
    ABSINT_CMD=("$ABSINT_BIN")
elif command -v absint >/dev/null 2>&1; then
    ABSINT_CMD=("$(command -v absint)")
else
    ABSINT_CMD=("${ABSINT_PYTHON:-python3}" -m absint.cli)
fi
if [ -z "${ABSINT_PYTHON:-}" ]; then
    if [ -x "$(dirname "${ABSINT_CMD[0]}")/python" ]; then
        ABSINT_PYTHON="$(dirname "${ABSINT_CMD[0]}")/python"
    else
        ABSINT_PYTHON=python3
    fi
fi
RUN_DIR=${ABSINT_VNNCOMP_RUN_DIR:-${TMPDIR:-/tmp}/absint-vnncomp-$(id -u)}
