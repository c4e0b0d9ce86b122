//! The typed error every fallible kernel entry point returns.

use crate::isa::Isa;

/// What went wrong when building a kernel operand or calling a kernel.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KernelError {
    /// A matrix with a zero dimension was requested.
    #[error("matrix shape {rows}x{cols} has a zero dimension")]
    EmptyShape { rows: usize, cols: usize },
    /// The column count does not fit the packing granularity.
    #[error("cols = {cols} is not a multiple of {granularity} (the ternary packing granularity)")]
    ColsNotMultiple { cols: usize, granularity: usize },
    /// A slice argument has the wrong length.
    #[error("{what}: expected {expected} elements, got {actual}")]
    LengthMismatch {
        what: &'static str,
        expected: usize,
        actual: usize,
    },
    /// A weight value outside {-1, 0, 1}.
    #[error("weight value {value} at index {index} is not ternary (-1, 0 or 1)")]
    NotTernary { index: usize, value: i8 },
    /// Per-block scales that do not tile the matrix.
    #[error("block length {block_len} is invalid for {cols} columns: it must be a positive multiple of 32 that divides cols")]
    BadBlockLen { block_len: usize, cols: usize },
    /// The integer matmul was asked of a matrix with per-block scales.
    #[error("the integer matmul needs per-tensor scales; this matrix has per-block scales (use matmul_scaled)")]
    NeedsPerTensorScales,
    /// Code matrices multiplied together do not take the same quantized activations.
    #[error("matrices multiplied together must share their columns, scale group and code bias")]
    ActivationsNotShared,
    /// An instruction set this CPU lacks was requested.
    #[error("instruction set {isa} is not supported by this CPU")]
    IsaUnsupported { isa: Isa },
    /// `BITNET_ISA` holds something other than scalar, avx2, avx512 or neon.
    #[error("BITNET_ISA={value:?} is not one of: scalar, avx2, avx512, neon")]
    BadIsaName { value: String },
}
