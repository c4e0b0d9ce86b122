//! LLaMA (`llama`): pre-norm RMSNorm blocks, rotary attention with grouped KV heads, SwiGLU FFN;
//! as llama.cpp loads it, Q/K/V may come fused (`attn_qkv`) and every attention projection may
//! carry a bias. Qwen2 (`qwen2`) is this graph with NEOX RoPE and Q/K/V biases.
//!
//! ```text
//! x ─┬─ RMSNorm ─ Wq,Wk,Wv ─ RoPE ─ attention ─ Wo ─(+)─┬─ RMSNorm ─ silu(Wgate·h)·(Wup·h) ─ Wdown ─(+)─
//!    └───────────────────────────────────────────────┘  └─────────────────────────────────────────┘
//! ```

use crate::blocks::Pass;
use crate::error::ModelError;
use crate::weights::{Layer, LayerTensors};

pub(super) fn load_layer(t: &LayerTensors<'_>) -> Result<Layer, ModelError> {
    Ok(Layer {
        bo: t.bias("attn_output", t.cfg.n_embd)?,
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
