#!/usr/bin/env bash
# Benchmarks of healthcheck-sidecar (issue 13) for BENCHMARKS.md. Not part of the test suite.
#
#   bash bench/sidecar.sh detect    detection latency (real redis + nats, the release binary)
#   bash bench/sidecar.sh scale     10,000 agents: /api/status and /metrics latency, RSS
#   bash bench/sidecar.sh stack     the 24-agent example stack on the real engine: sidecar CPU
#                                   and RSS, and the CPU of Docker HEALTHCHECK polling, at
#                                   HC_INTERVALS (default "2s 30s")
#   bash bench/sidecar.sh all
#
# SIDECAR_ARGS adds flags to the sidecar (scale, detect), e.g. "--no-history" for an A/B of the
# history's cost; RESULT_TAG suffixes the scale result's file name.
#
# Output goes to bench/results/sidecar-*.txt. Servers run on free loopback ports in a temp dir
# and are killed on exit; the stack runs as its own Compose project and is removed.
set -euo pipefail
# shellcheck source=bench/prelude.sh
source "$(dirname "${BASH_SOURCE[0]}")/prelude.sh"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
SIDECAR=$TARGET_DIR/x86_64-unknown-linux-musl/release/healthcheck-sidecar

build() {
    log "building the static release sidecar and the bench program"
    cargo build --quiet --release --target x86_64-unknown-linux-musl -p healthcheck-sidecar
    cargo build --quiet -p healthcheck-sidecar --example bench_detect
}

servers() {
    RPORT=$(free_port) NPORT=$(free_port)
    redis-server --port "$RPORT" --save '' --appendonly no --dir "$TMP" >"$TMP/redis.log" 2>&1 &
    PIDS+=($!)
    nats-server -a 127.0.0.1 -p "$NPORT" >"$TMP/nats.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
    sleep 0.3
}

start_sidecar() { # namespace
    SPORT=$(free_port)
    READY_SIGNAL_REDIS_URL=redis://127.0.0.1:$RPORT READY_SIGNAL_NATS_URL=nats://127.0.0.1:$NPORT \
        READY_SIGNAL_NAMESPACE=$1 "$SIDECAR" --listen "127.0.0.1:$SPORT" --docker none ${SIDECAR_ARGS:-} >"$TMP/sidecar-$1.log" 2>&1 &
    SIDECAR_PID=$!
    PIDS+=($SIDECAR_PID)
    for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$SPORT/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
}

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# With the reaped children's time: runc, run by a shim for every exec, exits and is counted there.
cpu_ticks_all() { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat"; }

detect() {
    servers
    start_sidecar bench
    log "detection latency, ${ROUNDS:-30} rounds"
    "$TARGET_DIR/debug/examples/bench_detect" "$SPORT" "redis://127.0.0.1:$RPORT" "nats://127.0.0.1:$NPORT" bench "${ROUNDS:-30}" \
        | tee "$OUT/sidecar-detect.txt"
}

scale() {
    servers
    local n=${AGENTS:-10000}
    log "writing $n agent records"
    python3 - "$RPORT" "$n" <<'PY'
import sys, time, redis
port, n = int(sys.argv[1]), int(sys.argv[2])
r = redis.Redis(port=port)
now = int(time.time() * 1000)
ttl = 3_600_000
p = r.pipeline(transaction=False)
for i in range(n):
    agent, replica = f"agent-{i:05d}", "r1"
    key = f"ready-signal:scale:{agent}:r:{replica}"
    state = "ready" if i % 10 else "not-ready"
    p.hset(key, mapping={"v": 1, "agent": agent, "replica": replica, "instance": f"{now:013d}-0000{i % 9999:04x}",
        "state": state, "reason": "" if state == "ready" else "warming a cache of 2 GB",
        "pid": 7, "host": f"host-{i}", "interval_ms": 1000000, "ttl_ms": ttl,
        "since_ms": now, "beat_ms": now, "seq": 1})
    p.pexpire(key, ttl)
    p.zadd(f"ready-signal:scale:{agent}:replicas", {replica: now + ttl})
    p.zadd("ready-signal:scale:agents", {agent: now + ttl})
    if i % 1000 == 999:
        p.execute()
p.execute()
PY
    start_sidecar scale
    for _ in $(seq 100); do
        [[ "$(curl -fsS "http://127.0.0.1:$SPORT/api/status" | jq '.summary.replicas')" == "$n" ]] && break
        sleep 0.2
    done
    sleep 3
    log "latency of /api/status, /metrics and / at $n agents (curl, 30 requests each)"
    {
        echo "agents: $n (one replica each, a tenth not-ready), sidecar reading every 1 s"
        local hz
        hz=$(getconf CLK_TCK)
        t0=$(cpu_ticks "$SIDECAR_PID")
        sleep 10
        t1=$(cpu_ticks "$SIDECAR_PID")
        local idle_per_s
        idle_per_s=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" 'BEGIN { print (b - a) / hz / 10 }')
        for path in /api/status /metrics /; do
            local c0 c1 began ended
            c0=$(cpu_ticks "$SIDECAR_PID") began=$(date +%s.%N)
            for _ in $(seq 30); do
                curl -fsS -o "$TMP/body" -w '%{time_total}\n' "http://127.0.0.1:$SPORT$path"
            done >"$TMP/times"
            c1=$(cpu_ticks "$SIDECAR_PID") ended=$(date +%s.%N)
            # The sidecar's own CPU per request (its background reads during the run taken
            # out): what a request costs, whatever else loads the machine.
            sort -n "$TMP/times" | awk -v p="$path" -v size="$(wc -c <"$TMP/body")" -v c="$(( c1 - c0 ))" \
                -v hz="$hz" -v idle="$idle_per_s" -v secs="$(awk -v a="$began" -v b="$ended" 'BEGIN { print b - a }')" \
                '{ v[NR] = $1 * 1000 } END { printf "%-12s wall p50 %.1f ms  p90 %.1f ms  max %.1f ms; sidecar CPU %.1f ms per request; %d bytes\n", p, v[int(NR * 0.5)], v[int(NR * 0.9)], v[NR], ((c / hz) - idle * secs) / NR * 1000, size }'
        done
        t0=$(cpu_ticks "$SIDECAR_PID")
        sleep 20
        t1=$(cpu_ticks "$SIDECAR_PID")
        awk -v a="$t0" -v b="$t1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "idle CPU over 20 s (bulk read every 1 s): %.1f %% of one core\n", (b - a) / hz / 20 * 100 }'
        echo "RSS $(rss_kb "$SIDECAR_PID") kB now, peak $(hwm_kb "$SIDECAR_PID") kB"
    } | tee "$OUT/sidecar-scale${RESULT_TAG:-}.txt"
}

# CPU of everything Docker spends on this project: dockerd, containerd (both shared with every
# other project on the engine), this project's shims with the runc processes they reaped, and its
# containers' cgroups (the agents' own work plus every HEALTHCHECK exec inside them).
docker_cpu_ns() { # project
    local total=0 pid id
    for pid in $(pgrep -x dockerd) $(pgrep -x containerd); do
        total=$(( total + $(cpu_ticks_all "$pid") * 1000000000 / $(getconf CLK_TCK) ))
    done
    for id in $(docker ps -q --no-trunc --filter "label=com.docker.compose.project=$1"); do
        for pid in $(pgrep -f "containerd-shim.*-id $id"); do
            total=$(( total + $(cpu_ticks_all "$pid") * 1000000000 / $(getconf CLK_TCK) ))
        done
        local acct=/sys/fs/cgroup/cpuacct/docker/$id/cpuacct.usage
        [[ -r "$acct" ]] || acct=$(ls /sys/fs/cgroup/cpuacct/system.slice/docker-"$id".scope/cpuacct.usage 2>/dev/null || echo /dev/null)
        total=$(( total + $(cat "$acct" 2>/dev/null || echo 0) ))
    done
    echo "$total"
}

stack() {
    export PROJECT=${PROJECT:-hcbench$$}
    # shellcheck source=docker/lib.sh
    source "$ROOT/docker/lib.sh"
    prepare
    local secs=${SECONDS_MEASURED:-60}
    : >"$OUT/sidecar-stack.txt"
    for interval in ${HC_INTERVALS:-2s 30s}; do
        export HC_INTERVAL=$interval SIDECAR_HEAL=off SIDECAR_PORT=$(free_port)
        log "24 agents (agent-b x20), HEALTHCHECK every $interval"
        compose up -d --scale agent-b=20 >/dev/null 2>&1
        wait_all_healthy 240 || { teardown; exit 1; }
        sleep 10
        local spid
        spid=$(docker inspect -f '{{.State.Pid}}' "$(compose ps -q sidecar)")
        local agents
        agents=$(curl -fsS "http://127.0.0.1:$SIDECAR_PORT/api/status" | jq '[.agents[].replicas[]] | length')
        local c0 s0 c1 s1
        c0=$(docker_cpu_ns "$PROJECT") s0=$(cpu_ticks "$spid")
        sleep "$secs"
        c1=$(docker_cpu_ns "$PROJECT") s1=$(cpu_ticks "$spid")
        awk -v c="$(( c1 - c0 ))" -v s="$(( s1 - s0 ))" -v hz="$(getconf CLK_TCK)" -v t="$secs" -v i="$interval" \
            -v n="$agents" -v rss="$(rss_kb "$spid")" -v hwm="$(hwm_kb "$spid")" 'BEGIN {
            printf "HEALTHCHECK %s, %d replicas seen by the sidecar, %d s at steady state:\n", i, n, t
            printf "  docker side (dockerd + containerd + shims + containers incl. execs): %.1f %% of one core\n", c / 1e9 / t * 100
            printf "  sidecar: %.2f %% of one core, RSS %d kB (peak %d kB)\n", s / hz / t * 100, rss, hwm
        }' | tee -a "$OUT/sidecar-stack.txt"
        teardown
    done
}

build
case "${1:-all}" in
    detect) detect ;;
    scale) scale ;;
    stack) stack ;;
    all) detect; scale; stack ;;
    *) echo "usage: bash bench/sidecar.sh [detect|scale|stack|all]" >&2; exit 1 ;;
esac
