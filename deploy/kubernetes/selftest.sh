#!/usr/bin/env bash
# Proves check_manifests.py can fail for each reason it exists: applies one mistake at a time
# to a copy of the manifests and expects exit 1 with the matching error. Run by validate.sh.
#
#   selftest.sh PYTHON HEALTHCHECK_BIN
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="$1" healthcheck="$2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# mistake FILE SED-EXPRESSION EXPECTED-ERROR-TEXT
mistake() {
    local file="$1" expr="$2" expected="$3"
    rm -rf "$work/m" && cp -r "$here" "$work/m"
    sed -i -e "$expr" "$work/m/$file"
    if cmp -s "$here/$file" "$work/m/$file"; then
        echo "selftest: the mistake '$expr' changed nothing in $file" >&2
        exit 1
    fi
    local out status=0
    out="$("$python" "$work/m/check_manifests.py" "$work/m" "$healthcheck" 2>&1)" || status=$?
    if [ "$status" != 1 ] || ! grep -qF -- "$expected" <<<"$out"; then
        echo "selftest: '$expr' in $file: expected exit 1 with \"$expected\", got $status:" >&2
        echo "$out" >&2
        exit 1
    fi
    echo "ok: $file '$expr' -> $expected"
}

mistake agent-deployment.yaml 's#- redis://redis:6379#- redis://worker:hunter2@redis:6379#' \
    "secret on the command line"
mistake agent-deployment.yaml 's#"800ms", "ready://worker?replica=self&store=file"#"800ms", "nats://nats:4222", "ready://worker?replica=self\&store=file"#' \
    "checks a shared dependency nats://nats:4222"
mistake agent-deployment.yaml 's#"800ms", "ready://#"3s", "ready://#' \
    "is not below timeoutSeconds"
mistake agent-deployment.yaml 's#ready://worker?replica=self&store=file&state=any#ready://worker?replica=self\&state=any#' \
    "reads the shared store: add store=file"
mistake agent-deployment.yaml 's#- ready://worker?replica=self#- ready://worker?replicas=self#' \
    "healthcheck rejects its arguments"
mistake agent-deployment.yaml 's#name: REDIS_PASSWORD_FILE#name: REDIS_PASSWORD#' \
    "REDIS_PASSWORD holds a secret value"
mistake agent-deployment.yaml 's#value: /etc/worker/credentials/nats-password#value: /etc/worker/nats-password#' \
    "is not in a mounted Secret"
mistake sidecar-deployment.yaml 's#secretName: healthcheck-sidecar-credentials#secretName: sidecar-secrets#' \
    "Secret sidecar-secrets is not in secrets.example.yaml"
mistake kustomization.yaml '/- sidecar-service.yaml/d' \
    "sidecar-service.yaml is not listed in resources"
