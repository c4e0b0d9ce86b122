//! `--device cpu|gpu|gpu:N`, shared by every subcommand that runs a model (through
//! [`crate::load::LoadArgs`]), and `bitnet devices`, which lists the GPU adapters.

use std::sync::Arc;

use anyhow::Context;
use bitnet_gpu::{DeviceChoice, GpuContext};

/// Where the model runs.
#[derive(clap::Args, Debug, Clone)]
pub struct DeviceArgs {
    /// `cpu`, `gpu` (the first adapter `bitnet devices` lists) or `gpu:N`. On a GPU the
    /// BitLinears (bit-identical to the CPU's) and the F16 head run in WGSL kernels (Vulkan,
    /// Metal, DX12); BitNet models only. No adapter is an error, never a CPU fallback.
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: DeviceChoice,
}

fn parse_device(s: &str) -> Result<DeviceChoice, String> {
    s.parse().map_err(|e: bitnet_gpu::GpuError| e.to_string())
}

impl DeviceArgs {
    /// Opens the chosen GPU (named on stderr), or `None` for the CPU.
    pub fn open(&self) -> anyhow::Result<Option<Arc<GpuContext>>> {
        match self.device {
            DeviceChoice::Cpu => Ok(None),
            DeviceChoice::Gpu { index } => {
                let ctx = GpuContext::open(index)
                    .with_context(|| format!("opening --device {}", self.device))?;
                let a = ctx.adapter();
                eprintln!(
                    "device gpu:{index}: {} ({}, {})",
                    a.name, a.backend, a.device_type
                );
                Ok(Some(ctx))
            }
        }
    }
}

/// `bitnet devices`.
#[derive(clap::Args, Debug)]
pub struct DevicesArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Lists the CPU and every GPU adapter with its backend, limits and features.
pub fn run(args: DevicesArgs) -> anyhow::Result<()> {
    let adapters = bitnet_gpu::adapters();
    if args.json {
        let list: Vec<serde_json::Value> = adapters
            .iter()
            .map(|a| {
                serde_json::json!({
                    "device": format!("gpu:{}", a.index),
                    "name": a.name,
                    "backend": a.backend,
                    "type": a.device_type,
                    "driver": a.driver,
                    "driver_info": a.driver_info,
                    "limits": {
                        "max_storage_buffer_binding_size": a.max_storage_buffer_binding_size,
                        "max_buffer_size": a.max_buffer_size,
                        "max_compute_workgroups_per_dimension": a.max_compute_workgroups_per_dimension,
                        "max_compute_invocations_per_workgroup": a.max_compute_invocations_per_workgroup,
                        "max_compute_workgroup_storage_size": a.max_compute_workgroup_storage_size,
                        "min_subgroup_size": a.min_subgroup_size,
                        "max_subgroup_size": a.max_subgroup_size,
                    },
                    "features": a.features,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    println!(
        "cpu: {} ({} kernels)",
        cpu_name(),
        bitnet_kernels::active_isa()
    );
    if adapters.is_empty() {
        println!("no GPU adapter found (Vulkan, Metal or DX12): --device gpu will fail");
    }
    for a in &adapters {
        println!(
            "gpu:{}: {} ({}, {})",
            a.index, a.name, a.backend, a.device_type
        );
        println!("  driver: {} {}", a.driver, a.driver_info);
        println!(
            "  limits: storage binding {} MiB, buffer {} MiB, {} workgroups per dimension, \
             {} invocations per workgroup, {} KiB workgroup memory, subgroup {}..{}",
            a.max_storage_buffer_binding_size >> 20,
            a.max_buffer_size >> 20,
            a.max_compute_workgroups_per_dimension,
            a.max_compute_invocations_per_workgroup,
            a.max_compute_workgroup_storage_size >> 10,
            a.min_subgroup_size,
            a.max_subgroup_size
        );
        println!("  features: {}", a.features.join(" "));
    }
    Ok(())
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|n| n.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}
