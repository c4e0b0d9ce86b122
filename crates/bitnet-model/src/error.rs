//! The typed errors of model loading and evaluation.

use thiserror::Error;

/// Everything that can go wrong while loading a model or running it.
#[derive(Debug, Error)]
pub enum ModelError {
    /// The GPU backend failed or cannot run this model.
    #[error("GPU: {0}")]
    Gpu(#[from] bitnet_gpu::GpuError),
    /// The model (or one of its tensors) has no GPU path; run it with `--device cpu`.
    #[error("{0} cannot run on the GPU: {1} (run it with --device cpu)")]
    NotOnGpu(String, String),
    /// The container could not be read.
    #[error("GGUF: {0}")]
    Gguf(String),
    /// `general.architecture` names an architecture this engine has no graph for.
    #[error("unsupported architecture `{arch}`; supported: {supported}")]
    UnsupportedArchitecture { arch: String, supported: String },
    /// A metadata key the architecture needs is absent or has the wrong type.
    #[error("missing or invalid metadata key `{0}`")]
    MissingKey(String),
    /// A metadata value is present but unusable (zero heads, head count not dividing, ...).
    #[error("invalid model configuration: {0}")]
    InvalidConfig(String),
    /// A tensor the graph needs is not in the file.
    #[error("missing tensor `{0}`")]
    MissingTensor(String),
    /// A tensor has a shape other than the one the configuration implies.
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?} (ggml order, ne0 first)")]
    TensorShape {
        name: String,
        found: Vec<u64>,
        expected: Vec<u64>,
    },
    /// A tensor's storage type cannot be used where it is found.
    #[error("tensor `{name}`: {reason}")]
    TensorType { name: String, reason: String },
    /// Decoding or dequantizing a tensor failed.
    #[error("tensor `{name}`: {reason}")]
    TensorData { name: String, reason: String },
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary (size {vocab})")]
    TokenOutOfRange { id: u32, vocab: usize },
    /// A position beyond the learned position embeddings (GPT-2, StarCoder).
    #[error("position {pos} is beyond the model's {max} learned positions")]
    PositionOutOfRange { pos: usize, max: usize },
    /// The KV cache has no room for the tokens.
    #[error("context full: {needed} positions needed, the KV cache holds {capacity}")]
    ContextFull { needed: usize, capacity: usize },
    /// The KV cache element type cannot hold this model's rows.
    #[error("KV cache type {cache_type}: {reason}")]
    CacheType {
        cache_type: &'static str,
        reason: String,
    },
    /// The KV cache was made for a different model shape.
    #[error("KV cache shape does not match the model")]
    CacheMismatch,
    /// A compute kernel refused its operands.
    #[error("kernel: {0}")]
    Kernel(String),
    /// An encoder (embedding) model opened as a text generator.
    #[error("`{0}` is an encoder (an embedding model without an LM head): use `bitnet embed` or `bitnet serve --embeddings`")]
    Encoder(&'static str),
    /// A decoder opened as an encoder.
    #[error("`{0}` is not an encoder architecture (embeddings are computed by `bert` models and BitNet embedding models, `qwen3`/`gemma3` files with `*_norm_in` tensors)")]
    NotEncoder(&'static str),
    /// An encoder input longer than the model's positions.
    #[error("input of {tokens} tokens is longer than the model's context of {max} positions")]
    InputTooLong { tokens: usize, max: usize },
    /// A forward call with no tokens.
    #[error("empty token batch")]
    EmptyBatch,
    /// The forward pass broke one of its own invariants (a bug: please report it with the model
    /// and request). The batch engine turns a panic into this and fails only that step's
    /// sequences.
    #[error("internal error in the forward pass (a bug, please report it): {0}")]
    Internal(String),
}
