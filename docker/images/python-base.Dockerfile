# The stand-in for python:3.12-slim, which cannot be pulled here (no registry): Debian's python3
# with its stdlib and libraries, pip and a static busybox shell, in a scratch root, assembled on
# the host by docker/images/python-agent.sh (build_python_base_image). Only for this machine.
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1
CMD ["/usr/bin/python3"]
