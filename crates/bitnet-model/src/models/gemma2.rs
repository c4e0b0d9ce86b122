//! Gemma 2 (`gemma2`): Gemma with an RMSNorm of each block's output before the residual add,
//! sliding-window attention on every other layer (the even ones; `attention.sliding_window`,
//! default 4096), attention scores soft-capped (`attn_logit_softcapping`, default 50) and the
//! logits too (`final_logit_softcapping`, default 30).
//!
//! ```text
//! x·√d ─┬─ RMSNorm ─ Wq,Wk,Wv ─ RoPE ─ q·s ─ attention(cap) ─ Wo ─ RMSNorm(post) ─(+)─┬─ RMSNorm ─ GeGLU FFN ─ RMSNorm(post) ─(+)─ … ─ head ─ cap
//!       └────────────────────────────────────────────────────────────────────────┘  └─────────────────────────────────────┘
//! ```

use super::loaded;
use crate::blocks::Pass;
use crate::config::{ArchKeys, ModelConfig};
use crate::error::ModelError;
use crate::weights::{Layer, LayerTensors};

/// Local/global alternation (llama.cpp's `set_swa_pattern(2)`: even layers are local).
const SWA_PATTERN: usize = 2;
const DEFAULT_SLIDING_WINDOW: usize = 4096;
const DEFAULT_ATTN_SOFTCAP: f32 = 50.0;
const DEFAULT_FINAL_SOFTCAP: f32 = 30.0;
/// Gemma-2 27B (46 layers) scales queries by `1/sqrt(n_embd / n_head)`, not by the head width.
const LAYERS_OF_27B: usize = 46;

pub(super) fn configure(keys: &ArchKeys<'_>, cfg: &mut ModelConfig) -> Result<(), ModelError> {
    let pattern = keys
        .optional_u64("attention.sliding_window_pattern")
        .unwrap_or(SWA_PATTERN);
    cfg.set_swa_pattern_with_window(
        keys.optional_u64("attention.sliding_window")
            .unwrap_or(DEFAULT_SLIDING_WINDOW),
        pattern,
    );
    cfg.swa_rope_base = keys.optional_f32("rope.freq_base_swa");
    cfg.attn_logit_softcap = Some(
        keys.optional_f32("attn_logit_softcapping")
            .unwrap_or(DEFAULT_ATTN_SOFTCAP),
    );
    cfg.final_logit_softcap = Some(
        keys.optional_f32("final_logit_softcapping")
            .unwrap_or(DEFAULT_FINAL_SOFTCAP),
    );
    if cfg.n_layer == LAYERS_OF_27B {
        cfg.attention_scale = 1.0 / ((cfg.n_embd / cfg.n_head) as f32).sqrt();
    }
    Ok(())
}

pub(super) fn load_layer(t: &LayerTensors<'_>) -> Result<Layer, ModelError> {
    let d = t.cfg.n_embd;
    Ok(Layer {
        attn_post_norm: Some(t.norm("post_attention_norm", d)?),
        ffn_post_norm: Some(t.norm("post_ffw_norm", d)?),
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
    p.scale_queries(p.cfg.attention_scale);
    p.attend(il, 1.0);
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
