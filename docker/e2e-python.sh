# The Python agent's part of the end-to-end suite: sourced by docker/e2e.sh once the stack is
# up and healthy, with its helpers (compose, wait_health, last_probe, state, pass, fail) and its
# probe settings (INTERVAL, RETRIES, STALL_AFTER, TTL, SLACK). agent-py runs
# ready-signal/python/examples/agent.py with the ready_signal package: the same bounds as the
# Rust agents must hold for a frozen asyncio loop.
# shellcheck shell=bash

# --- a frozen event loop: unhealthy within the Rust agents' bound while the process lives.
pid=$(state agent-py '{{.State.Pid}}')
restarts=$(state agent-py '{{.RestartCount}}')
docker kill -s USR1 "$(id_of agent-py)" >/dev/null
bound=$(( STALL_AFTER + TTL + INTERVAL * RETRIES + SLACK ))
py_frozen=$(wait_health agent-py unhealthy $(( bound + 10 )))
awk -v t="$py_frozen" -v b="$bound" 'BEGIN { exit !(t <= b) }' || fail "agent-py unhealthy after ${py_frozen}s, bound ${bound}s"
[[ "$(state agent-py '{{.State.Running}} {{.State.Pid}} {{.RestartCount}}')" == "true $pid $restarts" ]] \
    || fail "agent-py's process did not keep running"
probe=$(last_probe agent-py)
[[ "$probe" == *stale* || "$probe" == *dead* ]] || fail "agent-py's probe does not say stale or dead: $probe"
grep -q 'event loop frozen' <<<"$(docker logs "$(id_of agent-py)" 2>&1)" || fail "agent-py did not log its frozen loop"
pass "frozen agent-py (blocked asyncio loop) unhealthy after ${py_frozen}s (bound ${bound}s), same process: $probe"
docker kill -s USR2 "$(id_of agent-py)" >/dev/null
took=$(wait_health agent-py healthy 30)
pass "thawed agent-py healthy again after ${took}s"

# --- SIGTERM: `stopping` published, the record removed, exit 0 (handle_sigterm + async with).
compose stop -t 10 agent-py >/dev/null 2>&1
[[ "$(state agent-py '{{.State.ExitCode}}')" == 0 ]] || fail "agent-py exited $(state agent-py '{{.State.ExitCode}}') on SIGTERM"
grep -q 'agent agent-py: stopping' <<<"$(docker logs "$(id_of agent-py)" 2>&1)" || fail "agent-py did not finish its loop on SIGTERM"
pass "agent-py stopped on SIGTERM with exit 0 after finishing its loop"
compose start agent-py >/dev/null 2>&1
took=$(wait_health agent-py healthy 60)
pass "agent-py started again, healthy after ${took}s"
say "timing: frozen loop to unhealthy, agent-py (Python) ${py_frozen}s (agent-a's figure is above)"
