#!/usr/bin/env bash
# Builds the Python package (crates/bitnet-python) as an abi3 wheel with maturin and runs its
# pytest suite against that wheel installed in a fresh venv whose PATH has no Rust toolchain.
# The suite compares with the Rust side built here from the same source: the `bitnet` CLI (in
# the optimised test profile `cargo test` builds; the wheel is a release build) and the tiny-b158
# logits the bitnet-model test `dump_i2s_prefill_logits_for_python` writes.
# Venvs, wheel and dump live under $BITNET_CACHE/python (default ~/.cache/bitnet-rs).
# Needs python3 with venv, and the models scripts/fetch-test-data.sh caches.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cache="${BITNET_CACHE:-$HOME/.cache/bitnet-rs}"
work="$cache/python"
maturin_version=1.16.0
pytest_version=9.2.0
numpy_version=2.4.6
jsonschema_version=4.26.0
mkdir -p "$work"
cd "$here"

# The build venv: maturin (pinned) from PyPI.
build_venv="$work/build-venv"
if ! "$build_venv/bin/maturin" --version 2>/dev/null | grep -qx "maturin $maturin_version"; then
    rm -rf "$build_venv"
    python3 -m venv "$build_venv"
    "$build_venv/bin/pip" install --quiet --disable-pip-version-check "maturin==$maturin_version"
fi

# The Rust side to compare with, from the workspace's test build (the README's `cargo test
# --workspace` made it, so both are fresh then): the CLI at target/debug/bitnet and the dump.
# Selecting one package (`-p`) would resolve its dependencies' features apart from the
# workspace's and rebuild them (~4 minutes each on 2 cores).
cargo test --workspace --locked --no-run
rm -rf "$work/rust-logits"
BITNET_LOGITS_DUMP="$work/rust-logits" cargo test --workspace --locked --quiet -- \
    --ignored --exact dump_i2s_prefill_logits_for_python

# The wheel.
rm -rf "$work/wheels"
"$build_venv/bin/maturin" build --release --locked --quiet \
    -m crates/bitnet-python/Cargo.toml -o "$work/wheels"
wheel="$(ls "$work"/wheels/bitnet-*-abi3-*.whl)"
listing="$(python3 -m zipfile -l "$wheel")"
case "$listing" in
    *bitnet/models/bitnet-b158-kjv-29m.gguf*) ;;
    *) echo "test-python: the wheel lacks the shipped model" >&2; exit 1 ;;
esac

# A fresh venv with only the wheel and the test tools, run with no cargo/rustc on PATH.
test_venv="$work/test-venv"
rm -rf "$test_venv"
python3 -m venv "$test_venv"
"$test_venv/bin/pip" install --quiet --disable-pip-version-check \
    "pytest==$pytest_version" "numpy==$numpy_version" "jsonschema==$jsonschema_version" "$wheel"
clean_path="$test_venv/bin:/usr/local/bin:/usr/bin:/bin"
if PATH="$clean_path" command -v cargo >/dev/null || PATH="$clean_path" command -v rustc >/dev/null; then
    echo "test-python: cargo or rustc is on $clean_path; the no-toolchain check needs them elsewhere" >&2
    exit 1
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
env PATH="$clean_path" HOME="$HOME" BITNET_CACHE="$cache" \
    BITNET_BIN="$here/target/debug/bitnet" BITNET_LOGITS_DUMP="$work/rust-logits" \
    "$test_venv/bin/python" -m pytest -p no:cacheprovider -q "$here/crates/bitnet-python/tests"
