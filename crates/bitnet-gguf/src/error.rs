//! `GgufError`: every way reading or writing a GGUF file can fail. Each variant names the
//! key or tensor involved and the absolute byte offset in the file where it was found.

use std::path::PathBuf;

use crate::types::TensorSizeError;

/// A GGUF read or write failure. Offsets are absolute file offsets unless a field says
/// otherwise.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write GGUF output: {0}")]
    Write(#[source] std::io::Error),
    #[error("not a GGUF file: magic {found:02x?} at offset 0 (expected \"GGUF\")")]
    BadMagic { found: Vec<u8> },
    #[error("unsupported GGUF version {version} at offset 4 (only versions 2 and 3 are read)")]
    UnsupportedVersion { version: u32 },
    #[error(
        "big-endian GGUF (version {version} byte-swapped) at offset 4: only little-endian files are read"
    )]
    BigEndian { version: u32 },
    #[error("truncated file: {what} at offset {offset} needs {needed} bytes, {available} left")]
    Truncated {
        what: String,
        offset: u64,
        needed: u64,
        available: u64,
    },
    #[error("{what} at offset {offset} claims {count} entries; the {available} bytes left hold at most {max}")]
    CountTooLarge {
        what: String,
        offset: u64,
        count: u64,
        available: u64,
        max: u64,
    },
    #[error("{what} at offset {offset} is not valid UTF-8")]
    InvalidUtf8 { what: String, offset: u64 },
    #[error("key {key:?}: unknown value type id {type_id} at offset {offset}")]
    UnknownValueType {
        key: String,
        type_id: u32,
        offset: u64,
    },
    #[error("key {key:?}: arrays nested deeper than {max_depth} at offset {offset}")]
    NestingTooDeep {
        key: String,
        offset: u64,
        max_depth: usize,
    },
    #[error("duplicate metadata key {key:?} at offset {offset}")]
    DuplicateKey { key: String, offset: u64 },
    #[error("duplicate tensor name {name:?} at offset {offset}")]
    DuplicateTensor { name: String, offset: u64 },
    #[error("general.alignment at offset {offset}: {reason}")]
    BadAlignment { offset: u64, reason: String },
    #[error("tensor {tensor:?} at offset {offset}: {n_dims} dimensions (at most 4)")]
    TooManyDims {
        tensor: String,
        offset: u64,
        n_dims: u32,
    },
    #[error("tensor {tensor:?} at offset {offset}: dims {dims:?} give more than 2^63-1 elements")]
    ElementCountOverflow {
        tensor: String,
        offset: u64,
        dims: Vec<u64>,
    },
    #[error("tensor {tensor:?} at offset {offset}: unknown or removed ggml type id {type_id}")]
    UnknownTensorType {
        tensor: String,
        offset: u64,
        type_id: u32,
    },
    #[error("tensor {tensor:?} at offset {offset}: {source}")]
    TensorSize {
        tensor: String,
        offset: u64,
        #[source]
        source: TensorSizeError,
    },
    #[error("tensor {tensor:?} (info at offset {offset}): ambiguous type id {type_id}: {reason}")]
    AmbiguousType {
        tensor: String,
        offset: u64,
        type_id: u32,
        reason: String,
    },
    #[error(
        "tensor {tensor:?} (info at offset {offset}): data offset {data_offset} is not a multiple of the alignment {alignment}"
    )]
    MisalignedTensor {
        tensor: String,
        offset: u64,
        data_offset: u64,
        alignment: u64,
    },
    #[error(
        "tensor {tensor:?} (info at offset {offset}): {n_bytes} bytes at data offset {data_offset} run past the end of the data section ({data_len} bytes from file offset {data_start})"
    )]
    TensorPastEnd {
        tensor: String,
        offset: u64,
        data_offset: u64,
        n_bytes: u64,
        data_len: u64,
        data_start: u64,
    },
    #[error(
        "tensor {tensor:?} (data offset {data_offset}, {n_bytes} bytes) overlaps tensor {other:?} at data offset {other_offset}"
    )]
    TensorOverlap {
        tensor: String,
        data_offset: u64,
        n_bytes: u64,
        other: String,
        other_offset: u64,
    },
    #[error("writer: metadata key {key:?}: {reason}")]
    InvalidMetadata { key: String, reason: String },
    #[error("writer: tensor {tensor:?}: {reason}")]
    InvalidTensor { tensor: String, reason: String },
}

impl GgufError {
    /// The variant's name (`"Truncated"`, `"TensorOverlap"`, ...): for manifests, logs and tests.
    pub fn kind(&self) -> &'static str {
        use GgufError::*;
        match self {
            Io { .. } => "Io",
            Write(_) => "Write",
            BadMagic { .. } => "BadMagic",
            UnsupportedVersion { .. } => "UnsupportedVersion",
            BigEndian { .. } => "BigEndian",
            Truncated { .. } => "Truncated",
            CountTooLarge { .. } => "CountTooLarge",
            InvalidUtf8 { .. } => "InvalidUtf8",
            UnknownValueType { .. } => "UnknownValueType",
            NestingTooDeep { .. } => "NestingTooDeep",
            DuplicateKey { .. } => "DuplicateKey",
            DuplicateTensor { .. } => "DuplicateTensor",
            BadAlignment { .. } => "BadAlignment",
            TooManyDims { .. } => "TooManyDims",
            ElementCountOverflow { .. } => "ElementCountOverflow",
            UnknownTensorType { .. } => "UnknownTensorType",
            TensorSize { .. } => "TensorSize",
            AmbiguousType { .. } => "AmbiguousType",
            MisalignedTensor { .. } => "MisalignedTensor",
            TensorPastEnd { .. } => "TensorPastEnd",
            TensorOverlap { .. } => "TensorOverlap",
            InvalidMetadata { .. } => "InvalidMetadata",
            InvalidTensor { .. } => "InvalidTensor",
        }
    }
}
