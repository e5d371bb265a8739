# Installs what building and testing need when it is missing, from Debian's packages, the musl
# Rust target, and (tests only) the Python clients and cargo-nextest. Sourced by tests/run.sh and
# docker/lib.sh.
#
# Before changing anything it says, in one line, what it will install and why. People who manage
# their own host set HEALTHCHECK_NO_INSTALL=1: nothing is installed, and when something is
# missing it prints the one command that installs it and stops (exit 1).
#
# - install_deps: what the example stack needs (docker/demo.sh): the real servers (their binaries
#   become the stand-in redis and nats images), redis-cli, musl (static builds), a static busybox
#   (the script-agent image), haproxy (the socket proxy's image), Debian's python3 with venv (the
#   agent-py image's wheel), Compose. docker/test_deps.py checks that every package a script of
#   the demo names when it is missing is in this list.
# - install_test_deps: that, plus what only the tests use: GNU time (the fault matrix's peak
#   RSS), promtool, chromium, jq and curl (the sidecar's tests and docker/e2e.sh), the Python
#   clients redis and nats-py (the interop test's agent) and cargo-nextest (the test runner).
# shellcheck shell=bash

# The Debian packages missing for the example stack, appended to the array named $1.
_missing_stack_packages() {
    local -n into=$1
    command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || into+=(redis-server)
    command -v redis-cli >/dev/null || into+=(redis-tools)
    command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || into+=(nats-server)
    command -v musl-gcc >/dev/null || into+=(musl-tools)
    [ -x /bin/busybox ] || into+=(busybox-static)
    # The stack's Docker socket proxy (docker/socket-proxy) is Debian's haproxy in a scratch image.
    command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || into+=(haproxy)
    # Virtualenvs of Debian's python3: the Python package's tests and its agent-py image, and
    # kubernetes-validate (deploy/kubernetes/validate.sh). Debian splits out ensurepip.
    /usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null || into+=(python3 python3-venv)
    # Compose for docker/e2e.sh: the plugin if the engine has it, else Debian's docker-compose.
    if command -v docker >/dev/null && ! docker compose version >/dev/null 2>&1; then
        command -v docker-compose >/dev/null || into+=(docker-compose)
    fi
}

# Says what is about to be installed and why, then installs it; with HEALTHCHECK_NO_INSTALL=1,
# prints the one command that would and returns 1. Arguments: why, then the apt packages,
# whether the musl target is missing (0/1), the pip packages, the cargo tools (space-separated).
_install_plan() { # why apt-packages musl pip cargo
    local why=$1 apt=$2 musl=$3 pip=$4 cargo=$5 what=() steps=() sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo "
    if [ -n "$apt" ]; then
        what+=("Debian packages: $apt")
        steps+=("${sudo}apt-get install -y $apt")
    fi
    if [ "$musl" = 1 ]; then
        what+=("the Rust target x86_64-unknown-linux-musl")
        steps+=("rustup target add x86_64-unknown-linux-musl")
    fi
    if [ -n "$pip" ]; then
        what+=("Python packages (pip, for Debian's python3): $pip")
        steps+=("python3 -m pip install --break-system-packages $pip")
    fi
    if [ -n "$cargo" ]; then
        what+=("cargo tools: $cargo")
        steps+=("cargo install --locked $cargo")
    fi
    [ ${#what[@]} -gt 0 ] || return 0
    local joined command
    joined=$(printf '%s; ' "${what[@]}")
    command=$(printf '%s && ' "${steps[@]}")
    command=${command% && }
    if [ "${HEALTHCHECK_NO_INSTALL:-0}" = 1 ]; then
        echo "==> HEALTHCHECK_NO_INSTALL=1: not installing ${joined%; } ($why). Install them, then run this again:" >&2
        echo "    $command" >&2
        return 1
    fi
    echo "==> installing ${joined%; } ($why; HEALTHCHECK_NO_INSTALL=1 skips this and prints the command instead)" >&2
    if [ -n "$apt" ]; then
        local sudo_cmd=()
        [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
        "${sudo_cmd[@]}" apt-get update -qq
        # shellcheck disable=SC2086
        "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $apt >/dev/null
    fi
    if [ "$musl" = 1 ]; then rustup target add x86_64-unknown-linux-musl >&2; fi
    if [ -n "$pip" ]; then
        # shellcheck disable=SC2086
        python3 -m pip install -q $pip 2>/dev/null || python3 -m pip install -q --break-system-packages $pip
    fi
    if [ -n "$cargo" ]; then
        # shellcheck disable=SC2086
        cargo install --locked $cargo
    fi
}

_musl_missing() {
    rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl && echo 0 || echo 1
}

_sbin_on_path() {
    case ":$PATH:" in *:/usr/sbin:*) ;; *) export PATH="$PATH:/usr/sbin" ;; esac
}

install_deps() {
    local missing=()
    _missing_stack_packages missing
    _install_plan "the example stack is built from them: the real servers, static builds, Compose" \
        "${missing[*]}" "$(_musl_missing)" "" "" || return 1
    _sbin_on_path
}

install_test_deps() {
    local missing=() pip=() cargo=()
    _missing_stack_packages missing
    # GNU time: the fault matrix (healthcheck/tests/faults.rs) reads a probe's peak RSS with it.
    [ -x /usr/bin/time ] || missing+=(time)
    # The sidecar's tests: promtool (rules and metrics lint), a headless browser for its page,
    # jq for docker/e2e.sh's reading of its JSON API, curl for the suites' HTTP calls.
    command -v promtool >/dev/null || missing+=(prometheus)
    command -v chromium >/dev/null || missing+=(chromium)
    command -v jq >/dev/null || missing+=(jq)
    command -v curl >/dev/null || missing+=(curl)
    # The interop test's agent speaks to Redis and NATS with the ordinary Python clients.
    python3 -c 'import redis, nats' 2>/dev/null || pip+=(redis nats-py)
    command -v cargo-nextest >/dev/null || cargo+=(cargo-nextest)
    _install_plan "the tests run against real servers and tools, never fakes of them" \
        "${missing[*]}" "$(_musl_missing)" "${pip[*]}" "${cargo[*]}" || return 1
    _sbin_on_path
}
