//! Feed-forward steps: the gated FFN `down(act(gate · h) ⊙ (up · h))` in its three stages, so
//! that a graph can norm the hidden activations in between (BitNet's `ffn_sub_norm`), and the
//! plain FFN `down(act(up · h + b)) + b`.

use super::norm::{projection_input, Buffer};
use super::{for_row_runs, Pass};
use crate::arch::Activation;
use crate::config::MoeConfig;
use crate::error::ModelError;
use crate::linear::Linear;
use crate::ops;
use crate::weights::MoeWeights;

impl Pass<'_, '_> {
    /// `gate = act(w_gate · normed) ⊙ (w_up · normed)`.
    pub fn gated_ffn_hidden(
        &mut self,
        w_gate: &Linear,
        w_up: &Linear,
        act: Activation,
    ) -> Result<(), ModelError> {
        self.gated_ffn_hidden_inputs(w_gate, w_up, None, act)
    }

    /// `gate = act(w_gate · (RMSNorm(normed) · n_gate)) ⊙ (w_up · (RMSNorm(normed) · n_up))`:
    /// each projection over its own input norm (BitNet embedding models' `ffn_{gate,up}_norm_in`).
    pub fn gated_ffn_hidden_each_normed(
        &mut self,
        w_gate: &Linear,
        w_up: &Linear,
        input_norms: [&[f32]; 2],
        act: Activation,
    ) -> Result<(), ModelError> {
        self.gated_ffn_hidden_inputs(w_gate, w_up, Some(input_norms), act)
    }

    fn gated_ffn_hidden_inputs(
        &mut self,
        w_gate: &Linear,
        w_up: &Linear,
        input_norms: Option<[&[f32]; 2]>,
        act: Activation,
    ) -> Result<(), ModelError> {
        // DeepSeek's shared experts are narrower than its dense layers' FFN.
        let width = self.n * w_gate.rows();
        self.gate.resize(width, 0.0);
        self.up.resize(width, 0.0);
        if let Some([n_gate, n_up]) = input_norms {
            let input = projection_input(&self.normed, Some(n_gate), self.cfg.rms_eps);
            w_gate.forward(&input, self.n, &mut self.gate, self.pool)?;
            let input = projection_input(&self.normed, Some(n_up), self.cfg.rms_eps);
            w_up.forward(&input, self.n, &mut self.up, self.pool)?;
        } else {
            let outs = &mut [&mut self.gate[..], &mut self.up[..]];
            Linear::forward_several(&[w_gate, w_up], &self.normed, self.n, outs, self.pool)?;
        }
        let (w, up) = (w_gate.rows(), &self.up);
        for_row_runs(self.pool, &mut self.gate, w, &|r0, gate| {
            ops::gated_activation(act, gate, &up[r0 * w..r0 * w + gate.len()])
        });
        Ok(())
    }

    /// `gate = RMSNorm(gate) · w` (BitNet's `ffn_sub_norm`).
    pub fn rms_norm_ffn_hidden(&mut self, w: &[f32]) {
        self.rms_norm_rows(Buffer::Gate, w);
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
        let width = w_up.rows();
        for_row_runs(self.pool, &mut self.gate, width, &|_, rows| {
            ops::activation_in_place(act, rows)
        });
        w_down.forward(&self.gate, self.n, &mut self.proj, self.pool)?;
        if let Some(b) = b_down {
            ops::add_bias_rows(&mut self.proj, b);
        }
        Ok(())
    }

    /// `proj += Σ_e w_e · down_e(act(gate_e · normed) ⊙ (up_e · normed))` over the `moe.n_expert_used`
    /// experts of each row with the largest routing probabilities (softmax of the router's
    /// logits; `w_e` the probability, times the weights scale where that is not 0 or 1), as
    /// llama.cpp's `build_moe_ffn` with softmax gating and unnormalised weights.
    pub fn add_routed_experts(
        &mut self,
        experts: &MoeWeights,
        moe: &MoeConfig,
        act: Activation,
    ) -> Result<(), ModelError> {
        let (n, d, ne) = (self.n, self.cfg.n_embd, experts.experts.len());
        let mut probs = vec![0.0f32; n * ne];
        experts
            .router
            .forward(&self.normed, n, &mut probs, self.pool)?;
        // Per expert: the rows routed to it and their weights.
        let mut routed: Vec<Vec<(usize, f32)>> = vec![Vec::new(); ne];
        for (r, row) in probs.chunks_exact_mut(ne).enumerate() {
            bitnet_kernels::exp::softmax_in_place(row, false);
            let mut order: Vec<usize> = (0..ne).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            for &e in order.iter().take(moe.n_expert_used) {
                let w = if moe.weights_scale != 0.0 && moe.weights_scale != 1.0 {
                    row[e] * moe.weights_scale
                } else {
                    row[e]
                };
                routed[e].push((r, w));
            }
        }
        for (e, rows) in routed.iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            let [gate_w, up_w, down_w] = &experts.experts[e];
            let m = rows.len();
            let mut h = Vec::with_capacity(m * d);
            for &(r, _) in rows {
                h.extend_from_slice(&self.normed[r * d..(r + 1) * d]);
            }
            let mut gate = vec![0.0f32; m * moe.n_ff_exp];
            let mut up = vec![0.0f32; m * moe.n_ff_exp];
            gate_w.forward(&h, m, &mut gate, self.pool)?;
            up_w.forward(&h, m, &mut up, self.pool)?;
            ops::gated_activation(act, &mut gate, &up);
            let mut out = vec![0.0f32; m * d];
            down_w.forward(&gate, m, &mut out, self.pool)?;
            for (&(r, w), o) in rows.iter().zip(out.chunks_exact(d)) {
                self.proj[r * d..(r + 1) * d]
                    .iter_mut()
                    .zip(o)
                    .for_each(|(p, v)| *p += w * v);
            }
        }
        Ok(())
    }

    /// `proj[r] *= sigmoid(normed[r] · w)` (Qwen2-MoE's gate on its shared experts).
    pub fn scale_by_sigmoid_gate(&mut self, w: &[f32]) {
        let d = self.cfg.n_embd;
        for (h, out) in self
            .normed
            .chunks_exact(d)
            .zip(self.proj.chunks_exact_mut(d))
        {
            let z: f32 = h.iter().zip(w).map(|(a, b)| a * b).sum();
            let g = 1.0 / (1.0 + bitnet_kernels::exp::exp(-z));
            out.iter_mut().for_each(|v| *v *= g);
        }
    }

    /// `proj = w_down · gate`.
    pub fn ffn_down(&mut self, w_down: &Linear) -> Result<(), ModelError> {
        w_down.forward(&self.gate, self.n, &mut self.proj, self.pool)
    }
}
