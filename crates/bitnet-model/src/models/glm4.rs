//! GLM-4 (`glm4`): fused Q/K/V with biases, RoPE (interleaved pairs) over the first half of
//! each head (`rope.dimension_count`), an RMSNorm of each block's output before the residual
//! add, SwiGLU over the two halves of one fused gate-up projection. (The multi-section RoPE of
//! the vision variants, `rope.dimension_sections`, is not built: refused with an error.)
//!
//! ```text
//! x ─┬─ RMSNorm ─ Wqkv+b ─ RoPE(half) ─ attention ─ Wo ─ RMSNorm(post) ─(+)─┬─ RMSNorm ─ Wgate|up ─ silu(g)·u ─ Wdown ─ RMSNorm(post) ─(+)─
//!    └───────────────────────────────────────────────────────────────────┘  └──────────────────────────────────────────────────────┘
//! ```

use super::loaded;
use crate::blocks::Pass;
use crate::config::{ArchKeys, ModelConfig};
use crate::error::ModelError;
use crate::weights::{Layer, LayerTensors};

/// Refuses the multi-section RoPE of the vision variants (llama.cpp uses it when the first two
/// `rope.dimension_sections` are non-zero).
pub(super) fn configure(keys: &ArchKeys<'_>, _cfg: &mut ModelConfig) -> Result<(), ModelError> {
    let sections = keys.file.get_array("glm4.rope.dimension_sections");
    let first_two = sections.map(|s| {
        s.iter()
            .take(2)
            .filter(|v| v.as_u64().is_some_and(|n| n > 0))
            .count()
    });
    if first_two == Some(2) {
        return Err(ModelError::InvalidConfig(
            "GLM-4 with multi-section RoPE (rope.dimension_sections) is not implemented".into(),
        ));
    }
    Ok(())
}

pub(super) fn load_layer(t: &LayerTensors<'_>) -> Result<Layer, ModelError> {
    let d = t.cfg.n_embd;
    Ok(Layer {
        attn_post_norm: Some(t.norm("post_attention_norm", d)?),
        ffn_post_norm: Some(t.norm("post_ffw_norm", d)?),
        ..t.gated_block_fused_gate_up(t.qkv_projections()?)?
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
    p.rms_norm_block_output(loaded(&l.attn_post_norm, "post_attention_norm", il)?);
    p.add_residual(x);
    // Feed-forward.
    p.rms_norm_input(x, &l.ffn_norm);
    p.gated_ffn_hidden(&l.ffn_gate, &l.ffn_up, p.cfg.activation)?;
    p.ffn_down(&l.ffn_down)?;
    p.rms_norm_block_output(loaded(&l.ffn_post_norm, "post_ffw_norm", il)?);
    p.add_residual(x);
    Ok(())
}
