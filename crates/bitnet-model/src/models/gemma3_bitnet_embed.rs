//! BitNet embedding model on Gemma 3 (`gemma3` files with `*_norm_in` tensors: microsoft/BitNet's
//! bitnet-embedding-270m, `docs/bitnet-embeddings-i2s-guide.md`): the Gemma 3 block (embeddings
//! scaled by `sqrt(n_embd)`, per-head Q/K RMSNorm, queries scaled by `1/sqrt(head_dim)`, post-norms
//! of each block's output, GeGLU, the sliding-window layers of `gemma3`) whose every projection is
//! a BitLinear over its own RMSNorm of its input (`attn_{q,k,v,output}_norm_in`,
//! `ffn_{gate,up,down}_norm_in`). Gemma's `(1 + w)` norms come with the `+1` already in the file
//! (the converter adds it to every norm but the `*_norm_in` ones, which are plain RMSNorms). No LM
//! head: the final RMSNorm's states are pooled and L2-normalised by [`crate::encoder`].
//!
//! ```text
//! x ─┬─ RMSNorm ─ (RMSNorm·Wq, RMSNorm·Wk, RMSNorm·Wv) ─ RMSNorm(q,k) ─ RoPE ─ q/√d ─ attention ─ RMSNorm·Wo ─ RMSNorm(post) ─(+)─┐
//!    └─────────────────────────────────────────────────────────────────────────────────────────────────────────────────┘       │
//! ┌───────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────┘
//! └─┬─ RMSNorm ─ gelu(RMSNorm·Wgate) · (RMSNorm·Wup) ─ RMSNorm·Wdown ─ RMSNorm(post) ─(+)─
//!   └─────────────────────────────────────────────────────────────────────────────────┘
//! ```

use super::{gemma3, input_norms, loaded};
use crate::blocks::Pass;
use crate::error::ModelError;
use crate::weights::{Layer, LayerTensors};

pub(super) fn load_layer(t: &LayerTensors<'_>) -> Result<Layer, ModelError> {
    Ok(Layer {
        input_norms: Some(t.projection_input_norms()?),
        ..gemma3::load_layer(t)?
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
    p.scale_queries(p.cfg.attention_scale);
    p.attend(il, 1.0);
    p.rms_norm_attention_output(&n.output);
    p.project_attention_output(&l.wo)?;
    p.rms_norm_block_output(loaded(&l.attn_post_norm, "post_attention_norm", il)?);
    p.add_residual(x);
    // Feed-forward.
    p.rms_norm_input(x, &l.ffn_norm);
    p.gated_ffn_hidden_each_normed(&l.ffn_gate, &l.ffn_up, [&n.gate, &n.up], p.cfg.activation)?;
    p.rms_norm_ffn_hidden(&n.down);
    p.ffn_down(&l.ffn_down)?;
    p.rms_norm_block_output(loaded(&l.ffn_post_norm, "post_ffw_norm", il)?);
    p.add_residual(x);
    Ok(())
}
