//! [`Encoder`]: an encoder model (BERT) loaded from GGUF and run over whole inputs into token
//! states, then pooled into embeddings ([`crate::pooling`]).
//!
//! The blocks are the architecture's own (`models/bert.rs`) over the shared steps of
//! [`crate::blocks`], batched like the decoder's: the rows of every input go through each weight
//! together, attention stays within each input (bidirectional over its own tokens). There is
//! no cache across calls: each call gets a scratch F32 key/value store per input, so nothing is
//! rounded to F16 and an input's vector does not depend on the others in its batch.
//!
//! Linears stored block-quantized (Q8_0, Q4_0, ...) are widened to F16 at load and run on float
//! activations: the decoder's int8-activation kernels round each 32-wide block of activations
//! to int8, which costs a sentence vector too much here (all-MiniLM-L6-v2 Q8_0: cosine 0.998 to
//! sentence-transformers instead of ≥ 0.999), and an encoder's weights are small.

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
use crate::models::{self, BlockRef};
use crate::ops;
use crate::pooling::{l2_normalize_rows, Pooling};
use crate::weights::{self, Embedding, PlainLayer};

/// A loaded encoder.
pub struct Encoder {
    config: ModelConfig,
    token_embd: Embedding,
    position_embd: Embedding,
    /// Token-type embeddings; every token is of type 0 (a single text per input).
    token_types: Option<Embedding>,
    embd_norm: Vec<f32>,
    embd_norm_b: Option<Vec<f32>>,
    layers: Vec<PlainLayer>,
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
        let position_embd = Embedding::load_table(file, POSITIONS, d, config.n_ctx_train)?;
        let token_types = match file.tensor(TOKEN_TYPES) {
            Some(info) => {
                let rows = info.dims.get(1).copied().unwrap_or(0) as usize;
                Some(Embedding::load_table(file, TOKEN_TYPES, d, rows.max(1))?)
            }
            None => None,
        };
        let embd_norm = weights::norm(file, EMBD_NORM, d)?;
        let embd_norm_b = match file.tensor(EMBD_NORM_BIAS) {
            Some(_) => Some(weights::norm(file, EMBD_NORM_BIAS, d)?),
            None => None,
        };
        let mut blocks = load_blocks(file, &config, None)?;
        for layer in &mut blocks.plain {
            widen_quantized(layer);
        }
        let mut used: std::collections::HashSet<String> = [
            TOKEN_EMBD,
            POSITIONS,
            TOKEN_TYPES,
            EMBD_NORM,
            EMBD_NORM_BIAS,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        used.extend(blocks.asked);
        weights::check_no_unused_tensors(file, &config, &used)?;
        Ok(Encoder {
            config,
            token_embd,
            position_embd,
            token_types,
            embd_norm,
            embd_norm_b,
            layers: blocks.plain,
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

    /// The most tokens one input may have (the learned positions).
    pub fn n_ctx(&self) -> usize {
        self.config.n_ctx_train
    }

    /// The pooling the file states (`<arch>.pooling_type`), if it does.
    pub fn pooling(&self) -> Option<Pooling> {
        self.config.pooling
    }

    /// The last block's states of each input (`len × dim` values per input), all inputs in
    /// one batched pass. Errors name the first input that is empty or too long.
    pub fn states(
        &self,
        inputs: &[&[u32]],
        pool: &ThreadPool,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let cfg = &self.config;
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
        let mut x = self.embed_inputs(&pass)?;
        for (il, layer) in self.layers.iter().enumerate() {
            models::block(&mut pass, il, BlockRef::Plain(layer), &mut x)?;
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
    /// `normalize`.
    pub fn embed(
        &self,
        inputs: &[&[u32]],
        pooling: Pooling,
        normalize: bool,
        pool: &ThreadPool,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let d = self.dim();
        Ok(self
            .states(inputs, pool)?
            .into_iter()
            .map(|states| {
                let mut v = pooling.pool(&states, d);
                if normalize {
                    l2_normalize_rows(&mut v, d);
                }
                v
            })
            .collect())
    }

    /// The stream's start: token + position + type-0 embeddings, LayerNorm.
    fn embed_inputs(&self, pass: &Pass<'_, '_>) -> Result<Vec<f32>, ModelError> {
        let d = self.config.n_embd;
        let mut x = vec![0.0f32; pass.n * d];
        let mut extra = vec![0.0f32; d];
        let mut type0 = vec![0.0f32; d];
        if let Some(types) = &self.token_types {
            types.row(0, &mut type0)?;
        }
        for (row, &(s, i)) in x.chunks_exact_mut(d).zip(&pass.rows) {
            self.token_embd.row(pass.segments[s].tokens[i], row)?;
            self.position_embd.row(i as u32, &mut extra)?;
            for ((a, p), t) in row.iter_mut().zip(&extra).zip(&type0) {
                *a = *a + p + t;
            }
        }
        ops::layer_norm_rows_in_place(
            &mut x,
            &self.embd_norm,
            self.embd_norm_b.as_deref(),
            self.config.rms_eps,
        );
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
