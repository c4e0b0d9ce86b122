#!/usr/bin/env python3
"""Tiny random-weight BitNet embedding models (GGUF, I2_S) and their reference vectors.

Writes, for a Qwen3-style and a Gemma3-style model in the layout of microsoft/BitNet's
docs/bitnet-embeddings-i2s-guide.md (and its utils/convert-bitnet-embedding-to-gguf.py: tensor
names, metadata keys, I2_S packing, Gemma's `+1` on its own norms but not on `*_norm_in`):

  testdata/embeddings/tiny-bitnet-embed-qwen3.gguf
  testdata/embeddings/tiny-bitnet-embed-gemma3.gguf
  testdata/embeddings/tiny-bitnet-embed.json

The JSON holds, per model, the file's sha256 and per text its token ids and its embedding, computed
here by an independent NumPy float64 implementation of the documented graph:

  BitLinear(x) = W1.58A8 as in HF BitNet: y = RMSNorm(x) * norm_in (the projection's own input norm),
    per token s = 127 / max(|y|, 1e-5), q = clamp(round_half_even(y * s), -128, 127),
    out = (q @ T^T) / s * scale_W, T the ternary weights {-1, 0, 1} and scale_W = mean|W|
  block (Qwen3):  h = RMSNorm(x)*attn_norm; q,k,v = BitLinear(h); per-head RMSNorm of q, k;
    NEOX RoPE; causal softmax(q k^T / sqrt(head_dim)) v (grouped KV heads); x += BitLinear_o(att);
    h = RMSNorm(x)*ffn_norm; x += BitLinear_down(silu(BitLinear_gate(h)) * BitLinear_up(h))
  block (Gemma3): embeddings * sqrt(n_embd); as Qwen3 with (1 + w) norms, q scaled by
    1/sqrt(head_dim) (query_pre_attn_scalar = head_dim), GELU (tanh) instead of SiLU, RMSNorm of
    the attention and FFN outputs (post_attention_norm, post_ffw_norm) before each residual add,
    5 sliding-window layers (RoPE base 10000, window `sliding_window`) per global one
  then RMSNorm(x)*output_norm, the last token's state (pooling_type 3, last), L2-normalised.

Token ids: a byte-level BPE vocabulary without merges (ids 0-255 = the 256 byte symbols of GPT-2's
byte-to-unicode map, in byte order; 256 = <|endoftext|>, 257 = <bos>), so a text's ids are its
UTF-8 bytes, plus EOS at the end (both models, tokenizer.ggml.add_eos_token, as the converter
sets for Qwen3 so that the last token is EOS) and BOS in front (Gemma3).

I2_S bytes as crates/bitnet-quant/src/i2s.rs documents them (and the BitNet converter): codes -1 -> 0, 0 -> 1,
+1 -> 2; 128-element blocks of 32 bytes, element j of a block in byte j mod 32 at bit shift
6 - 2*floor(j/32); then the f32 scale and 28 zero bytes (n/4 + 32 bytes). Type id 36 (bitnet.cpp's
I2_S; PyPI gguf has no name for it, so the id is passed as a raw number).

Run: python tools/embeddings/make_bitnet_embed_ref.py
Requires (pinned in tools/requirements.txt): gguf==0.19.0 numpy==2.4.6.
"""

import hashlib
import importlib.metadata
import json
import os

import gguf
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_DIR = os.path.join(REPO, "testdata/embeddings")

I2_S = 36  # bitnet.cpp's GGML type id
EOS, BOS = 256, 257
N_VOCAB = 258
RMS_EPS = 1e-6

TEXTS = [
    "query: What is BitNet?",
    "BitNet b1.58 uses ternary weights and 8-bit activations.",
    "a",
    "Ünïcödé ✓ 日本語",
    "The quick brown fox jumps over the lazy dog.",
]

QWEN3 = dict(
    arch="qwen3", n_embd=128, n_layer=2, n_head=4, n_head_kv=2, head_dim=64, n_ff=256,
    rope_base=1_000_000.0, n_ctx=64, seed=1158, add_bos=False,
)
GEMMA3 = dict(
    arch="gemma3", n_embd=128, n_layer=6, n_head=2, n_head_kv=1, head_dim=128, n_ff=256,
    rope_base=1_000_000.0, n_ctx=64, seed=2270, add_bos=True, sliding_window=8,
)
GEMMA3_SWA_PATTERN = 6
GEMMA3_SWA_ROPE_BASE = 10_000.0


def byte_symbols() -> list[str]:
    """GPT-2's byte-to-unicode map, as a list indexed by byte value."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, cs))
    return [chr(table[b]) for b in range(256)]


def token_ids(text: str, cfg: dict) -> list[int]:
    return ([BOS] if cfg["add_bos"] else []) + list(text.encode("utf-8")) + [EOS]


# ---------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------

def f16_exact(x: np.ndarray) -> np.ndarray:
    """Values that F16 holds exactly (what the file stores), as float64."""
    return x.astype(np.float16).astype(np.float64)


def ternary(rng, rows: int, cols: int):
    """Latent weights quantized as the converter does: s = mean|W|, T = clamp(round(W/s), -1, 1);
    s as the f32 the file stores."""
    w = rng.standard_normal((rows, cols)) * 0.05
    s = np.float32(max(np.mean(np.abs(w)), 1e-5))
    t = np.clip(np.round(w / np.float64(s)), -1, 1).astype(np.int8)
    return t, s


def pack_i2s(t: np.ndarray, s: np.float32) -> np.ndarray:
    flat = (t.reshape(-1).astype(np.int16) + 1).astype(np.uint8)  # -1,0,1 -> 0,1,2
    assert flat.size % 128 == 0
    blocks = flat.reshape(-1, 4, 32)
    packed = (blocks[:, 0, :] << 6) | (blocks[:, 1, :] << 4) | (blocks[:, 2, :] << 2) | blocks[:, 3, :]
    tail = np.zeros(32, dtype=np.uint8)
    tail[:4] = np.frombuffer(np.float32(s).tobytes(), dtype=np.uint8)
    return np.concatenate([packed.reshape(-1).astype(np.uint8), tail])


def make_weights(cfg: dict) -> dict:
    """Every tensor as the reference uses it (float64; ternary ones as (T, s)); GGUF names."""
    rng = np.random.default_rng(cfg["seed"])
    d, hd, ff = cfg["n_embd"], cfg["head_dim"], cfg["n_ff"]
    qd, kvd = cfg["n_head"] * hd, cfg["n_head_kv"] * hd
    gemma = cfg["arch"] == "gemma3"

    def model_norm(n):
        # The model's own norms, as the file holds them: Qwen3's weights, or Gemma's 1 + w
        # (the converter adds the 1; Gemma's RMSNorm multiplies by 1 + w).
        return f16_exact(1.0 + rng.standard_normal(n) * 0.1)

    def input_norm(n):
        # BitLinear's own RMSNorm (plain weights near 1, no offset in either architecture).
        return f16_exact(1.0 + rng.standard_normal(n) * 0.2)

    w = {"token_embd.weight": f16_exact(rng.standard_normal((N_VOCAB, d)) * (0.5 if gemma else 1.0))}
    for il in range(cfg["n_layer"]):
        b = f"blk.{il}."
        w[b + "attn_norm.weight"] = model_norm(d)
        w[b + "attn_q_norm.weight"] = model_norm(hd)
        w[b + "attn_k_norm.weight"] = model_norm(hd)
        for name, rows, cols in [("attn_q", qd, d), ("attn_k", kvd, d), ("attn_v", kvd, d),
                                 ("attn_output", d, qd), ("ffn_gate", ff, d), ("ffn_up", ff, d),
                                 ("ffn_down", d, ff)]:
            w[b + name + ".weight"] = ternary(rng, rows, cols)
            w[b + name + "_norm_in.weight"] = input_norm(cols)
        w[b + "ffn_norm.weight"] = model_norm(d)
        if gemma:
            w[b + "post_attention_norm.weight"] = model_norm(d)
            w[b + "post_ffw_norm.weight"] = model_norm(d)
    w["output_norm.weight"] = model_norm(d)
    return w


# ---------------------------------------------------------------------------------------------
# The reference forward pass (float64)
# ---------------------------------------------------------------------------------------------

def rms_norm(x, w):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + RMS_EPS) * w


def bitlinear(x, norm_in, tw):
    t, s_w = tw
    y = rms_norm(x, norm_in)
    s = 127.0 / np.maximum(np.max(np.abs(y), axis=-1, keepdims=True), 1e-5)
    q = np.clip(np.round(y * s), -128, 127)  # np.round: half to even
    return (q @ t.T.astype(np.float64)) / s * np.float64(s_w)


def rope_neox(x, base):
    """x: (n, heads, hd); rotates element i with i + hd/2 by pos * base^(-2i/hd)."""
    n, _, hd = x.shape
    half = hd // 2
    inv = base ** (-2.0 * np.arange(half) / hd)
    ang = np.arange(n)[:, None] * inv[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    a, b = x[..., :half], x[..., half:]
    return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def silu(x):
    return x / (1.0 + np.exp(-x))


def embed(cfg: dict, w: dict, ids: list[int]) -> np.ndarray:
    d, hd, nh, nkv = cfg["n_embd"], cfg["head_dim"], cfg["n_head"], cfg["n_head_kv"]
    gemma = cfg["arch"] == "gemma3"
    n = len(ids)
    x = w["token_embd.weight"][ids].copy()
    if gemma:
        x *= np.sqrt(d)
    pos = np.arange(n)
    for il in range(cfg["n_layer"]):
        b = f"blk.{il}."
        lin = lambda name, inp: bitlinear(inp, w[b + name + "_norm_in.weight"], w[b + name + ".weight"])
        local = gemma and il % GEMMA3_SWA_PATTERN < GEMMA3_SWA_PATTERN - 1
        base = GEMMA3_SWA_ROPE_BASE if local else cfg["rope_base"]
        h = rms_norm(x, w[b + "attn_norm.weight"])
        q = rms_norm(lin("attn_q", h).reshape(n, nh, hd), w[b + "attn_q_norm.weight"])
        k = rms_norm(lin("attn_k", h).reshape(n, nkv, hd), w[b + "attn_k_norm.weight"])
        v = lin("attn_v", h).reshape(n, nkv, hd)
        q, k = rope_neox(q, base), rope_neox(k, base)
        visible = pos[None, :] <= pos[:, None]
        if local:
            visible &= pos[:, None] - pos[None, :] < cfg["sliding_window"]
        att = np.zeros((n, nh, hd))
        for head in range(nh):
            g = head // (nh // nkv)
            scores = q[:, head, :] @ k[:, g, :].T / np.sqrt(hd)
            scores = np.where(visible, scores, -np.inf)
            p = np.exp(scores - scores.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            att[:, head, :] = p @ v[:, g, :]
        o = lin("attn_output", att.reshape(n, nh * hd))
        if gemma:
            o = rms_norm(o, w[b + "post_attention_norm.weight"])
        x = x + o
        h = rms_norm(x, w[b + "ffn_norm.weight"])
        act = gelu_tanh if gemma else silu
        f = lin("ffn_down", act(lin("ffn_gate", h)) * lin("ffn_up", h))
        if gemma:
            f = rms_norm(f, w[b + "post_ffw_norm.weight"])
        x = x + f
    last = rms_norm(x, w["output_norm.weight"])[-1]
    return last / np.linalg.norm(last)


# ---------------------------------------------------------------------------------------------
# The GGUF file
# ---------------------------------------------------------------------------------------------

def write_gguf(cfg: dict, w: dict, path: str) -> None:
    arch = cfg["arch"]
    out = gguf.GGUFWriter(path, arch)
    out.add_name(f"tiny-bitnet-embed-{arch}")
    out.add_file_type(40)  # LLAMA_FTYPE_MOSTLY_I2_S
    out.add_block_count(cfg["n_layer"])
    out.add_context_length(cfg["n_ctx"])
    out.add_embedding_length(cfg["n_embd"])
    out.add_feed_forward_length(cfg["n_ff"])
    out.add_head_count(cfg["n_head"])
    out.add_head_count_kv(cfg["n_head_kv"])
    out.add_vocab_size(N_VOCAB)
    out.add_rope_dimension_count(cfg["head_dim"])
    out.add_key_length(cfg["head_dim"])
    out.add_value_length(cfg["head_dim"])
    out.add_rope_freq_base(cfg["rope_base"])
    out.add_layer_norm_rms_eps(RMS_EPS)
    out.add_pooling_type(gguf.PoolingType.LAST)
    if arch == "gemma3":
        out.add_sliding_window(cfg["sliding_window"])
    out.add_tokenizer_model("gpt2")
    out.add_tokenizer_pre("qwen2")
    out.add_token_list(byte_symbols() + ["<|endoftext|>", "<bos>"])
    out.add_token_types([gguf.TokenType.NORMAL] * 256 + [gguf.TokenType.CONTROL] * 2)
    out.add_eos_token_id(EOS)
    out.add_bos_token_id(BOS)
    out.add_add_bos_token(cfg["add_bos"])
    out.add_add_eos_token(True)
    for name, value in w.items():
        if isinstance(value, tuple):
            t, s = value
            packed = pack_i2s(t, s)
            # An int8 view so that gguf keeps the raw shape (rows, cols) as given.
            out.add_tensor(name, packed.view(np.int8), raw_shape=t.shape, raw_dtype=I2_S)
        else:
            out.add_tensor(name, value.astype(np.float16))
    out.write_header_to_file()
    out.write_kv_data_to_file()
    out.write_tensors_to_file()
    out.close()


def main() -> None:
    doc = {
        "producer": {
            "script": "tools/embeddings/make_bitnet_embed_ref.py",
            "gguf": importlib.metadata.version("gguf"),
            "numpy": np.__version__,
        },
        "bound": "W1.58A8 (oracle README §6.4): cosine >= 0.997 per vector",
        "models": [],
    }
    for cfg in (QWEN3, GEMMA3):
        name = f"tiny-bitnet-embed-{cfg['arch']}.gguf"
        path = os.path.join(OUT_DIR, name)
        w = make_weights(cfg)
        write_gguf(cfg, w, path)
        with open(path, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        texts = []
        for text in TEXTS:
            ids = token_ids(text, cfg)
            texts.append({"text": text, "ids": ids,
                          "embedding": [float(f"{v:.9g}") for v in embed(cfg, w, ids)]})
        doc["models"].append({"file": name, "sha256": sha, "arch": cfg["arch"],
                              "dim": cfg["n_embd"], "pooling": "last", "texts": texts})
        print(f"{name}: {os.path.getsize(path)} bytes, sha256 {sha}")
    with open(os.path.join(OUT_DIR, "tiny-bitnet-embed.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
