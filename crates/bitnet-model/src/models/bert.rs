//! BERT (`bert`): an encoder. The input is the sum of the token, learned absolute position and
//! token-type embeddings (`token_embd`, `position_embd`, `token_types`; every token is of type
//! 0), normed by a LayerNorm with bias (`token_embd_norm`); each block is post-norm: attention
//! with biases on Q/K/V/O, bidirectional (`attention.causal` = false), added to the stream and
//! then LayerNorm (`attn_output_norm`), then a plain GELU (erf) FFN with biases, added and normed
//! (`layer_output_norm`). No final norm, no LM head: the last block's states are pooled
//! (`pooling_type`) by [`crate::encoder`].
//!
//! ```text
//! tok + pos + type ─ LayerNorm+b ─┬─ Wq,Wk,Wv+b ─ attention ─ Wo+b ─(+)─ LayerNorm+b ─┬─ gelu(Wup·h+b) ─ Wdown+b ─(+)─ LayerNorm+b ─
//!                                 └────────────────────────────────────┘              └────────────────────────────┘
//! ```
//!
//! The weights are held in a [`PlainLayer`] whose `attn_norm` is `attn_output_norm` and whose
//! `ffn_norm` is `layer_output_norm`: post-norms, applied to the stream after each residual add.

use super::loaded;
use crate::blocks::Pass;
use crate::config::{ArchKeys, ModelConfig};
use crate::error::ModelError;
use crate::weights::{LayerTensors, PlainLayer};

pub(super) fn configure(keys: &ArchKeys<'_>, cfg: &mut ModelConfig) -> Result<(), ModelError> {
    cfg.layer_norm = true;
    cfg.causal = match keys
        .file
        .get(&format!("{}.attention.causal", keys.arch.name))
    {
        None => false,
        Some(v) => v.as_bool().ok_or_else(|| {
            ModelError::MissingKey(format!("{}.attention.causal", keys.arch.name))
        })?,
    };
    if cfg.causal {
        return Err(ModelError::InvalidConfig(
            "a causal `bert` (attention.causal = true) is not implemented".into(),
        ));
    }
    Ok(())
}

pub(super) fn load_layer(t: &LayerTensors<'_>) -> Result<PlainLayer, ModelError> {
    let c = t.cfg;
    let (d, ff, qd, kvd) = (c.n_embd, c.n_ff, c.q_dim(), c.kv_dim());
    Ok(PlainLayer {
        wq: t.linear("attn_q", d, qd)?,
        bq: t.bias("attn_q", qd)?,
        wk: t.linear("attn_k", d, kvd)?,
        bk: t.bias("attn_k", kvd)?,
        wv: t.linear("attn_v", d, kvd)?,
        bv: t.bias("attn_v", kvd)?,
        wo: t.linear("attn_output", qd, d)?,
        bo: t.bias("attn_output", d)?,
        attn_norm: t.norm("attn_output_norm", d)?,
        attn_norm_b: t.bias("attn_output_norm", d)?,
        ffn_up: t.linear("ffn_up", d, ff)?,
        ffn_up_b: t.bias("ffn_up", ff)?,
        ffn_down: t.linear("ffn_down", ff, d)?,
        ffn_down_b: t.bias("ffn_down", d)?,
        ffn_norm: Some(t.norm("layer_output_norm", d)?),
        ffn_norm_b: t.bias("layer_output_norm", d)?,
    })
}

pub(super) fn block(
    p: &mut Pass<'_, '_>,
    il: usize,
    l: &PlainLayer,
    x: &mut [f32],
) -> Result<(), ModelError> {
    // Attention over the block's input itself (no pre-norm).
    p.normed.copy_from_slice(x);
    p.project_qkv(&l.wq, &l.wk, &l.wv)?;
    p.add_qkv_biases(&l.bq, &l.bk, &l.bv);
    p.store_kv(il);
    p.attend(il, p.cfg.attention_scale);
    p.project_attention_output(&l.wo)?;
    p.add_output_bias(&l.bo);
    p.add_residual(x);
    p.layer_norm_stream(x, &l.attn_norm, l.attn_norm_b.as_deref());
    // Feed-forward.
    p.normed.copy_from_slice(x);
    p.plain_ffn(
        &l.ffn_up,
        &l.ffn_up_b,
        &l.ffn_down,
        &l.ffn_down_b,
        p.cfg.activation,
    )?;
    p.add_residual(x);
    let ffn_norm = loaded(&l.ffn_norm, "layer_output_norm", il)?;
    p.layer_norm_stream(x, ffn_norm, l.ffn_norm_b.as_deref());
    Ok(())
}
