# The example Python agent (ready-signal/python/examples/agent.py) with the ready_signal wheel, on
# Debian's python3 copied from the host into a scratch root (no registry image can be pulled
# here): the interpreter, the shared libraries it and its stdlib extensions link, the stdlib,
# the unpacked wheel. Assembled by docker/images/python-agent.sh.
FROM scratch
COPY rootfs/ /
ENV PYTHONPATH=/app/lib PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 LANG=C.UTF-8
USER 10001:10001
ENTRYPOINT ["/usr/bin/python3", "/app/agent.py"]
