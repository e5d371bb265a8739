#!/usr/bin/env bash
# Gating latency through a NATS cluster (issue 16): from an agent's `ready` publish to the exec of
# the command `healthcheck wait` gates, on one nats-server beside a 3-node NATS cluster where the
# agent publishes through node 0 and the waiter listens through nodes 1 and 2 (the event crosses
# a route). Not part of the test suite.
#
#   bash bench/nats-cluster.sh                  # GATE_RUNS=200 per row
#   BENCH_QUICK=1 bash bench/nats-cluster.sh    # 30 per row, a smoke test
#
# Builds the probe as bench/run.sh does (release, static musl) and the bench_gate example
# (ready-signal/examples/bench_gate.rs: per run it spawns `healthcheck wait --timeout 30s
# ready://gate-N -- $STAMP`, waits 300 ms, publishes `ready` and reads the exec'd stamp's clock).
# Starts redis-server, one nats-server and a 3-node NATS cluster (routes, monitoring ports) on
# free loopback ports in a temp dir, all killed on exit. Results: bench/results/nats-cluster-*.json
# and .txt, and the table in bench/results/nats-cluster.md.
#
# Then the failover figures (ready-signal/examples/bench_nats_failover.rs, FAILOVER_RUNS=100): the
# agent's node is killed and its state changed at once; the time until a subscriber on another
# node has the new state, and the republish after the reconnection (bench/results/nats-failover.*).
set -euo pipefail

# shellcheck source=bench/prelude.sh
source "$(dirname "${BASH_SOURCE[0]}")/prelude.sh"
if [[ ${BENCH_QUICK:-0} == 1 ]]; then GATE_RUNS=30 FAILOVER_RUNS=10; else
  GATE_RUNS=${GATE_RUNS:-200} FAILOVER_RUNS=${FAILOVER_RUNS:-100}; fi
for t in redis-server:redis-server redis-cli:redis-tools nats-server:nats-server curl:curl \
         musl-gcc:musl-tools python3:python3; do
  command -v "${t%%:*}" >/dev/null || die "'${t%%:*}' not found: apt-get install -y ${t##*:}"
done
rustup target list --installed 2>/dev/null | grep -q x86_64-unknown-linux-musl \
  || die "rust target x86_64-unknown-linux-musl missing: rustup target add x86_64-unknown-linux-musl"


log "building (release, static musl) healthcheck, and the bench_gate and bench_nats_failover examples"
cargo build --release --target x86_64-unknown-linux-musl -p healthcheck
cargo build --release -p ready-signal --example bench_gate --example bench_nats_failover
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
HC=$TARGET_DIR/x86_64-unknown-linux-musl/release/healthcheck
BENCH_GATE=$TARGET_DIR/release/examples/bench_gate
BENCH_FAILOVER=$TARGET_DIR/release/examples/bench_nats_failover
# The command `wait` execs: prints its own CLOCK_REALTIME in ns (as in bench/run.sh).
cat > "$TMP/stamp.c" <<'C'
#include <stdio.h>
#include <time.h>
int main(void){struct timespec t;clock_gettime(CLOCK_REALTIME,&t);printf("%lld\n",(long long)t.tv_sec*1000000000LL+t.tv_nsec);return 0;}
C
musl-gcc -static -Os -o "$TMP/stamp" "$TMP/stamp.c" && strip "$TMP/stamp"
STAMP=$TMP/stamp

# Free ports below the ephemeral range (routes open outgoing connections), each bound-tested.
PORTS=($(python3 - <<'EOF'
import random, socket
out = set()
while len(out) < 12:
    p = random.randrange(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); s.close(); out.add(p)
    except OSError:
        pass
print(" ".join(map(str, out)))
EOF
))
next=0
port() { P=${PORTS[$next]}; next=$((next + 1)); }
wait_ok() { # wait_ok COMMAND...: until it exits 0, at most 30 s
  for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "timed out waiting for: $*"
}

port; RP=$P
redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" \
  --logfile "$TMP/redis.log" --daemonize no &
PIDS+=($!)
port; NP=$P
nats-server -a 127.0.0.1 -p "$NP" >"$TMP/nats.log" 2>&1 &
PIDS+=($!)
port; R0=$P; port; R1=$P; port; R2=$P
ROUTES="nats://127.0.0.1:$R0,nats://127.0.0.1:$R1,nats://127.0.0.1:$R2"
NODES=() MON=()
for r in $R0 $R1 $R2; do
  port; c=$P; port; m=$P
  nats-server -a 127.0.0.1 -p "$c" -m "$m" --cluster "nats://127.0.0.1:$r" --routes "$ROUTES" \
    >"$TMP/n$c.log" 2>&1 &
  PIDS+=($!); NODES+=("127.0.0.1:$c"); MON+=("$m")
done
port; DEAD=$P # nothing listens here

wait_ok redis-cli -p "$RP" ping
wait_ok "$HC" "nats://127.0.0.1:$NP"
routed() { for m in "${MON[@]}"; do curl -fsS "http://127.0.0.1:$m/routez" | grep -q '"num_routes": 2' || return 1; done; }
wait_ok routed

REDIS=redis://127.0.0.1:$RP
SINGLE=nats://127.0.0.1:$NP
NODE0=nats://${NODES[0]}
NODES12=nats://${NODES[1]},${NODES[2]}
DEAD12=nats://127.0.0.1:$DEAD,${NODES[1]},${NODES[2]}

# name|publisher|agent's NATS URL|waiter's NATS URL
ROWS=(
  "single|handle|$SINGLE|$SINGLE"
  "cluster|handle|$NODE0|$NODES12"
  "cluster-dead-seed|handle|$NODE0|$DEAD12"
  "single|once|$SINGLE|$SINGLE"
  "cluster|once|$NODE0|$NODES12"
)
log "gating latency, $GATE_RUNS runs per row"
for row in "${ROWS[@]}"; do
  IFS='|' read -r name pub agent_url waiter_url <<<"$row"
  echo "-- $name, publisher $pub: agent $agent_url, waiter $waiter_url" >&2
  "$BENCH_GATE" --healthcheck "$HC" --stamp "$STAMP" --redis "$REDIS" --mode nats \
    --nats "$agent_url" --waiter-nats "$waiter_url" --namespace "nc-$name-$pub" \
    --publisher "$pub" --runs "$GATE_RUNS" --json "$OUT/nats-cluster-$name-$pub.json" \
    | tee "$OUT/nats-cluster-$name-$pub.txt"
done

python3 - "$OUT" <<'EOF' | tee "$OUT/nats-cluster.md"
import json, os, sys
out = sys.argv[1]
label = {
    "single": "one nats-server",
    "cluster": "3-node cluster: agent via node 0, waiter via nodes 1,2",
    "cluster-dead-seed": "3-node cluster, waiter's first seed dead (dead,n1,n2)",
}
pubs = {"handle": "running agent (`handle`)", "once": "`publish_once` (CLI)"}
print("| NATS | publisher | runs | p50 ms | p90 ms | p99 ms | max ms | publish call p50 ms |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for name, pub in [("single", "handle"), ("cluster", "handle"), ("cluster-dead-seed", "handle"),
                  ("single", "once"), ("cluster", "once")]:
    path = os.path.join(out, f"nats-cluster-{name}-{pub}.json")
    if not os.path.exists(path):
        continue
    d = json.load(open(path))
    l = d["latency_ms"]
    fail = f" ({d['failures']} failed)" if d["failures"] else ""
    print(f"| {label[name]} | {pubs[pub]} | {d['runs']}{fail} | {l['p50']:.2f} | {l['p90']:.2f} | "
          f"{l['p99']:.2f} | {l['max']:.2f} | {d['publish_call_ms']['p50']:.2f} |")
EOF

log "failover: the agent's node killed, $FAILOVER_RUNS runs (a cluster of its own)"
"$BENCH_FAILOVER" --runs "$FAILOVER_RUNS" --json "$OUT/nats-failover.json" | tee "$OUT/nats-failover.txt"
