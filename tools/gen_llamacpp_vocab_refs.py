#!/usr/bin/env python3
"""Expected ids for llama.cpp's vocab fixtures that ship without them, from llama.cpp itself.

The llama-cpp-python 0.3.36 sdist (vendored llama.cpp 0c1e570) ships ggml-vocab-{aquila,baichuan,gpt-neox,nomic-bert-moe}.gguf
with no .inp/.out. This script tokenizes the common 46-string .inp of the other fixtures with llama.cpp
(through llama-cpp-python 0.3.36: vocab_only=True, tokenize(add_bos=False, special=False), i.e.
add_special = false, parse_special = false, as test-tokenizer-0) and writes
testdata/tokenizer/ggml-vocab-<name>.gguf.{inp,out} in the fixtures' format; for the lossy Unigram
vocabulary (and for bert-bge, which ships its ids) also .detok.jsonl: llama.cpp's llama_detokenize of each id list, one JSON string a line.

It first re-tokenizes every fixture that does ship expected ids and stops unless all of them agree,
so the method is the one that made llama.cpp's own .out files.

Usage (a Python with llama-cpp-python==0.3.36 installed; pip builds it from the sdist):
    python3 tools/gen_llamacpp_vocab_refs.py [VOCAB_DIR]
VOCAB_DIR defaults to $BITNET_CACHE/llamacpp-vocab (filled by scripts/fetch-test-data.sh).
"""
import ctypes
import json
import os
import sys
from pathlib import Path

import llama_cpp

SEP = "\n__ggml_vocab_test__\n"
WITHOUT_IDS = ["aquila", "baichuan", "gpt-neox", "nomic-bert-moe"]
# Vocabularies whose normalizer loses information (NFKC charsmap, merged spaces, unknown pieces):
# decoding cannot give the input back, so llama.cpp's own detokenization is recorded as well.
LOSSY = ["nomic-bert-moe"]
# Lossy vocabularies that do ship their .inp/.out: only llama.cpp's detokenization of the shipped ids
# is written (WordPiece lower-cases and strips accents).
LOSSY_SHIPPED = ["bert-bge"]


def read_inp(path):
    pieces = path.read_text(encoding="utf-8").split(SEP)
    if pieces and pieces[-1] == "":
        pieces.pop()
    return pieces


def tokenize_all(gguf, texts):
    vocab = llama_cpp.Llama(model_path=str(gguf), vocab_only=True, verbose=False)
    return [vocab.tokenize(t.encode("utf-8"), add_bos=False, special=False) for t in texts]


def detokenize_all(gguf, id_lists):
    """llama.cpp's llama_detokenize (remove_special = false, unparse_special = false) of each list."""
    model = llama_cpp.Llama(model_path=str(gguf), vocab_only=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(model.model)
    texts = []
    for ids in id_lists:
        arr = (llama_cpp.llama_token * len(ids))(*ids)
        buf = ctypes.create_string_buffer(1 << 16)
        n = llama_cpp.llama_detokenize(vocab, arr, len(ids), buf, len(buf), False, False)
        assert n >= 0, n
        texts.append(buf.raw[:n].decode("utf-8"))
    return texts


def main():
    assert llama_cpp.__version__ == "0.3.36", llama_cpp.__version__
    cache = Path(os.environ.get("BITNET_CACHE", Path.home() / ".cache/bitnet-rs"))
    vocab_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else cache / "llamacpp-vocab"
    out_dir = Path(__file__).resolve().parent.parent / "testdata/tokenizer"
    out_dir.mkdir(parents=True, exist_ok=True)

    # The method must reproduce every shipped .out (skipping WordPiece/Unigram models is not needed:
    # llama.cpp builds all of them).
    for out in sorted(vocab_dir.glob("ggml-vocab-*.gguf.out")):
        gguf = out.with_suffix("")
        texts = read_inp(gguf.with_name(gguf.name + ".inp"))
        expected = [line.split() for line in out.read_text().splitlines()]
        got = [[str(i) for i in ids] for ids in tokenize_all(gguf, texts)]
        if got != expected:
            sys.exit(f"{gguf.name}: llama-cpp-python does not reproduce the shipped .out")
        print(f"{gguf.name}: shipped .out reproduced ({len(texts)} strings)")

    common = vocab_dir / "ggml-vocab-llama-bpe.gguf.inp"
    texts = read_inp(common)
    for name in WITHOUT_IDS:
        gguf = vocab_dir / f"ggml-vocab-{name}.gguf"
        ids = tokenize_all(gguf, texts)
        (out_dir / f"{gguf.name}.inp").write_bytes(common.read_bytes())
        with open(out_dir / f"{gguf.name}.out", "w") as f:
            for row in ids:
                f.write(" ".join(str(i) for i in row) + "\n")
        print(f"{gguf.name}: wrote {len(ids)} expected id lists")
        if name in LOSSY:
            with open(out_dir / f"{gguf.name}.detok.jsonl", "w", encoding="utf-8") as f:
                for text in detokenize_all(gguf, ids):
                    f.write(json.dumps(text, ensure_ascii=False) + "\n")
            print(f"{gguf.name}: wrote llama.cpp's detokenization of each")

    for name in LOSSY_SHIPPED:
        gguf = vocab_dir / f"ggml-vocab-{name}.gguf"
        out = gguf.with_name(gguf.name + ".out")
        ids = [[int(i) for i in line.split()] for line in out.read_text().splitlines()]
        with open(out_dir / f"{gguf.name}.detok.jsonl", "w", encoding="utf-8") as f:
            for text in detokenize_all(gguf, ids):
                f.write(json.dumps(text, ensure_ascii=False) + "\n")
        print(f"{gguf.name}: wrote llama.cpp's detokenization of the shipped ids")


if __name__ == "__main__":
    main()
