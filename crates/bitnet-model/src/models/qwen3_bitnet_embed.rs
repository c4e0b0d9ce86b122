//! BitNet embedding model on Qwen3 (`qwen3` files with `*_norm_in` tensors: microsoft/BitNet's
//! bitnet-embedding-0.6b, `docs/bitnet-embeddings-i2s-guide.md`): the Qwen3 block whose every
//! projection is a BitLinear over its own RMSNorm of its input (`attn_{q,k,v,output}_norm_in`,
//! `ffn_{gate,up,down}_norm_in`); the head width from `qwen3.attention.key_length`. No LM head:
//! the final RMSNorm's states are pooled (`pooling_type`, last token) and L2-normalised by
//! [`crate::encoder`]; attention is causal.
//!
//! ```text
//! x ─┬─ RMSNorm ─ (RMSNorm·Wq, RMSNorm·Wk, RMSNorm·Wv) ─ RMSNorm(q), RMSNorm(k) per head ─ RoPE ─ attention ─ RMSNorm·Wo ─(+)─┐
//!    └────────────────────────────────────────────────────────────────────────────────────────────────────────────┘       │
//! ┌──────────────────────────────────────────────────────────────────────────────────────────────────────────────────────┘
//! └─┬─ RMSNorm ─ silu(RMSNorm·Wgate) · (RMSNorm·Wup) ─ RMSNorm·Wdown ─(+)─
//!   └──────────────────────────────────────────────────────────────────┘
//! ```

use super::{input_norms, loaded, qwen3};
use crate::blocks::Pass;
use crate::error::ModelError;
use crate::weights::{Layer, LayerTensors};

pub(super) fn load_layer(t: &LayerTensors<'_>) -> Result<Layer, ModelError> {
    Ok(Layer {
        input_norms: Some(t.projection_input_norms()?),
        ..qwen3::load_layer(t)?
    })
}

pub(super) fn block(
    p: &mut Pass<'_, '_>,
    il: usize,
    l: &Layer,
    x: &mut [f32],
) -> Result<(), ModelError> {
    let n = input_norms(l, il)?;
    // Attention.
    p.rms_norm_input(x, &l.attn_norm);
    p.project_qkv_each_normed([&l.wq, &l.wk, &l.wv], [&n.q, &n.k, &n.v])?;
    p.add_qkv_biases(&l.bq, &l.bk, &l.bv);
    p.rms_norm_qk_heads(
        loaded(&l.q_norm, "attn_q_norm", il)?,
        loaded(&l.k_norm, "attn_k_norm", il)?,
    );
    p.rope_and_store_kv(il);
    p.attend(il, p.cfg.attention_scale);
    p.rms_norm_attention_output(&n.output);
    p.project_attention_output(&l.wo)?;
    p.add_residual(x);
    // Feed-forward.
    p.rms_norm_input(x, &l.ffn_norm);
    p.gated_ffn_hidden_each_normed(&l.ffn_gate, &l.ffn_up, [&n.gate, &n.up], p.cfg.activation)?;
    p.rms_norm_ffn_hidden(&n.down);
    p.ffn_down(&l.ffn_down)?;
    p.add_residual(x);
    Ok(())
}
