#!/usr/bin/env bash
# Benchmark of the due index (PROTOCOL.md revision 5) for BENCHMARKS.md. Not part of the tests.
#
#   OLD=/path/to/old/healthcheck-sidecar NEW=/path/to/new/healthcheck-sidecar \
#   HB=/path/to/bench_heartbeats bash bench/index.sh idle
#
# OLD_ENV and NEW_ENV add variables to one side's environment: one binary in both modes is
#   OLD=$SC NEW=$SC OLD_ENV=HEALTHCHECK_SIDECAR_INDEX=0 HB=... bash bench/index.sh idle
#
# idle: AGENTS (default 10000) agents heartbeating at 1 Hz through the crate's write script
# (bench_heartbeats, the revision of the checkout it was built from), nothing changing, on one
# redis-server with a nats-server; the OLD and the NEW sidecar watch the same namespace side by
# side in the same run. Reports each sidecar's CPU (from /proc, over SECONDS, default 30, after a
# 20 s warm-up) and RSS (now and peak), and redis-server's CPU over the same window.
#
# detect: the same 10,000 agents beating, one sidecar (NEW, with NEW_ENV) watching them, and
# bench_detect (DETECT, the healthcheck-sidecar example) timing in the same namespace, ROUNDS
# (default 30) times, a transition (publish to the sidecar's event) and a frozen agent (stale
# threshold crossed to the event). Output: bench/results/index-detect.txt.
#
# cluster: AGENTS (default 100000) agents beating every HB_INTERVAL (10) s on a 3-master Redis
# Cluster (no replicas) with a nats-server, one sidecar (NEW) watching: its CPU and RSS over
# SECONDS (30) after a warm-up, each master's CPU over the same window; then bench_detect
# (DETECT, ROUNDS, default 10) among them; then one master hung (SIGSTOP) for HANG_S (30) s
# while the sidecar's counts by state are sampled every second, and resumed. Output:
# bench/results/index-cluster.txt. The masters have no replicas and, unless FULL_COVERAGE=yes
# (Redis's default), serve their own slots while another master is down: with full coverage
# required, every master answers CLUSTERDOWN once the hung one is marked failed (after the 5 s
# node timeout), and no reader, this one included, can tell any agent's state.
#
# Output goes to bench/results/index-idle.txt.
set -euo pipefail
# shellcheck source=bench/prelude.sh
source "$(dirname "${BASH_SOURCE[0]}")/prelude.sh"
: "${NEW:?the new sidecar binary}" "${HB:?bench_heartbeats}"

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_mb() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
hwm_mb() { awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

idle() {
    : "${OLD:?the old sidecar binary}"
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
        local extra="${which}_ENV"
        # shellcheck disable=SC2086 # OLD_ENV / NEW_ENV: VAR=value words for env
        env ${!extra:-} READY_SIGNAL_REDIS_URL=redis://127.0.0.1:$RPORT READY_SIGNAL_NATS_URL=nats://127.0.0.1:$NPORT \
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

detect() {
    : "${DETECT:?bench_detect (cargo build -p healthcheck-sidecar --example bench_detect)}"
    local n=${AGENTS:-10000} rounds=${ROUNDS:-30} port
    RPORT=$(free_port) NPORT=$(free_port) port=$(free_port)
    redis-server --port "$RPORT" --save '' --appendonly no --dir "$TMP" >"$TMP/redis.log" 2>&1 &
    PIDS+=($!)
    nats-server -a 127.0.0.1 -p "$NPORT" >"$TMP/nats.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
    log "$n agents at 1 Hz, $rounds detection rounds among them"
    "$HB" --redis "redis://127.0.0.1:$RPORT" --agents "$n" --seconds $(( rounds * 5 + 40 )) \
        --namespace idle --read-all 0 >"$TMP/hb.txt" 2>&1 &
    HBPID=$!
    PIDS+=($HBPID)
    sleep 5
    # shellcheck disable=SC2086 # NEW_ENV: VAR=value words for env
    env ${NEW_ENV:-} READY_SIGNAL_REDIS_URL=redis://127.0.0.1:$RPORT READY_SIGNAL_NATS_URL=nats://127.0.0.1:$NPORT \
        READY_SIGNAL_NAMESPACE=idle "$NEW" --listen "127.0.0.1:$port" --docker none >"$TMP/sidecar.log" 2>&1 &
    PIDS+=($!)
    sleep 15
    {
        echo "agents: $n at 1 Hz (bench_heartbeats) in the namespace bench_detect times in; sidecar $(basename "$NEW") ${NEW_ENV:-}"
        curl -fsS "http://127.0.0.1:$port/api/status" \
            | jq -r '.summary.replicas_by_state | "before: ready \(.ready), stale \(.stale), dead \(.dead), unknown \(.unknown)"'
        "$DETECT" "$port" "redis://127.0.0.1:$RPORT" "nats://127.0.0.1:$NPORT" idle "$rounds"
    } | tee "$OUT/index-detect.txt"
    kill "$HBPID" 2>/dev/null || true
}

cluster() {
    : "${DETECT:?bench_detect (cargo build -p healthcheck-sidecar --example bench_detect)}"
    local n=${AGENTS:-100000} every=${HB_INTERVAL:-10} secs=${SECONDS_MEASURED:-30} rounds=${ROUNDS:-10}
    local hang=${HANG_S:-30} ports=() pids=() p port seeds
    for _ in 0 1 2; do
        p=$(cluster_port)
        mkdir -p "$TMP/r$p"
        redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP/r$p" \
            --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
            --cluster-require-full-coverage "${FULL_COVERAGE:-no}" >"$TMP/r$p.log" 2>&1 &
        pids+=($!)
        PIDS+=($!)
        ports+=("$p")
    done
    for p in "${ports[@]}"; do
        for _ in $(seq 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
    done
    redis-cli --cluster create "${ports[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes >"$TMP/create.log" 2>&1 \
        || die "redis-cli --cluster create failed: $(tail -5 "$TMP/create.log")"
    for _ in $(seq 100); do redis-cli -p "${ports[0]}" cluster info | grep -q cluster_state:ok && break; sleep 0.1; done
    seeds="redis://127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}?cluster=true"
    NPORT=$(free_port) port=$(free_port)
    nats-server -a 127.0.0.1 -p "$NPORT" >"$TMP/nats.log" 2>&1 &
    PIDS+=($!)
    local total=$(( every + 20 + secs + rounds * 15 + hang + 60 ))
    log "$n agents beating every ${every}s on a 3-master Cluster for ${total} s"
    "$HB" --redis "$seeds" --agents "$n" --interval "$every" --seconds "$total" \
        --namespace idle --read-all 0 --connections 8 >"$TMP/hb.txt" 2>&1 &
    HBPID=$!
    PIDS+=($HBPID)
    sleep $(( every + 2 ))
    # shellcheck disable=SC2086 # NEW_ENV: VAR=value words for env
    env ${NEW_ENV:-} READY_SIGNAL_REDIS_URL="$seeds" READY_SIGNAL_NATS_URL=nats://127.0.0.1:$NPORT \
        READY_SIGNAL_NAMESPACE=idle "$NEW" --listen "127.0.0.1:$port" --docker none >"$TMP/sidecar.log" 2>&1 &
    local sc=$!
    PIDS+=($sc)
    sleep 20
    counts() {
        curl -fsS --max-time 5 "http://127.0.0.1:$port/api/status" \
            | jq -r '.summary.replicas_by_state | "ready \(.ready), stale \(.stale), dead \(.dead), unknown \(.unknown)"'
    }
    local hz s0 s1 m0=() m1=()
    hz=$(getconf CLK_TCK)
    s0=$(cpu_ticks "$sc")
    for p in "${pids[@]}"; do m0+=("$(cpu_ticks "$p")"); done
    sleep "$secs"
    s1=$(cpu_ticks "$sc")
    for p in "${pids[@]}"; do m1+=("$(cpu_ticks "$p")"); done
    {
        echo "agents: $n beating every ${every}s (bench_heartbeats, $(( n / every )) writes/s) on a 3-master Cluster; sidecar $(basename "$NEW") ${NEW_ENV:-}"
        echo "shows: $(counts)"
        awk -v a="$s0" -v b="$s1" -v hz="$hz" -v s="$secs" -v rss="$(rss_mb "$sc")" -v hwm="$(hwm_mb "$sc")" \
            'BEGIN { printf "sidecar: CPU %.2f %% of one core over %d s; RSS %s MB (peak %s MB)\n", (b - a) / hz / s * 100, s, rss, hwm }'
        for i in 0 1 2; do
            awk -v i="$i" -v p="${ports[$i]}" -v a="${m0[$i]}" -v b="${m1[$i]}" -v hz="$hz" -v s="$secs" \
                'BEGIN { printf "master %d (:%s): CPU %.1f %% of one core\n", i, p, (b - a) / hz / s * 100 }'
        done
        echo "-- bench_detect, $rounds rounds among them"
        "$DETECT" "$port" "$seeds" "nats://127.0.0.1:$NPORT" idle "$rounds"
        echo "-- master 1 (:${ports[1]}) hung (SIGSTOP) for ${hang} s; the sidecar's counts every second"
        local before
        before=$(counts)
        echo "before: $before"
        kill -STOP "${pids[1]}"
        local t
        for t in $(seq "$hang"); do
            sleep 1
            echo "hung ${t}s: $(counts 2>/dev/null || echo 'no answer')"
        done
        kill -CONT "${pids[1]}"
        for t in $(seq 30); do
            sleep 1
            echo "resumed ${t}s: $(counts 2>/dev/null || echo 'no answer')"
        done
    } | tee "$OUT/index-cluster.txt"
    wait "$HBPID" 2>/dev/null || true
    grep -E "achieved|latency" "$TMP/hb.txt" | tee -a "$OUT/index-cluster.txt" || true
}

case "${1:-}" in
    idle) idle ;;
    detect) detect ;;
    cluster) cluster ;;
    *) die "usage: bash bench/index.sh idle|detect|cluster" ;;
esac
