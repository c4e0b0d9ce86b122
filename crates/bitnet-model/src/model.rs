//! The model: weights loaded from a GGUF file according to its architecture's declaration, and
//! the forward pass over a batch of tokens (prefill) or one token (decode) with a KV cache.
//!
//! Numerical conventions follow bitnet.cpp's measured behaviour (oracle README §5) with the
//! default F16 cache: K and V are cached as F16, Q is rounded to F16 for `q·k`, softmax in f32
//! with an f64 sum; a one-token call (the decode path) additionally rounds the attention
//! probabilities and the LM-head input to F16, as bitnet.cpp's generation path does, while a
//! batch keeps both in f32. With an F32 cache ([`KvPrecision::F32`]) nothing is rounded to F16.

use std::path::Path;

use bitnet_gguf::GgufFile;
use bitnet_kernels::attention::{attention_scores, attention_values, CachedRows, KvData};
use bitnet_kernels::ThreadPool;

use crate::config::ModelConfig;
use crate::dense::DenseMatrix;
use crate::error::ModelError;
use crate::kv_cache::{KvCache, KvPrecision};
use crate::linear::Linear;
use crate::ops;
use crate::weights::{self, Embedding, Layer};

/// Which attention operands are rounded to F16 (see the module docs).
#[derive(Debug, Clone, Copy)]
struct AttentionRounding {
    q_f16: bool,
    p_f16: bool,
}

/// A loaded model.
pub struct Model {
    config: ModelConfig,
    /// The token embedding table; `None` when the tied F16 head holds the same values and
    /// rows are read from it (the table is then held once, not twice).
    embedding: Option<Embedding>,
    layers: Vec<Layer>,
    output_norm: Vec<f32>,
    head: Linear,
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

/// Where a segment starts and which roundings its attention follows.
struct SegmentPlan {
    pos0: usize,
    rounding: AttentionRounding,
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
}

impl HeadFormat {
    /// Parses a `--head` value: `f16` (as stored) or `q8_0`.
    pub fn from_name(name: &str) -> Option<HeadFormat> {
        match name {
            "f16" | "as-stored" => Some(HeadFormat::AsStored),
            "q8_0" => Some(HeadFormat::Q8_0),
            _ => None,
        }
    }
}

/// Options for [`Model::load_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    pub head: HeadFormat,
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
        let output_norm = weights::norm(file, "output_norm.weight", config.n_embd)?;
        weights::check_no_unused_tensors(file, &config)?;
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
            (HeadFormat::Q8_0, Linear::Dense { matrix, scale }) => Linear::Dense {
                matrix: matrix
                    .to_q8_0()
                    .map_err(|e| ModelError::Kernel(e.to_string()))?,
                scale,
            },
            (_, head) => head,
        };
        // A tied head that holds the table's exact values serves the lookups too.
        let shared = tied
            && matches!(&head, Linear::Dense { matrix, .. } if matrix.is_exact_copy_of(embd.ggml_type));
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
        // Decoding and repacking the layers is the slow part of loading: spread it over the cores.
        let slots: Vec<std::sync::Mutex<Option<Result<Layer, ModelError>>>> = (0..config.n_layer)
            .map(|_| std::sync::Mutex::new(None))
            .collect();
        ThreadPool::global().run(config.n_layer, &|il| {
            let prefix = format!("blk.{il}.");
            let tensors = || {
                file.tensors()
                    .iter()
                    .filter(|t| t.name.starts_with(&prefix))
            };
            tensors().for_each(|t| file.prefetch_tensor_pages(t));
            let layer = Layer::load(file, &config, il);
            // The layer's weights are copied out: its mapped pages need not stay resident.
            tensors().for_each(|t| file.release_tensor_pages(t));
            *slots[il].lock().unwrap_or_else(|p| p.into_inner()) = Some(layer);
        });
        let layers = slots
            .into_iter()
            .map(|slot| {
                slot.into_inner()
                    .unwrap_or_else(|p| p.into_inner())
                    .expect("the pool runs every layer")
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Model {
            config,
            embedding,
            layers,
            output_norm,
            head,
        })
    }

    /// The configuration read from the file.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Vocabulary size (width of a logits row).
    pub fn n_vocab(&self) -> usize {
        self.config.n_vocab
    }

    /// A fresh F16 KV cache for `capacity` positions.
    pub fn new_cache(&self, capacity: usize) -> KvCache {
        KvCache::new(&self.config, capacity)
    }

    /// A fresh KV cache of the given element type.
    pub fn new_cache_with(&self, capacity: usize, precision: KvPrecision) -> KvCache {
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
            (None, Linear::Ternary { .. }) => {
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

    /// The layers (weights of each block).
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
        for seg in segments.iter() {
            if seg.tokens.is_empty() {
                return Err(ModelError::EmptyBatch);
            }
            seg.cache.check_shape(cfg)?;
            seg.cache.ensure_room(seg.tokens.len())?;
        }
        if segments.is_empty() {
            return Err(ModelError::EmptyBatch);
        }
        // Row `r` of the batch is token `i` of segment `s`.
        let rows: Vec<(usize, usize)> = segments
            .iter()
            .enumerate()
            .flat_map(|(s, seg)| (0..seg.tokens.len()).map(move |i| (s, i)))
            .collect();
        let first_row: Vec<usize> = segments
            .iter()
            .scan(0, |acc, seg| {
                let start = *acc;
                *acc += seg.tokens.len();
                Some(start)
            })
            .collect();
        let plans: Vec<SegmentPlan> = segments
            .iter()
            .map(|seg| {
                let f16_rules = seg.cache.precision() == KvPrecision::F16;
                SegmentPlan {
                    pos0: seg.cache.len(),
                    rounding: AttentionRounding {
                        q_f16: f16_rules,
                        p_f16: f16_rules && seg.tokens.len() == 1,
                    },
                }
            })
            .collect();
        let n = rows.len();
        let d = cfg.n_embd;

        let mut x = vec![0.0f32; n * d];
        for (row, &(s, i)) in x.chunks_exact_mut(d).zip(&rows) {
            self.embed(segments[s].tokens[i], row)?;
        }
        if cfg.arch.scale_embeddings {
            let s = (d as f32).sqrt();
            x.iter_mut().for_each(|v| *v *= s);
        }

        let mut normed = vec![0.0f32; n * d];
        let mut q = vec![0.0f32; n * cfg.q_dim()];
        let mut k = vec![0.0f32; n * cfg.kv_dim()];
        let mut v = vec![0.0f32; n * cfg.kv_dim()];
        let mut attn = vec![0.0f32; n * cfg.q_dim()];
        let mut proj = vec![0.0f32; n * d];
        let mut gate = vec![0.0f32; n * cfg.n_ff];
        let mut up = vec![0.0f32; n * cfg.n_ff];
        let (q_dim, kv_dim) = (cfg.q_dim(), cfg.kv_dim());

        for (il, layer) in self.layers.iter().enumerate() {
            // Attention block.
            normed.copy_from_slice(&x);
            ops::rms_norm_rows_in_place(&mut normed, &layer.attn_norm, cfg.rms_eps);
            layer.wq.forward(&normed, n, &mut q, pool)?;
            layer.wk.forward(&normed, n, &mut k, pool)?;
            layer.wv.forward(&normed, n, &mut v, pool)?;
            if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
                ops::rms_norm_rows_in_place(&mut q, qn, cfg.rms_eps);
                ops::rms_norm_rows_in_place(&mut k, kn, cfg.rms_eps);
            }
            for ((seg, plan), &r0) in segments.iter_mut().zip(&plans).zip(&first_row) {
                let rows_of = r0..r0 + seg.tokens.len();
                let (qs, ks) = (
                    &mut q[rows_of.start * q_dim..rows_of.end * q_dim],
                    &mut k[rows_of.start * kv_dim..rows_of.end * kv_dim],
                );
                self.apply_rope(il, plan.pos0, qs, ks);
                seg.cache
                    .store(il, ks, &v[rows_of.start * kv_dim..rows_of.end * kv_dim]);
            }
            let score_scale = if cfg.arch.scale_q_before_attention {
                q.iter_mut().for_each(|v| *v *= cfg.attention_scale);
                1.0
            } else {
                cfg.attention_scale
            };
            let kv: Vec<_> = segments.iter().map(|seg| seg.cache.layer(il)).collect();
            self.attention(il, &q, &rows, &plans, &kv, score_scale, &mut attn, pool);
            if let Some(sub) = &layer.attn_sub_norm {
                ops::rms_norm_rows_in_place(&mut attn, sub, cfg.rms_eps);
            }
            layer.wo.forward(&attn, n, &mut proj, pool)?;
            if let Some(post) = &layer.attn_post_norm {
                ops::rms_norm_rows_in_place(&mut proj, post, cfg.rms_eps);
            }
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);

            // Feed-forward block.
            normed.copy_from_slice(&x);
            ops::rms_norm_rows_in_place(&mut normed, &layer.ffn_norm, cfg.rms_eps);
            layer.ffn_gate.forward(&normed, n, &mut gate, pool)?;
            layer.ffn_up.forward(&normed, n, &mut up, pool)?;
            ops::gated_activation(cfg.activation, &mut gate, &up);
            if let Some(sub) = &layer.ffn_sub_norm {
                ops::rms_norm_rows_in_place(&mut gate, sub, cfg.rms_eps);
            }
            layer.ffn_down.forward(&gate, n, &mut proj, pool)?;
            if let Some(post) = &layer.ffn_post_norm {
                ops::rms_norm_rows_in_place(&mut proj, post, cfg.rms_eps);
            }
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);
        }
        for seg in segments.iter_mut() {
            seg.cache.advance(seg.tokens.len());
        }

        // The head runs once over every segment's requested rows.
        let mut h = Vec::new();
        let mut counts = Vec::with_capacity(segments.len());
        for ((seg, plan), &r0) in segments.iter().zip(&plans).zip(&first_row) {
            let from = seg.logits_from.min(seg.tokens.len());
            let start = h.len();
            h.extend_from_slice(&x[(r0 + from) * d..(r0 + seg.tokens.len()) * d]);
            ops::rms_norm_rows_in_place(&mut h[start..], &self.output_norm, cfg.rms_eps);
            if plan.rounding.p_f16 {
                ops::round_to_f16(&mut h[start..]);
            }
            counts.push(seg.tokens.len() - from);
        }
        let n_out = h.len() / d;
        let mut logits = vec![0.0f32; n_out * cfg.n_vocab];
        if n_out > 0 {
            self.head.forward(&h, n_out, &mut logits, pool)?;
            if let Some(cap) = cfg.final_logit_softcap {
                ops::soft_cap(&mut logits, cap);
            }
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

    /// RoPE on the Q and K rows of a batch starting at position `pos0`.
    fn apply_rope(&self, il: usize, pos0: usize, q: &mut [f32], k: &mut [f32]) {
        let cfg = &self.config;
        let half = cfg.n_rot / 2;
        let mut cos = vec![0.0f32; half];
        let mut sin = vec![0.0f32; half];
        let base = cfg.rope_base_of(il);
        for (i, (qr, kr)) in q
            .chunks_exact_mut(cfg.q_dim())
            .zip(k.chunks_exact_mut(cfg.kv_dim()))
            .enumerate()
        {
            ops::rope_table(pos0 + i, cfg.n_rot, base, &mut cos, &mut sin);
            ops::rope_apply(qr, cfg.head_dim, cfg.arch.rope, &cos, &sin);
            ops::rope_apply(kr, cfg.head_dim, cfg.arch.rope, &cos, &sin);
        }
    }

    /// Causal (optionally sliding-window) multi-head attention with grouped KV heads.
    /// `q` holds the batch's queries, row `r` being token `rows[r].1` of segment `rows[r].0`,
    /// whose cache layer (keys, values; positions `0..pos0 + its length` filled) is `kv[segment]`.
    /// Writes `n × q_dim` into `out`.
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        il: usize,
        q: &[f32],
        rows: &[(usize, usize)],
        plans: &[SegmentPlan],
        kv: &[(KvData<'_>, KvData<'_>)],
        score_scale: f32,
        out: &mut [f32],
        pool: &ThreadPool,
    ) {
        let cfg = &self.config;
        let hd = cfg.head_dim;
        let (q_dim, kv_dim) = (cfg.q_dim(), cfg.kv_dim());
        let group = cfg.n_head / cfg.n_head_kv;
        let window = if cfg.swa_layers[il] {
            cfg.sliding_window
        } else {
            None
        };
        // One chunk per token (all its heads), handed out dynamically: later tokens attend to
        // more positions, so a static split would leave one thread with most of the work.
        let out_rows: Vec<std::sync::Mutex<&mut [f32]>> = out
            .chunks_exact_mut(q_dim)
            .map(std::sync::Mutex::new)
            .collect();
        pool.run(rows.len(), &|r| {
            let mut row = out_rows[r].lock().unwrap_or_else(|p| p.into_inner());
            let (s, i) = rows[r];
            let (plan, (k_all, v_all)) = (&plans[s], kv[s]);
            let rounding = plan.rounding;
            let p = plan.pos0 + i;
            let lo = match window {
                Some(w) if p + 1 > w => p + 1 - w,
                _ => 0,
            };
            // The query heads of one KV group are done together, so each cached key and value
            // row is loaded once per group; every dot and sum is the same arithmetic as one head
            // at a time.
            let span = p + 1 - lo;
            let mut scores = vec![0.0f32; group * span];
            let mut qs = vec![0.0f32; group * hd];
            for g in 0..cfg.n_head_kv {
                let heads = g * group..(g + 1) * group;
                qs.copy_from_slice(&q[r * q_dim + heads.start * hd..r * q_dim + heads.end * hd]);
                if rounding.q_f16 {
                    ops::round_to_f16(&mut qs);
                }
                let rows_of = |data| CachedRows {
                    data,
                    stride: kv_dim,
                    offset: g * hd,
                    head_dim: hd,
                };
                attention_scores(&qs, rows_of(k_all), lo..p + 1, score_scale, &mut scores);
                for sc in scores.chunks_exact_mut(span) {
                    if let Some(cap) = cfg.attn_logit_softcap {
                        ops::soft_cap(sc, cap);
                    }
                    ops::softmax_in_place(sc);
                    if rounding.p_f16 {
                        ops::round_to_f16(sc);
                    }
                }
                let o_group = &mut row[heads.start * hd..heads.end * hd];
                attention_values(&scores, rows_of(v_all), lo..p + 1, o_group);
            }
        });
    }
}
