#!/usr/bin/env python3
"""Make the packed ("offline") Hugging Face layout of a latent BitNet checkpoint, with numpy and
safetensors only: the input the converter's packed-weight path is tested on.

For every BitLinear weight W [out, in] (q/k/v/o_proj, gate/up/down_proj) of SRC:
  s = max(mean|W| (float64, then float32), 1e-5)            -- the oracle's absmean rule
  t = clip(round_half_even(W / s in float32), -1, 1)
  weight       = uint8 [out/4, in]: bits 2i..2i+1 of byte [r, c] hold t[i*(out/4) + r, c] + 1
                 (transformers' integrations/bitnet.py `pack_weights` layout)
  weight_scale = float32 [1] = 1/s (rounded once from float64): transformers' BitLinear divides
                 its output by it (quantization_config linear_class "bitlinear", mode "offline")
The embedding is stored as float16 (the tiny model's embedding is f16-representable, so this is
exact), norms stay float32. The tensors are split over SHARDS files with a
model.safetensors.index.json, and config.json gains the quantization_config; tokenizer files are
copied unchanged.

Usage: tools/make_packed_checkpoint.py [SRC_DIR] [DST_DIR] [--shards N]
  defaults: SRC_DIR = testdata/oracle/tiny-b158/hf,
            DST_DIR = $BITNET_CACHE (default ~/.cache/bitnet-rs)/tiny-b158-packed, N = 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json",
                   "special_tokens_map.json", "generation_config.json")


def is_linear(name: str) -> bool:
    return name.endswith(".weight") and name.split(".")[-2] in LINEARS


def absmean_ternary(w: np.ndarray) -> tuple[np.ndarray, np.float32]:
    w = w.astype(np.float32)
    s = np.float32(max(np.abs(w.astype(np.float64)).mean(), 1e-5))
    t = np.clip(np.round(w / s), -1, 1).astype(np.int8)
    return t, s


def pack(t: np.ndarray) -> np.ndarray:
    out_features, in_features = t.shape
    assert out_features % 4 == 0, f"{out_features} rows cannot be packed 4 per byte"
    rows = out_features // 4
    codes = (t + 1).astype(np.uint8)
    packed = np.zeros((rows, in_features), dtype=np.uint8)
    for i in range(4):
        packed |= codes[i * rows:(i + 1) * rows] << np.uint8(2 * i)
    return packed


def main() -> None:
    repo = Path(__file__).resolve().parent.parent
    cache = Path(os.environ.get("BITNET_CACHE", Path.home() / ".cache/bitnet-rs"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", nargs="?", type=Path, default=repo / "testdata/oracle/tiny-b158/hf")
    ap.add_argument("dst", nargs="?", type=Path, default=cache / "tiny-b158-packed")
    ap.add_argument("--shards", type=int, default=2)
    args = ap.parse_args()

    weights = load_file(str(args.src / "model.safetensors"))
    out: dict[str, np.ndarray] = {}
    for name in sorted(weights):
        w = weights[name]
        if is_linear(name):
            t, s = absmean_ternary(w)
            out[name] = pack(t)
            out[name + "_scale"] = np.array([1.0 / np.float64(s)], dtype=np.float32)
        elif name == "model.embed_tokens.weight":
            h = w.astype(np.float16)
            assert np.array_equal(h.astype(np.float32), w), "embedding is not f16-representable"
            out[name] = h
        else:
            out[name] = w

    args.dst.mkdir(parents=True, exist_ok=True)
    names = sorted(out)
    n = max(1, args.shards)
    weight_map = {}
    total = 0
    for k in range(n):
        part = names[k * len(names) // n:(k + 1) * len(names) // n]
        file = f"model-{k + 1:05d}-of-{n:05d}.safetensors"
        save_file({name: out[name] for name in part}, str(args.dst / file), metadata={"format": "pt"})
        for name in part:
            weight_map[name] = file
            total += out[name].nbytes
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (args.dst / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")

    config = json.loads((args.src / "config.json").read_text())
    config["quantization_config"] = {
        "quant_method": "bitnet",
        "linear_class": "bitlinear",
        "quantization_mode": "offline",
    }
    (args.dst / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for f in TOKENIZER_FILES:
        if (args.src / f).is_file():
            shutil.copyfile(args.src / f, args.dst / f)
    print(f"wrote {args.dst} ({n} shards, {len(out)} tensors)")


if __name__ == "__main__":
    main()
