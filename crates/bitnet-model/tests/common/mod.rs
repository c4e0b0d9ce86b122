//! Shared helpers of the model tests: reading the oracle fixtures (safetensors logits,
//! sequences JSON), running our model over a sequence, and the agreement statistics of oracle
//! README §6.
#![allow(dead_code)]

use std::path::Path;

use bitnet_kernels::ThreadPool;
use bitnet_model::Model;
use safetensors::SafeTensors;

/// A `[rows, cols]` f32 matrix read from a fixture.
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Matrix {
    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }
}

/// Reads tensor `name` of a safetensors file as f32, flattened to `[first dim, rest]`.
pub fn read_tensor(path: &Path, name: &str) -> Matrix {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).expect("safetensors");
    let t = st
        .tensor(name)
        .unwrap_or_else(|_| panic!("{} has no tensor {name}", path.display()));
    assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name} dtype");
    let data: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let rows = t.shape()[0];
    Matrix {
        rows,
        cols: data.len() / rows.max(1),
        data,
    }
}

/// The id sequences of a `sequences.json`.
pub fn sequences(path: &Path) -> Vec<Vec<u32>> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("sequences.json")).unwrap();
    v["sequences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| ids(&s["ids"]))
        .collect()
}

pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("id array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

pub fn pool() -> ThreadPool {
    ThreadPool::new(2)
}

/// Logits of every position, the whole sequence in one forward call (prefill path).
pub fn run_batch(model: &Model, ids: &[u32], pool: &ThreadPool) -> Vec<f32> {
    let mut cache = model.new_cache(ids.len());
    model.forward(ids, &mut cache, 0, pool).expect("forward")
}

/// Logits of every position, one token per forward call (decode path).
pub fn run_incremental(model: &Model, ids: &[u32], pool: &ThreadPool) -> Vec<f32> {
    let mut cache = model.new_cache(ids.len());
    let mut out = Vec::with_capacity(ids.len() * model.n_vocab());
    for &id in ids {
        out.extend(model.forward(&[id], &mut cache, 0, pool).expect("forward"));
    }
    out
}

/// Agreement of our logits with a reference over a set of positions (oracle README §5 terms).
#[derive(Debug, Default, Clone)]
pub struct Agreement {
    pub positions: usize,
    pub max_abs: f64,
    pub sum_abs: f64,
    pub count: usize,
    pub min_cosine: f64,
    pub argmax_equal: usize,
    /// Positions where the reference's top-1 − top-2 margin is ≥ 0.5 and argmax differs.
    pub confident_mismatches: usize,
    pub pos0_max_abs: f64,
    /// Positions whose logits all agree within 1e-4 (parity metric, informational).
    pub within_1e4: usize,
}

impl Agreement {
    pub fn new() -> Self {
        Agreement {
            min_cosine: 1.0,
            ..Default::default()
        }
    }

    pub fn mean_abs(&self) -> f64 {
        self.sum_abs / self.count.max(1) as f64
    }

    /// Adds the rows of one sequence (`ours` and `reference` both `[rows, vocab]`).
    pub fn add(&mut self, ours: &[f32], reference: &[f32], vocab: usize) {
        assert_eq!(ours.len(), reference.len(), "logit array sizes");
        for (p, (a, b)) in ours
            .chunks_exact(vocab)
            .zip(reference.chunks_exact(vocab))
            .enumerate()
        {
            self.positions += 1;
            let mut row_max = 0.0f64;
            let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
            for (&x, &y) in a.iter().zip(b) {
                let d = (f64::from(x) - f64::from(y)).abs();
                row_max = row_max.max(d);
                self.sum_abs += d;
                self.count += 1;
                dot += f64::from(x) * f64::from(y);
                na += f64::from(x) * f64::from(x);
                nb += f64::from(y) * f64::from(y);
            }
            self.max_abs = self.max_abs.max(row_max);
            if p == 0 {
                self.pos0_max_abs = self.pos0_max_abs.max(row_max);
            }
            if row_max <= 1e-4 {
                self.within_1e4 += 1;
            }
            self.min_cosine = self.min_cosine.min(dot / (na.sqrt() * nb.sqrt()));
            let (top_ref, margin) = top1_margin(b);
            if argmax(a) == top_ref {
                self.argmax_equal += 1;
            } else if margin >= 0.5 {
                self.confident_mismatches += 1;
            }
        }
    }
}

pub fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

/// Index of the largest value and its margin over the second largest.
pub fn top1_margin(x: &[f32]) -> (usize, f64) {
    let top = argmax(x);
    let second = x
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != top)
        .map(|(_, &v)| v)
        .fold(f32::NEG_INFINITY, f32::max);
    (top, f64::from(x[top]) - f64::from(second))
}

/// Free-running greedy generation (prompt in one batch, then one token per call) compared
/// token by token with a reference generation (oracle README §6.7b): a first mismatch at a step
/// whose reference margin is ≥ 0.5 fails; one at a smaller margin ends the comparison.
/// Returns the number of tokens that matched.
pub fn free_running_greedy(
    model: &Model,
    prompt: &[u32],
    generated: &[u32],
    margins: &[f64],
    pool: &ThreadPool,
) -> usize {
    let mut cache = model.new_cache(prompt.len() + generated.len());
    let mut logits = model
        .forward(prompt, &mut cache, prompt.len() - 1, pool)
        .expect("prefill");
    for (k, &want) in generated.iter().enumerate() {
        let got = argmax(&logits) as u32;
        if got != want {
            assert!(
                margins[k] < 0.5,
                "step {k}: generated {got}, reference {want} at margin {}",
                margins[k]
            );
            return k;
        }
        if k + 1 < generated.len() {
            logits = model.forward(&[got], &mut cache, 0, pool).expect("decode");
        }
    }
    generated.len()
}
