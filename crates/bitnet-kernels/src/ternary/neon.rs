//! aarch64 NEON ternary kernels over the 2-bit layout (see the parent module), to the contract of
//! the scalar reference: exact integer code dots, and the block-scaled epilogue in the same 16
//! lanes and order. Baseline NEON only (the dot-product extension's intrinsics are not stable in
//! Rust): 16 codes × 16 activations as two widening multiplies and pairwise adds.

use std::arch::aarch64::*;

use super::{code_position, CHUNK_COLS, GROUP_COLS, ROW_TILE, SCALED_LANES};
use crate::order::fold;

/// The codes at bit shift `2s` of 16 packed bytes.
#[inline(always)]
fn codes_at(raw: uint8x16_t, s: u32) -> int8x16_t {
    // SAFETY: NEON is part of the aarch64 baseline; these are register operations.
    unsafe {
        let three = vdupq_n_u8(3);
        let shifted = match s {
            0 => raw,
            1 => vshrq_n_u8::<2>(raw),
            2 => vshrq_n_u8::<4>(raw),
            _ => vshrq_n_u8::<6>(raw),
        };
        vreinterpretq_s8_u8(vandq_u8(shifted, three))
    }
}

/// The 4 quad dots `Σ_{i<4} c[4k+i]·x[4k+i]` (k = 0..4) of 16 signed bytes, exact: a byte
/// product (≤ 2¹⁴ in magnitude) fits i16, the pair and quad sums i32. (Also the Q8_0 row dot's.)
#[inline(always)]
pub(crate) fn quad_dots(codes: int8x16_t, x: int8x16_t) -> int32x4_t {
    // SAFETY: NEON baseline register operations.
    unsafe {
        let lo = vpaddlq_s16(vmull_s8(vget_low_s8(codes), vget_low_s8(x)));
        let hi = vpaddlq_s16(vmull_high_s8(codes, x));
        vpaddq_s32(lo, hi)
    }
}

/// `Σ_j c[r][j] · x[t·cols + j]` for the 4 rows of a tile and `T` consecutive tokens.
pub(in crate::ternary) fn tile_code_dots<const T: usize>(
    weights: &[u8],
    x: &[i8],
    cols: usize,
) -> [[i32; T]; ROW_TILE] {
    assert!(cols.is_multiple_of(128) && weights.len() == cols && x.len() >= T * cols);
    // SAFETY: NEON baseline register operation.
    let mut acc = [[unsafe { vdupq_n_s32(0) }; T]; ROW_TILE];
    let full = cols / CHUNK_COLS;
    // (first byte of the chunk, bytes per row = columns per stream) of each chunk.
    let chunks = (0..full)
        .map(|chunk| (chunk * CHUNK_COLS, 64usize))
        .chain((!cols.is_multiple_of(CHUNK_COLS)).then_some((full * CHUNK_COLS, 32usize)));
    for (chunk_start, row_bytes) in chunks {
        for (r, acc) in acc.iter_mut().enumerate() {
            for quarter in 0..row_bytes / 16 {
                let byte = chunk_start + r * row_bytes + 16 * quarter;
                // SAFETY: byte + 16 <= chunk_start + 4·row_bytes <= cols = weights.len().
                let raw = unsafe { vld1q_u8(weights.as_ptr().add(byte)) };
                for s in 0..4u32 {
                    let codes = codes_at(raw, s);
                    let col = chunk_start + row_bytes * s as usize + 16 * quarter;
                    for (t, acc) in acc.iter_mut().enumerate() {
                        // SAFETY: t·cols + col + 16 <= T·cols <= x.len() (col + 16 <= cols);
                        // the rest are register operations.
                        unsafe {
                            let q = vld1q_s8(x.as_ptr().add(t * cols + col));
                            *acc = vaddq_s32(*acc, quad_dots(codes, q));
                        }
                    }
                }
            }
        }
    }
    // SAFETY: NEON baseline register operation.
    acc.map(|row| row.map(|v| unsafe { vaddvq_s32(v) }))
}

/// `Σ_g (Σ_{j∈g} c·q − Σ_{j∈g} q) · s[r][g]` over 32-column groups, 4 rows, one token, in the
/// order of the scalar reference: quad `k`'s exact `D_k` fused as `(D_k as f32) · s` into lane
/// `k mod 16` (16 columns = 4 quads = lanes of one `float32x4_t`), then the halving-tree fold.
pub(in crate::ternary) fn tile_scaled_dots(
    weights: &[u8],
    x: &[i8],
    quad_sums: &[i32],
    scales: &[f32],
) -> [f32; ROW_TILE] {
    let cols = x.len();
    let groups = cols / GROUP_COLS;
    assert!(
        cols.is_multiple_of(128)
            && weights.len() == cols
            && quad_sums.len() == cols / 4
            && scales.len() == ROW_TILE * groups
    );
    let mut out = [0f32; ROW_TILE];
    for (r, o) in out.iter_mut().enumerate() {
        // SAFETY: NEON baseline register operations.
        let mut lanes = [unsafe { vdupq_n_f32(0.0) }; SCALED_LANES / 4];
        for seg in 0..cols / 16 {
            let c0 = 16 * seg;
            // Columns c0..c0 + 16 are 16 consecutive bytes at one shift (layout, parent module).
            let (byte, shift) = code_position(r, c0, cols);
            // SAFETY: the 16 bytes from `byte` belong to row r of this tile (< cols bytes); the
            // 16 activations and 4 quad sums from c0 are in bounds (c0 + 16 <= cols).
            unsafe {
                let codes = codes_at(vld1q_u8(weights.as_ptr().add(byte)), shift / 2);
                let dots = quad_dots(codes, vld1q_s8(x.as_ptr().add(c0)));
                let d = vsubq_s32(dots, vld1q_s32(quad_sums.as_ptr().add(c0 / 4)));
                let scale = scales[r * groups + c0 / GROUP_COLS];
                let lane = &mut lanes[seg % (SCALED_LANES / 4)];
                *lane = vfmaq_n_f32(*lane, vcvtq_f32_s32(d), scale);
            }
        }
        let mut flat = [0f32; SCALED_LANES];
        for (v, lane) in lanes.iter().enumerate() {
            // SAFETY: flat[4v..4v + 4] is in bounds (v < 4).
            unsafe { vst1q_f32(flat.as_mut_ptr().add(4 * v), *lane) };
        }
        *o = fold(flat);
    }
    out
}
