//! MPT (`mpt`): no position embedding; ALiBi biases the attention scores instead
//! (`mpt.attention.max_alibi_bias`); LayerNorm (optional biases), one fused Q/K/V projection
//! optionally clamped (`mpt.attention.clamp_kqv`), a plain GELU FFN. (The optional Q/K
//! LayerNorms, learned positions and FFN activation scales of some variants are not built: such
//! files are refused, those tensors being unused.)
//!
//! ```text
//! x ─┬─ LayerNorm ─ Wqkv ─ clamp ─ attention(+ALiBi) ─ Wo ─(+)─┬─ LayerNorm ─ gelu(Wup·h) ─ Wdown ─(+)─
//!    └─────────────────────────────────────────────────────┘  └──────────────────────────────────┘
//! ```

use super::loaded;
use crate::blocks::Pass;
use crate::config::{ArchKeys, ModelConfig};
use crate::error::ModelError;
use crate::weights::{LayerTensors, PlainLayer};

pub(super) fn configure(keys: &ArchKeys<'_>, cfg: &mut ModelConfig) -> Result<(), ModelError> {
    cfg.layer_norm = true;
    // As llama.cpp: ALiBi only with a positive maximum bias.
    cfg.alibi_max_bias = keys
        .optional_f32("attention.max_alibi_bias")
        .filter(|b| *b > 0.0);
    cfg.clamp_kqv = keys
        .optional_f32("attention.clamp_kqv")
        .filter(|c| *c > 0.0);
    Ok(())
}

pub(super) fn load_layer(t: &LayerTensors<'_>) -> Result<PlainLayer, ModelError> {
    t.plain_block(t.qkv_projections()?)
}

pub(super) fn block(
    p: &mut Pass<'_, '_>,
    il: usize,
    l: &PlainLayer,
    x: &mut [f32],
) -> Result<(), ModelError> {
    // Attention (positions enter as the ALiBi bias inside `attend`).
    p.layer_norm_input(x, &l.attn_norm, l.attn_norm_b.as_deref());
    p.project_qkv(&l.wq, &l.wk, &l.wv)?;
    p.add_qkv_biases(&l.bq, &l.bk, &l.bv);
    if let Some(c) = p.cfg.clamp_kqv {
        p.clamp_qkv(c);
    }
    p.store_kv(il);
    p.attend(il, p.cfg.attention_scale);
    p.project_attention_output(&l.wo)?;
    p.add_output_bias(&l.bo);
    p.add_residual(x);
    // Feed-forward.
    let ffn_norm = loaded(&l.ffn_norm, "ffn_norm", il)?;
    p.layer_norm_input(x, ffn_norm, l.ffn_norm_b.as_deref());
    p.plain_ffn(
        &l.ffn_up,
        &l.ffn_up_b,
        &l.ffn_down,
        &l.ffn_down_b,
        p.cfg.activation,
    )?;
    p.add_residual(x);
    Ok(())
}
