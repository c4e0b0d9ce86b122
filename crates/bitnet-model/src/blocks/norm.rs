//! Norm steps: the pre-norm of a block's input and the norms applied inside and after blocks
//! (BitNet's sub-norms, Gemma's post-norms, BitNet embedding models' per-projection input norms), RMSNorm with ggml's arithmetic
//! ([`crate::ops::rms_norm_rows_in_place`]) or LayerNorm ([`crate::ops::layer_norm_rows_in_place`]).

use super::{for_row_runs, Pass};
use crate::ops;

impl Pass<'_, '_> {
    /// `normed = RMSNorm(x) · w`: the input of a block.
    pub fn rms_norm_input(&mut self, x: &[f32], w: &[f32]) {
        self.normed.copy_from_slice(x);
        self.rms_norm_rows(Buffer::Normed, w);
    }

    /// `normed = LayerNorm(x) · w (+ b)`: the input of a block (LayerNorm architectures).
    pub fn layer_norm_input(&mut self, x: &[f32], w: &[f32], b: Option<&[f32]>) {
        self.normed.copy_from_slice(x);
        let eps = self.cfg.rms_eps;
        for_row_runs(self.pool, &mut self.normed, w.len(), &|_, rows| {
            ops::layer_norm_rows_in_place(rows, w, b, eps)
        });
    }

    /// `x = LayerNorm(x) · w (+ b)`: the residual stream itself normed after a residual add
    /// (post-norm blocks, BERT's `attn_output_norm` and `layer_output_norm`).
    pub fn layer_norm_stream(&self, x: &mut [f32], w: &[f32], b: Option<&[f32]>) {
        let eps = self.cfg.rms_eps;
        for_row_runs(self.pool, x, w.len(), &|_, rows| {
            ops::layer_norm_rows_in_place(rows, w, b, eps)
        });
    }

    /// `attn = RMSNorm(attn) · w` before the output projection (BitNet's `attn_sub_norm`).
    pub fn rms_norm_attention_output(&mut self, w: &[f32]) {
        self.rms_norm_rows(Buffer::Attn, w);
    }

    /// `proj = RMSNorm(proj) · w`: a block's output normed before the residual add (Gemma's
    /// `post_attention_norm`, `post_ffw_norm`).
    pub fn rms_norm_block_output(&mut self, w: &[f32]) {
        self.rms_norm_rows(Buffer::Proj, w);
    }

    /// `buf = RMSNorm(buf) · w` on every `w.len()`-wide row of one of the pass's buffers
    /// ([`crate::ops::rms_norm_rows_in_place`], its rows spread over the pool).
    pub(crate) fn rms_norm_rows(&mut self, buf: Buffer, w: &[f32]) {
        let x = match buf {
            Buffer::Normed => &mut self.normed,
            Buffer::Q => &mut self.q,
            Buffer::K => &mut self.k,
            Buffer::Attn => &mut self.attn,
            Buffer::Proj => &mut self.proj,
            Buffer::Gate => &mut self.gate,
        };
        let eps = self.cfg.rms_eps;
        for_row_runs(self.pool, x, w.len(), &|_, rows| {
            ops::rms_norm_rows_in_place(rows, w, eps)
        });
    }
}

/// A projection's input: the block's normed input itself, or `RMSNorm(normed) · w` where the
/// projection has its own input norm `w` (BitNet embedding models' `*_norm_in`).
pub(super) fn projection_input<'a>(
    normed: &'a [f32],
    input_norm: Option<&[f32]>,
    eps: f32,
) -> std::borrow::Cow<'a, [f32]> {
    match input_norm {
        None => std::borrow::Cow::Borrowed(normed),
        Some(w) => {
            let mut input = normed.to_vec();
            ops::rms_norm_rows_in_place(&mut input, w, eps);
            std::borrow::Cow::Owned(input)
        }
    }
}

/// The buffers of a [`Pass`] a norm step may apply to.
#[derive(Clone, Copy)]
pub(crate) enum Buffer {
    Normed,
    Q,
    K,
    Attn,
    Proj,
    Gate,
}
