//! Gemma (`gemma`): embeddings scaled by `sqrt(n_embd)`, queries scaled by `1/sqrt(head_dim)`
//! before attention, GeGLU FFN, the head tied to the embeddings.
//!
//! ```text
//! x·√d ─┬─ RMSNorm ─ Wq,Wk,Wv ─ RoPE ─ q/√d ─ attention ─ Wo ─(+)─┬─ RMSNorm ─ gelu(Wgate·h)·(Wup·h) ─ Wdown ─(+)─
//!       └────────────────────────────────────────────────────────┘  └─────────────────────────────────────────┘
//! ```

use crate::blocks::Pass;
use crate::error::ModelError;
use crate::weights::{Layer, LayerTensors};

pub(super) fn load_layer(t: &LayerTensors<'_>) -> Result<Layer, ModelError> {
    t.gated_block(t.qkv_projections()?)
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
    p.scale_queries(p.cfg.attention_scale);
    p.attend(il, 1.0);
    p.project_attention_output(&l.wo)?;
    p.add_residual(x);
    // Feed-forward.
    p.rms_norm_input(x, &l.ffn_norm);
    p.gated_ffn_hidden(&l.ffn_gate, &l.ffn_up, p.cfg.activation)?;
    p.ffn_down(&l.ffn_down)?;
    p.add_residual(x);
    Ok(())
}
