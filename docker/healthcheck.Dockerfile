# The healthcheck image from source, where a registry is at hand: a Rust stage builds the three
# static binaries (musl), the final stage is scratch with nothing else. The result is what
# docker/Dockerfile makes from host-built binaries (docker/demo.sh), under the tag you choose:
#
#   docker build -t healthcheck:1 -f docker/healthcheck.Dockerfile .
#
# Then, in any image (scratch included), copy what it needs:
#   COPY --from=healthcheck:1 /healthcheck /ready-signal /usr/local/bin/
# or fill a volume for images you do not build (`healthcheck install DIR` copies every binary
# beside it: the probe, the CLI and the sidecar):
#   services: { hc-install: { image: healthcheck:1, user: "0", command: [install, /hc], volumes: [hc:/hc] } }
ARG RUST_IMAGE=rust:1-alpine

FROM ${RUST_IMAGE} AS build
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY . .
# Two builds: built together, Cargo would unify the sidecar's dependency features (a
# multi-thread runtime, an HTTP server) into the probe, and the probe must stay small.
RUN cargo build --release --locked -p healthcheck -p ready-signal-cli \
 && cargo build --release --locked -p healthcheck-sidecar \
 && mkdir /out && cp target/release/healthcheck target/release/ready-signal target/release/healthcheck-sidecar /out/

FROM scratch
COPY --from=build /out/ /
USER 65534:65534
ENTRYPOINT ["/healthcheck"]
