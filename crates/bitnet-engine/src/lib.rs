//! bitnet-engine: what turns a model into generated text, shared by the CLI and the server:
//! sampling (llama.cpp's samplers, in llama.cpp's order) and stop rules (stop strings matched across
//! token boundaries and removed from the output), how text becomes a prompt (one-shot, chat turn,
//! perplexity text: `prompt`), the generation loop over a model, continuous batching of many
//! sequences over one model (for the server) with prompt caching across requests, constrained decoding (a grammar's token mask before
//! sampling: JSON Schema, regex, Lark, GBNF), and run receipts (what ran, and the gates that check a
//! receipt).

#![forbid(unsafe_code)]

pub mod batch;
pub mod constraint;
pub mod generate;
pub mod prompt;
pub mod prompt_cache;
pub mod receipt;
pub mod sampling;
pub mod sequence;
pub mod stop;

pub use batch::{
    BatchEngine, BatchOptions, EngineStats, EventSink, SequenceEvent, SequenceRequest,
    SequenceSummary, SubmitError, TokenEvent,
};
pub use constraint::{Constraint, ConstraintCompiler, ConstraintError, ConstraintSpec};
pub use generate::{generate, EngineError, FinishReason, GenerateRequest, Generation};
pub use prompt::{
    chat_request, encode_prompt, one_shot_capacity, perplexity_params, perplexity_tokens,
};
pub use receipt::{Receipt, RunTotals};
pub use sampling::{Sampler, SamplingParams};
pub use sequence::{token_logprob, TokenLogprob};
pub use stop::StopMatcher;
