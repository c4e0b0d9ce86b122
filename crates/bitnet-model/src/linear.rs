//! A linear layer `y = x · Wᵀ` in one of two forms:
//! - **BitLinear** for ternary weights (I2_S, TQ1_0, TQ2_0, block-scaled I2_S, TL1/TL2): per-token
//!   int8 activations, exact integer dots in `bitnet-kernels`, then `y = (D / s_x) · s_W`
//!   (FORMATS.md §2);
//! - **dense f32** for every other type (dequantized at load; no activation quantization);
//! - **on a GPU** (`bitnet-gpu`): a ternary BitLinear, or the F16 head, uploaded at load; the
//!   GPU kernels give the CPU kernels' bits (tests in `bitnet-gpu`).
//!
//! llama.cpp's `bitnet` architecture may add a one-element `<linear>.scale` tensor multiplying
//! the output.

use bitnet_gguf::{GgmlType, GgufFile};
use bitnet_gpu::{GpuContext, GpuF16Matrix, GpuTernaryMatrix};
use bitnet_kernels::ternary::MAX_MATRICES_PER_RUN;
use bitnet_kernels::{BitLinearScratch, CodeMatrix, Scales, TernaryMatrix, ThreadPool};
use bitnet_quant::TernaryScales;
use std::sync::Arc;

use crate::dense::DenseMatrix;
use crate::error::ModelError;
use crate::weights::check_dims;

/// Whether a tensor type is one of the ternary formats that go through BitLinear.
pub fn is_ternary(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::I2S
            | GgmlType::BitNet32F16
            | GgmlType::TQ1_0
            | GgmlType::TQ2_0
            | GgmlType::TL1
            | GgmlType::TL2
    )
}

thread_local! {
    /// The BitLinear buffers of the calling thread, grown to its largest product and reused by
    /// every ternary layer (a fresh one per call zero-filled `batch × rows` words each time).
    static BITLINEAR_SCRATCH: std::cell::RefCell<BitLinearScratch> =
        std::cell::RefCell::new(BitLinearScratch::new());
}

/// One linear layer's weights.
#[derive(Debug)]
pub enum Linear {
    /// Ternary weights for BitLinear.
    Ternary {
        matrix: TernaryMatrix,
        scale: Option<f32>,
    },
    /// Dense f32 weights.
    Dense {
        matrix: DenseMatrix,
        scale: Option<f32>,
    },
    /// Ternary weights on a GPU.
    GpuTernary {
        matrix: GpuTernaryMatrix,
        scale: Option<f32>,
    },
    /// F16 weights on a GPU (the LM head).
    GpuF16 { matrix: GpuF16Matrix },
}

impl Linear {
    /// Loads tensor `name` of GGUF shape `[cols, rows]` (`cols` inputs, `rows` outputs). With
    /// `allow_scale`, a `<name without .weight>.scale` one-element tensor is applied if present.
    pub fn load(
        file: &GgufFile,
        name: &str,
        cols: usize,
        rows: usize,
        allow_scale: bool,
    ) -> Result<Self, ModelError> {
        Self::load_on(file, name, cols, rows, allow_scale, None)
    }

    /// [`Linear::load`] onto `gpu` when given: a ternary tensor becomes a
    /// [`Linear::GpuTernary`]; any other type is refused (no silent CPU fallback).
    pub fn load_on(
        file: &GgufFile,
        name: &str,
        cols: usize,
        rows: usize,
        allow_scale: bool,
        gpu: Option<&Arc<GpuContext>>,
    ) -> Result<Self, ModelError> {
        let info = file
            .tensor(name)
            .ok_or_else(|| ModelError::MissingTensor(name.to_string()))?;
        check_dims(name, &info.dims, &[cols as u64, rows as u64])?;
        let scale = if allow_scale {
            let scale_name = format!("{}.scale", name.trim_end_matches(".weight"));
            match file.tensor(&scale_name) {
                Some(s) => {
                    if s.n_elements != 1 {
                        return Err(ModelError::TensorShape {
                            name: scale_name,
                            found: s.dims.clone(),
                            expected: vec![1],
                        });
                    }
                    let mut v = [0.0f32];
                    bitnet_quant::dequantize(s.ggml_type, file.tensor_data(s), 1, &mut v).map_err(
                        |e| ModelError::TensorData {
                            name: scale_name.clone(),
                            reason: e.to_string(),
                        },
                    )?;
                    Some(v[0])
                }
                None => None,
            }
        } else {
            None
        };
        if gpu.is_some() && !is_ternary(info.ggml_type) {
            return Err(ModelError::NotOnGpu(
                format!("tensor `{name}`"),
                format!(
                    "its type {:?} has no GPU kernel (the GPU runs ternary linears)",
                    info.ggml_type
                ),
            ));
        }
        if !is_ternary(info.ggml_type) {
            return Ok(Linear::Dense {
                matrix: DenseMatrix::dequantized(
                    name,
                    info.ggml_type,
                    file.tensor_data(info),
                    rows,
                    cols,
                )?,
                scale,
            });
        }
        let data_err = |reason: String| ModelError::TensorData {
            name: name.to_string(),
            reason,
        };
        // Each loading thread decodes into the same values buffer, tensor after tensor.
        thread_local! {
            static VALUES: std::cell::Cell<Vec<i8>> = const { std::cell::Cell::new(Vec::new()) };
        }
        let buffer = VALUES.with(|v| v.take());
        let t = bitnet_quant::decode_ternary_reusing(
            info.ggml_type,
            file.tensor_data(info),
            &info.dims,
            buffer,
        )
        .map_err(|e| data_err(e.to_string()))?;
        if t.rows != rows || t.cols != cols {
            return Err(data_err(format!(
                "decoded as {}×{}, expected {rows}×{cols}",
                t.rows, t.cols
            )));
        }
        if let Some(ctx) = gpu {
            let matrix = GpuTernaryMatrix::from_tensor(ctx, &t)?;
            VALUES.with(|v| v.set(t.values));
            return Ok(Linear::GpuTernary { matrix, scale });
        }
        let scales = match t.scales {
            TernaryScales::PerTensor(s) => Scales::PerTensor(s),
            TernaryScales::PerBlock { block_len, scales } => Scales::PerBlock { block_len, scales },
        };
        let matrix = TernaryMatrix::from_values(rows, cols, &t.values, scales);
        VALUES.with(|v| v.set(t.values));
        let matrix = matrix.map_err(|e| data_err(e.to_string()))?;
        Ok(Linear::Ternary { matrix, scale })
    }

    /// Loads the fused tensor `name` (`cols` inputs, `sizes.iter().sum()` outputs) and cuts it
    /// into one linear per block of outputs (see [`DenseMatrix::split_rows`]). Ternary fused
    /// tensors are refused: no BitNet model has one.
    pub fn load_split(
        file: &GgufFile,
        name: &str,
        cols: usize,
        sizes: &[usize],
    ) -> Result<Vec<Linear>, ModelError> {
        let rows = sizes.iter().sum();
        let refuse = |reason: &str| ModelError::TensorType {
            name: name.to_string(),
            reason: reason.to_string(),
        };
        match Linear::load(file, name, cols, rows, false)? {
            Linear::Dense { matrix, .. } => Ok(matrix
                .split_rows(sizes)
                .ok_or_else(|| refuse("cannot be split into its projections"))?
                .into_iter()
                .map(|matrix| Linear::Dense {
                    matrix,
                    scale: None,
                })
                .collect()),
            Linear::Ternary { .. } | Linear::GpuTernary { .. } | Linear::GpuF16 { .. } => Err(
                refuse("a fused projection with ternary weights is not supported"),
            ),
        }
    }

    /// Loads the 3-D expert tensor `name` (GGUF dims `[cols, rows, n_expert]`: one `rows × cols`
    /// matrix per expert, stored one after another) as one dense linear per expert.
    pub fn load_experts(
        file: &GgufFile,
        name: &str,
        cols: usize,
        rows: usize,
        n_expert: usize,
    ) -> Result<Vec<Linear>, ModelError> {
        let info = file
            .tensor(name)
            .ok_or_else(|| ModelError::MissingTensor(name.to_string()))?;
        check_dims(
            name,
            &info.dims,
            &[cols as u64, rows as u64, n_expert as u64],
        )?;
        if is_ternary(info.ggml_type) {
            return Err(ModelError::TensorType {
                name: name.to_string(),
                reason: "ternary expert weights are not supported".into(),
            });
        }
        let all = DenseMatrix::dequantized(
            name,
            info.ggml_type,
            file.tensor_data(info),
            rows * n_expert,
            cols,
        )?;
        let parts =
            all.split_rows(&vec![rows; n_expert])
                .ok_or_else(|| ModelError::TensorType {
                    name: name.to_string(),
                    reason: "cannot be split into its experts".into(),
                })?;
        Ok(parts
            .into_iter()
            .map(|matrix| Linear::Dense {
                matrix,
                scale: None,
            })
            .collect())
    }

    /// Number of outputs.
    pub fn rows(&self) -> usize {
        match self {
            Linear::Ternary { matrix, .. } => matrix.rows(),
            Linear::Dense { matrix, .. } => matrix.rows,
            Linear::GpuTernary { matrix, .. } => matrix.rows(),
            Linear::GpuF16 { matrix } => matrix.rows(),
        }
    }

    /// Number of inputs.
    pub fn cols(&self) -> usize {
        match self {
            Linear::Ternary { matrix, .. } => matrix.cols(),
            Linear::Dense { matrix, .. } => matrix.cols,
            Linear::GpuTernary { matrix, .. } => matrix.cols(),
            Linear::GpuF16 { matrix } => matrix.cols(),
        }
    }

    /// `outs[i] = x · W_iᵀ` for several layers with the one input `x` (a layer's q, k and v, or
    /// gate and up): BitLinears with per-tensor scales go together through
    /// [`TernaryMatrix::bitlinear_several`], block-quantized weights that share their quantized
    /// activations through [`CodeMatrix::matmul_several`] (either way the input quantized once,
    /// one pool run over all the matrices); every other layer through its own
    /// [`Linear::forward`]. Same bits either way.
    pub fn forward_several(
        linears: &[&Linear],
        x: &[f32],
        batch: usize,
        outs: &mut [&mut [f32]],
        pool: &ThreadPool,
    ) -> Result<(), ModelError> {
        assert_eq!(linears.len(), outs.len(), "one output per layer");
        if let Some(ternary) = Linear::ternary_sharing_input(linears) {
            BITLINEAR_SCRATCH
                .with_borrow_mut(|scratch| {
                    TernaryMatrix::bitlinear_several(&ternary, x, batch, outs, scratch, pool)
                })
                .map_err(|e| ModelError::Kernel(e.to_string()))?;
            for (linear, out) in linears.iter().zip(outs.iter_mut()) {
                if let Linear::Ternary { scale: Some(s), .. } = linear {
                    out.iter_mut().for_each(|v| *v *= s);
                }
            }
            return Ok(());
        }
        let codes: Vec<Option<&CodeMatrix>> = linears
            .iter()
            .map(|l| match l {
                Linear::Dense {
                    matrix,
                    scale: None,
                } => matrix.codes(),
                _ => None,
            })
            .collect();
        let mut done = vec![false; linears.len()];
        for i in 0..linears.len() {
            if done[i] {
                continue;
            }
            let Some(first) = codes[i] else {
                linears[i].forward(x, batch, outs[i], pool)?;
                continue;
            };
            let together: Vec<usize> = (i..linears.len())
                .filter(|&j| !done[j] && codes[j].is_some_and(|m| first.shares_activations(m)))
                .collect();
            let ms: Vec<&CodeMatrix> = together.iter().filter_map(|&j| codes[j]).collect();
            let mut group_outs: Vec<&mut [f32]> = outs
                .iter_mut()
                .enumerate()
                .filter(|(j, _)| together.contains(j))
                .map(|(_, out)| &mut **out)
                .collect();
            CodeMatrix::matmul_several(&ms, x, batch, &mut group_outs, pool)
                .map_err(|e| ModelError::Kernel(e.to_string()))?;
            together.iter().for_each(|&j| done[j] = true);
        }
        Ok(())
    }

    /// The matrices of `linears` when every one is a CPU BitLinear with a per-tensor scale and
    /// there are 2 to [`MAX_MATRICES_PER_RUN`] of them: then [`TernaryMatrix::bitlinear_several`]
    /// quantizes their shared input once and runs them in one pool run.
    fn ternary_sharing_input<'a>(linears: &[&'a Linear]) -> Option<Vec<&'a TernaryMatrix>> {
        if !(2..=MAX_MATRICES_PER_RUN).contains(&linears.len()) {
            return None;
        }
        linears
            .iter()
            .map(|linear| match linear {
                Linear::Ternary { matrix, .. }
                    if matches!(matrix.scales(), Scales::PerTensor(_)) =>
                {
                    Some(matrix)
                }
                _ => None,
            })
            .collect()
    }

    /// `out = x · Wᵀ` for `batch` rows of `x` (`cols` wide); `out` is `batch × rows`.
    pub fn forward(
        &self,
        x: &[f32],
        batch: usize,
        out: &mut [f32],
        pool: &ThreadPool,
    ) -> Result<(), ModelError> {
        let scale = match self {
            Linear::Dense { matrix, scale } => {
                matrix
                    .matmul(x, batch, out, pool)
                    .map_err(|e| ModelError::Kernel(e.to_string()))?;
                *scale
            }
            Linear::Ternary { matrix, scale } => {
                // BitLinear (FORMATS.md §2), the kernels' trace-checked path.
                BITLINEAR_SCRATCH
                    .with_borrow_mut(|scratch| matrix.bitlinear(x, batch, out, scratch, pool))
                    .map_err(|e| ModelError::Kernel(e.to_string()))?;
                *scale
            }
            Linear::GpuTernary { matrix, scale } => {
                matrix.bitlinear(x, batch, out)?;
                *scale
            }
            Linear::GpuF16 { matrix } => {
                matrix.matmul(x, batch, out)?;
                None
            }
        };
        if let Some(s) = scale {
            out.iter_mut().for_each(|v| *v *= s);
        }
        Ok(())
    }
}
