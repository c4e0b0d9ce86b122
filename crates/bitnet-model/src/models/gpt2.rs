//! GPT-2 (`gpt2`) and StarCoder (`starcoder`): learned absolute position embeddings added to the
//! token embeddings (`position_embd`, one row per position up to the training context), no
//! RoPE, LayerNorm with bias, one fused Q/K/V projection, biases on every projection, a plain
//! GELU FFN with biases.
//!
//! ```text
//! tok + pos ─┬─ LayerNorm+b ─ Wqkv+b ─ attention ─ Wo+b ─(+)─┬─ LayerNorm+b ─ gelu(Wup·h+b) ─ Wdown+b ─(+)─
//!            └───────────────────────────────────────────────┘  └────────────────────────────────────────┘
//! ```

use super::loaded;
use crate::blocks::Pass;
use crate::config::{ArchKeys, ModelConfig};
use crate::error::ModelError;
use crate::weights::{LayerTensors, PlainLayer};

pub(super) fn configure(_keys: &ArchKeys<'_>, cfg: &mut ModelConfig) -> Result<(), ModelError> {
    cfg.layer_norm = true;
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
    // Positions are in the input: no RoPE.
    sequential_block(p, il, l, x, false)
}

/// The sequential LayerNorm block with a plain FFN, shared by GPT-2/StarCoder (positions in
/// the input), StarCoder2 (`rope`) and MPT (ALiBi inside `attend`; Q/K/V clamped where the
/// configuration says).
pub(super) fn sequential_block(
    p: &mut Pass<'_, '_>,
    il: usize,
    l: &PlainLayer,
    x: &mut [f32],
    rope: bool,
) -> Result<(), ModelError> {
    // Attention.
    p.layer_norm_input(x, &l.attn_norm, l.attn_norm_b.as_deref());
    p.project_qkv(&l.wq, &l.wk, &l.wv)?;
    p.add_qkv_biases(&l.bq, &l.bk, &l.bv);
    if let Some(c) = p.cfg.clamp_kqv {
        p.clamp_qkv(c);
    }
    if rope {
        p.rope_and_store_kv(il);
    } else {
        p.store_kv(il);
    }
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
