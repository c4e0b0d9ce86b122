//! Loading the tensors an architecture declares: shape checks with errors naming the tensor,
//! norm vectors, the token embedding (kept in its stored format, rows dequantized on lookup),
//! and the per-layer weight set.

use bitnet_gguf::{GgmlType, GgufFile};

use crate::config::{ModelConfig, MoeConfig};
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
    tensor_f32(file, name, &[len])
}

/// The tensor `name` of shape `dims` (ggml order, ne0 first), dequantized whole to f32: for
/// small tensors read once (norms, a classification head).
pub(crate) fn tensor_f32(
    file: &GgufFile,
    name: &str,
    dims: &[usize],
) -> Result<Vec<f32>, ModelError> {
    let info = file
        .tensor(name)
        .ok_or_else(|| ModelError::MissingTensor(name.to_string()))?;
    let expected: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
    check_dims(name, &info.dims, &expected)?;
    let len = dims.iter().product();
    let mut out = vec![0.0f32; len];
    bitnet_quant::dequantize(info.ggml_type, file.tensor_data(info), len, &mut out).map_err(
        |e| ModelError::TensorData {
            name: name.to_string(),
            reason: e.to_string(),
        },
    )?;
    Ok(out)
}

/// Errors if the file holds a tensor that no loader asked for (a bias, an extra norm, a variant
/// this engine does not implement): running without it would be wrong silently. `used` holds
/// the name of every tensor the architecture's loader read or looked for.
pub(crate) fn check_no_unused_tensors(
    file: &GgufFile,
    cfg: &ModelConfig,
    used: &std::collections::HashSet<String>,
) -> Result<(), ModelError> {
    for t in file.tensors() {
        if !used.contains(&t.name) {
            return Err(ModelError::TensorType {
                name: t.name.clone(),
                reason: format!(
                    "not part of the `{}` graph this engine implements (unsupported model variant)",
                    cfg.arch.name
                ),
            });
        }
    }
    Ok(())
}

/// The token embedding table, kept in its stored type; rows are dequantized on lookup.
#[derive(Debug, Clone)]
pub struct Embedding {
    name: &'static str,
    ggml_type: GgmlType,
    n_embd: usize,
    n_vocab: usize,
    row_bytes: usize,
    data: Vec<u8>,
}

impl Embedding {
    pub(crate) fn load(file: &GgufFile, config: &ModelConfig) -> Result<Self, ModelError> {
        Self::load_table(file, "token_embd.weight", config.n_embd, config.n_vocab)
    }

    /// The table `name` of `rows` rows of `n_embd` values (token or position embeddings).
    pub(crate) fn load_table(
        file: &GgufFile,
        name: &'static str,
        n_embd: usize,
        rows: usize,
    ) -> Result<Self, ModelError> {
        let info = file
            .tensor(name)
            .ok_or_else(|| ModelError::MissingTensor(name.into()))?;
        check_dims(name, &info.dims, &[n_embd as u64, rows as u64])?;
        let (block_elems, block_bytes) = info
            .ggml_type
            .block_geometry()
            .filter(|(e, _)| n_embd.is_multiple_of(*e))
            .ok_or_else(|| ModelError::TensorType {
                name: name.into(),
                reason: format!(
                    "type {} cannot be read row by row with {n_embd} columns",
                    info.ggml_type.name(),
                ),
            })?;
        let row_bytes = n_embd / block_elems * block_bytes;
        let data = file.tensor_data(info);
        if data.len() < row_bytes * rows {
            return Err(ModelError::TensorData {
                name: name.into(),
                reason: format!("{} bytes, {} expected", data.len(), row_bytes * rows),
            });
        }
        Ok(Embedding {
            name,
            ggml_type: info.ggml_type,
            n_embd,
            n_vocab: rows,
            row_bytes,
            data: data[..row_bytes * rows].to_vec(),
        })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.n_vocab
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
                name: self.name.into(),
                reason: e.to_string(),
            }
        })
    }
}

/// The weights of one transformer block, named after llama.cpp's tensors (`blk.N.<name>`).
/// Which parts a layer has is decided by its architecture's loader in [`crate::models`]; the
/// optional ones are `None` where that architecture (or that file) has no such tensor.
#[derive(Debug)]
pub struct Layer {
    pub attn_norm: Vec<f32>,
    pub wq: Linear,
    pub wk: Linear,
    pub wv: Linear,
    pub wo: Linear,
    /// Biases of the Q, K, V and output projections.
    pub bq: Option<Vec<f32>>,
    pub bk: Option<Vec<f32>>,
    pub bv: Option<Vec<f32>>,
    pub bo: Option<Vec<f32>>,
    pub q_norm: Option<Vec<f32>>,
    pub k_norm: Option<Vec<f32>>,
    pub attn_sub_norm: Option<Vec<f32>>,
    pub attn_post_norm: Option<Vec<f32>>,
    /// Empty where the block has no FFN norm (Command-R's parallel FFN reads the attention's
    /// normed input).
    pub ffn_norm: Vec<f32>,
    pub ffn_gate: Linear,
    pub ffn_up: Linear,
    pub ffn_down: Linear,
    pub ffn_sub_norm: Option<Vec<f32>>,
    pub ffn_post_norm: Option<Vec<f32>>,
    /// The RMSNorm before each projection of a BitNet embedding model.
    pub input_norms: Option<ProjectionInputNorms>,
    /// The routed experts of a mixture-of-experts layer (DeepSeek); its `ffn_gate`, `ffn_up`,
    /// `ffn_down` then hold the shared experts (`ffn_*_shexp`), which every token goes through.
    pub moe: Option<MoeWeights>,
}

/// The weights of the RMSNorm that a BitNet embedding model applies to each projection's input
/// before its BitLinear (`blk.N.attn_{q,k,v,output}_norm_in`, `blk.N.ffn_{gate,up,down}_norm_in`;
/// microsoft/BitNet's `docs/bitnet-embeddings-i2s-guide.md` §3.1).
#[derive(Debug)]
pub struct ProjectionInputNorms {
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    /// Before the attention output projection (`q_dim` wide).
    pub output: Vec<f32>,
    pub gate: Vec<f32>,
    pub up: Vec<f32>,
    /// Before the down projection (`n_ff` wide).
    pub down: Vec<f32>,
}

/// The routed experts of one mixture-of-experts layer.
#[derive(Debug)]
pub struct MoeWeights {
    /// `ffn_gate_inp`: one logit per expert.
    pub router: Linear,
    /// Per expert: gate, up, down projections (a gated FFN of `expert_feed_forward_length`).
    pub experts: Vec<[Linear; 3]>,
    /// `ffn_gate_inp_shexp` (Qwen2-MoE): the shared experts' output is multiplied per token by
    /// `sigmoid(w · h)`.
    pub shared_gate: Option<Vec<f32>>,
}

/// The weights of a block whose FFN is not gated (`down(act(up · h + b_up)) + b_down`, StarCoder2)
/// and whose norms are LayerNorms with biases; named after llama.cpp's tensors like [`Layer`].
#[derive(Debug)]
pub struct PlainLayer {
    pub attn_norm: Vec<f32>,
    pub attn_norm_b: Option<Vec<f32>>,
    pub wq: Linear,
    pub wk: Linear,
    pub wv: Linear,
    pub wo: Linear,
    pub bq: Option<Vec<f32>>,
    pub bk: Option<Vec<f32>>,
    pub bv: Option<Vec<f32>>,
    pub bo: Option<Vec<f32>>,
    /// `None` where the FFN reads the attention's normed input (Falcon-7B's parallel block).
    pub ffn_norm: Option<Vec<f32>>,
    pub ffn_norm_b: Option<Vec<f32>>,
    pub ffn_up: Linear,
    pub ffn_up_b: Option<Vec<f32>>,
    pub ffn_down: Linear,
    pub ffn_down_b: Option<Vec<f32>>,
}

/// The Q, K, V projections of a layer and their biases.
pub(crate) struct QkvProjections {
    pub wq: Linear,
    pub wk: Linear,
    pub wv: Linear,
    pub bq: Option<Vec<f32>>,
    pub bk: Option<Vec<f32>>,
    pub bv: Option<Vec<f32>>,
}

/// Reads the tensors of block `il` for an architecture's loader, remembering every name asked
/// for (present or not) so that tensors nobody asked for can be refused afterwards.
pub(crate) struct LayerTensors<'f> {
    pub file: &'f GgufFile,
    pub cfg: &'f ModelConfig,
    il: usize,
    /// Whether one-element `<linear>.scale` tensors may multiply the linears' outputs.
    linear_scales: bool,
    /// The GPU the linears go to, if any.
    gpu: Option<std::sync::Arc<bitnet_gpu::GpuContext>>,
    asked: std::cell::RefCell<Vec<String>>,
}

impl<'f> LayerTensors<'f> {
    pub fn new(file: &'f GgufFile, cfg: &'f ModelConfig, il: usize, linear_scales: bool) -> Self {
        LayerTensors {
            file,
            cfg,
            il,
            linear_scales,
            gpu: None,
            asked: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// Loads the block's linears onto `gpu` (when given).
    pub fn on_gpu(mut self, gpu: Option<std::sync::Arc<bitnet_gpu::GpuContext>>) -> Self {
        self.gpu = gpu;
        self
    }

    /// The block's index.
    pub fn layer_index(&self) -> usize {
        self.il
    }

    /// `blk.<il>.<part>.weight`.
    fn name(&self, part: &str) -> String {
        format!("blk.{}.{part}.weight", self.il)
    }

    fn ask(&self, name: &str) {
        self.asked.borrow_mut().push(name.to_string());
    }

    /// The linear `part` (`cols` inputs, `rows` outputs).
    pub fn linear(&self, part: &str, cols: usize, rows: usize) -> Result<Linear, ModelError> {
        let name = self.name(part);
        self.ask(&name);
        if self.linear_scales {
            self.ask(&format!("blk.{}.{part}.scale", self.il));
        }
        Linear::load_on(
            self.file,
            &name,
            cols,
            rows,
            self.linear_scales,
            self.gpu.as_ref(),
        )
    }

    /// The norm weight vector `part` of `len` elements.
    pub fn norm(&self, part: &str, len: usize) -> Result<Vec<f32>, ModelError> {
        let name = self.name(part);
        self.ask(&name);
        norm(self.file, &name, len)
    }

    /// The norm weight vector `part` of `len` elements, if the file has it.
    pub fn optional_norm(&self, part: &str, len: usize) -> Result<Option<Vec<f32>>, ModelError> {
        self.optional_vector(self.name(part), len)
    }

    /// The optional one-dimensional tensor `blk.<il>.<part>.bias` of `len` elements.
    pub fn bias(&self, part: &str, len: usize) -> Result<Option<Vec<f32>>, ModelError> {
        self.optional_vector(format!("blk.{}.{part}.bias", self.il), len)
    }

    fn optional_vector(&self, name: String, len: usize) -> Result<Option<Vec<f32>>, ModelError> {
        self.ask(&name);
        match self.file.tensor(&name) {
            Some(_) => norm(self.file, &name, len).map(Some),
            None => Ok(None),
        }
    }

    /// The fused linear `part` cut into consecutive blocks of `sizes` outputs each.
    pub fn fused_linear(
        &self,
        part: &str,
        cols: usize,
        sizes: &[usize],
    ) -> Result<Vec<Linear>, ModelError> {
        let name = self.name(part);
        self.ask(&name);
        Linear::load_split(self.file, &name, cols, sizes)
    }

    /// Separate `attn_q`, `attn_k`, `attn_v` projections without biases.
    pub fn separate_qkv(&self) -> Result<QkvProjections, ModelError> {
        let c = self.cfg;
        let (d, qd, kvd) = (c.n_embd, c.q_dim(), c.kv_dim());
        Ok(QkvProjections {
            wq: self.linear("attn_q", d, qd)?,
            wk: self.linear("attn_k", d, kvd)?,
            wv: self.linear("attn_v", d, kvd)?,
            bq: None,
            bk: None,
            bv: None,
        })
    }

    /// The Q, K and V projections as llama.cpp's `create_tensor_qkv` finds them: one fused
    /// `attn_qkv` (with an optional fused bias) or separate `attn_q`, `attn_k`, `attn_v`, each
    /// with an optional bias.
    pub fn qkv_projections(&self) -> Result<QkvProjections, ModelError> {
        let c = self.cfg;
        let (d, qd, kvd) = (c.n_embd, c.q_dim(), c.kv_dim());
        let fused_name = self.name("attn_qkv");
        self.ask(&fused_name);
        if self.file.tensor(&fused_name).is_some() {
            let mut parts = self
                .fused_linear("attn_qkv", d, &[qd, kvd, kvd])?
                .into_iter();
            let mut next = || parts.next().expect("three parts");
            let (wq, wk, wv) = (next(), next(), next());
            let (bq, bk, bv) = match self.bias("attn_qkv", qd + 2 * kvd)? {
                Some(b) => (
                    Some(b[..qd].to_vec()),
                    Some(b[qd..qd + kvd].to_vec()),
                    Some(b[qd + kvd..].to_vec()),
                ),
                None => (None, None, None),
            };
            return Ok(QkvProjections {
                wq,
                wk,
                wv,
                bq,
                bk,
                bv,
            });
        }
        Ok(QkvProjections {
            bq: self.bias("attn_q", qd)?,
            bk: self.bias("attn_k", kvd)?,
            bv: self.bias("attn_v", kvd)?,
            ..self.separate_qkv()?
        })
    }

    /// The parts of a pre-norm block with a gated FFN (`attn_norm`, Q/K/V/output projections,
    /// `ffn_norm`, `ffn_gate`/`ffn_up`/`ffn_down`), the optional ones left out; an
    /// architecture's loader adds what its block has on top (`Layer { q_norm: ..., ..base }`).
    pub fn gated_block(&self, qkv: QkvProjections) -> Result<Layer, ModelError> {
        let (d, ff) = (self.cfg.n_embd, self.cfg.n_ff);
        let ffn = [
            self.linear("ffn_gate", d, ff)?,
            self.linear("ffn_up", d, ff)?,
            self.linear("ffn_down", ff, d)?,
        ];
        self.block_with(qkv, self.norm("ffn_norm", d)?, ffn)
    }

    /// [`LayerTensors::gated_block`] with the gate and up projections fused in one `ffn_up`
    /// of `2 · n_ff` outputs, gate rows first (Phi-3, GLM-4: llama.cpp's SwiGLU over halves).
    pub fn gated_block_fused_gate_up(&self, qkv: QkvProjections) -> Result<Layer, ModelError> {
        let (d, ff) = (self.cfg.n_embd, self.cfg.n_ff);
        let [gate, up]: [Linear; 2] = self
            .fused_linear("ffn_up", d, &[ff, ff])?
            .try_into()
            .map_err(|_| {
                ModelError::Internal("the gate-up split gave other than two parts".into())
            })?;
        let down = self.linear("ffn_down", ff, d)?;
        self.block_with(qkv, self.norm("ffn_norm", d)?, [gate, up, down])
    }

    /// The attention parts of a gated-FFN block (`attn_norm`, Q/K/V, `attn_output`) around the
    /// FFN given: its norm (empty where the block has none) and its gate, up, down projections.
    pub fn block_with(
        &self,
        qkv: QkvProjections,
        ffn_norm: Vec<f32>,
        [gate, up, down]: [Linear; 3],
    ) -> Result<Layer, ModelError> {
        let c = self.cfg;
        let (d, qd) = (c.n_embd, c.q_dim());
        Ok(Layer {
            attn_norm: self.norm("attn_norm", d)?,
            wq: qkv.wq,
            wk: qkv.wk,
            wv: qkv.wv,
            wo: self.linear("attn_output", qd, d)?,
            bq: qkv.bq,
            bk: qkv.bk,
            bv: qkv.bv,
            bo: None,
            q_norm: None,
            k_norm: None,
            attn_sub_norm: None,
            attn_post_norm: None,
            ffn_norm,
            ffn_gate: gate,
            ffn_up: up,
            ffn_down: down,
            ffn_sub_norm: None,
            ffn_post_norm: None,
            input_norms: None,
            moe: None,
        })
    }

    /// A mixture-of-experts block (DeepSeek, Qwen2-MoE): the shared experts (`ffn_*_shexp`,
    /// `moe.shared_width` wide) in the FFN fields and the routed experts in `moe`.
    pub fn moe_block(&self, qkv: QkvProjections, moe: &MoeConfig) -> Result<Layer, ModelError> {
        let (d, shared) = (self.cfg.n_embd, moe.shared_width);
        let shared_experts = [
            self.linear("ffn_gate_shexp", d, shared)?,
            self.linear("ffn_up_shexp", d, shared)?,
            self.linear("ffn_down_shexp", shared, d)?,
        ];
        Ok(Layer {
            moe: Some(self.routed_experts(moe)?),
            ..self.block_with(qkv, self.norm("ffn_norm", d)?, shared_experts)?
        })
    }

    /// The routed experts of a mixture-of-experts layer (`ffn_gate_inp`, `ffn_{gate,up,down}_exps`).
    pub fn routed_experts(&self, moe: &MoeConfig) -> Result<MoeWeights, ModelError> {
        let (d, n_expert, n_ff_exp) = (self.cfg.n_embd, moe.n_expert, moe.n_ff_exp);
        let router = self.linear("ffn_gate_inp", d, n_expert)?;
        let load = |part: &str, cols: usize, rows: usize| {
            let name = self.name(part);
            self.ask(&name);
            Linear::load_experts(self.file, &name, cols, rows, n_expert)
        };
        let gates = load("ffn_gate_exps", d, n_ff_exp)?;
        let ups = load("ffn_up_exps", d, n_ff_exp)?;
        let downs = load("ffn_down_exps", n_ff_exp, d)?;
        let experts = gates
            .into_iter()
            .zip(ups)
            .zip(downs)
            .map(|((g, u), dn)| [g, u, dn])
            .collect();
        Ok(MoeWeights {
            router,
            experts,
            shared_gate: None,
        })
    }

    /// A block with a plain (non-gated) FFN: each norm and projection with its optional bias.
    pub fn plain_block(&self, qkv: QkvProjections) -> Result<PlainLayer, ModelError> {
        let c = self.cfg;
        let (d, ff, qd) = (c.n_embd, c.n_ff, c.q_dim());
        Ok(PlainLayer {
            attn_norm: self.norm("attn_norm", d)?,
            attn_norm_b: self.bias("attn_norm", d)?,
            wq: qkv.wq,
            wk: qkv.wk,
            wv: qkv.wv,
            wo: self.linear("attn_output", qd, d)?,
            bq: qkv.bq,
            bk: qkv.bk,
            bv: qkv.bv,
            bo: self.bias("attn_output", d)?,
            ffn_norm: Some(self.norm("ffn_norm", d)?),
            ffn_norm_b: self.bias("ffn_norm", d)?,
            ffn_up: self.linear("ffn_up", d, ff)?,
            ffn_up_b: self.bias("ffn_up", ff)?,
            ffn_down: self.linear("ffn_down", ff, d)?,
            ffn_down_b: self.bias("ffn_down", d)?,
        })
    }

    /// The per-projection input norms of a BitNet embedding model's block (each one required:
    /// a missing one is an error naming it).
    pub fn projection_input_norms(&self) -> Result<ProjectionInputNorms, ModelError> {
        let c = self.cfg;
        let (d, qd, ff) = (c.n_embd, c.q_dim(), c.n_ff);
        Ok(ProjectionInputNorms {
            q: self.norm("attn_q_norm_in", d)?,
            k: self.norm("attn_k_norm_in", d)?,
            v: self.norm("attn_v_norm_in", d)?,
            output: self.norm("attn_output_norm_in", qd)?,
            gate: self.norm("ffn_gate_norm_in", d)?,
            up: self.norm("ffn_up_norm_in", d)?,
            down: self.norm("ffn_down_norm_in", ff)?,
        })
    }

    /// Every tensor name asked for.
    pub fn into_asked(self) -> Vec<String> {
        self.asked.into_inner()
    }
}
