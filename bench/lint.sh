#!/usr/bin/env bash
# `healthcheck lint` speed (issue 23): a 50-service Compose stack written the field's way
# (x- anchors with merge keys, a shared extends file, ${VAR:-default}, an override file merged
# over it), linted by the static musl release binary, timed with hyperfine. Also the probe's
# own start-up (`healthcheck --version`), to show the lint code costs the probe nothing.
#
#   HC=target/x86_64-unknown-linux-musl/release/healthcheck bash bench/lint.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
HC=${HC:-target/x86_64-unknown-linux-musl/release/healthcheck}
OUT=bench/results
mkdir -p "$OUT"
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT

{
    echo 'x-probe: &probe'
    echo '  interval: ${HC_INTERVAL:-30s}'
    echo '  timeout: 2s'
    echo '  retries: 3'
    echo '  start_period: ${HC_START:-120s}'
    echo '  start_interval: 2s'
    echo 'x-env: &env'
    echo '  READY_SIGNAL_REDIS_URL: redis://redis:6379'
    echo '  READY_SIGNAL_REDIS_PASSWORD_FILE: /run/secrets/redis'
    echo 'services:'
    echo '  redis:'
    echo '    image: redis:7.2'
    echo '    volumes: [hc:/hc:ro]'
    echo '    healthcheck:'
    echo '      test: ["CMD", "/hc/healthcheck", "redis://localhost:6379"]'
    echo '      <<: *probe'
    for i in $(seq 1 49); do
        echo "  agent-$i:"
        if (( i % 5 == 0 )); then
            echo '    extends: {file: common.yml, service: agent-base}'
        else
            echo '    image: ${REGISTRY:-registry.example}/agents/agent:${TAG:-1}'
        fi
        echo '    volumes: [hc:/hc:ro]'
        echo '    environment:'
        echo '      <<: *env'
        echo "      AGENT_NAME: agent-$i"
        echo '    healthcheck:'
        echo "      test: [\"CMD\", \"/hc/healthcheck\", \"--timeout\", \"1s\", \"ready://agent-$i?replica=self\"]"
        echo '      <<: *probe'
        echo '    depends_on:'
        echo '      redis: {condition: service_healthy}'
        if (( i > 1 )); then echo "      agent-$((i - 1)): {condition: service_healthy}"; fi
    done
    echo 'volumes:'
    echo '  hc:'
} > "$DIR/compose.yaml"
cat > "$DIR/common.yml" <<'YAML'
services:
  agent-base:
    image: registry.example/agents/base:1
    restart: unless-stopped
    labels:
      healthcheck.heal: "true"
YAML
{
    echo 'services:'
    for i in $(seq 1 49); do echo "  agent-$i: {deploy: {replicas: 2}}"; done
} > "$DIR/compose.override.yaml"

"$HC" lint --fail-on never "$DIR/compose.yaml" "$DIR/compose.override.yaml" | tail -4
hyperfine -N --warmup 5 --runs 100 \
    --export-markdown "$OUT/lint-50.md" --export-json "$OUT/lint-50.json" \
    -n "lint 50 services (2 files, extends)" "$HC lint --fail-on never $DIR/compose.yaml $DIR/compose.override.yaml" \
    -n "lint docker/compose.yml" "$HC lint docker/compose.yml" \
    -n "healthcheck --version (probe start-up)" "$HC --version"

# The cost line for the project's own 24-agent stack (agent-b scaled to 20, as bench/sidecar.sh
# stack runs it), at the two intervals BENCHMARKS.md measured.
printf 'services:\n  agent-b:\n    deploy: {replicas: 20}\n' > "$DIR/scale.yml"
for interval in 2s 30s; do
    echo "HC_INTERVAL=$interval:"
    HC_INTERVAL=$interval "$HC" lint --fail-on never docker/compose.yml "$DIR/scale.yml" | grep -E '^(cost|gating)'
done
