#!/usr/bin/env bash
# gguf-py (PyPI gguf) dumps of every GGUF the bitnet-gguf tests compare against: the oracle files and
# the fetched real models -> $BITNET_CACHE/gguf-dumps/<file stem>.json (tools/gguf_dump.py).
# Skips the work when every dump is newer than its GGUF and than tools/gguf_dump.py.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cache=${BITNET_CACHE:-$HOME/.cache/bitnet-rs}
oracle="$repo/testdata/oracle"
out="$cache/gguf-dumps"
mkdir -p "$out"
files=()
while IFS= read -r f; do files+=("$f"); done < <(find "$oracle" -name '*.gguf' | sort)
files+=("$cache/models/SmolLM2-135M-Instruct.Q4_1.gguf" "$cache/models/gemma-3-270m-q4_k_m.gguf")
todo=()
for f in "${files[@]}"; do
  d="$out/$(basename "${f%.gguf}").json"
  if [ ! -f "$d" ] || [ "$f" -nt "$d" ] || [ "$repo/tools/gguf_dump.py" -nt "$d" ]; then todo+=("$f"); fi
done
if [ ${#todo[@]} -gt 0 ]; then
  python3 "$repo/tools/gguf_dump.py" --all-into "$out" "${todo[@]}"
fi
