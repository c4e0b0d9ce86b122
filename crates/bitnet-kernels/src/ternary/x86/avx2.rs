//! AVX2 ternary kernels: `pmaddubsw` of the unsigned codes (0/1/2) with int8 activations (pair sums
//! stay within ±512, far from i16 saturation), widened with `pmaddwd`.

#![allow(clippy::needless_range_loop)] // SIMD lanes and tiles read best as indexed loops.

use std::arch::x86_64::*;

use super::super::{CHUNK_COLS, GROUP_COLS, ROW_TILE};
use super::hsum_epi32_256;
use crate::order::x86::fold_256x2;

fn features_present() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// `Σ_j c[r][j] · x[t·cols + j]` for the 4 rows of a tile and `T` consecutive tokens.
pub(in crate::ternary) fn tile_code_dots<const T: usize>(
    weights: &[u8],
    x: &[i8],
    cols: usize,
) -> [[i32; T]; ROW_TILE] {
    assert!(features_present(), "AVX2 kernel called on a CPU without it");
    assert!(cols.is_multiple_of(128) && weights.len() == cols && x.len() >= T * cols);
    // SAFETY: the features were checked above; the kernel reads `cols` bytes of `weights` and
    // `T·cols` bytes of `x`, both checked.
    unsafe { tile_code_dots_impl::<T>(weights.as_ptr(), x.as_ptr(), cols) }
}

/// The 32-byte pieces of a tile: (weight offset of row 0, row stride, first column).
/// Full chunks give two halves per row (columns 64s + 32h + b), the tail one piece (32s + b).
#[inline(always)]
fn pieces(cols: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    let full = cols / CHUNK_COLS;
    let chunk_pieces = (0..full).flat_map(|chunk| {
        (0..2).map(move |h| {
            (
                chunk * CHUNK_COLS + 32 * h,
                64,
                chunk * CHUNK_COLS + 32 * h,
                64,
            )
        })
    });
    let tail = (!cols.is_multiple_of(CHUNK_COLS)).then_some(full * CHUNK_COLS);
    // (weight offset, row stride, first column, column step between shifts)
    chunk_pieces.chain(tail.map(|t| (t, 32, t, 32)))
}

#[target_feature(enable = "avx2,fma")]
unsafe fn tile_code_dots_impl<const T: usize>(
    w: *const u8,
    x: *const i8,
    cols: usize,
) -> [[i32; T]; ROW_TILE] {
    let mask = _mm256_set1_epi8(3);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_si256(); T]; ROW_TILE];
    for (offset, row_stride, col, step) in pieces(cols) {
        // SAFETY (whole block): a piece's 4 rows lie within the tile's `cols` bytes and its
        // activations at t·cols + col + step·3 + 32 <= T·cols (see the layout).
        unsafe {
            let mut raw = [_mm256_setzero_si256(); ROW_TILE];
            for (r, raw) in raw.iter_mut().enumerate() {
                *raw = _mm256_loadu_si256(w.add(offset + r * row_stride).cast());
            }
            // Sum the 4 shifts in i16 (|sum| <= 4 · 512) before widening once.
            let mut partial = [[_mm256_setzero_si256(); T]; ROW_TILE];
            macro_rules! shift_step {
                ($shift:literal, $s:literal) => {{
                    let mut codes = [mask; ROW_TILE];
                    for r in 0..ROW_TILE {
                        codes[r] = _mm256_and_si256(_mm256_srli_epi16::<$shift>(raw[r]), mask);
                    }
                    for t in 0..T {
                        let a = _mm256_loadu_si256(x.add(t * cols + col + step * $s).cast());
                        for r in 0..ROW_TILE {
                            partial[r][t] =
                                _mm256_add_epi16(partial[r][t], _mm256_maddubs_epi16(codes[r], a));
                        }
                    }
                }};
            }
            shift_step!(0, 0);
            shift_step!(2, 1);
            shift_step!(4, 2);
            shift_step!(6, 3);
            for r in 0..ROW_TILE {
                for t in 0..T {
                    acc[r][t] = _mm256_add_epi32(acc[r][t], _mm256_madd_epi16(partial[r][t], ones));
                }
            }
        }
    }
    let mut out = [[0i32; T]; ROW_TILE];
    for r in 0..ROW_TILE {
        for t in 0..T {
            out[r][t] = hsum_epi32_256(acc[r][t]);
        }
    }
    out
}

/// `Σ_g (Σ_{j∈g} c·q − Σ_{j∈g} q) · s[r][g]` over 32-column groups, 4 rows, one token.
pub(in crate::ternary) fn tile_scaled_dots(
    weights: &[u8],
    x: &[i8],
    quad_sums: &[i32],
    scales: &[f32],
) -> [f32; ROW_TILE] {
    assert!(features_present(), "AVX2 kernel called on a CPU without it");
    let cols = x.len();
    assert!(
        cols.is_multiple_of(128)
            && weights.len() == cols
            && quad_sums.len() == cols / 4
            && scales.len() == ROW_TILE * (cols / GROUP_COLS)
    );
    // SAFETY: the features and every slice length the kernel relies on were checked above.
    unsafe {
        tile_scaled_dots_impl(
            weights.as_ptr(),
            x.as_ptr(),
            quad_sums.as_ptr(),
            scales.as_ptr(),
            cols,
        )
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn tile_scaled_dots_impl(
    w: *const u8,
    x: *const i8,
    quad_sums: *const i32,
    scales: *const f32,
    cols: usize,
) -> [f32; ROW_TILE] {
    let mask = _mm256_set1_epi8(3);
    let ones = _mm256_set1_epi16(1);
    let groups = cols / GROUP_COLS;
    // acc[r][h]: lanes 8h..8h+8 of the 16 of the order; a 32-column run of quads starting at
    // quad k feeds half (k / 8) mod 2.
    let mut acc = [[_mm256_setzero_ps(); 2]; ROW_TILE];
    for (offset, row_stride, col, step) in pieces(cols) {
        // SAFETY (whole block): as in `tile_code_dots_impl`; quad sums are read at
        // (col + step·s)/4 + 8 <= cols/4 and scales at r·groups + (col + step·s)/32 < 4·groups.
        unsafe {
            for s in 0..4 {
                let first = col + step * s;
                let a = _mm256_loadu_si256(x.add(first).cast());
                let q4 = _mm256_loadu_si256(quad_sums.add(first / 4).cast());
                let count = _mm_cvtsi32_si128(2 * s as i32);
                for r in 0..ROW_TILE {
                    let raw = _mm256_loadu_si256(w.add(offset + r * row_stride).cast());
                    let codes = _mm256_and_si256(_mm256_srl_epi16(raw, count), mask);
                    let dots = _mm256_madd_epi16(_mm256_maddubs_epi16(codes, a), ones);
                    let d = _mm256_cvtepi32_ps(_mm256_sub_epi32(dots, q4));
                    let scale = _mm256_set1_ps(*scales.add(r * groups + first / GROUP_COLS));
                    let half = (first / GROUP_COLS) % 2;
                    acc[r][half] = _mm256_fmadd_ps(d, scale, acc[r][half]);
                }
            }
        }
    }
    let mut out = [0f32; ROW_TILE];
    for r in 0..ROW_TILE {
        out[r] = fold_256x2(acc[r][0], acc[r][1]);
    }
    out
}
