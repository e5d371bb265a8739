#!/usr/bin/env bash
# The Python package's tests (called by tests/run.sh): builds the wheel into a virtualenv and
# runs pytest against real redis-server and nats-server. Needs the workspace's debug binaries
# (`cargo build -p healthcheck -p ready-signal-cli`) for the probe and the CLI.
#
# The wheel is build-wheel.sh's `dev` (the workspace's `wheel-dev` profile: dependencies at
# opt-level 0): a release build with LTO takes minutes longer and the tests do not measure speed
# (bench/python.sh does, on a release wheel). The virtualenv
# (Debian's python3) lives in target/pyvenv.
#
#   bash ready-signal/python/tests/run.sh [PYTEST ARGS...]   (without arguments, also tests/install.sh)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
VENV=${READY_SIGNAL_VENV:-$TARGET_DIR/pyvenv}

wheel=$(bash ready-signal/python/build-wheel.sh dev)
"$VENV/bin/python" -m pip install -q --disable-pip-version-check pytest redis nats-py
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$wheel"

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

# The documented installs (from a checkout, from an sdist), when the whole suite runs.
if [[ $# -eq 0 ]]; then
    bash ready-signal/python/tests/install.sh
fi
