#!/usr/bin/env bash
# Runs the kernel crate's tests built for aarch64 under qemu-user, so the NEON kernels are held to
# the same tests as the x86 ones (every ISA the CPU has equals the scalar reference exactly). The
# cross linker, qemu and the Rust target are installed by scripts/install-test-tools.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

target=aarch64-unknown-linux-gnu
for tool in aarch64-linux-gnu-gcc qemu-aarch64; do
    command -v "$tool" >/dev/null || {
        echo "test-aarch64: $tool missing: run scripts/install-test-tools.sh (as root)" >&2
        exit 1
    }
done
rustup target list --installed | grep -qx "$target" || {
    echo "test-aarch64: Rust target $target missing: rustup target add $target" >&2
    exit 1
}
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
# The aarch64-only code (NEON kernels) is linted here, where the target is known to be installed.
cargo clippy --locked --target "$target" -p bitnet-kernels --all-targets -- -D warnings
# The kernels' own tests (no model files needed): ternary, Q8_0, F16, attention, norm, pool.
cargo test --locked --target "$target" -p bitnet-kernels --lib --tests
