//! The architecture registry: for each `general.architecture` string this engine runs, which of
//! the shared blocks its graph uses (norm placement, FFN activation, RoPE pairing, head, extra
//! tensors). Everything architecture-specific is declared here; the forward pass only reads it.

use crate::error::ModelError;

/// The gated-FFN activation applied to the gate projection (`act(gate) * up`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `max(x, 0)^2` (BitNet b1.58).
    Relu2,
    /// `x * sigmoid(x)` (LLaMA family, llama.cpp's `bitnet`).
    Silu,
    /// GELU, tanh approximation (Gemma).
    GeluTanh,
}

impl Activation {
    /// Parses the values of `bitnet.hidden_activation` / HF `hidden_act`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "relu2" | "relu_squared" => Some(Activation::Relu2),
            "silu" | "swish" => Some(Activation::Silu),
            "gelu_pytorch_tanh" | "gelu_tanh" | "gelu" => Some(Activation::GeluTanh),
            _ => None,
        }
    }
}

/// How RoPE pairs the elements of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Element `i` with `i + n_rot/2` (GPT-NeoX, HF rotate-half; BitNet, Gemma, Qwen).
    Neox,
    /// Element `2i` with `2i + 1` (llama.cpp's LLaMA layout: the converter permutes Q/K rows).
    Normal,
}

/// The declaration of one architecture's graph.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArchSpec {
    /// The `general.architecture` string (also the metadata key prefix).
    pub name: &'static str,
    /// Default FFN activation (may be overridden by `<arch>.hidden_activation`).
    pub activation: Activation,
    pub rope: RopeStyle,
    /// `attn_sub_norm` before the output projection and `ffn_sub_norm` before the down projection.
    pub sub_norms: bool,
    /// Per-head RMSNorm of Q and K (`attn_q_norm`, `attn_k_norm`) before RoPE.
    pub qk_norm: bool,
    /// RMSNorm of each block's output before the residual add (`post_attention_norm`,
    /// `post_ffw_norm`).
    pub post_norms: bool,
    /// Multiply the token embeddings by `sqrt(n_embd)`.
    pub scale_embeddings: bool,
    /// Optional one-element `blk.N.<linear>.scale` tensors multiply each linear's output.
    pub linear_scales: bool,
    /// Scale Q by `1/sqrt(head_dim)` before attention (Gemma's `query_pre_attn_scalar`
    /// convention); the result is the same quantity as scaling the scores, applied where
    /// llama.cpp applies it.
    pub scale_q_before_attention: bool,
    /// Sliding-window layers as llama.cpp's `set_swa_pattern(n)`: layer `il` uses the window iff
    /// `il % n < n - 1`. `None`: no sliding window.
    pub swa_pattern: Option<usize>,
    /// RoPE base of the sliding-window layers (Gemma-3: 10000), when it differs.
    pub swa_rope_base: Option<f32>,
}

const BITNET_B158: ArchSpec = ArchSpec {
    name: "bitnet-b1.58",
    activation: Activation::Relu2,
    rope: RopeStyle::Neox,
    sub_norms: true,
    qk_norm: false,
    post_norms: false,
    scale_embeddings: false,
    linear_scales: false,
    scale_q_before_attention: false,
    swa_pattern: None,
    swa_rope_base: None,
};

/// Every architecture this engine runs.
pub const ARCHITECTURES: &[ArchSpec] = &[
    BITNET_B158,
    ArchSpec {
        name: "bitnet-25",
        ..BITNET_B158
    },
    ArchSpec {
        name: "bitnet",
        activation: Activation::Silu,
        linear_scales: true,
        ..BITNET_B158
    },
    ArchSpec {
        name: "llama",
        activation: Activation::Silu,
        rope: RopeStyle::Normal,
        sub_norms: false,
        ..BITNET_B158
    },
    // Qwen3 (dense): the LLaMA graph with NEOX RoPE and per-head Q/K RMSNorm before RoPE, no
    // biases; head_dim from `qwen3.attention.key_length` as for Gemma-3. Every block it uses is
    // exercised by the tested models (NEOX by BitNet, Q/K norms by Gemma-3).
    ArchSpec {
        name: "qwen3",
        activation: Activation::Silu,
        rope: RopeStyle::Neox,
        sub_norms: false,
        qk_norm: true,
        ..BITNET_B158
    },
    ArchSpec {
        name: "gemma3",
        activation: Activation::GeluTanh,
        rope: RopeStyle::Neox,
        sub_norms: false,
        qk_norm: true,
        post_norms: true,
        scale_embeddings: true,
        linear_scales: false,
        scale_q_before_attention: true,
        swa_pattern: Some(6),
        swa_rope_base: Some(10_000.0),
    },
];

/// Looks up an architecture by its `general.architecture` string.
pub fn lookup(name: &str) -> Result<&'static ArchSpec, ModelError> {
    ARCHITECTURES
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| ModelError::UnsupportedArchitecture {
            arch: name.to_string(),
            supported: supported_names(),
        })
}

/// The supported architecture names, comma-separated.
pub fn supported_names() -> String {
    ARCHITECTURES
        .iter()
        .map(|a| a.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_architecture_lists_the_supported_ones() {
        let err = lookup("mamba").unwrap_err().to_string();
        assert!(err.contains("`mamba`"), "{err}");
        for a in ARCHITECTURES {
            assert!(err.contains(a.name), "{err}");
        }
    }

    #[test]
    fn bitnet_families_share_the_b158_graph() {
        let b = lookup("bitnet-b1.58").unwrap();
        let b25 = lookup("bitnet-25").unwrap();
        assert_eq!(b.activation, Activation::Relu2);
        assert_eq!(b25.activation, Activation::Relu2);
        assert!(b25.sub_norms && b.sub_norms);
        assert_eq!(lookup("bitnet").unwrap().activation, Activation::Silu);
        assert_eq!(lookup("llama").unwrap().rope, RopeStyle::Normal);
    }
}
