#!/usr/bin/env bash
# The packed ("offline", uint8 + weight_scale, 2 shards) HF layout of the tiny BitNet b1.58 model,
# input of bitnet-convert's packed-checkpoint test -> $BITNET_CACHE/tiny-b158-packed/
# (tools/make_packed_checkpoint.py). Skips the work when the output is newer than its inputs.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cache=${BITNET_CACHE:-$HOME/.cache/bitnet-rs}
oracle="$repo/testdata/oracle"
src="$oracle/tiny-b158/hf"
out="$cache/tiny-b158-packed"
stamp="$out/model.safetensors.index.json"
if [ ! -f "$stamp" ] || [ "$src/model.safetensors" -nt "$stamp" ] \
   || [ "$repo/tools/make_packed_checkpoint.py" -nt "$stamp" ]; then
  python3 "$repo/tools/make_packed_checkpoint.py" "$src" "$out"
fi
