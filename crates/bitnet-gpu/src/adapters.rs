//! Adapter enumeration (`bitnet devices`) and the `--device` choice.

use crate::error::GpuError;

/// Where a model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// The CPU kernels.
    #[default]
    Cpu,
    /// GPU adapter `index` in [`adapters`] order (`gpu` = 0).
    Gpu { index: usize },
}

impl std::str::FromStr for DeviceChoice {
    type Err = GpuError;

    /// `cpu`, `gpu` (the first adapter) or `gpu:N`.
    fn from_str(s: &str) -> Result<Self, GpuError> {
        match s {
            "cpu" => Ok(DeviceChoice::Cpu),
            "gpu" => Ok(DeviceChoice::Gpu { index: 0 }),
            _ => s
                .strip_prefix("gpu:")
                .and_then(|n| n.parse().ok())
                .map(|index| DeviceChoice::Gpu { index })
                .ok_or_else(|| GpuError::DeviceName(s.to_string())),
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceChoice::Cpu => write!(f, "cpu"),
            DeviceChoice::Gpu { index } => write!(f, "gpu:{index}"),
        }
    }
}

/// What `bitnet devices` shows of one adapter.
#[derive(Debug, Clone)]
pub struct AdapterReport {
    pub index: usize,
    pub name: String,
    /// `Vulkan`, `Metal`, `Dx12`, ...
    pub backend: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `Cpu` (a software rasterizer such as lavapipe), ...
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_workgroups_per_dimension: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroup_storage_size: u32,
    pub min_subgroup_size: u32,
    pub max_subgroup_size: u32,
    /// The adapter's optional features, as wgpu names them.
    pub features: Vec<String>,
}

pub(crate) fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::PRIMARY,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    })
}

/// The adapters of the primary backends (Vulkan, Metal, DX12), in a stable order.
pub(crate) fn enumerate(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
    adapters.sort_by_key(|a| {
        let info = a.get_info();
        // Real GPUs first, software rasterizers last; then by name for a stable order.
        let rank = match info.device_type {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Other => 3,
            wgpu::DeviceType::Cpu => 4,
        };
        (rank, info.name, info.device)
    });
    adapters
}

pub(crate) fn report(index: usize, adapter: &wgpu::Adapter) -> AdapterReport {
    let info = adapter.get_info();
    let limits = adapter.limits();
    AdapterReport {
        index,
        name: info.name,
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: info.driver,
        driver_info: info.driver_info,
        max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
        max_buffer_size: limits.max_buffer_size,
        max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
        max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
        max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
        min_subgroup_size: info.subgroup_min_size,
        max_subgroup_size: info.subgroup_max_size,
        features: adapter
            .features()
            .iter_names()
            .map(|(name, _)| name.to_string())
            .collect(),
    }
}

/// Every adapter of the primary backends (an empty list when there is none).
pub fn adapters() -> Vec<AdapterReport> {
    let instance = instance();
    enumerate(&instance)
        .iter()
        .enumerate()
        .map(|(i, a)| report(i, a))
        .collect()
}
