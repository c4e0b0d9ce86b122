#!/usr/bin/env bash
# Installs the programs the tests drive beyond the Rust toolchain (called by fetch-test-data.sh):
# the Python packages pinned in tools/server-tests/requirements.txt (the official `openai` client,
# pytest, httpx, selenium), and from Debian (as root, only when missing) headless Chromium with its
# driver and tmux (which drives the chat REPL test).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"

python3 -m pip install --quiet --disable-pip-version-check -r "$here/tools/server-tests/requirements.txt"

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1 \
   || ! command -v tmux >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-test-tools: chromium, chromedriver or tmux missing and not root: run 'apt-get install chromium chromium-driver tmux' as root" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium chromium-driver tmux >/dev/null
fi
echo "install-test-tools: $(python3 -c 'import openai; print("openai", openai.__version__)'), $(chromium --version 2>/dev/null | head -1)"
