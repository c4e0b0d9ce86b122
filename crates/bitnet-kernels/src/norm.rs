//! RMSNorm exactly as ggml / bitnet.cpp evaluate it (oracle README §5, bit-exact there):
//! `s = Σ (x_i · x_i as f32) in f64; scale = 1 / sqrtf((s / n) as f32 + eps); y_i = (x_i · scale) · w_i`
//! (the weight multiply is a separate f32 rounding, as ggml's `rms_norm` then `mul`).
//!
//! Summation order (the same on every ISA, see [`crate::order`]): the f32 squares, widened to f64,
//! are added into 8 f64 lanes (lane `l` takes `i ≡ l (mod 8)`), the lanes fold by the halving
//! tree and the last `n mod 8` squares are added in order. This f64 sum can differ from ggml's
//! sequential one in its last bits only, which the rounding to f32 absorbs in all but vanishingly
//! rare cases.

use crate::error::KernelError;
use crate::isa::{active_isa, Isa};
use crate::order::fold;

/// RMS-normalises `x` into `out`, multiplying by `weight` when given (all the same length).
pub fn rms_norm(
    x: &[f32],
    weight: Option<&[f32]>,
    eps: f32,
    out: &mut [f32],
) -> Result<(), KernelError> {
    rms_norm_with_isa(active_isa(), x, weight, eps, out)
}

/// [`rms_norm`] on a chosen instruction set.
pub fn rms_norm_with_isa(
    isa: Isa,
    x: &[f32],
    weight: Option<&[f32]>,
    eps: f32,
    out: &mut [f32],
) -> Result<(), KernelError> {
    if !isa.is_supported() {
        return Err(KernelError::IsaUnsupported { isa });
    }
    let lengths = [
        ("rms_norm output", out.len()),
        ("rms_norm weight", weight.map_or(x.len(), <[f32]>::len)),
    ];
    for (what, actual) in lengths {
        if actual != x.len() {
            return Err(KernelError::LengthMismatch {
                what,
                expected: x.len(),
                actual,
            });
        }
    }
    if x.is_empty() {
        return Ok(());
    }
    let sum = match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 | Isa::Avx2 => x86::sum_of_squares_f64(x),
        _ => sum_of_squares_scalar(x),
    };
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0f32 / (mean + eps).sqrt();
    match weight {
        Some(w) => {
            for ((o, &v), &w) in out.iter_mut().zip(x).zip(w) {
                *o = (v * scale) * w;
            }
        }
        None => {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = v * scale;
            }
        }
    }
    Ok(())
}

/// The scalar reference, in the order of the module docs.
fn sum_of_squares_scalar(x: &[f32]) -> f64 {
    let body = x.len() - x.len() % 8;
    let mut lanes = [0f64; 8];
    for chunk in x[..body].chunks_exact(8) {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += f64::from(v * v);
        }
    }
    add_tail(fold(lanes), &x[body..])
}

/// `sum` plus the squares of `tail`, in order.
#[inline(always)]
fn add_tail(sum: f64, tail: &[f32]) -> f64 {
    tail.iter().fold(sum, |acc, &v| acc + f64::from(v * v))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! AVX f64 accumulation of f32 squares (8 squares per step, two 4-lane f64 accumulators).

    use super::add_tail;
    use crate::order::x86::fold_256d_x2;
    use std::arch::x86_64::*;

    pub(super) fn sum_of_squares_f64(x: &[f32]) -> f64 {
        assert!(is_x86_feature_detected!("avx2"));
        // SAFETY: AVX2 checked; the kernel reads within x.
        unsafe { sum_of_squares_impl(x) }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn sum_of_squares_impl(x: &[f32]) -> f64 {
        let body = x.len() - x.len() % 8;
        let mut lo = _mm256_setzero_pd();
        let mut hi = _mm256_setzero_pd();
        let mut i = 0;
        while i < body {
            // SAFETY: i + 8 <= body <= x.len().
            let v = unsafe { _mm256_loadu_ps(x.as_ptr().add(i)) };
            let squares = _mm256_mul_ps(v, v);
            lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(squares)));
            hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(squares)));
            i += 8;
        }
        add_tail(fold_256d_x2(lo, hi), &x[body..])
    }
}
