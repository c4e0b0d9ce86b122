//! bitnet-gguf: the GGUF container (reader over mmap, writer, typed metadata, tensor table,
//! validation) and the tensor type table.
//!
//! - [`GgufFile`] (`reader`): parses and validates GGUF v2/v3; every failure is a typed
//!   [`GgufError`] naming the key or tensor and the byte offset.
//! - [`GgufWriter`] (`writer`): writes GGUF v3 laid out like PyPI `gguf`.
//! - [`GgmlType`] (`types`): ids, names, block geometry and exact tensor sizes, including
//!   bitnet.cpp's I2_S / TL1 / TL2; `resolve` decides the ids 36..=39 that collide with
//!   mainline llama.cpp.
#![deny(unsafe_code)]

pub mod error;
pub mod metadata;
pub mod reader;
pub mod resolve;
pub mod types;
pub mod writer;

pub use error::GgufError;
pub use metadata::{MetadataValue, ValueType};
pub use reader::{map_read_only, GgufFile, TensorInfo, DEFAULT_ALIGNMENT};
pub use resolve::Dialects;
pub use types::{Dialect, GgmlType, TensorSizeError, ALL_TYPES};
pub use writer::GgufWriter;
