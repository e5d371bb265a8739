#!/usr/bin/env bash
# The sidecar against Podman, the second engine (RHEL and Fedora users run it): Podman's
# Docker-compatible socket (`podman system service`), images built with podman (FROM scratch,
# no registry), and the sidecar's watching and healing through that socket, the sidecar itself
# in a Podman container:
#   - it finds its own container id under Podman's storage paths (never heals itself);
#   - a labelled (healthcheck.heal=true) agent whose work loop froze is restarted;
#   - an unlabelled frozen agent is left alone.
# The agents keep their records in a shared directory (READY_SIGNAL_DIR, the file store): no
# Redis or NATS is needed, and Podman runs no HEALTHCHECK without systemd (its timers are
# systemd units), so staleness of the record is what shows the freeze, as it is for the sidecar
# on Docker. Skipped, saying why, only where Podman cannot run a container. Leaves nothing behind.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROJECT=${PROJECT:-hcpod$$}
export CONTAINER_CLI=podman
# shellcheck source=docker/lib.sh
source "$ROOT/docker/lib.sh"

WORK=$(mktemp -d)
SOCK="$WORK/podman.sock"
STORE="$WORK/store"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SIDECAR="http://127.0.0.1:$PORT"
# Podman 4 gives a container its own open-files and process limits at the maximum it sees;
# where the machine forbids raising them (here: "error setting rlimit type 7/6: operation not
# permitted"), runc refuses to start it. Explicit limits within the machine's work everywhere.
LIMITS=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)
: "${HEALTHCHECK_IMAGE:=localhost/healthcheck:e2e-podman}" "${AGENT_IMAGE:=localhost/healthcheck-demo/agent:e2e-podman}"
: "${SCRIPT_AGENT_IMAGE:=localhost/healthcheck-demo/script-agent:e2e-podman}"
export HEALTHCHECK_IMAGE AGENT_IMAGE SCRIPT_AGENT_IMAGE
checks=0
service_pid=

pass() { checks=$((checks + 1)); say "ok: $*"; }
fail() {
    say "FAIL: $*"
    podman ps -a --filter "label=com.docker.compose.project=$PROJECT" >&2 || true
    podman logs --tail 20 "$PROJECT-sidecar" >&2 2>/dev/null || true
    exit 1
}
cleanup() {
    local code=$?
    podman rm -f -t 0 "$PROJECT-sidecar" "$PROJECT-agent-a" "$PROJECT-agent-b" >/dev/null 2>&1 || true
    [[ -n "$service_pid" ]] && kill "$service_pid" 2>/dev/null && wait "$service_pid" 2>/dev/null
    rm -rf "$WORK"
    exit $code
}
trap cleanup EXIT

if ! command -v podman >/dev/null; then
    say "podman is missing: installing it from Debian (apt-get install -y podman)"
    apt-get install -y -qq podman >/dev/null 2>&1 || true
fi
if ! command -v podman >/dev/null; then
    say "SKIPPED: podman is not installed and could not be installed (apt-get install -y podman)"
    exit 0
fi
say "$(podman version --format 'Podman {{.Client.Version}}'), storage $(podman info --format '{{.Store.GraphDriverName}}'), network $(podman info --format '{{.Host.NetworkBackend}}'), cgroups $(podman info --format '{{.Host.CgroupsVersion}}')"

# Can Podman run a container at all here? (busybox, FROM scratch: nothing to pull.)
busybox=$(command -v busybox || true)
[[ -n "$busybox" ]] || die "busybox is missing: apt-get install -y busybox-static"
mkdir -p "$WORK/bb" && cp "$busybox" "$WORK/bb/busybox"
printf 'FROM scratch\nCOPY busybox /bin/busybox\n' >"$WORK/bb/Dockerfile"
if ! err=$(podman build -q -t "localhost/$PROJECT-probe:1" "$WORK/bb" 2>&1 >/dev/null \
    && podman run --rm "${LIMITS[@]}" --network none "localhost/$PROJECT-probe:1" /bin/busybox true 2>&1); then
    podman image rm -f "localhost/$PROJECT-probe:1" >/dev/null 2>&1 || true
    say "SKIPPED: Podman cannot run a container on this machine: $(tail -n 1 <<<"$err")"
    exit 0
fi
podman image rm -f "localhost/$PROJECT-probe:1" >/dev/null 2>&1 || true

# The Docker-compatible API, as root, on a socket of our own.
podman system service --time=0 "unix://$SOCK" >"$WORK/service.log" 2>&1 &
service_pid=$!
for _ in $(seq 100); do
    curl -fsS --unix-socket "$SOCK" http://podman/_ping >/dev/null 2>&1 && break
    sleep 0.1
done
version=$(curl -fsS --unix-socket "$SOCK" http://podman/version) || fail "podman system service did not answer on $SOCK: $(cat "$WORK/service.log")"
pass "podman's Docker-compatible API answers: $(jq -r '"\(.Components[0].Name) \(.Version), API \(.ApiVersion) (oldest \(.MinAPIVersion))"' <<<"$version")"

phase "building the static binaries (musl)" build_static_binaries
phase "building the images with podman (each only when its inputs changed)" build_images

mkdir -p "$STORE" && chmod 777 "$STORE"
labels() { # service
    printf -- '--label com.docker.compose.project=%s --label com.docker.compose.service=%s' "$PROJECT" "$1"
}
agent() { # service extra-args...
    local service=$1
    shift
    # shellcheck disable=SC2046
    podman run -d "${LIMITS[@]}" --name "$PROJECT-$service" $(labels "$service") "$@" --network none \
        -v "$STORE:/store" -e READY_SIGNAL_DIR=/store -e READY_SIGNAL_NAMESPACE=demo \
        -e AGENT_NAME="$service" -e HEARTBEAT_MS=500 -e STALL_AFTER_MS=2000 \
        "$AGENT_IMAGE" >/dev/null
}
agent agent-a --label healthcheck.heal=true
agent agent-b
# The sidecar: in a Podman container, with the socket mounted where it looks by default, healing
# on (2 s after a freeze is seen, so the suite stays short), and labelled for healing itself:
# it must find its own id and never restart itself whatever its labels say.
# shellcheck disable=SC2046
podman run -d "${LIMITS[@]}" --name "$PROJECT-sidecar" $(labels sidecar) --label healthcheck.heal=true \
    --network host --user 0 -v "$SOCK:/var/run/docker.sock" -v "$STORE:/store" \
    -e READY_SIGNAL_DIR=/store -e READY_SIGNAL_NAMESPACE=demo -e RUST_LOG=info \
    --entrypoint /healthcheck-sidecar "$HEALTHCHECK_IMAGE" \
    --listen "127.0.0.1:$PORT" --heal=on --heal-after 2s >/dev/null
sidecar_id=$(podman inspect -f '{{.Id}}' "$PROJECT-sidecar")
id_a=$(podman inspect -f '{{.Id}}' "$PROJECT-agent-a")
id_b=$(podman inspect -f '{{.Id}}' "$PROJECT-agent-b")

api() { curl -fsS --max-time 3 "$SIDECAR/api/status"; }
# Waits until the jq filter $1 holds on /api/status.
wait_api() { # jq-filter timeout what
    local deadline=$(( $(date +%s) + $2 ))
    until [[ "$(api 2>/dev/null | jq -r "$1" 2>/dev/null)" == true ]]; do
        (( $(date +%s) < deadline )) || fail "sidecar: $3 not shown within $2 s; it shows: $(api | jq -c '{sources, self_container, agents: [.agents[] | {agent, state}], containers: [.containers[] | {name, status, heal}]}' 2>&1)"
        sleep 0.2
    done
}

wait_api '.sources.docker.status == "ok" and (.containers | length) == 3' 30 "the three containers through Podman's socket"
pass "the sidecar watches Podman: $(podman logs "$PROJECT-sidecar" 2>&1 | grep -o 'engine=[^ ]* api=[0-9.]*' | head -n 1)"
wait_api '[.agents[] | select(.agent == "agent-a" or .agent == "agent-b") | .state == "ready"] == [true, true]' 30 "both agents ready"
pass "both agents ready, read from the shared file store"
[[ "$(api | jq -r .self_container)" == "$sidecar_id" ]] \
    || fail "the sidecar's own id: $(api | jq -r .self_container), Podman says $sidecar_id (mountinfo: $(podman exec "$PROJECT-sidecar" /healthcheck --version >/dev/null 2>&1; true))"
pass "the sidecar found its own full container id under Podman's storage paths (${sidecar_id:0:12})"

started() { podman inspect -f '{{.State.StartedAt}}' "$1"; }
a_started=$(started "$id_a")
b_started=$(started "$id_b")
# Freeze both work loops (the example agent's SIGUSR1): their records go stale.
podman kill -s USR1 "$id_a" >/dev/null
podman kill -s USR1 "$id_b" >/dev/null
froze=$(now)
deadline=$(( $(date +%s) + 60 ))
until [[ "$(started "$id_a")" != "$a_started" ]]; do
    (( $(date +%s) < deadline )) || fail "the frozen labelled agent-a was not restarted within 60 s"
    sleep 0.5
done
pass "frozen agent-a (healthcheck.heal=true) restarted by the sidecar through Podman's API after $(awk -v a="$froze" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s"
wait_api '[.agents[] | select(.agent == "agent-a") | .state == "ready"] == [true]' 30 "agent-a ready again after its restart"
pass "agent-a ready again after its restart"
[[ "$(started "$id_b")" == "$b_started" ]] || fail "agent-b (not labelled) was restarted"
# Stale once its heartbeat is late, dead once its record's TTL has run out: bad either way.
wait_api '[.agents[] | select(.agent == "agent-b") | .state == "stale" or .state == "dead"] == [true]' 10 "agent-b stale or dead"
pass "frozen agent-b (not labelled) left alone: still the same start, $(api | jq -r '.agents[] | select(.agent == "agent-b") | .state') on the page"
[[ "$(started "$sidecar_id")" == "$(podman inspect -f '{{.State.StartedAt}}' "$PROJECT-sidecar")" ]] \
    && [[ "$(podman inspect -f '{{.RestartCount}}' "$PROJECT-sidecar")" == 0 ]] \
    || fail "the sidecar was restarted"
pass "the sidecar, labelled for healing itself, was never restarted"
say "all $checks Podman checks passed"
