#!/usr/bin/env bash
# The Python package's costs (issue 15): tick() per call from Python and the RSS an agent adds by
# importing ready_signal (and by starting a publisher), on the release wheel. Not part of the
# test suite. The frozen-loop-to-unhealthy time in the stack comes from `bash docker/e2e.sh`
# (its "frozen agent-py" and "frozen agent-a" lines).
#
#   bash bench/python.sh        # results in bench/results/python.txt
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
mkdir -p bench/results
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
VENV="$TARGET_DIR/pyvenv-bench"
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
wheel=$(READY_SIGNAL_VENV="$VENV" bash ready-signal/python/build-wheel.sh release)
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$wheel"
{
    echo "wheel $(basename "$wheel")"
    echo "machine $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
    "$VENV/bin/python" bench/python_cost.py
} | tee bench/results/python.txt
