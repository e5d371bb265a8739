# The setup every bench script shares, sourced first (one copy instead of one per script):
# ROOT (and cd there), OUT=bench/results, log and die (naming the script), free_port and
# cluster_port, and a temp dir TMP whose servers (PIDS) are killed and which is removed on exit.
# A script with more to clean up defines its own cleanup() after sourcing this; the trap calls it
# by name.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT=bench/results
mkdir -p "$OUT"
BENCH_SCRIPT="bench/$(basename "$0")"

log() { printf '\n== %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "$BENCH_SCRIPT" "$*" >&2; exit 1; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
# A port whose cluster bus (port + 10000) is free too, below the ephemeral range (Redis Cluster).
cluster_port() {
  python3 - <<'PY'
import random, socket
while True:
    p = random.randrange(20000, 32000)
    try:
        a = socket.socket(); a.bind(("127.0.0.1", p)); b = socket.socket(); b.bind(("127.0.0.1", p + 10000))
        a.close(); b.close(); print(p); break
    except OSError:
        pass
PY
}

TMP=$(mktemp -d "/tmp/hc-$(basename "$0" .sh).XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
