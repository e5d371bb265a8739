#!/usr/bin/env bash
# The ready-signal store beyond one Redis (issue 16), for BENCHMARKS.md. Not part of the test suite.
#
#   bash bench/ha-store.sh failover   Sentinel: kill the master during heartbeats; time to every
#                                     record fresh again (ready-signal/examples/bench_failover.rs)
#   bash bench/ha-store.sh scale      10,000 agents at 1 Hz on one redis-server, then on a
#                                     3-master Cluster: achieved rate, p99, CPU of every node
#                                     (ready-signal/examples/bench_heartbeats.rs)
#   bash bench/ha-store.sh all
#
# Knobs: RUNS (failover runs, default 5), AGENTS (failover agents, default 200), HB_AGENTS
# (default 10000), SECONDS_MEASURED (default 20). Servers run on free loopback ports in a temp
# dir, killed on exit. Results go to bench/results/ha-store-*.txt.
set -euo pipefail

# shellcheck source=bench/prelude.sh
source "$(dirname "${BASH_SOURCE[0]}")/prelude.sh"
for t in redis-server redis-cli python3; do command -v "$t" >/dev/null || die "'$t' not found"; done
what=${1:-all}
case "$what" in failover|scale|all) ;; *) die "usage: bash bench/ha-store.sh failover|scale|all" ;; esac

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
log "building the bench programs (release)"
cargo build --release -p ready-signal --example bench_failover --example bench_heartbeats >&2
EX=$TARGET_DIR/release/examples

# redis PORT [args...]: starts redis-server in the background; its pid is LAST_PID.
redis() {
  local p=$1; shift
  mkdir -p "$TMP/r$p"
  redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP/r$p" "$@" >"$TMP/r$p.log" 2>&1 &
  LAST_PID=$!; PIDS+=("$LAST_PID")
}
wait_ok() { for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; die "timed out: $*"; }
# used_cpu_user + used_cpu_sys of the redis-server at PORT, in seconds.
cpu_s() { redis-cli -p "$1" info cpu | tr -d '\r' | awk -F: '/^used_cpu_(user|sys):/ {s += $2} END {printf "%.3f", s}'; }

failover() {
  local runs=${RUNS:-5} agents=${AGENTS:-200} out="$OUT/ha-store-failover.txt"
  : >"$out"
  for run in $(seq "$runs"); do
    local mp rp1 rp2 master_pid sentinels=() sp
    mp=$(free_port); redis "$mp"; master_pid=$LAST_PID
    rp1=$(free_port); redis "$rp1" --replicaof 127.0.0.1 "$mp"
    rp2=$(free_port); redis "$rp2" --replicaof 127.0.0.1 "$mp"
    for _ in 0 1 2; do
      sp=$(free_port); mkdir -p "$TMP/s$sp"
      printf 'port %s\nbind 127.0.0.1\ndir %s\nsentinel monitor mymaster 127.0.0.1 %s 2\nsentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 5000\n' \
        "$sp" "$TMP/s$sp" "$mp" >"$TMP/s$sp/sentinel.conf"
      redis-server "$TMP/s$sp/sentinel.conf" --sentinel >"$TMP/s$sp.log" 2>&1 &
      PIDS+=($!); sentinels+=("127.0.0.1:$sp")
    done
    for p in "$mp" "$rp1" "$rp2"; do wait_ok redis-cli -p "$p" ping; done
    # Both replicas in sync and known to every Sentinel before the kill.
    wait_ok bash -c "[ \"\$(redis-cli -p $mp info replication | grep -c 'state=online')\" = 2 ]"
    for s in "${sentinels[@]}"; do
      wait_ok bash -c "redis-cli -p ${s##*:} sentinel replicas mymaster | grep -q $rp2"
    done
    log "failover run $run/$runs: $agents agents, master :$mp (pid $master_pid)"
    "$EX/bench_failover" --redis "redis+sentinel://$(IFS=,; echo "${sentinels[*]}")/mymaster" \
      --sentinel "${sentinels[0]}" --master mymaster --master-pid "$master_pid" \
      --agents "$agents" --interval-ms 1000 | tee -a "$out"
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
  done
  python3 - "$out" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def col(k): return sorted(r[k] for r in rows)
print(f"\n{len(rows)} runs, {rows[0]['agents']} agents, heartbeat {rows[0]['interval_ms']} ms")
print("| measure | median | min | max |")
print("|---|---:|---:|---:|")
for k, name in [("kill_to_promotion_ms", "master killed -> Sentinel names the new master"),
                ("promotion_to_all_fresh_ms", "new master named -> every record rewritten on it"),
                ("kill_to_all_fresh_ms", "master killed -> every record fresh again")]:
    v = col(k)
    print(f"| {name} | {statistics.median(v):.0f} ms | {v[0]:.0f} ms | {v[-1]:.0f} ms |")
for k, name in [("missing_at_first_read", "records missing at the first read after promotion"),
                ("missing_at_worst", "records missing at worst after promotion")]:
    v = col(k)
    print(f"| {name} | {statistics.median(v):.0f} | {v[0]} | {v[-1]} |")
EOF
}

scale() {
  local agents=${HB_AGENTS:-10000} secs=${SECONDS_MEASURED:-20} out="$OUT/ha-store-scale.txt"
  : >"$out"
  # One server.
  local sp; sp=$(free_port); redis "$sp"; local single_pid=$LAST_PID
  wait_ok redis-cli -p "$sp" ping
  log "$agents agents at 1 Hz on one redis-server :$sp"
  "$EX/bench_heartbeats" --redis "redis://127.0.0.1:$sp" --agents "$agents" --seconds "$secs" \
    --connections 4 --namespace hbsingle --redis-pid "$single_pid" --read-all 3 \
    --json "$TMP/single.json" | tee -a "$out"
  kill "$single_pid"
  # A 3-master Cluster with one replica each.
  local nodes=() p
  for _ in 0 1 2 3 4 5; do
    p=$(cluster_port); redis "$p" --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000
    nodes+=("127.0.0.1:$p")
  done
  for n in "${nodes[@]}"; do wait_ok redis-cli -p "${n##*:}" ping; done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$TMP/create.log" 2>&1 \
    || die "redis-cli --cluster create failed: $(tail -5 "$TMP/create.log")"
  wait_ok bash -c "redis-cli -p ${nodes[0]##*:} cluster info | grep -q cluster_state:ok"
  local before=() after=() i
  for n in "${nodes[@]}"; do before+=("$(cpu_s "${n##*:}")"); done
  local t0; t0=$(date +%s.%N)
  log "$agents agents at 1 Hz on a 3-master Cluster (${nodes[*]})"
  "$EX/bench_heartbeats" --redis "redis://$(IFS=,; echo "${nodes[*]}")?cluster=true" \
    --agents "$agents" --seconds "$secs" --connections 4 --namespace hbcluster --read-all 3 \
    --json "$TMP/cluster.json" | tee -a "$out"
  local t1; t1=$(date +%s.%N)
  for n in "${nodes[@]}"; do after+=("$(cpu_s "${n##*:}")"); done
  {
    echo
    echo "| node | role | CPU over the run (INFO cpu delta / wall) |"
    echo "|---|---|---:|"
    for i in "${!nodes[@]}"; do
      local role; role=$(redis-cli -p "${nodes[$i]##*:}" role | head -1)
      python3 -c "import sys; b,a,t0,t1=map(float,sys.argv[1:5]); print(f'| :{sys.argv[5]} | $role | {100*(a-b)/(t1-t0):.1f} % of a core |')" \
        "${before[$i]}" "${after[$i]}" "$t0" "$t1" "${nodes[$i]##*:}"
    done
  } | tee -a "$out"
}

case "$what" in
  failover) failover ;;
  scale) scale ;;
  all) failover; scale ;;
esac
