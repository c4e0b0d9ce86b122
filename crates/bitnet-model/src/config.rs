//! The model configuration read from GGUF metadata (`<arch>.*` keys) and checked for
//! consistency before any tensor is touched.

use bitnet_gguf::GgufFile;

use crate::arch::{self, Activation, ArchSpec};
use crate::error::ModelError;
use crate::models;

/// Hyper-parameters of one model, as the forward pass uses them.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub arch: &'static ArchSpec,
    pub n_vocab: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    /// Width of one query/key head (`<arch>.attention.key_length`, default `n_embd / n_head`).
    pub head_dim: usize,
    /// Number of leading elements of each head that RoPE rotates.
    pub n_rot: usize,
    /// The norms' epsilon (`attention.layer_norm_rms_epsilon`, or `attention.layer_norm_epsilon`
    /// for the LayerNorm architectures).
    pub rms_eps: f32,
    pub rope_base: f32,
    /// Training context length (informational; the KV cache size is chosen by the caller).
    pub n_ctx_train: usize,
    pub activation: Activation,
    /// Sliding-window size for the layers that use one.
    pub sliding_window: Option<usize>,
    /// Per layer: whether it attends within the sliding window only.
    pub swa_layers: Vec<bool>,
    /// RoPE base of the sliding-window layers, when it differs from `rope_base`.
    pub swa_rope_base: Option<f32>,
    /// LongRoPE frequency factors (Phi-3), when the file has them.
    pub rope_scaling: Option<LongRope>,
    /// Multiplier applied to the softmax input `q·k` (or to Q first, see `ArchSpec`).
    pub attention_scale: f32,
    /// Multiplier of the final logits (`<arch>.logit_scale`, Command-R).
    pub logit_scale: Option<f32>,
    /// ALiBi (MPT): the largest head's bias slope exponent (`attention.max_alibi_bias`); scores
    /// get `-slope_h · (query position − key position)`.
    pub alibi_max_bias: Option<f32>,
    /// Q/K/V clamped to `±c` after their projection (`attention.clamp_kqv`, MPT).
    pub clamp_kqv: Option<f32>,
    /// Mixture-of-experts hyper-parameters (DeepSeek), when the architecture has experts.
    pub moe: Option<MoeConfig>,
    /// Whether the norms are LayerNorm (mean and variance) rather than RMSNorm.
    pub layer_norm: bool,
    /// `tanh` soft-capping of the final logits (`<arch>.final_logit_softcapping`).
    pub final_logit_softcap: Option<f32>,
    /// `tanh` soft-capping of attention scores (`<arch>.attn_logit_softcapping`).
    pub attn_logit_softcap: Option<f32>,
    /// Whether a token attends only to earlier positions (`<arch>.attention.causal`; decoders:
    /// yes, encoders such as BERT: no).
    pub causal: bool,
    /// How an encoder's token states become one vector (`<arch>.pooling_type`), when the file
    /// says.
    pub pooling: Option<crate::pooling::Pooling>,
}

impl ModelConfig {
    /// ALiBi's slope of query head `h` (ggml's: `m0^(h+1)` for the first `2^⌊log2 n_head⌋`
    /// heads, then `m1^(2(h − that) + 1)`).
    pub fn alibi_slope(&self, max_bias: f32, h: usize) -> f32 {
        let n_head_log2 = 1usize << (self.n_head as f32).log2().floor() as u32;
        let m0 = 2.0f32.powf(-max_bias / n_head_log2 as f32);
        let m1 = 2.0f32.powf(-(max_bias / 2.0) / n_head_log2 as f32);
        if h < n_head_log2 {
            m0.powi(h as i32 + 1)
        } else {
            m1.powi(2 * (h - n_head_log2) as i32 + 1)
        }
    }

    /// Reads and validates the configuration. `n_vocab` is taken from the embedding tensor.
    pub fn from_gguf(file: &GgufFile) -> Result<Self, ModelError> {
        let arch_name = file
            .architecture()
            .ok_or_else(|| ModelError::MissingKey("general.architecture".into()))?;
        let has_projection_input_norms = file.tensors().iter().any(|t| {
            t.name.starts_with("blk.") && t.name.ends_with(arch::PROJECTION_INPUT_NORM_SUFFIX)
        });
        let arch = arch::variant(arch::lookup(arch_name)?, has_projection_input_norms)?;
        let key = |k: &str| format!("{}.{k}", arch.name);
        let req_u64 = |k: &str| -> Result<usize, ModelError> {
            file.get_u64(&key(k))
                .map(|v| v as usize)
                .ok_or_else(|| ModelError::MissingKey(key(k)))
        };
        let n_embd = req_u64("embedding_length")?;
        let n_layer = req_u64("block_count")?;
        let n_ff = req_u64("feed_forward_length")?;
        let n_head = req_u64("attention.head_count")?;
        let n_head_kv = file
            .get_u64(&key("attention.head_count_kv"))
            .map(|v| v as usize)
            .unwrap_or(n_head);
        if n_embd == 0 || n_layer == 0 || n_ff == 0 || n_head == 0 || n_head_kv == 0 {
            return Err(ModelError::InvalidConfig(
                "embedding length, block count, FFN length and head counts must be non-zero".into(),
            ));
        }
        if !n_head.is_multiple_of(n_head_kv) {
            return Err(ModelError::InvalidConfig(format!(
                "{n_head} query heads are not a multiple of {n_head_kv} KV heads"
            )));
        }
        let head_dim = match file.get_u64(&key("attention.key_length")) {
            Some(v) => v as usize,
            None => {
                if !n_embd.is_multiple_of(n_head) {
                    return Err(ModelError::InvalidConfig(format!(
                        "embedding length {n_embd} is not a multiple of {n_head} heads"
                    )));
                }
                n_embd / n_head
            }
        };
        if let Some(v) = file.get_u64(&key("attention.value_length")) {
            if v as usize != head_dim {
                return Err(ModelError::InvalidConfig(format!(
                    "value head width {v} differs from key head width {head_dim}"
                )));
            }
        }
        let n_rot = file
            .get_u64(&key("rope.dimension_count"))
            .map(|v| v as usize)
            .unwrap_or(head_dim);
        if n_rot > head_dim || !n_rot.is_multiple_of(2) || !head_dim.is_multiple_of(2) {
            return Err(ModelError::InvalidConfig(format!(
                "RoPE dimension {n_rot} must be even and at most the head width {head_dim}"
            )));
        }
        // LayerNorm architectures (Command-R) give `layer_norm_epsilon` instead.
        let rms_eps = file
            .get_f32(&key("attention.layer_norm_rms_epsilon"))
            .or_else(|| file.get_f32(&key("attention.layer_norm_epsilon")))
            .ok_or_else(|| ModelError::MissingKey(key("attention.layer_norm_rms_epsilon")))?;
        let rope_base = file.get_f32(&key("rope.freq_base")).unwrap_or(10_000.0);
        if let Some(scaling) = file.get_str(&key("rope.scaling.type")) {
            let factor = file.get_f32(&key("rope.scaling.factor")).unwrap_or(1.0);
            if scaling != "none" && factor != 1.0 {
                return Err(ModelError::InvalidConfig(format!(
                    "RoPE scaling `{scaling}` with factor {factor} is not implemented"
                )));
            }
        }
        let n_ctx_train = file
            .get_u64(&key("context_length"))
            .map(|v| v as usize)
            .unwrap_or(0);
        let activation = match file.get_str(&key("hidden_activation")) {
            Some(name) => Activation::from_name(name).ok_or_else(|| {
                ModelError::InvalidConfig(format!("unknown hidden activation `{name}`"))
            })?,
            None => arch.activation,
        };
        let softcap = |k: &str| file.get_f32(&key(k)).filter(|v| *v > 0.0);
        let final_logit_softcap = softcap("final_logit_softcapping");
        let attn_logit_softcap = softcap("attn_logit_softcapping");
        let attention_scale = 1.0 / (head_dim as f32).sqrt();
        let n_vocab = file
            .tensor("token_embd.weight")
            .ok_or_else(|| ModelError::MissingTensor("token_embd.weight".into()))?
            .dims
            .get(1)
            .copied()
            .unwrap_or(0) as usize;
        if n_vocab == 0 {
            return Err(ModelError::InvalidConfig(
                "token_embd.weight has no vocabulary dimension".into(),
            ));
        }
        let mut config = ModelConfig {
            arch,
            n_vocab,
            n_embd,
            n_layer,
            n_ff,
            n_head,
            n_head_kv,
            head_dim,
            n_rot,
            rms_eps,
            rope_base,
            n_ctx_train,
            activation,
            sliding_window: None,
            swa_layers: vec![false; n_layer],
            swa_rope_base: None,
            rope_scaling: None,
            logit_scale: None,
            moe: None,
            alibi_max_bias: None,
            clamp_kqv: None,
            layer_norm: false,
            attention_scale,
            final_logit_softcap,
            attn_logit_softcap,
            causal: true,
            pooling: match file.get_u64(&key("pooling_type")) {
                Some(v) => crate::pooling::Pooling::from_gguf(v)?,
                None => None,
            },
        };
        models::configure(&ArchKeys { file, arch }, &mut config)?;
        Ok(config)
    }

    /// Marks the sliding-window layers as llama.cpp's `set_swa_pattern(n)`: layer `il` uses
    /// the window iff `il % n < n - 1` (every layer for `n = 0`), the window size being
    /// `<arch>.attention.sliding_window`.
    pub(crate) fn set_swa_pattern(
        &mut self,
        keys: &ArchKeys<'_>,
        pattern: usize,
    ) -> Result<(), ModelError> {
        self.set_swa_pattern_with_window(keys.required_u64("attention.sliding_window")?, pattern);
        Ok(())
    }

    /// [`ModelConfig::set_swa_pattern`] with the window size given.
    pub(crate) fn set_swa_pattern_with_window(&mut self, window: usize, pattern: usize) {
        self.sliding_window = Some(window);
        self.swa_layers = (0..self.n_layer)
            .map(|il| pattern == 0 || il % pattern < pattern - 1)
            .collect();
    }

    /// RoPE base of layer `il` (the sliding-window layers of Gemma-3 use their own).
    pub fn rope_base_of(&self, il: usize) -> f32 {
        match self.swa_rope_base {
            Some(base) if self.swa_layers[il] => base,
            _ => self.rope_base,
        }
    }

    /// Width of all query heads together.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Width of all key (or value) heads together.
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
}

/// The shape of a mixture-of-experts FFN (llama.cpp's `expert_*` keys).
#[derive(Debug, Clone, PartialEq)]
pub struct MoeConfig {
    /// Routed experts per MoE layer (`expert_count`).
    pub n_expert: usize,
    /// Experts each token goes through (`expert_used_count`).
    pub n_expert_used: usize,
    /// Hidden width of one expert (`expert_feed_forward_length`).
    pub n_ff_exp: usize,
    /// Width of the shared experts, together one gated FFN (DeepSeek: `expert_shared_count ·
    /// n_ff_exp`; Qwen2-MoE: `expert_shared_feed_forward_length`).
    pub shared_width: usize,
    /// The first layers with a dense FFN instead (`leading_dense_block_count`).
    pub n_dense_lead: usize,
    /// Multiplier of the routing weights (`expert_weights_scale`; 0 or 1: none).
    pub weights_scale: f32,
}

impl MoeConfig {
    /// Errors unless the expert counts and widths make sense.
    pub(crate) fn validated(self) -> Result<Self, ModelError> {
        if self.n_expert == 0 || self.n_expert_used == 0 || self.n_expert_used > self.n_expert {
            return Err(ModelError::InvalidConfig(format!(
                "{} experts used out of {}",
                self.n_expert_used, self.n_expert
            )));
        }
        if self.n_ff_exp == 0 || self.shared_width == 0 {
            return Err(ModelError::InvalidConfig(
                "experts and shared experts need a non-zero width".into(),
            ));
        }
        Ok(self)
    }
}

/// LongRoPE: per-dimension RoPE frequency factors, the `long` set for contexts beyond the
/// original training context and the `short` set otherwise (llama.cpp chooses by its context
/// size; here by the KV cache's capacity), and the cos/sin multiplier
/// `<arch>.rope.scaling.attn_factor`.
#[derive(Debug, Clone, PartialEq)]
pub struct LongRope {
    pub short: Vec<f32>,
    pub long: Vec<f32>,
    pub n_ctx_orig: usize,
    pub attn_factor: f32,
}

/// The names of the tensors holding [`LongRope`]'s factors.
pub const LONG_ROPE_TENSORS: [&str; 2] = ["rope_factors_short.weight", "rope_factors_long.weight"];

impl LongRope {
    /// Reads the factors (`n_rot / 2` each) and keys, if the file has the factors.
    pub(crate) fn read(keys: &ArchKeys<'_>, cfg: &ModelConfig) -> Result<Option<Self>, ModelError> {
        let [short, long] = LONG_ROPE_TENSORS;
        if keys.file.tensor(short).is_none() && keys.file.tensor(long).is_none() {
            return Ok(None);
        }
        let half = cfg.n_rot / 2;
        Ok(Some(LongRope {
            short: crate::weights::norm(keys.file, short, half)?,
            long: crate::weights::norm(keys.file, long, half)?,
            n_ctx_orig: keys
                .optional_u64("rope.scaling.original_context_length")
                .unwrap_or(cfg.n_ctx_train),
            attn_factor: keys.optional_f32("rope.scaling.attn_factor").unwrap_or(1.0),
        }))
    }

    /// The factors and multiplier for a context of `n_ctx` positions.
    pub fn for_context(&self, n_ctx: usize) -> (&[f32], f32) {
        let factors = if n_ctx > self.n_ctx_orig {
            &self.long
        } else {
            &self.short
        };
        (factors, self.attn_factor)
    }
}

/// Reads `<arch>.`-prefixed metadata keys for the per-architecture part of the configuration
/// ([`crate::models`]).
pub(crate) struct ArchKeys<'f> {
    pub file: &'f GgufFile,
    pub arch: &'static ArchSpec,
}

impl ArchKeys<'_> {
    fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.arch.name)
    }

    /// An integer key, if present.
    pub fn optional_u64(&self, k: &str) -> Option<usize> {
        self.file.get_u64(&self.key(k)).map(|v| v as usize)
    }

    /// A float key, if present.
    pub fn optional_f32(&self, k: &str) -> Option<f32> {
        self.file.get_f32(&self.key(k))
    }

    /// An integer key that must be present.
    pub fn required_u64(&self, k: &str) -> Result<usize, ModelError> {
        self.file
            .get_u64(&self.key(k))
            .map(|v| v as usize)
            .ok_or_else(|| ModelError::MissingKey(self.key(k)))
    }
}

/// The `<arch>.` keys (without the prefix) read only for [`LongRope`], i.e. only when the file has
/// its factor tensors ([`LONG_ROPE_TENSORS`]); elsewhere they would be ignored.
const LONG_ROPE_KEYS: [&str; 2] = [
    "rope.scaling.attn_factor",
    "rope.scaling.original_context_length",
];

/// The keys in `file`'s architecture namespace (`<arch>.…`, full names) that loading it ignores:
/// not among [`KNOWN_ARCH_KEYS`], or LongRoPE keys in a file without LongRoPE factors. `--strict`
/// refuses such files.
pub fn unread_arch_keys(file: &GgufFile) -> Vec<String> {
    let Some(arch) = file.architecture() else {
        return Vec::new();
    };
    let prefix = format!("{arch}.");
    let long_rope = LONG_ROPE_TENSORS.iter().any(|t| file.tensor(t).is_some());
    file.metadata()
        .iter()
        .map(|(key, _)| key)
        .filter(|key| {
            key.strip_prefix(&prefix).is_some_and(|rest| {
                !KNOWN_ARCH_KEYS.contains(&rest) || (!long_rope && LONG_ROPE_KEYS.contains(&rest))
            })
        })
        .cloned()
        .collect()
}

/// Every `<arch>.` metadata key (without the prefix) that [`ModelConfig::from_gguf`] reads, plus
/// `vocab_size` (taken from the embedding tensor instead). `--strict` refuses files with any other
/// key in the architecture's namespace: its meaning would be ignored.
pub const KNOWN_ARCH_KEYS: &[&str] = &[
    "attention.causal",
    "attention.clamp_kqv",
    "attention.head_count",
    "attention.head_count_kv",
    "attention.key_length",
    "attention.layer_norm_epsilon",
    "attention.layer_norm_rms_epsilon",
    "attention.max_alibi_bias",
    "attention.scale",
    "attention.sliding_window",
    "attention.sliding_window_pattern",
    "attention.value_length",
    "attn_logit_softcapping",
    "block_count",
    "context_length",
    "embedding_length",
    "expert_count",
    "expert_feed_forward_length",
    "expert_shared_count",
    "expert_shared_feed_forward_length",
    "expert_used_count",
    "expert_weights_scale",
    "feed_forward_length",
    "final_logit_softcapping",
    "hidden_activation",
    "leading_dense_block_count",
    "logit_scale",
    "pooling_type",
    "rope.dimension_count",
    "rope.freq_base",
    "rope.freq_base_swa",
    "rope.scaling.attn_factor",
    "rope.scaling.factor",
    "rope.scaling.original_context_length",
    "rope.scaling.type",
    "vocab_size",
];

#[cfg(test)]
mod tests {
    use super::KNOWN_ARCH_KEYS;

    /// Every `<arch>.` key named in the reading code (this file's and the architectures') is
    /// in the list `--strict` uses.
    #[test]
    fn every_key_read_is_known() {
        let source = include_str!("config.rs");
        let mut code = source[..source.find("pub const KNOWN_ARCH_KEYS").unwrap()].to_string();
        for model in [
            include_str!("models/command_r.rs"),
            include_str!("models/deepseek.rs"),
            include_str!("models/qwen2moe.rs"),
            include_str!("models/gemma2.rs"),
            include_str!("models/mpt.rs"),
            include_str!("models/gemma3.rs"),
            include_str!("models/phi3.rs"),
            include_str!("models/bert.rs"),
        ] {
            code.push_str(model);
        }
        let mut read = 0;
        for call in ["key(\"", "req_u64(\"", "_u64(\"", "_f32(\""] {
            for part in code.split(call).skip(1) {
                let name = &part[..part.find('"').unwrap()];
                assert!(
                    KNOWN_ARCH_KEYS.contains(&name),
                    "`{name}` is read but not in KNOWN_ARCH_KEYS"
                );
                read += 1;
            }
        }
        assert!(
            read >= 12,
            "found only {read} keys: the pattern no longer matches the code"
        );
    }
}
