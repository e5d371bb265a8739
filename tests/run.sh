#!/usr/bin/env bash
# The project's test command (the README's, and what CI runs): installs what the tests need,
# builds every binary, validates the Kubernetes manifests, runs the whole test suite against real
# redis-server and nats-server processes (clusters and Sentinels too), then the end-to-end suite
# on the real Docker engine.
#
#   bash tests/run.sh              everything
#   bash tests/run.sh --no-docker  skip docker/e2e.sh (no Docker engine at hand)
#   HEALTHCHECK_NO_INSTALL=1 bash tests/run.sh   install nothing; print what is missing instead
set -euo pipefail
cd "$(dirname "$0")/.."

docker=1
for arg in "$@"; do
    case "$arg" in
        --no-docker) docker=0 ;;
        *) echo "usage: bash tests/run.sh [--no-docker]" >&2; exit 1 ;;
    esac
done

# What is missing of Debian's packages (the real servers, redis-cli, musl, busybox, promtool,
# chromium...), the musl target, the Python clients and nextest: said in one line, then
# installed. HEALTHCHECK_NO_INSTALL=1 installs nothing and prints the command instead.
# shellcheck source=tests/deps.sh
source tests/deps.sh
install_test_deps || exit 1

echo "==> building every binary and example (tests run them)"
cargo build --workspace --bins --examples

echo "==> healthcheck lint (issue 23): the project's own Compose stack and manifests pass it"
# README's Compose snippets are linted by healthcheck/tests/lint.rs (readme_snippets_pass).
target/debug/healthcheck lint --fail-on warning docker/compose.yml deploy/kubernetes/

echo "==> deploy/kubernetes/validate.sh (manifests against the Kubernetes schemas, offline)"
bash deploy/kubernetes/validate.sh

echo "==> cargo nextest run --workspace"
cargo nextest run --workspace --no-fail-fast

echo "==> promtool test rules config/alerts.test.yml (the sidecar's alerting rules)"
promtool check rules config/alerts.yml >/dev/null
promtool test rules config/alerts.test.yml

echo "==> cargo test --doc --workspace (nextest does not run doc examples)"
cargo test --doc --workspace --quiet

echo "==> tests/docs.sh (README and the docs it links: snippets, links, words, times)"
bash tests/docs.sh

echo "==> python3 -m unittest discover docker (the demo's gating choice per engine and Compose, its override; the packages it installs)"
python3 -m unittest discover -s docker -p 'test_*.py'

echo "==> ready-signal/python/tests/run.sh (the Python package: wheel in a virtualenv, pytest)"
bash ready-signal/python/tests/run.sh

if [ "$docker" = 1 ]; then
    echo "==> docker/e2e.sh"
    bash docker/e2e.sh
    echo "==> docker/e2e-heal.sh"
    bash docker/e2e-heal.sh
    echo "==> docker/e2e-podman.sh (the sidecar against Podman's Docker-compatible API; says SKIPPED where Podman cannot run)"
    bash docker/e2e-podman.sh
fi
echo "==> all tests passed"
