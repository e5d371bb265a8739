#!/usr/bin/env bash
# Gating delay per `service_healthy` level on this engine, at a HEALTHCHECK interval of 2 s and
# of 30 s, beside `healthcheck wait`: a chain l0 <- l1 <- l2 (each gated by service_healthy on
# the previous, each healthy at its first check), and a waiter that gates itself with
# `healthcheck wait http://l0:8080/`. Prints, per interval, when each started after l0 did.
# Needs the static probe (target/x86_64-unknown-linux-musl/release/healthcheck) and busybox.
#
#   bash bench/gating-levels.sh [INTERVAL...]      (default: 2s 30s)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROJECT=${PROJECT:-hcgating$$}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PROBE=${PROBE:-$TARGET_DIR/x86_64-unknown-linux-musl/release/healthcheck}
IMAGE=healthcheck-bench/gating:$PROJECT
WORK=$(mktemp -d)
trap 'docker-compose -p "$PROJECT" -f "$WORK/compose.yml" down -t 1 >/dev/null 2>&1; docker image rm "$IMAGE" >/dev/null 2>&1; rm -rf "$WORK"' EXIT

mkdir -p "$WORK/ctx/bin" "$WORK/ctx/www"
cp "$(command -v busybox)" "$WORK/ctx/bin/busybox"
cp "$PROBE" "$WORK/ctx/healthcheck"
echo ok >"$WORK/ctx/www/index.html"
printf 'FROM scratch\nCOPY . /\n' >"$WORK/ctx/Dockerfile"
docker build -q -t "$IMAGE" "$WORK/ctx" >/dev/null

for interval in "${@:-2s 30s}"; do
  for i in $interval; do
    cat >"$WORK/compose.yml" <<YML
x-check: &check
  test: ["CMD", "/bin/busybox", "true"]
  interval: $i
  timeout: 2s
  retries: 2
  start_period: 30s
services:
  l0:
    image: $IMAGE
    command: ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]
    healthcheck: *check
  l1:
    image: $IMAGE
    command: ["/bin/busybox", "sleep", "3600"]
    healthcheck: *check
    depends_on: { l0: { condition: service_healthy } }
  l2:
    image: $IMAGE
    command: ["/bin/busybox", "sleep", "3600"]
    healthcheck: *check
    depends_on: { l1: { condition: service_healthy } }
  waiter:
    image: $IMAGE
    entrypoint: ["/healthcheck", "wait", "--timeout", "60s", "http://l0:8080/", "--", "/bin/busybox", "sleep", "3600"]
YML
    since=$(date +%s)
    docker-compose -p "$PROJECT" -f "$WORK/compose.yml" up -d >/dev/null 2>&1
    sleep 1
    events=$(docker events --since "$since" --until "$(date +%s)" --filter "label=com.docker.compose.project=$PROJECT" \
        --filter event=start --format '{{.TimeNano}} {{index .Actor.Attributes "com.docker.compose.service"}}')
    at() { awk -v s="$1" '$2 == s { print $1; exit }' <<<"$events"; }
    l0=$(at l0) l1=$(at l1) l2=$(at l2)
    wait_line=$(docker-compose -p "$PROJECT" -f "$WORK/compose.yml" logs waiter 2>&1 | grep -o 'ready after [0-9.]*m\?s' | head -n 1)
    awk -v i="$i" -v a="$l0" -v b="$l1" -v c="$l2" -v w="$wait_line" 'BEGIN {
        printf "interval %-4s l1 started %5.1f s after l0, l2 %5.1f s after l1 (per level); waiter (healthcheck wait): %s\n",
            i, (b - a) / 1e9, (c - b) / 1e9, w }'
    docker-compose -p "$PROJECT" -f "$WORK/compose.yml" down -t 1 >/dev/null 2>&1
  done
done
