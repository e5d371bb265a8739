#!/usr/bin/env bash
# The project's test command (the README's, and what CI runs): installs what the tests need,
# builds every binary, runs the whole test suite against real redis-server and nats-server
# processes, then the end-to-end suite on the real Docker engine.
#
#   bash tests/run.sh              everything
#   bash tests/run.sh --no-docker  skip docker/e2e.sh (no Docker engine at hand)
set -euo pipefail
cd "$(dirname "$0")/.."

docker=1
for arg in "$@"; do
    case "$arg" in
        --no-docker) docker=0 ;;
        *) echo "usage: bash tests/run.sh [--no-docker]" >&2; exit 1 ;;
    esac
done

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages: the real servers the tests talk to, redis-cli, and musl for static builds.
missing=()
command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
command -v musl-gcc >/dev/null || missing+=(musl-tools)
[ -x /bin/busybox ] || missing+=(busybox-static)
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin"

# The static target (Docker images) and the Python clients (the interop test's agent).
rustup target list --installed | grep -qx x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl
python3 -c 'import redis, nats' 2>/dev/null \
    || python3 -m pip install -q redis nats-py 2>/dev/null \
    || python3 -m pip install -q --break-system-packages redis nats-py
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest

echo "==> building every binary and example (tests run them)"
cargo build --workspace --bins --examples

echo "==> cargo nextest run --workspace"
cargo nextest run --workspace --no-fail-fast

echo "==> cargo test --doc --workspace (nextest does not run doc examples)"
cargo test --doc --workspace --quiet

if [ "$docker" = 1 ]; then
    echo "==> docker/e2e.sh"
    bash docker/e2e.sh
fi
echo "==> all tests passed"
