//! bitnet-gguf: the GGUF container (reader over mmap, writer, typed metadata, tensor table,
//! validation) and the tensor type table.

pub mod types;

pub use types::GgmlType;
