//! Scalar reference kernels over the packed layout (see the parent module for the layout).

#![allow(clippy::needless_range_loop)] // SIMD lanes and tiles read best as indexed loops.

use super::{code_position, CHUNK_COLS, GROUP_COLS, ROW_TILE, SCALED_LANES};
use crate::order::fold;

/// Calls `visit(r, col, code)` for every weight of a row tile, in storage order.
fn for_each_code(weights: &[u8], cols: usize, mut visit: impl FnMut(usize, usize, i32)) {
    let full = cols / CHUNK_COLS;
    for chunk in 0..full {
        for r in 0..ROW_TILE {
            let base = chunk * CHUNK_COLS + r * 64;
            for (b, &byte) in weights[base..base + 64].iter().enumerate() {
                for s in 0..4 {
                    let code = i32::from((byte >> (2 * s)) & 3);
                    visit(r, chunk * CHUNK_COLS + 64 * s + b, code);
                }
            }
        }
    }
    if !cols.is_multiple_of(CHUNK_COLS) {
        let tail = full * CHUNK_COLS;
        for r in 0..ROW_TILE {
            let base = tail + r * 32;
            for (b, &byte) in weights[base..base + 32].iter().enumerate() {
                for s in 0..4 {
                    let code = i32::from((byte >> (2 * s)) & 3);
                    visit(r, tail + 32 * s + b, code);
                }
            }
        }
    }
}

/// `Σ_j c[r][j] · x[t·cols + j]` for the 4 rows of a tile and `T` consecutive tokens.
pub(super) fn tile_code_dots<const T: usize>(
    weights: &[u8],
    x: &[i8],
    cols: usize,
) -> [[i32; T]; ROW_TILE] {
    let mut acc = [[0i32; T]; ROW_TILE];
    for_each_code(weights, cols, |r, col, code| {
        for (t, a) in acc[r].iter_mut().enumerate() {
            *a += code * i32::from(x[t * cols + col]);
        }
    });
    acc
}

/// `out[t] = [Σ_j c[r][j] · x[t·cols + j] for r in 0..4]` over a tile of the interleaved copy
/// (byte `j` holds column `j`'s code of row `r` at shift `2r`), for `out.len()` tokens.
pub(super) fn interleaved_tile_block_code_dots(
    weights: &[u8],
    x: &[i8],
    cols: usize,
    out: &mut [[i32; ROW_TILE]],
) {
    for (t, out) in out.iter_mut().enumerate() {
        let xt = &x[t * cols..(t + 1) * cols];
        *out = std::array::from_fn(|r| {
            weights[..cols]
                .iter()
                .zip(xt)
                .map(|(&byte, &q)| i32::from((byte >> (2 * r)) & 3) * i32::from(q))
                .sum()
        });
    }
}

/// `Σ_g (Σ_{j∈g} c·q − Σ_{j∈g} q) · s[r][g]` over 32-column groups `g`, one token, in the
/// order of [`super::SCALED_LANES`]: quad `k` (columns `4k..4k+4`) gives the exact integer
/// `D_k = Σ c·q − quad_sums[k]`, fused as `(D_k as f32) · s` into lane `k mod 16`.
pub(super) fn tile_scaled_dots(
    weights: &[u8],
    x: &[i8],
    quad_sums: &[i32],
    scales: &[f32],
) -> [f32; ROW_TILE] {
    let cols = x.len();
    let groups = cols / GROUP_COLS;
    let mut out = [0.0f32; ROW_TILE];
    for (r, o) in out.iter_mut().enumerate() {
        let mut lanes = [0f32; SCALED_LANES];
        for (k, &q_sum) in quad_sums.iter().enumerate() {
            let code_dot: i32 = (4 * k..4 * k + 4)
                .map(|col| {
                    let (byte, shift) = code_position(r, col, cols);
                    i32::from((weights[byte] >> shift) & 3) * i32::from(x[col])
                })
                .sum();
            let scale = scales[r * groups + 4 * k / GROUP_COLS];
            let lane = &mut lanes[k % SCALED_LANES];
            *lane = ((code_dot - q_sum) as f32).mul_add(scale, *lane);
        }
        *o = fold(lanes);
    }
    out
}
