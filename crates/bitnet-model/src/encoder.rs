//! [`Encoder`]: an embedding model loaded from GGUF and run over whole inputs into token
//! states, then pooled into embeddings ([`crate::pooling`]): BERT encoders, and the BitNet
//! embedding models on a decoder backbone (Qwen3, Gemma 3: causal attention, the final RMSNorm's
//! states pooled, usually at the last token); or scored by a cross-encoder's classification
//! head (rank pooling, [`ClassifierHead`]) over a text pair whose tokens carry their segment
//! (token type 0 or 1).
//!
//! The blocks are the architecture's own (`models/bert.rs`, `models/qwen3_bitnet_embed.rs`,
//! `models/gemma3_bitnet_embed.rs`) over the shared steps of [`crate::blocks`], batched like the
//! decoder's: the rows of every input go through each weight together, attention stays within
//! each input (bidirectional over its own tokens for BERT, causal for the decoder backbones).
//! There is no cache across calls: each call gets a scratch F32 key/value store per input, so
//! nothing is rounded to F16 and an input's vector does not depend on the others in its batch.
//!
//! BERT linears stored block-quantized (Q8_0, Q4_0, ...) are widened to F16 at load and run on
//! float activations: the decoder's int8-activation kernels round each 32-wide block of
//! activations to int8, which costs a sentence vector too much here (all-MiniLM-L6-v2 Q8_0:
//! cosine 0.998 to sentence-transformers instead of ≥ 0.999), and an encoder's weights are small.

use std::path::Path;

use bitnet_gguf::GgufFile;
use bitnet_kernels::ThreadPool;

use crate::blocks::Pass;
use crate::config::ModelConfig;
use crate::dense::{DenseData, DenseMatrix};
use crate::error::ModelError;
use crate::kv_cache::{KvCache, KvPrecision};
use crate::linear::Linear;
use crate::model::{load_blocks, BatchSegment};
use crate::models;
use crate::ops;
use crate::pooling::{l2_normalize_rows, ClassifierHead, Pooling, CLASSIFIER_TENSORS};
use crate::weights::{self, Embedding, Layer, PlainLayer};

/// A loaded encoder.
pub struct Encoder {
    config: ModelConfig,
    token_embd: Embedding,
    input: StreamStart,
    /// The final RMSNorm of a decoder backbone, applied to the states before pooling.
    output_norm: Option<Vec<f32>>,
    /// The blocks of a gated-FFN graph (the decoder backbones; empty for BERT).
    layers: Vec<Layer>,
    /// The blocks of a plain-FFN graph (BERT; empty for the decoder backbones).
    plain_layers: Vec<PlainLayer>,
    /// A cross-encoder's classification head (`cls.*`), when the file has one.
    head: Option<ClassifierHead>,
}

/// How the residual stream starts.
enum StreamStart {
    /// BERT: token + learned position + token-type-0 embeddings, then a LayerNorm.
    Bert {
        position_embd: Embedding,
        /// The rows of the token-type (segment) embeddings: type 0 for a single text, 0 and 1
        /// for a text pair. Empty when the file has none.
        token_types: Vec<Vec<f32>>,
        embd_norm: Vec<f32>,
        embd_norm_b: Option<Vec<f32>>,
    },
    /// A decoder backbone: the token embeddings (times `sqrt(n_embd)` where the graph says).
    Tokens,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

const TOKEN_EMBD: &str = "token_embd.weight";
const POSITIONS: &str = "position_embd.weight";
const TOKEN_TYPES: &str = "token_types.weight";
const EMBD_NORM: &str = "token_embd_norm.weight";
const EMBD_NORM_BIAS: &str = "token_embd_norm.bias";
const OUTPUT_NORM: &str = "output_norm.weight";

impl Encoder {
    /// Opens a GGUF file and loads the encoder in it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ModelError> {
        let file = GgufFile::open(path.as_ref()).map_err(|e| ModelError::Gguf(e.to_string()))?;
        Self::load(&file)
    }

    /// Loads the encoder from an opened GGUF file.
    pub fn load(file: &GgufFile) -> Result<Self, ModelError> {
        let config = ModelConfig::from_gguf(file)?;
        if !models::is_encoder(config.arch.graph) {
            return Err(ModelError::NotEncoder(config.arch.name));
        }
        if config.n_ctx_train == 0 {
            return Err(ModelError::MissingKey(format!(
                "{}.context_length",
                config.arch.name
            )));
        }
        let d = config.n_embd;
        let token_embd = Embedding::load(file, &config)?;
        let mut used: std::collections::HashSet<String> = std::collections::HashSet::new();
        used.insert(TOKEN_EMBD.to_string());
        let (input, output_norm) = if models::is_decoder_backbone_encoder(config.arch.graph) {
            used.insert(OUTPUT_NORM.to_string());
            (
                StreamStart::Tokens,
                Some(weights::norm(file, OUTPUT_NORM, d)?),
            )
        } else {
            used.extend([POSITIONS, TOKEN_TYPES, EMBD_NORM, EMBD_NORM_BIAS].map(String::from));
            let position_embd = Embedding::load_table(file, POSITIONS, d, config.n_ctx_train)?;
            let token_types = match file.tensor(TOKEN_TYPES) {
                Some(info) => {
                    let rows = info.dims.get(1).copied().unwrap_or(0) as usize;
                    let table = Embedding::load_table(file, TOKEN_TYPES, d, rows.max(1))?;
                    (0..table.rows())
                        .map(|t| {
                            let mut row = vec![0.0f32; d];
                            table.row(t as u32, &mut row).map(|()| row)
                        })
                        .collect::<Result<_, _>>()?
                }
                None => Vec::new(),
            };
            let embd_norm = weights::norm(file, EMBD_NORM, d)?;
            let embd_norm_b = match file.tensor(EMBD_NORM_BIAS) {
                Some(_) => Some(weights::norm(file, EMBD_NORM_BIAS, d)?),
                None => None,
            };
            let start = StreamStart::Bert {
                position_embd,
                token_types,
                embd_norm,
                embd_norm_b,
            };
            (start, None)
        };
        let head = ClassifierHead::load(file, d)?;
        if config.pooling == Some(Pooling::Rank) && head.is_none() {
            return Err(ModelError::MissingTensor(
                "cls.weight (pooling_type 4 = rank needs the classification head)".into(),
            ));
        }
        used.extend(CLASSIFIER_TENSORS.iter().map(|s| s.to_string()));
        let mut blocks = load_blocks(file, &config, None)?;
        for layer in &mut blocks.plain {
            widen_quantized(layer);
        }
        used.extend(blocks.asked);
        weights::check_no_unused_tensors(file, &config, &used)?;
        Ok(Encoder {
            config,
            token_embd,
            input,
            output_norm,
            layers: blocks.gated,
            plain_layers: blocks.plain,
            head,
        })
    }

    /// The configuration read from the file.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Width of a token state and of an embedding.
    pub fn dim(&self) -> usize {
        self.config.n_embd
    }

    /// The most tokens one input may have (BERT's learned positions; a decoder backbone's
    /// training context).
    pub fn n_ctx(&self) -> usize {
        self.config.n_ctx_train
    }

    /// The pooling the file states (`<arch>.pooling_type`), if it does.
    pub fn pooling(&self) -> Option<Pooling> {
        self.config.pooling
    }

    /// The classification head (a reranker's), if the file has one.
    pub fn head(&self) -> Option<&ClassifierHead> {
        self.head.as_ref()
    }

    /// The number of token types (segments) the model embeds: 0 when it has no table.
    fn n_token_types(&self) -> usize {
        match &self.input {
            StreamStart::Bert { token_types, .. } => token_types.len(),
            StreamStart::Tokens => 0,
        }
    }

    /// The final states of each input (`len × dim` values per input: the last block's, through
    /// the final norm where the model has one), all inputs in one batched pass, every token of
    /// segment 0. Errors name the first input that is empty or too long.
    pub fn states(
        &self,
        inputs: &[&[u32]],
        pool: &ThreadPool,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        self.states_with_segments(inputs, None, pool)
    }

    /// [`Encoder::states`] with the segment (token type) of each token of each input (a text
    /// pair: 0 for the first text, 1 for the second).
    pub fn states_with_segments(
        &self,
        inputs: &[&[u32]],
        token_types: Option<&[&[u32]]>,
        pool: &ThreadPool,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let cfg = &self.config;
        if let Some(types) = token_types {
            let n_types = self.n_token_types();
            if types.len() != inputs.len()
                || types.iter().zip(inputs).any(|(s, t)| s.len() != t.len())
            {
                return Err(ModelError::InvalidConfig(
                    "every input needs one segment id per token".into(),
                ));
            }
            if let Some(&bad) = types
                .iter()
                .flat_map(|s| s.iter())
                .find(|&&t| t != 0 && t as usize >= n_types)
            {
                return Err(ModelError::InvalidConfig(format!(
                    "segment (token type) {bad} is outside the model's {n_types} token types"
                )));
            }
        }
        for input in inputs {
            if input.len() > self.n_ctx() {
                return Err(ModelError::InputTooLong {
                    tokens: input.len(),
                    max: self.n_ctx(),
                });
            }
        }
        let mut caches: Vec<KvCache> = inputs
            .iter()
            .map(|t| KvCache::with_precision(cfg, t.len().max(1), KvPrecision::F32))
            .collect::<Result<_, _>>()?;
        let mut segments: Vec<BatchSegment<'_>> = inputs
            .iter()
            .zip(caches.iter_mut())
            .map(|(tokens, cache)| BatchSegment {
                tokens,
                cache,
                logits_from: tokens.len(),
            })
            .collect();
        let mut pass = Pass::plan(cfg, pool, &mut segments)?;
        let mut x = self.embed_inputs(&pass, token_types)?;
        models::run_blocks(&mut pass, &self.layers, &self.plain_layers, &mut x)?;
        if let Some(norm) = &self.output_norm {
            ops::rms_norm_rows_in_place(&mut x, norm, cfg.rms_eps);
        }
        let d = cfg.n_embd;
        Ok((0..pass.segments.len())
            .map(|s| {
                let rows = pass.rows_of(s);
                x[rows.start * d..rows.end * d].to_vec()
            })
            .collect())
    }

    /// One embedding per input (or one per token with [`Pooling::None`]), L2-normalised when
    /// `normalize`; with [`Pooling::Rank`] the classification head's values instead (never
    /// normalised).
    pub fn embed(
        &self,
        inputs: &[&[u32]],
        pooling: Pooling,
        normalize: bool,
        pool: &ThreadPool,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        self.embed_with_segments(inputs, None, pooling, normalize, pool)
    }

    /// [`Encoder::embed`] with the segment of each token ([`Encoder::states_with_segments`]).
    pub fn embed_with_segments(
        &self,
        inputs: &[&[u32]],
        token_types: Option<&[&[u32]]>,
        pooling: Pooling,
        normalize: bool,
        pool: &ThreadPool,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let d = self.dim();
        let head = match pooling {
            Pooling::Rank => Some(self.head.as_ref().ok_or_else(|| {
                ModelError::MissingTensor(
                    "cls.weight (rank pooling needs a classification head; this model has none)"
                        .into(),
                )
            })?),
            _ => None,
        };
        Ok(self
            .states_with_segments(inputs, token_types, pool)?
            .into_iter()
            .map(|states| {
                let mut v = pooling.pool(&states, d);
                if let Some(head) = head {
                    return head.apply(&v);
                }
                if normalize {
                    l2_normalize_rows(&mut v, d);
                }
                v
            })
            .collect())
    }

    /// The stream's start: BERT's token + position + token-type embeddings (type 0 unless
    /// `types` gives each token's), LayerNorm; a decoder backbone's token embeddings (scaled
    /// where the graph says).
    fn embed_inputs(
        &self,
        pass: &Pass<'_, '_>,
        types: Option<&[&[u32]]>,
    ) -> Result<Vec<f32>, ModelError> {
        let d = self.config.n_embd;
        let mut x = vec![0.0f32; pass.n * d];
        for (row, &(s, i)) in x.chunks_exact_mut(d).zip(&pass.rows) {
            self.token_embd.row(pass.segments[s].tokens[i], row)?;
        }
        match &self.input {
            StreamStart::Tokens => {
                if models::scales_embeddings(self.config.arch.graph) {
                    let scale = (d as f32).sqrt();
                    x.iter_mut().for_each(|v| *v *= scale);
                }
            }
            StreamStart::Bert {
                position_embd,
                token_types,
                embd_norm,
                embd_norm_b,
            } => {
                let mut extra = vec![0.0f32; d];
                for (row, &(s, i)) in x.chunks_exact_mut(d).zip(&pass.rows) {
                    position_embd.row(i as u32, &mut extra)?;
                    row.iter_mut().zip(&extra).for_each(|(a, p)| *a += p);
                    let t = types.map_or(0, |types| types[s][i] as usize);
                    if let Some(type_row) = token_types.get(t) {
                        row.iter_mut().zip(type_row).for_each(|(a, t)| *a += t);
                    }
                }
                ops::layer_norm_rows_in_place(
                    &mut x,
                    embd_norm,
                    embd_norm_b.as_deref(),
                    self.config.rms_eps,
                );
            }
        }
        Ok(x)
    }
}

/// Widens every linear of `layer` held quantized (Q8_0 blocks or int8 codes) to F16: ggml's
/// dequantized values rounded to F16, as every block type was held before the decoder's
/// int8-activation kernels (see the module docs).
fn widen_quantized(layer: &mut PlainLayer) {
    for linear in [
        &mut layer.wq,
        &mut layer.wk,
        &mut layer.wv,
        &mut layer.wo,
        &mut layer.ffn_up,
        &mut layer.ffn_down,
    ] {
        if let Linear::Dense { matrix, .. } = linear {
            if matches!(matrix.data, DenseData::Q8(_) | DenseData::Codes(_)) {
                let mut row = vec![0.0f32; matrix.cols];
                let mut data = Vec::with_capacity(matrix.rows * matrix.cols);
                for r in 0..matrix.rows {
                    matrix.row_into(r, &mut row);
                    data.extend(row.iter().map(|&v| half::f16::from_f32(v)));
                }
                *matrix = DenseMatrix::new_f16(matrix.rows, matrix.cols, data);
            }
        }
    }
}
