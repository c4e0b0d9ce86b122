#!/usr/bin/env python3
"""Reference data for bitnet-quant's format tests, computed by PyPI gguf (gguf.quants).

Writes, under crates/bitnet-quant/tests/data/:

* crates/bitnet-quant/src/iq2s_grid.rs - the IQ2_S grid (1024 entries of 8 magnitudes) decoded
                        from gguf-py's own table, written as Rust data (generated, not hand-written).
* ``deq_<TYPE>.bin``  - dequantization references: random blocks (bytes from a splitmix64 stream
                        the Rust test regenerates from the stored seed) plus explicitly stored
                        "special" blocks (extreme f16 scales: 0, -0, subnormal, max, inf, nan,
                        all-zero and all-one code bytes), and one 64-bit FNV-1a digest per block of
                        gguf-py's f32 output (NaN canonicalised to 0x7fc00000).
* ``q_<TYPE>.bin``    - quantization references: random f32 blocks (from the same stream, built
                        with exactly representable float operations), plus stored special inputs,
                        and one FNV-1a digest per block of gguf-py's output bytes.

File layout (all little-endian):
    magic[4] ("BQDQ" or "BQQT"), u32 version=1, u32 block_len, u32 type_size, u64 seed,
    u32 n_random, u32 n_special, special payload (n_special * type_size bytes for BQDQ,
    n_special * block_len f32 for BQQT), then (n_random + n_special) u64 digests.

Run: python3 tools/gen_quant_refs.py   (needs gguf==0.19.0 and numpy, see tools/requirements.txt)
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
from gguf import quants
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as T

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "crates" / "bitnet-quant" / "tests" / "data"
GRID_RS = ROOT / "crates" / "bitnet-quant" / "src" / "iq2s_grid.rs"

M64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15


def splitmix64(seed: int, n: int) -> np.ndarray:
    """n outputs of splitmix64 started at `seed` (state advanced before each output)."""
    k = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + k * np.uint64(GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z


def stream_bytes(seed: int, n: int) -> np.ndarray:
    words = splitmix64(seed, (n + 7) // 8)
    return words.view(np.uint8)[:n].copy()  # little-endian machine


FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3


def fnv1a_rows(rows: np.ndarray) -> np.ndarray:
    """FNV-1a 64 of each row of a 2-D uint8 array (vectorised over rows)."""
    h = np.full(rows.shape[0], FNV_OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(rows.shape[1]):
            h = (h ^ rows[:, j].astype(np.uint64)) * np.uint64(FNV_PRIME)
    return h


def f32_digest(values: np.ndarray) -> np.ndarray:
    bits = values.astype(np.float32).view(np.uint32).copy()
    bits[np.isnan(values)] = 0x7FC00000
    return fnv1a_rows(bits.view(np.uint8).reshape(values.shape[0], -1))


# f16 bit patterns that stress the scale handling.
F16_SPECIALS = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x7BFF, 0xFBFF,
                0x7C00, 0xFC00, 0x7E00, 0x7C01, 0xFE00, 0x3C00, 0x3555, 0x1400]

# Where each type keeps its f16 scale fields (byte offsets within a block).
SCALE_OFFSETS = {
    "Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0],
    "Q2_K": [80, 82], "Q3_K": [108], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208],
    "IQ2_S": [0], "TQ1_0": [52], "TQ2_0": [64], "F16": [], "BF16": [],
}

DEQ_TYPES = ["F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K",
             "Q4_K", "Q5_K", "Q6_K", "IQ2_S", "TQ1_0", "TQ2_0"]
QUANT_TYPES = ["F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "TQ1_0", "TQ2_0"]

# F16/BF16 have 1-element "blocks"; the references group them in 256-element rows.
ROW_GROUP = 256


def geometry(name: str) -> tuple[int, int]:
    qt = T[name]
    block, size = GGML_QUANT_SIZES[qt]
    if block == 1:
        return ROW_GROUP, size * ROW_GROUP
    return block, size


def seed_for(kind: str, name: str) -> int:
    h = FNV_OFFSET
    for b in f"{kind}:{name}".encode():
        h = ((h ^ b) * FNV_PRIME) & M64
    return h


def header(magic: bytes, block_len: int, type_size: int, seed: int, n_random: int, n_special: int) -> bytes:
    return magic + struct.pack("<IIIQII", 1, block_len, type_size, seed, n_random, n_special)


def dequant_special_blocks(name: str, type_size: int) -> np.ndarray:
    rng_bytes = stream_bytes(seed_for("deq-special", name), 256 * type_size).reshape(256, type_size)
    blocks = []
    if name in ("F16", "BF16"):
        # every f16 / bf16 class: zeros, subnormals, max, inf, nan payloads, both signs
        pats = np.array(F16_SPECIALS + [0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0x0080, 0x007F, 0x7F7F,
                                        0xFF7F, 0x8080, 0xFFFF, 0x7FFF], dtype=np.uint16)
        row = np.resize(pats, ROW_GROUP)
        blocks.append(row.view(np.uint8))
        blocks.append(np.roll(row, 7).view(np.uint8))
        return np.stack(blocks)
    offsets = SCALE_OFFSETS[name]
    i = 0
    for off in offsets:
        for pat in F16_SPECIALS:
            b = rng_bytes[i % 256].copy()
            i += 1
            b[off:off + 2] = np.frombuffer(struct.pack("<H", pat), dtype=np.uint8)
            blocks.append(b)
    # code bytes all 0x00 / all 0xFF with unit scales (extreme codes, extreme sub-scales)
    for fill in (0x00, 0xFF, 0x55, 0xAA):
        b = np.full(type_size, fill, dtype=np.uint8)
        for off in offsets:
            b[off:off + 2] = np.frombuffer(struct.pack("<H", 0x3C00), dtype=np.uint8)
        blocks.append(b)
    return np.stack(blocks)


def make_dequant(name: str, n_random: int) -> None:
    qt = T[name]
    block_len, type_size = geometry(name)
    seed = seed_for("deq", name)
    random_blocks = stream_bytes(seed, n_random * type_size).reshape(n_random, type_size)
    special = dequant_special_blocks(name, type_size)
    all_blocks = np.concatenate([random_blocks, special])
    with np.errstate(all="ignore"):
        out = quants.dequantize(all_blocks, qt).astype(np.float32).reshape(all_blocks.shape[0], block_len)
    digests = f32_digest(out)
    path = DATA / f"deq_{name}.bin"
    with open(path, "wb") as f:
        f.write(header(b"BQDQ", block_len, type_size, seed, n_random, special.shape[0]))
        f.write(special.tobytes())
        f.write(digests.astype("<u8").tobytes())
    print(f"{path.name}: {n_random} random + {special.shape[0]} special blocks")


def random_quant_inputs(seed: int, n_blocks: int, block_len: int) -> np.ndarray:
    """Per block: u0 picks a power-of-two scale 2^e (e in -40..30), u1 a value mode; then one
    u64 per element. Every float operation is exact, so Rust reproduces the same f32 values."""
    w = splitmix64(seed, n_blocks * (block_len + 2)).reshape(n_blocks, block_len + 2)
    e = (w[:, 0] % np.uint64(71)).astype(np.int64) - 40
    mode = (w[:, 1] % np.uint64(4)).astype(np.int64)
    u = w[:, 2:]
    k = (u >> np.uint64(40)).astype(np.int64)  # 24 random bits
    uniform = k.astype(np.float32) * np.float32(2.0 ** -23) - np.float32(1.0)
    sparse = np.where(((u >> np.uint64(8)) % np.uint64(3)) == 0, np.float32(0.0), uniform)
    ternary = ((k % 3) - 1).astype(np.float32)
    grid = ((k % 17) - 8).astype(np.float32) * np.float32(0.125)
    v = np.select([mode[:, None] == 0, mode[:, None] == 1, mode[:, None] == 2], [sparse, ternary, grid], uniform)
    scale = np.ldexp(np.float32(1.0), e).astype(np.float32)
    return (v.astype(np.float32) * scale[:, None]).astype(np.float32)


def quant_special_inputs(name: str, block_len: int) -> np.ndarray:
    rows = []
    idx = np.arange(block_len, dtype=np.float32)
    rows.append(np.zeros(block_len, np.float32))
    rows.append(np.full(block_len, -0.0, np.float32))
    one = np.zeros(block_len, np.float32)
    one[block_len - 1] = -3.0
    rows.append(one)
    # equal magnitudes of both signs: the sign of the first max-|x| element decides Q4_0/Q5_0
    pm = np.where(idx % 2 == 0, np.float32(2.5), np.float32(-2.5)).astype(np.float32)
    rows.append(pm)
    rows.append(-pm)
    rows.append(((idx - block_len / 2) * np.float32(0.5)).astype(np.float32))  # exact .5 ties
    rows.append(((idx % 7) - 3).astype(np.float32) * np.float32(1.0 / 3.0))
    rows.append(((idx % 5) - 2).astype(np.float32) * np.float32(1e-6))  # tiny: f16-subnormal scales
    rows.append(((idx % 5) - 2).astype(np.float32) * np.float32(1e-9))
    rows.append(((idx % 9) - 4).astype(np.float32) * np.float32(3e7))  # scale beyond f16 max
    rows.append(((idx % 3) - 1).astype(np.float32) * np.float32(0.0371))  # ternary t*s
    rows.append(np.full(block_len, 7.0, np.float32))
    if name in ("F16", "BF16"):
        # rounding boundaries, overflow, subnormals
        vals = np.array([65504.0, 65519.99, 65520.0, -65520.0, 1e-8, 6e-8, 5.9604645e-08, 2.98e-8,
                         1.0009765625, 1.00048828125, 1.000732421875, 3.0e38, -3.4028235e38, 1e-40,
                         1.00390625, 1.001953125, 0.1, -0.2, 1.0 / 3.0], dtype=np.float32)
        rows.append(np.resize(vals, block_len).astype(np.float32))
        bits = np.resize(np.array([0x7F800000, 0xFF800000, 0x00000001, 0x807FFFFF, 0x3F808000,
                                   0x3F818000, 0x3F80FFFF, 0x477FEFFF, 0x477FF000], dtype=np.uint32), block_len)
        rows.append(bits.view(np.float32))
        if name == "BF16":
            nans = np.resize(np.array([0x7FC00000, 0xFFC00001, 0x7F800001, 0x7FFFFFFF, 0xFF80FFFF],
                                      dtype=np.uint32), block_len)
            rows.append(nans.view(np.float32))
    return np.stack(rows).astype(np.float32)


def make_quant(name: str, n_random: int) -> None:
    qt = T[name]
    block_len, type_size = geometry(name)
    seed = seed_for("quant", name)
    random_in = random_quant_inputs(seed, n_random, block_len)
    special = quant_special_inputs(name, block_len)
    all_in = np.concatenate([random_in, special])
    with np.errstate(all="ignore"):
        out = np.asarray(quants.quantize(all_in, qt))
    out = out.view(np.uint8).reshape(all_in.shape[0], type_size)
    digests = fnv1a_rows(out)
    path = DATA / f"q_{name}.bin"
    with open(path, "wb") as f:
        f.write(header(b"BQQT", block_len, type_size, seed, n_random, special.shape[0]))
        f.write(special.astype("<f4").tobytes())
        f.write(digests.astype("<u8").tobytes())
    print(f"{path.name}: {n_random} random + {special.shape[0]} special blocks")


def iq2s_grid() -> np.ndarray:
    cls = quants.IQ2_S
    cls.init_grid()
    grid = np.asarray(cls.grid).reshape(1024, 8).astype(np.uint8)
    return grid.view("<u8").reshape(1024)


def write_grid() -> None:
    grid = iq2s_grid()
    lines = [
        "//! The IQ2_S grid: 1024 entries of 8 magnitudes (bytes, little-endian in each u64).",
        "//! GENERATED by tools/gen_quant_refs.py from PyPI gguf 0.19.0's table; do not edit.",
        "",
        "/// Grid entry `i` holds the 8 magnitudes of one IQ2_S group, element `j` in byte `j`.",
        "#[rustfmt::skip]",
        "pub(crate) const IQ2S_GRID: [u64; 1024] = [",
    ]
    for i in range(0, 1024, 4):
        lines.append("    " + " ".join(f"0x{int(v):016x}," for v in grid[i:i + 4]))
    lines.append("];")
    GRID_RS.write_text("\n".join(lines) + "\n")
    print(f"{GRID_RS.relative_to(ROOT)}: 1024 entries")


def main() -> int:
    DATA.mkdir(parents=True, exist_ok=True)
    write_grid()
    for name in DEQ_TYPES:
        block_len, _ = geometry(name)
        make_dequant(name, 4096 if block_len == 32 else 2048)
    for name in QUANT_TYPES:
        block_len, _ = geometry(name)
        make_quant(name, 4096 if block_len == 32 else 2048)
    return 0


if __name__ == "__main__":
    sys.exit(main())
