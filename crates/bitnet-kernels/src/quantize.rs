//! Per-token int8 activation quantization, exactly as bitnet.cpp's I2_S path and HF W1.58A8 do it
//! (FORMATS.md §2, oracle README §5):
//!
//! `m = max(max_j |x_j| (in f64), 1e-5); a = (127 / m) as f32;
//!  q_j = clamp(round_half_to_even((x_j · a) as f32), -128, 127)`.
//!
//! The SIMD paths compute the same f32 products and round with the CPU's default
//! round-to-nearest-even mode, so every path gives identical codes for finite inputs.
//! Non-finite inputs give unspecified (but memory-safe) codes.

use crate::error::KernelError;
use crate::isa::{active_isa, record, Isa, KernelId};

/// Quantizes one token's activations into `q` (same length) and returns the scale `a`
/// (so `x ≈ q / a`).
pub fn quantize_activations(x: &[f32], q: &mut [i8]) -> Result<f32, KernelError> {
    quantize_activations_with_isa(active_isa(), x, q)
}

/// [`quantize_activations`] on a chosen instruction set (for tests and benchmarks).
pub fn quantize_activations_with_isa(
    isa: Isa,
    x: &[f32],
    q: &mut [i8],
) -> Result<f32, KernelError> {
    if q.len() != x.len() {
        return Err(KernelError::LengthMismatch {
            what: "quantized activations",
            expected: x.len(),
            actual: q.len(),
        });
    }
    if !isa.is_supported() {
        return Err(KernelError::IsaUnsupported { isa });
    }
    Ok(quantize_row(isa, x, q))
}

/// Quantizes `x` (tokens × `cols`, row-major) token by token into `q` (same shape) and writes one
/// scale per token into `scales`.
pub fn quantize_activations_batch(
    x: &[f32],
    cols: usize,
    q: &mut [i8],
    scales: &mut [f32],
) -> Result<(), KernelError> {
    if cols == 0 || !x.len().is_multiple_of(cols) {
        return Err(KernelError::LengthMismatch {
            what: "activations (a multiple of cols)",
            expected: cols * (x.len() / cols.max(1)).max(1),
            actual: x.len(),
        });
    }
    let tokens = x.len() / cols;
    if q.len() != x.len() {
        return Err(KernelError::LengthMismatch {
            what: "quantized activations",
            expected: x.len(),
            actual: q.len(),
        });
    }
    if scales.len() != tokens {
        return Err(KernelError::LengthMismatch {
            what: "activation scales",
            expected: tokens,
            actual: scales.len(),
        });
    }
    let isa = active_isa();
    for ((x_row, q_row), scale) in x
        .chunks_exact(cols)
        .zip(q.chunks_exact_mut(cols))
        .zip(scales.iter_mut())
    {
        *scale = quantize_row(isa, x_row, q_row);
    }
    Ok(())
}

/// `a = (127 / max(m, 1e-5)) as f32`, the division in f64.
fn scale_from_max_abs(max_abs: f32) -> f32 {
    (127.0f64 / f64::from(max_abs).max(1e-5)) as f32
}

pub(crate) fn quantize_row(isa: Isa, x: &[f32], q: &mut [i8]) -> f32 {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            record(KernelId::QuantizeAvx512);
            x86::quantize_avx512(x, q)
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            record(KernelId::QuantizeAvx2);
            x86::quantize_avx2(x, q)
        }
        _ => {
            record(KernelId::QuantizeScalar);
            quantize_scalar(x, q)
        }
    }
}

/// The scalar reference.
fn quantize_scalar(x: &[f32], q: &mut [i8]) -> f32 {
    let max_abs = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let a = scale_from_max_abs(max_abs);
    quantize_scalar_with_scale(x, q, a);
    a
}

fn quantize_scalar_with_scale(x: &[f32], q: &mut [i8], a: f32) {
    for (q, &v) in q.iter_mut().zip(x) {
        *q = (v * a).round_ties_even().clamp(-128.0, 127.0) as i8;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! AVX2 / AVX-512 quantizers (same arithmetic as the scalar reference).

    use super::{quantize_scalar_with_scale, scale_from_max_abs};
    use std::arch::x86_64::*;

    pub(super) fn quantize_avx512(x: &[f32], q: &mut [i8]) -> f32 {
        assert!(q.len() == x.len() && is_x86_feature_detected!("avx512f"));
        // SAFETY: AVX-512F was just checked; the kernel reads/writes within x.len() == q.len().
        unsafe { quantize_avx512_impl(x, q) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn quantize_avx512_impl(x: &[f32], q: &mut [i8]) -> f32 {
        let n = x.len();
        let body = n - n % 16;
        let abs_mask = _mm512_set1_epi32(0x7fff_ffff);
        let mut vmax = _mm512_setzero_ps();
        let mut i = 0;
        while i < body {
            // SAFETY: i + 16 <= body <= n.
            let v = unsafe { _mm512_loadu_ps(x.as_ptr().add(i)) };
            let abs = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), abs_mask));
            vmax = _mm512_max_ps(vmax, abs);
            i += 16;
        }
        let mut max_abs = _mm512_reduce_max_ps(vmax);
        for v in &x[body..] {
            max_abs = max_abs.max(v.abs());
        }
        let a = scale_from_max_abs(max_abs);
        let va = _mm512_set1_ps(a);
        let mut i = 0;
        while i < body {
            // SAFETY: i + 16 <= body <= n for both the load and the 16-byte store.
            unsafe {
                let v = _mm512_mul_ps(_mm512_loadu_ps(x.as_ptr().add(i)), va);
                let rounded = _mm512_cvtps_epi32(v); // MXCSR default: nearest, ties to even
                let bytes = _mm512_cvtsepi32_epi8(rounded); // saturating: the clamp
                _mm_storeu_si128(q.as_mut_ptr().add(i).cast(), bytes);
            }
            i += 16;
        }
        quantize_scalar_with_scale(&x[body..], &mut q[body..], a);
        a
    }

    pub(super) fn quantize_avx2(x: &[f32], q: &mut [i8]) -> f32 {
        assert!(q.len() == x.len() && is_x86_feature_detected!("avx2"));
        // SAFETY: AVX2 was just checked; the kernel reads/writes within x.len() == q.len().
        unsafe { quantize_avx2_impl(x, q) }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn quantize_avx2_impl(x: &[f32], q: &mut [i8]) -> f32 {
        let n = x.len();
        let body = n - n % 32;
        let abs_mask = _mm256_set1_epi32(0x7fff_ffff);
        let mut vmax = _mm256_setzero_ps();
        let mut i = 0;
        while i < n - n % 8 {
            // SAFETY: i + 8 <= n.
            let v = unsafe { _mm256_loadu_ps(x.as_ptr().add(i)) };
            let abs = _mm256_castsi256_ps(_mm256_and_si256(_mm256_castps_si256(v), abs_mask));
            vmax = _mm256_max_ps(vmax, abs);
            i += 8;
        }
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` holds 8 f32.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), vmax) };
        let mut max_abs = lanes.iter().fold(0.0f32, |m, &v| m.max(v));
        for v in &x[n - n % 8..] {
            max_abs = max_abs.max(v.abs());
        }
        let a = scale_from_max_abs(max_abs);
        let va = _mm256_set1_ps(a);
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        let mut i = 0;
        while i < body {
            // SAFETY: i + 32 <= body <= n for the four loads and the 32-byte store.
            unsafe {
                let p = x.as_ptr().add(i);
                let r0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(p), va));
                let r1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(p.add(8)), va));
                let r2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(p.add(16)), va));
                let r3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(p.add(24)), va));
                // Saturating packs are the clamp; the permute undoes their lane interleave.
                let w01 = _mm256_packs_epi32(r0, r1);
                let w23 = _mm256_packs_epi32(r2, r3);
                let bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(w01, w23), order);
                _mm256_storeu_si256(q.as_mut_ptr().add(i).cast(), bytes);
            }
            i += 32;
        }
        quantize_scalar_with_scale(&x[body..], &mut q[body..], a);
        a
    }
}
