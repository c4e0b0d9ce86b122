#!/usr/bin/env python3
"""Q8_0 reference for bitnet-kernels: inputs and their Q8_0 blocks as quantized by PyPI `gguf`
(gguf.quants.Q8_0, "bit-exact same results as ggml-quants.c").

Writes crates/bitnet-kernels/tests/data/q8_0_gguf_ref.bin (little-endian):
  u32 rows, u32 cols, u32 batch,
  f32[rows*cols]   weights W (row-major),
  u8[rows*cols/32*34] gguf Q8_0 blocks of W (f16 d, then 32 int8 codes, per block),
  f32[batch*cols]  activations X,
  u8[batch*cols/32*34] gguf Q8_0 blocks of X.
Usage: python3 tools/gen_kernel_q8_refs.py  (needs numpy, gguf==0.19.0)
"""
import pathlib
import struct

import numpy as np
from gguf import GGMLQuantizationType, quants

ROWS, COLS, BATCH = 12, 256, 3
rng = np.random.default_rng(20261128)

w = rng.normal(0.0, 0.05, size=(ROWS, COLS)).astype(np.float32)
# Exact ties: a block whose max is 127 (d = 1) holding k + 0.5 values (roundf: away from zero).
w[0, :32] = np.array([127.0] + [k + 0.5 for k in range(-16, 15)], dtype=np.float32)
w[1, 32:64] = 0.0  # all-zero block: d = 0, codes 0
w[2, 64:96] *= 1e4  # large magnitudes
x = rng.normal(0.0, 1.0, size=(BATCH, COLS)).astype(np.float32)
x[0, :32] = np.array([-63.5] + [k * 0.25 for k in range(-15, 16)], dtype=np.float32)

wq = quants.quantize(w, GGMLQuantizationType.Q8_0)
xq = quants.quantize(x, GGMLQuantizationType.Q8_0)
assert wq.shape == (ROWS, COLS // 32 * 34) and xq.shape == (BATCH, COLS // 32 * 34)

out = pathlib.Path(__file__).resolve().parent.parent / "crates/bitnet-kernels/tests/data/q8_0_gguf_ref.bin"
out.parent.mkdir(parents=True, exist_ok=True)
with open(out, "wb") as f:
    f.write(struct.pack("<III", ROWS, COLS, BATCH))
    f.write(w.astype("<f4").tobytes())
    f.write(wq.astype(np.uint8).tobytes())
    f.write(x.astype("<f4").tobytes())
    f.write(xq.astype(np.uint8).tobytes())
print(f"wrote {out} ({out.stat().st_size} bytes)")
