#!/usr/bin/env bash
# Builds the ready_signal wheel with maturin in the project's virtualenv and prints its path.
# Shared by the tests (ready-signal/python/tests/run.sh) and the example stack's agent-py image
# (docker/images/python-agent.sh), so both use one build. Cargo makes a rebuild of unchanged
# sources a no-op.
#
#   bash ready-signal/python/build-wheel.sh [dev|release]     (default: $PY_WHEEL_PROFILE or dev)
#
# `dev` is the workspace's `wheel-dev` profile (the dev profile with every dependency at
# opt-level 0: a third of the CPU of a cold build at opt-level 1), which the Python tests and the
# example stack's agent-py use; `release` is the workspace's `wheel` profile (opt-level 3, thin
# LTO, unwinding), minutes longer to build, which the benchmarks use and people ship.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PROFILE=${1:-${PY_WHEEL_PROFILE:-dev}}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
VENV=${READY_SIGNAL_VENV:-$TARGET_DIR/pyvenv}
# Debian's interpreter (python3-venv) unless PYTHON says otherwise.
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "==> creating a virtualenv in $VENV ($("$PYTHON" --version))" >&2
    "$PYTHON" -m venv "$VENV" || { echo "python3 -m venv failed: apt-get install -y python3-venv" >&2; exit 1; }
fi
"$VENV/bin/python" -c 'import maturin' 2>/dev/null \
    || "$VENV/bin/python" -m pip install -q --disable-pip-version-check "maturin>=1.5,<2" >&2

OUT="$TARGET_DIR/wheels/$PROFILE"
rm -rf "$OUT"
case "$PROFILE" in
    dev) CARGO_PROFILE=wheel-dev ;;
    release) CARGO_PROFILE=wheel ;;
    *) echo "build-wheel.sh: unknown profile '$PROFILE' (dev or release)" >&2; exit 1 ;;
esac
echo "==> building the ready_signal wheel (maturin, cargo profile $CARGO_PROFILE)" >&2
(cd "$ROOT/ready-signal/python" && "$VENV/bin/maturin" build --quiet --profile "$CARGO_PROFILE" \
    --interpreter "$VENV/bin/python" --out "$OUT") >&2
ls "$OUT"/ready_signal-*.whl
