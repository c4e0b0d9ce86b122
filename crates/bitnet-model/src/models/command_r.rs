//! Command-R (`command-r`, Cohere): one LayerNorm (no bias) per block feeds attention and the
//! SwiGLU FFN in parallel, both added to the residual stream; LayerNorm before the head, which
//! is tied to the embeddings; the logits multiplied by `command-r.logit_scale`. (The per-head
//! Q/K LayerNorms of the 64-layer variants are not built: such files are refused, those tensors
//! being unused.)
//!
//! ```text
//!      ┌─ Wq,Wk,Wv ─ RoPE ─ attention ─ Wo ─┐
//! x ─┬─ LayerNorm ─┤                                    (+)─
//!    │             └─ silu(Wgate·h)·(Wup·h) ─ Wdown ─────┤
//!    └───────────────────────────────────────────────────┘
//! ```

use crate::blocks::Pass;
use crate::config::{ArchKeys, ModelConfig};
use crate::error::ModelError;
use crate::weights::{Layer, LayerTensors};

pub(super) fn configure(keys: &ArchKeys<'_>, cfg: &mut ModelConfig) -> Result<(), ModelError> {
    cfg.layer_norm = true;
    cfg.logit_scale = keys.optional_f32("logit_scale");
    Ok(())
}

pub(super) fn load_layer(t: &LayerTensors<'_>) -> Result<Layer, ModelError> {
    let (d, ff) = (t.cfg.n_embd, t.cfg.n_ff);
    let ffn = [
        t.linear("ffn_gate", d, ff)?,
        t.linear("ffn_up", d, ff)?,
        t.linear("ffn_down", ff, d)?,
    ];
    // The FFN reads the attention's normed input: there is no FFN norm.
    t.block_with(t.qkv_projections()?, Vec::new(), ffn)
}

pub(super) fn block(
    p: &mut Pass<'_, '_>,
    il: usize,
    l: &Layer,
    x: &mut [f32],
) -> Result<(), ModelError> {
    p.layer_norm_input(x, &l.attn_norm, None);
    // Attention.
    p.project_qkv(&l.wq, &l.wk, &l.wv)?;
    p.add_qkv_biases(&l.bq, &l.bk, &l.bv);
    p.rope_and_store_kv(il);
    p.attend(il, p.cfg.attention_scale);
    p.project_attention_output(&l.wo)?;
    p.add_residual(x);
    // Feed-forward, in parallel: it reads the same normed input.
    p.gated_ffn_hidden(&l.ffn_gate, &l.ffn_up, p.cfg.activation)?;
    p.ffn_down(&l.ffn_down)?;
    p.add_residual(x);
    Ok(())
}
