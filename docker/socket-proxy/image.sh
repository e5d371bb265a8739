# The socket proxy's image (SOCKET_PROXY_IMAGE, default healthcheck-demo/socket-proxy:local):
# Debian's haproxy assembled into a scratch root like the redis and nats stand-ins, with this
# directory's haproxy.cfg. Sourced by docker/lib.sh; needs its STAGE, DOCKER_DIR, build_image,
# assemble_rootfs, say and die.
# shellcheck shell=bash

build_socket_proxy_image() {
    local haproxy rootfs="$STAGE/socket-proxy/rootfs"
    haproxy=$(command -v haproxy || ls /usr/sbin/haproxy 2>/dev/null || true)
    [[ -n "$haproxy" ]] || die "haproxy is not installed: apt-get install -y haproxy"
    say "assembling the socket proxy image from Debian's $("$haproxy" -v | head -n 1 | awk '{ print $1, $3 }')"
    rm -rf "$STAGE/socket-proxy" && mkdir -p "$rootfs/usr/local/etc/haproxy"
    assemble_rootfs "$haproxy" "$rootfs" /usr/sbin/haproxy
    cp "$DOCKER_DIR/socket-proxy/haproxy.cfg" "$rootfs/usr/local/etc/haproxy/haproxy.cfg"
    "$haproxy" -c -q -f "$rootfs/usr/local/etc/haproxy/haproxy.cfg" \
        || die "haproxy -c rejects docker/socket-proxy/haproxy.cfg"
    build_image "${SOCKET_PROXY_IMAGE:=healthcheck-demo/socket-proxy:local}" \
        "$DOCKER_DIR/socket-proxy/Dockerfile" "$STAGE/socket-proxy"
    export SOCKET_PROXY_IMAGE
}
