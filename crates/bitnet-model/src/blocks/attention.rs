//! Self-attention steps: Q/K/V projections, per-head Q/K norms, RoPE with the KV-cache store,
//! causal (optionally sliding-window, optionally soft-capped) multi-head attention over grouped
//! KV heads, and the output projection.
//!
//! Numerics follow the `model` module docs: with the F16 cache Q is rounded to F16 for `q·k`,
//! and on one-token segments the probabilities too.

use bitnet_kernels::attention::{attention_scores, attention_values, CachedRows};

use super::norm::{projection_input, Buffer};
use super::{Pass, RopeTables};
use crate::error::ModelError;
use crate::linear::Linear;
use crate::ops;

impl Pass<'_, '_> {
    /// `q, k, v = w_q · normed, w_k · normed, w_v · normed`.
    pub fn project_qkv(&mut self, wq: &Linear, wk: &Linear, wv: &Linear) -> Result<(), ModelError> {
        self.project_qkv_inputs(wq, wk, wv, None)
    }

    /// `q = w_q · (RMSNorm(normed) · n_q)`, and so for `k`, `v`: each projection over its own
    /// input norm (BitNet embedding models' `attn_{q,k,v}_norm_in`).
    pub fn project_qkv_each_normed(
        &mut self,
        [wq, wk, wv]: [&Linear; 3],
        input_norms: [&[f32]; 3],
    ) -> Result<(), ModelError> {
        self.project_qkv_inputs(wq, wk, wv, Some(input_norms))
    }

    fn project_qkv_inputs(
        &mut self,
        wq: &Linear,
        wk: &Linear,
        wv: &Linear,
        input_norms: Option<[&[f32]; 3]>,
    ) -> Result<(), ModelError> {
        let Some([nq, nk, nv]) = input_norms else {
            let outs = &mut [&mut self.q[..], &mut self.k[..], &mut self.v[..]];
            return Linear::forward_several(&[wq, wk, wv], &self.normed, self.n, outs, self.pool);
        };
        let input = projection_input(&self.normed, Some(nq), self.cfg.rms_eps);
        wq.forward(&input, self.n, &mut self.q, self.pool)?;
        let input = projection_input(&self.normed, Some(nk), self.cfg.rms_eps);
        wk.forward(&input, self.n, &mut self.k, self.pool)?;
        let input = projection_input(&self.normed, Some(nv), self.cfg.rms_eps);
        wv.forward(&input, self.n, &mut self.v, self.pool)
    }

    /// `q += b_q`, `k += b_k`, `v += b_v` for the biases present.
    pub fn add_qkv_biases(
        &mut self,
        bq: &Option<Vec<f32>>,
        bk: &Option<Vec<f32>>,
        bv: &Option<Vec<f32>>,
    ) {
        for (x, b) in [(&mut self.q, bq), (&mut self.k, bk), (&mut self.v, bv)] {
            if let Some(b) = b {
                ops::add_bias_rows(x, b);
            }
        }
    }

    /// `q, k, v` clamped to `±c` (MPT's `clamp_kqv`).
    pub fn clamp_qkv(&mut self, c: f32) {
        for x in [&mut self.q, &mut self.k, &mut self.v] {
            x.iter_mut().for_each(|v| *v = v.clamp(-c, c));
        }
    }

    /// Per-head RMSNorm of the queries and keys (`attn_q_norm`, `attn_k_norm`).
    pub fn rms_norm_qk_heads(&mut self, q_norm: &[f32], k_norm: &[f32]) {
        self.rms_norm_rows(Buffer::Q, q_norm);
        self.rms_norm_rows(Buffer::K, k_norm);
    }

    /// RoPE on each segment's queries and keys at its positions, then the keys and values of
    /// layer `il` stored in its cache.
    pub fn rope_and_store_kv(&mut self, il: usize) {
        let cfg = self.cfg;
        let (q_dim, kv_dim, half) = (cfg.q_dim(), cfg.kv_dim(), cfg.n_rot / 2);
        let base = cfg.rope_base_of(il);
        for s in 0..self.segments.len() {
            let rows = self.rows_of(s);
            let found = self
                .rope_tables
                .iter()
                .position(|t| t.segment == s && t.base == base.to_bits());
            let t = match found {
                Some(t) => t,
                None => {
                    let plan = &self.plans[s];
                    let tables = rope_tables(cfg, s, base, plan.pos0, rows.len(), plan.capacity);
                    self.rope_tables.push(tables);
                    self.rope_tables.len() - 1
                }
            };
            let tables = &self.rope_tables[t];
            let q = &mut self.q[rows.start * q_dim..rows.end * q_dim];
            let k = &mut self.k[rows.start * kv_dim..rows.end * kv_dim];
            for (i, (qr, kr)) in q
                .chunks_exact_mut(q_dim)
                .zip(k.chunks_exact_mut(kv_dim))
                .enumerate()
            {
                let span = i * half..(i + 1) * half;
                let (cos, sin) = (&tables.cos[span.clone()], &tables.sin[span]);
                ops::rope_apply(qr, cfg.head_dim, cfg.arch.rope, cos, sin);
                ops::rope_apply(kr, cfg.head_dim, cfg.arch.rope, cos, sin);
            }
        }
        self.store_kv(il);
    }

    /// The keys and values of layer `il` stored in each segment's cache (graphs without RoPE
    /// call this alone).
    pub fn store_kv(&mut self, il: usize) {
        let kv_dim = self.cfg.kv_dim();
        for s in 0..self.segments.len() {
            let rows = self.rows_of(s);
            let span = rows.start * kv_dim..rows.end * kv_dim;
            self.segments[s]
                .cache
                .store(il, &self.k[span.clone()], &self.v[span]);
        }
    }

    /// `q *= scale` (graphs that scale the queries instead of the scores, as Gemma's).
    pub fn scale_queries(&mut self, scale: f32) {
        self.q.iter_mut().for_each(|v| *v *= scale);
    }

    /// Causal (sliding-window on the layers the configuration marks; bidirectional over the
    /// segment's own tokens where the configuration is not causal) multi-head attention
    /// with grouped KV heads over each segment's cache of layer `il`: `softmax(cap(scale ·
    /// q·k + alibi)) · v` into `attn`, `cap` being the configuration's attention soft-capping
    /// and `alibi` its ALiBi bias (MPT).
    pub fn attend(&mut self, il: usize, score_scale: f32) {
        let cfg = self.cfg;
        let hd = cfg.head_dim;
        let (q_dim, kv_dim) = (cfg.q_dim(), cfg.kv_dim());
        let group = cfg.n_head / cfg.n_head_kv;
        let window = if cfg.swa_layers[il] {
            cfg.sliding_window
        } else {
            None
        };
        let kv: Vec<_> = self
            .segments
            .iter()
            .map(|seg| seg.cache.layer(il))
            .collect();
        let (q, rows, plans) = (&self.q, &self.rows, &self.plans);
        // The end of what each segment attends to when attention is not causal: all its tokens.
        let ends: Vec<usize> = self
            .segments
            .iter()
            .zip(plans)
            .map(|(seg, plan)| plan.pos0 + seg.tokens.len())
            .collect();
        let causal = cfg.causal;
        // One chunk per token and KV group (the query heads sharing it), handed out dynamically:
        // later tokens attend to more positions, so a static split would leave one thread with
        // most of the work, and one token alone (decode) still spreads over the threads.
        let n_kv = cfg.n_head_kv;
        let out_groups: Vec<std::sync::Mutex<&mut [f32]>> = self
            .attn
            .chunks_exact_mut(group * hd)
            .map(std::sync::Mutex::new)
            .collect();
        self.pool.run(rows.len() * n_kv, &|chunk| {
            let (r, g) = (chunk / n_kv, chunk % n_kv);
            let mut o_group = out_groups[chunk].lock().unwrap_or_else(|p| p.into_inner());
            let (s, i) = rows[r];
            let (plan, (k_all, v_all)) = (&plans[s], kv[s]);
            let rounding = plan.rounding;
            let p = plan.pos0 + i;
            let hi = if causal { p + 1 } else { ends[s] };
            let lo = match window {
                Some(w) if p + 1 > w => p + 1 - w,
                _ => 0,
            };
            // The query heads of one KV group are done together, so each cached key and value
            // row is loaded once per group; every dot and sum is the same arithmetic as one head
            // at a time.
            let span = hi - lo;
            // Each pool thread's scores and queries, reused from chunk to chunk.
            thread_local! {
                static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> =
                    const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
            }
            SCRATCH.with_borrow_mut(|(scores, qs)| {
                scores.clear();
                scores.resize(group * span, 0.0);
                let heads = g * group..(g + 1) * group;
                qs.clear();
                qs.extend_from_slice(&q[r * q_dim + heads.start * hd..r * q_dim + heads.end * hd]);
                if rounding.q_f16 {
                    bitnet_kernels::f16::round_to_f16_in_place(qs);
                }
                let rows_of = |data| CachedRows {
                    data,
                    stride: kv_dim,
                    offset: g * hd,
                    head_dim: hd,
                };
                attention_scores(qs, rows_of(k_all), lo..hi, score_scale, scores);
                for (gi, sc) in scores.chunks_exact_mut(span).enumerate() {
                    if let Some(max_bias) = cfg.alibi_max_bias {
                        let slope = cfg.alibi_slope(max_bias, heads.start + gi);
                        for (j, v) in (lo..hi).zip(sc.iter_mut()) {
                            *v += slope * -((p - j) as f32);
                        }
                    }
                    if let Some(cap) = cfg.attn_logit_softcap {
                        ops::soft_cap(sc, cap);
                    }
                    bitnet_kernels::exp::softmax_in_place(sc, rounding.p_f16);
                }
                attention_values(scores, rows_of(v_all), lo..hi, &mut o_group);
            });
        });
    }

    /// `proj = w_o · attn`.
    pub fn project_attention_output(&mut self, wo: &Linear) -> Result<(), ModelError> {
        wo.forward(&self.attn, self.n, &mut self.proj, self.pool)
    }

    /// `proj += b_o` when the output projection has a bias.
    pub fn add_output_bias(&mut self, bo: &Option<Vec<f32>>) {
        if let Some(b) = bo {
            ops::add_bias_rows(&mut self.proj, b);
        }
    }
}

/// The RoPE tables of segment `segment`'s `rows` positions from `pos0` for RoPE base `base`, its
/// cache holding `capacity` positions (LongRoPE's factors depend on it, as llama.cpp's on its
/// context size).
fn rope_tables(
    cfg: &crate::config::ModelConfig,
    segment: usize,
    base: f32,
    pos0: usize,
    rows: usize,
    capacity: usize,
) -> RopeTables {
    let half = cfg.n_rot / 2;
    let mut cos = vec![0.0f32; rows * half];
    let mut sin = vec![0.0f32; rows * half];
    let scaling = cfg.rope_scaling.as_ref().map(|s| s.for_context(capacity));
    for (i, (cos, sin)) in cos
        .chunks_exact_mut(half.max(1))
        .zip(sin.chunks_exact_mut(half.max(1)))
        .enumerate()
    {
        match scaling {
            None => ops::rope_table(pos0 + i, cfg.n_rot, base, cos, sin),
            Some((factors, mscale)) => {
                ops::rope_table_scaled(pos0 + i, cfg.n_rot, base, factors, mscale, cos, sin)
            }
        }
    }
    RopeTables {
        segment,
        base: base.to_bits(),
        cos,
        sin,
    }
}
