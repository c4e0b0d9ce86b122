//! ChatGLM 2/3 (`chatglm`): the LLaMA block (`models/llama.rs`) over fused weights: one Q/K/V
//! projection with biases and one gate-up projection (SwiGLU over its halves); RoPE
//! (interleaved pairs) over the first half of each head (`rope.dimension_count`).
//!
//! ```text
//! x ─┬─ RMSNorm ─ Wqkv+b ─ RoPE(half) ─ attention ─ Wo ─(+)─┬─ RMSNorm ─ Wgate|up ─ silu(g)·u ─ Wdown ─(+)─
//!    └──────────────────────────────────────────────────────┘  └──────────────────────────────────────┘
//! ```

use crate::error::ModelError;
use crate::weights::{Layer, LayerTensors};

pub(super) fn load_layer(t: &LayerTensors<'_>) -> Result<Layer, ModelError> {
    t.gated_block_fused_gate_up(t.qkv_projections()?)
}

// The block is LLaMA's.
pub(super) use super::llama::block;
