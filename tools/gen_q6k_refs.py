#!/usr/bin/env python3
"""Q6_K reference for bitnet-quant: PyPI gguf's decoding of the engine's own Q6_K bytes.

gguf 0.19.0 (gguf.quants.Q6_K) dequantizes Q6_K but cannot quantize it, so the bytes come from the
engine (bitnet-quant's quantizer, ggml's quantize_row_q6_K_ref algorithm) and gguf decodes them:

1. writes the inputs X (seeded: embedding-like normal rows, heavy tails, an outlier per block,
   all-zero and below-GROUP_MAX_EPS blocks, one live sub-block, mixed magnitudes) to a work dir;
2. runs the ignored test `write_q6_k_bytes_for_gguf` of crates/bitnet-quant/tests/q6_k_gguf.rs,
   which quantizes X with the engine and writes the bytes;
3. dequantizes those bytes with gguf.quants and writes
   crates/bitnet-quant/tests/data/q6_k_gguf_ref.bin (little-endian):
     magic "BQ6K", u32 version=1, u32 n_blocks,
     f32[n_blocks*256] X, u8[n_blocks*210] the engine's bytes, f32[n_blocks*256] gguf's values.

The Rust test then requires: the engine still writes exactly these bytes (regenerate with this
script when the quantizer changes on purpose), its dequantizer gives gguf's values bit for bit, and
the values are within the documented error bounds of X.

Run: python3 tools/gen_q6k_refs.py   (needs numpy, gguf==0.19.0 and cargo)
"""
import pathlib
import struct
import subprocess
import tempfile

import numpy as np
from gguf import GGMLQuantizationType, quants

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/bitnet-quant/tests/data/q6_k_gguf_ref.bin"
QK = 256
BLOCK_BYTES = 210

rng = np.random.default_rng(20261203)
rows = []
# Embedding-like rows: a tied head of n_embd 2560 has 10 blocks per row.
rows += list(rng.normal(0.0, 0.02, size=(24, QK)))
# Heavy tails (Student t, 3 degrees of freedom).
rows += list(rng.standard_t(3, size=(8, QK)) * 0.05)
# One large outlier per block.
for _ in range(8):
    r = rng.normal(0.0, 0.01, size=QK)
    r[rng.integers(QK)] = rng.choice([-1.0, 1.0]) * 0.5
    rows.append(r)
# All zero; below GROUP_MAX_EPS (1e-15); one live sub-block; per-sub-block magnitudes 1e-6..1e3.
rows.append(np.zeros(QK))
rows.append(rng.normal(0.0, 1e-17, size=QK))
live = np.zeros(QK)
live[48:64] = rng.normal(0.0, 1.0, size=16)
rows.append(live)
rows.append(rng.normal(0.0, 1.0, size=QK) * np.repeat(10.0 ** rng.uniform(-6, 3, size=16), 16))
# Uniform values and an all-positive constant block.
rows += list(rng.uniform(-3.0, 3.0, size=(4, QK)))
rows.append(np.full(QK, 0.75))
x = np.asarray(rows, dtype=np.float32)
n_blocks = x.shape[0]

with tempfile.TemporaryDirectory() as work:
    work = pathlib.Path(work)
    (work / "x.bin").write_bytes(x.astype("<f4").tobytes())
    subprocess.run(
        ["cargo", "test", "--locked", "-q", "-p", "bitnet-quant", "--test", "q6_k_gguf", "--",
         "--ignored", "--exact", "write_q6_k_bytes_for_gguf"],
        cwd=ROOT, check=True, env={**__import__("os").environ, "BITNET_Q6K_WORK": str(work)},
    )
    ours = np.frombuffer((work / "q6k.bin").read_bytes(), dtype=np.uint8)
assert ours.size == n_blocks * BLOCK_BYTES, ours.size

values = quants.dequantize(ours.reshape(n_blocks, BLOCK_BYTES), GGMLQuantizationType.Q6_K)
values = np.asarray(values, dtype=np.float32).reshape(n_blocks, QK)

OUT.parent.mkdir(parents=True, exist_ok=True)
with open(OUT, "wb") as f:
    f.write(b"BQ6K")
    f.write(struct.pack("<II", 1, n_blocks))
    f.write(x.astype("<f4").tobytes())
    f.write(ours.tobytes())
    f.write(values.astype("<f4").tobytes())
err = np.abs(values - x)
print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {n_blocks} blocks); "
      f"max |error| / max|x| per block: {np.max(err.max(1) / np.maximum(np.abs(x).max(1), 1e-30)):.4f}")
