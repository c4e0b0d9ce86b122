//! The model: weights loaded from a GGUF file according to its architecture's declaration, and
//! the forward pass over a batch of tokens (prefill) or one token (decode) with a KV cache.
//!
//! Numerical conventions follow bitnet.cpp's measured behaviour (oracle README §5) with the
//! default F16 cache: K and V are cached as F16, Q is rounded to F16 for `q·k`, softmax in f32
//! with an f64 sum; a one-token call (the decode path) additionally rounds the attention
//! probabilities and the LM-head input to F16, as bitnet.cpp's generation path does, while a
//! batch keeps both in f32. BF16 and Q8_0 caches follow the same rules (only K and V are stored
//! differently); with an F32 cache ([`KvPrecision::F32`]) nothing is rounded to F16.

use std::path::Path;

use bitnet_gguf::{GgmlType, GgufFile};
use bitnet_kernels::ThreadPool;

use crate::blocks::Pass;
use crate::config::ModelConfig;
use crate::dense::DenseMatrix;
use crate::error::ModelError;
use crate::kv_cache::{KvCache, KvPrecision};
use crate::linear::Linear;
use crate::models;
use crate::models::BlockWeights;
use crate::ops;
use crate::weights::{self, Embedding, Layer, LayerTensors, PlainLayer};

/// A loaded model.
pub struct Model {
    config: ModelConfig,
    /// The token embedding table; `None` when the tied F16 head holds the same values and
    /// rows are read from it (the table is then held once, not twice).
    embedding: Option<Embedding>,
    /// The blocks of a gated-FFN architecture (empty for a plain-FFN one).
    layers: Vec<Layer>,
    /// The blocks of a plain-FFN architecture (empty for a gated-FFN one).
    plain_layers: Vec<PlainLayer>,
    /// Learned position embeddings (GPT-2, StarCoder), one row per position.
    position_embd: Option<Embedding>,
    /// The bias of a final LayerNorm, where the architecture has one.
    output_norm_b: Option<Vec<f32>>,
    output_norm: Vec<f32>,
    /// The element type of [`Model::new_cache`]'s caches.
    cache_type: KvPrecision,
    head: Linear,
    /// The GPU the linears run on (`None`: the CPU).
    gpu: Option<std::sync::Arc<bitnet_gpu::GpuContext>>,
    /// Bytes of the 2-bit copies of trit5 matrices ([`LoadOptions::batched_decode`]).
    two_bit_copy_bytes: usize,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// One sequence of a [`Model::forward_batch`] call: its new tokens, its cache (the tokens go
/// at positions `cache.len()..`) and the first token whose logits are wanted.
pub struct BatchSegment<'a> {
    pub tokens: &'a [u32],
    pub cache: &'a mut KvCache,
    pub logits_from: usize,
}

/// How the output head is held in memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HeadFormat {
    /// As stored in the file (dequantized to F16/F32 as for every dense weight).
    #[default]
    AsStored,
    /// Requantized to Q8_0 at load: about half the bytes of an F16 head per token
    /// (near-lossless: FORMATS.md §4).
    Q8_0,
    /// Q6_K (bitnet.cpp's default for the embedding / head since its 2026 release):
    /// requantized at load by ggml's algorithm (a head stored as Q6_K is taken as it is), 0.82
    /// bytes per weight; a tied table's lookups read the same Q6_K values.
    Q6K,
}

impl HeadFormat {
    /// Parses a `--head` value: `f16` (as stored), `q8_0` or `q6_k`.
    pub fn from_name(name: &str) -> Option<HeadFormat> {
        match name {
            "f16" | "as-stored" => Some(HeadFormat::AsStored),
            "q8_0" => Some(HeadFormat::Q8_0),
            "q6_k" => Some(HeadFormat::Q6K),
            _ => None,
        }
    }

    /// The `--head` value naming this format.
    pub fn name(self) -> &'static str {
        match self {
            HeadFormat::AsStored => "f16",
            HeadFormat::Q8_0 => "q8_0",
            HeadFormat::Q6K => "q6_k",
        }
    }
}

/// Options for [`Model::load_with`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub head: HeadFormat,
    /// Run the BitLinears and the F16 head on this GPU (BitNet architectures only; anything
    /// without a GPU kernel is refused at load, never run on the CPU instead).
    pub gpu: Option<std::sync::Arc<bitnet_gpu::GpuContext>>,
    /// The element type of the caches [`Model::new_cache`] makes (checked at load).
    pub cache_type: KvPrecision,
    /// Several sequences will be decoded together (a server's slots, a batched benchmark): the
    /// ternary matrices stored 5 weights per byte (trit5) also keep a 2-bit copy, which every
    /// product of 2 or more tokens reads (the same results; 25% more ternary bytes held, one
    /// token still reads the smaller trit5 bytes; see `TernaryMatrix::keep_two_bit_copy`).
    pub batched_decode: bool,
}

impl Model {
    /// Opens a GGUF file and loads the model in it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ModelError> {
        let file = GgufFile::open(path.as_ref()).map_err(|e| ModelError::Gguf(e.to_string()))?;
        Self::load(&file)
    }

    /// Loads the model from an opened GGUF file (weights are copied/decoded into memory).
    pub fn load(file: &GgufFile) -> Result<Self, ModelError> {
        Self::load_with(file, LoadOptions::default())
    }

    /// [`Model::load`] with options (e.g. a Q8_0 head).
    pub fn load_with(file: &GgufFile, options: LoadOptions) -> Result<Self, ModelError> {
        let config = ModelConfig::from_gguf(file)?;
        if models::is_encoder(config.arch.graph) {
            return Err(ModelError::Encoder(config.arch.name));
        }
        if options.gpu.is_some() && config.arch.graph != crate::arch::Graph::Bitnet {
            return Err(ModelError::NotOnGpu(
                format!("architecture `{}`", config.arch.name),
                "the GPU backend runs BitNet models only (bitnet-b1.58, bitnet-25, bitnet); \
                 llama-family models have no GPU kernels yet"
                    .into(),
            ));
        }
        let output_norm = weights::norm(file, "output_norm.weight", config.n_embd)?;
        const OUTPUT_NORM_BIAS: &str = "output_norm.bias";
        // Only a final LayerNorm has a bias; anywhere else the tensor is refused as unused.
        let output_norm_b = match file.tensor(OUTPUT_NORM_BIAS) {
            Some(_) if config.layer_norm => {
                Some(weights::norm(file, OUTPUT_NORM_BIAS, config.n_embd)?)
            }
            _ => None,
        };
        const EMBD: &str = "token_embd.weight";
        let embd = file
            .tensor(EMBD)
            .ok_or_else(|| ModelError::MissingTensor(EMBD.to_string()))?;
        let tied = file.tensor("output.weight").is_none();
        let head = if tied {
            weights::check_dims(
                EMBD,
                &embd.dims,
                &[config.n_embd as u64, config.n_vocab as u64],
            )?;
            // Piece by piece, each piece's mapped pages released once converted: the head (the
            // largest tensor) is never resident twice.
            let matrix = DenseMatrix::dequantized_releasing(
                EMBD,
                embd.ggml_type,
                file.tensor_data(embd),
                config.n_vocab,
                config.n_embd,
                |done| file.release_tensor_bytes(embd, done),
            )?;
            Linear::Dense {
                matrix,
                scale: None,
            }
        } else {
            Linear::load(file, "output.weight", config.n_embd, config.n_vocab, false)?
        };
        let head = match (options.head, head) {
            (HeadFormat::Q8_0 | HeadFormat::Q6K, Linear::Dense { .. }) if options.gpu.is_some() => {
                return Err(ModelError::NotOnGpu(
                    format!("a {} head", options.head.name()),
                    format!(
                        "the GPU runs the head in F16 (leave out --head {})",
                        options.head.name()
                    ),
                ))
            }
            (HeadFormat::Q8_0, Linear::Dense { matrix, scale }) => Linear::Dense {
                matrix: matrix
                    .to_q8_0()
                    .map_err(|e| ModelError::Kernel(e.to_string()))?,
                scale,
            },
            (HeadFormat::Q6K, Linear::Dense { matrix, scale }) => {
                let source = file.tensor(if tied { EMBD } else { "output.weight" });
                let matrix = match source {
                    // Stored as Q6_K in whole super-blocks: the file's blocks as they are.
                    Some(t)
                        if t.ggml_type == GgmlType::Q6K
                            && config.n_embd.is_multiple_of(bitnet_kernels::q6k::Q6K_BLOCK) =>
                    {
                        DenseMatrix::from_q6_k(
                            config.n_vocab,
                            config.n_embd,
                            file.tensor_data(t).to_vec(),
                        )?
                    }
                    _ => matrix.to_q6_k(bitnet_kernels::pool::default_threads())?,
                };
                Linear::Dense { matrix, scale }
            }
            (_, head) => head,
        };
        let head = match (&options.gpu, head) {
            (None, head) => head,
            (
                Some(gpu),
                Linear::Dense {
                    matrix:
                        DenseMatrix {
                            rows,
                            cols,
                            data: crate::dense::DenseData::F16(w),
                        },
                    scale: None,
                },
            ) => Linear::GpuF16 {
                matrix: bitnet_gpu::GpuF16Matrix::new(gpu, rows, cols, &w)?,
            },
            (Some(_), _) => {
                return Err(ModelError::NotOnGpu(
                    "the output head".into(),
                    "the GPU head needs F16 weights".into(),
                ))
            }
        };
        // A tied head that holds the table's exact values serves the lookups too.
        let shared = tied
            && matches!(&head, Linear::Dense { matrix, .. } if matrix.serves_lookups_of(embd.ggml_type));
        let embedding = if shared {
            None
        } else {
            Some(Embedding::load(file, &config)?)
        };
        // The head and table are copied out first, their mapped pages released, then the
        // layers: the mapped file and the loaded weights are never both resident in full.
        for name in [EMBD, "output.weight"] {
            if let Some(t) = file.tensor(name) {
                file.release_tensor_pages(t);
            }
        }
        let mut used: std::collections::HashSet<String> =
            [EMBD, "output_norm.weight", "output.weight"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        if output_norm_b.is_some() {
            used.insert(OUTPUT_NORM_BIAS.to_string());
        }
        const POSITIONS: &str = "position_embd.weight";
        let position_embd = if models::has_position_embeddings(config.arch.graph) {
            used.insert(POSITIONS.to_string());
            Some(Embedding::load_table(
                file,
                POSITIONS,
                config.n_embd,
                config.n_ctx_train,
            )?)
        } else {
            None
        };
        let blocks = load_blocks(file, &config, options.gpu.clone())?;
        used.extend(blocks.asked);
        let (layers, plain_layers) = (blocks.gated, blocks.plain);
        if config.rope_scaling.is_some() {
            used.extend(crate::config::LONG_ROPE_TENSORS.map(String::from));
        }
        weights::check_no_unused_tensors(file, &config, &used)?;
        options.cache_type.check(&config)?;
        let mut model = Model {
            cache_type: options.cache_type,
            config,
            embedding,
            layers,
            plain_layers,
            position_embd,
            output_norm,
            output_norm_b,
            head,
            gpu: options.gpu,
            two_bit_copy_bytes: 0,
        };
        if options.batched_decode {
            // Unpacked on every core, a share of the matrices each (as the layers load).
            let mut matrices: Vec<&mut bitnet_kernels::TernaryMatrix> = model
                .block_linears_mut()
                .filter_map(|linear| match linear {
                    Linear::Ternary { matrix, .. } => Some(matrix),
                    _ => None,
                })
                .collect();
            let threads = bitnet_kernels::pool::default_threads().max(1);
            let share = matrices.len().div_ceil(threads).max(1);
            std::thread::scope(|scope| {
                for share in matrices.chunks_mut(share) {
                    scope.spawn(move || share.iter_mut().for_each(|m| m.keep_two_bit_copy()));
                }
            });
            let bytes = matrices.iter().map(|m| m.two_bit_copy_len()).sum();
            model.two_bit_copy_bytes = bytes;
        }
        Ok(model)
    }

    /// Every linear of the blocks (experts included; the head is not a block's).
    fn block_linears_mut(&mut self) -> impl Iterator<Item = &mut Linear> {
        let gated = self.layers.iter_mut().flat_map(|l| {
            let moe = l.moe.iter_mut().flat_map(|moe| {
                std::iter::once(&mut moe.router).chain(moe.experts.iter_mut().flatten())
            });
            [
                &mut l.wq,
                &mut l.wk,
                &mut l.wv,
                &mut l.wo,
                &mut l.ffn_gate,
                &mut l.ffn_up,
                &mut l.ffn_down,
            ]
            .into_iter()
            .chain(moe)
        });
        let plain = self.plain_layers.iter_mut().flat_map(|l| {
            [
                &mut l.wq,
                &mut l.wk,
                &mut l.wv,
                &mut l.wo,
                &mut l.ffn_up,
                &mut l.ffn_down,
            ]
        });
        gated.chain(plain)
    }

    /// Bytes of the 2-bit copies [`LoadOptions::batched_decode`] kept (0 without).
    pub fn two_bit_copy_bytes(&self) -> usize {
        self.two_bit_copy_bytes
    }

    /// The GPU the BitLinears and the head run on, if the model was loaded onto one.
    pub fn gpu(&self) -> Option<&bitnet_gpu::GpuContext> {
        self.gpu.as_deref()
    }

    /// The configuration read from the file.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Vocabulary size (width of a logits row).
    pub fn n_vocab(&self) -> usize {
        self.config.n_vocab
    }

    /// A fresh KV cache for `capacity` positions, of the element type the model was loaded
    /// with (F16 unless [`LoadOptions::cache_type`] said otherwise).
    pub fn new_cache(&self, capacity: usize) -> KvCache {
        KvCache::build(&self.config, capacity, self.cache_type)
    }

    /// The element type of [`Model::new_cache`]'s caches.
    pub fn cache_type(&self) -> KvPrecision {
        self.cache_type
    }

    /// A fresh KV cache of the given element type (refused when the model's shape does not
    /// allow it).
    pub fn new_cache_with(
        &self,
        capacity: usize,
        precision: KvPrecision,
    ) -> Result<KvCache, ModelError> {
        KvCache::with_precision(&self.config, capacity, precision)
    }

    /// Writes the embedding of token `id` into `out` (`n_embd` values).
    pub fn embed(&self, id: u32, out: &mut [f32]) -> Result<(), ModelError> {
        match (&self.embedding, &self.head) {
            (Some(e), _) => e.row(id, out),
            (None, Linear::Dense { matrix, .. }) => {
                if id as usize >= self.config.n_vocab {
                    return Err(ModelError::TokenOutOfRange {
                        id,
                        vocab: self.config.n_vocab,
                    });
                }
                matrix.row_into(id as usize, out);
                Ok(())
            }
            (None, Linear::Ternary { .. } | Linear::GpuTernary { .. } | Linear::GpuF16 { .. }) => {
                unreachable!("the embedding is shared only with a dense head")
            }
        }
    }

    /// The final norm's weights.
    pub fn output_norm(&self) -> &[f32] {
        &self.output_norm
    }

    /// The LM head (the dequantized embedding when tied).
    pub fn head(&self) -> &Linear {
        &self.head
    }

    /// The layers (weights of each block) of a gated-FFN architecture; empty for a plain-FFN
    /// one (StarCoder2), whose blocks are [`PlainLayer`]s.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Runs `tokens` at positions `cache.len()..`, appending their keys and values to `cache`,
    /// and returns the logits of the tokens `logits_from..tokens.len()` (row-major,
    /// `n_vocab` per row). `logits_from = tokens.len() - 1` gives only the last token's logits.
    ///
    /// A one-token call follows bitnet.cpp's decode-path roundings (see the module docs).
    pub fn forward(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        logits_from: usize,
        pool: &ThreadPool,
    ) -> Result<Vec<f32>, ModelError> {
        let mut segments = [BatchSegment {
            tokens,
            cache,
            logits_from,
        }];
        Ok(self
            .forward_batch(&mut segments, pool)?
            .pop()
            .unwrap_or_default())
    }

    /// Runs several sequences in one pass: every segment's tokens go through the weights
    /// together (one matrix product per weight for all rows), while RoPE, the KV cache and
    /// attention stay per segment. Each segment gets exactly the logits [`Model::forward`] would
    /// give it alone, bit for bit: the same roundings (a one-token segment follows the decode
    /// path) and kernels whose every sum has one order whatever the batch size.
    ///
    /// Returns each segment's logits (rows `logits_from..tokens.len()`), in segment order.
    /// Nothing is written to any cache unless every segment fits.
    pub fn forward_batch(
        &self,
        segments: &mut [BatchSegment<'_>],
        pool: &ThreadPool,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let cfg = &self.config;
        let mut pass = Pass::plan(cfg, pool, segments)?;
        let mut x = self.embed_batch(&pass)?;
        models::run_blocks(&mut pass, &self.layers, &self.plain_layers, &mut x)?;
        pass.commit();
        self.head_logits(&pass, &x)
    }

    /// The residual stream's start: each row's token embedding (scaled where the graph says).
    fn embed_batch(&self, pass: &Pass<'_, '_>) -> Result<Vec<f32>, ModelError> {
        let d = self.config.n_embd;
        let mut x = vec![0.0f32; pass.n * d];
        for (row, &(s, i)) in x.chunks_exact_mut(d).zip(&pass.rows) {
            self.embed(pass.segments[s].tokens[i], row)?;
        }
        if models::scales_embeddings(self.config.arch.graph) {
            let s = (d as f32).sqrt();
            x.iter_mut().for_each(|v| *v *= s);
        }
        if let Some(table) = &self.position_embd {
            let mut pos_row = vec![0.0f32; d];
            for (row, &(s, i)) in x.chunks_exact_mut(d).zip(&pass.rows) {
                let pos = pass.plans[s].pos0 + i;
                if pos >= table.rows() {
                    return Err(ModelError::PositionOutOfRange {
                        pos,
                        max: table.rows(),
                    });
                }
                table.row(pos as u32, &mut pos_row)?;
                row.iter_mut().zip(&pos_row).for_each(|(a, b)| *a += b);
            }
        }
        Ok(x)
    }

    /// The final norm and the LM head over every segment's requested rows (one product for
    /// all), split back into each segment's logits.
    fn head_logits(&self, pass: &Pass<'_, '_>, x: &[f32]) -> Result<Vec<Vec<f32>>, ModelError> {
        let cfg = &self.config;
        let d = cfg.n_embd;
        let mut h = Vec::new();
        let mut counts = Vec::with_capacity(pass.segments.len());
        for (s, (seg, plan)) in pass.segments.iter().zip(&pass.plans).enumerate() {
            let r0 = pass.first_row[s];
            let from = seg.logits_from.min(seg.tokens.len());
            let start = h.len();
            h.extend_from_slice(&x[(r0 + from) * d..(r0 + seg.tokens.len()) * d]);
            if cfg.layer_norm {
                ops::layer_norm_rows_in_place(
                    &mut h[start..],
                    &self.output_norm,
                    self.output_norm_b.as_deref(),
                    cfg.rms_eps,
                );
            } else {
                ops::rms_norm_rows_in_place(&mut h[start..], &self.output_norm, cfg.rms_eps);
            }
            if plan.rounding.p_f16 {
                bitnet_kernels::f16::round_to_f16_in_place(&mut h[start..]);
            }
            counts.push(seg.tokens.len() - from);
        }
        let n_out = h.len() / d;
        let mut logits = vec![0.0f32; n_out * cfg.n_vocab];
        if n_out > 0 {
            self.head.forward(&h, n_out, &mut logits, pass.pool)?;
            if let Some(scale) = cfg.logit_scale {
                logits.iter_mut().for_each(|v| *v *= scale);
            }
            if let Some(cap) = cfg.final_logit_softcap {
                ops::soft_cap(&mut logits, cap);
            }
        }
        if counts.len() == 1 {
            return Ok(vec![logits]); // one segment: its rows are all of them
        }
        let mut out = Vec::with_capacity(counts.len());
        let mut rest = logits.as_slice();
        for count in counts {
            let (mine, tail) = rest.split_at(count * cfg.n_vocab);
            out.push(mine.to_vec());
            rest = tail;
        }
        Ok(out)
    }
}

/// A model's blocks: the gated ones, the plain-FFN ones (one of the two is empty), and every
/// tensor name asked for while loading them.
pub(crate) struct LoadedBlocks {
    pub gated: Vec<Layer>,
    pub plain: Vec<PlainLayer>,
    pub asked: Vec<String>,
}

/// Loads every block's weights as the architecture declares them, the layers in parallel
/// (decoding and repacking them is the slow part of loading), each layer's mapped pages released
/// once copied out; the BitLinears on `gpu` when one is given.
pub(crate) fn load_blocks(
    file: &GgufFile,
    config: &ModelConfig,
    gpu: Option<std::sync::Arc<bitnet_gpu::GpuContext>>,
) -> Result<LoadedBlocks, ModelError> {
    type Loaded = Result<(BlockWeights, Vec<String>), ModelError>;
    let slots: Vec<std::sync::Mutex<Option<Loaded>>> = (0..config.n_layer)
        .map(|_| std::sync::Mutex::new(None))
        .collect();
    let linear_scales = models::has_linear_scales(config);
    ThreadPool::global().run(config.n_layer, &|il| {
        let prefix = format!("blk.{il}.");
        let tensors = || {
            file.tensors()
                .iter()
                .filter(|t| t.name.starts_with(&prefix))
        };
        tensors().for_each(|t| file.prefetch_tensor_pages(t));
        let tensors_of_layer =
            LayerTensors::new(file, config, il, linear_scales).on_gpu(gpu.clone());
        let layer = models::load_layer(&tensors_of_layer)
            .map(|layer| (layer, tensors_of_layer.into_asked()));
        // The layer's weights are copied out: its mapped pages need not stay resident.
        tensors().for_each(|t| file.release_tensor_pages(t));
        *slots[il].lock().unwrap_or_else(|p| p.into_inner()) = Some(layer);
    });
    let (mut layers, mut plain_layers, mut asked) = (Vec::new(), Vec::new(), Vec::new());
    for slot in slots {
        let (layer, names) = slot
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .expect("the pool runs every layer")?;
        match layer {
            BlockWeights::Gated(l) => layers.push(*l),
            BlockWeights::Plain(l) => plain_layers.push(*l),
        }
        asked.extend(names);
    }
    Ok(LoadedBlocks {
        gated: layers,
        plain: plain_layers,
        asked,
    })
}
