# The agent-py image: Debian's python3 and the ready_signal wheel in a scratch image, assembled
# on the host like the redis and nats stand-ins (docker/lib.sh's assemble_rootfs), because no
# registry image can be pulled here. Sourced by docker/lib.sh; needs its STAGE, DOCKER_DIR,
# build_image and assemble_rootfs. PY_AGENT_IMAGE names the image, PY_WHEEL_PROFILE picks the
# wheel's build profile (dev by default, as the tests build it; release for a smaller, faster one).
# shellcheck shell=bash

build_python_agent_image() { # [wheel: built already by build_binaries, beside the static binaries]
    local rootfs="$STAGE/python-agent/rootfs" wheel=${1:-} so lib
    if [[ -z "$wheel" ]]; then
        wheel=$(bash "$ROOT/ready-signal/python/build-wheel.sh") || die "building the ready_signal wheel failed"
    fi
    rm -rf "$STAGE/python-agent" && mkdir -p "$rootfs/app/lib"
    assemble_python_rootfs "$rootfs" "agent-py" "$(basename "$wheel")"
    # The wheel, unpacked where PYTHONPATH points (a wheel is a zip laid out for site-packages),
    # and the libraries its extension links that the interpreter's did not bring. Without the
    # SBOM that maturin writes into every build (a random serial number and the time of the
    # build) and the RECORD that hashes it: importing needs neither, and with them an unchanged
    # package would make a new image on every run.
    /usr/bin/python3 - "$wheel" "$rootfs/app/lib" <<'PY'
import re, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as whl:
    whl.extractall(sys.argv[2], [n for n in whl.namelist()
                                 if not re.fullmatch(r"[^/]+\.dist-info/(sboms/.*|RECORD)", n)])
PY
    for so in "$rootfs"/app/lib/ready_signal/*.so; do
        for lib in $( (ldd "$so" 2>/dev/null || true) | grep -o '/[^ ]*' || true); do
            [[ -e "$rootfs$lib" ]] || { mkdir -p "$rootfs$(dirname "$lib")" && cp -L "$lib" "$rootfs$lib"; }
        done
    done
    cp "$ROOT/ready-signal/python/examples/agent.py" "$rootfs/app/agent.py"
    build_image "${PY_AGENT_IMAGE:=healthcheck-demo/python-agent:local}" \
        "$DOCKER_DIR/images/python-agent.Dockerfile" "$STAGE/python-agent"
    export PY_AGENT_IMAGE
}

# Debian's python3 into a root file system: the interpreter, the stdlib without what an agent
# never imports (tests, IDLE, Tk, pip's bootstrap), the compiled stdlib modules (lib-dynload)
# and every shared library they link (libffi, libssl, libgcc_s, ...), and a writable /tmp.
assemble_python_rootfs() { # rootfs what-for [what it holds besides]
    local python=/usr/bin/python3 rootfs=$1 version stdlib so lib
    [[ -x "$python" ]] || die "$python is missing: apt-get install -y python3 python3-venv"
    version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    stdlib=/usr/lib/python$version
    say "  assembling the $2 image from Debian's python$version${3:+ and $3}"
    assemble_rootfs "$(readlink -f "$python")" "$rootfs" /usr/bin/python3
    mkdir -p "$rootfs$stdlib"
    # (EXTERNALLY-MANAGED: Debian's mark that pip must not touch its python; an image's python
    # is its own, as in the official python images.)
    tar -C "$stdlib" --exclude=./test --exclude=./idlelib --exclude=./tkinter \
        --exclude=./turtledemo --exclude=./ensurepip --exclude=./lib2to3 --exclude='__pycache__' \
        --exclude=./EXTERNALLY-MANAGED -cf - . | tar -C "$rootfs$stdlib" -xf -
    for so in "$stdlib"/lib-dynload/*.so; do
        # (`|| true`: a module that links nothing new must not stop a `set -e` caller.)
        for lib in $( (ldd "$so" 2>/dev/null || true) | grep -o '/[^ ]*' || true); do
            [[ -e "$rootfs$lib" ]] || { mkdir -p "$rootfs$(dirname "$lib")" && cp -L "$lib" "$rootfs$lib"; }
        done
    done
    mkdir -p "$rootfs/tmp" && chmod 1777 "$rootfs/tmp"
}

# The stand-in for python:3.12-slim (PYTHON_BASE_IMAGE, default
# healthcheck-demo/python-base:local), which cannot be pulled here: Debian's python3 as above,
# pip (Debian's own pip wheel, unpacked into the image's site-packages, with a `pip` command) and
# a static busybox for the shell that a Dockerfile's RUN lines need. What
# docker/python-wheel.Dockerfile's last stage is built on by docker/e2e-artefacts.sh.
build_python_base_image() {
    local rootfs="$STAGE/python-base/rootfs" pipwheel version busybox applet lib
    pipwheel=$(ls /usr/share/python-wheels/pip-*.whl 2>/dev/null | tail -n 1)
    [[ -n "$pipwheel" ]] || die "Debian's pip wheel is missing: apt-get install -y python3-pip-whl"
    busybox=$(command -v busybox || true)
    [[ -n "$busybox" ]] || die "busybox is missing: apt-get install -y busybox-static"
    rm -rf "$STAGE/python-base" && mkdir -p "$rootfs/bin" "$rootfs/usr/local/bin"
    assemble_python_rootfs "$rootfs" "python base" "$(basename "$pipwheel")"
    version=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    /usr/bin/python3 -m zipfile -e "$pipwheel" "$rootfs/usr/local/lib/python$version/dist-packages"
    printf '#!/usr/bin/python3\nimport sys\nfrom pip._internal.cli.main import main\nsys.exit(main())\n' \
        >"$rootfs/usr/local/bin/pip"
    chmod 755 "$rootfs/usr/local/bin/pip"
    # What every Debian base has and a manylinux wheel may link (the ready_signal extension
    # links libgcc_s, for unwinding), though the interpreter itself does not.
    for lib in $(/sbin/ldconfig -p | awk '/libgcc_s\.so\.1 .*x86-64/ { print $NF }'); do
        mkdir -p "$rootfs$(dirname "$lib")" && cp -L "$lib" "$rootfs$lib"
    done
    cp "$busybox" "$rootfs/bin/busybox"
    for applet in sh rm ls cat mkdir; do ln -s busybox "$rootfs/bin/$applet"; done
    build_image "${PYTHON_BASE_IMAGE:=healthcheck-demo/python-base:local}" \
        "$DOCKER_DIR/images/python-base.Dockerfile" "$STAGE/python-base"
    export PYTHON_BASE_IMAGE
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
    printf 'user agent-py on #%s resetchannels ~ready-signal:demo:agent-py:* ~ready-signal:demo:agents ~ready-signal:demo:epoch ~ready-signal:demo:due -@all +ping +auth +hello +select +evalsha +eval +script|load +hmget +hset +pexpire +zadd +zremrangebyscore +zrevrange +zrem +del +get +set +time +hgetall +pttl +zrange\n' \
        "$hash" >>"$SECRETS_DIR/redis_users.acl"
}
