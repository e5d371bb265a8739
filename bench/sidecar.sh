#!/usr/bin/env bash
# Benchmarks of healthcheck-sidecar (issue 13) for BENCHMARKS.md. Not part of the test suite.
#
#   bash bench/sidecar.sh detect    detection latency (real redis + nats, the release binary)
#   bash bench/sidecar.sh scale     10,000 agents: /api/status and /metrics latency, RSS
#   bash bench/sidecar.sh stack     the 24-agent example stack on the real engine: sidecar CPU
#                                   and RSS, and the CPU of Docker HEALTHCHECK polling, at
#                                   HC_INTERVALS (default "2s 30s")
#   bash bench/sidecar.sh history   the history's cost, A/B in one run: sidecar CPU and RSS at
#                                   AB_AGENTS ("24 10000") agents, history on and --no-history,
#                                   for each binary of SIDECARS ("name=path ...", default this
#                                   tree's release build); runs interleaved (the order flipped
#                                   every round), REPEAT rounds (3), medians at the end. Steady:
#                                   after SETTLE_S (5) s, CPU over MEASURE_S (20) s and the median
#                                   of RSS sampled every 0.5 s, peak before any request; then the
#                                   median RSS over 5 s and the peak after 3 requests each of /,
#                                   /api/status and /api/history
#   bash bench/sidecar.sh all       detect, scale and stack
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

# Agent records written straight to Redis: n agents of one replica each, a tenth not-ready,
# an hour to live (nothing beats: the state stays the same).
write_records() { # namespace n
    python3 - "$RPORT" "$2" "$1" <<'PY'
import sys, time, redis
port, n, ns = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
r = redis.Redis(port=port)
now = int(time.time() * 1000)
ttl = 3_600_000
p = r.pipeline(transaction=False)
for i in range(n):
    agent, replica = f"agent-{i:05d}", "r1"
    key = f"ready-signal:{ns}:{agent}:r:{replica}"
    state = "ready" if i % 10 else "not-ready"
    p.hset(key, mapping={"v": 1, "agent": agent, "replica": replica, "instance": f"{now:013d}-0000{i % 9999:04x}",
        "state": state, "reason": "" if state == "ready" else "warming a cache of 2 GB",
        "pid": 7, "host": f"host-{i}", "interval_ms": 1000000, "ttl_ms": ttl,
        "since_ms": now, "beat_ms": now, "seq": 1})
    p.pexpire(key, ttl)
    p.zadd(f"ready-signal:{ns}:{agent}:replicas", {replica: now + ttl})
    p.zadd(f"ready-signal:{ns}:agents", {agent: now + ttl})
    if i % 1000 == 999:
        p.execute()
p.execute()
PY
}

scale() {
    servers
    local n=${AGENTS:-10000}
    log "writing $n agent records"
    write_records scale "$n"
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

# One A/B run: sidecar $2 (a path) on namespace $1 with args $3, $4 agents expected; sets AB to
# "cpu% rss hwm rss_after hwm_after" (kB), steady first.
ab_run() { # namespace binary args n
    SIDECAR=$2 SIDECAR_ARGS=$3 start_sidecar "$1"
    for _ in $(seq 300); do
        [[ "$(curl -fsS "http://127.0.0.1:$SPORT/api/status" 2>/dev/null | jq '.summary.replicas' 2>/dev/null)" == "$4" ]] && break
        sleep 0.2
    done
    sleep "${SETTLE_S:-5}"
    # RSS is sampled every half second (a single sample lands anywhere in the read cycle's
    # allocations) and its median kept.
    local secs=${MEASURE_S:-20} t0 t1 rss hwm after i
    median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
    t0=$(cpu_ticks "$SIDECAR_PID")
    rss=$(for (( i = 0; i < secs * 2; i++ )); do sleep 0.5; rss_kb "$SIDECAR_PID"; done | median)
    t1=$(cpu_ticks "$SIDECAR_PID")
    hwm=$(hwm_kb "$SIDECAR_PID")
    for path in / /api/status /api/history / /api/status /api/history / /api/status /api/history; do
        curl -sS -o /dev/null "http://127.0.0.1:$SPORT$path"
    done
    after=$(for (( i = 0; i < 10; i++ )); do sleep 0.5; rss_kb "$SIDECAR_PID"; done | median)
    AB="$(awk -v a="$t0" -v b="$t1" -v hz="$(getconf CLK_TCK)" -v t="$secs" 'BEGIN { printf "%.2f", (b - a) / hz / t * 100 }')"
    AB+=" $rss $hwm $after $(hwm_kb "$SIDECAR_PID")"
    kill "$SIDECAR_PID"
    wait "$SIDECAR_PID" 2>/dev/null || true
}

history_ab() {
    servers
    local sizes=${AB_AGENTS:-24 10000} rounds=${REPEAT:-3} specs=${SIDECARS:-this=$SIDECAR}
    local out=$OUT/sidecar-history-ab${RESULT_TAG:-}.txt
    for n in $sizes; do
        log "writing $n agent records"
        write_records "ab$n" "$n"
    done
    {
        echo "# $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
        echo "# round agents sidecar history cpu% rss_kB hwm_kB rss_after_kB hwm_after_kB load1"
    } | tee "$out"
    local round n spec hist order
    for round in $(seq "$rounds"); do
        order=$specs
        (( round % 2 == 0 )) && order=$(tr ' ' '\n' <<<"$specs" | tac | tr '\n' ' ')
        for n in $sizes; do
            for spec in $order; do
                for hist in on off; do
                    (( round % 2 == 0 )) && hist=$([[ $hist == on ]] && echo off || echo on)
                    log "round $round: $n agents, ${spec%%=*}, history $hist"
                    ab_run "ab$n" "${spec#*=}" "$([[ $hist == off ]] && echo --no-history)" "$n"
                    echo "$round $n ${spec%%=*} $hist $AB $(cut -d' ' -f1 /proc/loadavg)" | tee -a "$out"
                done
            done
        done
    done
    echo "# load average at the end $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out"
    # Medians per agents, sidecar and history; and what the history adds, per sidecar.
    python3 - "$out" <<'PY' | tee -a "$out"
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")]
by = {}
for r in rows:
    by.setdefault((int(r[1]), r[2], r[3]), []).append([float(x) for x in r[4:9]])
print("# medians of the runs: agents sidecar history | cpu% | RSS steady MB | peak steady MB | RSS after requests MB | peak after MB | runs")
med = {}
for k in sorted(by):
    v = by[k]
    m = [st.median(x[i] for x in v) for i in range(5)]
    med[k] = m
    print(f"{k[0]:>6} {k[1]:>8} {k[2]:>3} | {m[0]:.2f} | {m[1]/1000:.2f} | {m[2]/1000:.2f} | {m[3]/1000:.2f} | {m[4]/1000:.2f} | {len(v)}")
print("# the history's cost (on against off, medians): agents sidecar | cpu | RSS steady | peak steady | RSS after | peak after")
for (n, name, h), m in sorted(med.items()):
    if h != "on" or (n, name, "off") not in med:
        continue
    o = med[(n, name, "off")]
    d = lambda i: f"{(m[i] - o[i]) / o[i] * 100:+.1f} %" if o[i] else "n/a"
    print(f"{n:>6} {name:>8} | {m[0] - o[0]:+.2f} pts ({d(0)}) | {d(1)} | {d(2)} | {d(3)} | {d(4)}")
PY
}

[[ -n "${SIDECARS:-}" ]] || build
case "${1:-all}" in
    detect) detect ;;
    scale) scale ;;
    stack) stack ;;
    history) history_ab ;;
    all) detect; scale; stack ;;
    *) echo "usage: bash bench/sidecar.sh [detect|scale|stack|history|all]" >&2; exit 1 ;;
esac
