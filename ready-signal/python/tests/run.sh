#!/usr/bin/env bash
# The Python package's tests (called by tests/run.sh): builds the wheel into a virtualenv and
# runs pytest against real redis-server and nats-server. Needs the workspace's debug binaries
# (`cargo build -p healthcheck -p ready-signal-cli`) for the probe and the CLI.
#
# The wheel is built with maturin's `--profile dev` (the package's Cargo.toml: dependencies at
# opt-level 1, no debug info): a release build with LTO takes minutes longer and the tests do
# not measure speed (bench/python.sh does, on a release wheel).
#
#   bash ready-signal/python/tests/run.sh [PYTEST ARGS...]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
VENV=${READY_SIGNAL_VENV:-$TARGET_DIR/pyvenv}
# Debian's interpreter (python3-venv) unless PYTHON says otherwise.
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "==> creating a virtualenv in $VENV ($("$PYTHON" --version))"
    "$PYTHON" -m venv "$VENV" || { echo "python3 -m venv failed: apt-get install -y python3-venv" >&2; exit 1; }
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "maturin>=1.5,<2" pytest redis nats-py

# The build backend runs the venv's `maturin` executable by name.
export PATH="$VENV/bin:$PATH"
echo "==> building the ready_signal wheel (maturin --profile dev) into $VENV"
MATURIN_PEP517_ARGS="--profile dev" "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    --no-build-isolation --force-reinstall --no-deps ./ready-signal/python

echo "==> pytest ready-signal/python/tests"
set +e
(cd ready-signal/python && "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests "$@")
code=$?
set -e
case $code in
    0) ;;
    5) echo "pytest collected no tests: ready-signal/python/tests is broken" >&2; exit 1 ;;
    *) echo "pytest failed (exit $code)" >&2; exit 1 ;;
esac
