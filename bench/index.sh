#!/usr/bin/env bash
# Benchmark of the due index (PROTOCOL.md revision 5) for BENCHMARKS.md. Not part of the tests.
#
#   OLD=/path/to/old/healthcheck-sidecar NEW=/path/to/new/healthcheck-sidecar \
#   HB=/path/to/bench_heartbeats bash bench/index.sh idle
#
# idle: AGENTS (default 10000) agents heartbeating at 1 Hz through the crate's write script
# (bench_heartbeats, the revision of the checkout it was built from), nothing changing, on one
# redis-server with a nats-server; the OLD and the NEW sidecar watch the same namespace side by
# side in the same run. Reports each sidecar's CPU (from /proc, over SECONDS, default 30, after a
# 20 s warm-up) and RSS (now and peak), and redis-server's CPU over the same window.
#
# Output goes to bench/results/index-idle.txt.
set -euo pipefail
# shellcheck source=bench/prelude.sh
source "$(dirname "${BASH_SOURCE[0]}")/prelude.sh"
: "${OLD:?the old sidecar binary}" "${NEW:?the new sidecar binary}" "${HB:?bench_heartbeats}"

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_mb() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
hwm_mb() { awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

idle() {
    local n=${AGENTS:-10000} secs=${SECONDS_MEASURED:-30}
    RPORT=$(free_port) NPORT=$(free_port)
    redis-server --port "$RPORT" --save '' --appendonly no --dir "$TMP" >"$TMP/redis.log" 2>&1 &
    RPID=$!
    PIDS+=($RPID)
    nats-server -a 127.0.0.1 -p "$NPORT" >"$TMP/nats.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
    log "$n agents at 1 Hz for $((secs + 40)) s"
    "$HB" --redis "redis://127.0.0.1:$RPORT" --agents "$n" --seconds "$((secs + 40))" \
        --namespace idle --read-all 0 >"$TMP/hb.txt" 2>&1 &
    HBPID=$!
    PIDS+=($HBPID)
    sleep 5
    local pids=() which
    for which in OLD NEW; do
        local port
        port=$(free_port)
        READY_SIGNAL_REDIS_URL=redis://127.0.0.1:$RPORT READY_SIGNAL_NATS_URL=nats://127.0.0.1:$NPORT \
            READY_SIGNAL_NAMESPACE=idle "${!which}" --listen "127.0.0.1:$port" --docker none \
            >"$TMP/sidecar-$which.log" 2>&1 &
        pids+=($!)
        PIDS+=($!)
        echo "$port" >"$TMP/port-$which"
    done
    sleep 20
    local o0 n0 r0 o1 n1 r1 hz
    hz=$(getconf CLK_TCK)
    o0=$(cpu_ticks "${pids[0]}") n0=$(cpu_ticks "${pids[1]}") r0=$(cpu_ticks "$RPID")
    sleep "$secs"
    o1=$(cpu_ticks "${pids[0]}") n1=$(cpu_ticks "${pids[1]}") r1=$(cpu_ticks "$RPID")
    {
        echo "agents: $n at 1 Hz (bench_heartbeats), nothing changing; both sidecars on one redis-server + nats-server"
        for which in OLD NEW; do
            local c0 c1 pid
            if [[ $which == OLD ]]; then c0=$o0 c1=$o1 pid=${pids[0]}; else c0=$n0 c1=$n1 pid=${pids[1]}; fi
            local ready
            ready=$(curl -fsS "http://127.0.0.1:$(cat "$TMP/port-$which")/api/status" \
                | jq -r '.summary.replicas_by_state | "ready \(.ready), stale \(.stale), dead \(.dead), unknown \(.unknown)"')
            awk -v w="$which" -v a="$c0" -v b="$c1" -v hz="$hz" -v s="$secs" -v rss="$(rss_mb "$pid")" -v hwm="$(hwm_mb "$pid")" -v st="$ready" \
                'BEGIN { printf "%s sidecar: CPU %.2f %% of one core over %d s; RSS %s MB (peak %s MB); shows %s\n", w, (b - a) / hz / s * 100, s, rss, hwm, st }'
        done
        awk -v a="$r0" -v b="$r1" -v hz="$hz" -v s="$secs" \
            'BEGIN { printf "redis-server (writes of every agent + both sidecars): CPU %.1f %% of one core\n", (b - a) / hz / s * 100 }'
    } | tee "$OUT/index-idle.txt"
    wait "$HBPID" || true
    grep -E "achieved|latency" "$TMP/hb.txt" | tee -a "$OUT/index-idle.txt" || true
}

case "${1:-}" in
    idle) idle ;;
    *) die "usage: bash bench/index.sh idle" ;;
esac
