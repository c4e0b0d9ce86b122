//! Perplexity as llama.cpp's `llama-perplexity` computes it (oracle README §3): the text is
//! tokenized once, cut into consecutive `n_ctx`-token chunks whose first token is replaced by
//! BOS iff the model adds BOS, each chunk evaluated from an empty cache, and only the second half
//! scored (positions `n_ctx/2 .. n_ctx-2` predicting the next token). The final line's ± is
//! llama.cpp's: `sqrt((mean(nll²) − mean(nll)²) / (N − 1)) · PPL`.

use bitnet_kernels::ThreadPool;

use crate::error::ModelError;
use crate::model::Model;

/// How to cut and score the token stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerplexityParams {
    /// Tokens per chunk (`-c`).
    pub n_ctx: usize,
    /// Maximum number of chunks (`--chunks`); fewer if the text is shorter.
    pub max_chunks: usize,
    /// `Some(bos)` if the model adds BOS: each chunk's first token is replaced by it.
    pub bos: Option<u32>,
}

/// The result of a perplexity run.
#[derive(Debug, Clone, PartialEq)]
pub struct PerplexityReport {
    /// Perplexity of each chunk alone.
    pub chunk_ppl: Vec<f64>,
    /// Perplexity over chunks `1..=i` (llama.cpp's `[i]` values).
    pub running_ppl: Vec<f64>,
    /// Final perplexity over all scored tokens.
    pub ppl: f64,
    /// llama.cpp's printed ± value.
    pub stderr: f64,
    /// Number of scored tokens.
    pub n_scored: usize,
}

/// Errors specific to the perplexity set-up, beside model errors.
#[derive(Debug, thiserror::Error)]
pub enum PerplexityError {
    #[error("the text has {tokens} tokens; at least 2·n_ctx = {needed} are needed")]
    TooShort { tokens: usize, needed: usize },
    #[error("n_ctx must be at least 4, got {0}")]
    ContextTooSmall(usize),
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// `-log p(target)` from one row of logits, with llama.cpp's f64 log-sum-exp.
pub fn negative_log_likelihood(logits: &[f32], target: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum_exp: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    -(f64::from(logits[target] - max) - sum_exp.ln())
}

/// Runs the perplexity evaluation over `tokens` (the whole text, tokenized once with BOS at the
/// start iff the model adds BOS). `on_chunk(i, running_ppl)` is called after each chunk.
pub fn perplexity(
    model: &Model,
    tokens: &[u32],
    params: PerplexityParams,
    pool: &ThreadPool,
    mut on_chunk: impl FnMut(usize, f64),
) -> Result<PerplexityReport, PerplexityError> {
    let n_ctx = params.n_ctx;
    if n_ctx < 4 {
        return Err(PerplexityError::ContextTooSmall(n_ctx));
    }
    if tokens.len() < 2 * n_ctx {
        return Err(PerplexityError::TooShort {
            tokens: tokens.len(),
            needed: 2 * n_ctx,
        });
    }
    let n_chunks = (tokens.len() / n_ctx).min(params.max_chunks);
    let first = n_ctx / 2;
    let vocab = model.n_vocab();
    let mut cache = model.new_cache(n_ctx);
    let (mut nll, mut nll2, mut count) = (0.0f64, 0.0f64, 0usize);
    let mut chunk_ppl = Vec::with_capacity(n_chunks);
    let mut running_ppl = Vec::with_capacity(n_chunks);
    for i in 0..n_chunks {
        let start = i * n_ctx;
        let mut batch = tokens[start..start + n_ctx].to_vec();
        if let Some(bos) = params.bos {
            batch[0] = bos;
        }
        cache.clear();
        let logits = model.forward(&batch, &mut cache, first, pool)?;
        let mut chunk_nll = 0.0f64;
        for j in 0..n_ctx - 1 - first {
            let row = &logits[j * vocab..(j + 1) * vocab];
            let target = tokens[start + first + j + 1] as usize;
            if target >= vocab {
                return Err(ModelError::TokenOutOfRange {
                    id: target as u32,
                    vocab,
                }
                .into());
            }
            let v = negative_log_likelihood(row, target);
            chunk_nll += v;
            nll += v;
            nll2 += v * v;
            count += 1;
        }
        chunk_ppl.push((chunk_nll / (n_ctx - 1 - first) as f64).exp());
        let running = (nll / count as f64).exp();
        running_ppl.push(running);
        on_chunk(i, running);
    }
    let mean = nll / count as f64;
    let mean_sq = nll2 / count as f64;
    let ppl = mean.exp();
    let var = mean_sq - mean * mean;
    let stderr = if var > 0.0 && count > 1 {
        (var / (count - 1) as f64).sqrt() * ppl
    } else {
        0.0
    };
    Ok(PerplexityReport {
        chunk_ppl,
        running_ppl,
        ppl,
        stderr,
        n_scored: count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nll_of_uniform_logits_is_log_vocab() {
        let logits = vec![0.5f32; 100];
        let v = negative_log_likelihood(&logits, 7);
        assert!((v - (100f64).ln()).abs() < 1e-12);
    }
}
