//! bitnet-gpu: one GPU backend for Vulkan, Metal and DX12 (wgpu) with hand-written WGSL kernels.
//!
//! - [`adapters`]: enumeration (`bitnet devices`) and the `--device cpu|gpu|gpu:N` choice.
//! - [`context`]: an opened adapter (its own limits, never wgpu's defaults) and the compiled
//!   kernels. Asking for a GPU where there is none is [`GpuError::NoAdapter`], never a fallback.
//! - [`repack`]: ternary weights repacked on the CPU into the `dot4I8Packed` layout.
//! - [`ternary`]: BitLinear on the GPU, bit-identical to the CPU engine's (activation
//!   quantization with its exact rounding, exact integer products, its summation order).
//! - [`dense`]: the F16 LM head, in the CPU kernel's summation order.
//!
//! Knows formats only as values and scales (from `bitnet-quant`), never files.

pub mod adapters;
pub mod context;
pub mod dense;
mod error;
pub mod repack;
pub mod ternary;

pub use adapters::{adapters, AdapterReport, DeviceChoice};
pub use context::GpuContext;
pub use dense::GpuF16Matrix;
pub use error::GpuError;
pub use ternary::GpuTernaryMatrix;
