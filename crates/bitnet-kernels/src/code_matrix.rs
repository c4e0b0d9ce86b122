//! Block-quantized weights kept quantized in memory: [`CodeMatrix`] holds each row as int8
//! codes with one f32 scale (and, for the types that have one, one f32 offset) per 16 codes, so
//! weight `e` of a row is `scale[e/16] · code[e] + offset[e/16]` exactly (ggml's dequantized
//! value; `bitnet_quant::decode_int_codes` produces this form for Q4_0 … Q8_0 and Q2_K … Q6_K).
//! One byte per weight instead of the two of F16, and products on the integer units.
//!
//! Activations are quantized per token in blocks of 32 (`d = max|x| / 127` in f32,
//! `q = x · (1/d)` rounded half to even, 0 when d = 0), like ggml's Q8_0 but with an f32 scale.
//!
//! For a weight row and a token, the output is, in this order (the same on every ISA, see
//! [`crate::order`]):
//! - 16 lanes; for each 64-code chunk `c` in order and lane `l`, with `i = 64c + 4l`:
//!   `lane[l] = fma(D as f32, s, lane[l])`, where `D = Σ_{k<4} code[i+k] · q[i+k]` (an exact
//!   integer) and `s = scale[i/16] · d[i/32]` (rounded to f32); then the halving-tree fold;
//! - for rows with offsets, plus `O`: 16 lanes over the groups `g` of 16,
//!   `lane[g mod 16] = fma(offset[g], a[g], lane)` with `a[g] = d[g/2] · (Σ_{group g} q as f32)`,
//!   folded, then the last `n mod 16` groups fused onto the folded sum in order.
//!
//! Decode, batched decode and prefill all compute each (row, token) output this way, so a token's
//! logits do not depend on the batch it is in.

#![allow(clippy::needless_range_loop)] // SIMD lanes and rows read best as indexed loops.

use std::cell::RefCell;
use std::sync::atomic::Ordering;

use crate::error::KernelError;
use crate::isa::{active_isa, record, Isa, KernelId};
use crate::order::fold;
use crate::pool::{atomic_f32_view, ThreadPool};
use crate::q8::check_len;

/// Codes per scale / offset.
pub const CODE_GROUP: usize = 16;
/// Activation values per quantization block (one f32 scale each).
pub const ACTIVATION_BLOCK: usize = 32;
/// Codes per kernel step (16 lanes of 4 codes); `cols` must be a multiple of it.
pub const CODE_CHUNK: usize = 64;
/// Rows handled per kernel call (they share the activation loads).
const ROWS_PER_CALL: usize = 4;

/// A row-major matrix of int8 codes with per-16 scales and optional per-16 offsets.
#[derive(Clone, PartialEq)]
pub struct CodeMatrix {
    rows: usize,
    cols: usize,
    codes: Vec<i8>,
    scales: Vec<f32>,
    offsets: Option<Vec<f32>>,
}

impl std::fmt::Debug for CodeMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeMatrix")
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("offsets", &self.offsets.is_some())
            .finish()
    }
}

impl CodeMatrix {
    /// Wraps row-major codes (`rows × cols`, `cols` a multiple of 64), `rows × cols / 16`
    /// scales and, if the type has them, as many offsets.
    pub fn from_parts(
        rows: usize,
        cols: usize,
        codes: Vec<i8>,
        scales: Vec<f32>,
        offsets: Option<Vec<f32>>,
    ) -> Result<CodeMatrix, KernelError> {
        if rows == 0 || cols == 0 {
            return Err(KernelError::EmptyShape { rows, cols });
        }
        if !cols.is_multiple_of(CODE_CHUNK) {
            return Err(KernelError::ColsNotMultiple {
                cols,
                granularity: CODE_CHUNK,
            });
        }
        check_len("codes (rows × cols)", rows * cols, codes.len())?;
        check_len(
            "scales (rows × cols / 16)",
            rows * cols / CODE_GROUP,
            scales.len(),
        )?;
        if let Some(o) = &offsets {
            check_len(
                "offsets (rows × cols / 16)",
                rows * cols / CODE_GROUP,
                o.len(),
            )?;
        }
        Ok(CodeMatrix {
            rows,
            cols,
            codes,
            scales,
            offsets,
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

    /// Bytes one product streams (codes, scales, offsets).
    pub fn stored_len(&self) -> usize {
        self.codes.len() + 4 * self.scales.len() + self.offsets.as_ref().map_or(0, |o| 4 * o.len())
    }

    /// Row `r`'s weights, `scale · code + offset` (bit-identical to ggml's dequantization).
    pub fn row_into(&self, r: usize, out: &mut [f32]) {
        let groups = self.cols / CODE_GROUP;
        let codes = &self.codes[r * self.cols..(r + 1) * self.cols];
        let scales = &self.scales[r * groups..(r + 1) * groups];
        for (g, (o, c)) in out
            .chunks_exact_mut(CODE_GROUP)
            .zip(codes.chunks_exact(CODE_GROUP))
            .enumerate()
        {
            match &self.offsets {
                Some(m) => {
                    let m = m[r * groups + g];
                    for (o, &c) in o.iter_mut().zip(c) {
                        *o = scales[g] * f32::from(c) + m;
                    }
                }
                None => {
                    for (o, &c) in o.iter_mut().zip(c) {
                        *o = scales[g] * f32::from(c);
                    }
                }
            }
        }
    }

    /// The matrix cut into consecutive blocks of output rows (`sizes` must add up to `rows`).
    pub fn split_rows(&self, sizes: &[usize]) -> Option<Vec<CodeMatrix>> {
        if sizes.iter().sum::<usize>() != self.rows || sizes.contains(&0) {
            return None;
        }
        let (cols, groups) = (self.cols, self.cols / CODE_GROUP);
        let mut start = 0;
        let mut parts = Vec::with_capacity(sizes.len());
        for &rows in sizes {
            let (r0, r1) = (start, start + rows);
            parts.push(CodeMatrix {
                rows,
                cols,
                codes: self.codes[r0 * cols..r1 * cols].to_vec(),
                scales: self.scales[r0 * groups..r1 * groups].to_vec(),
                offsets: self
                    .offsets
                    .as_ref()
                    .map(|o| o[r0 * groups..r1 * groups].to_vec()),
            });
            start = r1;
        }
        Some(parts)
    }

    /// `out[b·rows + r]` = row `r` · token `b` of `x` (batch × cols, f32), see the module docs.
    pub fn matmul(
        &self,
        x: &[f32],
        batch: usize,
        out: &mut [f32],
        pool: &ThreadPool,
    ) -> Result<(), KernelError> {
        self.matmul_with_isa(active_isa(), x, batch, out, pool)
    }

    /// [`CodeMatrix::matmul`] on a chosen instruction set.
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
            Isa::Scalar | Isa::Neon => KernelId::CodeScalarMatmul,
            Isa::Avx2 => KernelId::CodeAvx2Matmul,
            Isa::Avx512 => KernelId::CodeAvx512Matmul,
        });
        ACTIVATIONS.with(|cell| {
            let acts = &mut *cell.borrow_mut();
            acts.quantize(x, self.cols);
            let acts = &*acts;
            let out = atomic_f32_view(out);
            let (rows, cols) = (self.rows, self.cols);
            let groups = cols / CODE_GROUP;
            pool.run_row_groups(rows, ROWS_PER_CALL, &|first, count| {
                let w = RowsRef {
                    codes: &self.codes[first * cols..(first + count) * cols],
                    scales: &self.scales[first * groups..(first + count) * groups],
                    offsets: self
                        .offsets
                        .as_ref()
                        .map(|o| &o[first * groups..(first + count) * groups]),
                    count,
                };
                for b in 0..batch {
                    let dots = rows_dot(isa, &w, &acts.token(b, cols));
                    for (r, &dot) in dots[..count].iter().enumerate() {
                        out[b * rows + first + r].store(dot.to_bits(), Ordering::Relaxed);
                    }
                }
            });
        });
        Ok(())
    }
}

/// Up to [`ROWS_PER_CALL`] consecutive rows of a [`CodeMatrix`].
struct RowsRef<'a> {
    codes: &'a [i8],
    scales: &'a [f32],
    offsets: Option<&'a [f32]>,
    count: usize,
}

/// One quantized activation row.
struct TokenRef<'a> {
    /// Codes, `cols` long.
    qs: &'a [i8],
    /// The block scale `d` of each lane of 4 codes (`cols / 4` long).
    lane_scales: &'a [f32],
    /// `d · Σ q` per group of 16 codes (`cols / 16` long).
    group_sums: &'a [f32],
}

/// Quantized activations of a batch (per-thread scratch, reused from call to call).
#[derive(Default)]
struct Activations {
    qs: Vec<i8>,
    lane_scales: Vec<f32>,
    group_sums: Vec<f32>,
}

impl Activations {
    fn quantize(&mut self, x: &[f32], cols: usize) {
        self.qs.clear();
        self.qs.resize(x.len(), 0);
        self.lane_scales.clear();
        self.lane_scales.resize(x.len() / 4, 0.0);
        self.group_sums.clear();
        self.group_sums.resize(x.len() / CODE_GROUP, 0.0);
        debug_assert!(x.len().is_multiple_of(cols));
        for (((block, q), lanes), sums) in x
            .chunks_exact(ACTIVATION_BLOCK)
            .zip(self.qs.chunks_exact_mut(ACTIVATION_BLOCK))
            .zip(self.lane_scales.chunks_exact_mut(ACTIVATION_BLOCK / 4))
            .zip(
                self.group_sums
                    .chunks_exact_mut(ACTIVATION_BLOCK / CODE_GROUP),
            )
        {
            let d = quantize_block(block, q);
            lanes.fill(d);
            for (s, group) in sums.iter_mut().zip(q.chunks_exact(CODE_GROUP)) {
                let total: i32 = group.iter().map(|&v| i32::from(v)).sum();
                *s = d * total as f32;
            }
        }
    }

    fn token(&self, b: usize, cols: usize) -> TokenRef<'_> {
        TokenRef {
            qs: &self.qs[b * cols..(b + 1) * cols],
            lane_scales: &self.lane_scales[b * cols / 4..(b + 1) * cols / 4],
            group_sums: &self.group_sums[b * cols / CODE_GROUP..(b + 1) * cols / CODE_GROUP],
        }
    }
}

/// Quantizes one block of 32 activations into `q`; returns its scale `d`.
fn quantize_block(x: &[f32], q: &mut [i8]) -> f32 {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let inverse = if d != 0.0 { 1.0 / d } else { 0.0 };
    for (q, &v) in q.iter_mut().zip(x) {
        *q = (v * inverse).round_ties_even().clamp(-127.0, 127.0) as i8;
    }
    d
}

thread_local! {
    static ACTIVATIONS: RefCell<Activations> = RefCell::new(Activations::default());
}

/// Dots of the rows of `w` with one token.
fn rows_dot(isa: Isa, w: &RowsRef, x: &TokenRef) -> [f32; ROWS_PER_CALL] {
    let cols = x.qs.len();
    let groups = cols / CODE_GROUP;
    let mut dots = [0f32; ROWS_PER_CALL];
    for r in 0..w.count {
        let codes = &w.codes[r * cols..(r + 1) * cols];
        let scales = &w.scales[r * groups..(r + 1) * groups];
        let main = match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::codes_dot_avx512(codes, scales, x.qs, x.lane_scales),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::codes_dot_avx2(codes, scales, x.qs, x.lane_scales),
            _ => codes_dot_scalar(codes, scales, x.qs, x.lane_scales),
        };
        dots[r] = match w.offsets {
            Some(o) => {
                let o = &o[r * groups..(r + 1) * groups];
                main + match isa {
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx512 => x86::offsets_dot_avx512(o, x.group_sums),
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2 => x86::offsets_dot_avx2(o, x.group_sums),
                    _ => offsets_dot_scalar(o, x.group_sums),
                }
            }
            None => main,
        };
    }
    dots
}

/// The scalar reference of the code part (module docs).
fn codes_dot_scalar(codes: &[i8], scales: &[f32], xq: &[i8], lane_scales: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    for (c, (wc, xc)) in codes
        .chunks_exact(CODE_CHUNK)
        .zip(xq.chunks_exact(CODE_CHUNK))
        .enumerate()
    {
        for l in 0..16 {
            let i = 4 * l;
            let dot: i32 = (0..4)
                .map(|k| i32::from(wc[i + k]) * i32::from(xc[i + k]))
                .sum();
            let s = scales[4 * c + l / 4] * lane_scales[16 * c + l];
            lanes[l] = (dot as f32).mul_add(s, lanes[l]);
        }
    }
    fold(lanes)
}

/// The scalar reference of the offset part (module docs).
fn offsets_dot_scalar(offsets: &[f32], group_sums: &[f32]) -> f32 {
    let n = offsets.len();
    let body = n - n % 16;
    let mut lanes = [0f32; 16];
    for g in 0..body {
        lanes[g % 16] = offsets[g].mul_add(group_sums[g], lanes[g % 16]);
    }
    offsets_tail(fold(lanes), &offsets[body..], &group_sums[body..])
}

/// The last `n mod 16` offset terms, fused onto the folded sum in order.
fn offsets_tail(mut sum: f32, offsets: &[f32], group_sums: &[f32]) -> f32 {
    for (&o, &a) in offsets.iter().zip(group_sums) {
        sum = o.mul_add(a, sum);
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! AVX2 / AVX-512 code dots: `|w|` (unsigned) × `q·sign(w)` (signed) byte products summed in
    //! fours (exact), scaled per lane into f32 lanes (lanes 0–15 of a 512-bit register, or
    //! 0–7 / 8–15 in two 256-bit ones).

    use crate::order::x86::{fold_256x2, fold_512};
    use std::arch::x86_64::*;

    use super::{offsets_tail, CODE_CHUNK};

    fn check(codes: &[i8], scales: &[f32], xq: &[i8], lane_scales: &[f32]) {
        assert!(
            codes.len() == xq.len()
                && codes.len().is_multiple_of(CODE_CHUNK)
                && scales.len() * 16 == codes.len()
                && lane_scales.len() * 4 == codes.len()
        );
    }

    pub(super) fn codes_dot_avx512(
        codes: &[i8],
        scales: &[f32],
        xq: &[i8],
        lane_scales: &[f32],
    ) -> f32 {
        assert!(crate::isa::Isa::Avx512.is_supported());
        check(codes, scales, xq, lane_scales);
        // SAFETY: features checked; every chunk read is within the lengths checked above.
        unsafe { codes_dot_avx512_impl(codes, scales, xq, lane_scales) }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
    unsafe fn codes_dot_avx512_impl(
        codes: &[i8],
        scales: &[f32],
        xq: &[i8],
        lane_scales: &[f32],
    ) -> f32 {
        let spread = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
        let mut acc = _mm512_setzero_ps();
        for c in 0..codes.len() / CODE_CHUNK {
            // SAFETY: chunk c: codes/xq bytes 64c..64c+64, scales 4c..4c+4, lane scales
            // 16c..16c+16, all in bounds (checked by the caller).
            unsafe {
                let w = _mm512_loadu_si512(codes.as_ptr().add(c * CODE_CHUNK).cast());
                let x = _mm512_loadu_si512(xq.as_ptr().add(c * CODE_CHUNK).cast());
                let x_signed =
                    _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(w), _mm512_setzero_si512(), x);
                let dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(w), x_signed);
                let ws = _mm512_permutexvar_ps(
                    spread,
                    _mm512_castps128_ps512(_mm_loadu_ps(scales.as_ptr().add(4 * c))),
                );
                let s = _mm512_mul_ps(ws, _mm512_loadu_ps(lane_scales.as_ptr().add(16 * c)));
                acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), s, acc);
            }
        }
        fold_512(acc)
    }

    pub(super) fn codes_dot_avx2(
        codes: &[i8],
        scales: &[f32],
        xq: &[i8],
        lane_scales: &[f32],
    ) -> f32 {
        assert!(crate::isa::Isa::Avx2.is_supported());
        check(codes, scales, xq, lane_scales);
        // SAFETY: features checked; every chunk read is within the lengths checked above.
        unsafe { codes_dot_avx2_impl(codes, scales, xq, lane_scales) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn codes_dot_avx2_impl(
        codes: &[i8],
        scales: &[f32],
        xq: &[i8],
        lane_scales: &[f32],
    ) -> f32 {
        let spread = [
            _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1),
            _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3),
        ];
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); 2];
        for c in 0..codes.len() / CODE_CHUNK {
            // SAFETY: as in the AVX-512 kernel, chunk c's bytes, scales and lane scales are in
            // bounds; each half reads 32 of its 64 bytes and 8 of its 16 lane scales.
            unsafe {
                let group_scales = _mm256_castps128_ps256(_mm_loadu_ps(scales.as_ptr().add(4 * c)));
                for h in 0..2 {
                    let at = c * CODE_CHUNK + 32 * h;
                    let w = _mm256_loadu_si256(codes.as_ptr().add(at).cast());
                    let x = _mm256_loadu_si256(xq.as_ptr().add(at).cast());
                    // |w| ≤ 128 and |q| ≤ 127: a pair sum is at most 32512, no saturation.
                    let pairs =
                        _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
                    let dot = _mm256_madd_epi16(pairs, ones);
                    let ws = _mm256_permutevar8x32_ps(group_scales, spread[h]);
                    let s = _mm256_mul_ps(
                        ws,
                        _mm256_loadu_ps(lane_scales.as_ptr().add(16 * c + 8 * h)),
                    );
                    acc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), s, acc[h]);
                }
            }
        }
        fold_256x2(acc[0], acc[1])
    }

    pub(super) fn offsets_dot_avx512(offsets: &[f32], group_sums: &[f32]) -> f32 {
        assert!(crate::isa::Isa::Avx512.is_supported() && offsets.len() == group_sums.len());
        // SAFETY: features checked; reads stay below offsets.len() == group_sums.len().
        unsafe { offsets_dot_avx512_impl(offsets, group_sums) }
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn offsets_dot_avx512_impl(offsets: &[f32], group_sums: &[f32]) -> f32 {
        let body = offsets.len() - offsets.len() % 16;
        let mut acc = _mm512_setzero_ps();
        let mut g = 0;
        while g < body {
            // SAFETY: g + 16 <= body <= len.
            unsafe {
                acc = _mm512_fmadd_ps(
                    _mm512_loadu_ps(offsets.as_ptr().add(g)),
                    _mm512_loadu_ps(group_sums.as_ptr().add(g)),
                    acc,
                );
            }
            g += 16;
        }
        offsets_tail(fold_512(acc), &offsets[body..], &group_sums[body..])
    }

    pub(super) fn offsets_dot_avx2(offsets: &[f32], group_sums: &[f32]) -> f32 {
        assert!(crate::isa::Isa::Avx2.is_supported() && offsets.len() == group_sums.len());
        // SAFETY: features checked; reads stay below offsets.len() == group_sums.len().
        unsafe { offsets_dot_avx2_impl(offsets, group_sums) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn offsets_dot_avx2_impl(offsets: &[f32], group_sums: &[f32]) -> f32 {
        let body = offsets.len() - offsets.len() % 16;
        let mut acc = [_mm256_setzero_ps(); 2];
        let mut g = 0;
        while g < body {
            for h in 0..2 {
                // SAFETY: g + 16 <= body <= len.
                unsafe {
                    acc[h] = _mm256_fmadd_ps(
                        _mm256_loadu_ps(offsets.as_ptr().add(g + 8 * h)),
                        _mm256_loadu_ps(group_sums.as_ptr().add(g + 8 * h)),
                        acc[h],
                    );
                }
            }
            g += 16;
        }
        offsets_tail(
            fold_256x2(acc[0], acc[1]),
            &offsets[body..],
            &group_sums[body..],
        )
    }
}
