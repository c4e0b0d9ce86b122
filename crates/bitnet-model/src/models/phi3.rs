//! Phi-3 (`phi3`): the LLaMA block with one fused Q/K/V projection (`attn_qkv`), one fused
//! gate-up projection (`ffn_up`, gate rows first), queries scaled by `1/sqrt(head_dim)` before
//! attention, and LongRoPE frequency factors (`rope_factors_short`/`_long`) when present.
//! llama.cpp disables Phi-3's sliding window; so does this graph.
//!
//! ```text
//! x ─┬─ RMSNorm ─ Wqkv ─ RoPE(factors) ─ q/√d ─ attention ─ Wo ─(+)─┬─ RMSNorm ─ Wgate|up ─ silu(g)·u ─ Wdown ─(+)─
//!    └──────────────────────────────────────────────────────────┘  └──────────────────────────────────────┘
//! ```

use crate::config::{ArchKeys, LongRope, ModelConfig};
use crate::error::ModelError;
use crate::weights::{Layer, LayerTensors};

pub(super) fn configure(keys: &ArchKeys<'_>, cfg: &mut ModelConfig) -> Result<(), ModelError> {
    cfg.rope_scaling = LongRope::read(keys, cfg)?;
    Ok(())
}

pub(super) fn load_layer(t: &LayerTensors<'_>) -> Result<Layer, ModelError> {
    let c = t.cfg;
    let (d, ff, qd) = (c.n_embd, c.n_ff, c.q_dim());
    let qkv = t.qkv_projections()?;
    let [ffn_gate, ffn_up]: [_; 2] = t
        .fused_linear("ffn_up", d, &[ff, ff])?
        .try_into()
        .map_err(|_| ModelError::Internal("the gate-up split gave other than two parts".into()))?;
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
        ffn_gate,
        ffn_up,
        ffn_down: t.linear("ffn_down", ff, d)?,
        ffn_sub_norm: None,
        ffn_post_norm: None,
    })
}

// The block is Gemma's (pre-scaled queries, gated FFN; the activation comes from the
// registry): here the gate and up halves are the two parts of the fused `ffn_up`.
pub(super) use super::gemma::block;
