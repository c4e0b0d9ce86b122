//! LLaMA (`llama`): pre-norm RMSNorm blocks, rotary attention with grouped KV heads, SwiGLU FFN.
//!
//! ```text
//! x ─┬─ RMSNorm ─ Wq,Wk,Wv ─ RoPE ─ attention ─ Wo ─(+)─┬─ RMSNorm ─ silu(Wgate·h)·(Wup·h) ─ Wdown ─(+)─
//!    └───────────────────────────────────────────────┘  └─────────────────────────────────────────┘
//! ```

use crate::blocks::Pass;
use crate::error::ModelError;
use crate::weights::{Layer, LayerTensors};

pub(super) fn load_layer(t: &LayerTensors<'_>) -> Result<Layer, ModelError> {
    t.gated_block()
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
    p.rope_and_store_kv(il);
    p.attend(il, p.cfg.attention_scale);
    p.project_attention_output(&l.wo)?;
    p.add_residual(x);
    // Feed-forward.
    p.rms_norm_input(x, &l.ffn_norm);
    p.gated_ffn_hidden(&l.ffn_gate, &l.ffn_up, p.cfg.activation)?;
    p.ffn_down(&l.ffn_down)?;
    p.add_residual(x);
    Ok(())
}
