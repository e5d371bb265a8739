#!/usr/bin/env bash
# The two documented installs of the Python package (its README, "Install"), as a user runs
# them, each in a fresh virtualenv of Debian's python3, each followed by an import that starts a
# publisher and writes a record:
#   pip install ./ready-signal/python                 (a source checkout)
#   maturin sdist, then pip install ready_signal-*.tar.gz (a source distribution)
# pip fetches maturin from PyPI into its isolated build environment; cargo builds the crate.
# MATURIN_PEP517_ARGS="--profile wheel-dev" (build-wheel.sh dev's profile) and the shared target
# directory keep the builds to a minute (the documented commands build in release; only the
# profile differs). Prints the sdist's and the wheels' sizes.
#
#   bash ready-signal/python/tests/install.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CARGO_TARGET_DIR="$TARGET_DIR" MATURIN_PEP517_ARGS="--profile wheel-dev"

smoke() { # venv label
    local dir
    dir=$(mktemp -d -p "$work")
    "$1/bin/python" - "$dir" <<'PY'
import sys, time, ready_signal
from pathlib import Path
with ready_signal.ReadySignal("install-check", dir=sys.argv[1], replica="r1") as s:
    s.ready()
    deadline = time.monotonic() + 5
    while not [p for p in Path(sys.argv[1]).rglob("*") if p.is_file()]:
        assert time.monotonic() < deadline, "no record file written within 5 s"
        time.sleep(0.05)
PY
    echo "  $2: installed, imported, published"
}

echo "==> pip install ./ready-signal/python (a source checkout)"
/usr/bin/python3 -m venv "$work/checkout"
"$work/checkout/bin/pip" install -q --disable-pip-version-check ./ready-signal/python
smoke "$work/checkout" "from a checkout"

echo "==> maturin sdist, then pip install the sdist"
/usr/bin/python3 -m venv "$work/sdist-build"
"$work/sdist-build/bin/pip" install -q --disable-pip-version-check "maturin>=1.5,<2"
(cd ready-signal/python && "$work/sdist-build/bin/maturin" sdist --out "$work/dist") >/dev/null
sdist=$(ls "$work"/dist/ready_signal-*.tar.gz)
/usr/bin/python3 -m venv "$work/sdist"
"$work/sdist/bin/pip" install -q --disable-pip-version-check "$sdist"
smoke "$work/sdist" "from the sdist $(basename "$sdist")"
echo "  sizes: sdist $(stat -c %s "$sdist") bytes"
echo "==> both installs work"
