# Stand-ins for debian:bookworm-slim and rust:1-slim-bookworm, which cannot be pulled here (no
# registry), so that docker/healthcheck.Dockerfile and docker/python-wheel.Dockerfile build from
# source as written (docker/e2e-source-build.sh). Only for machines without a registry:
# - the Debian one is debootstrap's minimal Debian 12 (Debian's mirror, as the host's apt
#   reaches it), imported as an image;
# - the Rust one is built FROM it by the official rust image's own recipe (rustup-init from
#   static.rust-lang.org, the minimal profile), at the host's rustc version.
# A host whose outgoing TLS is re-signed by a CA of its own (this machine's egress proxy) trusts
# that CA; the stand-in Debian is given the same CAs (/usr/local/share/ca-certificates, where
# `update-ca-certificates` takes them when a stage installs ca-certificates), or no container
# could fetch a crate. A machine without such a CA adds none.
# Sourced by docker/lib.sh's users; needs its STAGE, DOCKER_DIR, say and die.
# shellcheck shell=bash

DEBIAN_STANDIN=${DEBIAN_STANDIN:-healthcheck-standin/debian:bookworm-slim}
RUST_STANDIN=${RUST_STANDIN:-healthcheck-standin/rust:1-slim-bookworm}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

# The CAs this host trusts beyond Debian's own set: certificates an administrator added
# (/usr/local/share/ca-certificates) and CA certificates placed straight into /etc/ssl/certs (the
# package's own entries there are links into /usr/share/ca-certificates; a server's own
# certificate there, such as ssl-cert's snakeoil, is no CA and is left out). Each once.
host_extra_cas() {
    local f fingerprint seen=" "
    for f in /usr/local/share/ca-certificates/*.crt /etc/ssl/certs/*.pem; do
        [[ -f "$f" && ! -L "$f" ]] || continue
        [[ "$(openssl x509 -in "$f" -noout -ext basicConstraints 2>/dev/null)" == *"CA:TRUE"* ]] || continue
        fingerprint=$(openssl x509 -in "$f" -noout -fingerprint -sha256 2>/dev/null) || continue
        [[ "$seen" == *" $fingerprint "* ]] && continue
        seen+="$fingerprint "
        echo "$f"
    done
    return 0
}

build_debian_standin() {
    if docker image inspect "$DEBIAN_STANDIN" >/dev/null 2>&1; then
        say "  $DEBIAN_STANDIN is there already"
        return 0
    fi
    command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install -y debootstrap"
    local dir="$STAGE/debian-standin" ca
    rm -rf "$dir" && mkdir -p "$dir"
    debootstrap --variant=minbase bookworm "$dir/rootfs" "$DEBIAN_MIRROR" >"$dir/debootstrap.log" 2>&1 \
        || { tail -n 20 "$dir/debootstrap.log" >&2; die "debootstrap of Debian 12 from $DEBIAN_MIRROR failed"; }
    mkdir -p "$dir/rootfs/usr/local/share/ca-certificates"
    for ca in $(host_extra_cas); do
        say "  the stand-in trusts this host's CA $ca"
        cp "$ca" "$dir/rootfs/usr/local/share/ca-certificates/host-$(basename "${ca%.*}").crt"
    done
    # As the official image: no package lists, no apt caches.
    rm -rf "$dir/rootfs/var/lib/apt/lists/"* "$dir/rootfs/var/cache/apt/"*.bin
    tar -C "$dir/rootfs" --numeric-owner -cf - . \
        | docker import --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            - "$DEBIAN_STANDIN" >/dev/null \
        || die "docker import of the Debian stand-in failed"
    rm -rf "$dir"
}

build_rust_standin() {
    local version
    version=$(rustc --version | cut -d' ' -f2)
    mkdir -p "$STAGE/rust-standin"
    docker build --quiet --build-arg "DEBIAN_IMAGE=$DEBIAN_STANDIN" --build-arg "RUST_VERSION=$version" \
        -t "$RUST_STANDIN" -f "$DOCKER_DIR/images/rust-standin.Dockerfile" "$STAGE/rust-standin" \
        >"$STAGE/rust-standin.log" 2>&1 \
        || { tail -n 30 "$STAGE/rust-standin.log" >&2; die "the rust stand-in did not build"; }
    say "  $RUST_STANDIN: rustc $version"
}

PYTHON_STANDIN=${PYTHON_STANDIN:-healthcheck-standin/python:3-slim-bookworm}

build_python_standin() {
    mkdir -p "$STAGE/python-standin"
    docker build --quiet --build-arg "DEBIAN_IMAGE=$DEBIAN_STANDIN" -t "$PYTHON_STANDIN" \
        -f "$DOCKER_DIR/images/python-standin.Dockerfile" "$STAGE/python-standin" >"$STAGE/python-standin.log" 2>&1 \
        || { tail -n 30 "$STAGE/python-standin.log" >&2; die "the python stand-in did not build"; }
    say "  $PYTHON_STANDIN: $(docker run --rm "$PYTHON_STANDIN" python --version 2>&1)"
}
