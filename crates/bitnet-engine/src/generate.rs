//! The generation loop: prefill the prompt in one batch, then decode one token at a time,
//! sampling each, streaming text pieces as they complete (incomplete UTF-8 held back), and
//! stopping on an end-of-generation token, a stop string, the token limit or a full context.

use std::time::Instant;

use bitnet_kernels::ThreadPool;
use bitnet_model::{KvCache, Model, ModelError};
use bitnet_tokenizer::{Tokenizer, TokenizerError};

use crate::constraint::{Constraint, ConstraintError};
use crate::sampling::SamplingParams;
use crate::sequence::SequenceState;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    /// Prompt token ids (BOS included if the model wants one).
    pub prompt: Vec<u32>,
    /// Most tokens to generate.
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Stop strings, matched across token boundaries and removed from the output.
    pub stop: Vec<String>,
    /// Extra token ids that end generation besides the model's end-of-generation tokens
    /// (e.g. a chat template's end-of-turn token).
    pub stop_tokens: Vec<u32>,
    /// Show special tokens in the text.
    pub show_special: bool,
    /// A grammar the output must match (compiled for this request, at its start).
    pub constraint: Option<Constraint>,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model produced an end-of-generation token (not shown), or the grammar of a
    /// constrained request is complete and allows nothing more.
    EndOfGeneration,
    /// A stop string matched (removed from the text).
    StopString,
    /// `max_tokens` were generated.
    Length,
    /// The KV cache is full.
    ContextFull,
}

/// The outcome of one generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Generated token ids (including a final end-of-generation token, if any).
    pub tokens: Vec<u32>,
    pub finish: FinishReason,
    pub prompt_tokens: usize,
    pub prefill_seconds: f64,
    pub decode_seconds: f64,
}

/// Errors of the generation loop.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("the prompt has {prompt} tokens but the context holds {capacity}: shorten the prompt or raise the context size")]
    PromptTooLong { prompt: usize, capacity: usize },
    #[error(transparent)]
    Constraint(#[from] ConstraintError),
    /// The text callback asked to stop with an error (e.g. a closed output).
    #[error("output: {0}")]
    Output(String),
}

/// Runs one generation from an empty `cache`, calling `on_text` with each new piece of text.
pub fn generate(
    model: &Model,
    tokenizer: &Tokenizer,
    cache: &mut KvCache,
    pool: &ThreadPool,
    request: &GenerateRequest,
    mut on_text: impl FnMut(&str) -> Result<(), String>,
) -> Result<Generation, EngineError> {
    let prompt = &request.prompt;
    if prompt.is_empty() {
        return Err(EngineError::EmptyPrompt);
    }
    if prompt.len() + cache.len() >= cache.capacity() {
        return Err(EngineError::PromptTooLong {
            prompt: prompt.len(),
            capacity: cache.capacity(),
        });
    }
    let mut sequence = SequenceState::new(tokenizer, request);
    let start = Instant::now();
    let mut logits = model.forward(prompt, cache, prompt.len() - 1, pool)?;
    let prefill_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let finish = loop {
        let step = sequence.step(&logits, cache.len() == cache.capacity())?;
        on_text(&step.text).map_err(EngineError::Output)?;
        match (step.finish, step.token) {
            (Some(finish), _) => break finish,
            (None, Some(next)) => logits = model.forward(&[next], cache, 0, pool)?,
            (None, None) => unreachable!("a step without a token always finishes"),
        }
    };
    Ok(Generation {
        tokens: sequence.tokens().to_vec(),
        finish,
        prompt_tokens: prompt.len(),
        prefill_seconds,
        decode_seconds: start.elapsed().as_secs_f64(),
    })
}
