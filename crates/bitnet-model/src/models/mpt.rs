//! MPT (`mpt`): no position embedding; ALiBi biases the attention scores instead
//! (`mpt.attention.max_alibi_bias`); LayerNorm (optional biases), one fused Q/K/V projection
//! optionally clamped (`mpt.attention.clamp_kqv`), a plain GELU FFN. (The optional Q/K
//! LayerNorms, learned positions and FFN activation scales of some variants are not built: such
//! files are refused, those tensors being unused.)
//!
//! ```text
//! x ─┬─ LayerNorm ─ Wqkv ─ clamp ─ attention(+ALiBi) ─ Wo ─(+)─┬─ LayerNorm ─ gelu(Wup·h) ─ Wdown ─(+)─
//!    └─────────────────────────────────────────────────────┘  └──────────────────────────────────┘
//! ```

use crate::blocks::Pass;
use crate::config::{ArchKeys, ModelConfig};
use crate::error::ModelError;
use crate::weights::{LayerTensors, PlainLayer};

pub(super) fn configure(keys: &ArchKeys<'_>, cfg: &mut ModelConfig) -> Result<(), ModelError> {
    cfg.layer_norm = true;
    // As llama.cpp: ALiBi only with a positive maximum bias.
    cfg.alibi_max_bias = keys
        .optional_f32("attention.max_alibi_bias")
        .filter(|b| *b > 0.0);
    cfg.clamp_kqv = keys
        .optional_f32("attention.clamp_kqv")
        .filter(|c| *c > 0.0);
    Ok(())
}

pub(super) fn load_layer(t: &LayerTensors<'_>) -> Result<PlainLayer, ModelError> {
    t.plain_block(t.qkv_projections()?)
}

// The block is GPT-2's: positions enter as the ALiBi bias inside `attend`, the clamp as
// configured.
pub(super) fn block(
    p: &mut Pass<'_, '_>,
    il: usize,
    l: &PlainLayer,
    x: &mut [f32],
) -> Result<(), ModelError> {
    super::gpt2::sequential_block(p, il, l, x, false)
}
