#!/usr/bin/env python3
"""The shipped model's held-out perplexity computed by the training code's own forward pass.

An independent reference for `bitnet perplexity -m models/bitnet-b158-kjv-29m.gguf -f
models/bitnet-b158-kjv-29m.heldout.txt -c 256` (crates/bitnet-cli/tests/shipped_model.rs): nothing
of the Rust engine runs here.
- Weights: read from the GGUF with PyPI `gguf` (tensor table; the I2_S codes decoded as FORMATS.md
  lays them out: 128-element blocks of 32 bytes, code c = t + 1, the f32 scale after the codes),
  turned back into latent weights W = t * s / f (f = share of non-zero levels, as `train.py unpack`
  does), whose converter ternarisation gives back exactly t and s (checked).
- Tokens: the byte-level BPE of the training run, rebuilt in PyPI `tokenizers` from the GGUF's
  vocabulary and merges with the training tokenizer's pre-tokenizer (`train.py tokenize`).
- Forward: `reference_forward` of tools/shipped-model/train.py (torch, float64, W1.58A8).
- Scoring as llama-perplexity does: the whole text tokenized once with BOS first, cut into
  consecutive CTX-token chunks whose first token is replaced by BOS, each evaluated from an empty
  context, the second half scored (positions CTX/2 .. CTX-2 predicting the next token).

Needs torch, numpy, gguf==0.19.0, tokenizers (PyPI). Writes JSON to --out (default
models/bitnet-b158-kjv-29m.heldout-ppl.json).
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tools"))

import torch  # noqa: E402
from gguf_dump import MetadataOnlyReader  # noqa: E402
from train import BOS, SPECIALS, reference_forward, ternarize_like_converter  # noqa: E402

GGML_F32, GGML_F16, I2_S = 0, 1, 36

HF_NAMES = {
    "attn_norm": "input_layernorm.weight", "ffn_norm": "post_attention_layernorm.weight",
    "attn_q": "self_attn.q_proj.weight", "attn_k": "self_attn.k_proj.weight",
    "attn_v": "self_attn.v_proj.weight", "attn_output": "self_attn.o_proj.weight",
    "attn_sub_norm": "self_attn.attn_sub_norm.weight", "ffn_gate": "mlp.gate_proj.weight",
    "ffn_up": "mlp.up_proj.weight", "ffn_down": "mlp.down_proj.weight",
    "ffn_sub_norm": "mlp.ffn_sub_norm.weight",
}


def field(reader, key):
    return reader.fields[key].contents()


def decode_i2s(raw, n):
    """FORMATS.md I2_S: n/4 bytes of codes in 128-element blocks, then the f32 scale."""
    codes = np.frombuffer(raw[: n // 4], np.uint8).reshape(-1, 32)  # one row per block
    shifts = np.array([6, 4, 2, 0], np.uint8)
    # element j of a block: byte j % 32, shift 6 - 2 * (j // 32)
    levels = ((codes[:, None, :] >> shifts[None, :, None]) & 3).reshape(-1)[:n]
    assert levels.max() <= 2, "I2_S code 3 is unused"
    scale = np.frombuffer(raw[n // 4: n // 4 + 4], np.float32)[0]
    return levels.astype(np.float32) - 1.0, scale


def latent_weights(name, t, s):
    """Latent weights whose converter ternarisation gives back exactly levels t and scale s:
    W = t * s / f (f = share of non-zero levels), its magnitude moved by a few ulps where the
    float64 mean lands one ulp off s."""
    f = max(float(np.count_nonzero(t)) / t.size, 1.0 / t.size)
    m = np.float32(s / f)
    for _ in range(64):
        v = (t * m).astype(np.float32)
        t2, s2 = ternarize_like_converter(v)
        if np.float32(s2) == np.float32(s):
            assert np.array_equal(t2, t), f"{name}: levels changed"
            return v
        m = np.nextafter(m, np.float32(np.inf if np.float32(s2) < s else -np.inf), dtype=np.float32)
    raise SystemExit(f"{name}: no latent weights reproduce scale {s}")


def load_state(path):
    r = MetadataOnlyReader(path)
    arch = field(r, "general.architecture")
    c = {
        "num_hidden_layers": int(field(r, f"{arch}.block_count")),
        "num_attention_heads": int(field(r, f"{arch}.attention.head_count")),
        "num_key_value_heads": int(field(r, f"{arch}.attention.head_count_kv")),
        "rms_norm_eps": float(field(r, f"{arch}.attention.layer_norm_rms_epsilon")),
        "rope_theta": float(field(r, f"{arch}.rope.freq_base")),
        "hidden_size": int(field(r, f"{arch}.embedding_length")),
    }
    c["head_dim"] = c["hidden_size"] // c["num_attention_heads"]
    data = np.memmap(path, np.uint8, mode="r")
    sd = {}
    for info in r.tensor_fields:  # gguf-py's parsed tensor infos
        _name_len, name_bytes, _n_dims, dims, raw_type, offset = info.parts
        name = bytes(name_bytes).decode()
        dims = [int(d) for d in dims]
        ty = int(raw_type[0])
        off = r.data_offset + int(offset[0])
        n = int(np.prod(dims))
        shape = tuple(reversed(dims))  # ggml ne0 is the fastest-moving dimension
        if ty == GGML_F32:
            v = np.frombuffer(data[off: off + 4 * n], np.float32).reshape(shape).copy()
        elif ty == GGML_F16:
            v = np.frombuffer(data[off: off + 2 * n], np.float16).reshape(shape).astype(np.float32)
        elif ty == I2_S:
            t, s = decode_i2s(bytes(data[off: off + n // 4 + 4]), n)
            t = t.reshape(shape)
            v = latent_weights(name, t, s)
        else:
            raise SystemExit(f"{name}: tensor type {ty} not expected in the shipped model")
        if name == "token_embd.weight":
            sd["model.embed_tokens.weight"] = v
        elif name == "output_norm.weight":
            sd["model.norm.weight"] = v
        else:
            _, layer, kind, _ = name.split(".")
            sd[f"model.layers.{layer}.{HF_NAMES[kind]}"] = v
    return r, c, sd


def tokenizer_from_gguf(r):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tokens = [str(t) for t in field(r, "tokenizer.ggml.tokens")]
    merges = [tuple(str(m).split(" ", 1)) for m in field(r, "tokenizer.ggml.merges")]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIALS)
    assert tok.token_to_id(BOS) == int(field(r, "tokenizer.ggml.bos_token_id"))
    return tok


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=os.path.join(REPO, "models/bitnet-b158-kjv-29m.gguf"))
    ap.add_argument("--text", default=os.path.join(REPO, "models/bitnet-b158-kjv-29m.heldout.txt"))
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--out", default=os.path.join(REPO, "models/bitnet-b158-kjv-29m.heldout-ppl.json"))
    a = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    r, c, sd = load_state(a.model)
    tok = tokenizer_from_gguf(r)
    with open(a.text, "rb") as f:
        text = f.read().decode("utf-8")
    bos = tok.token_to_id(BOS)
    ids = [bos] + tok.encode(text, add_special_tokens=False).ids
    n_chunks = len(ids) // a.ctx
    nll, scored, started = 0.0, 0, time.time()
    for k in range(n_chunks):
        chunk = ids[k * a.ctx: (k + 1) * a.ctx]
        chunk[0] = bos
        logits = torch.from_numpy(reference_forward(sd, c, chunk)).double()
        logp = logits.log_softmax(-1)
        first = a.ctx // 2
        for p in range(first, a.ctx - 1):
            nll -= float(logp[p, chunk[p + 1]])
            scored += 1
    ppl = math.exp(nll / scored)
    result = {
        "producer": "tools/shipped-model/heldout_ppl.py (train.py reference_forward: torch float64, W1.58A8)",
        "torch": torch.__version__, "model": os.path.relpath(a.model, REPO),
        "text": os.path.relpath(a.text, REPO), "ctx": a.ctx, "tokens": len(ids), "chunks": n_chunks,
        "scored": scored, "ppl": round(ppl, 6),
    }
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(json.dumps(result), f"({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
