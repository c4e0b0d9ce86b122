//! DeepSeek (`deepseek`, v1 / DeepSeek-MoE): the LLaMA block whose FFN, after the first
//! `leading_dense_block_count` layers, is a mixture of experts: a softmax router sends each token
//! through its `expert_used_count` most probable experts (weighted by their probabilities), and
//! every token also goes through the shared experts (one gated FFN).
//!
//! ```text
//! x ─┬─ RMSNorm ─ Wq,Wk,Wv ─ RoPE ─ attention ─ Wo ─(+)─┬─ RMSNorm ─┬─ shared SwiGLU FFN ──────────────┬(+)─(+)─
//!    └───────────────────────────────────────────────┘  │           └─ Σ top-k p_e · SwiGLU expert_e ─┘    │
//!                                                       └──────────────────────────────────────────────────┘
//! ```

use crate::blocks::Pass;
use crate::config::{ArchKeys, ModelConfig, MoeConfig};
use crate::error::ModelError;
use crate::weights::{Layer, LayerTensors};

pub(super) fn configure(keys: &ArchKeys<'_>, cfg: &mut ModelConfig) -> Result<(), ModelError> {
    let moe = MoeConfig {
        n_expert: keys.required_u64("expert_count")?,
        n_expert_used: keys.required_u64("expert_used_count")?,
        n_ff_exp: keys.required_u64("expert_feed_forward_length")?,
        shared_width: keys.required_u64("expert_shared_count")?
            * keys.required_u64("expert_feed_forward_length")?,
        n_dense_lead: keys.optional_u64("leading_dense_block_count").unwrap_or(0),
        weights_scale: keys.optional_f32("expert_weights_scale").unwrap_or(0.0),
    };
    cfg.moe = Some(moe.validated()?);
    if let Some(scale) = keys.optional_f32("attention.scale").filter(|s| *s != 0.0) {
        cfg.attention_scale = scale;
    }
    Ok(())
}

pub(super) fn load_layer(t: &LayerTensors<'_>) -> Result<Layer, ModelError> {
    let moe = moe_config(t.cfg)?;
    let qkv = t.qkv_projections()?;
    if t.layer_index() < moe.n_dense_lead {
        return t.gated_block(qkv);
    }
    t.moe_block(qkv, moe)
}

pub(super) fn block(
    p: &mut Pass<'_, '_>,
    il: usize,
    l: &Layer,
    x: &mut [f32],
) -> Result<(), ModelError> {
    // Attention.
    p.rms_norm_input(x, &l.attn_norm);
    p.project_qkv(&l.wq, &l.wk, &l.wv)?;
    p.add_qkv_biases(&l.bq, &l.bk, &l.bv);
    p.rope_and_store_kv(il);
    p.attend(il, p.cfg.attention_scale);
    p.project_attention_output(&l.wo)?;
    p.add_residual(x);
    // Feed-forward: dense, or shared experts plus the routed ones.
    p.rms_norm_input(x, &l.ffn_norm);
    p.gated_ffn_hidden(&l.ffn_gate, &l.ffn_up, p.cfg.activation)?;
    p.ffn_down(&l.ffn_down)?;
    if let Some(experts) = &l.moe {
        if let Some(gate) = &experts.shared_gate {
            p.scale_by_sigmoid_gate(gate);
        }
        p.add_routed_experts(experts, moe_config(p.cfg)?, p.cfg.activation)?;
    }
    p.add_residual(x);
    Ok(())
}

/// The MoE shape (set by `configure` of DeepSeek or Qwen2-MoE).
pub(super) fn moe_config(cfg: &ModelConfig) -> Result<&MoeConfig, ModelError> {
    cfg.moe
        .as_ref()
        .ok_or_else(|| ModelError::Internal("an MoE graph configured without experts".into()))
}
