//! BitNet b1.58 (`bitnet-b1.58`, `bitnet-25`: the 2B-4T graph; `bitnet`: llama.cpp's, SiLU and
//! optional per-linear scales). Every linear is a BitLinear when its weights are ternary.
//!
//! ```text
//! x ─┬─ RMSNorm ─ Wq,Wk,Wv ─ RoPE ─ attention ─ RMSNorm(sub) ─ Wo ─(+)─┬─ RMSNorm ─ Wgate,Wup ─ act(g)·u ─ RMSNorm(sub) ─ Wdown ─(+)─
//!    └──────────────────────────────────────────────────────────────┘  └───────────────────────────────────────────────────────────┘
//! ```

use super::loaded;
use crate::blocks::Pass;
use crate::config::ModelConfig;
use crate::error::ModelError;
use crate::weights::{Layer, LayerTensors};

/// llama.cpp's `bitnet` files may carry a one-element `<linear>.scale` per linear.
pub(super) fn has_linear_scales(cfg: &ModelConfig) -> bool {
    cfg.arch.name == "bitnet"
}

pub(super) fn load_layer(t: &LayerTensors<'_>) -> Result<Layer, ModelError> {
    let c = t.cfg;
    Ok(Layer {
        attn_sub_norm: Some(t.norm("attn_sub_norm", c.q_dim())?),
        ffn_sub_norm: Some(t.norm("ffn_sub_norm", c.n_ff)?),
        ..t.gated_block(t.separate_qkv()?)?
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
    p.rope_and_store_kv(il);
    p.attend(il, p.cfg.attention_scale);
    p.rms_norm_attention_output(loaded(&l.attn_sub_norm, "attn_sub_norm", il)?);
    p.project_attention_output(&l.wo)?;
    p.add_residual(x);
    // Feed-forward.
    p.rms_norm_input(x, &l.ffn_norm);
    p.gated_ffn_hidden(&l.ffn_gate, &l.ffn_up, p.cfg.activation)?;
    p.rms_norm_ffn_hidden(loaded(&l.ffn_sub_norm, "ffn_sub_norm", il)?);
    p.ffn_down(&l.ffn_down)?;
    p.add_residual(x);
    Ok(())
}
