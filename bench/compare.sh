#!/usr/bin/env bash
# Two builds of the probe side by side in one hyperfine run (a change's "before and after"):
# the four-target probe of bench/run.sh against the same servers, then each binary's peak RSS
# (median of 21 runs, GNU time) and size.
#
#   bash bench/compare.sh OLD_HEALTHCHECK NEW_HEALTHCHECK
#
# Build the old one from a worktree, e.g.:
#   git worktree add /tmp/hc-base REV
#   (cd /tmp/hc-base && cargo build --release --target x86_64-unknown-linux-musl -p healthcheck)
set -euo pipefail

# shellcheck source=bench/prelude.sh
source "$(dirname "${BASH_SOURCE[0]}")/prelude.sh"
[[ $# == 2 && -x $1 && -x $2 ]] || { echo "usage: bash bench/compare.sh OLD_HEALTHCHECK NEW_HEALTHCHECK" >&2; exit 1; }
OLD=$1 NEW=$2
RUNS=${RUNS:-300}

for tool in redis-server redis-cli nats-server hyperfine curl; do
  command -v "$tool" >/dev/null || die "'$tool' not found (see tests/deps.sh for the Debian packages)"
done
[[ -x /usr/bin/time ]] || die "/usr/bin/time not found: apt-get install -y time"

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
cargo build --quiet -p ready-signal-cli
RS=$TARGET_DIR/debug/ready-signal

# shellcheck source=bench/servers.sh
source "$ROOT/bench/servers.sh"

T="$REDIS $NATS $HTTP ready://bench-agent"
for bin in "$OLD" "$NEW"; do
  # shellcheck disable=SC2086
  "$bin" $T >/dev/null || die "$bin is not healthy against the bench servers"
done
log "hyperfine: old and new, four targets ($RUNS runs each)"
# shellcheck disable=SC2086
hyperfine -N --warmup 20 --runs "$RUNS" -n "old: $OLD" "$OLD $T" -n "new: $NEW" "$NEW $T"

log "peak RSS (median of 21 runs) and size"
for bin in "$OLD" "$NEW"; do
  rss=$(for _ in $(seq 21); do
    # shellcheck disable=SC2086
    /usr/bin/time -f %M "$bin" $T 2>&1 >/dev/null | tail -n 1
  done | sort -n | sed -n 11p)
  printf '%s: peak RSS %s KiB, size %s bytes\n' "$bin" "$rss" "$(stat -c %s "$bin")"
done
