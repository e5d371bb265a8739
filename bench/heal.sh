#!/usr/bin/env bash
# What the heal governor costs (issue 14, BENCHMARKS.md "Healing"): the sidecar's CPU on the
# 24-agent example stack (agent-b scaled to 20, every agent labelled healthcheck.heal=true), at
# steady state, with --heal off and on, alternated on one stack so both see the same load.
# Not part of the test suite.
#
#   bash bench/heal.sh              ROUNDS=2 SECONDS_MEASURED=60 by default
#
# Output: bench/results/heal-cpu.txt. The stack runs as its own Compose project and is removed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT=bench/results
mkdir -p "$OUT"
export PROJECT=${PROJECT:-hcheal$$}
export COMPOSE_OVERRIDE="$ROOT/bench/heal-labels.compose.yml"
# shellcheck source=docker/lib.sh
source "$ROOT/docker/lib.sh"
trap teardown EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

prepare
secs=${SECONDS_MEASURED:-60}
export HC_INTERVAL=${HC_INTERVAL:-10s} SIDECAR_PORT
SIDECAR_PORT=$(free_port)
export SIDECAR_HEAL=off
say "24 agents (agent-b x20), all labelled for healing, HEALTHCHECK every $HC_INTERVAL"
compose up -d --scale agent-b=20 >/dev/null 2>&1
# The 24 Rust and script agents healthy (other services of the example stack are not measured).
deadline=$(( $(date +%s) + 300 ))
until [[ $(health_table | grep -E '_(agent-a|agent-b|agent-script|consumer|consumer-wait)_[0-9]+ running healthy' | wc -l) -ge 24 ]]; do
    (( $(date +%s) < deadline )) || { health_table >&2; exit 1; }
    sleep 1
done
: >"$OUT/heal-cpu.txt"
for round in $(seq "${ROUNDS:-2}"); do
    for mode in off on; do
        export SIDECAR_HEAL=$mode
        compose up -d --no-deps sidecar >/dev/null 2>&1
        for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$SIDECAR_PORT/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
        sleep 10
        spid=$(docker inspect -f '{{.State.Pid}}' "$(compose ps -q sidecar)")
        replicas=$(curl -fsS "http://127.0.0.1:$SIDECAR_PORT/api/status" | jq '[.agents[].replicas[]] | length')
        t0=$(cpu_ticks "$spid")
        sleep "$secs"
        t1=$(cpu_ticks "$spid")
        restarts=$(docker logs "$(compose ps -q sidecar)" 2>&1 | grep -c 'decision="restart"' || true)
        awk -v r="$round" -v m="$mode" -v d="$(( t1 - t0 ))" -v hz="$(getconf CLK_TCK)" -v t="$secs" \
            -v n="$replicas" -v k="$restarts" 'BEGIN {
            printf "round %d, --heal=%s: sidecar %.2f %% of one core over %d s (%d replicas watched, %d restarts)\n",
                r, m, d / hz / t * 100, t, n, k
        }' | tee -a "$OUT/heal-cpu.txt"
    done
done
