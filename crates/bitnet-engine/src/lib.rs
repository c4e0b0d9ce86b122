//! bitnet-engine: what turns a model into generated text, shared by the CLI and the server:
//! sampling (llama.cpp's samplers, in llama.cpp's order) and stop rules (stop strings matched across
//! token boundaries and removed from the output), the generation loop over a model, and run
//! receipts (what ran, and the gates that check a receipt).

#![forbid(unsafe_code)]

pub mod generate;
pub mod receipt;
pub mod sampling;
pub mod stop;

pub use generate::{generate, EngineError, FinishReason, GenerateRequest, Generation};
pub use receipt::{Receipt, RunTotals};
pub use sampling::{Sampler, SamplingParams};
pub use stop::StopMatcher;
