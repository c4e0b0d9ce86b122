//! Falcon (`falcon`, the 7B layout): one LayerNorm with bias per block feeds attention (fused
//! Q/K/V, NEOX RoPE) and a plain GELU FFN in parallel, both added to the residual stream;
//! LayerNorm with bias before the head. (Falcon-40B's second block norm, `attn_norm_2`, is not
//! built: such files are refused, those tensors being unused.)
//!
//! ```text
//!      ┌─ Wqkv ─ RoPE ─ attention ─ Wo ─┐
//! x ─┬─ LayerNorm+b ─┤                                (+)─
//!    │               └─ gelu(Wup·h) ─ Wdown ──────────┤
//!    └────────────────────────────────────────────────┘
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
    Ok(PlainLayer {
        attn_norm: t.norm("attn_norm", d)?,
        attn_norm_b: t.bias("attn_norm", d)?,
        wq: qkv.wq,
        wk: qkv.wk,
        wv: qkv.wv,
        wo: t.linear("attn_output", qd, d)?,
        bq: qkv.bq,
        bk: qkv.bk,
        bv: qkv.bv,
        bo: None,
        ffn_norm: None,
        ffn_norm_b: None,
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
    p.layer_norm_input(x, &l.attn_norm, l.attn_norm_b.as_deref());
    // Attention.
    p.project_qkv(&l.wq, &l.wk, &l.wv)?;
    p.add_qkv_biases(&l.bq, &l.bk, &l.bv);
    p.rope_and_store_kv(il);
    p.attend(il, p.cfg.attention_scale);
    p.project_attention_output(&l.wo)?;
    p.add_residual(x);
    // Feed-forward, in parallel: it reads the same normed input.
    p.plain_ffn(&l.ffn_up, &None, &l.ffn_down, &None, p.cfg.activation)?;
    p.add_residual(x);
    Ok(())
}
