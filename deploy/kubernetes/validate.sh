#!/usr/bin/env bash
# Validates the Kubernetes manifests offline, as the test suite's step (tests/run.sh):
#   1. every manifest against the Kubernetes OpenAPI schemas of a pinned Kubernetes version,
#      strictly (an unknown or misspelt field is an error), with PyPI's kubernetes-validate,
#      which ships the schemas: no cluster and no network beyond PyPI;
#   2. check_manifests.py: kustomization coverage, no secret in argv or env, exec probe
#      timeouts above the probe's --timeout, liveness free of shared dependencies, and every
#      healthcheck command line accepted by the built binary.
# Exits non-zero on any error.
#
#   bash deploy/kubernetes/validate.sh
# Needs python3 with venv (Debian python3-venv; tests/deps.sh installs it) and, for step 2, the
# healthcheck binary (built here when missing).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

# The Kubernetes version the manifests are checked against, and the validator's version (it
# bundles the schemas up to its own version).
K8S_VERSION="${K8S_VERSION:-1.33.0}"
KUBERNETES_VALIDATE_VERSION="1.37.0"

target_dir="${CARGO_TARGET_DIR:-$root/target}"
venv="$target_dir/k8s-validate-venv"
if ! "$venv/bin/python" -c 'import kubernetes_validate, yaml' 2>/dev/null \
    || [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("kubernetes-validate"))')" != "$KUBERNETES_VALIDATE_VERSION" ]; then
    echo "==> creating $venv with kubernetes-validate $KUBERNETES_VALIDATE_VERSION" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi

manifests=()
for f in "$here"/*.yaml; do
    [ "$(basename "$f")" = kustomization.yaml ] && continue   # not a Kubernetes object: checked below
    manifests+=("$f")
done

echo "==> kubernetes-validate --strict -k $K8S_VERSION (${#manifests[@]} files)"
# --no-warn would hide a kind with no schema; instead any WARN is an error here.
out="$("$venv/bin/kubernetes-validate" --strict -k "$K8S_VERSION" "${manifests[@]}" 2>&1)" || {
    echo "$out" >&2
    exit 1
}
echo "$out"
if grep -q '^WARN' <<<"$out"; then
    echo "validate.sh: kubernetes-validate warned (a kind without a schema is not validated)" >&2
    exit 1
fi

# The schema step can fail: a misspelt field in a copy must be rejected.
bad="$(mktemp --suffix=.yaml)"
trap 'rm -f "$bad"' EXIT
sed 's/periodSeconds:/periodSecond:/' "$here/agent-deployment.yaml" >"$bad"
if "$venv/bin/kubernetes-validate" --strict -k "$K8S_VERSION" --quiet "$bad" >/dev/null 2>&1; then
    echo "validate.sh: kubernetes-validate accepted a misspelt field: the schema check is not strict" >&2
    exit 1
fi

healthcheck="$target_dir/debug/healthcheck"
[ -x "$healthcheck" ] || cargo build -q -p healthcheck
echo "==> check_manifests.py"
"$venv/bin/python" "$here/check_manifests.py" "$here" "$healthcheck" "$target_dir/debug/healthcheck-sidecar"
echo "==> selftest.sh: each check fails on its mistake"
bash "$here/selftest.sh" "$venv/bin/python" "$healthcheck"
echo "==> kubernetes manifests valid"
