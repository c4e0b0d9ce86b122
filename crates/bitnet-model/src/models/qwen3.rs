//! Qwen3 (dense, `qwen3`): the LLaMA block with NEOX RoPE and a per-head RMSNorm of the queries
//! and keys before RoPE (Q/K/V fused or biased where llama.cpp allows it). The head width comes from `qwen3.attention.key_length`.
//!
//! ```text
//! x ─┬─ RMSNorm ─ Wq,Wk,Wv ─ RMSNorm(q), RMSNorm(k) per head ─ RoPE ─ attention ─ Wo ─(+)─┬─ RMSNorm ─ SwiGLU FFN ─(+)─
//!    └─────────────────────────────────────────────────────────────────────────────────┘  └──────────────────────┘
//! ```

use super::loaded;
use crate::blocks::Pass;
use crate::error::ModelError;
use crate::weights::{Layer, LayerTensors};

pub(super) fn load_layer(t: &LayerTensors<'_>) -> Result<Layer, ModelError> {
    let hd = t.cfg.head_dim;
    Ok(Layer {
        q_norm: Some(t.norm("attn_q_norm", hd)?),
        k_norm: Some(t.norm("attn_k_norm", hd)?),
        ..t.gated_block(t.qkv_projections()?)?
    })
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
    p.rms_norm_qk_heads(
        loaded(&l.q_norm, "attn_q_norm", il)?,
        loaded(&l.k_norm, "attn_k_norm", il)?,
    );
    p.rope_and_store_kv(il);
    p.attend(il, p.cfg.attention_scale);
    p.project_attention_output(&l.wo)?;
    p.add_output_bias(&l.bo);
    p.add_residual(x);
    // Feed-forward.
    p.rms_norm_input(x, &l.ffn_norm);
    p.gated_ffn_hidden(&l.ffn_gate, &l.ffn_up, p.cfg.activation)?;
    p.ffn_down(&l.ffn_down)?;
    p.add_residual(x);
    Ok(())
}
