# The stand-in for python:3.12-slim on which docker/e2e-source-build.sh builds images whose last
# stage fetches from PyPI (the example worker's `pip install redis`): Debian 12's python3 and pip
# on the Debian stand-in (docker/images/rust-standin.sh), `python` included, pip free to install
# system-wide as in the official image. Only for machines without a registry.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-pip python-is-python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* /usr/lib/python3*/EXTERNALLY-MANAGED
ENV LANG=C.UTF-8
CMD ["python3"]
