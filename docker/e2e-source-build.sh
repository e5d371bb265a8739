#!/usr/bin/env bash
# The multi-stage Dockerfiles built from source, as a user builds them, with nothing stubbed:
#   docker build -f docker/healthcheck.Dockerfile .      (Rust stage: the three static binaries)
#   docker build -f docker/python-wheel.Dockerfile .     (Rust stage: the wheel; then pip install)
#   examples/compose-v2/worker/Dockerfile                (the wheel from the sdist; pip install redis)
# Their base images come from stand-ins, because no registry can be pulled from here
# (docker/images/rust-standin.sh: Debian 12 by debootstrap, then Rust by the official image's
# recipe and Debian's python3 for python:3.12-slim). Their stages fetch crates from crates.io,
# maturin and redis from PyPI and Debian packages, as they would anywhere.
# Then the images are checked as docker/artefacts.sh checks the host-built ones: every binary
# runs in scratch, `healthcheck install` copies all three, pip installed the wheel, the package
# publishes and the copied probe reads its record; and the wheel was built with the `wheel`
# profile its pyproject.toml names (unwinding, so a Rust panic is a Python exception).
#
# Not part of tests/run.sh: it compiles the whole dependency graph four times with the release
# profiles, 12 minutes on two cores from nothing. Prints each phase's duration and the images' sizes.
#
#   bash docker/e2e-source-build.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROJECT=${PROJECT:-hcsrc$$}
# shellcheck source=docker/lib.sh
source "$ROOT/docker/lib.sh"
# shellcheck source=docker/artefacts.sh
source "$ROOT/docker/artefacts.sh"
# shellcheck source=docker/images/rust-standin.sh
source "$DOCKER_DIR/images/rust-standin.sh"
artefact_ok() { say "ok: $*"; }

SRC_HEALTHCHECK="healthcheck-demo/healthcheck-src:$PROJECT"
SRC_WHEEL_STAGE="healthcheck-demo/python-wheel-stage-src:$PROJECT"
SRC_PYTHON="healthcheck-demo/python-wheel-src:$PROJECT"
SRC_WORKER="healthcheck-demo/worker-src:$PROJECT"
# The build stages this script leaves behind as untagged images (the classic builder keeps
# them, gigabytes each), told from any that were there before.
DANGLING_BEFORE=
cleanup() {
    artefacts_cleanup
    docker image rm "$SRC_HEALTHCHECK" "$SRC_WHEEL_STAGE" "$SRC_PYTHON" "$SRC_WORKER" >/dev/null 2>&1 || true
    local image
    if [[ -n "$DANGLING_BEFORE" ]]; then # (empty: stopped before it knew which were there)
        for image in $(docker images -q --filter dangling=true); do
            [[ "$DANGLING_BEFORE" == *" $image "* ]] || docker image rm "$image" >/dev/null 2>&1 || true
        done
    fi
    rm -rf "$STAGE"
}
trap cleanup EXIT

# docker build of the checkout (.dockerignore keeps target/ and .git out), its log in STAGE.
build_from_source() { # log docker-build-args...
    build_in "$ROOT" "$@"
}

build_in() { # context log docker-build-args...
    local context=$1 log="$STAGE/$2"
    shift 2
    docker build --label "org.healthcheck.demo.project=$PROJECT" "$@" "$context" >"$log" 2>&1 \
        || { tail -n 40 "$log" >&2; die "docker build $* failed (log: $log)"; }
}

require_docker
DANGLING_BEFORE=" $(docker images -q --filter dangling=true | tr '\n' ' ') "
mkdir -p "$STAGE"
phase "the debian:bookworm-slim stand-in (debootstrap)" build_debian_standin
phase "the rust:1-slim-bookworm stand-in (rustup, as the official image)" build_rust_standin
phase "the python:3.12-slim stand-in (Debian's python3 and pip)" build_python_standin

phase "docker/healthcheck.Dockerfile from source" build_from_source healthcheck.log \
    -f "$DOCKER_DIR/healthcheck.Dockerfile" --build-arg "RUST_IMAGE=$RUST_STANDIN" -t "$SRC_HEALTHCHECK"
for bin in healthcheck ready-signal healthcheck-sidecar; do
    # The final stage is scratch: a binary that runs there links nothing.
    out=$(docker run --rm --entrypoint "/$bin" "$SRC_HEALTHCHECK" --version 2>&1) \
        || die "/$bin from docker/healthcheck.Dockerfile does not run in scratch: $out"
    artefact_ok "/$bin built from source runs in scratch: $out"
done
HEALTHCHECK_IMAGE=$SRC_HEALTHCHECK check_install

phase "docker/python-wheel.Dockerfile's wheel stage from source" build_from_source wheel-stage.log \
    -f "$DOCKER_DIR/python-wheel.Dockerfile" --target wheel \
    --build-arg "RUST_IMAGE=$RUST_STANDIN" --build-arg "HEALTHCHECK_IMAGE=$SRC_HEALTHCHECK" -t "$SRC_WHEEL_STAGE"
# Cargo names a custom profile's output directory after it.
docker run --rm --entrypoint /bin/sh "$SRC_WHEEL_STAGE" -c 'test -d /src/target/wheel && ! test -d /src/target/release' \
    || die "pip wheel did not build with the wheel profile that ready-signal/python/pyproject.toml names"
artefact_ok "pip wheel built ready_signal with the \`wheel\` profile: $(docker run --rm --entrypoint /bin/sh "$SRC_WHEEL_STAGE" -c 'ls /wheels')"
phase "docker/python-wheel.Dockerfile from source" build_from_source python.log \
    -f "$DOCKER_DIR/python-wheel.Dockerfile" --build-arg "RUST_IMAGE=$RUST_STANDIN" \
    --build-arg "PYTHON_IMAGE=$PYTHON_STANDIN" --build-arg "HEALTHCHECK_IMAGE=$SRC_HEALTHCHECK" -t "$SRC_PYTHON"
out=$(docker run --rm --tmpfs /tmp:mode=1777 -e READY_SIGNAL_DIR=/tmp/rs --entrypoint /usr/bin/python3 \
    "$SRC_PYTHON" -c "$ARTEFACT_PY_CHECK" 2>&1) \
    || die "the image from docker/python-wheel.Dockerfile does not work: $out"
artefact_ok "pip installed the wheel built from source; the package published and the copied probe read it: $(tr '\n' ' ' <<<"$out")"

# The Compose v2 example's worker, from the sdist, as its Dockerfile's header says.
mkdir -p "$STAGE/worker"
cp "$ROOT"/examples/compose-v2/worker/* "$STAGE/worker/"
/usr/bin/python3 -m venv "$STAGE/venv" && "$STAGE/venv/bin/pip" install -q --disable-pip-version-check "maturin>=1.5,<2" \
    || die "could not install maturin into a virtualenv"
(cd "$ROOT/ready-signal/python" && "$STAGE/venv/bin/maturin" sdist --out "$STAGE/worker") >"$STAGE/sdist.log" 2>&1 \
    || { cat "$STAGE/sdist.log" >&2; die "maturin sdist failed"; }
phase "examples/compose-v2/worker/Dockerfile from the sdist" build_in "$STAGE/worker" worker.log \
    --build-arg "RUST_IMAGE=$RUST_STANDIN" --build-arg "PYTHON_IMAGE=$PYTHON_STANDIN" \
    --build-arg "HEALTHCHECK_IMAGE=$SRC_HEALTHCHECK" -t "$SRC_WORKER"
out=$(docker run --rm --tmpfs /tmp:mode=1777 -e READY_SIGNAL_DIR=/tmp/rs --entrypoint python \
    "$SRC_WORKER" -c "import redis; $ARTEFACT_PY_CHECK" 2>&1) \
    || die "the example worker's image does not work: $out"
artefact_ok "the example worker's image: redis and ready_signal import, the package published and the probe read it: $(tr '\n' ' ' <<<"$out")"

printf '\n%-56s %12s\n' "image" "bytes"
for image in "$SRC_HEALTHCHECK" "$SRC_PYTHON" "$SRC_WORKER" "$PYTHON_STANDIN" "$RUST_STANDIN"; do
    printf '%-56s %12s\n' "$image" "$(docker image inspect -f '{{.Size}}' "$image")"
done
say "the three Dockerfiles build from source and their images work"
