#!/usr/bin/env bash
# The documentation's snippets and cross-references, checked against the code (run by
# tests/run.sh; alone: `bash tests/docs.sh`). tests/docs.py does the work:
#
# - every fenced block of README.md and the documents users read (sidecar/HEAL.md,
#   deploy/kubernetes/README.md, ready-signal/python/README.md, ready-signal/PROTOCOL.md):
#   YAML parsed, Compose snippets and the example stacks validated with `docker compose config`
#   (`docker-compose config` where only v1 is installed: v1 rejects the v2-only key
#   `start_interval`, which is then checked for form only and reported as such), every probe or
#   `healthcheck wait` command line in them run through the built probe (no configuration
#   error), shell blocks parsed by `bash -n` and the scripts, Dockerfiles and Python projects
#   they name present, Python blocks compiled and their `signal.*` calls checked against the
#   built package, Rust blocks' `signal.*` calls against the crate, Dockerfile `COPY --from`
#   lines against the image's files;
# - every link and anchor resolves, every repository path written in backticks exists;
# - no issue numbers or internal words in user documentation;
# - the README's times follow from the crate's defaults, and no document states another;
# - tests/deps.sh with HEALTHCHECK_NO_INSTALL=1 installs nothing, names what is missing and
#   prints the command (here, on a PATH without rustup or cargo-nextest).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# The same build as tests/run.sh's, so a no-op after it: `-p healthcheck` alone resolves other
# features of the shared dependencies and rebuilt them (about 110 s of each CI run).
cargo build --quiet --workspace --bins --examples
echo "==> tests/docs.py (snippets, links, words, times)"
python3 tests/docs.py

echo "==> HEALTHCHECK_NO_INSTALL=1: nothing installed, the command printed instead"
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
# A PATH with the basic tools only: rustup and cargo-nextest are missing from it.
for tool in bash env id grep sed awk cat command python3 apt-get dpkg; do
    [[ -x "/usr/bin/$tool" ]] && ln -s "/usr/bin/$tool" "$bin/$tool"
done
set +e
out=$(PATH="$bin:/bin" HEALTHCHECK_NO_INSTALL=1 bash -c 'source tests/deps.sh; install_test_deps' 2>&1)
code=$?
set -e
[[ $code -ne 0 ]] || { echo "FAIL deps.sh with HEALTHCHECK_NO_INSTALL=1 and tools missing exited 0: $out" >&2; exit 1; }
grep -q 'HEALTHCHECK_NO_INSTALL=1: not installing' <<<"$out" \
    && grep -q 'rustup target add x86_64-unknown-linux-musl' <<<"$out" \
    && grep -q 'cargo install --locked cargo-nextest' <<<"$out" \
    || { echo "FAIL deps.sh did not name what is missing and the command: $out" >&2; exit 1; }
echo "  deps.sh: exit $code, said: $(head -n 1 <<<"$out")"
echo "  and the command: $(tail -n 1 <<<"$out")"
echo "==> the documentation checks passed"
