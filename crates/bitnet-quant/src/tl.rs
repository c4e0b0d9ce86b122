//! bitnet.cpp's LUT formats TL1 (type 38) and TL2 (type 39): their tile table, where every weight
//! of a known matrix shape sits in the packed bytes, and exact decoding / encoding.
//!
//! Facts (bitnet.cpp `utils/convert-hf-to-gguf-bitnet.py`, `utils/codegen_tl{1,2}.py`,
//! `setup_env.py`; the llama.cpp fork's `ggml_nbytes` and gguf-py writer):
//! - The converter packs an `M × K` matrix (M = ne1 outputs, K = ne0 inputs) with the tile sizes
//!   `BM` (rows per tile), `BK` (columns per tile) and `bm` (rows per SIMD block) that
//!   `include/kernel_config.ini` lists for exactly that `(M, K)`. `setup_env.py` always runs the
//!   codegen (overwriting any preset `.ini`) before converting, with fixed arguments per model;
//!   [`TL1_TILES`] and [`TL2_TILES`] are those arguments. Any other shape is refused by the
//!   converter (`NotImplementedError`), so no file holds one.
//! - TL1: each pair of neighbouring weights `(w0, w1)` of a row is the 4-bit index
//!   `3·w0 + w1 + 4` (0..=8); the pairs are permuted by tile into bytes, first pair of a byte in
//!   the high nibble. Data = `M·K/4` bytes.
//! - TL2: the first `K3 = K − K mod BK` columns go in triples `v = 9·w0 + 3·w1 + w2`, stored as
//!   `|v|` (4 bits, two per byte, `bm = 32`, 8-byte chunks 1 and 2 of every 32-byte row swapped)
//!   followed by a plane of sign bits (1 where `v < 0`, sixteen per little-endian u16, first in
//!   bit 15); the remaining `K mod BK` columns (32 or 64) follow in TL1 pairs tiled with
//!   `BK = 32, bm = 32`. Zero padding then fills `(K − 256)·M/3·5/8 + 256·M/2·4/8` bytes.
//! - The f32 per-tensor scale (the converter's `max|W|`, written as the next GGUF tensor
//!   `<name>_scale`, which the fork's writer leaves out of the tensor table) sits at the data
//!   length rounded up to 32 bytes, i.e. at `tensor_bytes − 32` in both formats.

use bitnet_gguf::GgmlType;

use crate::ternary::matrix_shape;
use crate::QuantError;

/// The tile sizes bitnet.cpp generated kernels (and packed weights) with for one matrix shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlTiles {
    /// Output features, ne1 (the converter's and codegen's `M`).
    pub m: usize,
    /// Input features, ne0 (`K`).
    pub k: usize,
    /// Rows per tile (`BM`).
    pub tile_rows: usize,
    /// Columns per tile (`BK`, kernel_config's `bk`).
    pub tile_cols: usize,
    /// Rows per SIMD block (`bm`, kernel_config's `bmm`).
    pub block_rows: usize,
}

const fn tiles(
    m: usize,
    k: usize,
    tile_rows: usize,
    tile_cols: usize,
    block_rows: usize,
) -> TlTiles {
    TlTiles {
        m,
        k,
        tile_rows,
        tile_cols,
        block_rows,
    }
}

/// TL1 tiles: `setup_env.py`'s `codegen_tl1.py` arguments for bitnet_b1_58-large, bitnet_b1_58-3B
/// and Llama3-8B-1.58-100B-tokens (the 2B-4T and Falcon3 entries reuse these tables, whose shapes
/// theirs do not match).
pub const TL1_TILES: [TlTiles; 10] = [
    tiles(1536, 4096, 256, 128, 32),
    tiles(1536, 1536, 128, 64, 64),
    tiles(4096, 1536, 256, 128, 32),
    tiles(3200, 8640, 160, 64, 32),
    tiles(3200, 3200, 320, 128, 64),
    tiles(8640, 3200, 320, 64, 32),
    tiles(14336, 4096, 256, 128, 32),
    tiles(4096, 14336, 128, 64, 64),
    tiles(1024, 4096, 256, 128, 32),
    tiles(4096, 4096, 128, 64, 64),
];

/// TL2 tiles: `setup_env.py`'s `codegen_tl2.py` arguments (the same three models; `bm` is
/// always 32, which codegen_tl2 asserts).
pub const TL2_TILES: [TlTiles; 10] = [
    tiles(1536, 4096, 256, 96, 32),
    tiles(1536, 1536, 128, 192, 32),
    tiles(4096, 1536, 256, 96, 32),
    tiles(3200, 8640, 160, 96, 32),
    tiles(3200, 3200, 320, 96, 32),
    tiles(8640, 3200, 320, 96, 32),
    tiles(14336, 4096, 256, 96, 32),
    tiles(4096, 14336, 128, 96, 32),
    tiles(1024, 4096, 256, 96, 32),
    tiles(4096, 4096, 128, 96, 32),
];

/// Why a TL tensor of another shape is refused; lists every known `[ne0, ne1]`.
pub(crate) const TL_UNKNOWN_SHAPE: &str = "no tile sizes (BM, BK, bm) are known for this shape: \
bitnet.cpp generates TL1/TL2 kernels and packs weights only for the bitnet_b1_58-large, \
bitnet_b1_58-3B and Llama3-8B-1.58-100B-tokens matrices, [ne0, ne1] = [4096, 1536], \
[1536, 1536], [1536, 4096], [8640, 3200], [3200, 3200], [3200, 8640], [4096, 14336], \
[14336, 4096], [4096, 1024], [4096, 4096]";

/// TL2's tail of pairs is tiled with these fixed sizes (the converter's call with BY = 32, bm = 32).
const TAIL_TILE_COLS: usize = 32;
const TAIL_BLOCK_ROWS: usize = 32;
/// TL2 rows per SIMD block (codegen_tl2 accepts only 32) and columns per block (`by = 192 / bm`).
const TL2_BLOCK_ROWS: usize = 32;
const TL2_BLOCK_COLS: usize = 6;
/// TL2 sign plane: columns covered by one 16-bit word group (`by · 4`).
const SIGN_GROUP_COLS: usize = 24;

/// The tile table entry of `ty` for a matrix of `rows` (ne1) × `cols` (ne0), or the error naming
/// the shape and listing the known ones.
pub fn tl_tiles(ty: GgmlType, rows: usize, cols: usize) -> Result<TlTiles, QuantError> {
    let table: &[TlTiles] = match ty {
        GgmlType::TL1 => &TL1_TILES,
        GgmlType::TL2 => &TL2_TILES,
        _ => {
            return Err(QuantError::Unsupported {
                ty,
                op: "TL tile lookup",
            })
        }
    };
    table
        .iter()
        .find(|t| t.m == rows && t.k == cols)
        .copied()
        .ok_or(QuantError::UnsupportedLayout {
            ty,
            shape: vec![cols as u64, rows as u64],
            reason: TL_UNKNOWN_SHAPE,
        })
}

/// The tile table entry for a TL tensor of ne0-first `dims`: a matrix `[ne0, ne1]` (trailing
/// dimensions of 1 allowed) of a known shape.
pub(crate) fn tl_shape(ty: GgmlType, dims: &[u64]) -> Result<TlTiles, QuantError> {
    let (rows, cols) = matrix_shape(ty, dims)?;
    if dims.len() < 2 || dims[2..].iter().any(|&d| d != 1) {
        return Err(QuantError::BadShape {
            ty,
            shape: dims.to_vec(),
            reason: "TL1/TL2 tensors are matrices [ne0, ne1]",
        });
    }
    tl_tiles(ty, rows, cols)
}

/// The 8-byte chunk swap TL2 applies to every 32-byte row (chunks 0, 2, 1, 3).
#[inline]
fn swap_chunks(s: usize) -> usize {
    const ORDER: [usize; 4] = [0, 2, 1, 3];
    ORDER[s / 8] * 8 + s % 8
}

/// Where a 4-bit index lives: byte offset and whether it is the high nibble.
type NibbleAt = (usize, bool);

/// TL1: the nibble of pair `p` (columns `2p, 2p+1`) of row `r`.
#[inline]
fn tl1_nibble(t: &TlTiles, r: usize, p: usize) -> NibbleAt {
    let bm = t.block_rows;
    let by = 256 / bm; // columns per SIMD block
    let (tile, in_tile) = (r / t.tile_rows, r % t.tile_rows);
    let (block, row) = (in_tile / bm, in_tile % bm);
    let (group16, lane) = (row / 16, row % 16);
    let pairs_per_tile = t.tile_cols / 2;
    let (col_tile, q) = (p / pairs_per_tile, p % pairs_per_tile);
    let (col_block, e) = (q / (by / 2), q % (by / 2));
    let (nibble_pair, second) = (e / 2, e % 2);
    let byte = (((((tile * (t.k / t.tile_cols) + col_tile) * (t.tile_rows / bm) + block)
        * (t.tile_cols / by)
        + col_block)
        * (bm / 16)
        + group16)
        * (by / 4)
        + nibble_pair)
        * 16
        + lane;
    (byte, second == 0)
}

/// The tiling of a TL2 region (the triples, or the tail of pairs): its tile sizes and the number
/// of columns of the region.
struct Tl2Region {
    tile_rows: usize,
    tile_cols: usize,
    block_rows: usize,
    block_cols: usize,
    cols: usize,
    /// Columns per stored unit: 3 (triples) or 2 (pairs).
    unit: usize,
}

impl Tl2Region {
    /// The nibble of unit `u` (triple or pair) of row `r`, relative to the region's start.
    #[inline]
    fn nibble(&self, r: usize, u: usize) -> NibbleAt {
        let bm = self.block_rows;
        let (tile, in_tile) = (r / self.tile_rows, r % self.tile_rows);
        let (block, row) = (in_tile / bm, in_tile % bm);
        let units_per_tile = self.tile_cols / self.unit;
        let units_per_block = self.block_cols / self.unit; // 2
        let (col_tile, q) = (u / units_per_tile, u % units_per_tile);
        let (col_block, e) = (q / units_per_block, q % units_per_block);
        let line = ((tile * (self.cols / self.tile_cols) + col_tile) * (self.tile_rows / bm)
            + block)
            * (self.tile_cols / self.block_cols)
            + col_block;
        (line * bm + swap_chunks(row), e == 0)
    }

    /// TL2 triples only: byte offset (relative to the sign plane) and bit of the sign of triple
    /// `u` of row `r`.
    #[inline]
    fn sign_bit(&self, r: usize, u: usize) -> (usize, u32) {
        let bm = self.block_rows;
        let (tile, in_tile) = (r / self.tile_rows, r % self.tile_rows);
        let (block, row) = (in_tile / bm, in_tile % bm);
        let units_per_tile = self.tile_cols / 3;
        let units_per_group = SIGN_GROUP_COLS / 3; // 8
        let (col_tile, q) = (u / units_per_tile, u % units_per_tile);
        let (group, e) = (q / units_per_group, q % units_per_group);
        let flat = e * bm + row; // position in the group's 8 × bm bits
        let (bit_row, word) = (flat / (bm / 2), flat % (bm / 2));
        let word_index =
            (((tile * (self.cols / self.tile_cols) + col_tile) * (self.tile_rows / bm) + block)
                * (self.tile_cols / SIGN_GROUP_COLS)
                + group)
                * (bm / 2)
                + word;
        let bit = 15 - bit_row as u32;
        (word_index * 2 + (bit / 8) as usize, bit % 8)
    }
}

/// The byte layout of one TL2 tensor: its two regions and where each part starts.
struct Tl2Layout {
    three: Tl2Region,
    tail: Tl2Region,
    sign_start: usize,
    tail_start: usize,
}

impl Tl2Layout {
    fn new(t: &TlTiles) -> Self {
        let tail_cols = t.k % t.tile_cols;
        let three_cols = t.k - tail_cols;
        let three = Tl2Region {
            tile_rows: t.tile_rows,
            tile_cols: t.tile_cols,
            block_rows: TL2_BLOCK_ROWS,
            block_cols: TL2_BLOCK_COLS,
            cols: three_cols,
            unit: 3,
        };
        let tail = Tl2Region {
            tile_rows: t.tile_rows,
            tile_cols: TAIL_TILE_COLS,
            block_rows: TAIL_BLOCK_ROWS,
            block_cols: 4,
            cols: tail_cols,
            unit: 2,
        };
        let sign_start = t.m * three_cols / 6;
        Self {
            three,
            tail,
            sign_start,
            tail_start: sign_start + t.m * three_cols / 24,
        }
    }
}

/// Offset of the f32 scale: the tensor's byte size minus the 32-byte scale slot.
fn scale_offset(total: usize) -> usize {
    total - 32
}

/// Decodes TL1/TL2 bytes (exactly `total` = `tensor_bytes` long, checked by the caller) of the
/// known shape `t` into row-major ternary values and the per-tensor scale.
pub(crate) fn decode(
    ty: GgmlType,
    t: &TlTiles,
    bytes: &[u8],
) -> Result<(Vec<i8>, f32), QuantError> {
    let mut values = vec![0i8; t.m * t.k];
    let nibble = |(byte, high): NibbleAt| {
        if high {
            bytes[byte] >> 4
        } else {
            bytes[byte] & 0x0F
        }
    };
    let bad = |index: usize, code: u8| QuantError::NotTernary { ty, index, code };
    let put_pair = |values: &mut [i8], at: usize, code: u8| -> Result<(), QuantError> {
        if code > 8 {
            return Err(bad(at, code));
        }
        values[at] = (code / 3) as i8 - 1;
        values[at + 1] = (code % 3) as i8 - 1;
        Ok(())
    };
    if ty == GgmlType::TL1 {
        for r in 0..t.m {
            for p in 0..t.k / 2 {
                let at = r * t.k + 2 * p;
                put_pair(&mut values, at, nibble(tl1_nibble(t, r, p)))?;
            }
        }
    } else {
        let layout = Tl2Layout::new(t);
        for r in 0..t.m {
            for u in 0..layout.three.cols / 3 {
                let at = r * t.k + 3 * u;
                let magnitude = nibble(layout.three.nibble(r, u));
                if magnitude > 13 {
                    return Err(bad(at, magnitude));
                }
                let (sign_byte, bit) = layout.three.sign_bit(r, u);
                let negative = (bytes[layout.sign_start + sign_byte] >> bit) & 1 == 1;
                let v = if negative {
                    13 - magnitude
                } else {
                    13 + magnitude
                };
                values[at] = (v / 9) as i8 - 1;
                values[at + 1] = (v / 3 % 3) as i8 - 1;
                values[at + 2] = (v % 3) as i8 - 1;
            }
            for p in 0..layout.tail.cols / 2 {
                let at = r * t.k + layout.three.cols + 2 * p;
                let (byte, high) = layout.tail.nibble(r, p);
                put_pair(&mut values, at, nibble((layout.tail_start + byte, high)))?;
            }
        }
    }
    let at = scale_offset(bytes.len());
    let scale = f32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    Ok((values, scale))
}

/// Packs row-major ternary `values` of the known shape `t` with per-tensor `scale` into `out`
/// (exactly `tensor_bytes` long, zero-filled by the caller), as bitnet.cpp's converter and GGUF
/// writer lay them out (padding zero).
pub(crate) fn encode(ty: GgmlType, t: &TlTiles, values: &[i8], scale: f32, out: &mut [u8]) {
    let code = |at: usize| (values[at] + 1) as u8;
    let put = |out: &mut [u8], (byte, high): NibbleAt, v: u8| {
        out[byte] |= if high { v << 4 } else { v };
    };
    if ty == GgmlType::TL1 {
        for r in 0..t.m {
            for p in 0..t.k / 2 {
                let at = r * t.k + 2 * p;
                put(out, tl1_nibble(t, r, p), 3 * code(at) + code(at + 1));
            }
        }
    } else {
        let layout = Tl2Layout::new(t);
        for r in 0..t.m {
            for u in 0..layout.three.cols / 3 {
                let at = r * t.k + 3 * u;
                let v = 9 * i32::from(values[at])
                    + 3 * i32::from(values[at + 1])
                    + i32::from(values[at + 2]);
                put(out, layout.three.nibble(r, u), v.unsigned_abs() as u8);
                if v < 0 {
                    let (sign_byte, bit) = layout.three.sign_bit(r, u);
                    out[layout.sign_start + sign_byte] |= 1 << bit;
                }
            }
            for p in 0..layout.tail.cols / 2 {
                let at = r * t.k + layout.three.cols + 2 * p;
                let (byte, high) = layout.tail.nibble(r, p);
                put(
                    out,
                    (layout.tail_start + byte, high),
                    3 * code(at) + code(at + 1),
                );
            }
        }
    }
    let at = scale_offset(out.len());
    out[at..at + 4].copy_from_slice(&scale.to_le_bytes());
}
