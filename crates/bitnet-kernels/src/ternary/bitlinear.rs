//! The whole BitLinear of bitnet.cpp's I2_S path in one call: per-token int8 quantization of the
//! input, the exact ternary product, and the rescale `y = ((float)D / a) · s_W` in exactly that
//! order (bit-exact with bitnet.cpp; see tests/bitlinear_trace.rs).

use crate::error::KernelError;
use crate::isa::Isa;
use crate::memory::CacheAligned;
use crate::pool::{atomic_f32_view, store_f32_run, ThreadPool};
use crate::quantize::quantize_row;

use std::sync::atomic::Ordering;

use super::{Scales, TernaryMatrix, MAX_MATRICES_PER_RUN, ROW_TILE};

/// Reusable buffers for [`TernaryMatrix::bitlinear`], so decode allocates nothing per token.
#[derive(Debug, Default, Clone)]
pub struct BitLinearScratch {
    /// Cache-line aligned: the kernels load them 64 bytes at a time.
    codes: CacheAligned<i8>,
    activation_scales: Vec<f32>,
    scaled: Vec<f32>,
}

impl BitLinearScratch {
    /// Empty buffers; they grow to the largest call and stay.
    pub fn new() -> BitLinearScratch {
        BitLinearScratch::default()
    }
}

impl TernaryMatrix {
    /// `out[b·rows + r] = ((D[b][r] as f32) / a_b) · s_W` for `x` (batch × cols, f32), `a_b` the
    /// activation scale of token `b` ([`crate::quantize_activations`]). With per-block scales,
    /// `out = (Σ_blocks D_block · s_block) / a_b`.
    pub fn bitlinear(
        &self,
        x: &[f32],
        batch: usize,
        out: &mut [f32],
        scratch: &mut BitLinearScratch,
        pool: &ThreadPool,
    ) -> Result<(), KernelError> {
        self.bitlinear_with_isa(crate::active_isa(), x, batch, out, scratch, pool)
    }

    /// [`TernaryMatrix::bitlinear`] on a chosen instruction set.
    pub fn bitlinear_with_isa(
        &self,
        isa: Isa,
        x: &[f32],
        batch: usize,
        out: &mut [f32],
        scratch: &mut BitLinearScratch,
        pool: &ThreadPool,
    ) -> Result<(), KernelError> {
        let cols = self.cols();
        if x.len() != batch * cols {
            return Err(KernelError::LengthMismatch {
                what: "activations (batch × cols)",
                expected: batch * cols,
                actual: x.len(),
            });
        }
        if let Scales::PerTensor(_) = self.scales() {
            return TernaryMatrix::bitlinear_several_with_isa(
                isa,
                &[self],
                x,
                batch,
                &mut [out],
                scratch,
                pool,
            );
        }
        let BitLinearScratch {
            codes,
            activation_scales,
            scaled,
        } = scratch;
        let codes = quantize_tokens(isa, x, cols, codes, activation_scales, pool)?;
        let rows = self.rows();
        scaled.resize(out.len(), 0.0);
        self.matmul_scaled_with_isa(isa, codes, batch, scaled, pool)?;
        for ((out, scaled), &a) in out
            .chunks_exact_mut(rows)
            .zip(scaled.chunks_exact(rows))
            .zip(activation_scales.iter())
        {
            for (o, &s) in out.iter_mut().zip(scaled) {
                *o = s / a;
            }
        }
        Ok(())
    }

    /// The BitLinears of up to [`MAX_MATRICES_PER_RUN`] matrices with per-tensor scales over the
    /// same input (a layer's q, k and v; gate and up): `x` quantized once, then every matrix's
    /// products in one pool run; `outs[m]` gets exactly what [`TernaryMatrix::bitlinear`] of
    /// `matrices[m]` gives.
    pub fn bitlinear_several(
        matrices: &[&TernaryMatrix],
        x: &[f32],
        batch: usize,
        outs: &mut [&mut [f32]],
        scratch: &mut BitLinearScratch,
        pool: &ThreadPool,
    ) -> Result<(), KernelError> {
        Self::bitlinear_several_with_isa(
            crate::active_isa(),
            matrices,
            x,
            batch,
            outs,
            scratch,
            pool,
        )
    }

    /// [`TernaryMatrix::bitlinear_several`] on a chosen instruction set.
    pub fn bitlinear_several_with_isa(
        isa: Isa,
        matrices: &[&TernaryMatrix],
        x: &[f32],
        batch: usize,
        outs: &mut [&mut [f32]],
        scratch: &mut BitLinearScratch,
        pool: &ThreadPool,
    ) -> Result<(), KernelError> {
        let count = |what, expected, actual| KernelError::LengthMismatch {
            what,
            expected,
            actual,
        };
        if matrices.is_empty() || matrices.len() > MAX_MATRICES_PER_RUN {
            return Err(count(
                "matrices in one run",
                MAX_MATRICES_PER_RUN,
                matrices.len(),
            ));
        }
        if outs.len() != matrices.len() {
            return Err(count(
                "outputs (one per matrix)",
                matrices.len(),
                outs.len(),
            ));
        }
        let cols = matrices[0].cols();
        if x.len() != batch * cols {
            return Err(count("activations (batch × cols)", batch * cols, x.len()));
        }
        let mut weight_scales = [0f32; MAX_MATRICES_PER_RUN];
        for ((m, out), scale) in matrices.iter().zip(outs.iter()).zip(&mut weight_scales) {
            if m.cols() != cols {
                return Err(KernelError::ActivationsNotShared);
            }
            let Scales::PerTensor(s) = m.scales() else {
                return Err(KernelError::NeedsPerTensorScales);
            };
            *scale = *s;
            // Checked again with the codes below; the output length first, before quantizing.
            if out.len() != batch * m.rows() {
                return Err(count("output (batch × rows)", batch * m.rows(), out.len()));
            }
        }
        let BitLinearScratch {
            codes,
            activation_scales,
            ..
        } = scratch;
        let codes = quantize_tokens(isa, x, cols, codes, activation_scales, pool)?;
        for (m, out) in matrices.iter().zip(outs.iter()) {
            m.check_operands(isa, codes, batch, out.len())?;
        }
        let activation_scales = &activation_scales[..];
        let mut views: [&[std::sync::atomic::AtomicU32]; MAX_MATRICES_PER_RUN] =
            [&[]; MAX_MATRICES_PER_RUN];
        for (view, out) in views.iter_mut().zip(outs.iter_mut()) {
            *view = atomic_f32_view(out);
        }
        // Rescaled by whichever pool thread computed each product, as it is stored.
        TernaryMatrix::integer_products_several(
            matrices,
            isa,
            codes,
            batch,
            pool,
            |m, b, index, d, valid| {
                let y = rescale_tile(d, activation_scales[b], weight_scales[m]);
                if valid == ROW_TILE {
                    // SAFETY: each output element belongs to one tile, computed by one chunk;
                    // `run`'s return orders these stores before the caller's reads.
                    unsafe { store_f32_run(views[m], index, &y) };
                } else {
                    for (slot, y) in views[m][index..index + valid].iter().zip(y) {
                        slot.store(y.to_bits(), Ordering::Relaxed)
                    }
                }
            },
        );
        Ok(())
    }
}

/// Quantizes each token's row of `x` (`cols` wide) into `codes` with its scale in
/// `activation_scales` (both resized to the batch); returns the codes. Several tokens are
/// quantized on the pool's threads, a token each at a time.
fn quantize_tokens<'a>(
    isa: Isa,
    x: &[f32],
    cols: usize,
    codes: &'a mut CacheAligned<i8>,
    activation_scales: &mut Vec<f32>,
    pool: &ThreadPool,
) -> Result<&'a [i8], KernelError> {
    if !isa.is_supported() {
        return Err(KernelError::IsaUnsupported { isa });
    }
    let batch = x.len() / cols;
    let codes = codes.resize(x.len());
    activation_scales.resize(batch, 0.0);
    let scales = atomic_f32_view(activation_scales);
    pool.run_chunks_mut(codes, cols, &|b, q| {
        let a = quantize_row(isa, &x[b * cols..(b + 1) * cols], q);
        scales[b].store(a.to_bits(), Ordering::Relaxed);
    });
    Ok(codes)
}

/// `((D as f32) / a) · s_W` for the 4 rows of a tile. On x86-64 one SSE2 conversion, division and
/// multiplication for the 4 (SSE2 is part of the x86-64 baseline; the compiler kept 4 scalar
/// divisions): the same IEEE operation per lane as [`rescale_tile_scalar`], so the same bits.
#[inline]
fn rescale_tile(d: [i32; ROW_TILE], a: f32, weight_scale: f32) -> [f32; ROW_TILE] {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        let mut out = [0f32; ROW_TILE];
        // SAFETY: SSE2 is enabled on every x86-64 target; the store writes the 4 floats of `out`.
        unsafe {
            let d = _mm_set_epi32(d[3], d[2], d[1], d[0]);
            let y = _mm_mul_ps(
                _mm_div_ps(_mm_cvtepi32_ps(d), _mm_set1_ps(a)),
                _mm_set1_ps(weight_scale),
            );
            _mm_storeu_ps(out.as_mut_ptr(), y);
        }
        out
    }
    #[cfg(not(target_arch = "x86_64"))]
    rescale_tile_scalar(d, a, weight_scale)
}

/// The scalar form of [`rescale_tile`], bitnet.cpp's expression.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn rescale_tile_scalar(d: [i32; ROW_TILE], a: f32, weight_scale: f32) -> [f32; ROW_TILE] {
    d.map(|d| (d as f32 / a) * weight_scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scale() -> impl Strategy<Value = f32> {
        prop_oneof![
            Just(0.0f32),
            Just(-0.0),
            Just(f32::INFINITY),
            Just(f32::NAN),
            Just(f32::MIN_POSITIVE / 4.0),
            (-1e6f32..1e6),
            any::<f32>(),
        ]
    }

    proptest! {
        /// The vector rescale gives the scalar expression's bits (integers past 2^24 round, zero
        /// and non-finite scales included).
        #[test]
        fn rescale_tile_equals_the_scalar_expression(
            d in prop::array::uniform4(any::<i32>()),
            a in scale(),
            w in scale(),
        ) {
            let got = rescale_tile(d, a, w).map(f32::to_bits);
            let want = rescale_tile_scalar(d, a, w).map(f32::to_bits);
            prop_assert_eq!(got, want);
        }
    }
}
