#!/usr/bin/env bash
# Times `bash docker/demo.sh` of a checkout, phase by phase (the demo prints each phase's
# duration), with GNU time's CPU seconds and the machine's load average sampled every 30 s
# beside it: on a shared machine the wall-clock figures mean little without the load, and the
# CPU seconds are the load-independent figure (BENCHMARKS.md, "Engines").
#
#   bash bench/demo-phases.sh OUT CHECKOUT        OUT.err (the demo's phases), OUT.out, OUT.load
#
# Cold: an empty CARGO_TARGET_DIR. Warm: the same one again after the stack is removed with
# images kept (docker/lib.sh teardown). The demo's own variables (PROJECT, SIDECAR_PORT, the
# image tags, CARGO_TARGET_DIR) pass through.
set -euo pipefail
out=$1 checkout=$2
command -v /usr/bin/time >/dev/null || { echo "GNU time is missing: apt-get install -y time" >&2; exit 1; }
( while :; do echo "$(date +%T) $(cut -d' ' -f1-3 /proc/loadavg)"; sleep 30; done ) >"$out.load" &
sampler=$!
trap 'kill "$sampler" 2>/dev/null || true' EXIT
code=0
(cd "$checkout" && /usr/bin/time -v bash docker/demo.sh) >"$out.out" 2>"$out.err" || code=$?
grep -E 'done in|every agent ready after|caught up after|Elapsed|User time|System time|Exit status' "$out.err" || true
awk '{ print $2 }' "$out.load" | sort -n \
    | awk '{ a[NR] = $1 } END { if (NR) printf "load (1 min): min %s, median %s, max %s over %d samples\n", a[1], a[int((NR + 1) / 2)], a[NR], NR }'
exit "$code"
