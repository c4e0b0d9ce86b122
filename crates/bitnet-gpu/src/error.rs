//! The GPU backend's typed errors: no silent fallback to the CPU anywhere.

/// Why a GPU operation could not run.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// A GPU was requested and the system offers no adapter at all.
    #[error(
        "no GPU adapter found (Vulkan, Metal or DX12); install a driver (on Linux without a GPU: \
         Mesa's lavapipe, Debian package mesa-vulkan-drivers) or run with --device cpu"
    )]
    NoAdapter,
    /// `gpu:N` names an adapter that does not exist.
    #[error("GPU adapter {index} requested, but only {count} found (see `bitnet devices`)")]
    AdapterIndex { index: usize, count: usize },
    /// A `--device` value that is not `cpu`, `gpu` or `gpu:N`.
    #[error("unknown device {0:?}: expected cpu, gpu or gpu:N")]
    DeviceName(String),
    /// The adapter refused to open a device.
    #[error("GPU adapter {adapter:?} could not open a device: {reason}")]
    RequestDevice { adapter: String, reason: String },
    /// The adapter lacks something the kernels need.
    #[error("GPU adapter {adapter:?} cannot run the kernels: {reason}")]
    Unsupported { adapter: String, reason: String },
    /// A matrix or operand whose shape the kernels do not take.
    #[error("{what}: {reason}")]
    Shape { what: &'static str, reason: String },
    /// The device reported an error (validation, out of memory, lost device) or a read-back
    /// failed.
    #[error("GPU error: {0}")]
    Device(String),
}
