#!/usr/bin/env python3
"""Per-architecture reference fixtures: tiny random-weight GGUF files with llama.cpp's tensor
names, metadata keys and shapes (in miniature), and llama.cpp's logits for them.

For every architecture below this writes, under testdata/arch/<arch>/:
  <arch>-f32.gguf     every tensor F32
  <arch>-mixed.gguf   token embedding and attention linears F16, FFN linears and head Q8_0
  sequences.json      three fixed token-id sequences
  logits-f32.safetensors, logits-mixed.safetensors
                      llama.cpp's logits of every position of each sequence (seq0, seq1, seq2),
                      each sequence evaluated alone from an empty KV cache in one batch.

The GGUF files are written with PyPI `gguf` (tools/requirements.txt); the logits come from
llama.cpp as built by PyPI `llama-cpp-python==0.3.36` (its vendored llama.cpp), through its
Python API: `Llama(..., logits_all=True)` and `Llama.eval`, default F16 KV cache, CPU only.

Usage (llama-cpp-python installed, e.g. in ~/.cache/bitnet-rs/venv-llamacpp/env):
  python tools/gen_arch_refs.py [ARCH ...]
"""

import json
import pathlib
import sys

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "testdata" / "arch"

N_VOCAB = 320
N_EMBD = 64
N_LAYER = 2
N_HEAD = 4
N_HEAD_KV = 2
N_FF = 128
N_CTX_TRAIN = 4096
SEQUENCE_LENGTHS = (6, 11, 17)


def vocab():
    """A SentencePiece-style vocabulary: <unk>, <s>, </s>, the 256 byte tokens, then pieces."""
    tokens, scores, types = ["<unk>", "<s>", "</s>"], [0.0, 0.0, 0.0], [2, 3, 3]
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        scores.append(0.0)
        types.append(6)
    letters = "abcdefghijklmnopqrstuvwxyz"
    i = 0
    while len(tokens) < N_VOCAB:
        piece = "\u2581" + letters[i % 26] + letters[(i // 26) % 26]
        tokens.append(piece)
        scores.append(-float(i))
        types.append(1)
        i += 1
    return tokens, scores, types


class Arch:
    """One architecture's miniature: metadata and tensors (numpy, [rows = outputs, cols])."""

    def __init__(self, name, seed, head_dim=N_EMBD // N_HEAD, rope_dims=None):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.head_dim = head_dim
        self.rope_dims = rope_dims
        self.tensors = {}
        self.keys = []
        self.ctx_train = N_CTX_TRAIN
        self.layer_norm = False

    def q_dim(self):
        return N_HEAD * self.head_dim

    def kv_dim(self):
        return N_HEAD_KV * self.head_dim

    def matrix(self, name, rows, cols, gain=1.0):
        self.tensors[name] = (self.rng.standard_normal((rows, cols)) * gain / np.sqrt(cols)).astype(
            np.float32
        )

    def vector(self, name, n, mean=0.0, spread=0.1):
        self.tensors[name] = (mean + spread * self.rng.standard_normal(n)).astype(np.float32)

    def embedding_and_head(self, tied=False):
        self.tensors["token_embd.weight"] = self.rng.standard_normal((N_VOCAB, N_EMBD)).astype(
            np.float32
        )
        self.vector("output_norm.weight", N_EMBD, mean=1.0)
        if not tied:
            self.matrix("output.weight", N_VOCAB, N_EMBD, gain=2.5)

    def attention(self, il, fused=False, biases=False, qk_norm=False, out_bias=False):
        p = f"blk.{il}."
        self.vector(p + "attn_norm.weight", N_EMBD, mean=1.0)
        if fused:
            self.matrix(p + "attn_qkv.weight", self.q_dim() + 2 * self.kv_dim(), N_EMBD)
        else:
            self.matrix(p + "attn_q.weight", self.q_dim(), N_EMBD)
            self.matrix(p + "attn_k.weight", self.kv_dim(), N_EMBD)
            self.matrix(p + "attn_v.weight", self.kv_dim(), N_EMBD)
        if biases and fused:
            self.vector(p + "attn_qkv.bias", self.q_dim() + 2 * self.kv_dim(), spread=0.5)
        elif biases:
            self.vector(p + "attn_q.bias", self.q_dim(), spread=0.5)
            self.vector(p + "attn_k.bias", self.kv_dim(), spread=0.5)
            self.vector(p + "attn_v.bias", self.kv_dim(), spread=0.5)
        if qk_norm:
            self.vector(p + "attn_q_norm.weight", self.head_dim, mean=1.0)
            self.vector(p + "attn_k_norm.weight", self.head_dim, mean=1.0)
        self.matrix(p + "attn_output.weight", N_EMBD, self.q_dim())
        if out_bias:
            self.vector(p + "attn_output.bias", N_EMBD, spread=0.2)

    def gated_ffn(self, il, fused=False):
        p = f"blk.{il}."
        self.vector(p + "ffn_norm.weight", N_EMBD, mean=1.0)
        if fused:
            self.matrix(p + "ffn_up.weight", 2 * N_FF, N_EMBD)
        else:
            self.matrix(p + "ffn_gate.weight", N_FF, N_EMBD)
            self.matrix(p + "ffn_up.weight", N_FF, N_EMBD)
        self.matrix(p + "ffn_down.weight", N_EMBD, N_FF)

    def common_keys(self, w):
        w.add_context_length(self.ctx_train)
        w.add_embedding_length(N_EMBD)
        w.add_block_count(N_LAYER)
        w.add_feed_forward_length(N_FF)
        w.add_head_count(N_HEAD)
        w.add_head_count_kv(N_HEAD_KV)
        w.add_rope_freq_base(10000.0)
        if self.layer_norm:
            w.add_layer_norm_eps(1e-5)
        else:
            w.add_layer_norm_rms_eps(1e-6)
        if self.head_dim != N_EMBD // N_HEAD:
            w.add_key_length(self.head_dim)
            w.add_value_length(self.head_dim)
        if self.rope_dims is not None:
            w.add_rope_dimension_count(self.rope_dims)
        for method, value in self.keys:
            getattr(w, method)(value)


def build(name):
    seed = sum(map(ord, name))
    if name in ("llama", "internlm2", "baichuan"):
        a = Arch(name, seed, rope_dims=N_EMBD // N_HEAD)
        a.embedding_and_head()
        for il in range(N_LAYER):
            # llama.cpp's `llama` takes an optional output-projection bias; `internlm2` none.
            a.attention(il, out_bias=name == "llama")
            a.gated_ffn(il)
    elif name == "qwen2":
        a = Arch(name, seed)
        a.embedding_and_head()
        for il in range(N_LAYER):
            a.attention(il, biases=True)
            a.gated_ffn(il)
    elif name == "qwen3":
        a = Arch(name, seed, head_dim=32)
        a.embedding_and_head()
        for il in range(N_LAYER):
            a.attention(il, qk_norm=True)
            a.gated_ffn(il)
    elif name == "phi3":
        a = Arch(name, seed, rope_dims=N_EMBD // N_HEAD)
        a.embedding_and_head()
        half = (N_EMBD // N_HEAD) // 2
        a.tensors["rope_factors_short.weight"] = (1.0 + a.rng.random(half) * 3.0).astype(np.float32)
        a.tensors["rope_factors_long.weight"] = (1.0 + a.rng.random(half) * 20.0).astype(np.float32)
        a.keys += [
            ("add_rope_scaling_orig_ctx_len", N_CTX_TRAIN),
            ("add_rope_scaling_attn_factors", 1.2),
        ]
        for il in range(N_LAYER):
            a.attention(il, fused=True)
            a.gated_ffn(il, fused=True)
    elif name == "gemma":
        a = Arch(name, seed, head_dim=32)
        a.embedding_and_head(tied=True)
        for il in range(N_LAYER):
            a.attention(il)
            a.gated_ffn(il)
    elif name == "gemma2":
        a = Arch(name, seed, head_dim=32)
        a.embedding_and_head(tied=True)
        a.keys += [
            ("add_sliding_window", 4),
            ("add_attn_logit_softcapping", 3.0),
            ("add_final_logit_softcapping", 6.0),
        ]
        for il in range(N_LAYER):
            a.attention(il)
            a.vector(f"blk.{il}.post_attention_norm.weight", N_EMBD, mean=1.0)
            a.gated_ffn(il)
            a.vector(f"blk.{il}.post_ffw_norm.weight", N_EMBD, mean=1.0)
    elif name == "command-r":
        a = Arch(name, seed)
        a.layer_norm = True
        a.keys.append(("add_logit_scale", 0.5))
        a.embedding_and_head(tied=True)
        for il in range(N_LAYER):
            a.attention(il)
            p = f"blk.{il}."
            a.matrix(p + "ffn_gate.weight", N_FF, N_EMBD)
            a.matrix(p + "ffn_up.weight", N_FF, N_EMBD)
            a.matrix(p + "ffn_down.weight", N_EMBD, N_FF)
    elif name in ("glm4", "chatglm"):
        a = Arch(name, seed, rope_dims=(N_EMBD // N_HEAD) // 2)
        a.embedding_and_head()
        for il in range(N_LAYER):
            a.attention(il, fused=True, biases=True)
            a.gated_ffn(il, fused=True)
            if name == "glm4":
                a.vector(f"blk.{il}.post_attention_norm.weight", N_EMBD, mean=1.0)
                a.vector(f"blk.{il}.post_ffw_norm.weight", N_EMBD, mean=1.0)
    elif name in ("gpt2", "starcoder"):
        a = Arch(name, seed)
        a.layer_norm = True
        a.ctx_train = 64  # rows of the learned position table
        a.embedding_and_head(tied=name == "gpt2")
        a.tensors["position_embd.weight"] = (
            0.5 * a.rng.standard_normal((a.ctx_train, N_EMBD))
        ).astype(np.float32)
        a.vector("output_norm.bias", N_EMBD, spread=0.2)
        for il in range(N_LAYER):
            p = f"blk.{il}."
            a.attention(il, fused=True, biases=True, out_bias=True)
            a.vector(p + "attn_norm.bias", N_EMBD, spread=0.2)
            a.vector(p + "ffn_norm.weight", N_EMBD, mean=1.0)
            a.vector(p + "ffn_norm.bias", N_EMBD, spread=0.2)
            a.matrix(p + "ffn_up.weight", N_FF, N_EMBD)
            a.vector(p + "ffn_up.bias", N_FF, spread=0.2)
            a.matrix(p + "ffn_down.weight", N_EMBD, N_FF)
            a.vector(p + "ffn_down.bias", N_EMBD, spread=0.2)
    elif name in ("falcon", "falcon-40b"):
        a = Arch("falcon", seed)
        a.layer_norm = True
        a.embedding_and_head()
        a.vector("output_norm.bias", N_EMBD, spread=0.2)
        for il in range(N_LAYER):
            p = f"blk.{il}."
            a.attention(il, fused=True)
            a.vector(p + "attn_norm.bias", N_EMBD, spread=0.2)
            if name == "falcon-40b":
                a.vector(p + "attn_norm_2.weight", N_EMBD, mean=1.0)
                a.vector(p + "attn_norm_2.bias", N_EMBD, spread=0.2)
            a.matrix(p + "ffn_up.weight", N_FF, N_EMBD)
            a.matrix(p + "ffn_down.weight", N_EMBD, N_FF)
    elif name == "mpt":
        a = Arch(name, seed)
        a.layer_norm = True
        a.keys += [("add_max_alibi_bias", 8.0), ("add_clamp_kqv", 1.5)]
        a.embedding_and_head(tied=True)
        for il in range(N_LAYER):
            p = f"blk.{il}."
            a.attention(il, fused=True)
            a.vector(p + "ffn_norm.weight", N_EMBD, mean=1.0)
            a.matrix(p + "ffn_up.weight", N_FF, N_EMBD)
            a.matrix(p + "ffn_down.weight", N_EMBD, N_FF)
    elif name in ("deepseek", "qwen2moe"):
        n_expert, n_ff_exp, n_shared = 4, 32, 2
        a = Arch(name, seed, rope_dims=N_EMBD // N_HEAD)
        a.keys += [
            ("add_expert_count", n_expert),
            ("add_expert_used_count", 2),
            ("add_expert_feed_forward_length", n_ff_exp),
        ]
        if name == "deepseek":
            a.keys += [
                ("add_expert_weights_scale", 1.5),
                ("add_expert_shared_count", n_shared),
                ("add_leading_dense_block_count", 1),
            ]
        else:
            a.keys += [("add_expert_shared_feed_forward_length", n_ff_exp * n_shared)]
        a.embedding_and_head()
        for il in range(N_LAYER):
            a.attention(il, biases=name == "qwen2moe")
            p = f"blk.{il}."
            if name == "qwen2moe":
                a.vector(p + "ffn_gate_inp_shexp.weight", N_EMBD, spread=0.3)
            if name == "deepseek" and il < 1:
                a.gated_ffn(il)
                continue
            a.vector(p + "ffn_norm.weight", N_EMBD, mean=1.0)
            # Router logits spread over a few units, so top-k choices are clear-cut.
            a.matrix(p + "ffn_gate_inp.weight", n_expert, N_EMBD, gain=3.0)
            for part, rows, cols in (("gate", n_ff_exp, N_EMBD), ("up", n_ff_exp, N_EMBD), ("down", N_EMBD, n_ff_exp)):
                a.tensors[p + f"ffn_{part}_exps.weight"] = (
                    a.rng.standard_normal((n_expert, rows, cols)) / np.sqrt(cols)
                ).astype(np.float32)
            a.matrix(p + "ffn_gate_shexp.weight", n_ff_exp * n_shared, N_EMBD)
            a.matrix(p + "ffn_up_shexp.weight", n_ff_exp * n_shared, N_EMBD)
            a.matrix(p + "ffn_down_shexp.weight", N_EMBD, n_ff_exp * n_shared)
    elif name == "starcoder2":
        a = Arch(name, seed)
        a.layer_norm = True
        a.embedding_and_head()
        a.vector("output_norm.bias", N_EMBD, spread=0.2)
        for il in range(N_LAYER):
            p = f"blk.{il}."
            a.attention(il, biases=True, out_bias=True)
            a.vector(p + "attn_norm.bias", N_EMBD, spread=0.2)
            a.vector(p + "ffn_norm.weight", N_EMBD, mean=1.0)
            a.vector(p + "ffn_norm.bias", N_EMBD, spread=0.2)
            a.matrix(p + "ffn_up.weight", N_FF, N_EMBD)
            a.vector(p + "ffn_up.bias", N_FF, spread=0.2)
            a.matrix(p + "ffn_down.weight", N_EMBD, N_FF)
            a.vector(p + "ffn_down.bias", N_EMBD, spread=0.2)
    else:
        raise SystemExit(f"unknown architecture {name}")
    return a


def storage_type(name, array, mixed):
    if array.ndim == 1 or not mixed:
        return Q.F32
    if array.ndim == 3 or "ffn_gate_inp" in name:
        return Q.F16
    if name == "token_embd.weight" or ".attn_" in name:
        return Q.F16
    return Q.Q8_0


def write_gguf(a, path, mixed):
    w = gguf.GGUFWriter(str(path), a.name)
    # general.name stays neutral: llama.cpp keys vocabulary quirks on it (e.g. "phi3").
    w.add_name("tiny random-weight model")
    a.common_keys(w)
    tokens, scores, types = vocab()
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    for name, array in a.tensors.items():
        ty = storage_type(name, array, mixed)
        if ty == Q.F32:
            w.add_tensor(name, array)
        elif ty == Q.F16:
            w.add_tensor(name, array.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(array, ty), raw_dtype=ty)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llama_cpp_logits(path, sequences):
    from llama_cpp import Llama

    out = {}
    for i, ids in enumerate(sequences):
        llm = Llama(
            model_path=str(path),
            n_ctx=64,
            n_batch=64,
            n_ubatch=64,
            n_threads=2,
            logits_all=True,
            verbose=False,
        )
        llm.eval(ids)
        out[f"seq{i}"] = np.array(llm.scores[: len(ids)], dtype=np.float32).copy()
        llm.close()
    return out


def main():
    from safetensors.numpy import save_file

    # One folder per name: the architecture's string, or a variant of one (falcon-40b).
    names = sys.argv[1:] or [
        "llama", "qwen2", "qwen3", "phi3", "gemma", "gemma2", "internlm2", "command-r", "glm4",
        "chatglm", "baichuan", "starcoder2", "gpt2", "starcoder", "falcon", "falcon-40b", "mpt",
        "deepseek", "qwen2moe",
    ]
    rng = np.random.default_rng(20260)
    sequences = [
        [1] + [int(t) for t in rng.integers(3, N_VOCAB, n - 1)] for n in SEQUENCE_LENGTHS
    ]
    for name in names:
        a = build(name)
        d = OUT / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "sequences.json").write_text(
            json.dumps({"sequences": [{"ids": s} for s in sequences]}, indent=1) + "\n"
        )
        for kind, mixed in (("f32", False), ("mixed", True)):
            path = d / f"{name}-{kind}.gguf"
            write_gguf(a, path, mixed)
            save_file(llama_cpp_logits(path, sequences), str(d / f"logits-{kind}.safetensors"))
            print(f"{name} {kind}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
