//! Falcon (`falcon`): attention (fused Q/K/V, NEOX RoPE) and a plain GELU FFN in parallel on
//! the same residual input, both added to it; LayerNorm with bias before the head. The 7B layout
//! norms once (`attn_norm`) for both; the 40B layout (a file with `attn_norm_2`) norms twice:
//! `attn_norm_2` feeds attention and `attn_norm` the FFN, as llama.cpp reads them. Here the norm
//! feeding attention is `attn_norm` and the one feeding the FFN `ffn_norm` (set only in the 40B
//! layout).
//!
//! ```text
//!      ┌─ LayerNorm+b ─ Wqkv ─ RoPE ─ attention ─ Wo ─┐
//! x ─┬─┤                                              (+)─
//!    │ └─ LayerNorm+b (40B: its own) ─ gelu(Wup·h) ─ Wdown ─┤
//!    └──────────────────────────────────────────────────────┘
//! ```

use crate::blocks::Pass;
use crate::config::{ArchKeys, ModelConfig};
use crate::error::ModelError;
use crate::weights::{LayerTensors, PlainLayer};

pub(super) fn configure(_keys: &ArchKeys<'_>, cfg: &mut ModelConfig) -> Result<(), ModelError> {
    cfg.layer_norm = true;
    Ok(())
}

pub(super) fn load_layer(t: &LayerTensors<'_>) -> Result<PlainLayer, ModelError> {
    let c = t.cfg;
    let (d, ff, qd) = (c.n_embd, c.n_ff, c.q_dim());
    let qkv = t.qkv_projections()?;
    let first = (t.norm("attn_norm", d)?, t.bias("attn_norm", d)?);
    let second = t.optional_norm("attn_norm_2", d)?;
    let ((attn_norm, attn_norm_b), (ffn_norm, ffn_norm_b)) = match second {
        // Falcon-40B: `attn_norm_2` feeds attention, `attn_norm` the FFN.
        Some(w) => ((w, t.bias("attn_norm_2", d)?), (Some(first.0), first.1)),
        None => (first, (None, None)),
    };
    Ok(PlainLayer {
        attn_norm,
        attn_norm_b,
        wq: qkv.wq,
        wk: qkv.wk,
        wv: qkv.wv,
        wo: t.linear("attn_output", qd, d)?,
        bq: qkv.bq,
        bk: qkv.bk,
        bv: qkv.bv,
        bo: None,
        ffn_norm,
        ffn_norm_b,
        ffn_up: t.linear("ffn_up", d, ff)?,
        ffn_up_b: None,
        ffn_down: t.linear("ffn_down", ff, d)?,
        ffn_down_b: None,
    })
}

pub(super) fn block(
    p: &mut Pass<'_, '_>,
    il: usize,
    l: &PlainLayer,
    x: &mut [f32],
) -> Result<(), ModelError> {
    // The 40B layout's FFN norms the block's input, which the attention output is about to
    // join: keep a copy.
    let input = l.ffn_norm.as_ref().map(|_| x.to_vec());
    p.layer_norm_input(x, &l.attn_norm, l.attn_norm_b.as_deref());
    // Attention.
    p.project_qkv(&l.wq, &l.wk, &l.wv)?;
    p.add_qkv_biases(&l.bq, &l.bk, &l.bv);
    p.rope_and_store_kv(il);
    p.attend(il, p.cfg.attention_scale);
    p.project_attention_output(&l.wo)?;
    p.add_residual(x);
    // Feed-forward, in parallel: it reads the same normed input (7B) or its own norm of the
    // block's input (40B).
    if let (Some(w), Some(input)) = (&l.ffn_norm, &input) {
        p.layer_norm_input(input, w, l.ffn_norm_b.as_deref());
    }
    p.plain_ffn(&l.ffn_up, &None, &l.ffn_down, &None, p.cfg.activation)?;
    p.add_residual(x);
    Ok(())
}
