#!/usr/bin/env bash
# The installable artefacts on the real Docker engine, and their sizes:
# - the healthcheck image (docker/Dockerfile: probe, CLI, sidecar in scratch);
# - "the binaries in any image": an image built FROM another one (the agent-py image: Debian's
#   python3 in a scratch root, standing in for python:3.12-slim, which cannot be pulled here) with
#   `COPY --from=<healthcheck image> /healthcheck /ready-signal /healthcheck-sidecar /usr/local/bin/`,
#   each binary run in it;
# - `healthcheck install /hc` run from the healthcheck image into a volume: all three binaries;
# - the socket proxy image;
# - docker/python-wheel.Dockerfile's last stage on a stand-in for python:3.12-slim.
# The checks are docker/artefacts.sh's (docker/e2e.sh runs them too, in CI).
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
# shellcheck source=docker/artefacts.sh
source "$ROOT/docker/artefacts.sh"
artefact_ok() { say "ok: $*"; }
cleanup() {
    artefacts_cleanup
    rm -rf "$SECRETS_DIR"
}
trap cleanup EXIT

require_docker
build_binaries
build_images
build_python_agent_image "$WHEEL"
build_socket_proxy_image
check_artefacts

printf '\n%-44s %12s\n' "artefact" "bytes"
size() { docker image inspect -f '{{.Size}}' "$1"; }
printf '%-44s %12s\n' "healthcheck image (3 binaries, scratch)" "$(size "$HEALTHCHECK_IMAGE")"
for bin in healthcheck ready-signal healthcheck-sidecar; do
    printf '%-44s %12s\n' "  $bin (musl, $PROFILE profile)" "$(stat -c %s "$RELEASE/$bin")"
done
printf '%-44s %12s\n' "agent-py image (Debian python3 + wheel)" "$(size "$PY_AGENT_IMAGE")"
printf '%-44s %12s\n' "  the same with the 3 binaries added" "$(size "$ARTEFACT_ANY")"
printf '%-44s %12s\n' "socket proxy image (Debian haproxy)" "$(size "$SOCKET_PROXY_IMAGE")"
wheel=$(ls "$TARGET_DIR"/wheels/"${PY_WHEEL_PROFILE:-dev}"/ready_signal-*.whl)
printf '%-44s %12s\n' "ready_signal wheel ($(basename "$wheel"), ${PY_WHEEL_PROFILE:-dev})" "$(stat -c %s "$wheel")"
printf '%-44s %12s\n' "python base stand-in (Debian python3, pip)" "$(size "$PYTHON_BASE_IMAGE")"
printf '%-44s %12s\n' "  python-wheel.Dockerfile's last stage on it" "$(size "$ARTEFACT_PYWHEEL")"
