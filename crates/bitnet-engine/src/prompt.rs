//! From text to what the engine evaluates, one rule for every front end (the CLI's `run`, `chat`
//! and `perplexity`, the Python bindings): a one-shot prompt is tokenized with BOS iff the model
//! adds it and special tokens parsed, and gets a KV cache of prompt + max tokens (at most the
//! training context) unless a size is given; a chat turn ends at its template's stop strings and
//! end-of-turn tokens; a perplexity text is tokenized as llama-perplexity does (BOS iff the model
//! adds it, special tokens as plain text), each chunk starting with BOS iff the model adds it.

use bitnet_model::{Model, PerplexityParams};
use bitnet_tokenizer::chat::ChatTemplate;
use bitnet_tokenizer::{EncodeOptions, Tokenizer, TokenizerError};

use crate::generate::{EngineError, GenerateRequest};
use crate::sampling::SamplingParams;

/// The token ids of a one-shot prompt: BOS iff the model adds it, special tokens parsed. A
/// prompt that tokenizes to nothing is [`EngineError::EmptyPrompt`].
pub fn encode_prompt(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>, EngineError> {
    let ids = tokenizer.encode_with(
        text,
        EncodeOptions {
            add_special: true,
            parse_special: true,
        },
    )?;
    if ids.is_empty() {
        return Err(EngineError::EmptyPrompt);
    }
    Ok(ids)
}

/// The KV cache size of a one-shot generation: `ctx_size` when given, else room for the prompt
/// and `max_tokens` (at most the model's training context when the file states one). A prompt
/// that does not leave room for one generated token is [`EngineError::PromptTooLong`].
pub fn one_shot_capacity(
    model: &Model,
    prompt_tokens: usize,
    max_tokens: usize,
    ctx_size: Option<usize>,
) -> Result<usize, EngineError> {
    let wanted = prompt_tokens.saturating_add(max_tokens);
    let capacity = match ctx_size {
        Some(c) => c,
        None if model.config().n_ctx_train > 0 => wanted.min(model.config().n_ctx_train),
        None => wanted,
    };
    if prompt_tokens >= capacity {
        return Err(EngineError::PromptTooLong {
            prompt: prompt_tokens,
            capacity,
        });
    }
    Ok(capacity)
}

/// The request for an assistant turn under `template`: `prompt` is the rendered conversation's
/// ids (or the part of them not already in the cache); it ends at the template's stop strings and
/// end-of-turn tokens besides the model's end-of-generation tokens.
pub fn chat_request(
    template: &ChatTemplate,
    tokenizer: &Tokenizer,
    prompt: Vec<u32>,
    max_tokens: usize,
    sampling: SamplingParams,
) -> GenerateRequest {
    GenerateRequest {
        prompt,
        max_tokens,
        sampling,
        stop: template.stop_strings().to_vec(),
        stop_tokens: template.stop_token_ids(tokenizer),
        show_special: false,
        constraint: None,
    }
}

/// A text to score, tokenized as llama-perplexity does: BOS iff the model adds it, special-token
/// texts as plain text.
pub fn perplexity_tokens(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>, TokenizerError> {
    tokenizer.encode_with(
        text,
        EncodeOptions {
            add_special: true,
            parse_special: false,
        },
    )
}

/// Perplexity chunking for this tokenizer: `n_ctx` tokens a chunk, at most `max_chunks`, each
/// chunk starting with BOS iff the model adds it.
pub fn perplexity_params(
    tokenizer: &Tokenizer,
    n_ctx: usize,
    max_chunks: usize,
) -> PerplexityParams {
    PerplexityParams {
        n_ctx,
        max_chunks,
        bos: if tokenizer.adds_bos() {
            tokenizer.bos()
        } else {
            None
        },
    }
}
