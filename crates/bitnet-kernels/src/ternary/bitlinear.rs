//! The whole BitLinear of bitnet.cpp's I2_S path in one call: per-token int8 quantization of the
//! input, the exact ternary product, and the rescale `y = ((float)D / a) · s_W` in exactly that
//! order (bit-exact with bitnet.cpp; see tests/bitlinear_trace.rs).

use crate::error::KernelError;
use crate::isa::Isa;
use crate::memory::CacheAligned;
use crate::pool::{atomic_f32_view, ThreadPool};
use crate::quantize::quantize_activations_with_isa;

use std::sync::atomic::Ordering;

use super::{Scales, TernaryMatrix};

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
        let BitLinearScratch {
            codes,
            activation_scales,
            scaled,
        } = scratch;
        let codes = codes.resize(x.len());
        activation_scales.resize(batch, 0.0);
        for ((x, q), a) in x
            .chunks_exact(cols)
            .zip(codes.chunks_exact_mut(cols))
            .zip(activation_scales.iter_mut())
        {
            *a = quantize_activations_with_isa(isa, x, q)?;
        }
        let rows = self.rows();
        match self.scales() {
            Scales::PerTensor(weight_scale) => {
                // Rescaled by whichever pool thread computed each product, as it is stored.
                let weight_scale = *weight_scale;
                self.check_operands(isa, codes, batch, out.len())?;
                let activation_scales = &activation_scales[..];
                let out = atomic_f32_view(out);
                self.integer_products(isa, codes, batch, pool, |b, index, d, valid| {
                    let a = activation_scales[b];
                    let y = d.map(|d| ((d as f32 / a) * weight_scale).to_bits());
                    for (slot, y) in out[index..index + valid].iter().zip(y) {
                        slot.store(y, Ordering::Relaxed)
                    }
                });
            }
            Scales::PerBlock { .. } => {
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
            }
        }
        Ok(())
    }
}
