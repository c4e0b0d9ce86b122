#!/usr/bin/env python3
"""Dequantization digests of every tensor of the two real models (SmolLM2-135M-Instruct Q4_1,
Gemma-3-270M Q4_K_M), computed by PyPI gguf 0.19.0 (GGUFReader + gguf.quants.dequantize).

Writes crates/bitnet-quant/tests/data/model_dequant_digests.json:
    {"<model file name>": [[tensor name, type name, n_elements, digest hex], ...], ...}
The digest of a tensor: its f32 values (NaN as 0x7fc00000) cut into rows of ne0 elements; each
row's 64-bit FNV-1a over its little-endian bytes; then FNV-1a over the row digests' 8-byte
little-endian encodings.

Run after scripts/fetch-test-data.sh:  python3 tools/gen_quant_model_refs.py
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import gguf

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "crates" / "bitnet-quant" / "tests" / "data" / "model_dequant_digests.json"
CACHE = Path(os.environ.get("BITNET_CACHE", Path.home() / ".cache" / "bitnet-rs"))
MODELS = ["SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"]

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)


def fnv1a_rows(rows: np.ndarray) -> np.ndarray:
    h = np.full(rows.shape[0], FNV_OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(rows.shape[1]):
            h = (h ^ rows[:, j].astype(np.uint64)) * FNV_PRIME
    return h


def tensor_digest(values: np.ndarray, ne0: int) -> str:
    bits = values.astype(np.float32).reshape(-1).view(np.uint32).copy()
    bits[np.isnan(values.reshape(-1))] = 0x7FC00000
    rows = bits.view(np.uint8).reshape(-1, 4 * ne0)
    row_digests = fnv1a_rows(rows).astype("<u8")
    total = fnv1a_rows(row_digests.view(np.uint8).reshape(1, -1))
    return f"{int(total[0]):016x}"


def main() -> int:
    result = {}
    for name in MODELS:
        path = CACHE / "models" / name
        if not path.exists():
            sys.exit(f"missing {path}: run scripts/fetch-test-data.sh")
        reader = gguf.GGUFReader(path)
        entries = []
        for t in reader.tensors:
            values = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type)
            ne0 = int(t.shape[0])
            entries.append([t.name, t.tensor_type.name, int(t.n_elements), tensor_digest(values, ne0)])
        result[name] = entries
        print(f"{name}: {len(entries)} tensors")
    lines = ["{"]
    for m, (name, entries) in enumerate(result.items()):
        lines.append(f"  {json.dumps(name)}: [")
        lines += [f"    {json.dumps(e)}" + ("," if i + 1 < len(entries) else "") for i, e in enumerate(entries)]
        lines.append("  ]" + ("," if m + 1 < len(result) else ""))
    lines.append("}")
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
