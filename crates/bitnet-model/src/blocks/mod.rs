//! The shared blocks every architecture's graph is assembled from, as steps of one
//! [`Pass`] over a batch: norms ([`norm`]), self-attention ([`attention`]) and feed-forward
//! networks ([`ffn`]). Each step reads and writes the pass's named buffers (`normed`, `q`, `k`,
//! `v`, `attn`, `proj`, `gate`, `up`), so a graph in [`crate::models`] reads as the sequence of
//! its diagram's boxes, and every step computes exactly what it did when the graph was one
//! function (same operations, same order, same bits).

pub(crate) mod attention;
pub(crate) mod ffn;
pub(crate) mod norm;

use std::sync::Mutex;

use bitnet_kernels::ThreadPool;

use crate::config::ModelConfig;
use crate::error::ModelError;
use crate::kv_cache::KvPrecision;
use crate::model::BatchSegment;

/// Which attention operands are rounded to F16 (see the `model` module docs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttentionRounding {
    pub q_f16: bool,
    pub p_f16: bool,
}

/// Where a segment starts and which roundings its attention follows.
pub(crate) struct SegmentPlan {
    pub pos0: usize,
    /// KV cache capacity (the context size llama.cpp's LongRoPE choice depends on).
    pub capacity: usize,
    pub rounding: AttentionRounding,
}

/// One forward pass over a batch of segments: the batch's layout and the per-layer buffers.
pub(crate) struct Pass<'m, 'b> {
    pub cfg: &'m ModelConfig,
    pub pool: &'m ThreadPool,
    pub segments: &'m mut [BatchSegment<'b>],
    /// Row `r` of the batch is token `rows[r].1` of segment `rows[r].0`.
    pub rows: Vec<(usize, usize)>,
    /// The batch row of each segment's first token.
    pub first_row: Vec<usize>,
    pub plans: Vec<SegmentPlan>,
    /// Number of rows.
    pub n: usize,
    /// The normed block input (`n × n_embd`).
    pub normed: Vec<f32>,
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    /// The attention output before the output projection (`n × q_dim`).
    pub attn: Vec<f32>,
    /// A block's output projection (`n × n_embd`), added to the residual stream.
    pub proj: Vec<f32>,
    /// The FFN's hidden activations (`n × n_ff`).
    pub gate: Vec<f32>,
    pub up: Vec<f32>,
    /// RoPE cos/sin tables made so far in this pass (see [`RopeTables`]).
    pub rope_tables: Vec<RopeTables>,
}

/// The RoPE cos/sin tables of one segment's positions for one RoPE base: made at the first
/// layer with that base and read by every later one, which would compute the same values
/// (the positions, rotary width and scaling are the same in every layer).
pub(crate) struct RopeTables {
    pub segment: usize,
    /// The base's bits.
    pub base: u32,
    /// `n_rot / 2` values per row of the segment.
    pub cos: Vec<f32>,
    pub sin: Vec<f32>,
}

/// Fewest elements an element-wise step spreads over the pool's threads: below this, handing
/// the work out costs more than it saves (a decode step's rows stay on the calling thread).
const PARALLEL_ELEMENTS: usize = 8192;

/// Runs `step(first_row, rows)` over the `width`-wide rows of `x`, in contiguous runs of rows
/// spread over the pool's threads when `x` is large. Each row's arithmetic is the step's own,
/// whatever the split, so the result has the same bits as one call over all of `x`.
pub(crate) fn for_row_runs(
    pool: &ThreadPool,
    x: &mut [f32],
    width: usize,
    step: &(dyn Fn(usize, &mut [f32]) + Sync),
) {
    let rows = x.len() / width.max(1);
    let runs = if x.len() < PARALLEL_ELEMENTS {
        1
    } else {
        pool.chunk_count(rows)
    };
    if runs <= 1 {
        step(0, x);
        return;
    }
    let per_run = rows.div_ceil(runs);
    let parts: Vec<Mutex<&mut [f32]>> = x.chunks_mut(per_run * width).map(Mutex::new).collect();
    pool.run(parts.len(), &|i| {
        let mut part = parts[i].lock().unwrap_or_else(|p| p.into_inner());
        step(i * per_run, &mut part);
    });
}

impl<'m, 'b> Pass<'m, 'b> {
    /// Checks the segments (non-empty, caches of this model's shape with room for their
    /// tokens) and lays out the batch. Nothing is written to any cache.
    pub fn plan(
        cfg: &'m ModelConfig,
        pool: &'m ThreadPool,
        segments: &'m mut [BatchSegment<'b>],
    ) -> Result<Self, ModelError> {
        for seg in segments.iter() {
            if seg.tokens.is_empty() {
                return Err(ModelError::EmptyBatch);
            }
            seg.cache.check_shape(cfg)?;
            seg.cache.ensure_room(seg.tokens.len())?;
        }
        if segments.is_empty() {
            return Err(ModelError::EmptyBatch);
        }
        let rows: Vec<(usize, usize)> = segments
            .iter()
            .enumerate()
            .flat_map(|(s, seg)| (0..seg.tokens.len()).map(move |i| (s, i)))
            .collect();
        let first_row: Vec<usize> = segments
            .iter()
            .scan(0, |acc, seg| {
                let start = *acc;
                *acc += seg.tokens.len();
                Some(start)
            })
            .collect();
        let plans: Vec<SegmentPlan> = segments
            .iter()
            .map(|seg| {
                let f16_rules = seg.cache.precision() != KvPrecision::F32;
                SegmentPlan {
                    pos0: seg.cache.len(),
                    capacity: seg.cache.capacity(),
                    rounding: AttentionRounding {
                        q_f16: f16_rules,
                        p_f16: f16_rules && seg.tokens.len() == 1,
                    },
                }
            })
            .collect();
        let n = rows.len();
        let buf = |width: usize| vec![0.0f32; n * width];
        Ok(Pass {
            cfg,
            pool,
            segments,
            first_row,
            plans,
            n,
            normed: buf(cfg.n_embd),
            q: buf(cfg.q_dim()),
            k: buf(cfg.kv_dim()),
            v: buf(cfg.kv_dim()),
            attn: buf(cfg.q_dim()),
            proj: buf(cfg.n_embd),
            gate: buf(cfg.n_ff),
            up: buf(cfg.n_ff),
            rope_tables: Vec::new(),
            rows,
        })
    }

    /// The batch rows of segment `s`.
    pub fn rows_of(&self, s: usize) -> std::ops::Range<usize> {
        let r0 = self.first_row[s];
        r0..r0 + self.segments[s].tokens.len()
    }

    /// `x += proj`: a block's output joins the residual stream.
    pub fn add_residual(&self, x: &mut [f32]) {
        x.iter_mut().zip(&self.proj).for_each(|(a, b)| *a += b);
    }

    /// Marks every segment's new positions as filled, once every layer stored them.
    pub fn commit(&mut self) {
        for seg in self.segments.iter_mut() {
            seg.cache.advance(seg.tokens.len());
        }
    }
}
