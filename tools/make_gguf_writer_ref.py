#!/usr/bin/env python3
"""Write crates/bitnet-gguf/tests/data/writer-ref.gguf with PyPI gguf's GGUFWriter, and its
gguf-py dump writer-ref.json (tools/gguf_dump.py).

The file holds one key of every GGUF value type (edge values), arrays of every element type,
a string array, nested arrays, a custom alignment (64) and tensors of several ggml types with
deterministic bytes. The Rust test `writer_matches_gguf_py` builds the same content with
`GgufWriter` and requires byte-identical output; the reader test checks our reading of it
against writer-ref.json. Keep the content in sync with crates/bitnet-gguf/tests/writer.rs.

Usage: tools/make_gguf_writer_ref.py [REPO_ROOT]
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFWriter, GGUFValueType as T, GGMLQuantizationType as Q


def pattern(n: int, seed: int) -> bytes:
    """byte i = (31 i + 17 seed + 5) mod 256 (same formula in the Rust test)."""
    return bytes(((31 * i + 17 * seed + 5) & 0xFF) for i in range(n))


# (name, dims ne0-first, type, n_bytes)
TENSORS = [
    ("f32.weight", [3, 2], Q.F32, 24),
    ("f16.weight", [5], Q.F16, 10),
    ("q4k.weight", [256, 2], Q.Q4_K, 288),
    ("q8_0.weight", [64], Q.Q8_0, 68),
    ("tq2_0.weight", [256], Q.TQ2_0, 66),
    ("i8.weight", [7, 1, 2], Q.I8, 14),
    ("bf16.weight", [4, 3], Q.BF16, 24),
]

NP_DTYPE = {Q.F32: np.float32, Q.F16: np.float16, Q.I8: np.int8}


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    out_dir = root / "crates/bitnet-gguf/tests/data"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "writer-ref.gguf"

    w = GGUFWriter(path, arch="writer-test")  # adds general.architecture first
    w.add_custom_alignment(64)
    w.add_key_value("t.u8", 255, T.UINT8)
    w.add_key_value("t.i8", -128, T.INT8)
    w.add_key_value("t.u16", 65535, T.UINT16)
    w.add_key_value("t.i16", -32768, T.INT16)
    w.add_key_value("t.u32", 4_000_000_000, T.UINT32)
    w.add_key_value("t.i32", -2_000_000_000, T.INT32)
    w.add_key_value("t.f32", 0.1, T.FLOAT32)
    w.add_key_value("t.f32_neg_zero", -0.0, T.FLOAT32)
    w.add_key_value("t.f32_inf", math.inf, T.FLOAT32)
    w.add_key_value("t.bool_true", True, T.BOOL)
    w.add_key_value("t.bool_false", False, T.BOOL)
    w.add_key_value("t.string", "h\u00e9llo \u2713 \U0001F600", T.STRING)
    w.add_key_value("t.string_empty", "", T.STRING)
    w.add_key_value("t.u64", 2**64 - 1, T.UINT64)
    w.add_key_value("t.i64", -(2**63), T.INT64)
    w.add_key_value("t.f64", math.pi, T.FLOAT64)
    w.add_key_value("a.u8", [0, 1, 255], T.ARRAY, T.UINT8)
    w.add_key_value("a.i16", [-1, 2, -3], T.ARRAY, T.INT16)
    w.add_key_value("a.u32", [7], T.ARRAY, T.UINT32)
    w.add_key_value("a.i32", [-5, 6], T.ARRAY, T.INT32)
    w.add_key_value("a.f32", [0.5, -1.25, 3.0e38], T.ARRAY, T.FLOAT32)
    w.add_key_value("a.bool", [True, False, True], T.ARRAY, T.BOOL)
    w.add_key_value("a.u64", [2**40, 3], T.ARRAY, T.UINT64)
    w.add_key_value("a.i64", [-(2**40)], T.ARRAY, T.INT64)
    w.add_key_value("a.f64", [1.0e-300, -2.5], T.ARRAY, T.FLOAT64)
    w.add_key_value("a.string", ["<s>", "", "\u2581the", "\u00e9\u00e8"], T.ARRAY, T.STRING)
    # Nested: gguf-py infers the element type of each inner list from its first item (INT32).
    w.add_key_value("a.nested", [[1, 2], [3], [4, 5, 6]], T.ARRAY, T.ARRAY)

    for seed, (name, dims, qtype, n_bytes) in enumerate(TENSORS):
        raw = pattern(n_bytes, seed)
        if qtype in NP_DTYPE:
            arr = np.frombuffer(raw, dtype=NP_DTYPE[qtype]).reshape(list(reversed(dims)))
            w.add_tensor(name, arr)
        else:
            block, size = {Q.Q4_K: (256, 144), Q.Q8_0: (32, 34), Q.TQ2_0: (256, 66), Q.BF16: (1, 2)}[qtype]
            byte_shape = list(reversed(dims))
            byte_shape[-1] = byte_shape[-1] // block * size
            arr = np.frombuffer(raw, dtype=np.uint8).reshape(byte_shape)
            w.add_tensor(name, arr, raw_dtype=qtype)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    dump = subprocess.run([sys.executable, str(root / "tools/gguf_dump.py"), str(path)],
                          check=True, capture_output=True, text=True).stdout
    (out_dir / "writer-ref.json").write_text(dump)
    print(f"wrote {path} ({path.stat().st_size} bytes) and writer-ref.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
