#!/usr/bin/env bash
# The example stack, from nothing to healthy: builds the static binaries and the images (each
# phase says how long it took; an image is rebuilt only when its inputs changed), brings
# docker/compose.yml up without waiting for the Python package's wheel (agent-py, the one
# service that needs it, joins when it is built), says when every agent is ready (the
# sidecar's view) and, separately, when Docker's health has caught up (gated by the
# HEALTHCHECK interval; fast where the engine takes start_interval, docker/ENGINES.md), prints
# each service's health with its latest probe line, and ends with the URL of the sidecar's
# status page (SIDECAR_PORT, default 19470, on 127.0.0.1).
#
#   bash docker/demo.sh        bring the stack up (again)
#   bash docker/demo.sh down   remove everything it started (containers, network, volumes, images)
#
# REDIS_IMAGE and NATS_IMAGE choose the images (default: the official redis:7.2 and nats:2.10);
# where those cannot be pulled, stand-ins are assembled from the Debian packages' binaries.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROJECT=${PROJECT:-hcdemo}
# shellcheck source=docker/lib.sh
source "$ROOT/docker/lib.sh"

if [[ "${1:-up}" == down ]]; then
    require_docker
    # The images only matter for the Compose file to parse; any value will do for `down`.
    export REDIS_IMAGE=${REDIS_IMAGE:-none} NATS_IMAGE=${NATS_IMAGE:-none}
    teardown
    # Only the images this project built, and only those no container (of any project) still uses.
    for image in $(docker image ls -q --filter "label=org.healthcheck.demo.project=$PROJECT" | sort -u); do
        if [[ -z "$(docker ps -aq --filter "ancestor=$image")" ]]; then
            docker image rm "$image" >/dev/null 2>&1 || true
        else
            say "kept image $image: a container still uses it"
        fi
    done
    say "removed the $PROJECT stack, its volumes and its images"
    exit 0
fi

demo_began=$(now)
prepare_but_python_agent
choose_gating
say "starting the stack (project $PROJECT); agent-py joins once its wheel is built"
started=$(now)
# In the background: Compose returns only once the service_healthy gates have passed, and the
# agents are ready long before that (docker/lib.sh start_up). Where the wheel is still
# compiling (a cold build on a machine with fewer cores), the rest of the stack starts meanwhile
# (docker/lib.sh start_stack_python_agent_last).
start_stack_python_agent_last "$started" --quiet-pull
url="http://127.0.0.1:${SIDECAR_PORT:-19470}/"
if ! wait_stack_ready "${url}api/status" 180 "$started" || ! wait_up; then
    compose logs --tail 30 >&2
    die "the stack did not become healthy"
fi
printf '\nEvery agent ready after %s s (the sidecar; agent-py started at %s s, once its wheel was built); Docker health caught up after %s s.\nServices and their latest probe:\n\n' \
    "$AGENTS_READY_S" "$PY_AGENT_JOINED_S" "$DOCKER_HEALTHY_S"
for id in $(compose ps -q); do
    name=$(docker inspect -f '{{.Name}}' "$id" | sed 's#^/##')
    health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}} (exit {{.State.ExitCode}}){{end}}' "$id")
    # Services without a healthcheck (the init service) have no log: no line, not an error.
    line=$(docker inspect -f '{{if .State.Health}}{{range .State.Health.Log}}{{.Output}}{{end}}{{end}}' "$id" | { grep -v '^$' || true; } | tail -n 1)
    printf '  %-28s %-22s %s\n' "$name" "$health" "$line"
done
agent_a=$(docker inspect -f '{{.Name}}' "$(compose ps -q agent-a)" | sed 's#^/##')
agent_b=$(docker inspect -f '{{.Name}}' "$(compose ps -q agent-b)" | sed 's#^/##')
# What the sidecar sees (it reads the store every second and follows Docker's events), from its
# JSON API; python3's standard library, so the demo needs no HTTP client installed.
printf '\nThe sidecar sees:\n\n'
python3 "$DOCKER_DIR/stack.py" show "${url}api/status" || say "warning: the sidecar at $url does not answer yet"
printf '\nTry: docker kill -s USR1 %s   (freeze its work loop: stale on the page within seconds, and\n' "$agent_b"
printf '       unhealthy in docker ps within a few intervals; it is not labelled for healing)\n'
printf '     docker kill -s USR1 %s   (labelled healthcheck.heal=true: the sidecar restarts it)\n' "$agent_a"
printf '     bash docker/demo.sh down              (remove everything)\n'
printf '\nStack health (page, /api/status, /api/events, /metrics): %s\n' "$url"
awk -v a="$demo_began" -v b="$(now)" 'BEGIN { printf "(bash docker/demo.sh took %.0f s in all)\n", b - a }'
