//! Compute kernels for bitnet-rs: ternary × int8 matrix products, activation quantization and the
//! F16 head matvec, each with a scalar reference and AVX2 / AVX-512 paths chosen at run time.
//!
//! - [`isa`]: CPU feature detection, the `BITNET_ISA` override and the record of which kernels ran.
//! - [`pool`]: the persistent thread pool every threaded kernel splits its output rows over.
//! - [`quantize`]: per-token int8 activation quantization (bitnet.cpp / HF W1.58A8 convention).
//! - [`ternary`]: the packed in-memory ternary weight layout and its matvec / matmul kernels.
//! - [`mod@f16`]: `f16 × f32` matvec for the F16 (tied embedding) LM head.
//! - [`code_matrix`]: block-quantized weights kept as integer codes (nibbles for 4-bit codes,
//!   else bytes; per-16 or per-32 scales and offsets, f16 where exact), multiplied with
//!   Q8-style int8 activations.
//! - [`q8`]: Q8_0 matrices and their matvec, for a quantized LM head.
//! - [`q6k`]: Q6_K matrices (kept packed) and their product with Q8_K activations, for a
//!   6-bit LM head.
//! - [`attention`]: the score and weighted-value loops of attention over cached rows.
//! - [`norm`]: RMSNorm with ggml's exact rounding.
//! - [`exp`]: the one `exp` of the engine (a vector polynomial) and the softmax and SiLU on it.
//! - [`memory`]: the huge-page allocator the binary puts weights and caches in.
//! - [`order`]: the one summation order of the float kernels (bit-identical on every ISA and
//!   batch size).
//!
//! The crate depends on no other bitnet crate: it knows nothing about files, only about values.
//!
//! ```
//! use bitnet_kernels::{BitLinearScratch, Scales, TernaryMatrix, ThreadPool};
//! // A 2 × 128 all-(+1) ternary matrix with weight scale 0.5.
//! let w = TernaryMatrix::from_values(2, 128, &[1i8; 256], Scales::PerTensor(0.5))?;
//! let x = vec![0.25f32; 128];
//! let mut y = vec![0f32; 2];
//! w.bitlinear(&x, 1, &mut y, &mut BitLinearScratch::new(), ThreadPool::global())?;
//! // a = 127 / 0.25 = 508, every q = 127, D = 128 · 127, y = (D / a) · 0.5 = 16.
//! assert_eq!(y, [16.0, 16.0]);
//! # Ok::<(), bitnet_kernels::KernelError>(())
//! ```

pub mod attention;
pub mod code_matrix;
mod error;
pub mod exp;
pub mod f16;
pub mod isa;
pub mod memory;
pub mod norm;
pub mod order;
pub mod pool;
pub mod q6k;
pub mod q8;
pub mod quantize;
pub mod ternary;

pub use code_matrix::CodeMatrix;
pub use error::KernelError;
pub use f16::{matmul_f16, matvec_f16};
pub use isa::{active_isa, kernels_used, select_isa, Isa, KernelId};
pub use norm::rms_norm;
pub use pool::ThreadPool;
pub use q6k::Q6KMatrix;
pub use q8::{quantize_q8_0, Q8Matrix};
pub use quantize::{quantize_activations, quantize_activations_batch};
pub use ternary::{BitLinearScratch, Scales, TernaryLayout, TernaryMatrix};
