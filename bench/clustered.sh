#!/usr/bin/env bash
# The probe's time on clustered targets (issue 16) beside a plain redis:// and nats:// one, in one
# hyperfine run. Not part of the test suite.
#
#   bash bench/clustered.sh            # HC=path/to/healthcheck to choose the binary
#   BENCH_QUICK=1 bash bench/clustered.sh
#
# Starts, on free loopback ports in a temp dir (all killed on exit): one plain redis-server; a
# Redis master, a replica and 3 Sentinels; a 3-master Redis Cluster with one replica each
# (redis-cli --cluster create); a plain nats-server; a 3-node NATS cluster with monitoring ports.
# Results go to bench/results/clustered.{md,json}.
set -euo pipefail

# shellcheck source=bench/prelude.sh
source "$(dirname "${BASH_SOURCE[0]}")/prelude.sh"
if [[ ${BENCH_QUICK:-0} == 1 ]]; then WARMUP=5 RUNS=50; else WARMUP=20 RUNS=300; fi
for t in redis-server:redis-server redis-cli:redis-tools nats-server:nats-server hyperfine:hyperfine python3:python3; do
  command -v "${t%%:*}" >/dev/null || die "'${t%%:*}' not found: apt-get install -y ${t##*:}"
done
HC=${HC:-$ROOT/target/release/healthcheck}
[[ -x $HC ]] || die "$HC not built: cargo build --release -p healthcheck (or set HC=...)"


# Free ports below the ephemeral range (cluster buses and routes open many outgoing connections).
PORTS=($(python3 - <<'EOF'
import random, socket
out = set()
while len(out) < 40:
    p = random.randrange(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); s.close(); s2 = socket.socket(); s2.bind(("127.0.0.1", p + 10000)); s2.close()
        out.add(p)
    except OSError:
        pass
print(" ".join(map(str, out)))
EOF
))
next=0
port() { P=${PORTS[$next]}; next=$((next + 1)); }
redis() { # redis PORT [args...]
  local p=$1; shift
  mkdir -p "$TMP/r$p"
  redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP/r$p" "$@" >"$TMP/r$p.log" 2>&1 &
  PIDS+=($!)
}
wait_ok() { # wait_ok COMMAND...: until it exits 0, at most 30 s
  for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "timed out waiting for: $*"
}

# Plain Redis.
port; RP=$P; redis "$RP"
# Sentinel: master, replica, 3 Sentinels.
port; MP=$P; redis "$MP"; port; redis "$P" --replicaof 127.0.0.1 "$MP"
SENTINELS=()
for i in 0 1 2; do
  port; mkdir -p "$TMP/s$P"
  printf 'port %s\nbind 127.0.0.1\ndir %s\nsentinel monitor mymaster 127.0.0.1 %s 2\nsentinel down-after-milliseconds mymaster 1000\n' \
    "$P" "$TMP/s$P" "$MP" >"$TMP/s$P/sentinel.conf"
  redis-server "$TMP/s$P/sentinel.conf" --sentinel >"$TMP/s$P.log" 2>&1 &
  PIDS+=($!); SENTINELS+=("127.0.0.1:$P")
done
# Cluster: 6 nodes, 3 masters.
NODES=()
for i in 0 1 2 3 4 5; do
  port; redis "$P" --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 1000
  NODES+=("127.0.0.1:$P")
done
for n in "${NODES[@]}"; do wait_ok redis-cli -p "${n##*:}" ping; done
redis-cli --cluster create "${NODES[@]}" --cluster-replicas 1 --cluster-yes >"$TMP/create.log" 2>&1 \
  || die "redis-cli --cluster create failed: $(tail -5 "$TMP/create.log")"
# Plain NATS and a 3-node NATS cluster.
port; NP=$P
nats-server -a 127.0.0.1 -p "$NP" >"$TMP/nats.log" 2>&1 &
PIDS+=($!)
port; R0=$P; port; R1=$P; port; R2=$P
ROUTES="nats://127.0.0.1:$R0,nats://127.0.0.1:$R1,nats://127.0.0.1:$R2"
SEEDS=() MON=()
for r in $R0 $R1 $R2; do
  port; c=$P; port; m=$P
  nats-server -a 127.0.0.1 -p "$c" -m "$m" --cluster "nats://127.0.0.1:$r" --routes "$ROUTES" >"$TMP/n$c.log" 2>&1 &
  PIDS+=($!); SEEDS+=("127.0.0.1:$c"); MON+=("$m")
done

REDIS="redis://127.0.0.1:$RP"
SENTINEL="redis+sentinel://$(IFS=,; echo "${SENTINELS[*]}")/mymaster"
CLUSTER="redis://${NODES[0]}?cluster=true"
NATS="nats://127.0.0.1:$NP"
NATS_SEEDS="nats://$(IFS=,; echo "${SEEDS[*]}")"
MONITOR="http://127.0.0.1:${MON[0]}"
for t in "$REDIS" "$SENTINEL" "$SENTINEL?quorum=true" "$CLUSTER" "$CLUSTER&all_masters=true" \
         "$NATS" "$NATS_SEEDS" "$NATS_SEEDS?cluster=3" "$NATS_SEEDS?cluster=3&monitor=$MONITOR"; do
  wait_ok "$HC" "$t"
  "$HC" "$t"
done

hyperfine -N --warmup "$WARMUP" --runs "$RUNS" \
  --export-markdown "$OUT/clustered.md" --export-json "$OUT/clustered.json" \
  -n "redis:// (one server)" "$HC $REDIS" \
  -n "redis+sentinel:// (3 Sentinels + master)" "$HC $SENTINEL" \
  -n "redis+sentinel:// ?quorum=true" "$HC $SENTINEL?quorum=true" \
  -n "redis://?cluster=true" "$HC $CLUSTER" \
  -n "redis://?cluster=true&all_masters=true" "$HC $CLUSTER&all_masters=true" \
  -n "nats:// (one server)" "$HC $NATS" \
  -n "nats:// seed list of 3" "$HC $NATS_SEEDS" \
  -n "nats:// seeds ?cluster=3 (INFO)" "$HC $NATS_SEEDS?cluster=3" \
  -n "nats:// seeds ?cluster=3&monitor= (/routez)" "$HC $NATS_SEEDS?cluster=3&monitor=$MONITOR"
cat "$OUT/clustered.md"

# Peak RSS, median of 21 runs per target.
if [[ -x /usr/bin/time ]]; then
  echo
  echo "| target | peak RSS (median of 21) |"
  echo "|---|---:|"
  for t in "$REDIS" "$SENTINEL" "$SENTINEL?quorum=true" "$CLUSTER" "$CLUSTER&all_masters=true" \
           "$NATS" "$NATS_SEEDS" "$NATS_SEEDS?cluster=3" "$NATS_SEEDS?cluster=3&monitor=$MONITOR"; do
    rss=$(for _ in $(seq 21); do /usr/bin/time -f %M "$HC" "$t" 2>&1 >/dev/null | tail -1; done | sort -n | sed -n 11p)
    echo "| \`${t//127.0.0.1:/}\` | $rss KiB |"
  done | tee "$OUT/clustered-rss.md"
fi
