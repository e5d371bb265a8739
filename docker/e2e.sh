#!/usr/bin/env bash
# End-to-end suite on the real Docker engine: the example stack (docker/compose.yml) is brought
# up and broken in the ways the field reports describe, and every expectation is asserted.
# Run by .ci/run (through tests/run.sh). Leaves nothing behind; exits 1 on the first failure.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROJECT=${PROJECT:-hce2e$$}
# Fresh secrets whose every password carries a canary, to look for in `docker inspect`.
SECRETS_DIR=$(mktemp -d)
PASSWORD_PREFIX="canary-$$-"
export SECRETS_DIR PASSWORD_PREFIX
# shellcheck source=docker/lib.sh
source "$ROOT/docker/lib.sh"
# shellcheck source=docker/artefacts.sh
source "$ROOT/docker/artefacts.sh"

# Probe settings of docker/compose.yml and the example agent's, for the bounds below. The
# stack's HEALTHCHECK interval is 30 s by default (the sidecar watches continuously); these
# checks time the probe's own verdicts, so they run it every 2 s. Healing is off here (a frozen
# agent must stay frozen to be timed); docker/e2e-heal.sh tests it on a stack of its own.
INTERVAL=2 RETRIES=2 STALL_AFTER=3 TTL=3 HEARTBEAT=1
SLACK=4
export HC_INTERVAL=${INTERVAL}s SIDECAR_HEAL=off
# The sidecar's published port: a free one, so parallel stacks do not clash.
SIDECAR_PORT=${SIDECAR_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
export SIDECAR_PORT
SIDECAR="http://127.0.0.1:$SIDECAR_PORT"
install_test_deps   # jq, curl, chromium and promtool, when this suite runs on its own

checks=0
pass() { checks=$((checks + 1)); say "ok: $*"; }
fail() { say "FAIL: $*"; compose ps >&2 || true; exit 1; }

cleanup() {
    local code=$?
    if [[ $code -ne 0 ]]; then compose logs --tail 15 >&2 2>/dev/null || true; fi
    kill "${events_pid:-}" 2>/dev/null || true
    teardown
    artefacts_cleanup
    rm -rf "$SECRETS_DIR"
    exit $code
}
trap cleanup EXIT

id_of() { compose ps -q "$1"; }
health() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$(id_of "$1")"; }
last_probe() { docker inspect -f '{{range .State.Health.Log}}{{.Output}}{{end}}' "$(id_of "$1")" | grep -v '^$' | tail -n 1; }
state() { docker inspect -f "$2" "$(id_of "$1")"; }

# The sidecar's JSON view of the stack.
api() { curl -fsS --max-time 3 "$SIDECAR/api/status"; }
# Waits until the jq filter $1 holds on /api/status; prints the seconds it took.
wait_api() { # jq-filter timeout what
    local began deadline
    began=$(now)
    deadline=$(( $(date +%s) + $2 ))
    until [[ "$(api 2>/dev/null | jq -r "$1" 2>/dev/null)" == true ]]; do
        (( $(date +%s) < deadline )) || fail "sidecar: $3 not shown within $2 s; it shows: $(api | jq -c '{sources: (.sources | map_values(.status)), agents: [.agents[] | {agent, state, reason: .replicas[0].reason}]}' 2>&1)"
        sleep 0.1
    done
    awk -v a="$began" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'
}
# Polls agent $1's state on the sidecar every 100 ms for $2 s: "seconds state" lines.
trace_agent() { # agent seconds
    local began end
    began=$(now)
    end=$(( $(date +%s) + $2 ))
    while (( $(date +%s) < end )); do
        printf '%s %s\n' "$(awk -v a="$began" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')" \
            "$(api 2>/dev/null | jq -r --arg a "$1" '.agents[] | select(.agent == $a) | .state' 2>/dev/null)"
        sleep 0.1
    done
}
# Seconds at which the trace first shows state $2.
first_seen() { awk -v s="$2" '$2 == s { print $1; exit }' "$1"; }
# healthcheck-sidecar: the sidecar's own ready signal (--self-signal), ready while it progresses.
AGENTS='["agent-a","agent-b","agent-py","agent-script","consumer","consumer-wait","healthcheck-sidecar","slow-start"]'

# Waits until service $1's health is $2; prints the seconds it took.
wait_health() { # service status timeout
    local began deadline
    began=$(now)
    deadline=$(( $(date +%s) + $3 ))
    while [[ "$(health "$1")" != "$2" ]]; do
        (( $(date +%s) < deadline )) || fail "$1 did not become $2 within $3 s (last probe: $(last_probe "$1"))"
        sleep 0.25
    done
    awk -v a="$began" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'
}

# The deliberately slow starter of docker/e2e.compose.yml (the advice check below), with a Redis
# user of its own that may write only its own records, as every agent's.
export COMPOSE_OVERRIDE="$DOCKER_DIR/e2e.compose.yml"
render_slow_start_secret() {
    local file="$SECRETS_DIR/redis_slow-start" hash
    [[ -s "$file" ]] || printf '%s%s' "$PASSWORD_PREFIX" "$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')" >"$file"
    chmod 644 "$file"
    hash=$(sha256sum <"$file" | cut -d' ' -f1)
    grep '^user agent-a ' "$SECRETS_DIR/redis_users.acl" \
        | sed -e "s/^user agent-a on #[0-9a-f]*/user slow-start on #$hash/" -e 's/:agent-a:/:slow-start:/' \
        >>"$SECRETS_DIR/redis_users.acl"
    grep -q '^user slow-start ' "$SECRETS_DIR/redis_users.acl" || fail "no Redis user for slow-start"
}

prepare_but_python_agent
render_slow_start_secret
say "bringing the stack up (project $PROJECT)"
t0=$(date +%s)
# The start-up's container events, followed live from now: the engine keeps only its last 256
# for a later `--since`, and every HEALTHCHECK run adds three (exec_create, exec_start,
# exec_die), so with the slow starter's seconds they would be gone by the time they are read.
events_file=$(mktemp)
docker events --since "$t0" --filter "label=com.docker.compose.project=$PROJECT" --filter type=container \
    --format '{{.TimeNano}} {{.Status}} {{index .Actor.Attributes "com.docker.compose.service"}}' >"$events_file" &
events_pid=$!
started=$(now)
# As docker/demo.sh starts it: agent-py last, once its wheel is built.
start_stack_python_agent_last "$started"
# The demo's two "ready" moments (docker/lib.sh wait_stack_ready, as docker/demo.sh reports
# them): every agent ready on the sidecar, with the `healthcheck wait`-gated consumer-wait
# running at that moment; then Docker's health caught up, the service_healthy-gated consumer
# included.
wait_stack_ready "$SIDECAR/api/status" 180 "$started" || fail "the stack did not become ready and healthy"
wait_up || fail "compose up failed"
[[ "$WAIT_GATED_STATE" == running ]] \
    || fail "consumer-wait (gated by healthcheck wait) was '$WAIT_GATED_STATE' when every agent was ready"
awk -v r="$AGENTS_READY_S" -v d="$DOCKER_HEALTHY_S" 'BEGIN { exit !(r > 0 && r <= d) }' \
    || fail "every agent ready at ${AGENTS_READY_S}s is not before Docker's health at ${DOCKER_HEALTHY_S}s"
pass "two ready moments: every agent ready ${AGENTS_READY_S}s after up (the sidecar; consumer-wait running, consumer $HEALTH_GATED_STATE), Docker's health caught up at ${DOCKER_HEALTHY_S}s"
all_healthy=$DOCKER_HEALTHY_S

# --- the measured advice on the real engine: slow-start (docker/e2e.compose.yml) is ready only
# after its first 15 s work item while its start_period is 5 s. /api/advice must report its time
# from container start to first ready (about 15 s), the start_period too short with a longer
# one to set, and the failing streak Docker counted past the start period; a fast agent's
# start_period is not called too short. The page shows the same verdict.
SLOW_START=15 SLOW_PERIOD=5
advice_of() { curl -fsS --max-time 3 "$SIDECAR/api/advice" | jq -c --arg s "$1" '.services[] | select(.service == $s)'; }
deadline=$(( $(date +%s) + 30 ))
until [[ "$(advice_of slow-start 2>/dev/null | jq -r '.starts_measured >= 1' 2>/dev/null)" == true ]]; do
    (( $(date +%s) < deadline )) || fail "/api/advice: no measured start of slow-start within 30 s: $(advice_of slow-start 2>&1)"
    sleep 0.5
done
slow=$(advice_of slow-start)
jq -e --argjson n "$SLOW_START" --argjson sp "$SLOW_PERIOD" --argjson slack "$SLACK" '
    .first_ready_p50_s >= $n - 0.5 and .first_ready_p50_s <= $n + $slack
    and .first_ready_p95_s >= .first_ready_p50_s
    and .start_period_s == $sp and .start_period_verdict == "too-short"
    and (.advice | test("set start_period: [0-9]+s")) and (.advice | capture("set start_period: (?<s>[0-9]+)s").s | tonumber) > .first_ready_p95_s
    and .failing_streak_worst >= 2 and .checks_per_s > 0 and .check_cpu_share > 0' <<<"$slow" >/dev/null \
    || fail "/api/advice for slow-start (ready after ${SLOW_START}s, start_period ${SLOW_PERIOD}s): $slow"
fast=$(advice_of agent-a)
jq -e '.starts_measured >= 1 and .first_ready_p95_s < 10 and .start_period_verdict != "too-short"' <<<"$fast" >/dev/null \
    || fail "/api/advice for agent-a (ready in about a second, start_period 30s): $fast"
page=$(curl -fsS --max-time 3 "$SIDECAR/")
grep -q 'data-service="slow-start" data-verdict="too-short"' <<<"$page" \
    || fail "sidecar page: no too-short advice row for slow-start: $(grep -o '<tr class="advice[^>]*>' <<<"$page" | tr '\n' ' ')"
pass "advice on the real engine: slow-start ready $(jq -r .first_ready_p50_s <<<"$slow")s after its start, start_period ${SLOW_PERIOD}s too short: $(jq -r .advice <<<"$slow") (failing streak $(jq -r .failing_streak_worst <<<"$slow")); agent-a $(jq -r .start_period_verdict <<<"$fast") at $(jq -r .first_ready_p50_s <<<"$fast")s"

# --- gating: the service_healthy dependent started only after its dependencies were healthy
# (the events followed since before `up`).
sleep 1
kill "$events_pid" 2>/dev/null || true
events=$(cat "$events_file")
rm -f "$events_file"
first() { awk -v st="$1" -v svc="$2" '$0 ~ st && $NF == svc { print $1; exit }' <<<"$events"; }
consumer_start=$(first ' start ' consumer)
[[ -n "$consumer_start" ]] || fail "no start event for consumer"
for dep in redis nats agent-a agent-b agent-script; do
    healthy_at=$(first 'health_status: healthy' "$dep")
    [[ -n "$healthy_at" ]] || fail "no healthy event for $dep"
    (( consumer_start > healthy_at )) || fail "consumer started before $dep was healthy"
done
pass "consumer (service_healthy) started after redis, nats and the three agents were healthy"
wait_ms=$(grep -m 1 -o 'healthcheck wait: ready after [0-9.]*m\?s' <<<"$(docker logs "$(id_of consumer-wait)" 2>&1)" || true)
[[ -n "$wait_ms" ]] || fail "consumer-wait did not log the end of its wait"
pass "consumer-wait gated itself: $wait_ms"
healthy_ns() { first 'health_status: healthy' "$1"; }
since_up() { awk -v ns="$1" -v a="$started" 'BEGIN { printf "%.1f", ns / 1e9 - a }'; }
[[ -n "$(healthy_ns consumer)" && -n "$(healthy_ns consumer-wait)" ]] || fail "no healthy events for the dependents"
gate_healthy=$(since_up "$(healthy_ns consumer)")
wait_healthy=$(since_up "$(healthy_ns consumer-wait)")
consumer_started=$(since_up "$consumer_start")

# --- the sidecar sees it all: both sources, every agent ready and linked to its container.
took=$(wait_api "(.sources.store.status == \"ok\") and (.sources.docker.status == \"ok\")
    and ([.agents[] | select(.state == \"ready\") | .agent] | sort) == ($AGENTS | sort)" 30 "every agent ready")
view=$(api)
jq -e 'all(.agents[].replicas[]; .container != null and .container_health == "healthy")' <<<"$view" >/dev/null \
    || fail "sidecar: a replica is not linked to a healthy container: $(jq -c '[.agents[].replicas[] | {replica, container, container_health}]' <<<"$view")"
services=$(jq -r '[.containers[].service] | sort | unique | join(" ")' <<<"$view")
for svc in redis nats sidecar agent-a agent-b agent-py agent-script consumer consumer-wait hc-install; do
    [[ " $services " == *" $svc "* ]] || fail "sidecar: service $svc missing from the containers ($services)"
done
jq -e '.self_container != null and (.containers[] | select(.service == "hc-install") | .status == "exited" and .exit_code == 0 and .verdict == "ok")' <<<"$view" >/dev/null \
    || fail "sidecar: its own container or the finished hc-install job is not shown right"
page=$(curl -fsS --max-time 3 "$SIDECAR/")
for a in agent-a agent-b agent-py agent-script consumer consumer-wait; do
    grep -q "data-agent=\"demo/$a\" data-state=\"ready\"" <<<"$page" || fail "sidecar page: no ready row for $a"
done
if command -v chromium >/dev/null; then
    dom=$(timeout 60 chromium --headless --no-sandbox --disable-gpu --dump-dom "$SIDECAR/" 2>/dev/null)
    # An agent row's classes: the agent's state, then its headline (h-ready, h-partly-down...).
    rows=$(grep -o '<tr class="agent s-ready[ "]' <<<"$dom" | wc -l || true)
    [[ $rows -eq $(jq length <<<"$AGENTS") ]] || fail "sidecar page in chromium: $rows ready agent rows, expected $(jq length <<<"$AGENTS")"
fi
metrics=$(curl -fsS --max-time 3 "$SIDECAR/metrics")
grep -q 'healthcheck_agent_replica_state{namespace="demo",agent="agent-a",.*state="ready"} 1' <<<"$metrics" \
    || fail "sidecar /metrics: agent-a not ready"
if command -v promtool >/dev/null; then
    promtool check metrics <<<"$metrics" >/dev/null 2>&1 || fail "sidecar /metrics fails promtool check metrics"
fi
pass "sidecar at $SIDECAR shows store and docker ok, every agent ready ${took}s after the stack, linked to its healthy container; page, chromium and /metrics agree"

# --- health logs: exit 0, one line under 4096 bytes; no canary anywhere in docker inspect.
for svc in redis nats agent-a agent-b agent-script consumer consumer-wait; do
    log=$(docker inspect -f '{{range .State.Health.Log}}{{.ExitCode}}|{{len .Output}}|{{.Output}}{{end}}' "$(id_of "$svc")")
    last=$(grep -v '^$' <<<"$log" | tail -n 1)
    [[ "$last" == 0\|* ]] || fail "$svc: last probe did not exit 0: $last"
    len=$(cut -d'|' -f2 <<<"$last")
    (( len < 4096 )) || fail "$svc: probe output of $len bytes"
    [[ "$last" == *"healthy: "* ]] || fail "$svc: unexpected probe line: $last"
done
pass "health logs show exit 0 and one short line for every service"
# Read whole, then searched: under pipefail `cmd | grep -q` fails when grep exits at its match
# while cmd still writes (SIGPIPE, status 141), which made a found line look missing.
inspected=$(docker inspect $(compose ps -aq))
if grep -q "canary-$$-" <<<"$inspected"; then
    fail "a password appears in docker inspect"
fi
for f in "$SECRETS_DIR"/redis_probe "$SECRETS_DIR"/redis_agent-a "$SECRETS_DIR"/nats_agents; do
    if grep -qF "$(cat "$f")" <<<"$inspected"; then fail "$(basename "$f") appears in docker inspect"; fi
done
pass "no password in docker inspect (configuration, environment, health logs)"

# --- a frozen work loop: unhealthy within the bound while the process keeps running.
pid=$(state agent-a '{{.State.Pid}}')
restarts=$(state agent-a '{{.RestartCount}}')
trace=$(mktemp)
docker kill -s USR1 "$(id_of agent-a)" >/dev/null
trace_agent agent-a $(( STALL_AFTER + TTL + SLACK + 4 )) >"$trace" &
tracer=$!
took=$(wait_health agent-a unhealthy $(( STALL_AFTER + TTL + INTERVAL * RETRIES + SLACK + 10 )))
bound=$(( STALL_AFTER + TTL + INTERVAL * RETRIES + SLACK ))
awk -v t="$took" -v b="$bound" 'BEGIN { exit !(t <= b) }' || fail "agent-a unhealthy after ${took}s, bound ${bound}s"
[[ "$(state agent-a '{{.State.Running}} {{.State.Pid}} {{.RestartCount}}')" == "true $pid $restarts" ]] \
    || fail "agent-a's process did not keep running"
probe=$(last_probe agent-a)
[[ "$probe" == *stale* || "$probe" == *dead* ]] || fail "agent-a's probe does not say stale or dead: $probe"
pass "frozen agent-a unhealthy after ${took}s (bound ${bound}s), same process: $probe"
wait "$tracer"
stale_at=$(first_seen "$trace" stale) dead_at=$(first_seen "$trace" dead)
[[ -n "$stale_at" && -n "$dead_at" ]] || fail "sidecar: agent-a not shown stale then dead: $(uniq -f1 "$trace" | tr '\n' ';')"
# Stale once the beat is two heartbeats old after the stall; dead once the TTL has run out.
awk -v s="$stale_at" -v d="$dead_at" -v sb=$(( STALL_AFTER + 2 * HEARTBEAT + 2 )) -v db=$(( STALL_AFTER + TTL + 2 )) \
    'BEGIN { exit !(s <= d && s <= sb && d <= db) }' \
    || fail "sidecar: agent-a stale after ${stale_at}s (bound $(( STALL_AFTER + 2 * HEARTBEAT + 2 ))s), dead after ${dead_at}s (bound $(( STALL_AFTER + TTL + 2 ))s)"
[[ "$(state agent-a '{{.State.Running}} {{.State.Pid}}')" == "true $pid" ]] || fail "agent-a's process did not keep running"
rm -f "$trace"
pass "sidecar showed frozen agent-a stale after ${stale_at}s and dead after ${dead_at}s while its process ran (docker: unhealthy after ${took}s)"
docker kill -s USR2 "$(id_of agent-a)" >/dev/null
took=$(wait_health agent-a healthy 30)
pass "thawed agent-a healthy again after ${took}s"
took=$(wait_api '.agents[] | select(.agent == "agent-a") | .state == "ready"' 10 "thawed agent-a ready")
pass "sidecar shows thawed agent-a ready"
source "$ROOT/docker/e2e-python.sh" # agent-py: the Python package in the stack

# --- redis stopped: agents unhealthy naming redis; started again: healthy, nobody restarted.
declare -A before
for a in agent-a agent-b agent-script; do before[$a]=$(state "$a" '{{.State.StartedAt}} {{.RestartCount}}'); done
compose stop -t 2 redis >/dev/null 2>&1
took=$(wait_api '.sources.store.status == "unknown"' 10 "the store unknown")
unknown_check() {
    local view
    view=$(api)
    jq -e '(.sources.store.reason | test("redis")) and all(.agents[]; .state == "unknown") and .summary.replicas_by_state.dead == 0' <<<"$view" >/dev/null \
        || fail "sidecar with redis stopped: $(jq -c '{store: .sources.store, agents: [.agents[] | {agent, state}]}' <<<"$view")"
}
unknown_check
pass "sidecar: store unknown ${took}s after redis stopped, every agent unknown (not dead), reason names redis"
for a in agent-a agent-b agent-script; do
    took=$(wait_health "$a" unhealthy 30)
    probe=$(last_probe "$a")
    [[ "$probe" == *redis* ]] || fail "$a's probe does not name redis: $probe"
    pass "$a unhealthy ${took}s after redis stopped: $probe"
done
unknown_check
pass "sidecar: still unknown, not dead, while the agents' own probes fail"
compose start redis >/dev/null 2>&1
for a in agent-a agent-b agent-script; do
    took=$(wait_health "$a" healthy 60)
    [[ "$(state "$a" '{{.State.StartedAt}} {{.RestartCount}}')" == "${before[$a]}" ]] || fail "$a was restarted"
    pass "$a healthy again ${took}s after redis came back, without a restart"
done
took=$(wait_api "(.sources.store.status == \"ok\") and ([.agents[] | select(.state == \"ready\") | .agent] | sort) == ($AGENTS | sort)" 30 "every agent ready after redis")
pass "sidecar: store ok and every agent ready again"

# --- the watcher watched: a frozen sidecar (SIGSTOP, the whole process) stops renewing its own
# record, so the HEALTHCHECK Docker runs in its container (its own record file, never the shared
# store) fails and Docker marks it unhealthy; thawed, it is healthy again. A part of it stuck
# while the rest runs is sidecar/tests/selfwatch.rs's case.
wait_health sidecar healthy 30 >/dev/null
docker kill -s STOP "$(id_of sidecar)" >/dev/null
took=$(wait_health sidecar unhealthy 60)
why=$(last_probe sidecar)
docker kill -s CONT "$(id_of sidecar)" >/dev/null
[[ "$why" == *healthcheck-sidecar* ]] || fail "the frozen sidecar's failing probe does not name its own record: $why"
back=$(wait_health sidecar healthy 60)
pass "frozen sidecar unhealthy in Docker ${took}s after SIGSTOP ($why), healthy ${back}s after SIGCONT"

# --- an agent's process killed: the restart policy starts a new instance, told apart by id.
restarts=$(state agent-b '{{.RestartCount}}')
old_epoch=$(api | jq -r '.agents[] | select(.agent == "agent-b") | .replicas[0].epoch')
[[ "$old_epoch" =~ ^[0-9]+$ ]] || fail "sidecar: agent-b has no epoch ($old_epoch)"
kill -9 "$(state agent-b '{{.State.Pid}}')"
deadline=$(( $(date +%s) + 30 ))
until (( $(state agent-b '{{.RestartCount}}') > restarts )); do
    (( $(date +%s) < deadline )) || fail "agent-b was not restarted"
    sleep 0.25
done
took=$(wait_health agent-b healthy 60)
mapfile -t instances < <(docker logs "$(id_of agent-b)" 2>&1 | grep -o 'instance [0-9]\{13\}-[0-9a-f]\{8\} starting' | cut -d' ' -f2)
(( ${#instances[@]} >= 2 )) || fail "agent-b logged ${#instances[@]} instance(s)"
[[ "${instances[-1]}" != "${instances[-2]}" ]] || fail "agent-b restarted with the same instance id ${instances[-1]}"
pass "killed agent-b restarted as instance ${instances[-1]} (was ${instances[-2]}), healthy after ${took}s"
# Instance ids only name a process; the epoch (handed out by Redis) orders them.
took=$(wait_api ".agents[] | select(.agent == \"agent-b\") | (.state == \"ready\" and .replicas[0].instance == \"${instances[-1]}\" and .replicas[0].epoch > $old_epoch and .replicas[0].restarts >= 1)" 15 "agent-b's new instance with a higher epoch")
pass "sidecar shows agent-b's new instance ${instances[-1]} ready, epoch $(api | jq '.agents[] | select(.agent == "agent-b") | .replicas[0].epoch') > $old_epoch, with its container's restart"

# --- tear-down leaves nothing behind.
teardown
left=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT"; \
       docker network ls -q --filter "label=com.docker.compose.project=$PROJECT"; \
       docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT")
[[ -z "$left" ]] || fail "left behind after down: $left"
pass "down left no container, network or volume"

# --- the installable artefacts, on the images built above (docker/artefacts.sh; all of them,
# with their sizes: docker/e2e-artefacts.sh): docker/python-wheel.Dockerfile's last stage on a
# python:3.12-slim stand-in (the probe and the CLI copied FROM the healthcheck image into
# another), and `healthcheck install` copying all three binaries.
artefacts_began=$(now)
artefact_ok() { pass "$*"; }
check_python_wheel_stage
check_install
artefacts_cleanup
say "the artefact checks took $(awk -v a="$artefacts_began" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s"

say "all $checks checks passed"
say "timings after up: all healthy ${all_healthy}s; consumer (service_healthy) started ${consumer_started}s, healthy ${gate_healthy}s; consumer-wait (healthcheck wait) healthy ${wait_healthy}s"
