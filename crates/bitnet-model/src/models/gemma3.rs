//! Gemma 3 (`gemma3`): embeddings scaled by `sqrt(n_embd)`, per-head Q/K RMSNorm, queries scaled
//! by `1/sqrt(head_dim)` before attention, RMSNorm of each block's output before the residual
//! add, GeGLU FFN; five sliding-window layers (RoPE base 10000) for every global one.
//!
//! ```text
//! x ─┬─ RMSNorm ─ Wq,Wk,Wv ─ RMSNorm(q,k) ─ RoPE ─ q/√d ─ attention ─ Wo ─ RMSNorm(post) ─(+)─┬─ RMSNorm ─ GeGLU FFN ─ RMSNorm(post) ─(+)─
//!    └────────────────────────────────────────────────────────────────────────────────────┘  └─────────────────────────────────────┘
//! ```

use super::loaded;
use crate::blocks::Pass;
use crate::config::{ArchKeys, ModelConfig};
use crate::error::ModelError;
use crate::weights::{Layer, LayerTensors};

/// Local layers per global one plus one (llama.cpp's `set_swa_pattern(6)`).
const SWA_PATTERN: usize = 6;
/// RoPE base of the sliding-window layers.
const SWA_ROPE_BASE: f32 = 10_000.0;

pub(super) fn configure(keys: &ArchKeys<'_>, cfg: &mut ModelConfig) -> Result<(), ModelError> {
    cfg.set_swa_pattern(keys, SWA_PATTERN)?;
    cfg.swa_rope_base = Some(SWA_ROPE_BASE);
    Ok(())
}

pub(super) fn load_layer(t: &LayerTensors<'_>) -> Result<Layer, ModelError> {
    let (d, hd) = (t.cfg.n_embd, t.cfg.head_dim);
    Ok(Layer {
        q_norm: Some(t.norm("attn_q_norm", hd)?),
        k_norm: Some(t.norm("attn_k_norm", hd)?),
        attn_post_norm: Some(t.norm("post_attention_norm", d)?),
        ffn_post_norm: Some(t.norm("post_ffw_norm", d)?),
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
    p.scale_queries(p.cfg.attention_scale);
    p.attend(il, 1.0);
    p.project_attention_output(&l.wo)?;
    p.rms_norm_block_output(loaded(&l.attn_post_norm, "post_attention_norm", il)?);
    p.add_residual(x);
    // Feed-forward.
    p.rms_norm_input(x, &l.ffn_norm);
    p.gated_ffn_hidden(&l.ffn_gate, &l.ffn_up, p.cfg.activation)?;
    p.ffn_down(&l.ffn_down)?;
    p.rms_norm_block_output(loaded(&l.ffn_post_norm, "post_ffw_norm", il)?);
    p.add_residual(x);
    Ok(())
}
