//! StarCoder2 (`starcoder2`): LayerNorm with bias before each block and the head, biases on every
//! projection, NEOX RoPE, a plain (non-gated) GELU FFN with biases.
//!
//! ```text
//! x ─┬─ LayerNorm+b ─ Wq,Wk,Wv+b ─ RoPE ─ attention ─ Wo+b ─(+)─┬─ LayerNorm+b ─ gelu(Wup·h+b) ─ Wdown+b ─(+)─
//!    └──────────────────────────────────────────────────────┘  └────────────────────────────────────────┘
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
    t.plain_block(t.qkv_projections()?)
}

// The block is GPT-2's with RoPE instead of learned positions.
pub(super) fn block(
    p: &mut Pass<'_, '_>,
    il: usize,
    l: &PlainLayer,
    x: &mut [f32],
) -> Result<(), ModelError> {
    super::gpt2::sequential_block(p, il, l, x, true)
}
