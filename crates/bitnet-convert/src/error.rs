//! The crate's error type: every way a checkpoint can be refused, each naming the file, tensor
//! or config key at fault and, where there is one, what to do about it.

use std::path::PathBuf;

/// Why a conversion failed. Bad input never panics; it ends up here. Each message already
/// includes its cause (the variants do not chain a `source`, so reports do not repeat it).
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A file could not be opened, mapped or read.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A JSON file (`config.json`, the shard index, `tokenizer_config.json`) is malformed.
    #[error("{}: {reason}", path.display())]
    Json { path: PathBuf, reason: String },
    /// A safetensors file whose header or data is malformed.
    #[error("{}: not a valid safetensors file: {reason}", path.display())]
    Safetensors { path: PathBuf, reason: String },
    /// The directory has neither `model.safetensors` nor `model.safetensors.index.json`.
    #[error("{}: no model.safetensors or model.safetensors.index.json (only safetensors checkpoints are supported)", dir.display())]
    NoWeights { dir: PathBuf },
    /// A tensor the architecture needs is not in the checkpoint.
    #[error("tensor {name} is missing from the checkpoint")]
    MissingTensor { name: String },
    /// A tensor has an unexpected dtype or shape.
    #[error("tensor {name}: {reason}")]
    BadTensor { name: String, reason: String },
    /// The config asks for something this converter does not handle.
    #[error("unsupported model: {0}")]
    Unsupported(String),
    /// A required config key is missing or has the wrong type.
    #[error("config.json: {0}")]
    BadConfig(String),
    /// The tokenizer files could not be read.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A tensor cannot be stored in the requested output type.
    #[error("tensor {name}: {error}")]
    Quant {
        name: String,
        error: bitnet_quant::QuantError,
    },
    /// The GGUF file could not be written.
    #[error("writing {}: {error}", path.display())]
    Write {
        path: PathBuf,
        error: bitnet_gguf::GgufError,
    },
}

/// The crate's result type.
pub type Result<T, E = ConvertError> = std::result::Result<T, E>;
