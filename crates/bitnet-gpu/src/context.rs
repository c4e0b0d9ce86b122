//! An opened GPU: the adapter, its device and queue (opened with the adapter's own limits, never
//! wgpu's defaults), the compiled kernels, and the buffer plumbing every product shares.

use std::sync::Arc;

use wgpu::util::DeviceExt;

use crate::adapters::{self, AdapterReport};
use crate::error::GpuError;

/// The compiled compute pipelines.
pub(crate) struct Kernels {
    pub quantize: wgpu::ComputePipeline,
    pub bitlinear: wgpu::ComputePipeline,
    pub f16_matmul: wgpu::ComputePipeline,
}

/// One opened GPU adapter, shared by every matrix uploaded to it.
pub struct GpuContext {
    report: AdapterReport,
    pub(crate) limits: wgpu::Limits,
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) kernels: Kernels,
    binding_cap: Option<u64>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.report.name)
            .field("backend", &self.report.backend)
            .finish_non_exhaustive()
    }
}

impl GpuContext {
    /// Opens adapter `index` of [`adapters::adapters`]. No adapter, or too few, is an error.
    pub fn open(index: usize) -> Result<Arc<GpuContext>, GpuError> {
        Self::open_with_binding_cap(index, None)
    }

    /// [`GpuContext::open`] with storage bindings capped below the adapter's limit (tests use a
    /// small cap to exercise the splitting of large matrices into several bindings).
    pub fn open_with_binding_cap(
        index: usize,
        binding_cap: Option<u64>,
    ) -> Result<Arc<GpuContext>, GpuError> {
        let instance = adapters::instance();
        let mut all = adapters::enumerate(&instance);
        if all.is_empty() {
            return Err(GpuError::NoAdapter);
        }
        if index >= all.len() {
            return Err(GpuError::AdapterIndex {
                index,
                count: all.len(),
            });
        }
        let adapter = all.swap_remove(index);
        let report = adapters::report(index, &adapter);
        let name = report.name.clone();
        let limits = adapter.limits();
        let downlevel = adapter.get_downlevel_capabilities();
        if !downlevel
            .flags
            .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
        {
            return Err(GpuError::Unsupported {
                adapter: name,
                reason: "no compute shaders".into(),
            });
        }
        if limits.max_compute_invocations_per_workgroup < 64 {
            return Err(GpuError::Unsupported {
                adapter: name,
                reason: format!(
                    "{} invocations per workgroup, the kernels need 64",
                    limits.max_compute_invocations_per_workgroup
                ),
            });
        }
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("bitnet"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| GpuError::RequestDevice {
            adapter: name.clone(),
            reason: e.to_string(),
        })?;
        let kernels = Kernels::compile(&device)?;
        Ok(Arc::new(GpuContext {
            report,
            limits,
            device,
            queue,
            kernels,
            binding_cap,
        }))
    }

    /// The adapter this context runs on.
    pub fn adapter(&self) -> &AdapterReport {
        &self.report
    }

    /// The largest storage binding the adapter allows (bytes); matrices are split to fit.
    pub(crate) fn max_binding(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
            .min(self.binding_cap.unwrap_or(u64::MAX))
    }

    /// Most workgroups per dispatch dimension.
    pub(crate) fn max_groups(&self) -> u32 {
        self.limits.max_compute_workgroups_per_dimension
    }

    /// Checks the operands of a product over a `rows × cols` matrix and cuts `batch` tokens into
    /// passes that fit the dispatch limit and the largest storage binding: yields each pass's
    /// `(x, out)` slices.
    pub(crate) fn token_passes<'a>(
        &self,
        what: &'static str,
        (rows, cols): (usize, usize),
        x: &'a [f32],
        batch: usize,
        out: &'a mut [f32],
    ) -> Result<impl Iterator<Item = (&'a [f32], &'a mut [f32])>, GpuError> {
        if x.len() != batch * cols || out.len() != batch * rows {
            return Err(GpuError::Shape {
                what,
                reason: format!(
                    "{} inputs and {} outputs for {batch} tokens of a {rows} × {cols} matrix",
                    x.len(),
                    out.len(),
                ),
            });
        }
        let widest = (cols.max(rows) * 4) as u64;
        let per_pass = ((self.max_binding() / widest) as usize)
            .min(self.max_groups() as usize)
            .max(1);
        Ok(x.chunks(per_pass * cols)
            .zip(out.chunks_mut(per_pass * rows)))
    }

    /// Cuts `rows` rows of `row_bytes` each into `(first row, rows)` chunks, each a multiple of
    /// `multiple` rows (but the last) and within the largest storage binding.
    pub(crate) fn row_chunks(
        &self,
        what: &'static str,
        rows: usize,
        row_bytes: u64,
        multiple: usize,
    ) -> Result<Vec<(usize, usize)>, GpuError> {
        let max_rows = (self.max_binding() / row_bytes) as usize / multiple * multiple;
        if max_rows == 0 {
            return Err(GpuError::Shape {
                what,
                reason: format!(
                    "{multiple} rows of {row_bytes} bytes exceed the adapter's storage binding"
                ),
            });
        }
        Ok((0..rows)
            .step_by(max_rows)
            .map(|row0| (row0, max_rows.min(rows - row0)))
            .collect())
    }

    /// `(x, y)` workgroup counts covering `groups` workgroups in a 2-D dispatch.
    pub(crate) fn grid(&self, groups: u32) -> (u32, u32) {
        let x = groups.clamp(1, self.max_groups());
        (x, groups.div_ceil(x).max(1))
    }

    pub(crate) fn storage_init(&self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        // A binding may not be empty.
        let padded;
        let contents = if bytes.is_empty() {
            padded = [0u8; 4];
            &padded[..]
        } else {
            bytes
        };
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            })
    }

    pub(crate) fn uniform_init(&self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    pub(crate) fn storage_empty(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    pub(crate) fn bind(
        &self,
        pipeline: &wgpu::ComputePipeline,
        buffers: &[&wgpu::Buffer],
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry<'_>> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        })
    }

    /// Submits `encoder`, then copies `source[..len]` back (waiting for the GPU) into `out`.
    pub(crate) fn submit_and_read(
        &self,
        mut encoder: wgpu::CommandEncoder,
        source: &wgpu::Buffer,
        out: &mut [f32],
    ) -> Result<(), GpuError> {
        let bytes = (out.len() * 4) as u64;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read-back"),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        encoder.copy_buffer_to_buffer(source, 0, &staging, 0, bytes);
        let error_scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        self.queue.submit([encoder.finish()]);
        let (sender, receiver) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = sender.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Device(e.to_string()))?;
        if let Some(e) = pollster::block_on(error_scope.pop()) {
            return Err(GpuError::Device(e.to_string()));
        }
        receiver
            .recv()
            .map_err(|e| GpuError::Device(e.to_string()))?
            .map_err(|e| GpuError::Device(e.to_string()))?;
        {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| GpuError::Device(e.to_string()))?;
            let words: &[f32] = bytemuck::cast_slice(&view[..out.len() * 4]);
            out.copy_from_slice(words);
        }
        staging.unmap();
        Ok(())
    }
}

impl Kernels {
    fn compile(device: &wgpu::Device) -> Result<Kernels, GpuError> {
        let error_scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = |source: &str, entry: &str| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(entry),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let kernels = Kernels {
            quantize: pipeline(include_str!("shaders/quantize.wgsl"), "quantize"),
            bitlinear: pipeline(include_str!("shaders/bitlinear.wgsl"), "bitlinear"),
            f16_matmul: pipeline(include_str!("shaders/f16_matmul.wgsl"), "f16_matmul"),
        };
        if let Some(e) = pollster::block_on(error_scope.pop()) {
            return Err(GpuError::Device(format!("compiling the kernels: {e}")));
        }
        Ok(kernels)
    }
}
