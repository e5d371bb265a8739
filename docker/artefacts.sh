# The installable artefacts' checks, on images built already (docker/lib.sh's prepare, or
# build_images, build_python_agent_image and a WHEEL from build_binaries): sourced by
# docker/e2e-artefacts.sh (alone, with the size table) and by docker/e2e.sh (in CI, where the
# images exist already, so the checks cost seconds). Needs lib.sh's helpers, PROJECT,
# HEALTHCHECK_IMAGE, PY_AGENT_IMAGE and WHEEL; `artefact_ok` says each check passed.
# - "the binaries in any image": an image built FROM another one (the agent-py image) with
#   `COPY --from=<healthcheck image> /healthcheck /ready-signal /healthcheck-sidecar /usr/local/bin/`,
#   each binary run in it;
# - docker/python-wheel.Dockerfile's last stage, as written, on the stand-in for
#   python:3.12-slim (Debian's python3 and pip, docker/images/python-agent.sh): pip installs the
#   wheel, the package publishes and the copied probe reads its record;
# - `healthcheck install /hc` run from the healthcheck image into a volume: all three binaries.
# shellcheck shell=bash

ARTEFACT_ANY="healthcheck-demo/any-image:${PROJECT}"
ARTEFACT_PYWHEEL="healthcheck-demo/python-wheel:${PROJECT}"
ARTEFACT_VOLUME="${PROJECT}-hc"

# Removes what the checks made (the base stand-in stays, like every image build_image keeps).
artefacts_cleanup() {
    docker volume rm "$ARTEFACT_VOLUME" >/dev/null 2>&1 || true
    docker image rm "$ARTEFACT_ANY" "$ARTEFACT_PYWHEEL" >/dev/null 2>&1 || true
}

# All three; docker/e2e.sh runs only the last two (the first repeats what they show, for ten
# seconds more in CI).
check_artefacts() {
    check_any_image
    check_python_wheel_stage
    check_install
}

check_any_image() {
    local any=$ARTEFACT_ANY out bin
    say "the binaries in any image: FROM $PY_AGENT_IMAGE, COPY --from=$HEALTHCHECK_IMAGE"
    mkdir -p "$STAGE/any"
    printf 'FROM %s AS healthcheck\nFROM %s\nCOPY --from=healthcheck /healthcheck /ready-signal /healthcheck-sidecar /usr/local/bin/\n' \
        "$HEALTHCHECK_IMAGE" "$PY_AGENT_IMAGE" >"$STAGE/any/Dockerfile"
    build_image "$any" "$STAGE/any/Dockerfile" "$STAGE/any"
    for bin in healthcheck ready-signal healthcheck-sidecar; do
        out=$(docker run --rm --entrypoint "/usr/local/bin/$bin" "$any" --version 2>&1) \
            || die "$bin --version failed in the derived image: $out"
        artefact_ok "$bin runs in an image built FROM another: $out"
    done
    out=$(docker run --rm --entrypoint /usr/bin/python3 "$any" -c 'import ready_signal; print(ready_signal.DEFAULT_STALL_AFTER)') \
        || die "the derived image's python cannot import ready_signal: $out"
    artefact_ok "the derived image keeps its own python and the ready_signal package (stall_after default $out s)"
}

check_python_wheel_stage() {
    local pywheel=$ARTEFACT_PYWHEEL out
    say "docker/python-wheel.Dockerfile's last stage, as written, on the python:3.12-slim stand-in"
    # Its wheel stage compiles the crate in release for minutes, once more: docker/e2e-source-build.sh
    # builds the whole file (outside CI); here the wheel built on the host stands in for it, in a
    # stage of the same name. Everything from the last FROM on is the documented file's text:
    # pip install of the wheel, the probe and the CLI copied in.
    build_python_base_image
    rm -rf "$STAGE/pywheel" && mkdir -p "$STAGE/pywheel/wheels"
    cp "$WHEEL" "$STAGE/pywheel/wheels/"
    {
        printf 'ARG PYTHON_IMAGE\nARG HEALTHCHECK_IMAGE\nFROM ${HEALTHCHECK_IMAGE} AS healthcheck\n'
        printf 'FROM scratch AS wheel\nCOPY wheels /wheels\n'
        awk '/^FROM \$\{PYTHON_IMAGE\}$/ { last = NR } { line[NR] = $0 } END { for (i = last; i <= NR; i++) print line[i] }' \
            "$DOCKER_DIR/python-wheel.Dockerfile"
    } >"$STAGE/pywheel/Dockerfile"
    grep -q '^RUN pip install' "$STAGE/pywheel/Dockerfile" || die "no pip install in python-wheel.Dockerfile's last stage"
    docker build --quiet --build-arg "PYTHON_IMAGE=$PYTHON_BASE_IMAGE" --build-arg "HEALTHCHECK_IMAGE=$HEALTHCHECK_IMAGE" \
        --label "org.healthcheck.demo.project=$PROJECT" -t "$pywheel" "$STAGE/pywheel" >"$STAGE/pywheel.log" 2>&1 \
        || { cat "$STAGE/pywheel.log" >&2; die "docker/python-wheel.Dockerfile's last stage did not build"; }
    # The installed package publishes a record (a file; the image runs as its unprivileged user)
    # and the copied probe reads it back: the package and the binaries work together.
    out=$(docker run --rm --tmpfs /tmp:mode=1777 -e READY_SIGNAL_DIR=/tmp/rs --entrypoint /usr/bin/python3 \
        "$pywheel" -c "$ARTEFACT_PY_CHECK" 2>&1) \
        || die "the image from python-wheel.Dockerfile's last stage does not work: $out"
    [[ "$out" == */usr/local/lib/python3*/dist-packages/ready_signal/* ]] \
        || die "ready_signal not installed by pip into site-packages: $out"
    artefact_ok "pip installed the wheel into the stand-in python image; the package published and the copied probe read it: $(tr '\n' ' ' <<<"$out")"
}

check_install() {
    local volume=$ARTEFACT_VOLUME out bin
    say "healthcheck install /hc into a volume"
    docker volume create "$volume" >/dev/null
    out=$(docker run --rm --user 0 -v "$volume:/hc" "$HEALTHCHECK_IMAGE" install /hc)
    for bin in healthcheck ready-signal healthcheck-sidecar; do
        [[ "$out" == *"/hc/$bin"* ]] || die "install did not copy $bin: $out"
    done
    docker run --rm -v "$volume:/hc:ro" --entrypoint /hc/healthcheck-sidecar "$HEALTHCHECK_IMAGE" --version >/dev/null \
        || die "the installed sidecar does not run"
    artefact_ok "$out"
}

# Run in the image built from python-wheel.Dockerfile: publish ready, let the copied probe read
# the record file, print where the package was installed, the probe's line and the CLI's version.
ARTEFACT_PY_CHECK='
import subprocess, sys, time, ready_signal
with ready_signal.ReadySignal("wheel-check", dir="/tmp/rs", replica="r1") as s:
    s.ready()
    time.sleep(1.5)
    probe = subprocess.run(["/usr/local/bin/healthcheck", "ready://wheel-check?replica=r1&store=file"],
                           capture_output=True, text=True)
cli = subprocess.run(["/usr/local/bin/ready-signal", "--version"], capture_output=True, text=True)
print(ready_signal.__file__)
print(probe.stdout.strip())
print(cli.stdout.strip())
sys.exit(probe.returncode)
'
