# The stand-in for rust:1-slim-bookworm (docker/images/rust-standin.sh): the official image's
# recipe on the Debian stand-in. Only for machines without a registry.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
ARG RUST_VERSION
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates gcc libc6-dev wget; \
    wget -q https://static.rust-lang.org/rustup/dist/x86_64-unknown-linux-gnu/rustup-init; \
    chmod +x rustup-init; \
    ./rustup-init -y --no-modify-path --profile minimal --default-toolchain "$RUST_VERSION"; \
    rm rustup-init; \
    chmod -R a+w "$RUSTUP_HOME" "$CARGO_HOME"; \
    apt-get remove -y --auto-remove wget; \
    rm -rf /var/lib/apt/lists/*; \
    rustc --version
