//! AVX-512 row dots for a few tokens at once (batched decode: the server's sequences in flight):
//! each 32 weights of a row are widened from F16 once and multiplied into the accumulators of up
//! to [`MAX_TOKENS`] tokens, instead of once per token. Every token's dot keeps exactly the
//! arithmetic of the one-token row dot (the 32-lane order of the parent module: two 16-lane
//! accumulators, `w·x + acc` per step, the halving fold, then the tail in order), so a token's
//! output has the same bits in a batch as alone.

use half::f16;
use std::arch::x86_64::*;

use std::sync::atomic::Ordering;

use super::{dot_tail, LANES, ROWS_PER_CALL};
use crate::order::x86::fold_512x2;
use crate::pool::{atomic_f32_view, ThreadPool};

/// How far ahead (in halves) the row is prefetched: twice the one-token row dot's distance, as a
/// row takes several times longer here (measured on SmolLM2 at 8 tokens: +10–20% over 1024).
const PREFETCH_HALVES: usize = 2048;

/// Most tokens one call accumulates together (two accumulators each: 16 of the 32 registers).
pub(super) const MAX_TOKENS: usize = 8;

/// `out[b·rows + r] = row r · token b` for 2–31 tokens, threaded over rows: each row's weights
/// are widened once for up to [`MAX_TOKENS`] tokens (the same bits as one token at a time).
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul(
    w: &[f16],
    rows: usize,
    cols: usize,
    x: &[f32],
    batch: usize,
    out: &mut [f32],
    pool: &ThreadPool,
) {
    let out = atomic_f32_view(out);
    pool.run_row_groups(rows, ROWS_PER_CALL, &|first, count| {
        let block = &w[first * cols..(first + count) * cols];
        for first_token in (0..batch).step_by(MAX_TOKENS) {
            let tokens = MAX_TOKENS.min(batch - first_token);
            let xs = &x[first_token * cols..(first_token + tokens) * cols];
            for r in 0..count {
                let mut dots = [0f32; MAX_TOKENS];
                row_dots(&block[r * cols..(r + 1) * cols], xs, tokens, &mut dots);
                for (t, &dot) in dots[..tokens].iter().enumerate() {
                    let at = (first_token + t) * rows + first + r;
                    out[at].store(dot.to_bits(), Ordering::Relaxed);
                }
            }
        }
    });
}

/// `dots[t] = row · x[t·cols..(t+1)·cols]` for the `tokens` (≤ [`MAX_TOKENS`]) tokens of `x`.
pub(super) fn row_dots(row: &[f16], x: &[f32], tokens: usize, dots: &mut [f32; MAX_TOKENS]) {
    assert!(
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    );
    let cols = row.len();
    assert!((1..=MAX_TOKENS).contains(&tokens) && x.len() >= tokens * cols);
    // SAFETY: features checked; the kernels read `cols` halves of the row and `cols` floats of
    // each of the `tokens` rows of x (lengths checked above).
    unsafe {
        match tokens {
            1 => row_dots_impl::<1>(row, x, dots),
            2 => row_dots_impl::<2>(row, x, dots),
            3 => row_dots_impl::<3>(row, x, dots),
            4 => row_dots_impl::<4>(row, x, dots),
            5 => row_dots_impl::<5>(row, x, dots),
            6 => row_dots_impl::<6>(row, x, dots),
            7 => row_dots_impl::<7>(row, x, dots),
            _ => row_dots_impl::<8>(row, x, dots),
        }
    }
}

#[target_feature(enable = "avx512f,fma,f16c")]
unsafe fn row_dots_impl<const T: usize>(row: &[f16], x: &[f32], dots: &mut [f32; MAX_TOKENS]) {
    let cols = row.len();
    let body = cols - cols % LANES;
    let w = row.as_ptr().cast::<u16>();
    let mut acc = [[_mm512_setzero_ps(); 2]; T];
    let mut j = 0;
    while j < body {
        // SAFETY: j + 32 <= body <= cols for the row and for each token's row of x; the prefetch
        // address may lie past the end (prefetches never fault), hence the wrapping pointer.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(w.add(j).wrapping_add(PREFETCH_HALVES).cast());
            let w0 = _mm512_cvtph_ps(_mm256_loadu_si256(w.add(j).cast()));
            let w1 = _mm512_cvtph_ps(_mm256_loadu_si256(w.add(j + 16).cast()));
            for (t, acc) in acc.iter_mut().enumerate() {
                let xt = x.as_ptr().add(t * cols + j);
                acc[0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xt), acc[0]);
                acc[1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xt.add(16)), acc[1]);
            }
        }
        j += LANES;
    }
    for (t, acc) in acc.iter().enumerate() {
        let xt = &x[t * cols..(t + 1) * cols];
        dots[t] = dot_tail(fold_512x2(acc[0], acc[1]), &row[body..], &xt[body..]);
    }
}
