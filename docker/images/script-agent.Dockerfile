# An ordinary shell-script worker that knows nothing of ready signals: busybox and worker.sh.
# docker/compose.yml wraps it with `ready-signal run` from the injected /hc volume.
FROM scratch
COPY rootfs/ /
USER 10001:10001
ENTRYPOINT ["/bin/sh", "/app/worker.sh"]
