//! Feed-forward steps: the gated FFN `down(act(gate · h) ⊙ (up · h))` in its three stages, so
//! that a graph can norm the hidden activations in between (BitNet's `ffn_sub_norm`), and the
//! plain FFN `down(act(up · h + b)) + b`.

use super::Pass;
use crate::arch::Activation;
use crate::error::ModelError;
use crate::linear::Linear;
use crate::ops;

impl Pass<'_, '_> {
    /// `gate = act(w_gate · normed) ⊙ (w_up · normed)`.
    pub fn gated_ffn_hidden(
        &mut self,
        w_gate: &Linear,
        w_up: &Linear,
        act: Activation,
    ) -> Result<(), ModelError> {
        w_gate.forward(&self.normed, self.n, &mut self.gate, self.pool)?;
        w_up.forward(&self.normed, self.n, &mut self.up, self.pool)?;
        ops::gated_activation(act, &mut self.gate, &self.up);
        Ok(())
    }

    /// `gate = RMSNorm(gate) · w` (BitNet's `ffn_sub_norm`).
    pub fn rms_norm_ffn_hidden(&mut self, w: &[f32]) {
        ops::rms_norm_rows_in_place(&mut self.gate, w, self.cfg.rms_eps);
    }

    /// The plain FFN `proj = w_down · act(w_up · normed + b_up) + b_down` (the hidden
    /// activations in `gate`).
    pub fn plain_ffn(
        &mut self,
        w_up: &Linear,
        b_up: &Option<Vec<f32>>,
        w_down: &Linear,
        b_down: &Option<Vec<f32>>,
        act: Activation,
    ) -> Result<(), ModelError> {
        w_up.forward(&self.normed, self.n, &mut self.gate, self.pool)?;
        if let Some(b) = b_up {
            ops::add_bias_rows(&mut self.gate, b);
        }
        ops::activation_in_place(act, &mut self.gate);
        w_down.forward(&self.gate, self.n, &mut self.proj, self.pool)?;
        if let Some(b) = b_down {
            ops::add_bias_rows(&mut self.proj, b);
        }
        Ok(())
    }

    /// `proj = w_down · gate`.
    pub fn ffn_down(&mut self, w_down: &Linear) -> Result<(), ModelError> {
        w_down.forward(&self.gate, self.n, &mut self.proj, self.pool)
    }
}
