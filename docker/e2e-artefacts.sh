#!/usr/bin/env bash
# The installable artefacts on the real Docker engine, and their sizes:
# - the healthcheck image (docker/Dockerfile: probe, CLI, sidecar in scratch);
# - "the binaries in any image": an image built FROM another one (the agent-py image: Debian's
#   python3 in a scratch root, standing in for python:3.12-slim, which cannot be pulled here) with
#   `COPY --from=<healthcheck image> /healthcheck /ready-signal /healthcheck-sidecar /usr/local/bin/`,
#   each binary run in it;
# - `healthcheck install /hc` run from the healthcheck image into a volume: all three binaries;
# - the socket proxy image.
# Prints a size table (the figures of BENCHMARKS.md, "Artefact sizes").
#
#   bash docker/e2e-artefacts.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROJECT=${PROJECT:-hcart$$}
SECRETS_DIR=$(mktemp -d)
export SECRETS_DIR
# shellcheck source=docker/lib.sh
source "$ROOT/docker/lib.sh"
volume="${PROJECT}-hc" any="healthcheck-demo/any-image:${PROJECT}"
cleanup() {
    docker volume rm "$volume" >/dev/null 2>&1 || true
    docker image rm "$any" >/dev/null 2>&1 || true
    rm -rf "$SECRETS_DIR"
}
trap cleanup EXIT

require_docker
build_binaries
build_images
build_python_agent_image
build_socket_proxy_image

say "the binaries in any image: FROM $PY_AGENT_IMAGE, COPY --from=$HEALTHCHECK_IMAGE"
mkdir -p "$STAGE/any"
cat >"$STAGE/any/Dockerfile" <<DOCKERFILE
FROM $HEALTHCHECK_IMAGE AS healthcheck
FROM $PY_AGENT_IMAGE
COPY --from=healthcheck /healthcheck /ready-signal /healthcheck-sidecar /usr/local/bin/
DOCKERFILE
build_image "$any" "$STAGE/any/Dockerfile" "$STAGE/any"
for bin in healthcheck ready-signal healthcheck-sidecar; do
    out=$(docker run --rm --entrypoint "/usr/local/bin/$bin" "$any" --version 2>&1) \
        || die "$bin --version failed in the derived image: $out"
    say "ok: $bin runs in an image built FROM another: $out"
done
out=$(docker run --rm --entrypoint /usr/bin/python3 "$any" -c 'import ready_signal; print(ready_signal.DEFAULT_STALL_AFTER)') \
    || die "the derived image's python cannot import ready_signal: $out"
say "ok: the derived image keeps its own python and the ready_signal package (stall_after default $out s)"

say "healthcheck install /hc into a volume"
docker volume create "$volume" >/dev/null
out=$(docker run --rm --user 0 -v "$volume:/hc" "$HEALTHCHECK_IMAGE" install /hc)
for bin in healthcheck ready-signal healthcheck-sidecar; do
    [[ "$out" == *"/hc/$bin"* ]] || die "install did not copy $bin: $out"
done
docker run --rm -v "$volume:/hc:ro" --entrypoint /hc/healthcheck-sidecar "$HEALTHCHECK_IMAGE" --version >/dev/null \
    || die "the installed sidecar does not run"
say "ok: $out"

printf '\n%-44s %12s\n' "artefact" "bytes"
size() { docker image inspect -f '{{.Size}}' "$1"; }
printf '%-44s %12s\n' "healthcheck image (3 binaries, scratch)" "$(size "$HEALTHCHECK_IMAGE")"
for bin in healthcheck ready-signal healthcheck-sidecar; do
    printf '%-44s %12s\n' "  $bin (musl, release)" "$(stat -c %s "$RELEASE/$bin")"
done
printf '%-44s %12s\n' "agent-py image (Debian python3 + wheel)" "$(size "$PY_AGENT_IMAGE")"
printf '%-44s %12s\n' "  the same with the 3 binaries added" "$(size "$any")"
printf '%-44s %12s\n' "socket proxy image (Debian haproxy)" "$(size "$SOCKET_PROXY_IMAGE")"
wheel=$(ls "$TARGET_DIR"/wheels/"${PY_WHEEL_PROFILE:-dev}"/ready_signal-*.whl)
printf '%-44s %12s\n' "ready_signal wheel ($(basename "$wheel"), ${PY_WHEEL_PROFILE:-dev})" "$(stat -c %s "$wheel")"
