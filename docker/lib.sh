# Shared by docker/demo.sh and docker/e2e.sh: build the binaries and images, render secrets,
# drive Compose. Source it; it expects ROOT (the repository) and PROJECT (the Compose project).
# shellcheck shell=bash

DOCKER_DIR="$ROOT/docker"
MUSL_TARGET=x86_64-unknown-linux-musl
# Cargo builds into CARGO_TARGET_DIR when it is set (relative to the repository, as cargo reads it).
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
# The Cargo profile of the images' binaries: `stack` (release without fat LTO, see Cargo.toml)
# unless HEALTHCHECK_PROFILE says `release`.
PROFILE=${HEALTHCHECK_PROFILE:-stack}
RELEASE="$TARGET_DIR/$MUSL_TARGET/$PROFILE"
# One staging directory per Compose project: suites of different projects may build at once.
STAGE="$ROOT/target/docker/$PROJECT"
export SECRETS_DIR="${SECRETS_DIR:-$DOCKER_DIR/.secrets}"

say() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# Runs one phase of the build (`phase "what" command args...`) and says how long it took, so a
# newcomer sees where the minutes go.
phase() { # what command...
    local what=$1 began
    shift
    began=$(now)
    say "$what..."
    "$@"
    say "$what: done in $(awk -v a="$began" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s"
}

# Docker must answer; there is no point going on otherwise.
require_docker() {
    command -v docker >/dev/null || die "docker is not installed"
    docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info failed); start dockerd"
}

# Whichever Compose the machine has: the plugin (`docker compose`) or docker-compose v1.
compose() {
    compose_cmd
    # COMPOSE_OVERRIDE: a file merged over compose.yml (docker/e2e-heal.sh uses one);
    # GATING_OVERRIDE: the start_interval file, where the engine takes it (choose_gating).
    $COMPOSE_CMD -p "$PROJECT" -f "$DOCKER_DIR/compose.yml" ${COMPOSE_OVERRIDE:+-f "$COMPOSE_OVERRIDE"} \
        ${GATING_OVERRIDE:+-f "$GATING_OVERRIDE"} "$@"
}

compose_cmd() {
    if [[ -z "${COMPOSE_CMD:-}" ]]; then
        if docker compose version >/dev/null 2>&1; then
            COMPOSE_CMD="docker compose"
        elif command -v docker-compose >/dev/null; then
            COMPOSE_CMD="docker-compose"
        else
            die "neither 'docker compose' nor 'docker-compose' is installed (apt-get install -y docker-compose)"
        fi
    fi
}

# Fast gating where the engine allows it: on API 1.44+ (Engine 25) with Compose v2, the
# start_interval override (checks every second during start_period, every interval after);
# elsewhere says once what service_healthy gating will cost and why. The choice is
# docker/stack.py's `gating` (unit-tested in docker/test_stack.py).
choose_gating() {
    compose_cmd
    local api compose_version plan interval=${HC_INTERVAL:-30s}
    api=$(docker version --format '{{.Server.APIVersion}}' 2>/dev/null || true)
    compose_version=$($COMPOSE_CMD version 2>/dev/null | head -n 1 || true)
    plan=$(python3 "$DOCKER_DIR/stack.py" gating "$api" "$compose_version" "${interval%s}" 2) \
        || die "docker/stack.py gating failed"
    GATING_OVERRIDE=
    if [[ "$(head -n 1 <<<"$plan")" == fast ]]; then
        GATING_OVERRIDE="$DOCKER_DIR/compose.start-interval.yml"
        # A Compose v2 too old to know the key refuses the file: then the slow path, said.
        if ! compose config -q >/dev/null 2>&1; then
            say "Compose $compose_version refused docker/compose.start-interval.yml: gating at the ${interval} interval"
            GATING_OVERRIDE=
            return 0
        fi
    fi
    say "$(tail -n +2 <<<"$plan")"
}

# shellcheck source=tests/deps.sh
source "$ROOT/tests/deps.sh"
# shellcheck source=docker/images/python-agent.sh
source "$DOCKER_DIR/images/python-agent.sh"
# shellcheck source=docker/socket-proxy/image.sh
source "$DOCKER_DIR/socket-proxy/image.sh"

# The static binaries the images are made of.
# The release profile (the shipped binaries) builds the probe apart from the sidecar: built
# together, Cargo unifies the sidecar's dependency features (a multi-thread runtime, an HTTP
# server) into the probe. The stack profile (the demo, the e2e suites) builds them in one
# invocation: two compile the async stack twice, once per feature set, for 100 s more CPU and
# 58 s more of a cold build on two cores, to keep 8 KB (0.13 %) out of the probe
# (BENCHMARKS.md, "One build for the stack's binaries").
build_static_binaries() {
    command -v musl-gcc >/dev/null || die "musl-gcc is missing: apt-get install -y musl-tools"
    local probe=(-p healthcheck -p ready-signal-cli -p ready-signal) sidecar=(-p healthcheck-sidecar)
    if [[ "$PROFILE" == release ]]; then
        cargo_musl "${probe[@]}" --bins --example agent && cargo_musl "${sidecar[@]}"
    else
        cargo_musl "${probe[@]}" "${sidecar[@]}" --bins --example agent
    fi
}

cargo_musl() { # cargo-build-args...
    (cd "$ROOT" && cargo build --quiet --profile "$PROFILE" --target "$MUSL_TARGET" "$@") >&2
}

# The ready_signal wheel, needed by agent-py's image alone, is a host build (Debian's python3
# loads it) and shares no compiled crate with the musl binaries. It builds in the background at
# a lower priority: the static binaries gate every other image, so they take the cores first,
# and the wheel uses what they leave (cold on two cores it ends before them: its `wheel-dev`
# profile takes a third of their CPU), and where it does not, the time the other images and
# the stack's start take. Its output goes beside STAGE, which build_images empties.
# start_wheel_build sets WHEEL_PID; finish_wheel_build waits for it and sets WHEEL.
start_wheel_build() {
    install_deps
    mkdir -p "$STAGE.wheel"
    nice -n 10 bash "$ROOT/ready-signal/python/build-wheel.sh" >"$STAGE.wheel/path" 2>"$STAGE.wheel/log" &
    WHEEL_PID=$!
}

finish_wheel_build() {
    wait "$WHEEL_PID" || { cat "$STAGE.wheel/log" >&2; die "building the ready_signal wheel failed"; }
    WHEEL=$(tail -n 1 "$STAGE.wheel/path")
}

# The static binaries, or no wheel build left running behind a failure.
build_static_binaries_or_stop() {
    build_static_binaries || { kill "$WHEEL_PID" 2>/dev/null; die "building the static binaries failed"; }
}

# The static binaries and the wheel, both built. Sets WHEEL.
build_binaries() {
    start_wheel_build
    build_static_binaries_or_stop
    finish_wheel_build
}

# The CLI that builds images: docker, or podman for docker/e2e-podman.sh.
CONTAINER_CLI=${CONTAINER_CLI:-docker}

# A hash of an image's inputs (its Dockerfile and staged context: contents, modes, links).
inputs_hash() { # dockerfile context
    { sha256sum <"$1"; tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$2" -cf - .; } \
        | sha256sum | cut -c1-16
}

# Builds one image from a staged context directory, unless the image of that tag was built from
# the same inputs (their hash is its label): a warm start rebuilds nothing.
build_image() { # tag dockerfile context
    local log="$STAGE/build.log" inputs
    inputs=$(inputs_hash "$2" "$3")
    if [[ "$($CONTAINER_CLI image inspect -f '{{index .Config.Labels "org.healthcheck.demo.inputs"}}' "$1" 2>/dev/null)" == "$inputs" ]]; then
        say "  $1: inputs unchanged ($inputs), kept"
        return 0
    fi
    $CONTAINER_CLI build --quiet --label "org.healthcheck.demo=1" --label "org.healthcheck.demo.project=$PROJECT" \
        --label "org.healthcheck.demo.inputs=$inputs" -t "$1" -f "$2" "$3" >"$log" 2>&1 \
        || { cat "$log" >&2; die "$CONTAINER_CLI build of $1 failed"; }
    say "  $1: built (inputs $inputs)"
}

# Our own images, all FROM scratch, from the binaries built on the host.
build_images() {
    rm -rf "$STAGE" && mkdir -p "$STAGE"/{healthcheck,agent,script-agent/rootfs/bin,script-agent/rootfs/app}
    cp "$RELEASE/healthcheck" "$RELEASE/ready-signal" "$RELEASE/healthcheck-sidecar" "$STAGE/healthcheck/"
    build_image "${HEALTHCHECK_IMAGE:=healthcheck:local}" "$DOCKER_DIR/Dockerfile" "$STAGE/healthcheck"
    cp "$RELEASE/examples/agent" "$STAGE/agent/agent"
    build_image "${AGENT_IMAGE:=healthcheck-demo/agent:local}" "$DOCKER_DIR/images/agent.Dockerfile" "$STAGE/agent"
    local busybox
    busybox=$(command -v busybox || true)
    [[ -n "$busybox" ]] || die "busybox is missing: apt-get install -y busybox-static"
    local linkage
    linkage=$(ldd "$busybox" 2>&1 || true)
    [[ "$linkage" == *"not a dynamic executable"* || "$linkage" == *"statically linked"* ]] \
        || die "$busybox is not static: apt-get install -y busybox-static"
    cp "$busybox" "$STAGE/script-agent/rootfs/bin/busybox"
    for applet in sh sleep touch echo; do ln -s busybox "$STAGE/script-agent/rootfs/bin/$applet"; done
    cp "$DOCKER_DIR/images/worker.sh" "$STAGE/script-agent/rootfs/app/worker.sh"
    build_image "${SCRIPT_AGENT_IMAGE:=healthcheck-demo/script-agent:local}" \
        "$DOCKER_DIR/images/script-agent.Dockerfile" "$STAGE/script-agent"
    export HEALTHCHECK_IMAGE AGENT_IMAGE SCRIPT_AGENT_IMAGE
}

# Copies a host binary and every shared library it links into a stand-in root file system.
assemble_rootfs() { # binary rootfs dest-path
    local bin=$1 rootfs=$2 dest=$3
    mkdir -p "$rootfs$(dirname "$dest")"
    cp -L "$bin" "$rootfs$dest"
    ldd "$bin" | grep -o '/[^ ]*' | while read -r lib; do
        mkdir -p "$rootfs$(dirname "$lib")"
        cp -L "$lib" "$rootfs$lib"
    done
}

# REDIS_IMAGE and NATS_IMAGE default to the official images. Where they are neither present nor
# pullable (no registry, as on this machine), build stand-ins from the Debian packages (tagged
# REDIS_STANDIN_IMAGE and NATS_STANDIN_IMAGE, so parallel suites can keep theirs apart).
ensure_service_images() {
    : "${REDIS_IMAGE:=redis:7.2}" "${NATS_IMAGE:=nats:2.10}"
    if ! have_image "$REDIS_IMAGE"; then
        local server
        server=$(command -v redis-server || true)
        [[ -n "$server" ]] || die "$REDIS_IMAGE cannot be pulled and redis-server is not installed: apt-get install -y redis-server"
        say "$REDIS_IMAGE cannot be pulled (no registry?): using a stand-in built from Debian's $("$server" --version | grep -o 'v=[0-9.]*')"
        mkdir -p "$STAGE/redis/rootfs"
        assemble_rootfs "$server" "$STAGE/redis/rootfs" /usr/local/bin/redis-server
        REDIS_IMAGE=${REDIS_STANDIN_IMAGE:-healthcheck-demo/redis-standin:local}
        build_image "$REDIS_IMAGE" "$DOCKER_DIR/images/standin.Dockerfile" "$STAGE/redis"
    fi
    if ! have_image "$NATS_IMAGE"; then
        local server
        server=$(command -v nats-server || ls /usr/sbin/nats-server 2>/dev/null || true)
        [[ -n "$server" ]] || die "$NATS_IMAGE cannot be pulled and nats-server is not installed: apt-get install -y nats-server"
        say "$NATS_IMAGE cannot be pulled (no registry?): using a stand-in built from Debian's nats-server $("$server" --version | grep -oE 'v[0-9]+(\.[0-9]+)+')"
        mkdir -p "$STAGE/nats/rootfs"
        assemble_rootfs "$server" "$STAGE/nats/rootfs" /nats-server
        NATS_IMAGE=${NATS_STANDIN_IMAGE:-healthcheck-demo/nats-standin:local}
        build_image "$NATS_IMAGE" "$DOCKER_DIR/images/standin.Dockerfile" "$STAGE/nats"
    fi
    export REDIS_IMAGE NATS_IMAGE
}

have_image() {
    $CONTAINER_CLI image inspect "$1" >/dev/null 2>&1 && return 0
    timeout 20 $CONTAINER_CLI pull --quiet "$1" >/dev/null 2>&1
}

# Random passwords in files (the Compose secrets), the Redis ACL file with their hashes, and
# the NATS users. Kept across runs; PASSWORD_PREFIX lets the e2e suite plant a canary.
render_secrets() {
    mkdir -p "$SECRETS_DIR"
    chmod 755 "$SECRETS_DIR"
    local name
    for name in redis_probe redis_sidecar redis_agent-a redis_agent-b redis_agent-script redis_consumer nats_agents nats_probe; do
        if [[ ! -s "$SECRETS_DIR/$name" ]]; then
            printf '%s%s' "${PASSWORD_PREFIX:-}" "$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')" >"$SECRETS_DIR/$name"
        fi
        # The containers run as unprivileged users and must read their secret files.
        chmod 644 "$SECRETS_DIR/$name"
    done
    local acl
    acl=$(grep -v '^#' "$ROOT/config/redis-users.acl.in")
    for name in probe sidecar agent-a agent-b agent-script consumer; do
        local hash
        hash=$(sha256sum <"$SECRETS_DIR/redis_$name" | cut -d' ' -f1)
        acl=${acl//@HASH:$name@/$hash}
    done
    printf '%s\n' "$acl" >"$SECRETS_DIR/redis_users.acl"
    chmod 644 "$SECRETS_DIR/redis_users.acl"
    cat >"$SECRETS_DIR/nats_auth.conf" <<CONF
authorization {
  users = [
    { user: agents, password: "$(cat "$SECRETS_DIR/nats_agents")",
      permissions: { publish: ["ready-signal.>", "healthcheck.heal.>", "_INBOX.>"], subscribe: ["ready-signal.>", "healthcheck.heal.>", "_INBOX.>"] } }
    { user: probe, password: "$(cat "$SECRETS_DIR/nats_probe")",
      permissions: { publish: ["\$JS.API.INFO"], subscribe: ["_INBOX.>"] } }
  ]
}
CONF
    chmod 644 "$SECRETS_DIR/nats_auth.conf"
}

# Everything the stack needs, agent-py's image included: what e2e-heal.sh and the other suites
# that start the whole stack at once use.
prepare() {
    prepare_but_python_agent
    finish_python_agent
}

# Everything but agent-py's image, whose wheel goes on building in the background: the stack
# can start without agent-py (nothing depends on it), and finish_python_agent adds it. Where the
# wheel outlasts the static binaries (a cold build on fewer cores), the other images, the stack's
# start and Docker's first health checks happen while it compiles (docker/demo.sh, docker/e2e.sh).
prepare_but_python_agent() {
    require_docker
    # The services read the mounted configs as their own users (redis runs as uid 999 in the
    # official image); a clone made under umask 077 would leave them unreadable.
    chmod a+r "$ROOT"/config/*.conf
    start_wheel_build
    phase "building the static binaries (musl; the ready_signal wheel builds beside them)" build_static_binaries_or_stop
    phase "building the images but agent-py's (each only when its inputs changed)" build_images_but_python_agent
    render_secrets
    render_python_agent_secret
}


build_images_but_python_agent() {
    build_images
    build_socket_proxy_image
    ensure_service_images
}

# Waits for the wheel and builds agent-py's image from it.
finish_python_agent() {
    phase "the ready_signal wheel and agent-py's image" finish_python_agent_image
}

finish_python_agent_image() {
    finish_wheel_build
    build_python_agent_image "$WHEEL"
}

# The Python agent: the one service whose image needs the wheel.
PYTHON_AGENT_SERVICE=agent-py

# Every service of the stack but the Python agent's, for a `compose up` that starts before its
# image exists.
services_but_python_agent() {
    compose config --services | grep -vx "$PYTHON_AGENT_SERVICE"
}

# The stack, started whether or not the wheel is built (after prepare_but_python_agent):
# `compose up` of every other service in the background (start_up), then the wheel and agent-py's
# image, then agent-py. Sets PY_AGENT_JOINED_S (seconds from `started` to agent-py's start).
start_stack_python_agent_last() { # started compose-up-args...
    local since=$1
    shift
    # shellcheck disable=SC2046
    start_up "$@" $(services_but_python_agent)
    finish_python_agent
    start_python_agent
    PY_AGENT_JOINED_S=$(awk -v a="$since" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
    say "agent-py started after $PY_AGENT_JOINED_S s, once its wheel was built"
}

# agent-py, added to the stack the other `compose up` is bringing up. `--no-deps`: that `up`
# owns the dependencies (a second one would start the finished hc-install again, or race it
# to create the network), so this one first waits until they are as agent-py's depends_on asks:
# hc-install exited 0, redis and nats started.
python_agent_deps_up() {
    [[ "$(service_state redis)" == running && "$(service_state nats)" == running ]] || return 1
    local id
    id=$(compose ps -a -q hc-install 2>/dev/null || true)
    [[ -n "$id" && "$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$id" 2>/dev/null)" == "exited 0" ]]
}

start_python_agent() {
    local deadline=$(( $(date +%s) + 120 ))
    until python_agent_deps_up; do
        [[ -z "$(up_failed)" ]] || { cat "$STAGE/up.log" >&2; die "compose up failed (exit $(up_failed))"; }
        (( $(date +%s) < deadline )) || die "agent-py's dependencies (hc-install done, redis and nats started) were not there within 120 s"
        sleep 0.5
    done
    compose up -d --no-deps "$PYTHON_AGENT_SERVICE" >"$STAGE/up-python-agent.log" 2>&1 \
        || { cat "$STAGE/up-python-agent.log" >&2; die "compose up of $PYTHON_AGENT_SERVICE failed"; }
}

# Seconds since the epoch, with milliseconds.
now() { date +%s.%3N; }

# Health of every service's containers: "name status health".
health_table() {
    local id
    # A container `up` replaces between the listing and its inspection is gone, not an error:
    # the demo watches while `up` still recreates services (it printed "No such object").
    for id in $(compose ps -q); do
        docker inspect -f '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}} {{.State.ExitCode}}' "$id" 2>/dev/null || true
    done | sed 's#^/##' | sort
}

# Starts `compose up -d ARGS...` in the background and returns at once. Compose returns only
# once every `service_healthy` gate has passed: on engines without start_interval that is one
# HEALTHCHECK interval per level (30 s here), long after the agents are ready. Waiting for it
# would hide the stack's first "ready" moment behind Docker's, so the demo watches the sidecar
# meanwhile. The exit status lands in UP_STATUS (wait_stack_ready stops at a failure); wait_up
# waits for Compose to finish and says whether it succeeded.
start_up() { # compose-up-args...
    UP_STATUS="$STAGE/up.status"
    mkdir -p "$STAGE" && rm -f "$UP_STATUS"
    (
        code=0
        compose up -d "$@" >"$STAGE/up.log" 2>&1 || code=$?
        echo "$code" >"$UP_STATUS"
    ) &
    UP_PID=$!
}

# Compose's status when it has failed, else nothing.
up_failed() {
    local code
    code=$(cat "${UP_STATUS:-/nonexistent}" 2>/dev/null || true)
    [[ -n "$code" && "$code" != 0 ]] && echo "$code"
    return 0
}

wait_up() {
    wait "$UP_PID" 2>/dev/null || true
    [[ "$(cat "$UP_STATUS" 2>/dev/null)" == 0 ]] || { cat "$STAGE/up.log" >&2; return 1; }
}

# Waits until every long-running service is healthy (hc-install must have exited 0).
wait_all_healthy() { # timeout-seconds
    local deadline=$(( $(date +%s) + $1 )) table
    while :; do
        [[ -z "$(up_failed)" ]] || { say "compose up failed (exit $(up_failed))"; return 1; }
        table=$(health_table)
        if [[ -n "$table" ]] && ! awk '
            $1 ~ /hc-install/ { if ($2 != "exited" || $4 != 0) bad = 1; next }
            $3 != "healthy" { bad = 1 }
            END { exit !bad }' <<<"$table"; then
            return 0
        fi
        if (( $(date +%s) >= deadline )); then
            say "not all services became healthy within $1 s:"
            printf '%s\n' "$table" >&2
            return 1
        fi
        sleep 0.5
    done
}

# The agents that wait for nothing Docker decides: ready as soon as their own work is, and
# consumer-wait, which gates itself with `healthcheck wait`. (consumer waits for Docker's health.)
READY_AGENTS="agent-a agent-b agent-py agent-script consumer-wait"

# A service's container state, or "not created" (a service_healthy-gated one, early on).
service_state() { # service
    local id
    id=$(compose ps -q "$1" 2>/dev/null || true)
    if [[ -n "$id" ]]; then
        docker inspect -f '{{.State.Status}}' "$id" 2>/dev/null || echo "not created"
    else
        echo "not created"
    fi
}

# The stack's two "ready" moments, said separately: every agent ready (the sidecar's
# /api/status), with the `healthcheck wait`-gated dependent shown running at that moment; then
# Docker's health caught up (every service healthy, the service_healthy-gated consumer
# included). Sets AGENTS_READY_S, WAIT_GATED_STATE, HEALTH_GATED_STATE and DOCKER_HEALTHY_S
# (seconds since `started`).
wait_stack_ready() { # status-url timeout-seconds started
    local url=$1 timeout=$2 since=$3
    # shellcheck disable=SC2086
    python3 "$DOCKER_DIR/stack.py" wait-agents ${UP_STATUS:+--up-status "$UP_STATUS"} "$url" "$timeout" $READY_AGENTS >/dev/null || return 1
    AGENTS_READY_S=$(awk -v a="$since" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
    WAIT_GATED_STATE=$(service_state consumer-wait)
    HEALTH_GATED_STATE=$(service_state consumer)
    say "every agent ready after $AGENTS_READY_S s (the sidecar's view): ${READY_AGENTS// /, }"
    say "  consumer-wait (gated by healthcheck wait): $WAIT_GATED_STATE; consumer (gated by service_healthy): $HEALTH_GATED_STATE, waiting for Docker's health"
    wait_all_healthy "$timeout" || return 1
    DOCKER_HEALTHY_S=$(awk -v a="$since" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
    say "Docker's health caught up after $DOCKER_HEALTHY_S s: every service healthy, consumer included"
}

# Removes the project's containers, networks and volumes (and, with --images, its images).
teardown() {
    compose down --volumes --remove-orphans --timeout 5 >/dev/null 2>&1 || true
}
