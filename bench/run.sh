#!/usr/bin/env bash
# Benchmarks for healthcheck and ready-signal (issues 2, 5, 6). Not part of the test suite.
#
#   bash bench/run.sh            # everything (about 4 minutes on 2 cores)
#   BENCH_QUICK=1 bash bench/run.sh   # fewer runs, for a smoke test
#
# Results land in bench/results/ (hyperfine markdown + JSON, text summaries); BENCHMARKS.md
# quotes them. Every server is started here on free loopback ports in a temp dir and killed on exit.
set -euo pipefail

# shellcheck source=bench/prelude.sh
source "$(dirname "${BASH_SOURCE[0]}")/prelude.sh"
QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
  WARMUP=5 RUNS=50 PY_RUNS=10 GATE_RUNS=20 HB_SECS=5
else
  WARMUP=20 RUNS=300 PY_RUNS=30 GATE_RUNS=120 HB_SECS=20
fi


# need TOOL DEBIAN-PACKAGE
need() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' not found: install the Debian package '$2' (apt-get install -y $2)"
}
need cargo "cargo (or rustup)"
need redis-server redis-server
need redis-cli redis-tools
need nats-server nats-server
need hyperfine hyperfine
need musl-gcc musl-tools
need curl curl
need python3 python3
need jq jq
[[ -x /usr/bin/time ]] || die "/usr/bin/time not found: install the Debian package 'time' (apt-get install -y time)"
python3 -c 'import redis, nats' 2>/dev/null \
  || die "python modules redis and nats-py missing: pip install --break-system-packages redis nats-py (or apt-get install -y python3-redis for redis-py)"
rustup target list --installed 2>/dev/null | grep -q x86_64-unknown-linux-musl \
  || die "rust target x86_64-unknown-linux-musl missing: rustup target add x86_64-unknown-linux-musl"


# ---------------------------------------------------------------- build
log "building (release, static musl) healthcheck and ready-signal"
cargo build --release --target x86_64-unknown-linux-musl -p healthcheck -p ready-signal-cli
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
MUSL=$TARGET_DIR/x86_64-unknown-linux-musl/release
HC=$MUSL/healthcheck
RS=$MUSL/ready-signal
log "building bench programs (ready-signal examples bench_heartbeats, bench_gate)"
cargo build --release -p ready-signal --example bench_heartbeats --example bench_gate
BENCH_HB=$TARGET_DIR/release/examples/bench_heartbeats
BENCH_GATE=$TARGET_DIR/release/examples/bench_gate

# The floor: a static no-op (process creation, exec and exit; nothing else).
printf 'int main(void){return 0;}\n' > "$TMP/noop.c"
musl-gcc -static -Os -o "$TMP/noop" "$TMP/noop.c" && strip "$TMP/noop"
# The stamp program exec'd by `healthcheck wait`: prints CLOCK_REALTIME in ns.
cat > "$TMP/stamp.c" <<'C'
#include <stdio.h>
#include <time.h>
int main(void){struct timespec t;clock_gettime(CLOCK_REALTIME,&t);printf("%lld\n",(long long)t.tv_sec*1000000000LL+t.tv_nsec);return 0;}
C
musl-gcc -static -Os -o "$TMP/stamp" "$TMP/stamp.c" && strip "$TMP/stamp"
NOOP=$TMP/noop
STAMP=$TMP/stamp

# ---------------------------------------------------------------- servers
# shellcheck source=bench/servers.sh
source "$ROOT/bench/servers.sh"

# ---------------------------------------------------------------- the probe, side by side
PY="python3 $ROOT/bench/python_probe.py $REDIS $NATS $HTTP"
# name|command (no shell: hyperfine -N splits on whitespace)
PROBES=(
  "floor (static no-op)|$NOOP"
  "healthcheck redis|$HC $REDIS"
  "healthcheck redis+nats+http|$HC $REDIS $NATS $HTTP"
  "healthcheck redis+nats+http+ready|$HC $REDIS $NATS $HTTP ready://bench-agent"
  "redis-cli ping|redis-cli -p $RPORT ping"
  "curl -fsS nats /healthz|curl -fsS -o /dev/null $HTTP"
)
log "checking every probe command exits 0"
for p in "${PROBES[@]}" "python client|$PY"; do
  cmd=${p#*|}
  if ! out=$($cmd 2>&1); then die "probe '${p%%|*}' failed: $cmd: $out"; fi
done
"$HC" "$REDIS" "$NATS" "$HTTP" ready://bench-agent | tee "$OUT/probe-output.txt"

log "hyperfine: probes side by side ($RUNS runs each)"
args=()
for p in "${PROBES[@]}"; do args+=(-n "${p%%|*}" "${p#*|}"); done
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-markdown "$OUT/probes.md" \
  --export-json "$OUT/probes.json" "${args[@]}"
log "hyperfine: the python client ($PY_RUNS runs), beside the four-target probe and the floor"
hyperfine -N --warmup 3 --runs "$PY_RUNS" --export-markdown "$OUT/python.md" --export-json "$OUT/python.json" \
  -n "python client (redis-py + nats-py + urllib)" "$PY" \
  -n "healthcheck redis+nats+http" "$HC $REDIS $NATS $HTTP" \
  -n "floor (static no-op)" "$NOOP"

# ---------------------------------------------------------------- where the time goes
# Start-up alone (--version: no runtime, no network) and each target kind alone.
ANATOMY=(
  "floor (static no-op)|$NOOP"
  "healthcheck --version|$HC --version"
  "healthcheck tcp|$HC tcp://127.0.0.1:$RPORT"
  "healthcheck redis|$HC $REDIS"
  "healthcheck nats|$HC $NATS"
  "healthcheck http|$HC $HTTP"
  "healthcheck ready|$HC ready://bench-agent"
)
log "hyperfine: where the probe's time goes (start-up, then one target of each kind)"
aargs=()
for p in "${ANATOMY[@]}"; do
  ${p#*|} >/dev/null || die "'${p%%|*}' failed"
  aargs+=(-n "${p%%|*}" "${p#*|}")
done
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-markdown "$OUT/anatomy.md" \
  --export-json "$OUT/anatomy.json" "${aargs[@]}"

# ---------------------------------------------------------------- peak RSS
log "peak RSS and minor page faults (/usr/bin/time -f '%M %R', median of 9 runs)"
{
  echo "| command | peak RSS KiB (median of 9) | min | max | minor page faults (median) |"
  echo "|---|---:|---:|---:|---:|"
  for p in "${PROBES[@]}" "python client (redis-py + nats-py + urllib)|$PY" "${ANATOMY[@]:1}"; do
    name=${p%%|*}; cmd=${p#*|}
    rss=() faults=()
    for _ in $(seq 9); do
      /usr/bin/time -o "$TMP/rss" -f '%M %R' $cmd >/dev/null 2>&1 || die "$name failed under /usr/bin/time"
      read -r m r < <(tail -1 "$TMP/rss")
      rss+=("$m"); faults+=("$r")
    done
    sorted=$(printf '%s\n' "${rss[@]}" | sort -n)
    fmed=$(printf '%s\n' "${faults[@]}" | sort -n | sed -n 5p)
    echo "| $name | $(sed -n 5p <<<"$sorted") | $(head -1 <<<"$sorted") | $(tail -1 <<<"$sorted") | $fmed |"
  done
} | tee "$OUT/rss.md"

# ---------------------------------------------------------------- scaling with targets
log "hyperfine: probe time against the number of targets"
MIX=("$REDIS" "$NATS" "$HTTP" "tcp://127.0.0.1:$RPORT")
targets_n() { local n=$1 i out=(); for ((i = 0; i < n; i++)); do out+=("${MIX[i % 4]}"); done; echo "${out[*]}"; }
sargs=()
for n in 1 4 16 64; do
  t=$(targets_n "$n")
  "$HC" $t >/dev/null || die "healthcheck with $n targets failed"
  sargs+=(-n "$n targets" "$HC $t")
done
hyperfine -N --warmup "$WARMUP" --runs "$((RUNS / 2))" --export-markdown "$OUT/scaling.md" \
  --export-json "$OUT/scaling.json" "${sargs[@]}"

# ---------------------------------------------------------------- binary sizes
log "binary sizes"
{
  echo "| binary | bytes | MB (10^6) | source |"
  echo "|---|---:|---:|---|"
  for b in "$HC" "$RS" "$NOOP"; do
    s=$(stat -c %s "$b")
    echo "| $(basename "$b") (static musl, stripped) | $s | $(awk -v s="$s" 'BEGIN{printf "%.2f", s/1e6}') | measured here |"
  done
  echo "| grpc-health-probe | | ~11 | published figure, not measured here |"
  echo "| curl on Alpine | | ~6 | published figure, not measured here |"
} | tee "$OUT/sizes.md"
file "$HC" "$RS" 2>/dev/null | tee -a "$OUT/sizes.md" >/dev/null || true

# ---------------------------------------------------------------- ready-signal scale
log "ready-signal: N agents heartbeating at 1 Hz (${HB_SECS}s each), then Observer::all()"
redis-cli -p "$RPORT" flushall >/dev/null
"$RS" ready bench-agent --ttl 10m
for n in 1000 10000; do
  "$BENCH_HB" --redis "$REDIS" --agents "$n" --seconds "$HB_SECS" --connections 4 \
    --namespace "hb$n" --redis-pid "$REDIS_PID" --read-all 5 --json "$OUT/heartbeats-$n.json" \
    | tee "$OUT/heartbeats-$n.txt"
done

# ---------------------------------------------------------------- gating latency (issue 5)
log "gating latency: ready publish -> exec of the waiting command ($GATE_RUNS runs per mode)"
for mp in nats:once nats:handle polling:once; do
  mode=${mp%%:*} pub=${mp#*:}
  "$BENCH_GATE" --healthcheck "$HC" --stamp "$STAMP" --redis "$REDIS" --nats "$NATS" \
    --mode "$mode" --publisher "$pub" --runs "$GATE_RUNS" --json "$OUT/gate-$mode-$pub.json" \
    | tee "$OUT/gate-$mode-$pub.txt"
done

# ---------------------------------------------------------------- summary
log "summary"
python3 "$ROOT/bench/summarize.py" "$OUT" | tee "$OUT/summary.md"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "kernel: $(uname -r)"
  echo "redis-server: $(redis-server --version | awk '{print $3}')"
  echo "nats-server: $(nats-server --version)"
  echo "hyperfine: $(hyperfine --version)"
  echo "curl: $(curl --version | head -1)"
  echo "python: $(python3 --version) redis-py $(python3 -c 'import redis;print(redis.__version__)') nats-py $(python3 -c 'import importlib.metadata as m;print(m.version("nats-py"))' 2>/dev/null || echo '?')"
  echo "rustc: $(rustc --version)"
} | tee "$OUT/machine.txt"
echo "results in $OUT/"
