//! A ternary matrix on the GPU and its BitLinear: activations quantized on the GPU (the CPU
//! engine's exact rounding, `shaders/quantize.wgsl`), the exact integer products with
//! `dot4I8Packed` and the rescale (`shaders/bitlinear.wgsl`). Rows are split into chunks so that
//! no storage binding exceeds the adapter's limit.

use std::sync::Arc;

use bitnet_quant::{TernaryScales, TernaryTensor};

use crate::context::GpuContext;
use crate::error::GpuError;
use crate::repack::{pack_ternary, CODES_PER_WORD};

struct Chunk {
    params: wgpu::Buffer,
    weights: wgpu::Buffer,
    scales: wgpu::Buffer,
    rows: u32,
}

/// A ternary matrix uploaded to a GPU.
pub struct GpuTernaryMatrix {
    ctx: Arc<GpuContext>,
    rows: usize,
    cols: usize,
    chunks: Vec<Chunk>,
    quantize_params: wgpu::Buffer,
}

impl std::fmt::Debug for GpuTernaryMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuTernaryMatrix")
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("chunks", &self.chunks.len())
            .finish_non_exhaustive()
    }
}

fn words_to_bytes(words: &[u32]) -> &[u8] {
    bytemuck::cast_slice(words)
}

impl GpuTernaryMatrix {
    /// Repacks `values` (`rows × cols`, −1/0/1) and uploads them with their scales.
    pub fn new(
        ctx: &Arc<GpuContext>,
        rows: usize,
        cols: usize,
        values: &[i8],
        scales: &TernaryScales,
    ) -> Result<GpuTernaryMatrix, GpuError> {
        let words = pack_ternary(rows, cols, values)?;
        let words_per_row = cols / CODES_PER_WORD;
        let (tensor_scale, quads_per_block, blocks_per_row, block_scales) = match scales {
            TernaryScales::PerTensor(s) => (*s, 0usize, 0usize, &[][..]),
            TernaryScales::PerBlock { block_len, scales } => {
                if *block_len == 0
                    || !block_len.is_multiple_of(4)
                    || !cols.is_multiple_of(*block_len)
                {
                    return Err(GpuError::Shape {
                        what: "ternary block scales",
                        reason: format!("block length {block_len} for {cols} columns"),
                    });
                }
                if scales.len() != rows * cols / block_len {
                    return Err(GpuError::Shape {
                        what: "ternary block scales",
                        reason: format!(
                            "{} scales for {rows} × {cols} / {block_len}",
                            scales.len()
                        ),
                    });
                }
                (0.0, block_len / 4, cols / block_len, &scales[..])
            }
        };
        let row_bytes = (words_per_row * 4) as u64;
        let quantize_params =
            ctx.uniform_init("quantize params", words_to_bytes(&[cols as u32, 0, 0, 0]));
        let mut chunks = Vec::new();
        for (row0, n) in ctx.row_chunks("ternary matrix", rows, row_bytes, 4)? {
            let (gx, _) = ctx.grid(n.div_ceil(4) as u32);
            let params: [u32; 8] = [
                n as u32,
                row0 as u32,
                rows as u32,
                words_per_row as u32,
                quads_per_block as u32,
                blocks_per_row as u32,
                gx,
                tensor_scale.to_bits(),
            ];
            let chunk_scales = if blocks_per_row == 0 {
                &[0.0f32][..]
            } else {
                &block_scales[row0 * blocks_per_row..(row0 + n) * blocks_per_row]
            };
            chunks.push(Chunk {
                params: ctx.uniform_init("bitlinear params", words_to_bytes(&params)),
                weights: ctx.storage_init(
                    "ternary weights",
                    words_to_bytes(&words[row0 * words_per_row..(row0 + n) * words_per_row]),
                ),
                scales: ctx.storage_init("block scales", bytemuck::cast_slice(chunk_scales)),
                rows: n as u32,
            });
        }
        Ok(GpuTernaryMatrix {
            ctx: ctx.clone(),
            rows,
            cols,
            chunks,
            quantize_params,
        })
    }

    /// Uploads a decoded ternary tensor (any ternary file format, `bitnet_quant::decode_ternary`).
    pub fn from_tensor(
        ctx: &Arc<GpuContext>,
        tensor: &TernaryTensor,
    ) -> Result<GpuTernaryMatrix, GpuError> {
        Self::new(
            ctx,
            tensor.rows,
            tensor.cols,
            &tensor.values,
            &tensor.scales,
        )
    }

    /// Outputs.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Inputs.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Storage bindings the weights are split into (more than one past the adapter's limit).
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// The whole BitLinear for `batch` tokens: `out[b·rows + r]` equals the CPU engine's
    /// `TernaryMatrix::bitlinear` (`y = (D / a_b) · s_W`, or the block-scaled sum over `a_b`).
    pub fn bitlinear(&self, x: &[f32], batch: usize, out: &mut [f32]) -> Result<(), GpuError> {
        let shape = (self.rows, self.cols);
        for (xs, outs) in self
            .ctx
            .token_passes("BitLinear operands", shape, x, batch, out)?
        {
            self.bitlinear_pass(xs, xs.len() / self.cols, outs)?;
        }
        Ok(())
    }

    fn bitlinear_pass(&self, x: &[f32], tokens: usize, out: &mut [f32]) -> Result<(), GpuError> {
        let ctx = &self.ctx;
        let x_buf = ctx.storage_init("activations", bytemuck::cast_slice(x));
        let codes = ctx.storage_empty("activation codes", (x.len()) as u64);
        let act_scales = ctx.storage_empty("activation scales", (tokens * 4) as u64);
        let out_buf = ctx.storage_empty("bitlinear out", (out.len() * 4) as u64);
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            let quantize = ctx.bind(
                &ctx.kernels.quantize,
                &[&self.quantize_params, &x_buf, &codes, &act_scales],
            );
            pass.set_pipeline(&ctx.kernels.quantize);
            pass.set_bind_group(0, &quantize, &[]);
            pass.dispatch_workgroups(tokens as u32, 1, 1);
            pass.set_pipeline(&ctx.kernels.bitlinear);
            for chunk in &self.chunks {
                let group = ctx.bind(
                    &ctx.kernels.bitlinear,
                    &[
                        &chunk.params,
                        &chunk.weights,
                        &chunk.scales,
                        &codes,
                        &act_scales,
                        &out_buf,
                    ],
                );
                let (gx, gy) = ctx.grid(chunk.rows.div_ceil(4));
                pass.set_bind_group(0, &group, &[]);
                pass.dispatch_workgroups(gx, gy, tokens as u32);
            }
        }
        ctx.submit_and_read(encoder, &out_buf, out)
    }
}
