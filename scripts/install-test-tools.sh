#!/usr/bin/env bash
# Installs the programs the tests drive beyond the Rust toolchain (called by fetch-test-data.sh):
# the Python packages pinned in tools/server-tests/requirements.txt (the official `openai` client,
# pytest, httpx, selenium), and from Debian (as root, only when missing) headless Chromium with its
# driver, tmux (which drives the chat REPL test), and the aarch64 cross linker and qemu-user with
# the Rust aarch64 target (scripts/test-aarch64.sh runs the NEON kernels' tests under emulation).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"

python3 -m pip install --quiet --disable-pip-version-check -r "$here/tools/server-tests/requirements.txt"

debian_packages="chromium chromium-driver tmux qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1 \
   || ! command -v tmux >/dev/null 2>&1 || ! command -v qemu-aarch64 >/dev/null 2>&1 \
   || ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-test-tools: one of chromium, chromedriver, tmux, qemu-aarch64, aarch64-linux-gnu-gcc missing and not root: run 'apt-get install $debian_packages' as root" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $debian_packages >/dev/null
fi
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu \
    || rustup target add aarch64-unknown-linux-gnu
echo "install-test-tools: $(python3 -c 'import openai; print("openai", openai.__version__)'), $(chromium --version 2>/dev/null | head -1)"
