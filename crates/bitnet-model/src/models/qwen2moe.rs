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

use crate::blocks::Pass;
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
    if moe.n_expert == 0 || moe.n_expert_used == 0 || moe.n_expert_used > moe.n_expert {
        return Err(ModelError::InvalidConfig(format!(
            "{} experts used out of {}",
            moe.n_expert_used, moe.n_expert
        )));
    }
    cfg.moe = Some(moe);
    Ok(())
}

pub(super) fn load_layer(t: &LayerTensors<'_>) -> Result<Layer, ModelError> {
    let moe = moe_config(t.cfg)?;
    let qkv = t.qkv_projections()?;
    let c = t.cfg;
    let (d, qd, shared) = (c.n_embd, c.q_dim(), moe.shared_width);
    let mut experts = t.routed_experts(moe)?;
    experts.shared_gate = Some(t.norm("ffn_gate_inp_shexp", d)?);
    Ok(Layer {
        attn_norm: t.norm("attn_norm", d)?,
        wq: qkv.wq,
        wk: qkv.wk,
        wv: qkv.wv,
        wo: t.linear("attn_output", qd, d)?,
        bq: qkv.bq,
        bk: qkv.bk,
        bv: qkv.bv,
        bo: None,
        q_norm: None,
        k_norm: None,
        attn_sub_norm: None,
        attn_post_norm: None,
        ffn_norm: t.norm("ffn_norm", d)?,
        ffn_gate: t.linear("ffn_gate_shexp", d, shared)?,
        ffn_up: t.linear("ffn_up_shexp", d, shared)?,
        ffn_down: t.linear("ffn_down_shexp", shared, d)?,
        ffn_sub_norm: None,
        ffn_post_norm: None,
        moe: Some(experts),
    })
}

pub(super) fn block(
    p: &mut Pass<'_, '_>,
    il: usize,
    l: &Layer,
    x: &mut [f32],
) -> Result<(), ModelError> {
    let experts = l
        .moe
        .as_ref()
        .ok_or_else(|| ModelError::Internal(format!("layer {il} was loaded without experts")))?;
    // Attention.
    p.rms_norm_input(x, &l.attn_norm);
    p.project_qkv(&l.wq, &l.wk, &l.wv)?;
    p.add_qkv_biases(&l.bq, &l.bk, &l.bv);
    p.rope_and_store_kv(il);
    p.attend(il, p.cfg.attention_scale);
    p.project_attention_output(&l.wo)?;
    p.add_residual(x);
    // Feed-forward: the gated shared expert plus the routed ones.
    p.rms_norm_input(x, &l.ffn_norm);
    p.gated_ffn_hidden(&l.ffn_gate, &l.ffn_up, p.cfg.activation)?;
    p.ffn_down(&l.ffn_down)?;
    if let Some(gate) = &experts.shared_gate {
        p.scale_by_sigmoid_gate(gate);
    }
    p.add_routed_experts(experts, moe_config(p.cfg)?, p.cfg.activation)?;
    p.add_residual(x);
    Ok(())
}

fn moe_config(cfg: &ModelConfig) -> Result<&MoeConfig, ModelError> {
    cfg.moe
        .as_ref()
        .ok_or_else(|| ModelError::Internal("Qwen2-MoE configured without experts".into()))
}
