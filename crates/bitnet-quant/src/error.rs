//! The crate's error type: every way a byte slice, a shape or a request can be rejected.

use bitnet_gguf::GgmlType;

/// Why a format operation was refused. Bad input never panics; it ends up here.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuantError {
    /// The element count does not fill whole blocks of the format.
    #[error("{ty}: {n_elements} elements is not a multiple of the block length {block_len}", ty = .ty.name())]
    NotBlockMultiple {
        ty: GgmlType,
        n_elements: usize,
        block_len: usize,
    },
    /// The byte slice does not have the exact size the format needs for the element count.
    #[error("{ty}: {n_elements} elements need exactly {expected} bytes, got {got}", ty = .ty.name())]
    ByteLength {
        ty: GgmlType,
        n_elements: usize,
        expected: usize,
        got: usize,
    },
    /// The output slice has the wrong length.
    #[error("output holds {got} values, {expected} needed")]
    OutputLength { expected: usize, got: usize },
    /// The type exists but this crate does not implement the operation for it.
    #[error("{ty}: {op} is not supported", ty = .ty.name())]
    Unsupported { ty: GgmlType, op: &'static str },
    /// The layout depends on facts the file does not carry (TL1/TL2 tile sizes).
    #[error("{ty}: unsupported layout for shape {shape:?}: {reason}", ty = .ty.name())]
    UnsupportedLayout {
        ty: GgmlType,
        shape: Vec<u64>,
        reason: &'static str,
    },
    /// A 2-bit code that is not one of the three ternary levels (code 3 in I2_S / TQ2_0).
    #[error("{ty}: element {index} has code {code}, not a ternary level (0, 1, 2)", ty = .ty.name())]
    NotTernary {
        ty: GgmlType,
        index: usize,
        code: u8,
    },
    /// A `TernaryTensor` whose parts do not fit together, or that does not fit the target format.
    #[error("ternary tensor: {0}")]
    InvalidTernary(String),
    /// A tensor shape that the format cannot hold.
    #[error("{ty}: shape {shape:?} is not valid: {reason}", ty = .ty.name())]
    BadShape {
        ty: GgmlType,
        shape: Vec<u64>,
        reason: &'static str,
    },
}
