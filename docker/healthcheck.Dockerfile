# The healthcheck image from source: a Rust stage builds the three static binaries (musl), the
# final stage is scratch with nothing else. The result is what docker/Dockerfile makes from
# host-built binaries (docker/demo.sh), under the tag you choose:
#
#   docker build -t healthcheck:1 -f docker/healthcheck.Dockerfile .
#
# Then, in any image (scratch included), copy what it needs:
#   COPY --from=healthcheck:1 /healthcheck /ready-signal /usr/local/bin/
# or fill a volume for images you do not build (`healthcheck install DIR` copies every binary
# beside it: the probe, the CLI and the sidecar):
#   services: { hc-install: { image: healthcheck:1, user: "0", command: [install, /hc], volumes: [hc:/hc] } }
#
# The build stage needs crates.io (cargo) and, for the musl target, Debian's mirror and
# static.rust-lang.org. It took 5 minutes on two cores here: the release profile optimises each
# binary whole (fat LTO). RUST_IMAGE may be any Debian-based Rust image of 1.89 or later (the
# workspace's rust-version).
ARG RUST_IMAGE=rust:1-slim-bookworm

FROM ${RUST_IMAGE} AS build
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
# Two builds: built together, Cargo would unify the sidecar's dependency features (a
# multi-thread runtime, an HTTP server) into the probe, and the probe must stay small.
RUN cargo build --release --locked --target x86_64-unknown-linux-musl -p healthcheck -p ready-signal-cli \
 && cargo build --release --locked --target x86_64-unknown-linux-musl -p healthcheck-sidecar \
 && mkdir /out \
 && cd target/x86_64-unknown-linux-musl/release && cp healthcheck ready-signal healthcheck-sidecar /out/

FROM scratch
COPY --from=build /out/ /
USER 65534:65534
ENTRYPOINT ["/healthcheck"]
