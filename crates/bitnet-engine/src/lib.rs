//! bitnet-engine: what turns a model into generated text, shared by the CLI and the server:
//! sampling (llama.cpp's samplers, in llama.cpp's order) and stop rules (stop strings matched across
//! token boundaries and removed from the output), and the generation loop over a model.

#![forbid(unsafe_code)]

pub mod generate;
pub mod sampling;
pub mod stop;

pub use generate::{generate, EngineError, FinishReason, GenerateRequest, Generation};
pub use sampling::{Sampler, SamplingParams};
pub use stop::StopMatcher;
