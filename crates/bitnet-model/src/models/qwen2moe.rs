//! Qwen2-MoE (`qwen2moe`): the Qwen2 attention (Q/K/V biases, NEOX RoPE) and in every layer a
//! mixture of experts: a softmax router sends each token through its `expert_used_count` most
//! probable experts, weighted by their probabilities, plus one shared SwiGLU expert whose output
//! is gated per token by `sigmoid(ffn_gate_inp_shexp · h)`.
//!
//! ```text
//! x ─┬─ RMSNorm ─ Wq,Wk,Wv+b ─ RoPE ─ attention ─ Wo ─(+)─┬─ RMSNorm ─┬─ σ(g·h) · shared SwiGLU ─────────┬(+)─(+)─
//!    └─────────────────────────────────────────────────┘  │           └─ Σ top-k p_e · SwiGLU expert_e ─┘    │
//!                                                         └──────────────────────────────────────────────────┘
//! ```

use super::deepseek::moe_config;
use crate::config::{ArchKeys, ModelConfig, MoeConfig};
use crate::error::ModelError;
use crate::weights::{Layer, LayerTensors};

pub(super) fn configure(keys: &ArchKeys<'_>, cfg: &mut ModelConfig) -> Result<(), ModelError> {
    let moe = MoeConfig {
        n_expert: keys.required_u64("expert_count")?,
        n_expert_used: keys.required_u64("expert_used_count")?,
        n_ff_exp: keys.required_u64("expert_feed_forward_length")?,
        shared_width: keys
            .optional_u64("expert_shared_feed_forward_length")
            .unwrap_or(cfg.n_ff),
        n_dense_lead: 0,
        // llama.cpp's `qwen2moe` reads no `expert_weights_scale`: the weights stay unscaled.
        weights_scale: 0.0,
    };
    cfg.moe = Some(moe.validated()?);
    Ok(())
}

pub(super) fn load_layer(t: &LayerTensors<'_>) -> Result<Layer, ModelError> {
    let mut layer = t.moe_block(t.qkv_projections()?, moe_config(t.cfg)?)?;
    if let Some(experts) = &mut layer.moe {
        experts.shared_gate = Some(t.norm("ffn_gate_inp_shexp", t.cfg.n_embd)?);
    }
    Ok(layer)
}

// The block is DeepSeek's (shared experts, gated here by `sigmoid(ffn_gate_inp_shexp · h)`, plus
// the routed ones) over the same attention.
pub(super) use super::deepseek::block;
