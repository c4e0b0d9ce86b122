//! bitnet-model: the architecture registry, the configuration read from GGUF metadata, weight
//! loading, the forward pass (batched prefill and one-token decode over a preallocated F16 KV
//! cache) and llama.cpp-compatible perplexity scoring.
//!
//! - [`arch`]: which `general.architecture` strings run, and which graph computes each.
//! - `models`: one file per architecture (its tensors, its metadata, its block's diagram).
//! - `blocks`: the shared steps those graphs are made of (norms, attention, FFNs).
//! - [`config`]: hyper-parameters from metadata, validated.
//! - [`weights`]: tensor loading with shape checks; embedding; per-layer weights.
//! - [`linear`]: BitLinear (ternary, via `bitnet-kernels`) and the dense f32 linear.
//! - [`dense`]: the f32 matrix product for non-ternary weights.
//! - [`ops`]: RMSNorm, RoPE, softmax, activations, with ggml's arithmetic.
//! - [`kv_cache`]: the KV cache (F16 by default, or F32).
//! - [`model`]: [`Model`] and its forward pass.
//! - [`encoder`]: [`Encoder`], the forward pass of encoder models (BERT) into token states.
//! - [`pooling`]: token states into one vector per input, L2 normalisation.
//! - [`perplexity`]: llama-perplexity's chunking and scoring.

#![forbid(unsafe_code)]

pub mod arch;
mod blocks;
pub mod config;
pub mod dense;
pub mod encoder;
mod error;
pub mod kv_cache;
pub mod linear;
pub mod model;
mod models;
pub mod ops;
pub mod perplexity;
pub mod pooling;
pub mod weights;

pub use arch::{Activation, ArchSpec, Graph, RopeStyle, ARCHITECTURES};
pub use config::ModelConfig;
pub use encoder::Encoder;
pub use error::ModelError;
pub use kv_cache::{KvCache, KvPrecision, KvSnapshot};
pub use linear::Linear;
pub use model::{BatchSegment, HeadFormat, LoadOptions, Model};
pub use perplexity::{perplexity, PerplexityParams, PerplexityReport};
pub use pooling::Pooling;
