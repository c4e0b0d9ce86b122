//! Loading the tensors an architecture declares: shape checks with errors naming the tensor,
//! norm vectors, the token embedding (kept in its stored format, rows dequantized on lookup),
//! and the per-layer weight set.

use bitnet_gguf::{GgmlType, GgufFile};

use crate::config::ModelConfig;
use crate::error::ModelError;
use crate::linear::Linear;

/// Errors unless `found` equals `expected` (ggml order, ne0 first).
pub(crate) fn check_dims(name: &str, found: &[u64], expected: &[u64]) -> Result<(), ModelError> {
    if found != expected {
        return Err(ModelError::TensorShape {
            name: name.to_string(),
            found: found.to_vec(),
            expected: expected.to_vec(),
        });
    }
    Ok(())
}

/// A one-dimensional tensor of `len` elements (norm weights), dequantized to f32.
pub(crate) fn norm(file: &GgufFile, name: &str, len: usize) -> Result<Vec<f32>, ModelError> {
    let info = file
        .tensor(name)
        .ok_or_else(|| ModelError::MissingTensor(name.to_string()))?;
    check_dims(name, &info.dims, &[len as u64])?;
    let mut out = vec![0.0f32; len];
    bitnet_quant::dequantize(info.ggml_type, file.tensor_data(info), len, &mut out).map_err(
        |e| ModelError::TensorData {
            name: name.to_string(),
            reason: e.to_string(),
        },
    )?;
    Ok(out)
}

/// Errors if the file holds a tensor the architecture's graph would not use (a bias, an extra
/// norm, a variant this engine does not implement): running without it would be wrong silently.
pub(crate) fn check_no_unused_tensors(
    file: &GgufFile,
    cfg: &ModelConfig,
) -> Result<(), ModelError> {
    let arch = cfg.arch;
    let mut known: Vec<String> = ["token_embd.weight", "output_norm.weight", "output.weight"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let linears = [
        "attn_q",
        "attn_k",
        "attn_v",
        "attn_output",
        "ffn_gate",
        "ffn_up",
        "ffn_down",
    ];
    let mut norms = vec!["attn_norm", "ffn_norm"];
    if arch.qk_norm {
        norms.extend(["attn_q_norm", "attn_k_norm"]);
    }
    if arch.sub_norms {
        norms.extend(["attn_sub_norm", "ffn_sub_norm"]);
    }
    if arch.post_norms {
        norms.extend(["post_attention_norm", "post_ffw_norm"]);
    }
    for il in 0..cfg.n_layer {
        for part in linears {
            known.push(format!("blk.{il}.{part}.weight"));
            if arch.linear_scales {
                known.push(format!("blk.{il}.{part}.scale"));
            }
        }
        for part in &norms {
            known.push(format!("blk.{il}.{part}.weight"));
        }
    }
    for t in file.tensors() {
        if !known.contains(&t.name) {
            return Err(ModelError::TensorType {
                name: t.name.clone(),
                reason: format!(
                    "not part of the `{}` graph this engine implements (unsupported model variant)",
                    arch.name
                ),
            });
        }
    }
    Ok(())
}

/// The token embedding table, kept in its stored type; rows are dequantized on lookup.
#[derive(Debug, Clone)]
pub struct Embedding {
    ggml_type: GgmlType,
    n_embd: usize,
    n_vocab: usize,
    row_bytes: usize,
    data: Vec<u8>,
}

impl Embedding {
    pub(crate) fn load(file: &GgufFile, config: &ModelConfig) -> Result<Self, ModelError> {
        const NAME: &str = "token_embd.weight";
        let info = file
            .tensor(NAME)
            .ok_or_else(|| ModelError::MissingTensor(NAME.into()))?;
        check_dims(
            NAME,
            &info.dims,
            &[config.n_embd as u64, config.n_vocab as u64],
        )?;
        let (block_elems, block_bytes) = info
            .ggml_type
            .block_geometry()
            .filter(|(e, _)| config.n_embd.is_multiple_of(*e))
            .ok_or_else(|| ModelError::TensorType {
                name: NAME.into(),
                reason: format!(
                    "type {} cannot be read row by row with {} columns",
                    info.ggml_type.name(),
                    config.n_embd
                ),
            })?;
        let row_bytes = config.n_embd / block_elems * block_bytes;
        let data = file.tensor_data(info);
        if data.len() < row_bytes * config.n_vocab {
            return Err(ModelError::TensorData {
                name: NAME.into(),
                reason: format!(
                    "{} bytes, {} expected",
                    data.len(),
                    row_bytes * config.n_vocab
                ),
            });
        }
        Ok(Embedding {
            ggml_type: info.ggml_type,
            n_embd: config.n_embd,
            n_vocab: config.n_vocab,
            row_bytes,
            data: data[..row_bytes * config.n_vocab].to_vec(),
        })
    }

    /// The storage type of the table.
    pub fn ggml_type(&self) -> GgmlType {
        self.ggml_type
    }

    /// Writes the embedding of token `id` into `out` (`n_embd` values).
    pub fn row(&self, id: u32, out: &mut [f32]) -> Result<(), ModelError> {
        let i = id as usize;
        if i >= self.n_vocab {
            return Err(ModelError::TokenOutOfRange {
                id,
                vocab: self.n_vocab,
            });
        }
        let bytes = &self.data[i * self.row_bytes..(i + 1) * self.row_bytes];
        bitnet_quant::dequantize(self.ggml_type, bytes, self.n_embd, out).map_err(|e| {
            ModelError::TensorData {
                name: "token_embd.weight".into(),
                reason: e.to_string(),
            }
        })
    }
}

/// The weights of one transformer block. Optional parts are present exactly when the
/// architecture declares them.
#[derive(Debug)]
pub struct Layer {
    pub attn_norm: Vec<f32>,
    pub wq: Linear,
    pub wk: Linear,
    pub wv: Linear,
    pub wo: Linear,
    pub q_norm: Option<Vec<f32>>,
    pub k_norm: Option<Vec<f32>>,
    pub attn_sub_norm: Option<Vec<f32>>,
    pub attn_post_norm: Option<Vec<f32>>,
    pub ffn_norm: Vec<f32>,
    pub ffn_gate: Linear,
    pub ffn_up: Linear,
    pub ffn_down: Linear,
    pub ffn_sub_norm: Option<Vec<f32>>,
    pub ffn_post_norm: Option<Vec<f32>>,
}

impl Layer {
    pub(crate) fn load(file: &GgufFile, cfg: &ModelConfig, il: usize) -> Result<Self, ModelError> {
        let arch = cfg.arch;
        let name = |part: &str| format!("blk.{il}.{part}.weight");
        let lin = |part: &str, cols: usize, rows: usize| {
            Linear::load(file, &name(part), cols, rows, arch.linear_scales)
        };
        let required = |part: &str, len: usize| norm(file, &name(part), len);
        let (d, ff, qd, kvd) = (cfg.n_embd, cfg.n_ff, cfg.q_dim(), cfg.kv_dim());
        let when = |flag: bool, part: &str, len: usize| -> Result<Option<Vec<f32>>, ModelError> {
            if flag {
                required(part, len).map(Some)
            } else {
                Ok(None)
            }
        };
        Ok(Layer {
            attn_norm: required("attn_norm", d)?,
            wq: lin("attn_q", d, qd)?,
            wk: lin("attn_k", d, kvd)?,
            wv: lin("attn_v", d, kvd)?,
            wo: lin("attn_output", qd, d)?,
            q_norm: when(arch.qk_norm, "attn_q_norm", cfg.head_dim)?,
            k_norm: when(arch.qk_norm, "attn_k_norm", cfg.head_dim)?,
            attn_sub_norm: when(arch.sub_norms, "attn_sub_norm", qd)?,
            attn_post_norm: when(arch.post_norms, "post_attention_norm", d)?,
            ffn_norm: required("ffn_norm", d)?,
            ffn_gate: lin("ffn_gate", d, ff)?,
            ffn_up: lin("ffn_up", d, ff)?,
            ffn_down: lin("ffn_down", ff, d)?,
            ffn_sub_norm: when(arch.sub_norms, "ffn_sub_norm", ff)?,
            ffn_post_norm: when(arch.post_norms, "post_ffw_norm", d)?,
        })
    }
}
