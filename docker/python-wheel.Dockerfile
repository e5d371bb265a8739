# A Python agent image with the ready_signal package, for python:3.12-slim-style bases: the
# package compiles a Rust crate, so a first stage with a Rust toolchain builds the wheel and the
# final stage installs only the wheel (no compiler, no cargo in the image you ship).
#
#   docker build -t healthcheck:1 -f docker/healthcheck.Dockerfile .   (the probe and the CLI)
#   docker build -t my-agent -f docker/python-wheel.Dockerfile .       (from a checkout)
#
# PYTHON_IMAGE picks the base (any Debian- or Ubuntu-based CPython 3.9+ with pip, on glibc 2.36
# or later: the wheel stage is Debian 12's); the wheel is built once for every CPython 3.9+ of
# that platform (one stable-ABI wheel), with the `wheel` profile its pyproject.toml names. The
# wheel stage needs PyPI (maturin) and crates.io. Put your agent's own files and dependencies in
# the last stage. The probe and the CLI come from the healthcheck image.
ARG RUST_IMAGE=rust:1-slim-bookworm
ARG PYTHON_IMAGE=python:3.12-slim
ARG HEALTHCHECK_IMAGE=healthcheck:1

FROM ${HEALTHCHECK_IMAGE} AS healthcheck

FROM ${RUST_IMAGE} AS wheel
RUN apt-get update && apt-get install -y --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /venv
WORKDIR /src
# The whole checkout: the crate takes its dependency versions from the root Cargo.toml.
COPY . .
RUN /venv/bin/pip wheel --no-deps --wheel-dir /wheels ./ready-signal/python

FROM ${PYTHON_IMAGE}
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY --from=healthcheck /healthcheck /ready-signal /usr/local/bin/
# Your agent: COPY agent.py /app/ and CMD ["python", "/app/agent.py"].
USER 10001
