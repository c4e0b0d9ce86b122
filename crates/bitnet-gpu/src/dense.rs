//! An F16 matrix on the GPU (the LM head) and its product with f32 activations, in the CPU
//! kernel's summation order (`shaders/f16_matmul.wgsl`). Rows are split into chunks so that no
//! storage binding exceeds the adapter's limit (the 128256-row head of BitNet 2B-4T is 656 MB).

use std::sync::Arc;

use half::f16;

use crate::context::GpuContext;
use crate::error::GpuError;

struct Chunk {
    params: wgpu::Buffer,
    weights: wgpu::Buffer,
    rows: u32,
}

/// An F16 matrix uploaded to a GPU.
pub struct GpuF16Matrix {
    ctx: Arc<GpuContext>,
    rows: usize,
    cols: usize,
    chunks: Vec<Chunk>,
}

impl std::fmt::Debug for GpuF16Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuF16Matrix")
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("chunks", &self.chunks.len())
            .finish_non_exhaustive()
    }
}

impl GpuF16Matrix {
    /// Uploads `data` (`rows × cols`, row-major; `cols` even).
    pub fn new(
        ctx: &Arc<GpuContext>,
        rows: usize,
        cols: usize,
        data: &[f16],
    ) -> Result<GpuF16Matrix, GpuError> {
        if rows == 0 || cols == 0 || !cols.is_multiple_of(2) || data.len() != rows * cols {
            return Err(GpuError::Shape {
                what: "F16 matrix",
                reason: format!(
                    "{} values for {rows} × {cols} (the GPU kernel needs an even, positive cols)",
                    data.len()
                ),
            });
        }
        let row_bytes = (cols * 2) as u64;
        let mut chunks = Vec::new();
        for (row0, n) in ctx.row_chunks("F16 matrix", rows, row_bytes, 1)? {
            let (gx, _) = ctx.grid(n as u32);
            let params: [u32; 8] = [n as u32, row0 as u32, rows as u32, cols as u32, gx, 0, 0, 0];
            let bits: Vec<u16> = data[row0 * cols..(row0 + n) * cols]
                .iter()
                .map(|v| v.to_bits())
                .collect();
            chunks.push(Chunk {
                params: ctx.uniform_init("f16 params", bytemuck::cast_slice(&params)),
                weights: ctx.storage_init("f16 weights", bytemuck::cast_slice(&bits)),
                rows: n as u32,
            });
        }
        Ok(GpuF16Matrix {
            ctx: ctx.clone(),
            rows,
            cols,
            chunks,
        })
    }

    /// Outputs.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Inputs.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Storage bindings the weights are split into.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// `out[b·rows + r] = Σ_j W[r][j] · x[b·cols + j]` in the CPU kernel's order.
    pub fn matmul(&self, x: &[f32], batch: usize, out: &mut [f32]) -> Result<(), GpuError> {
        let ctx = &self.ctx;
        let shape = (self.rows, self.cols);
        for (xs, outs) in ctx.token_passes("F16 product operands", shape, x, batch, out)? {
            let tokens = xs.len() / self.cols;
            let x_buf = ctx.storage_init("f16 activations", bytemuck::cast_slice(xs));
            let out_buf = ctx.storage_empty("f16 out", (outs.len() * 4) as u64);
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_pipeline(&ctx.kernels.f16_matmul);
                for chunk in &self.chunks {
                    let group = ctx.bind(
                        &ctx.kernels.f16_matmul,
                        &[&chunk.params, &chunk.weights, &x_buf, &out_buf],
                    );
                    let (gx, gy) = ctx.grid(chunk.rows);
                    pass.set_bind_group(0, &group, &[]);
                    pass.dispatch_workgroups(gx, gy, tokens as u32);
                }
            }
            ctx.submit_and_read(encoder, &out_buf, outs)?;
        }
        Ok(())
    }
}
