#!/usr/bin/env python3
"""Op-level BitLinear (and RMSNorm) references for bitnet-kernels, from bitnet.cpp's own trace.

For three BitLinears of layer 0 of the tiny-b158 oracle model (attn_q 256->256, attn_k 256->128,
ffn_down 768->256) it stores the ternary weights t and scale s (from tiny-b158-f32.gguf, whose
ternary tensors hold exactly t*s), the BitLinear input and output that bitnet.cpp's I2_S path
produced (bitnetcpp-i2_s-trace-seq0.safetensors). The kernels must reproduce the output bit for
bit via  a = quantize(x);  D = t.q;  y = ((float)D / a) * s   (oracle README section 5).

Writes crates/bitnet-kernels/tests/data/bitlinear_trace_ref.bin (little-endian), per entry:
  u32 name_len, name bytes, u32 rows, u32 cols, u32 tokens, f32 scale,
  i8[rows*cols] t (row-major, row = output), f32[tokens*cols] x, f32[tokens*rows] y;
preceded by u32 entry count.
Also writes tests/data/rmsnorm_trace_ref.bin (layer-0 RMSNorm, see the end of this script).
Usage: python3 tools/gen_kernel_bitlinear_ref.py  (needs numpy, gguf==0.19.0, safetensors)
"""
import os
import pathlib
import struct

import numpy as np
from gguf import GGUFReader
from safetensors.numpy import load_file

REPO = pathlib.Path(__file__).resolve().parent.parent
# The oracle fixtures are in the repository (testdata/oracle); BITNET_ORACLE_DIR overrides.
ORACLE = pathlib.Path(os.environ.get("BITNET_ORACLE_DIR", REPO / "testdata/oracle")) / "tiny-b158"
LINEARS = [  # (tensor, traced input, traced output)
    ("blk.0.attn_q.weight", "002:attn_norm-0", "003:Qcur-0"),
    ("blk.0.attn_k.weight", "002:attn_norm-0", "005:Kcur-0"),
    ("blk.0.ffn_down.weight", "026:ffn_sub_norm-0", "027:ffn_down-0"),
]

reader = GGUFReader(str(ORACLE / "gguf/tiny-b158-f32.gguf"))
tensors = {t.name: np.asarray(t.data, dtype=np.float32) for t in reader.tensors}
trace = load_file(str(ORACLE / "reference/bitnetcpp-i2_s-trace-seq0.safetensors"))

out = REPO / "crates/bitnet-kernels/tests/data/bitlinear_trace_ref.bin"
with open(out, "wb") as f:
    f.write(struct.pack("<I", len(LINEARS)))
    for name, x_key, y_key in LINEARS:
        w = tensors[name]  # numpy shape (rows, cols): GGUF [cols, rows] reversed
        rows, cols = w.shape
        scale = np.float32(np.abs(w).max())
        t = np.rint(w / scale).astype(np.int8)
        assert np.array_equal(t.astype(np.float32) * scale, w), name
        x, y = trace[x_key].astype(np.float32), trace[y_key].astype(np.float32)
        tokens = x.shape[0]
        assert x.shape == (tokens, cols) and y.shape == (tokens, rows), (name, x.shape, y.shape)
        f.write(struct.pack("<I", len(name)) + name.encode())
        f.write(struct.pack("<IIIf", rows, cols, tokens, scale))
        f.write(t.tobytes())
        f.write(x.astype("<f4").tobytes())
        f.write(y.astype("<f4").tobytes())
print(f"wrote {out} ({out.stat().st_size} bytes)")

# RMSNorm of layer 0: inp_embd -> norm-0 (no weight) -> attn_norm-0 (times blk.0.attn_norm.weight).
# Writes tests/data/rmsnorm_trace_ref.bin: u32 tokens, u32 n, f32 eps, f32 x[tokens*n],
# f32 norm[tokens*n], f32 weight[n], f32 norm*weight[tokens*n].
eps = float(reader.fields["bitnet-b1.58.attention.layer_norm_rms_epsilon"].parts[-1][0])
x, normed, weighted = (trace[k].astype("<f4") for k in ("000:inp_embd", "001:norm-0", "002:attn_norm-0"))
weight = tensors["blk.0.attn_norm.weight"].astype("<f4")
norm_out = out.parent / "rmsnorm_trace_ref.bin"
with open(norm_out, "wb") as f:
    f.write(struct.pack("<IIf", x.shape[0], x.shape[1], eps))
    for a in (x, normed, weight, weighted):
        f.write(a.tobytes())
print(f"wrote {norm_out} ({norm_out.stat().st_size} bytes), eps {eps}")
