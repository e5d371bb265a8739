# The servers the probe benchmarks run against, on free loopback ports: redis-server,
# nats-server with JetStream and its monitoring port (the HTTP target), and a ready record
# published with the ready-signal CLI. Sourced by bench/run.sh and bench/compare.sh; expects
# TMP, PIDS, free_port, log() and die() (bench/prelude.sh) and RS (the ready-signal binary).
# Sets REDIS, NATS, HTTP and READY_SIGNAL_REDIS_URL.
# shellcheck shell=bash

RPORT=$(free_port); NPORT=$(free_port); MPORT=$(free_port)
log "starting redis-server :$RPORT, nats-server :$NPORT (monitor :$MPORT) in $TMP"
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" \
  --logfile "$TMP/redis.log" --daemonize no &
REDIS_PID=$!; PIDS+=("$REDIS_PID")
mkdir -p "$TMP/js"
nats-server -a 127.0.0.1 -p "$NPORT" -m "$MPORT" -js -sd "$TMP/js" > "$TMP/nats.log" 2>&1 &
NATS_PID=$!; PIDS+=("$NATS_PID")
for _ in $(seq 100); do
  redis-cli -p "$RPORT" ping >/dev/null 2>&1 && curl -fsS "http://127.0.0.1:$MPORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
redis-cli -p "$RPORT" ping >/dev/null || die "redis-server did not start (see $TMP/redis.log)"
curl -fsS "http://127.0.0.1:$MPORT/healthz" >/dev/null || die "nats-server did not start (see $TMP/nats.log)"

REDIS=redis://127.0.0.1:$RPORT
NATS=nats://127.0.0.1:$NPORT
HTTP=http://127.0.0.1:$MPORT/healthz
export READY_SIGNAL_REDIS_URL=$REDIS
unset READY_SIGNAL_NATS_URL READY_SIGNAL_NAMESPACE READY_SIGNAL_DIR HEALTHCHECK_TARGETS HEALTHCHECK_CONFIG || true
"$RS" ready bench-agent --ttl 10m
