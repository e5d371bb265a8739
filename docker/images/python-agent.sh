# The agent-py image: Debian's python3 and the ready_signal wheel in a scratch image, assembled
# on the host like the redis and nats stand-ins (docker/lib.sh's assemble_rootfs), because no
# registry image can be pulled here. Sourced by docker/lib.sh; needs its STAGE, DOCKER_DIR,
# build_image and assemble_rootfs. PY_AGENT_IMAGE names the image, PY_WHEEL_PROFILE picks the
# wheel's build profile (dev by default, as the tests build it; release for a smaller, faster one).
# shellcheck shell=bash

build_python_agent_image() { # [wheel: built already by build_binaries, beside the static binaries]
    local python=/usr/bin/python3 rootfs="$STAGE/python-agent/rootfs" wheel=${1:-} version stdlib
    [[ -x "$python" ]] || die "$python is missing: apt-get install -y python3 python3-venv"
    if [[ -z "$wheel" ]]; then
        wheel=$(bash "$ROOT/ready-signal/python/build-wheel.sh") || die "building the ready_signal wheel failed"
    fi
    version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    stdlib=/usr/lib/python$version
    say "  assembling the agent-py image from Debian's python$version and $(basename "$wheel")"
    rm -rf "$STAGE/python-agent" && mkdir -p "$rootfs/app/lib"
    assemble_rootfs "$(readlink -f "$python")" "$rootfs" /usr/bin/python3
    # The stdlib, without what an agent never imports (tests, IDLE, Tk, pip's bootstrap).
    mkdir -p "$rootfs$stdlib"
    tar -C "$stdlib" --exclude=./test --exclude=./idlelib --exclude=./tkinter \
        --exclude=./turtledemo --exclude=./ensurepip --exclude=./lib2to3 --exclude='__pycache__' \
        -cf - . | tar -C "$rootfs$stdlib" -xf -
    # The wheel, unpacked where PYTHONPATH points (a wheel is a zip laid out for site-packages).
    "$python" -m zipfile -e "$wheel" "$rootfs/app/lib"
    # Compiled stdlib modules (lib-dynload) and the extension link libraries of their own
    # (libffi, libssl, libgcc_s, ...).
    local so lib
    for so in "$stdlib"/lib-dynload/*.so "$rootfs"/app/lib/ready_signal/*.so; do
        # (`|| true`: a module that links nothing new must not stop a `set -e` caller.)
        for lib in $( (ldd "$so" 2>/dev/null || true) | grep -o '/[^ ]*' || true); do
            [[ -e "$rootfs$lib" ]] || { mkdir -p "$rootfs$(dirname "$lib")" && cp -L "$lib" "$rootfs$lib"; }
        done
    done
    cp "$ROOT/ready-signal/python/examples/agent.py" "$rootfs/app/agent.py"
    mkdir -p "$rootfs/tmp" && chmod 1777 "$rootfs/tmp"
    build_image "${PY_AGENT_IMAGE:=healthcheck-demo/python-agent:local}" \
        "$DOCKER_DIR/images/python-agent.Dockerfile" "$STAGE/python-agent"
    export PY_AGENT_IMAGE
}

# agent-py's Redis user and password (a Compose secret), added after render_secrets: the user
# may write only its own records, like the other agents' users in config/redis-users.acl.in.
render_python_agent_secret() {
    local file="$SECRETS_DIR/redis_agent-py" hash
    if [[ ! -s "$file" ]]; then
        printf '%s%s' "${PASSWORD_PREFIX:-}" "$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')" >"$file"
    fi
    chmod 644 "$file"
    hash=$(sha256sum <"$file" | cut -d' ' -f1)
    printf 'user agent-py on #%s resetchannels ~ready-signal:demo:agent-py:* ~ready-signal:demo:agents ~ready-signal:demo:epoch -@all +ping +auth +hello +select +evalsha +eval +script|load +hmget +hset +pexpire +zadd +zremrangebyscore +zrevrange +zrem +del +get +set +time +hgetall +pttl +zrange\n' \
        "$hash" >>"$SECRETS_DIR/redis_users.acl"
}
