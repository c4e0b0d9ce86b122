#!/usr/bin/env bash
# Seeds fuzz/corpus/gguf_from_bytes from the malformed corpus, the writer/resolution test files and
# the tiny oracle GGUFs, then runs the cargo-fuzz target for SECONDS (default 600) on one core.
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-600}
shared=${BITNET_SHARED_DIR:-../../shared}
corpus=corpus/gguf_from_bytes
mkdir -p "$corpus"
cp ../crates/bitnet-gguf/tests/malformed/*.gguf ../crates/bitnet-gguf/tests/data/*.gguf \
   ../crates/bitnet-gguf/tests/data/resolve/*.gguf "$corpus"/
for f in "$shared"/oracle/tiny-b158/gguf/*.gguf "$shared"/oracle/tiny-bitnet-silu/gguf/*.gguf; do
  [ -e "$f" ] && cp "$f" "$corpus"/
done
exec cargo +nightly fuzz run gguf_from_bytes "$corpus" -- \
  -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1
