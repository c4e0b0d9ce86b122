//! Baichuan (`baichuan`): the LLaMA block, positions as llama.cpp gives them by model size: RoPE
//! (interleaved pairs) for the 32-layer 7B, ALiBi for the 40-layer 13B (not built: refused with
//! an error), and none at all for any other depth.
//!
//! ```text
//! x ─┬─ RMSNorm ─ Wq,Wk,Wv ─ [RoPE if 32 layers] ─ attention ─ Wo ─(+)─┬─ RMSNorm ─ SwiGLU FFN ─(+)─
//!    └─────────────────────────────────────────────────────────────┘  └──────────────────────┘
//! ```

use crate::blocks::Pass;
use crate::config::{ArchKeys, ModelConfig};
use crate::error::ModelError;
use crate::weights::{Layer, LayerTensors};

/// Baichuan-7B's depth: the only one llama.cpp rotates positions for.
const LAYERS_OF_7B: usize = 32;
/// Baichuan-13B's depth: ALiBi, not built.
const LAYERS_OF_13B: usize = 40;

pub(super) fn configure(_keys: &ArchKeys<'_>, cfg: &mut ModelConfig) -> Result<(), ModelError> {
    if cfg.n_layer == LAYERS_OF_13B {
        return Err(ModelError::InvalidConfig(
            "Baichuan with 40 layers (13B) uses ALiBi positions, which this engine does not implement"
                .into(),
        ));
    }
    Ok(())
}

pub(super) fn load_layer(t: &LayerTensors<'_>) -> Result<Layer, ModelError> {
    t.gated_block(t.qkv_projections()?)
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
    if p.cfg.n_layer == LAYERS_OF_7B {
        p.rope_and_store_kv(il);
    } else {
        p.store_kv(il);
    }
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
