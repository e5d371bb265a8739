# A stand-in for an official image that cannot be pulled here (no registry): a scratch image
# holding one Debian-packaged server binary and the shared libraries it links, assembled on the
# host by docker/lib.sh. Not a replacement for the official images; only for this machine.
FROM scratch
COPY rootfs/ /
