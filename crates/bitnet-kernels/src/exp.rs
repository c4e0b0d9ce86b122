//! The engine's exponential and the element-wise steps built on it: the softmax of attention
//! scores (and of MoE router logits) and SiLU. One definition, evaluated lane by lane with the
//! same operations by the scalar reference and by the AVX2, AVX-512 and NEON kernels, so every
//! ISA gives the same bits (ggml likewise evaluates these with its own vector `expf`, not libm's).
//!
//! `exp(x)`, all in f32 with fused multiply-adds:
//! - NaN gives `x`; `x < -87.33654` (below `ln` of the smallest normal f32) gives `+0.0`;
//!   `x` is clamped to `≤ 89` (beyond `ln(f32::MAX)`, so larger values still overflow to `+inf`).
//! - `n = round_ties_even(x · log2(e))`, `r = fma(−n, LN2_HI, x)`, `r = fma(−n, LN2_LO, r)`
//!   (Cody–Waite: `n · LN2_HI` is exact, `LN2_HI + LN2_LO ≈ ln 2`), so `|r| ≤ ln(2)/2`.
//! - `p` = the degree-7 Taylor polynomial of `e^r` by Horner's rule (`p = fma(p, r, 1/k!)`);
//!   the truncation error is below 1e-8 relative, under half an f32 ulp.
//! - `exp(x) = (p · 2^h) · 2^(n − h)` with `h = ⌊n / 2⌋`: both powers are normal f32 for every
//!   `n` in `−126..=128`, so results near the subnormal range round once, in the last product,
//!   and `n = 128` overflows to `+inf` there.
//!
//! Measured against `f64::exp` over `−87.3..88.7` the result is within 2 ulp (see the tests).
//!
//! Softmax of `x` (`n` values): `m = max(x)` (NaN values ignored), `e_i = exp(x_i − m)`, the sum
//! `s = Σ e_i` in f64 in 16 lanes (lane `l` takes every `i ≡ l (mod 16)` in order, the tail
//! included), the lanes folded by the halving tree of [`crate::order`], then
//! `y_i = e_i · ((1 / s) as f32)`, optionally rounded to the nearest F16 value.
//!
//! SiLU: `silu(x) = x / (1 + exp(−x))`, each operation rounded once.

use crate::isa::{active_isa, Isa};
use crate::order::fold;

/// Below this `exp` is `+0.0` (the results would be subnormal).
const MIN_ARG: f32 = -87.336_54;
/// Arguments are clamped to this (`exp` of it overflows to `+inf`).
const MAX_ARG: f32 = 89.0;
const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// `ln 2` in two parts: 0.693359375 has 10 significant bits, so `n · LN2_HI` is exact for
/// `|n| ≤ 128`.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// `1/k!` for `k = 0..=7`.
const TAYLOR: [f32; 8] = [
    1.0,
    1.0,
    0.5,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
];
/// Lanes of the softmax's f64 sum.
const SUM_LANES: usize = 16;

/// `2^k` for `k` in `−126..=127`.
#[inline(always)]
fn pow2(k: i32) -> f32 {
    f32::from_bits(((k + 127) as u32) << 23)
}

/// `e^x` as the module docs define it (the scalar reference of every kernel here).
#[inline]
pub fn exp(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x < MIN_ARG {
        return 0.0;
    }
    let x = x.min(MAX_ARG);
    let n = (x * LOG2_E).round_ties_even();
    let r = (-n).mul_add(LN2_HI, x);
    let r = (-n).mul_add(LN2_LO, r);
    let mut p = TAYLOR[7];
    for &c in TAYLOR[..7].iter().rev() {
        p = p.mul_add(r, c);
    }
    let n = n as i32;
    let h = n >> 1;
    (p * pow2(h)) * pow2(n - h)
}

/// `x / (1 + exp(−x))`.
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// Softmax of `x` in place (see the module docs), each result rounded to the nearest F16 value
/// when `round_to_f16` (attention probabilities under llama.cpp's F16 rules).
pub fn softmax_in_place(x: &mut [f32], round_to_f16: bool) {
    softmax_in_place_with_isa(active_isa(), x, round_to_f16)
}

/// [`softmax_in_place`] on a chosen instruction set (scalar where it is not supported).
pub fn softmax_in_place_with_isa(isa: Isa, x: &mut [f32], round_to_f16: bool) {
    if x.is_empty() {
        return;
    }
    let inv = match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if isa.is_supported() => x86::exp_shifted_avx512(x),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512 if Isa::Avx2.is_supported() => x86::exp_shifted_avx2(x),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => neon::exp_shifted(x),
        _ => exp_shifted_scalar(x),
    };
    x.iter_mut().for_each(|v| *v *= inv);
    if round_to_f16 {
        crate::f16::round_to_f16_with_isa(isa, x);
    }
}

/// `x = silu(x)` element-wise.
pub fn silu_in_place(x: &mut [f32]) {
    silu_times_with_isa(active_isa(), x, None)
}

/// `gate = silu(gate) · up` element-wise (a gated FFN's hidden activations).
pub fn silu_times_in_place(gate: &mut [f32], up: &[f32]) {
    silu_times_with_isa(active_isa(), gate, Some(up))
}

/// `x = silu(x)`, times `up` element-wise when given, on a chosen instruction set.
///
/// # Panics
/// If `up` is not as long as `x`.
pub fn silu_times_with_isa(isa: Isa, x: &mut [f32], up: Option<&[f32]>) {
    if let Some(up) = up {
        assert_eq!(up.len(), x.len(), "silu: gate and up lengths");
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if isa.is_supported() => x86::silu_times_avx512(x, up),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512 if Isa::Avx2.is_supported() => x86::silu_times_avx2(x, up),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => neon::silu_times(x, up),
        _ => silu_times_scalar(x, up),
    }
}

/// The scalar reference of [`silu_times_with_isa`].
fn silu_times_scalar(x: &mut [f32], up: Option<&[f32]>) {
    match up {
        Some(up) => x.iter_mut().zip(up).for_each(|(g, &u)| *g = silu(*g) * u),
        None => x.iter_mut().for_each(|g| *g = silu(*g)),
    }
}

/// The largest non-NaN value of `x` (`-inf` when there is none).
fn max_scalar(x: &[f32]) -> f32 {
    x.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

/// `x_i = exp(x_i − max)`; returns `(1 / Σ) as f32` (the sum in the order of the module docs).
fn exp_shifted_scalar(x: &mut [f32]) -> f32 {
    let max = max_scalar(x);
    let mut lanes = [0f64; SUM_LANES];
    for (i, v) in x.iter_mut().enumerate() {
        *v = exp(*v - max);
        lanes[i % SUM_LANES] += f64::from(*v);
    }
    (1.0 / fold(lanes)) as f32
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! AVX-512 (16 lanes, masked tails) and AVX2 (8 lanes, scalar tails) forms of the module's
    //! definitions.

    use super::{exp, max_scalar, LN2_HI, LN2_LO, LOG2_E, MAX_ARG, MIN_ARG, SUM_LANES, TAYLOR};
    use crate::order::fold;
    use std::arch::x86_64::*;

    /// [`super::exp`] of 16 lanes.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn exp16(x: __m512) -> __m512 {
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x);
        let under = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_set1_ps(MIN_ARG));
        let xc = _mm512_min_ps(x, _mm512_set1_ps(MAX_ARG));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(xc, _mm512_set1_ps(LOG2_E)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), xc);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
        let mut p = _mm512_set1_ps(TAYLOR[7]);
        for &c in TAYLOR[..7].iter().rev() {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        let n = _mm512_cvtps_epi32(n);
        let h = _mm512_srai_epi32::<1>(n);
        let bias = _mm512_set1_epi32(127);
        let s1 = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(h, bias)));
        let s2 = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
            _mm512_sub_epi32(n, h),
            bias,
        )));
        let e = _mm512_mul_ps(_mm512_mul_ps(p, s1), s2);
        let e = _mm512_mask_mov_ps(e, under, _mm512_setzero_ps());
        _mm512_mask_mov_ps(e, nan, x)
    }

    /// [`super::exp`] of 8 lanes.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn exp8(x: __m256) -> __m256 {
        let nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x);
        let under = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(MIN_ARG));
        let xc = _mm256_min_ps(x, _mm256_set1_ps(MAX_ARG));
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(xc, _mm256_set1_ps(LOG2_E)),
        );
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), xc);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
        let mut p = _mm256_set1_ps(TAYLOR[7]);
        for &c in TAYLOR[..7].iter().rev() {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let n = _mm256_cvtps_epi32(n);
        let h = _mm256_srai_epi32::<1>(n);
        let bias = _mm256_set1_epi32(127);
        let s1 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(h, bias)));
        let s2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_sub_epi32(n, h),
            bias,
        )));
        let e = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
        let e = _mm256_andnot_ps(under, e);
        _mm256_blendv_ps(e, x, nan)
    }

    pub(super) fn exp_shifted_avx512(x: &mut [f32]) -> f32 {
        assert!(is_x86_feature_detected!("avx512f"));
        // SAFETY: AVX-512F checked; the kernel reads and writes within x.
        unsafe { exp_shifted_avx512_impl(x) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn exp_shifted_avx512_impl(x: &mut [f32]) -> f32 {
        let len = x.len();
        let ptr = x.as_mut_ptr();
        let mask_at = |i: usize| -> __mmask16 {
            let left = len - i;
            if left >= 16 {
                0xffff
            } else {
                (1u16 << left) - 1
            }
        };
        let mut max = _mm512_set1_ps(f32::NEG_INFINITY);
        let mut i = 0;
        while i < len {
            let m = mask_at(i);
            // SAFETY: the mask covers only elements i..len of x.
            let v = unsafe { _mm512_mask_loadu_ps(max, m, ptr.add(i)) };
            // With `v` first, a NaN element leaves the running maximum as it is (as f32::max).
            max = _mm512_max_ps(v, max);
            i += 16;
        }
        let max = _mm512_set1_ps(_mm512_reduce_max_ps(max));
        let (mut lo, mut hi) = (_mm512_setzero_pd(), _mm512_setzero_pd());
        let mut i = 0;
        while i < len {
            let m = mask_at(i);
            // SAFETY: the mask covers only elements i..len of x.
            unsafe {
                let v = _mm512_maskz_loadu_ps(m, ptr.add(i));
                let e = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(v, max)));
                _mm512_mask_storeu_ps(ptr.add(i), m, e);
                // Absent lanes add +0.0, which leaves a lane's sum as it is.
                lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
                hi = _mm512_add_pd(
                    hi,
                    _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                        _mm512_castps_pd(e),
                    ))),
                );
            }
            i += 16;
        }
        let mut lanes = [0f64; SUM_LANES];
        // SAFETY: `lanes` holds 16 f64.
        unsafe {
            _mm512_storeu_pd(lanes.as_mut_ptr(), lo);
            _mm512_storeu_pd(lanes.as_mut_ptr().add(8), hi);
        }
        (1.0 / fold(lanes)) as f32
    }

    pub(super) fn exp_shifted_avx2(x: &mut [f32]) -> f32 {
        assert!(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"));
        // SAFETY: AVX2/FMA checked; the kernel reads and writes within x.
        unsafe { exp_shifted_avx2_impl(x) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn exp_shifted_avx2_impl(x: &mut [f32]) -> f32 {
        let len = x.len();
        let body = len - len % SUM_LANES;
        let ptr = x.as_mut_ptr();
        let mut max = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut i = 0;
        while i < body {
            // SAFETY: i + 16 <= body <= len.
            unsafe {
                max = _mm256_max_ps(_mm256_loadu_ps(ptr.add(i)), max);
                max = _mm256_max_ps(_mm256_loadu_ps(ptr.add(i + 8)), max);
            }
            i += SUM_LANES;
        }
        let mut lanes8 = [0f32; 8];
        // SAFETY: `lanes8` holds 8 f32.
        unsafe { _mm256_storeu_ps(lanes8.as_mut_ptr(), max) };
        let max = max_scalar(&lanes8).max(max_scalar(&x[body..]));
        let maxv = _mm256_set1_ps(max);
        let mut acc = [_mm256_setzero_pd(); 4];
        let mut i = 0;
        while i < body {
            // SAFETY: i + 16 <= body <= len.
            unsafe {
                for half in 0..2 {
                    let at = ptr.add(i + 8 * half);
                    let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(at), maxv));
                    _mm256_storeu_ps(at, e);
                    acc[2 * half] =
                        _mm256_add_pd(acc[2 * half], _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
                    acc[2 * half + 1] = _mm256_add_pd(
                        acc[2 * half + 1],
                        _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(e)),
                    );
                }
            }
            i += SUM_LANES;
        }
        let mut lanes = [0f64; SUM_LANES];
        for (k, a) in acc.iter().enumerate() {
            // SAFETY: `lanes` holds 16 f64; k·4 + 4 <= 16.
            unsafe { _mm256_storeu_pd(lanes.as_mut_ptr().add(4 * k), *a) };
        }
        for (l, v) in x[body..].iter_mut().enumerate() {
            *v = exp(*v - max);
            lanes[l] += f64::from(*v);
        }
        (1.0 / fold(lanes)) as f32
    }

    pub(super) fn silu_times_avx512(x: &mut [f32], up: Option<&[f32]>) {
        assert!(is_x86_feature_detected!("avx512f"));
        // SAFETY: AVX-512F checked; the kernel reads and writes within x and up (as long).
        unsafe { silu_times_avx512_impl(x, up) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn silu_times_avx512_impl(x: &mut [f32], up: Option<&[f32]>) {
        let len = x.len();
        let ptr = x.as_mut_ptr();
        let one = _mm512_set1_ps(1.0);
        let mut i = 0;
        while i < len {
            let left = len - i;
            let m: __mmask16 = if left >= 16 { 0xffff } else { (1 << left) - 1 };
            // SAFETY: the mask covers only elements i..len of x and of up (as long as x).
            unsafe {
                let v = _mm512_maskz_loadu_ps(m, ptr.add(i));
                // −x by its sign bit, as the scalar `-x` (also for zeros and NaN).
                let neg = _mm512_castsi512_ps(_mm512_xor_si512(
                    _mm512_castps_si512(v),
                    _mm512_set1_epi32(i32::MIN),
                ));
                let mut y = _mm512_div_ps(v, _mm512_add_ps(one, exp16(neg)));
                if let Some(up) = up {
                    y = _mm512_mul_ps(y, _mm512_maskz_loadu_ps(m, up.as_ptr().add(i)));
                }
                _mm512_mask_storeu_ps(ptr.add(i), m, y);
            }
            i += 16;
        }
    }

    pub(super) fn silu_times_avx2(x: &mut [f32], up: Option<&[f32]>) {
        assert!(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"));
        // SAFETY: AVX2/FMA checked; the kernel reads and writes within x and up (as long).
        unsafe { silu_times_avx2_impl(x, up) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn silu_times_avx2_impl(x: &mut [f32], up: Option<&[f32]>) {
        let body = x.len() - x.len() % 8;
        let ptr = x.as_mut_ptr();
        let one = _mm256_set1_ps(1.0);
        let mut i = 0;
        while i < body {
            // SAFETY: i + 8 <= body <= x.len() = up.len().
            unsafe {
                let v = _mm256_loadu_ps(ptr.add(i));
                let neg = _mm256_xor_ps(v, _mm256_set1_ps(-0.0)); // −x by its sign bit
                let mut y = _mm256_div_ps(v, _mm256_add_ps(one, exp8(neg)));
                if let Some(up) = up {
                    y = _mm256_mul_ps(y, _mm256_loadu_ps(up.as_ptr().add(i)));
                }
                _mm256_storeu_ps(ptr.add(i), y);
            }
            i += 8;
        }
        super::silu_times_scalar(&mut x[body..], up.map(|u| &u[body..]));
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    //! NEON (4 lanes, scalar tails) forms of the module's definitions; the f64 sum keeps its 16
    //! lanes in eight 2-lane registers.

    use super::{exp, LN2_HI, LN2_LO, LOG2_E, MAX_ARG, MIN_ARG, SUM_LANES, TAYLOR};
    use crate::order::fold;
    use std::arch::aarch64::*;

    /// [`super::exp`] of 4 lanes.
    #[inline(always)]
    fn exp4(x: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is part of the aarch64 baseline; register-only operations.
        unsafe {
            let nan = vmvnq_u32(vceqq_f32(x, x));
            let under = vcltq_f32(x, vdupq_n_f32(MIN_ARG));
            let xc = vminq_f32(x, vdupq_n_f32(MAX_ARG));
            let n = vrndnq_f32(vmulq_f32(xc, vdupq_n_f32(LOG2_E)));
            let r = vfmsq_f32(xc, n, vdupq_n_f32(LN2_HI));
            let r = vfmsq_f32(r, n, vdupq_n_f32(LN2_LO));
            let mut p = vdupq_n_f32(TAYLOR[7]);
            for &c in TAYLOR[..7].iter().rev() {
                p = vfmaq_f32(vdupq_n_f32(c), p, r);
            }
            let n = vcvtq_s32_f32(n);
            let h = vshrq_n_s32::<1>(n);
            let bias = vdupq_n_s32(127);
            let s1 = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(h, bias)));
            let s2 = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(vsubq_s32(n, h), bias)));
            let e = vmulq_f32(vmulq_f32(p, s1), s2);
            let e = vbslq_f32(under, vdupq_n_f32(0.0), e);
            vbslq_f32(nan, x, e)
        }
    }

    pub(super) fn exp_shifted(x: &mut [f32]) -> f32 {
        let len = x.len();
        let body = len - len % SUM_LANES;
        let ptr = x.as_mut_ptr();
        // SAFETY: NEON is part of the aarch64 baseline; register-only.
        let mut max = unsafe { vdupq_n_f32(f32::NEG_INFINITY) };
        let mut i = 0;
        while i < body {
            for k in 0..4 {
                // maxNum: a NaN element leaves the running maximum as it is (as f32::max).
                // SAFETY: NEON is baseline; i + 4k + 4 <= body <= x.len().
                max = unsafe { vmaxnmq_f32(max, vld1q_f32(ptr.add(i + 4 * k))) };
            }
            i += SUM_LANES;
        }
        // SAFETY: NEON is part of the aarch64 baseline; register-only.
        let max = unsafe { vmaxnmvq_f32(max) }.max(super::max_scalar(&x[body..]));
        // SAFETY: as above.
        let (maxv, zero) = unsafe { (vdupq_n_f32(max), vdupq_n_f64(0.0)) };
        let mut acc = [zero; 8];
        let mut i = 0;
        while i < body {
            for k in 0..4 {
                // SAFETY: NEON is baseline; i + 4k + 4 <= body <= x.len().
                unsafe {
                    let at = ptr.add(i + 4 * k);
                    let e = exp4(vsubq_f32(vld1q_f32(at), maxv));
                    vst1q_f32(at, e);
                    acc[2 * k] = vaddq_f64(acc[2 * k], vcvt_f64_f32(vget_low_f32(e)));
                    acc[2 * k + 1] = vaddq_f64(acc[2 * k + 1], vcvt_high_f64_f32(e));
                }
            }
            i += SUM_LANES;
        }
        let mut lanes = [0f64; SUM_LANES];
        for (k, a) in acc.iter().enumerate() {
            // SAFETY: `lanes` holds 16 f64; 2k + 2 <= 16.
            unsafe { vst1q_f64(lanes.as_mut_ptr().add(2 * k), *a) };
        }
        for (l, v) in x[body..].iter_mut().enumerate() {
            *v = exp(*v - max);
            lanes[l] += f64::from(*v);
        }
        (1.0 / fold(lanes)) as f32
    }

    pub(super) fn silu_times(x: &mut [f32], up: Option<&[f32]>) {
        let body = x.len() - x.len() % 4;
        let ptr = x.as_mut_ptr();
        let mut i = 0;
        while i < body {
            // SAFETY: NEON is baseline; i + 4 <= body <= x.len() = up.len().
            unsafe {
                let v = vld1q_f32(ptr.add(i));
                let mut y = vdivq_f32(v, vaddq_f32(vdupq_n_f32(1.0), exp4(vnegq_f32(v))));
                if let Some(up) = up {
                    y = vmulq_f32(y, vld1q_f32(up.as_ptr().add(i)));
                }
                vst1q_f32(ptr.add(i), y);
            }
            i += 4;
        }
        super::silu_times_scalar(&mut x[body..], up.map(|u| &u[body..]));
    }
}
