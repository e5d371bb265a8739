# Installs what building and testing need when it is missing, from Debian's packages, and the
# musl Rust target. Sourced by tests/run.sh and docker/lib.sh.
#
# - install_deps: what the example stack needs (docker/demo.sh): the real servers (their binaries
#   become the stand-in redis and nats images), redis-cli, musl (static builds), a static busybox
#   (the script-agent image), Debian's python3 with venv (the agent-py image's wheel), Compose.
# - install_test_deps: that, plus what only the tests use: GNU time (the fault matrix's peak
#   RSS), haproxy (the Docker socket proxy's configuration in docker/e2e-heal.sh), promtool,
#   chromium, jq and curl (the sidecar's tests and docker/e2e.sh).
# shellcheck shell=bash

install_deps() {
    local missing=("$@")
    command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
    command -v redis-cli >/dev/null || missing+=(redis-tools)
    command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
    command -v musl-gcc >/dev/null || missing+=(musl-tools)
    [ -x /bin/busybox ] || missing+=(busybox-static)
    # Virtualenvs of Debian's python3: the Python package's tests and its agent-py image, and
    # kubernetes-validate (deploy/kubernetes/validate.sh). Debian splits out ensurepip.
    /usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3 python3-venv)
    # Compose for docker/e2e.sh: the plugin if the engine has it, else Debian's docker-compose.
    if command -v docker >/dev/null && ! docker compose version >/dev/null 2>&1; then
        command -v docker-compose >/dev/null || missing+=(docker-compose)
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        echo "==> installing ${missing[*]}" >&2
        local sudo=()
        [ "$(id -u)" = 0 ] || sudo=(sudo)
        "${sudo[@]}" apt-get update -qq
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    case ":$PATH:" in *:/usr/sbin:*) ;; *) export PATH="$PATH:/usr/sbin" ;; esac
    rustup target list --installed | grep -qx x86_64-unknown-linux-musl \
        || rustup target add x86_64-unknown-linux-musl >&2
}

install_test_deps() {
    local missing=()
    # GNU time: the fault matrix (healthcheck/tests/faults.rs) reads a probe's peak RSS with it.
    [ -x /usr/bin/time ] || missing+=(time)
    # docker/e2e-heal.sh runs the Docker socket proxy's configuration (docker/socket-proxy).
    command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
    # The sidecar's tests: promtool (rules and metrics lint), a headless browser for its page,
    # jq for docker/e2e.sh's reading of its JSON API, curl for the suites' HTTP calls.
    command -v promtool >/dev/null || missing+=(prometheus)
    command -v chromium >/dev/null || missing+=(chromium)
    command -v jq >/dev/null || missing+=(jq)
    command -v curl >/dev/null || missing+=(curl)
    install_deps "${missing[@]}"
}
