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
    t.gated_block_fused_gate_up(t.qkv_projections()?)
}

// The block is Gemma's (pre-scaled queries, gated FFN; the activation comes from the
// registry): here the gate and up halves are the two parts of the fused `ffn_up`.
pub(super) use super::gemma::block;
