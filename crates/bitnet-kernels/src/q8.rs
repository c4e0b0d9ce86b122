//! Q8_0 matrices for a quantized LM head (the decode-time win of FORMATS.md §4: the 2B-4T head
//! drops from 657 MB of F16 to 349 MB, near-losslessly).
//!
//! Q8_0 as ggml defines it: blocks of 32 values, `d = max|x| / 127` stored as f16,
//! `q = roundf(x / d)` (half away from zero; computed as `x · (1/d)` in f32, 0 when d = 0).
//! [`Q8Matrix::matmul`] quantizes each activation row the same way and returns, per output,
//! `Σ_blocks (d_w · d_x) · Σ q_w q_x` in f32 (ggml's `vec_dot_q8_0_q8_0`).
//!
//! Summation order (the same on every ISA, see [`crate::order`]): each block `b` gives 8 exact
//! integer dots `D_{b,k}` of its bytes `4k..4k+4`; the term `(D_{b,k} as f32) · s_b` (with
//! `s_b = d_w · d_x` rounded to f32) is fused into lane `8·(b mod 2) + k` of 16 lanes, blocks in
//! order (an odd last block feeds lanes 0–7 only); the 16 lanes fold by the halving tree. This is
//! what one 256-bit register per block parity computes, as in ggml's AVX2 kernel.

#![allow(clippy::needless_range_loop)] // SIMD lanes and rows read best as indexed loops.

use std::cell::RefCell;
use std::sync::atomic::Ordering;

use half::f16;

use crate::error::KernelError;
use crate::isa::{active_isa, record, Isa, KernelId};
use crate::order::fold;
use crate::pool::{atomic_f32_view, ThreadPool};

/// Values per Q8_0 block.
pub const Q8_BLOCK: usize = 32;
/// Rows handled per kernel call (they share the activation blocks).
const ROWS_PER_CALL: usize = 4;

/// Quantizes `x` (a multiple of 32 long) to Q8_0: codes into `qs`, one f16 scale per block.
pub fn quantize_q8_0(x: &[f32], qs: &mut [i8], scales: &mut [f16]) -> Result<(), KernelError> {
    if !x.len().is_multiple_of(Q8_BLOCK) {
        return Err(KernelError::ColsNotMultiple {
            cols: x.len(),
            granularity: Q8_BLOCK,
        });
    }
    check_len("Q8_0 codes", x.len(), qs.len())?;
    check_len("Q8_0 scales", x.len() / Q8_BLOCK, scales.len())?;
    for ((block, q), scale) in x
        .chunks_exact(Q8_BLOCK)
        .zip(qs.chunks_exact_mut(Q8_BLOCK))
        .zip(scales.iter_mut())
    {
        let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let inverse = if d != 0.0 { 1.0 / d } else { 0.0 };
        *scale = f16::from_f32(d);
        for (q, &v) in q.iter_mut().zip(block) {
            *q = (v * inverse).round() as i8; // f32::round: half away from zero, like roundf
        }
    }
    Ok(())
}

/// `Ok` when a slice argument has the expected length, else [`KernelError::LengthMismatch`].
pub(crate) fn check_len(
    what: &'static str,
    expected: usize,
    actual: usize,
) -> Result<(), KernelError> {
    if expected == actual {
        Ok(())
    } else {
        Err(KernelError::LengthMismatch {
            what,
            expected,
            actual,
        })
    }
}

/// A row-major Q8_0 matrix (`rows` outputs × `cols` inputs).
#[derive(Clone, PartialEq)]
pub struct Q8Matrix {
    rows: usize,
    cols: usize,
    qs: Vec<i8>,
    scales: Vec<f16>,
}

impl std::fmt::Debug for Q8Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Q8Matrix")
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish()
    }
}

impl Q8Matrix {
    /// Quantizes a row-major f32 matrix (`cols` a multiple of 32).
    pub fn quantize_f32(w: &[f32], rows: usize, cols: usize) -> Result<Q8Matrix, KernelError> {
        if rows == 0 || cols == 0 {
            return Err(KernelError::EmptyShape { rows, cols });
        }
        check_len("f32 weights (rows × cols)", rows * cols, w.len())?;
        let mut qs = vec![0i8; w.len()];
        let mut scales = vec![f16::ZERO; w.len() / Q8_BLOCK];
        quantize_q8_0(w, &mut qs, &mut scales)?;
        Q8Matrix::from_blocks(rows, cols, qs, scales)
    }

    /// Quantizes a row-major F16 matrix (e.g. the tied embedding) row by row.
    pub fn quantize_f16(w: &[f16], rows: usize, cols: usize) -> Result<Q8Matrix, KernelError> {
        if rows == 0 || cols == 0 {
            return Err(KernelError::EmptyShape { rows, cols });
        }
        check_len("f16 weights (rows × cols)", rows * cols, w.len())?;
        let mut qs = vec![0i8; w.len()];
        let mut scales = vec![f16::ZERO; w.len() / Q8_BLOCK];
        let mut row = vec![0f32; cols];
        for ((src, q), s) in w
            .chunks_exact(cols)
            .zip(qs.chunks_exact_mut(cols))
            .zip(scales.chunks_exact_mut((cols / Q8_BLOCK).max(1)))
        {
            for (dst, v) in row.iter_mut().zip(src) {
                *dst = v.to_f32();
            }
            quantize_q8_0(&row, q, s)?;
        }
        Q8Matrix::from_blocks(rows, cols, qs, scales)
    }

    /// Wraps existing Q8_0 data: `qs` row-major codes, one scale per 32 codes.
    pub fn from_blocks(
        rows: usize,
        cols: usize,
        qs: Vec<i8>,
        scales: Vec<f16>,
    ) -> Result<Q8Matrix, KernelError> {
        if rows == 0 || cols == 0 {
            return Err(KernelError::EmptyShape { rows, cols });
        }
        if !cols.is_multiple_of(Q8_BLOCK) {
            return Err(KernelError::ColsNotMultiple {
                cols,
                granularity: Q8_BLOCK,
            });
        }
        check_len("Q8_0 codes", rows * cols, qs.len())?;
        check_len("Q8_0 scales", rows * cols / Q8_BLOCK, scales.len())?;
        Ok(Q8Matrix {
            rows,
            cols,
            qs,
            scales,
        })
    }

    /// Output count.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input count.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The codes, row-major.
    pub fn codes(&self) -> &[i8] {
        &self.qs
    }

    /// The block scales, row-major.
    pub fn block_scales(&self) -> &[f16] {
        &self.scales
    }

    /// Bytes one product streams (codes + scales).
    pub fn stored_len(&self) -> usize {
        self.qs.len() + 2 * self.scales.len()
    }

    /// `out[b·rows + r] = Σ_blocks d_w d_x Σ q_w q_x` with `x` (batch × cols, f32) quantized to
    /// Q8_0 first.
    pub fn matmul(
        &self,
        x: &[f32],
        batch: usize,
        out: &mut [f32],
        pool: &ThreadPool,
    ) -> Result<(), KernelError> {
        self.matmul_with_isa(active_isa(), x, batch, out, pool)
    }

    /// [`Q8Matrix::matmul`] on a chosen instruction set.
    pub fn matmul_with_isa(
        &self,
        isa: Isa,
        x: &[f32],
        batch: usize,
        out: &mut [f32],
        pool: &ThreadPool,
    ) -> Result<(), KernelError> {
        if !isa.is_supported() {
            return Err(KernelError::IsaUnsupported { isa });
        }
        check_len("activations (batch × cols)", batch * self.cols, x.len())?;
        check_len("output (batch × rows)", batch * self.rows, out.len())?;
        record(match isa {
            Isa::Scalar => KernelId::Q8ScalarMatvec,
            Isa::Neon => KernelId::Q8NeonMatvec,
            Isa::Avx2 => KernelId::Q8Avx2Matvec,
            Isa::Avx512 => KernelId::Q8Avx512Matvec,
        });
        ACTIVATIONS.with(|cell| {
            let (x_qs, x_scales, x_offsets) = &mut *cell.borrow_mut();
            x_qs.clear();
            x_qs.resize(x.len(), 0);
            x_scales.clear();
            x_scales.resize(x.len() / Q8_BLOCK, 0.0);
            let mut half_scales = [f16::ZERO; 1];
            for ((block, q), s) in x
                .chunks_exact(Q8_BLOCK)
                .zip(x_qs.chunks_exact_mut(Q8_BLOCK))
                .zip(x_scales.iter_mut())
            {
                quantize_q8_0(block, q, &mut half_scales)?;
                *s = half_scales[0].to_f32();
            }
            if isa == Isa::Avx512 {
                // −128 · (the sum of each 4 codes): the AVX-512 kernel's `(w + 128) · x` dots
                // start from it, which leaves exactly `Σ w·x`.
                x_offsets.clear();
                x_offsets.extend(
                    x_qs.chunks_exact(4)
                        .map(|quad| -128 * quad.iter().map(|&c| i32::from(c)).sum::<i32>()),
                );
            }
            #[cfg(target_arch = "x86_64")]
            let x_offsets = &x_offsets[..];
            let (x_qs, x_scales) = (&x_qs[..], &x_scales[..]);
            let out = atomic_f32_view(out);
            let (rows, cols) = (self.rows, self.cols);
            let blocks = cols / Q8_BLOCK;
            pool.run_row_groups(rows, ROWS_PER_CALL, &|first, count| {
                let qs = &self.qs[first * cols..(first + count) * cols];
                let ws = &self.scales[first * blocks..(first + count) * blocks];
                #[cfg(target_arch = "x86_64")]
                if isa == Isa::Avx512 {
                    // One token: a row at a time (one sequential stream from memory). Several:
                    // a whole group's rows together, TOKENS_PER_PASS tokens per pass, so each
                    // activation load serves every row (a shorter last group a row at a time,
                    // its bytes loaded once per MAX_TOKENS tokens).
                    let rows_per_pass = if batch > 1 && count == ROWS_PER_CALL {
                        ROWS_PER_CALL
                    } else {
                        1
                    };
                    let step = if rows_per_pass > 1 {
                        x86::TOKENS_PER_PASS
                    } else {
                        x86::MAX_TOKENS
                    };
                    let mut dots = [[0f32; x86::MAX_TOKENS]; ROWS_PER_CALL];
                    for r in (0..count).step_by(rows_per_pass) {
                        let q = &qs[r * cols..(r + rows_per_pass) * cols];
                        let w = &ws[r * blocks..(r + rows_per_pass) * blocks];
                        for b0 in (0..batch).step_by(step) {
                            let n = step.min(batch - b0);
                            let tokens = x86::Tokens {
                                codes: &x_qs[b0 * cols..(b0 + n) * cols],
                                scales: &x_scales[b0 * blocks..(b0 + n) * blocks],
                                offsets: &x_offsets[b0 * cols / 4..(b0 + n) * cols / 4],
                            };
                            let dots = &mut dots[..rows_per_pass];
                            x86::rows_dots_avx512(q, w, &tokens, n, dots);
                            for (i, dots) in dots.iter().enumerate() {
                                for (t, &dot) in dots[..n].iter().enumerate() {
                                    out[(b0 + t) * rows + first + r + i]
                                        .store(dot.to_bits(), Ordering::Relaxed);
                                }
                            }
                        }
                    }
                    return;
                }
                for b in 0..batch {
                    let xq = &x_qs[b * cols..(b + 1) * cols];
                    let xs = &x_scales[b * blocks..(b + 1) * blocks];
                    let dots = rows_dot(isa, qs, ws, count, xq, xs);
                    for (r, &dot) in dots[..count].iter().enumerate() {
                        out[b * rows + first + r].store(dot.to_bits(), Ordering::Relaxed);
                    }
                }
            });
            Ok(())
        })
    }
}

thread_local! {
    /// Per-thread scratch for the quantized activations, their f32 block scales and (AVX-512)
    /// their quad offsets.
    static ACTIVATIONS: RefCell<(Vec<i8>, Vec<f32>, Vec<i32>)> =
        const { RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// Dots of `count` (≤ 4) consecutive rows with one quantized activation row (every ISA but
/// AVX-512, which takes `x86::rows_dots_avx512` for any batch).
fn rows_dot(
    isa: Isa,
    qs: &[i8],
    ws: &[f16],
    count: usize,
    xq: &[i8],
    xs: &[f32],
) -> [f32; ROWS_PER_CALL] {
    let cols = xq.len();
    let blocks = xs.len();
    let mut dots = [0f32; ROWS_PER_CALL];
    for r in 0..count {
        let (q, w) = (
            &qs[r * cols..(r + 1) * cols],
            &ws[r * blocks..(r + 1) * blocks],
        );
        dots[r] = match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::row_dot_avx2(q, w, xq, xs),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => neon::row_dot(q, w, xq, xs),
            _ => row_dot_scalar(q, w, xq, xs),
        };
    }
    dots
}

/// The scalar reference, in the order of the module docs.
fn row_dot_scalar(q: &[i8], w: &[f16], xq: &[i8], xs: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    for (b, (qb, xb)) in q
        .chunks_exact(Q8_BLOCK)
        .zip(xq.chunks_exact(Q8_BLOCK))
        .enumerate()
    {
        let scale = w[b].to_f32() * xs[b];
        let half = 8 * (b % 2);
        for (k, (qk, xk)) in qb.chunks_exact(4).zip(xb.chunks_exact(4)).enumerate() {
            let dot: i32 = qk
                .iter()
                .zip(xk)
                .map(|(&a, &c)| i32::from(a) * i32::from(c))
                .sum();
            lanes[half + k] = (dot as f32).mul_add(scale, lanes[half + k]);
        }
    }
    fold(lanes)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! Q8_0 row dots, one block per 256-bit half, scaled per block into f32 lanes (lanes 0–7
    //! even blocks, 8–15 odd ones): AVX-512 multiplies `w + 128` (unsigned) by `x` and starts
    //! from `-128 · Σx`; AVX2 multiplies `|w|` (unsigned) by `x·sign(w)`.

    use crate::order::x86::{fold_256x2, fold_512};
    use half::f16;
    use std::arch::x86_64::*;

    use super::Q8_BLOCK;

    /// How far ahead (in bytes of codes) the weights are prefetched, and the scales as many
    /// blocks ahead. Into L2 (`prefetcht1`): the 2B-4T head (`q8_0_head`) on host B (Zen 4)
    /// streamed 16–18 GiB/s on one thread and 27–31 at two with `prefetcht0` 8 KiB ahead of the
    /// codes (the earlier choice) or none, 19–23 / 29–42 with `prefetcht1` 8–32 KiB ahead, and
    /// 23.8–24.1 / 43–44 (as fast as the F16 head) with 16 KiB and the scales prefetched too.
    const PREFETCH_BYTES: usize = 16384;

    /// Most tokens one call of [`rows_dots_avx512`] takes (an accumulator and a scale register
    /// each).
    pub(super) const MAX_TOKENS: usize = 8;

    /// One group of up to [`MAX_TOKENS`] quantized tokens, one after another: codes, f32 block
    /// scales, and offsets (`-128 ·` the sum of each 4 codes).
    pub(super) struct Tokens<'a> {
        pub(super) codes: &'a [i8],
        pub(super) scales: &'a [f32],
        pub(super) offsets: &'a [i32],
    }

    /// Tokens per pass when a group's rows go together (as the F16 few-token kernel: 4 rows ×
    /// 2 tokens keep 8 accumulators and 8 scale registers).
    pub(super) const TOKENS_PER_PASS: usize = 2;

    /// `dots[r][t]` = row `r`'s dot with token `t` of `tokens` (`n` ≤ [`MAX_TOKENS`] tokens; 1 or
    /// 4 rows, each `q.len() / dots.len()` codes): each 64 bytes of a row are loaded and offset
    /// once for all the tokens, each 64 bytes of a token's codes and offsets once for all the
    /// rows, and every (row, token) lane takes exactly the operations of a row and token alone.
    pub(super) fn rows_dots_avx512(
        q: &[i8],
        w: &[f16],
        tokens: &Tokens<'_>,
        n: usize,
        dots: &mut [[f32; MAX_TOKENS]],
    ) {
        assert!(
            is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512vnni")
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
        );
        let rows = dots.len();
        assert!((1..=MAX_TOKENS).contains(&n) && (rows == 1 || rows == 4));
        assert!(rows == 1 || n <= TOKENS_PER_PASS);
        assert!(q.len() == Q8_BLOCK * w.len() && w.len().is_multiple_of(rows));
        // (Divisions by constants: dividing by `rows` in every call cost the one-token head a few
        // percent.)
        let (cols, blocks) = if rows == 4 {
            (q.len() / 4, w.len() / 4)
        } else {
            (q.len(), w.len())
        };
        assert!(tokens.codes.len() == n * cols && tokens.scales.len() == n * blocks);
        assert!(tokens.offsets.len() == n * cols / 4);
        // SAFETY: features checked; every block index read is < blocks = cols/32 of each row and
        // of each token's codes, scales and offsets (lengths checked).
        unsafe {
            match (rows, n) {
                (4, 1) => rows_dots_avx512_impl::<4, 1>(q, w, tokens, dots),
                (4, _) => rows_dots_avx512_impl::<4, TOKENS_PER_PASS>(q, w, tokens, dots),
                (_, 1) => rows_dots_avx512_impl::<1, 1>(q, w, tokens, dots),
                (_, 2) => rows_dots_avx512_impl::<1, 2>(q, w, tokens, dots),
                (_, 3) => rows_dots_avx512_impl::<1, 3>(q, w, tokens, dots),
                (_, 4) => rows_dots_avx512_impl::<1, 4>(q, w, tokens, dots),
                (_, 5) => rows_dots_avx512_impl::<1, 5>(q, w, tokens, dots),
                (_, 6) => rows_dots_avx512_impl::<1, 6>(q, w, tokens, dots),
                (_, 7) => rows_dots_avx512_impl::<1, 7>(q, w, tokens, dots),
                _ => rows_dots_avx512_impl::<1, 8>(q, w, tokens, dots),
            }
        }
    }

    /// Where lanes 0–7 and 8–15 find the scales of blocks `2p` and `2p + 1` of an 8-block
    /// scale group, for each pair `p`.
    static PAIR_SCALE_LANES: [[i32; 16]; 4] = {
        let mut lanes = [[0i32; 16]; 4];
        let mut p = 0;
        while p < 4 {
            let mut l = 0;
            while l < 16 {
                lanes[p][l] = (2 * p + l / 8) as i32;
                l += 1;
            }
            p += 1;
        }
        lanes
    };

    /// Two blocks per 512-bit step: the dot of block `b` lands in lanes 0–7 and that of block
    /// `b + 1` in lanes 8–15, exactly the lanes (and per-lane operations) of the one-block-per-
    /// 256-bit order, with half the instructions. The codes are offset to `w + 128` (unsigned)
    /// and `vpdpbusd` starts from the token's offsets, so each lane's integer is exactly
    /// `Σ w·x` of its 4 bytes. The scales `d_w · d_x` of 8 blocks are one register per (row,
    /// token) (masked loads read zeros past the row's end), from which each pair's lanes are
    /// permuted. `R` rows of `q.len() / R` codes, one after another.
    ///
    /// # Safety
    /// The CPU features of the attribute; `q` holds `32 · w.len()` codes (`R` rows), `tokens`
    /// holds `T` tokens of one row's length, `dots` `R` entries.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn rows_dots_avx512_impl<const R: usize, const T: usize>(
        q: &[i8],
        w: &[f16],
        tokens: &Tokens<'_>,
        dots: &mut [[f32; MAX_TOKENS]],
    ) {
        let blocks = w.len() / R;
        let cols = q.len() / R;
        let (xq, xs, xo) = (tokens.codes, tokens.scales, tokens.offsets);
        let flip = _mm512_set1_epi8(i8::MIN);
        // SAFETY: each load reads one 16-lane row of the table.
        let lanes: [__m512i; 4] = std::array::from_fn(|p| unsafe {
            _mm512_loadu_si512(PAIR_SCALE_LANES[p].as_ptr().cast())
        });
        let mut acc = [[_mm512_setzero_ps(); T]; R];
        let mut first = 0;
        while first < blocks {
            // SAFETY: the masked loads read blocks first..first + present (< blocks) of each
            // row's and each token's scales; block b < blocks reads bytes 32b..32b + 32 (+ 64
            // when b + 2 <= blocks) of each row and of each token's codes, and offsets 8b..8b + 8
            // (+ 16) of each token's.
            unsafe {
                let present = (0xFFu32 >> (8 - (blocks - first).min(8))) as __mmask8;
                let mut scales = [[_mm512_setzero_ps(); T]; R];
                for r in 0..R {
                    let wr = w.as_ptr().add(r * blocks);
                    let ahead = wr.wrapping_add(first + PREFETCH_BYTES / Q8_BLOCK);
                    _mm_prefetch::<_MM_HINT_T1>(ahead.cast());
                    let wd = _mm256_cvtph_ps(_mm_maskz_loadu_epi16(present, wr.add(first).cast()));
                    for t in 0..T {
                        let xd =
                            _mm256_maskz_loadu_ps(present, xs.as_ptr().add(t * blocks + first));
                        scales[r][t] = _mm512_castps256_ps512(_mm256_mul_ps(wd, xd));
                    }
                }
                for p in 0..4 {
                    let b = first + 2 * p;
                    if b + 2 <= blocks {
                        let mut wv = [flip; R];
                        for r in 0..R {
                            let wp = q.as_ptr().add(r * cols + b * Q8_BLOCK);
                            _mm_prefetch::<_MM_HINT_T1>(wp.wrapping_add(PREFETCH_BYTES).cast());
                            wv[r] = _mm512_xor_si512(_mm512_loadu_si512(wp.cast()), flip);
                        }
                        for t in 0..T {
                            let xv =
                                _mm512_loadu_si512(xq.as_ptr().add(t * cols + b * Q8_BLOCK).cast());
                            let offset =
                                _mm512_loadu_si512(xo.as_ptr().add(t * cols / 4 + 8 * b).cast());
                            for r in 0..R {
                                let dot = _mm512_dpbusd_epi32(offset, wv[r], xv);
                                let scale = _mm512_permutexvar_ps(lanes[p], scales[r][t]);
                                acc[r][t] =
                                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc[r][t]);
                            }
                        }
                    } else if b < blocks {
                        // The last block of an odd count: lanes 0–7 only.
                        let mut wv = [_mm512_castsi512_si256(flip); R];
                        for r in 0..R {
                            let wp = q.as_ptr().add(r * cols + b * Q8_BLOCK);
                            wv[r] = _mm256_xor_si256(
                                _mm256_loadu_si256(wp.cast()),
                                _mm512_castsi512_si256(flip),
                            );
                        }
                        for t in 0..T {
                            let xv =
                                _mm256_loadu_si256(xq.as_ptr().add(t * cols + b * Q8_BLOCK).cast());
                            let offset =
                                _mm256_loadu_si256(xo.as_ptr().add(t * cols / 4 + 8 * b).cast());
                            for r in 0..R {
                                let dot = _mm256_dpbusd_epi32(offset, wv[r], xv);
                                acc[r][t] = _mm512_mask3_fmadd_ps(
                                    _mm512_cvtepi32_ps(_mm512_zextsi256_si512(dot)),
                                    _mm512_permutexvar_ps(lanes[p], scales[r][t]),
                                    acc[r][t],
                                    0x00FF,
                                );
                            }
                        }
                    }
                }
            }
            first += 8;
        }
        for (dots, acc) in dots.iter_mut().zip(acc) {
            for (dot, acc) in dots.iter_mut().zip(acc) {
                *dot = fold_512(acc);
            }
        }
    }

    /// The weight scales of blocks `first..first + 8` widened to f32 (zeros past the row's end).
    #[target_feature(enable = "avx,f16c")]
    #[inline]
    fn scale_group(w: &[f16], first: usize) -> __m256 {
        if first + 8 <= w.len() {
            // SAFETY: 8 halves from `first` are in bounds (checked just above).
            unsafe { _mm256_cvtph_ps(_mm_loadu_si128(w.as_ptr().add(first).cast())) }
        } else {
            let mut group = [0f32; 8];
            for (g, w) in group.iter_mut().zip(&w[first..]) {
                *g = w.to_f32();
            }
            // SAFETY: reads the 8 floats of `group`.
            unsafe { _mm256_loadu_ps(group.as_ptr()) }
        }
    }

    /// The activation scales of blocks `first..first + 8` (zeros past the row's end).
    #[target_feature(enable = "avx")]
    #[inline]
    fn scale_group_f32(xs: &[f32], first: usize) -> __m256 {
        if first + 8 <= xs.len() {
            // SAFETY: 8 floats from `first` are in bounds (checked just above).
            return unsafe { _mm256_loadu_ps(xs.as_ptr().add(first)) };
        }
        let mut group = [0f32; 8];
        group[..xs.len() - first].copy_from_slice(&xs[first..]);
        // SAFETY: reads the 8 floats of `group`.
        unsafe { _mm256_loadu_ps(group.as_ptr()) }
    }

    /// `d_w · d_x` for blocks `first..first + 8` (fewer at the end of the row) into `scales`.
    #[target_feature(enable = "avx,f16c")]
    #[inline]
    fn block_scales(w: &[f16], xs: &[f32], first: usize, scales: &mut [f32; 8]) {
        let product = _mm256_mul_ps(scale_group(w, first), scale_group_f32(xs, first));
        // SAFETY: writes the 8 floats of `scales`.
        unsafe { _mm256_storeu_ps(scales.as_mut_ptr(), product) };
    }

    pub(super) fn row_dot_avx2(q: &[i8], w: &[f16], xq: &[i8], xs: &[f32]) -> f32 {
        assert!(
            is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
        );
        assert!(q.len() == xq.len() && q.len() == Q8_BLOCK * w.len() && w.len() == xs.len());
        // SAFETY: features checked; every block index read is < w.len() = q.len()/32 (checked).
        unsafe { row_dot_avx2_impl(q, w, xq, xs) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn row_dot_avx2_impl(q: &[i8], w: &[f16], xq: &[i8], xs: &[f32]) -> f32 {
        let ones = _mm256_set1_epi16(1);
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut scales = [0f32; 8];
        for b in 0..w.len() {
            // SAFETY: b < blocks, so bytes 32b..32b+32 of q and xq are in bounds.
            unsafe {
                if b % 8 == 0 {
                    block_scales(w, xs, b, &mut scales);
                }
                let wp = q.as_ptr().add(b * Q8_BLOCK);
                _mm_prefetch::<_MM_HINT_T1>(wp.wrapping_add(PREFETCH_BYTES).cast());
                let wv = _mm256_loadu_si256(wp.cast());
                let xv = _mm256_loadu_si256(xq.as_ptr().add(b * Q8_BLOCK).cast());
                // |w| ≤ 128 and |x| ≤ 127: pair sums ≤ 32512, no i16 saturation.
                let pairs =
                    _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
                let dot = _mm256_madd_epi16(pairs, ones);
                let scale = _mm256_set1_ps(scales[b % 8]);
                if b % 2 == 0 {
                    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, acc0);
                } else {
                    acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, acc1);
                }
            }
        }
        fold_256x2(acc0, acc1)
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    //! aarch64 NEON Q8_0 row dot: per block, the 8 quad dots by widening byte multiplies and
    //! pairwise adds (exact in i32), scaled into the 16 lanes of the order as four 4-float
    //! accumulators (lanes 0–7 even blocks, 8–15 odd ones).

    use half::f16;
    use std::arch::aarch64::*;

    use super::Q8_BLOCK;
    use crate::ternary::neon::quad_dots;

    pub(super) fn row_dot(q: &[i8], w: &[f16], xq: &[i8], xs: &[f32]) -> f32 {
        assert!(q.len() == xq.len() && q.len() == Q8_BLOCK * w.len() && w.len() == xs.len());
        // SAFETY: NEON baseline register operation.
        let mut acc = [unsafe { vdupq_n_f32(0.0) }; 4];
        for b in 0..w.len() {
            let half = 2 * (b % 2);
            let scale = w[b].to_f32() * xs[b];
            // SAFETY: block b's 32 bytes (32b..32b+32) of q and xq are in bounds (checked above).
            unsafe {
                let scale = vdupq_n_f32(scale);
                for part in 0..2 {
                    let at = b * Q8_BLOCK + 16 * part;
                    let dots =
                        quad_dots(vld1q_s8(q.as_ptr().add(at)), vld1q_s8(xq.as_ptr().add(at)));
                    acc[half + part] = vfmaq_f32(acc[half + part], vcvtq_f32_s32(dots), scale);
                }
            }
        }
        // The halving tree of `order::fold` over 16 lanes: registers 8 lanes apart, then 4, then
        // lanes 2 apart within the last register, then 1.
        // SAFETY: NEON baseline register operations.
        unsafe {
            let a = [vaddq_f32(acc[0], acc[2]), vaddq_f32(acc[1], acc[3])];
            let c = vaddq_f32(a[0], a[1]);
            let d = vadd_f32(vget_low_f32(c), vget_high_f32(c));
            vget_lane_f32::<0>(d) + vget_lane_f32::<1>(d)
        }
    }
}
