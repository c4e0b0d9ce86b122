//! Q6_K matrices for a quantized LM head (`--head q6_k`, what bitnet.cpp's 2026 release does to
//! the token embedding / head by default): ggml's 6-bit k-quant kept packed in memory, 210 bytes
//! per 256 weights (0.82 bytes per weight against Q8_0's 1.06 and F16's 2), and its product with
//! activations quantized per 256 values, integer inside each super-block.
//!
//! **Block** (ggml's `block_q6_K`, [`Q6K_BLOCK_BYTES`] bytes for [`Q6K_BLOCK`] weights):
//! `ql[128]`, `qh[64]`, `scales: i8[16]`, `d: f16`. Element `e = 128h + r` (`h` = 0 or 1,
//! `r < 128`) has the 6-bit code `c = lo | hi << 4`, `lo = (ql[64h + r mod 64] >> 4⌊r/64⌋) & 15`,
//! `hi = (qh[32h + r mod 32] >> 2⌊r/32⌋) & 3`, and the value `d · scales[⌊e/16⌋] · (c − 32)`.
//! A row of `cols` weights is `⌈cols/256⌉` consecutive blocks; when `cols` is not a multiple of
//! 256 the row is held zero-padded to the next multiple (ggml has no partial super-block; the
//! padding meets zero activations, so it adds nothing to any product).
//!
//! **Activations**: each input row, zero-padded the same way, is quantized per 256 values by
//! ggml's Q8_K rule ([`quantize_q8_k`]): `iscale = −127 / m` with `m` the value of largest
//! magnitude (first on ties), `a = min(127, nearest(iscale · x))` (round half to even),
//! `d_x = 1 / iscale`, and the sums of each 16 codes.
//!
//! **Product** (the one summation order, the same bits on every ISA, for every batch size and
//! thread count): per output row and super-block `b`, the integer
//! `S_b = Σ_{j<16} scales_j · Σ_{i<16} (c_{16j+i} − 32) · a_{16j+i}` is exact in i32
//! (`|S_b| ≤ 16 · 128 · 16 · 32 · 127 < 2³¹`); then `acc = fma(S_b as f32, f32(d_w) · d_x, acc)`
//! from `acc = +0.0`, super-blocks in order: one rounded product and one fused multiply-add per
//! super-block per row. Each token of a batch is computed exactly as alone. (ggml's
//! `vec_dot_q6_K_q8_K` forms the same `S_b`; it sums the scaled terms in another order.)
//!
//! Kernels: the SIMD forms compute `S_b` as `Σ_j scales_j · (Σ_i c_i·a_i − 32 · bsum_j)` with
//! unsigned × signed byte products (`c ≤ 63`, `|a| ≤ 127`: a pair sum ≤ 16002 fits i16). AVX-512
//! unpacks 64 codes per register and scales the i16 pair sums by `vpdpwssd`; AVX2 works 32 codes
//! at a time with `vpmaddwd`; NEON one 16-code sub-block at a time. Rows go in groups of four
//! (one four-lane float update per super-block), tokens up to eight per pass over the weights.

#![allow(clippy::needless_range_loop)] // Lanes, rows and tokens read best as indexed loops.

use std::cell::RefCell;
use std::sync::atomic::Ordering;

use half::f16;

use crate::error::KernelError;
use crate::isa::{active_isa, record, Isa, KernelId};
use crate::memory::CacheAligned;
use crate::pool::{atomic_f32_view, ThreadPool};

/// Weights per Q6_K super-block (and activations per Q8_K block).
pub const Q6K_BLOCK: usize = 256;
/// Bytes per Q6_K super-block: `ql` 128, `qh` 64, 16 scales, `d`.
pub const Q6K_BLOCK_BYTES: usize = 210;
/// Sub-blocks (of 16 values, one scale each) per super-block.
const SUB_BLOCKS: usize = 16;
/// Rows handled per kernel call (one float update of four lanes per super-block).
const ROWS_PER_CALL: usize = 4;
/// Tokens handled per pass over a group of rows (the unpacked codes are reused for each).
const TOKENS_PER_PASS: usize = 8;

/// ggml's `nearest_int`: round half to even by adding 1.5·2²³ (exact for |x| ≤ 2²²; the Q8_K
/// rule only rounds values of magnitude ≤ 127 for finite input).
#[inline]
fn nearest(x: f32) -> i32 {
    let v = x + 12_582_912.0;
    (v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// Quantizes whole 256-value blocks of `x` by ggml's Q8_K rule (module docs): codes into `qs`,
/// one f32 scale per block into `scales`, the sums of each 16 codes into `sums`. Non-finite
/// input never panics (its codes are then unspecified).
pub fn quantize_q8_k(
    x: &[f32],
    qs: &mut [i8],
    scales: &mut [f32],
    sums: &mut [i16],
) -> Result<(), KernelError> {
    if !x.len().is_multiple_of(Q6K_BLOCK) {
        return Err(KernelError::ColsNotMultiple {
            cols: x.len(),
            granularity: Q6K_BLOCK,
        });
    }
    check_len("Q8_K codes", x.len(), qs.len())?;
    check_len("Q8_K scales", x.len() / Q6K_BLOCK, scales.len())?;
    check_len("Q8_K sums", x.len() / SUB_BLOCKS, sums.len())?;
    for (((block, q), scale), sums) in x
        .chunks_exact(Q6K_BLOCK)
        .zip(qs.chunks_exact_mut(Q6K_BLOCK))
        .zip(scales.iter_mut())
        .zip(sums.chunks_exact_mut(SUB_BLOCKS))
    {
        quantize_q8_k_block(block, q, scale, sums);
    }
    Ok(())
}

fn quantize_q8_k_block(x: &[f32], q: &mut [i8], scale: &mut f32, sums: &mut [i16]) {
    let (mut max, mut amax) = (0f32, 0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        q.fill(0);
        sums.fill(0);
        *scale = 0.0;
        return;
    }
    let iscale = -127.0 / max;
    for (q, &v) in q.iter_mut().zip(x) {
        *q = nearest(iscale * v).clamp(-128, 127) as i8; // ggml clamps above only (finite input)
    }
    for (s, chunk) in sums.iter_mut().zip(q.chunks_exact(SUB_BLOCKS)) {
        *s = chunk.iter().map(|&c| i16::from(c)).sum();
    }
    *scale = 1.0 / iscale;
}

fn check_len(what: &'static str, expected: usize, actual: usize) -> Result<(), KernelError> {
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

/// A row-major Q6_K matrix (`rows` outputs × `cols` inputs), each row `⌈cols/256⌉` blocks of
/// ggml's bytes.
#[derive(Clone, PartialEq)]
pub struct Q6KMatrix {
    rows: usize,
    cols: usize,
    blocks_per_row: usize,
    data: Vec<u8>,
}

impl std::fmt::Debug for Q6KMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Q6KMatrix")
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish()
    }
}

impl Q6KMatrix {
    /// Super-blocks per row for `cols` inputs (the row zero-padded to a multiple of 256).
    pub fn blocks_per_row(cols: usize) -> usize {
        cols.div_ceil(Q6K_BLOCK)
    }

    /// Wraps Q6_K bytes: `rows` rows of [`Q6KMatrix::blocks_per_row`]`(cols)` blocks each.
    pub fn from_blocks(rows: usize, cols: usize, data: Vec<u8>) -> Result<Q6KMatrix, KernelError> {
        if rows == 0 || cols == 0 {
            return Err(KernelError::EmptyShape { rows, cols });
        }
        let blocks_per_row = Self::blocks_per_row(cols);
        check_len(
            "Q6_K bytes (rows × blocks × 210)",
            rows * blocks_per_row * Q6K_BLOCK_BYTES,
            data.len(),
        )?;
        Ok(Q6KMatrix {
            rows,
            cols,
            blocks_per_row,
            data,
        })
    }

    /// Output count.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input count (before padding).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The blocks of row `r` (ggml's bytes, [`Q6K_BLOCK_BYTES`] per 256 padded inputs).
    pub fn row_blocks(&self, r: usize) -> &[u8] {
        let len = self.blocks_per_row * Q6K_BLOCK_BYTES;
        &self.data[r * len..(r + 1) * len]
    }

    /// Bytes one product streams.
    pub fn stored_len(&self) -> usize {
        self.data.len()
    }

    /// `out[b·rows + r] = Σ_blocks f32(d_w) d_x · S_b` (module docs) with `x` (batch × cols,
    /// f32) quantized to Q8_K first.
    pub fn matmul(
        &self,
        x: &[f32],
        batch: usize,
        out: &mut [f32],
        pool: &ThreadPool,
    ) -> Result<(), KernelError> {
        self.matmul_with_isa(active_isa(), x, batch, out, pool)
    }

    /// [`Q6KMatrix::matmul`] on a chosen instruction set.
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
            Isa::Scalar => KernelId::Q6kScalarMatvec,
            Isa::Neon => KernelId::Q6kNeonMatvec,
            Isa::Avx2 => KernelId::Q6kAvx2Matvec,
            Isa::Avx512 => KernelId::Q6kAvx512Matvec,
        });
        ACTIVATIONS.with(|cell| {
            let mut scratch = cell.borrow_mut();
            let act = scratch.quantize(x, batch, self.cols, self.blocks_per_row);
            let out = atomic_f32_view(out);
            let rows = self.rows;
            pool.run_row_groups(rows, ROWS_PER_CALL, &|first, count| {
                let group: [&[u8]; ROWS_PER_CALL] =
                    std::array::from_fn(|i| self.row_blocks(first + i.min(count - 1)));
                let mut t = 0;
                while t < batch {
                    let tokens = (batch - t).min(TOKENS_PER_PASS);
                    let dots = rows_dot(isa, group, &act.tokens(t, tokens));
                    for (i, dots) in dots[..tokens].iter().enumerate() {
                        for (r, &dot) in dots[..count].iter().enumerate() {
                            out[(t + i) * rows + first + r].store(dot.to_bits(), Ordering::Relaxed);
                        }
                    }
                    t += tokens;
                }
            });
            Ok(())
        })
    }
}

/// Per-thread scratch for the quantized activations.
#[derive(Default)]
struct Scratch {
    qs: CacheAligned<i8>,
    scales: Vec<f32>,
    sums: Vec<i16>,
}

thread_local! {
    static ACTIVATIONS: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl Scratch {
    /// Quantizes `batch` rows of `cols` values, each zero-padded to `blocks` blocks.
    fn quantize(&mut self, x: &[f32], batch: usize, cols: usize, blocks: usize) -> Activations<'_> {
        let padded = blocks * Q6K_BLOCK;
        self.scales.clear();
        self.scales.resize(batch * blocks, 0.0);
        self.sums.clear();
        self.sums.resize(batch * blocks * SUB_BLOCKS, 0);
        let qs = self.qs.resize(batch * padded);
        let mut tail = [0f32; Q6K_BLOCK];
        for t in 0..batch {
            let row = &x[t * cols..(t + 1) * cols];
            for b in 0..blocks {
                let values = &row[b * Q6K_BLOCK..((b + 1) * Q6K_BLOCK).min(cols)];
                let values = if values.len() == Q6K_BLOCK {
                    values
                } else {
                    tail.fill(0.0);
                    tail[..values.len()].copy_from_slice(values);
                    &tail[..]
                };
                let at = t * blocks + b;
                quantize_q8_k_block(
                    values,
                    &mut qs[at * Q6K_BLOCK..(at + 1) * Q6K_BLOCK],
                    &mut self.scales[at],
                    &mut self.sums[at * SUB_BLOCKS..(at + 1) * SUB_BLOCKS],
                );
            }
        }
        Activations {
            qs: self.qs.as_slice(),
            scales: &self.scales,
            sums: &self.sums,
            blocks,
        }
    }
}

/// Quantized activation rows: `blocks` Q8_K blocks per token.
#[derive(Clone, Copy)]
struct Activations<'a> {
    qs: &'a [i8],
    scales: &'a [f32],
    sums: &'a [i16],
    blocks: usize,
}

impl<'a> Activations<'a> {
    /// Tokens `first..first + count`.
    fn tokens(&self, first: usize, count: usize) -> Activations<'a> {
        let (b, p) = (self.blocks, self.blocks * Q6K_BLOCK);
        Activations {
            qs: &self.qs[first * p..(first + count) * p],
            scales: &self.scales[first * b..(first + count) * b],
            sums: &self.sums[first * b * SUB_BLOCKS..(first + count) * b * SUB_BLOCKS],
            blocks: b,
        }
    }

    fn count(&self) -> usize {
        self.scales.len() / self.blocks
    }
}

/// `dots[t][r]`: row `r` of the group with token `t`, for every token of `act` (≤ 8).
fn rows_dot(
    isa: Isa,
    rows: [&[u8]; ROWS_PER_CALL],
    act: &Activations<'_>,
) -> [[f32; ROWS_PER_CALL]; TOKENS_PER_PASS] {
    assert!(act.count() <= TOKENS_PER_PASS);
    for row in rows {
        assert_eq!(row.len(), act.blocks * Q6K_BLOCK_BYTES);
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => x86::rows_dot_avx512(rows, act),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => x86::rows_dot_avx2(rows, act),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => neon::rows_dot(rows, act),
        _ => rows_dot_scalar(rows, act),
    }
}

/// The 6-bit code (0..=63) of element `e` of a block.
#[inline]
fn code(block: &[u8], e: usize) -> i32 {
    let (h, r) = (e / 128, e % 128);
    let lo = (block[64 * h + r % 64] >> (4 * (r / 64))) & 0x0f;
    let hi = (block[128 + 32 * h + r % 32] >> (2 * (r / 32))) & 3;
    i32::from(lo | (hi << 4))
}

/// The block's f16 super-scale as f32 (exact).
#[inline]
fn block_scale(block: &[u8]) -> f32 {
    f16::from_le_bytes([block[208], block[209]]).to_f32()
}

/// The scalar reference, in the order of the module docs.
fn rows_dot_scalar(
    rows: [&[u8]; ROWS_PER_CALL],
    act: &Activations<'_>,
) -> [[f32; ROWS_PER_CALL]; TOKENS_PER_PASS] {
    let mut dots = [[0f32; ROWS_PER_CALL]; TOKENS_PER_PASS];
    for t in 0..act.count() {
        for (r, row) in rows.iter().enumerate() {
            let mut acc = 0f32;
            for (b, block) in row.chunks_exact(Q6K_BLOCK_BYTES).enumerate() {
                let at = t * act.blocks + b;
                let a = &act.qs[at * Q6K_BLOCK..(at + 1) * Q6K_BLOCK];
                let mut s = 0i32;
                for j in 0..SUB_BLOCKS {
                    let dot: i32 = (16 * j..16 * j + 16)
                        .map(|e| (code(block, e) - 32) * i32::from(a[e]))
                        .sum();
                    s += i32::from(block[192 + j] as i8) * dot;
                }
                acc = (s as f32).mul_add(block_scale(block) * act.scales[at], acc);
            }
            dots[t][r] = acc;
        }
    }
    dots
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! AVX-512 (VNNI) and AVX2 row dots: codes unpacked per register, unsigned × signed byte
    //! products summed in i16 pairs, scaled per sub-block into i32 lanes, the `32 · bsum`
    //! offset subtracted once per block, four rows' sums reduced together into one four-lane
    //! float update.

    use std::arch::x86_64::*;

    use super::TOKENS_PER_PASS;
    use super::{Activations, Q6K_BLOCK, Q6K_BLOCK_BYTES, ROWS_PER_CALL, SUB_BLOCKS};

    /// How far ahead (in bytes of a row's blocks) the weights are prefetched.
    const PREFETCH_BYTES: usize = 8192;

    type Dots = [[f32; ROWS_PER_CALL]; TOKENS_PER_PASS];

    pub(super) fn rows_dot_avx512(rows: [&[u8]; ROWS_PER_CALL], act: &Activations<'_>) -> Dots {
        assert!(
            is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512vnni")
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
        );
        check(rows, act);
        // SAFETY: features checked; every row holds `act.blocks` blocks and the activations
        // `act.count()` tokens of `act.blocks` blocks (checked), the only bytes read.
        unsafe { rows_dot_avx512_impl(rows, act) }
    }

    pub(super) fn rows_dot_avx2(rows: [&[u8]; ROWS_PER_CALL], act: &Activations<'_>) -> Dots {
        assert!(
            is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
        );
        check(rows, act);
        // SAFETY: as for AVX-512.
        unsafe { rows_dot_avx2_impl(rows, act) }
    }

    fn check(rows: [&[u8]; ROWS_PER_CALL], act: &Activations<'_>) {
        let (blocks, tokens) = (act.blocks, act.count());
        assert!(tokens <= TOKENS_PER_PASS);
        assert!(rows.iter().all(|r| r.len() == blocks * Q6K_BLOCK_BYTES));
        assert!(act.qs.len() == tokens * blocks * Q6K_BLOCK);
        assert!(act.sums.len() == tokens * blocks * SUB_BLOCKS);
    }

    /// `[S_0, S_1, S_2, S_3]` from four rows' 8-lane i32 sums (integer: any order is exact).
    #[target_feature(enable = "avx2")]
    fn reduce4_256(v: [__m256i; 4]) -> __m128i {
        let half =
            |v: __m256i| _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let s01 = _mm_hadd_epi32(half(v[0]), half(v[1]));
        let s23 = _mm_hadd_epi32(half(v[2]), half(v[3]));
        _mm_hadd_epi32(s01, s23)
    }

    /// The four rows' super-scales `f32(d_w)` of block `b`.
    #[target_feature(enable = "avx,f16c")]
    fn row_scales(rows: [&[u8]; ROWS_PER_CALL], b: usize) -> __m128 {
        let d = |r: usize| {
            let at = b * Q6K_BLOCK_BYTES + 208;
            i16::from_le_bytes([rows[r][at], rows[r][at + 1]])
        };
        _mm_cvtph_ps(_mm_setr_epi16(d(0), d(1), d(2), d(3), 0, 0, 0, 0))
    }

    /// `acc[t] = fma(S as f32, d_w · d_x, acc[t])` for the four rows at once (the scalar step per
    /// lane: one rounded product, one fused multiply-add).
    #[target_feature(enable = "avx,fma")]
    fn update(acc: __m128, sums: __m128i, row_scales: __m128, x_scale: f32) -> __m128 {
        let scale = _mm_mul_ps(row_scales, _mm_set1_ps(x_scale));
        _mm_fmadd_ps(_mm_cvtepi32_ps(sums), scale, acc)
    }

    fn finish(acc: [__m128; TOKENS_PER_PASS], tokens: usize) -> Dots {
        let mut dots = [[0f32; ROWS_PER_CALL]; TOKENS_PER_PASS];
        for t in 0..tokens {
            // SAFETY: a 4-float store into a 4-float array.
            unsafe { _mm_storeu_ps(dots[t].as_mut_ptr(), acc[t]) };
        }
        dots
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn rows_dot_avx512_impl(rows: [&[u8]; ROWS_PER_CALL], act: &Activations<'_>) -> Dots {
        let (blocks, tokens) = (act.blocks, act.count());
        let low4 = _mm512_set1_epi8(0x0f);
        let bits45 = _mm512_set1_epi8(0x30);
        // Per 16-bit lane: the low 256 bits hold qh for elements r < 32 of a 64-code register,
        // the high 256 bits the same bytes for r ≥ 32 (two bits further up).
        let shift_up = _mm512_inserti64x4::<1>(_mm512_set1_epi16(4), _mm256_set1_epi16(2));
        let shift_down = _mm512_inserti64x4::<1>(_mm512_setzero_si512(), _mm256_set1_epi16(2));
        // Register k holds sub-blocks 4k..4k+4: i16 lane l takes scale 4k + l/8.
        let spread: [__m512i; 4] = std::array::from_fn(|k| {
            let idx: [i16; 32] = std::array::from_fn(|l| (4 * k + l / 8) as i16);
            // SAFETY: 64 bytes from a 32 × i16 array.
            unsafe { _mm512_loadu_si512(idx.as_ptr().cast()) }
        });
        let mut acc = [_mm_setzero_ps(); TOKENS_PER_PASS];
        let mut sums = [[_mm256_setzero_si256(); ROWS_PER_CALL]; TOKENS_PER_PASS];
        for b in 0..blocks {
            for (r, row) in rows.iter().enumerate() {
                // SAFETY: block b of the row is bytes 210b..210b+210 (in bounds, checked); the
                // prefetch address is only a hint (never dereferenced).
                let (codes, scales, scales16) = unsafe {
                    let p = row.as_ptr().add(b * Q6K_BLOCK_BYTES);
                    for line in 0..4 {
                        _mm_prefetch::<_MM_HINT_T0>(
                            p.wrapping_add(PREFETCH_BYTES + 64 * line).cast(),
                        );
                    }
                    let ql0 = _mm512_loadu_si512(p.cast());
                    let ql1 = _mm512_loadu_si512(p.add(64).cast());
                    let qh = _mm512_loadu_si512(p.add(128).cast());
                    let qh_a = _mm512_shuffle_i64x2::<0b01_00_01_00>(qh, qh); // qh[0..32] twice
                    let qh_b = _mm512_shuffle_i64x2::<0b11_10_11_10>(qh, qh); // qh[32..64] twice
                                                                              // (A & 0x0f) | B, with B already holding only bits 4–5.
                    let join =
                        |lo: __m512i, hi: __m512i| _mm512_ternarylogic_epi32::<0xEC>(lo, hi, low4);
                    let codes = [
                        join(
                            ql0,
                            _mm512_and_si512(_mm512_sllv_epi16(qh_a, shift_up), bits45),
                        ),
                        join(
                            _mm512_srli_epi16::<4>(ql0),
                            _mm512_and_si512(_mm512_srlv_epi16(qh_a, shift_down), bits45),
                        ),
                        join(
                            ql1,
                            _mm512_and_si512(_mm512_sllv_epi16(qh_b, shift_up), bits45),
                        ),
                        join(
                            _mm512_srli_epi16::<4>(ql1),
                            _mm512_and_si512(_mm512_srlv_epi16(qh_b, shift_down), bits45),
                        ),
                    ];
                    let scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(192).cast()));
                    let wide = _mm512_zextsi256_si512(scales16);
                    let scales = spread.map(|idx| _mm512_permutexvar_epi16(idx, wide));
                    (codes, scales, scales16)
                };
                for t in 0..tokens {
                    let at = t * blocks + b;
                    // SAFETY: token t's block b: 256 codes at 256·at and 16 sums at 16·at, in
                    // bounds (checked).
                    unsafe {
                        let a = act.qs.as_ptr().add(at * Q6K_BLOCK);
                        let mut s = _mm512_setzero_si512();
                        for k in 0..4 {
                            let x = _mm512_loadu_si512(a.add(64 * k).cast());
                            let pairs = _mm512_maddubs_epi16(codes[k], x);
                            s = _mm512_dpwssd_epi32(s, pairs, scales[k]);
                        }
                        let bsums =
                            _mm256_loadu_si256(act.sums.as_ptr().add(at * SUB_BLOCKS).cast());
                        let offset = _mm256_slli_epi32::<5>(_mm256_madd_epi16(scales16, bsums));
                        let s = _mm256_add_epi32(
                            _mm512_castsi512_si256(s),
                            _mm512_extracti64x4_epi64::<1>(s),
                        );
                        sums[t][r] = _mm256_sub_epi32(s, offset);
                    }
                }
            }
            let row_scales = row_scales(rows, b);
            for t in 0..tokens {
                let s = reduce4_256(sums[t]);
                acc[t] = update(acc[t], s, row_scales, act.scales[t * blocks + b]);
            }
        }
        finish(acc, tokens)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn rows_dot_avx2_impl(rows: [&[u8]; ROWS_PER_CALL], act: &Activations<'_>) -> Dots {
        let (blocks, tokens) = (act.blocks, act.count());
        let low4 = _mm256_set1_epi8(0x0f);
        let bits45 = _mm256_set1_epi8(0x30);
        // Register k holds sub-blocks 2k, 2k+1: byte l of the shuffle takes scale 2k + l/8.
        let spread: [__m128i; 8] = std::array::from_fn(|k| {
            let idx: [u8; 16] = std::array::from_fn(|l| (2 * k + l / 8) as u8);
            // SAFETY: 16 bytes from a 16-byte array.
            unsafe { _mm_loadu_si128(idx.as_ptr().cast()) }
        });
        let mut acc = [_mm_setzero_ps(); TOKENS_PER_PASS];
        let mut sums = [[_mm256_setzero_si256(); ROWS_PER_CALL]; TOKENS_PER_PASS];
        for b in 0..blocks {
            for (r, row) in rows.iter().enumerate() {
                // SAFETY: block b of the row is bytes 210b..210b+210 (in bounds, checked); the
                // prefetch address is only a hint.
                let (codes, scales, scales16) = unsafe {
                    let p = row.as_ptr().add(b * Q6K_BLOCK_BYTES);
                    for line in 0..4 {
                        _mm_prefetch::<_MM_HINT_T0>(
                            p.wrapping_add(PREFETCH_BYTES + 64 * line).cast(),
                        );
                    }
                    let ql: [__m256i; 4] =
                        std::array::from_fn(|i| _mm256_loadu_si256(p.add(32 * i).cast()));
                    let qh = [
                        _mm256_loadu_si256(p.add(128).cast()),
                        _mm256_loadu_si256(p.add(160).cast()),
                    ];
                    let lo = |v: __m256i| _mm256_and_si256(v, low4);
                    let hi = |v: __m256i| _mm256_and_si256(_mm256_srli_epi16::<4>(v), low4);
                    let bits = |v: __m256i| _mm256_and_si256(v, bits45);
                    let mut codes = [_mm256_setzero_si256(); 8];
                    for h in 0..2 {
                        let (a, c, q) = (ql[2 * h], ql[2 * h + 1], qh[h]);
                        codes[4 * h] = _mm256_or_si256(lo(a), bits(_mm256_slli_epi16::<4>(q)));
                        codes[4 * h + 1] = _mm256_or_si256(lo(c), bits(_mm256_slli_epi16::<2>(q)));
                        codes[4 * h + 2] = _mm256_or_si256(hi(a), bits(q));
                        codes[4 * h + 3] = _mm256_or_si256(hi(c), bits(_mm256_srli_epi16::<2>(q)));
                    }
                    let packed = _mm_loadu_si128(p.add(192).cast());
                    let scales =
                        spread.map(|idx| _mm256_cvtepi8_epi16(_mm_shuffle_epi8(packed, idx)));
                    (codes, scales, _mm256_cvtepi8_epi16(packed))
                };
                for t in 0..tokens {
                    let at = t * blocks + b;
                    // SAFETY: token t's block b: 256 codes and 16 sums, in bounds (checked).
                    unsafe {
                        let a = act.qs.as_ptr().add(at * Q6K_BLOCK);
                        let mut s = _mm256_setzero_si256();
                        for k in 0..8 {
                            let x = _mm256_loadu_si256(a.add(32 * k).cast());
                            let pairs = _mm256_maddubs_epi16(codes[k], x);
                            s = _mm256_add_epi32(s, _mm256_madd_epi16(pairs, scales[k]));
                        }
                        let bsums =
                            _mm256_loadu_si256(act.sums.as_ptr().add(at * SUB_BLOCKS).cast());
                        let offset = _mm256_slli_epi32::<5>(_mm256_madd_epi16(scales16, bsums));
                        sums[t][r] = _mm256_sub_epi32(s, offset);
                    }
                }
            }
            let row_scales = row_scales(rows, b);
            for t in 0..tokens {
                let s = reduce4_256(sums[t]);
                acc[t] = update(acc[t], s, row_scales, act.scales[t * blocks + b]);
            }
        }
        finish(acc, tokens)
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    //! aarch64 NEON row dots: one 16-code sub-block per register, its 4 quad dots (exact, by
    //! widening byte multiplies) scaled by the sub-block's scale into four i32 lanes, the
    //! `32 · bsum` offset subtracted, the lanes added; the float step as in the scalar code.

    use std::arch::aarch64::*;

    use super::{
        block_scale, Activations, Q6K_BLOCK, Q6K_BLOCK_BYTES, ROWS_PER_CALL, SUB_BLOCKS,
        TOKENS_PER_PASS,
    };
    use crate::ternary::neon::quad_dots;

    pub(super) fn rows_dot(
        rows: [&[u8]; ROWS_PER_CALL],
        act: &Activations<'_>,
    ) -> [[f32; ROWS_PER_CALL]; TOKENS_PER_PASS] {
        let (blocks, tokens) = (act.blocks, act.count());
        assert!(tokens <= TOKENS_PER_PASS);
        assert!(rows.iter().all(|r| r.len() == blocks * Q6K_BLOCK_BYTES));
        assert!(act.qs.len() == tokens * blocks * Q6K_BLOCK);
        let mut dots = [[0f32; ROWS_PER_CALL]; TOKENS_PER_PASS];
        for (r, row) in rows.iter().enumerate() {
            let mut acc = [0f32; TOKENS_PER_PASS];
            for (b, block) in row.chunks_exact(Q6K_BLOCK_BYTES).enumerate() {
                // The 16 sub-blocks' codes, sub-block j = elements 16j..16j+16.
                // SAFETY: NEON baseline operations on the block's 192 code bytes (in bounds).
                let codes: [int8x16_t; SUB_BLOCKS] = unsafe {
                    let mut codes = [vdupq_n_s8(0); SUB_BLOCKS];
                    let low4 = vdupq_n_u8(0x0f);
                    let three = vdupq_n_u8(3);
                    for h in 0..2 {
                        for half in 0..2 {
                            let l = 16 * half;
                            let ql_a = vld1q_u8(block.as_ptr().add(64 * h + l));
                            let ql_b = vld1q_u8(block.as_ptr().add(64 * h + 32 + l));
                            let qh = vld1q_u8(block.as_ptr().add(128 + 32 * h + l));
                            let high = |shift: i8| {
                                vshlq_n_u8::<4>(vandq_u8(vshlq_u8(qh, vdupq_n_s8(-shift)), three))
                            };
                            let sub = 8 * h + half;
                            codes[sub] =
                                vreinterpretq_s8_u8(vorrq_u8(vandq_u8(ql_a, low4), high(0)));
                            codes[sub + 2] =
                                vreinterpretq_s8_u8(vorrq_u8(vandq_u8(ql_b, low4), high(2)));
                            codes[sub + 4] =
                                vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8::<4>(ql_a), high(4)));
                            codes[sub + 6] =
                                vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8::<4>(ql_b), high(6)));
                        }
                    }
                    codes
                };
                let d = block_scale(block);
                for t in 0..tokens {
                    let at = t * blocks + b;
                    let a = &act.qs[at * Q6K_BLOCK..(at + 1) * Q6K_BLOCK];
                    let bsums = &act.sums[at * SUB_BLOCKS..(at + 1) * SUB_BLOCKS];
                    // SAFETY: NEON baseline operations; 16 codes per sub-block in bounds.
                    let s = unsafe {
                        let mut lanes = vdupq_n_s32(0);
                        let mut offset = 0i32;
                        for j in 0..SUB_BLOCKS {
                            let scale = i32::from(block[192 + j] as i8);
                            let x = vld1q_s8(a.as_ptr().add(16 * j));
                            lanes = vmlaq_n_s32(lanes, quad_dots(codes[j], x), scale);
                            offset += scale * i32::from(bsums[j]);
                        }
                        vaddvq_s32(lanes) - 32 * offset
                    };
                    acc[t] = (s as f32).mul_add(d * act.scales[at], acc[t]);
                }
            }
            for t in 0..tokens {
                dots[t][r] = acc[t];
            }
        }
        dots
    }
}
