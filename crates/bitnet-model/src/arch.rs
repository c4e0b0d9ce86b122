//! The architecture registry: every `general.architecture` string this engine runs, and which
//! graph in [`crate::models`] (one file per architecture) computes it. The graphs themselves —
//! which tensors a layer has, in which order the shared blocks run — live in those files; this
//! table only names them, with the two choices a GGUF file of that architecture never states
//! (the RoPE pairing and the default FFN activation).

use crate::error::ModelError;

/// The FFN activation (applied to the gate projection in a gated FFN, `act(gate) * up`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `max(x, 0)^2` (BitNet b1.58).
    Relu2,
    /// `x * sigmoid(x)` (LLaMA family, llama.cpp's `bitnet`).
    Silu,
    /// GELU, tanh approximation (Gemma).
    GeluTanh,
    /// GELU with the exact error function, `0.5·x·(1 + erf(x/√2))` (BERT's `gelu`).
    GeluErf,
}

impl Activation {
    /// Parses the values of `bitnet.hidden_activation` / HF `hidden_act`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "relu2" | "relu_squared" => Some(Activation::Relu2),
            "silu" | "swish" => Some(Activation::Silu),
            "gelu_pytorch_tanh" | "gelu_tanh" | "gelu" => Some(Activation::GeluTanh),
            "gelu_erf" => Some(Activation::GeluErf),
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

/// Which file of [`crate::models`] holds an architecture's graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Graph {
    /// `models/bitnet.rs`: BitNet b1.58 (sub-norms, BitLinear) and llama.cpp's `bitnet`.
    Bitnet,
    /// `models/llama.rs`: pre-norm RMSNorm, SwiGLU, optional biases, optional sliding window.
    Llama,
    /// `models/phi3.rs`: fused QKV and gate-up projections, LongRoPE frequency factors.
    Phi3,
    /// `models/command_r.rs`: Command-R (LayerNorm, parallel attention and FFN, logit scale).
    CommandR,
    /// `models/deepseek.rs`: DeepSeek v1 (the LLaMA block with a mixture-of-experts FFN).
    Deepseek,
    /// `models/gemma.rs`: Gemma (scaled embeddings, GeGLU, tied head).
    Gemma,
    /// `models/gemma2.rs`: Gemma 2 (post-norms, alternating sliding window, soft-capping).
    Gemma2,
    /// `models/baichuan.rs`: the LLaMA block, RoPE only at 7B's depth.
    Baichuan,
    /// `models/chatglm.rs`: ChatGLM 2/3 (the LLaMA block over fused weights, half-head RoPE).
    ChatGlm,
    /// `models/glm4.rs`: GLM-4 (fused QKV with biases, half-head RoPE, post-norms, fused gate-up).
    Glm4,
    /// `models/falcon.rs`: Falcon-7B (parallel block, LayerNorm with bias, plain GELU FFN).
    Falcon,
    /// `models/mpt.rs`: MPT (ALiBi, LayerNorm, fused QKV with clamp, plain GELU FFN).
    Mpt,
    /// `models/gpt2.rs`: GPT-2 and StarCoder (learned positions, LayerNorm, plain FFN, biases).
    Gpt2,
    /// `models/starcoder2.rs`: LayerNorm with bias, biases everywhere, plain GELU FFN.
    Starcoder2,
    /// `models/qwen2moe.rs`: Qwen2-MoE (Qwen2 attention, routed experts and a gated shared one).
    Qwen2Moe,
    /// `models/qwen3.rs`: the LLaMA block with per-head Q/K RMSNorm before RoPE.
    Qwen3,
    /// `models/gemma3.rs`: Gemma 3 (Gemma 2 with Q/K norms and 5:1 local/global layers).
    Gemma3,
    /// `models/bert.rs`: BERT encoders (post-norm LayerNorm blocks, bidirectional attention,
    /// absolute position and token-type embeddings, no LM head).
    Bert,
    /// `models/qwen3_bitnet_embed.rs`: a BitNet embedding model on the Qwen3 graph (an RMSNorm
    /// before every ternary projection, no LM head, last-token pooling).
    Qwen3BitnetEmbed,
    /// `models/gemma3_bitnet_embed.rs`: a BitNet embedding model on the Gemma 3 graph.
    Gemma3BitnetEmbed,
}

/// One registered architecture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArchSpec {
    /// The `general.architecture` string (also the metadata key prefix).
    pub name: &'static str,
    /// The graph that computes it.
    pub graph: Graph,
    /// Default FFN activation (may be overridden by `<arch>.hidden_activation`).
    pub activation: Activation,
    pub rope: RopeStyle,
}

const fn spec(
    name: &'static str,
    graph: Graph,
    activation: Activation,
    rope: RopeStyle,
) -> ArchSpec {
    ArchSpec {
        name,
        graph,
        activation,
        rope,
    }
}

/// Every architecture this engine runs.
pub const ARCHITECTURES: &[ArchSpec] = &[
    spec(
        "bitnet-b1.58",
        Graph::Bitnet,
        Activation::Relu2,
        RopeStyle::Neox,
    ),
    spec(
        "bitnet-25",
        Graph::Bitnet,
        Activation::Relu2,
        RopeStyle::Neox,
    ),
    spec("bitnet", Graph::Bitnet, Activation::Silu, RopeStyle::Neox),
    spec("llama", Graph::Llama, Activation::Silu, RopeStyle::Normal),
    // Qwen2 is the LLaMA graph with NEOX RoPE; its Q/K/V biases are the optional ones of
    // `models/llama.rs`.
    spec("qwen2", Graph::Llama, Activation::Silu, RopeStyle::Neox),
    // InternLM2: the LLaMA graph (llama.cpp's converter splits its fused `wqkv`).
    spec(
        "internlm2",
        Graph::Llama,
        Activation::Silu,
        RopeStyle::Normal,
    ),
    spec("qwen3", Graph::Qwen3, Activation::Silu, RopeStyle::Neox),
    spec("phi3", Graph::Phi3, Activation::Silu, RopeStyle::Neox),
    spec(
        "command-r",
        Graph::CommandR,
        Activation::Silu,
        RopeStyle::Normal,
    ),
    spec("gemma", Graph::Gemma, Activation::GeluTanh, RopeStyle::Neox),
    spec(
        "gemma2",
        Graph::Gemma2,
        Activation::GeluTanh,
        RopeStyle::Neox,
    ),
    spec(
        "gemma3",
        Graph::Gemma3,
        Activation::GeluTanh,
        RopeStyle::Neox,
    ),
    spec(
        "baichuan",
        Graph::Baichuan,
        Activation::Silu,
        RopeStyle::Normal,
    ),
    spec(
        "chatglm",
        Graph::ChatGlm,
        Activation::Silu,
        RopeStyle::Normal,
    ),
    spec(
        "starcoder2",
        Graph::Starcoder2,
        Activation::GeluTanh,
        RopeStyle::Neox,
    ),
    spec("gpt2", Graph::Gpt2, Activation::GeluTanh, RopeStyle::Neox),
    spec(
        "starcoder",
        Graph::Gpt2,
        Activation::GeluTanh,
        RopeStyle::Neox,
    ),
    spec(
        "falcon",
        Graph::Falcon,
        Activation::GeluTanh,
        RopeStyle::Neox,
    ),
    spec("mpt", Graph::Mpt, Activation::GeluTanh, RopeStyle::Neox),
    spec(
        "deepseek",
        Graph::Deepseek,
        Activation::Silu,
        RopeStyle::Normal,
    ),
    spec(
        "qwen2moe",
        Graph::Qwen2Moe,
        Activation::Silu,
        RopeStyle::Neox,
    ),
    spec("glm4", Graph::Glm4, Activation::Silu, RopeStyle::Normal),
    // (no RoPE: positions are learned embeddings)
    spec("bert", Graph::Bert, Activation::GeluErf, RopeStyle::Neox),
];

/// The BitNet embedding models (microsoft/BitNet's `docs/bitnet-embeddings-i2s-guide.md`:
/// bitnet-embedding-0.6b on Qwen3, -270m on Gemma 3). Their files say `qwen3` or `gemma3`; what
/// sets them apart is an RMSNorm before each projection, the `blk.N.*_norm_in.weight` tensors
/// ([`PROJECTION_INPUT_NORM_SUFFIX`]). Such a file runs the variant's graph ([`variant`]).
pub const BITNET_EMBEDDING_ARCHITECTURES: &[ArchSpec] = &[
    spec(
        "qwen3",
        Graph::Qwen3BitnetEmbed,
        Activation::Silu,
        RopeStyle::Neox,
    ),
    spec(
        "gemma3",
        Graph::Gemma3BitnetEmbed,
        Activation::GeluTanh,
        RopeStyle::Neox,
    ),
];

/// How the per-projection input norms of a BitNet embedding model end
/// (`blk.N.attn_q_norm_in.weight`, ..., `blk.N.ffn_down_norm_in.weight`).
pub const PROJECTION_INPUT_NORM_SUFFIX: &str = "_norm_in.weight";

/// The architecture a file runs as: `base` (its `general.architecture`), or, when the file has
/// per-projection input norms, `base`'s BitNet embedding variant; an error when `base` has
/// none (the norms would otherwise be ignored).
pub fn variant(
    base: &'static ArchSpec,
    has_projection_input_norms: bool,
) -> Result<&'static ArchSpec, ModelError> {
    if !has_projection_input_norms {
        return Ok(base);
    }
    BITNET_EMBEDDING_ARCHITECTURES
        .iter()
        .find(|a| a.name == base.name)
        .ok_or_else(|| {
            ModelError::InvalidConfig(format!(
                "a `{}` file with per-projection input norms (`*{PROJECTION_INPUT_NORM_SUFFIX}` \
                 tensors): BitNet embedding models are implemented on qwen3 and gemma3 only",
                base.name
            ))
        })
}

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
        assert!(b.graph == Graph::Bitnet && b25.graph == Graph::Bitnet);
        assert_eq!(lookup("bitnet").unwrap().activation, Activation::Silu);
        assert_eq!(lookup("llama").unwrap().rope, RopeStyle::Normal);
    }

    #[test]
    fn projection_input_norms_select_the_bitnet_embedding_variant() {
        for name in ["qwen3", "gemma3"] {
            let base = lookup(name).unwrap();
            assert_eq!(variant(base, false).unwrap(), base);
            let v = variant(base, true).unwrap();
            assert_eq!(v.name, name);
            assert_ne!(v.graph, base.graph);
            assert_eq!(v.activation, base.activation);
        }
        let err = variant(lookup("llama").unwrap(), true).unwrap_err();
        assert!(err.to_string().contains("qwen3 and gemma3"), "{err}");
    }
}
