//! The whole BitLinear of bitnet.cpp's I2_S path in one call: per-token int8 quantization of the
//! input, the exact ternary product, and the rescale `y = ((float)D / a) · s_W` in exactly that
//! order (bit-exact with bitnet.cpp; see tests/bitlinear_trace.rs).

use crate::error::KernelError;
use crate::isa::Isa;
use crate::memory::CacheAligned;
use crate::pool::ThreadPool;
use crate::quantize::quantize_activations_with_isa;

use super::{Scales, TernaryMatrix};

/// Reusable buffers for [`TernaryMatrix::bitlinear`], so decode allocates nothing per token.
#[derive(Debug, Default, Clone)]
pub struct BitLinearScratch {
    /// Cache-line aligned: the kernels load them 64 bytes at a time.
    codes: CacheAligned<i8>,
    activation_scales: Vec<f32>,
    dots: Vec<i32>,
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
            dots,
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
                let weight_scale = *weight_scale;
                dots.resize(out.len(), 0);
                self.matmul_with_isa(isa, codes, batch, dots, pool)?;
                for ((out, dots), &a) in out
                    .chunks_exact_mut(rows)
                    .zip(dots.chunks_exact(rows))
                    .zip(activation_scales.iter())
                {
                    for (o, &d) in out.iter_mut().zip(dots) {
                        *o = (d as f32 / a) * weight_scale;
                    }
                }
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
