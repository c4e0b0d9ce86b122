#!/usr/bin/env python3
"""llama.cpp's ids for every `tokenizer.ggml.pre` value it knows, on the common vocab-fixture strings.

Only some pre-tokenizers have a vocab fixture of their own. For every name that llama.cpp 0c1e570's
src/llama-vocab.cpp compares `tokenizer_pre` against, this script writes a copy of a fixture vocabulary
with `tokenizer.ggml.pre` set to that name (gguf-py 0.19.0) and records the ids llama.cpp gives the
46 strings of ggml-vocab-llama-bpe.gguf.inp (llama-cpp-python 0.3.36: vocab_only=True,
tokenize(add_bos=False, special=False), i.e. add_special = false, parse_special = false).
Byte-level names use ggml-vocab-gpt-2.gguf; the names whose BPE runs on raw UTF-8 (no GPT-2 byte map)
use the tokens and merges of ggml-vocab-gemma-4.gguf under tokenizer.ggml.model = gpt2.

Output: testdata/tokenizer/pre-tokenizers.json = {"strings": [...], "base": {name: fixture},
"ids": {name: [[id, ...], ...]}, "llama_cpp_failed": {name: why}} (each name runs in its own process;
a name on which llama.cpp itself aborts is recorded, not skipped silently).

Usage (a Python with llama-cpp-python==0.3.36 and gguf==0.19.0):
    python3 tools/gen_llamacpp_pre_refs.py [VOCAB_DIR]
VOCAB_DIR defaults to $BITNET_CACHE/llamacpp-vocab (filled by scripts/fetch-test-data.sh).
"""
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import gguf
import llama_cpp

SEP = "\n__ggml_vocab_test__\n"
UTF8_NAMES = {"gemma4", "granite-embed-multi-311m", "sarvam-moe", "whitespace"}


def copy_with_pre(src, dst, pre):
    reader = gguf.GGUFReader(src)
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(dst, arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture" or name == "tokenizer.ggml.pre":
            continue
        value = field.contents()
        if name == "tokenizer.ggml.model" and value == "gemma4":
            value = "gpt2"  # llama.cpp's gemma4 model type would force pre = gemma4
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, value, vtype, sub)
    writer.add_key_value("tokenizer.ggml.pre", pre, gguf.GGUFValueType.STRING)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()


def tokenize_one(vocab_dir, name, strings_path, out_path):
    """In a child process (llama.cpp aborts on some inputs): relabel, load, tokenize, write JSON."""
    base = "gemma-4" if name in UTF8_NAMES else "gpt-2"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{name}.gguf")
        copy_with_pre(str(Path(vocab_dir) / f"ggml-vocab-{base}.gguf"), path, name)
        vocab = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
        strings = json.loads(Path(strings_path).read_text(encoding="utf-8"))
        ids = [vocab.tokenize(s.encode("utf-8"), add_bos=False, special=False) for s in strings]
    Path(out_path).write_text(json.dumps({"base": f"ggml-vocab-{base}.gguf", "ids": ids}))


def main():
    if sys.argv[1:2] == ["--one"]:
        tokenize_one(*sys.argv[2:6])
        return
    assert llama_cpp.__version__ == "0.3.36", llama_cpp.__version__
    cache = Path(os.environ.get("BITNET_CACHE", Path.home() / ".cache/bitnet-rs"))
    vocab_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else cache / "llamacpp-vocab"
    out = Path(__file__).resolve().parent.parent / "testdata/tokenizer/pre-tokenizers.json"
    source = (vocab_dir / "llama-vocab.cpp").read_text(encoding="utf-8")
    names = sorted(set(re.findall(r'tokenizer_pre == "([^"]+)"', source)))
    strings = (vocab_dir / "ggml-vocab-llama-bpe.gguf.inp").read_text(encoding="utf-8").split(SEP)
    if strings[-1] == "":
        strings.pop()
    result = {"strings": strings, "base": {}, "ids": {}, "llama_cpp_failed": {}}
    with tempfile.TemporaryDirectory() as tmp:
        strings_path = os.path.join(tmp, "strings.json")
        Path(strings_path).write_text(json.dumps(strings), encoding="utf-8")
        for name in names:
            one = os.path.join(tmp, "one.json")
            run = subprocess.run(
                [sys.executable, __file__, "--one", str(vocab_dir), name, strings_path, one],
                capture_output=True,
                text=True,
            )
            if run.returncode != 0:
                last = [l for l in run.stderr.splitlines() if "error" in l.lower()][-1:]
                result["llama_cpp_failed"][name] = f"exit {run.returncode}: {' '.join(last)}"
                print(f"{name}: llama.cpp failed ({run.returncode})", flush=True)
                continue
            got = json.loads(Path(one).read_text())
            result["base"][name] = got["base"]
            result["ids"][name] = got["ids"]
            print(f"{name}: {got['base']}", flush=True)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {out} ({len(result['ids'])} of {len(names)} names)")


if __name__ == "__main__":
    main()
