//! AVX-512 row dots for a few tokens at once (batched decode: the server's sequences in flight):
//! each 16 weights of a row are widened from F16 once and multiplied into the accumulators of up
//! to [`TOKENS_PER_PASS`] tokens, instead of once per token. Every token's dot keeps exactly the
//! arithmetic of the one-token row dot (the 32-lane order of the parent module: two 16-lane
//! accumulators, `w·x + acc` per step, the halving fold, then the tail in order), so a token's
//! output has the same bits in a batch as alone.
//!
//! A group's 4 rows go together, and each of the two 16-lane accumulators of a (row, token) dot
//! is taken in its own sweep: lane `i` of the low accumulator only ever sees columns `32k + i`,
//! the high one `32k + 16 + i`, so sweeping the low lanes over a panel and then the high lanes
//! gives every lane the same operations in the same order. One accumulator per dot lets a sweep
//! hold 4 rows × 4 tokens (16 registers, the 4 rows' widened weights 4 more), so each widening
//! serves 4 tokens and each activation load 4 rows. 8 tokens over 2B-4T's 128256 × 2560 F16 head
//! on host B (Zen 4), 1 / 2 threads: 97 ms with one row per pass (an activation load per
//! multiply-add), 66.6 ms with row pairs × 4 tokens, 60.2 / 31.2 ms with 4 rows × 2 tokens and
//! both lane halves per pass (twice the widenings), 56.0 / 29.1 ms with the lane-half sweeps
//! (floor at one 16-lane FMA per cycle: 45.5 / 22.8 ms).
//!
//! The rows of a group are walked in column panels of [`PANEL_COLS`]: every sweep of the group
//! takes the panel's columns before the group moves on, so the panel's activations (8 tokens ×
//! 1024 floats = 32 KiB, each sweep touching half of a token's lines) stay in L1 and L2 for all
//! the sweeps instead of streaming from L2 for each. A dot's accumulators are kept in memory
//! between panels; each lane still takes its columns in increasing order, so the sums are the
//! same.

use half::f16;
use std::arch::x86_64::*;
use std::mem::MaybeUninit;

use std::sync::atomic::Ordering;

use super::{dot_tail, LANES, ROWS_PER_CALL};
use crate::order::x86::fold_512x2;
use crate::pool::{atomic_f32_view, ThreadPool};

/// Most tokens one call accumulates together (two 16-lane accumulators each, kept in memory
/// between sweeps).
pub(super) const MAX_TOKENS: usize = 8;

/// Columns of one panel (a multiple of [`LANES`]). Host B, 8 tokens: 1024 and 2560 (no panels on
/// 2B-4T) within noise of each other (56.9–57.8 against 57.3–59.0 ms on one thread); 1024 bounds
/// a sweep's activations for wider heads.
const PANEL_COLS: usize = 1024;

/// One token's 32 lanes of one row as two 16-float registers.
type Lanes = [__m512; 2];

/// The accumulators of a row group between its panels, per row and token; each is written by
/// the first panel before any later panel reads it (an array of zeros would be a 4 KiB `memset`
/// per group).
type GroupAccumulators<const T: usize> = [[MaybeUninit<Lanes>; T]; ROWS_PER_CALL];

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
            let mut dots = [[0f32; MAX_TOKENS]; ROWS_PER_CALL];
            group_dots(block, count, xs, tokens, &mut dots);
            for (r, row_dots) in dots[..count].iter().enumerate() {
                for (t, &dot) in row_dots[..tokens].iter().enumerate() {
                    let at = (first_token + t) * rows + first + r;
                    out[at].store(dot.to_bits(), Ordering::Relaxed);
                }
            }
        }
    });
}

/// `dots[r][t] = row r · x[t·cols..(t+1)·cols]` for the `count` (≤ [`ROWS_PER_CALL`]) rows of
/// `block` (count × cols, row-major) and the `tokens` (≤ [`MAX_TOKENS`]) tokens of `x`.
fn group_dots(
    block: &[f16],
    count: usize,
    x: &[f32],
    tokens: usize,
    dots: &mut [[f32; MAX_TOKENS]; ROWS_PER_CALL],
) {
    assert!(
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    );
    assert!((1..=ROWS_PER_CALL).contains(&count) && block.len().is_multiple_of(count));
    let cols = block.len() / count;
    assert!((1..=MAX_TOKENS).contains(&tokens) && x.len() >= tokens * cols);
    // SAFETY: features checked; the kernels read the `count·cols` halves of the block and `cols`
    // floats of each of the `tokens` rows of x (lengths checked above).
    unsafe {
        match tokens {
            1 => group_dots_impl::<1>(block, count, x, dots),
            2 => group_dots_impl::<2>(block, count, x, dots),
            3 => group_dots_impl::<3>(block, count, x, dots),
            4 => group_dots_impl::<4>(block, count, x, dots),
            5 => group_dots_impl::<5>(block, count, x, dots),
            6 => group_dots_impl::<6>(block, count, x, dots),
            7 => group_dots_impl::<7>(block, count, x, dots),
            _ => group_dots_impl::<8>(block, count, x, dots),
        }
    }
}

/// # Safety
/// AVX-512F, FMA and F16C must be present; `block` holds `count` rows of `cols` halves and `x`
/// at least `T·cols` floats.
#[target_feature(enable = "avx512f,fma,f16c")]
unsafe fn group_dots_impl<const T: usize>(
    block: &[f16],
    count: usize,
    x: &[f32],
    dots: &mut [[f32; MAX_TOKENS]; ROWS_PER_CALL],
) {
    let cols = block.len() / count;
    let body = cols - cols % LANES;
    let mut acc: GroupAccumulators<T> = [[MaybeUninit::uninit(); T]; ROWS_PER_CALL];
    let mut start = 0;
    while start < body {
        let end = body.min(start + PANEL_COLS);
        let panel = Panel {
            block,
            x,
            cols,
            start,
            end,
        };
        if count == ROWS_PER_CALL {
            // The whole group in sweeps of up to TOKENS_PER_PASS tokens, each lane half alone.
            for first_token in (0..T).step_by(TOKENS_PER_PASS) {
                for half in 0..2 {
                    // SAFETY: the group's rows < count and tokens below T, as the panel requires.
                    unsafe { panel.sweep_group(first_token, half, &mut acc) };
                }
            }
        } else {
            // A matrix's last, shorter group: each row alone with every token.
            for r in 0..count {
                for half in 0..2 {
                    // SAFETY: row r < count and tokens below T.
                    unsafe { panel.accumulate::<1, T, T>(r, 0, half, &mut acc) };
                }
            }
        }
        start = end;
    }
    for (r, acc) in acc[..count].iter().enumerate() {
        let row = &block[r * cols..(r + 1) * cols];
        for (t, acc) in acc.iter().enumerate() {
            let xt = &x[t * cols..(t + 1) * cols];
            let [lo, hi] = if body == 0 {
                [_mm512_setzero_ps(); 2]
            } else {
                // SAFETY: the first panel (body > 0) wrote every row's and token's lanes.
                unsafe { acc.assume_init() }
            };
            dots[r][t] = dot_tail(fold_512x2(lo, hi), &row[body..], &xt[body..]);
        }
    }
}

/// Tokens per sweep over a group's 4 rows: 4 rows × 4 tokens fill 16 registers (one lane half).
const TOKENS_PER_PASS: usize = 4;

/// Columns `start..end` (multiples of 32, `end` at most the 32-lane body) of a row group.
struct Panel<'a> {
    block: &'a [f16],
    x: &'a [f32],
    cols: usize,
    start: usize,
    end: usize,
}

impl Panel<'_> {
    /// One sweep of the group's 4 rows over lane half `half` for tokens `first_token..` (up to
    /// [`TOKENS_PER_PASS`] of them, fewer at the end of the batch).
    ///
    /// # Safety
    /// As [`Panel::accumulate`], with the group's 4 rows in the block and `first_token < T`.
    #[target_feature(enable = "avx512f,fma,f16c")]
    #[inline]
    unsafe fn sweep_group<const T: usize>(
        &self,
        first_token: usize,
        half: usize,
        acc: &mut GroupAccumulators<T>,
    ) {
        const R: usize = ROWS_PER_CALL;
        // SAFETY: the caller's conditions, `first_token + U <= T` in every arm.
        unsafe {
            match T - first_token {
                1 => self.accumulate::<R, 1, T>(0, first_token, half, acc),
                2 => self.accumulate::<R, 2, T>(0, first_token, half, acc),
                3 => self.accumulate::<R, 3, T>(0, first_token, half, acc),
                _ => self.accumulate::<R, TOKENS_PER_PASS, T>(0, first_token, half, acc),
            }
        }
    }

    /// Accumulates lane half `half` (columns `32k + 16·half ..+16`) of the panel's columns of rows
    /// `first_row..first_row + R` into that accumulator of tokens `first_token..first_token + U`:
    /// each 16 weights are widened once for the `U` tokens and each 16 activations loaded once
    /// for the `R` rows.
    ///
    /// # Safety
    /// AVX-512F, FMA and F16C must be present; `first_row + R` rows lie in the block and
    /// `first_token + U <= T` tokens in `x`.
    #[target_feature(enable = "avx512f,fma,f16c")]
    #[inline]
    unsafe fn accumulate<const R: usize, const U: usize, const T: usize>(
        &self,
        first_row: usize,
        first_token: usize,
        half: usize,
        acc_in_memory: &mut GroupAccumulators<T>,
    ) {
        let cols = self.cols;
        let w = self.block.as_ptr().cast::<u16>();
        let x = self.x.as_ptr();
        // The next panel of these rows is prefetched (into L2) while this one is taken, in every
        // sweep; from the last panel, the first of the same rows of the next group (a thread's
        // groups are consecutive rows). Host B, row pairs × 4 tokens: `prefetcht1` 65.2 ms on one
        // thread, `prefetcht0` 70.2, none 98.7; prefetching in the first pass only was slower.
        let next_group = (ROWS_PER_CALL - 1) * cols;
        let lane0 = 16 * half;
        // The group's first panel starts the accumulators at zero, a later one where the
        // previous panel left them.
        let mut acc = [[_mm512_setzero_ps(); U]; R];
        if self.start > 0 {
            for (r, acc) in acc.iter_mut().enumerate() {
                for (t, lanes) in acc.iter_mut().enumerate() {
                    // SAFETY: the first panel wrote these rows' and tokens' lanes.
                    *lanes =
                        unsafe { (*acc_in_memory[first_row + r][first_token + t].as_ptr())[half] };
                }
            }
        }
        let mut j = self.start;
        while j < self.end {
            // SAFETY: j + 32 <= end <= cols for each row and each token's row of x; the prefetch
            // address may lie past the end (prefetches never fault), hence the wrapping pointer.
            unsafe {
                let ahead = if j + PANEL_COLS < cols {
                    PANEL_COLS
                } else {
                    PANEL_COLS + next_group
                };
                let mut weights = [_mm512_setzero_ps(); R];
                for (r, lanes) in weights.iter_mut().enumerate() {
                    let at = w.add((first_row + r) * cols + j);
                    _mm_prefetch::<_MM_HINT_T1>(at.wrapping_add(ahead).cast());
                    *lanes = _mm512_cvtph_ps(_mm256_loadu_si256(at.add(lane0).cast()));
                }
                for t in 0..U {
                    let xt = _mm512_loadu_ps(x.add((first_token + t) * cols + j + lane0));
                    for r in 0..R {
                        acc[r][t] = _mm512_fmadd_ps(weights[r], xt, acc[r][t]);
                    }
                }
            }
            j += LANES;
        }
        for (r, acc) in acc.iter().enumerate() {
            for (t, &lanes) in acc.iter().enumerate() {
                let slot = &mut acc_in_memory[first_row + r][first_token + t];
                if self.start == 0 && half == 0 {
                    slot.write([lanes, _mm512_setzero_ps()]);
                } else {
                    // SAFETY: the first panel's half-0 sweep initialised the slot.
                    unsafe { (*slot.as_mut_ptr())[half] = lanes };
                }
            }
        }
    }
}
