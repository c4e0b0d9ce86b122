//! The GPU kernels against the CPU engine's, bit for bit, on whatever adapter `gpu:0` is
//! (in CI: Mesa lavapipe). No adapter is a loud failure, never a skip.

use std::sync::{Arc, OnceLock};

use bitnet_gguf::GgufFile;
use bitnet_gpu::{GpuContext, GpuF16Matrix, GpuTernaryMatrix};
use bitnet_kernels::{Scales, TernaryMatrix, ThreadPool};
use bitnet_quant::TernaryScales;
use half::f16;

fn gpu() -> &'static Arc<GpuContext> {
    static GPU: OnceLock<Arc<GpuContext>> = OnceLock::new();
    GPU.get_or_init(|| {
        GpuContext::open(0).unwrap_or_else(|e| {
            panic!(
                "the GPU tests need a GPU adapter (without a GPU: Mesa lavapipe, installed by \
                 scripts/install-test-tools.sh): {e}"
            )
        })
    })
}

/// A deterministic xorshift stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn ternary(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| (self.next() % 3) as i8 - 1).collect()
    }
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    /// Activations of varied magnitude, some exact halves after scaling (rounding ties).
    fn activations(&mut self, n: usize, magnitude: f32) -> Vec<f32> {
        (0..n)
            .map(|i| match i % 7 {
                0 => (self.next() % 255) as f32 - 127.0 + 0.5,
                _ => self.uniform() * magnitude,
            })
            .collect()
    }
}

fn to_kernel_scales(scales: &TernaryScales) -> Scales {
    match scales {
        TernaryScales::PerTensor(s) => Scales::PerTensor(*s),
        TernaryScales::PerBlock { block_len, scales } => Scales::PerBlock {
            block_len: *block_len,
            scales: scales.clone(),
        },
    }
}

fn cpu_bitlinear(
    rows: usize,
    cols: usize,
    values: &[i8],
    scales: &TernaryScales,
    x: &[f32],
    batch: usize,
) -> Vec<f32> {
    let m = TernaryMatrix::from_values(rows, cols, values, to_kernel_scales(scales)).unwrap();
    let mut out = vec![0.0f32; batch * rows];
    m.bitlinear(
        x,
        batch,
        &mut out,
        &mut Default::default(),
        ThreadPool::global(),
    )
    .unwrap();
    out
}

fn gpu_bitlinear(
    ctx: &Arc<GpuContext>,
    rows: usize,
    cols: usize,
    values: &[i8],
    scales: &TernaryScales,
    x: &[f32],
    batch: usize,
) -> (Vec<f32>, usize) {
    let m = GpuTernaryMatrix::new(ctx, rows, cols, values, scales).unwrap();
    let mut out = vec![0.0f32; batch * rows];
    m.bitlinear(x, batch, &mut out).unwrap();
    (out, m.chunk_count())
}

fn assert_bits_equal(what: &str, gpu: &[f32], cpu: &[f32]) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths");
    for (i, (g, c)) in gpu.iter().zip(cpu).enumerate() {
        assert_eq!(
            g.to_bits(),
            c.to_bits(),
            "{what}: output {i}: GPU {g} vs CPU {c}"
        );
    }
}

/// The F16 products follow the CPU's order, but Vulkan lets `fma` round the product before the
/// addition (lavapipe does): each of the two sums is then within `cols · 2⁻²⁴ · Σ|w·x|` of the
/// exact one (Higham's γ_n), so they differ by at most twice that.
fn assert_f16_products_close(
    what: &str,
    w: &[f16],
    x: &[f32],
    cols: usize,
    gpu: &[f32],
    cpu: &[f32],
) {
    let rows = w.len() / cols;
    for (i, (g, c)) in gpu.iter().zip(cpu).enumerate() {
        let (b, r) = (i / rows, i % rows);
        let magnitude: f32 = (0..cols)
            .map(|j| (w[r * cols + j].to_f32() * x[b * cols + j]).abs())
            .sum();
        let bound = 2.0 * (cols as f32 + 1.0) * magnitude / (1u64 << 24) as f32;
        assert!(
            (g - c).abs() <= bound,
            "{what}: output {i}: GPU {g} vs CPU {c}, bound {bound}"
        );
    }
}

const SHAPES: [(usize, usize); 6] = [
    (1, 128),
    (3, 256),
    (37, 384),
    (64, 640),
    (130, 1024),
    (257, 2560),
];

#[test]
fn integer_products_equal_the_cpu_kernel() {
    // max |x| = 127 gives the activation scale 1 exactly, and integer inputs quantize to
    // themselves: the outputs are the integer dots D themselves.
    let mut rng = Rng(0x5eed);
    for (rows, cols) in SHAPES {
        for batch in [1, 4] {
            let values = rng.ternary(rows * cols);
            let x: Vec<f32> = (0..batch * cols)
                .map(|i| {
                    if i % cols == 0 {
                        127.0
                    } else {
                        (rng.next() % 255) as f32 - 127.0
                    }
                })
                .collect();
            let codes: Vec<i8> = x.iter().map(|&v| v as i8).collect();
            let m =
                TernaryMatrix::from_values(rows, cols, &values, Scales::PerTensor(1.0)).unwrap();
            let mut dots = vec![0i32; batch * rows];
            m.matmul(&codes, batch, &mut dots, ThreadPool::global())
                .unwrap();
            let (out, _) = gpu_bitlinear(
                gpu(),
                rows,
                cols,
                &values,
                &TernaryScales::PerTensor(1.0),
                &x,
                batch,
            );
            for (i, (&g, &d)) in out.iter().zip(&dots).enumerate() {
                assert_eq!(g, d as f32, "{rows}×{cols} batch {batch}: dot {i}");
                assert_eq!(g as i32, d);
            }
        }
    }
}

#[test]
fn per_tensor_bitlinear_is_bit_identical() {
    let mut rng = Rng(0xb17);
    for (rows, cols) in SHAPES {
        for (batch, magnitude) in [(1, 1.0f32), (3, 1e3), (2, 3e-3)] {
            let values = rng.ternary(rows * cols);
            let x = rng.activations(batch * cols, magnitude);
            let scales = TernaryScales::PerTensor(0.8125 + rng.uniform() * 0.1);
            let (gpu_out, _) = gpu_bitlinear(gpu(), rows, cols, &values, &scales, &x, batch);
            let cpu_out = cpu_bitlinear(rows, cols, &values, &scales, &x, batch);
            assert_bits_equal(&format!("{rows}×{cols} batch {batch}"), &gpu_out, &cpu_out);
        }
    }
}

#[test]
fn activation_scale_edges_are_bit_identical() {
    // Tokens whose largest |x| is zero, below, at and just above 1e-5 (the f64 clamp), a
    // power of two, and huge.
    let (rows, cols) = (8, 128);
    let mut rng = Rng(7);
    let values = rng.ternary(rows * cols);
    let scales = TernaryScales::PerTensor(1.0);
    for max in [
        0.0f32,
        1e-7,
        f32::from_bits(0x3727_C5AC),
        f32::from_bits(0x3727_C5AD),
        0.5,
        1.0,
        3.0,
        1e30,
    ] {
        let mut x: Vec<f32> = (0..cols).map(|_| rng.uniform() * max).collect();
        x[5] = -max;
        let (gpu_out, _) = gpu_bitlinear(gpu(), rows, cols, &values, &scales, &x, 1);
        let cpu_out = cpu_bitlinear(rows, cols, &values, &scales, &x, 1);
        assert_bits_equal(&format!("max {max:e}"), &gpu_out, &cpu_out);
    }
}

#[test]
fn block_scaled_bitlinear_is_bit_identical() {
    let mut rng = Rng(0x7a2);
    for (rows, cols) in [(4, 256), (33, 512), (70, 1280), (129, 2560)] {
        for block_len in [256, 32] {
            let values = rng.ternary(rows * cols);
            let block_scales: Vec<f32> = (0..rows * cols / block_len)
                .map(|_| f16::from_f32(rng.uniform().abs() + 0.01).to_f32())
                .collect();
            let scales = TernaryScales::PerBlock {
                block_len,
                scales: block_scales,
            };
            for batch in [1, 3] {
                let x = rng.activations(batch * cols, 2.0);
                let (gpu_out, _) = gpu_bitlinear(gpu(), rows, cols, &values, &scales, &x, batch);
                let cpu_out = cpu_bitlinear(rows, cols, &values, &scales, &x, batch);
                assert_bits_equal(
                    &format!("{rows}×{cols} blocks of {block_len}, batch {batch}"),
                    &gpu_out,
                    &cpu_out,
                );
            }
        }
    }
}

#[test]
fn matrices_split_over_bindings_are_bit_identical() {
    // A 4 KiB cap splits every matrix here into several storage bindings and dispatches.
    let capped = GpuContext::open_with_binding_cap(0, Some(4096)).expect("a GPU adapter");
    let mut rng = Rng(0x5a1);
    let (rows, cols) = (300, 512);
    let values = rng.ternary(rows * cols);
    let x = rng.activations(2 * cols, 1.0);
    let scales = TernaryScales::PerTensor(0.9);
    let (gpu_out, chunks) = gpu_bitlinear(&capped, rows, cols, &values, &scales, &x, 2);
    assert!(chunks > 1, "the cap should split the matrix");
    assert_bits_equal(
        "split",
        &gpu_out,
        &cpu_bitlinear(rows, cols, &values, &scales, &x, 2),
    );

    let w: Vec<f16> = (0..rows * cols)
        .map(|_| f16::from_f32(rng.uniform()))
        .collect();
    let head = GpuF16Matrix::new(&capped, rows, cols, &w).unwrap();
    assert!(head.chunk_count() > 1);
    let mut gpu_out = vec![0.0; 2 * rows];
    head.matmul(&x, 2, &mut gpu_out).unwrap();
    let mut cpu_out = vec![0.0; 2 * rows];
    bitnet_kernels::matmul_f16(&w, rows, cols, &x, 2, &mut cpu_out, ThreadPool::global()).unwrap();
    assert_f16_products_close("split F16", &w, &x, cols, &gpu_out, &cpu_out);
}

#[test]
fn f16_products_agree_within_the_rounding_bound() {
    let mut rng = Rng(0xf16);
    for (rows, cols) in [(1, 64), (5, 96), (40, 250), (300, 2560)] {
        for batch in [1, 5] {
            let w: Vec<f16> = (0..rows * cols)
                .map(|_| f16::from_f32(rng.uniform()))
                .collect();
            let x: Vec<f32> = (0..batch * cols).map(|_| rng.uniform() * 4.0).collect();
            let head = GpuF16Matrix::new(gpu(), rows, cols, &w).unwrap();
            let mut gpu_out = vec![0.0; batch * rows];
            head.matmul(&x, batch, &mut gpu_out).unwrap();
            let mut cpu_out = vec![0.0; batch * rows];
            bitnet_kernels::matmul_f16(
                &w,
                rows,
                cols,
                &x,
                batch,
                &mut cpu_out,
                ThreadPool::global(),
            )
            .unwrap();
            let what = format!("F16 {rows}×{cols} batch {batch}");
            assert_f16_products_close(&what, &w, &x, cols, &gpu_out, &cpu_out);
        }
    }
}

#[test]
fn every_tiny_b158_linear_is_bit_identical_in_i2_s_and_tq2_0() {
    for file in ["tiny-b158-i2_s.gguf", "tiny-b158-tq2_0.gguf"] {
        let path = bitnet_testdata::oracle(&format!("tiny-b158/gguf/{file}"));
        let gguf = GgufFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut rng = Rng(0x71b);
        let mut checked = 0;
        for t in gguf.tensors() {
            if !matches!(
                t.ggml_type,
                bitnet_gguf::GgmlType::I2S | bitnet_gguf::GgmlType::TQ2_0
            ) {
                continue;
            }
            let tensor =
                bitnet_quant::decode_ternary(t.ggml_type, gguf.tensor_data(t), &t.dims).unwrap();
            let x = rng.activations(2 * tensor.cols, 3.0);
            let m = GpuTernaryMatrix::from_tensor(gpu(), &tensor).unwrap();
            let mut gpu_out = vec![0.0; 2 * tensor.rows];
            m.bitlinear(&x, 2, &mut gpu_out).unwrap();
            let cpu_out = cpu_bitlinear(
                tensor.rows,
                tensor.cols,
                &tensor.values,
                &tensor.scales,
                &x,
                2,
            );
            assert_bits_equal(&format!("{file} {}", t.name), &gpu_out, &cpu_out);
            checked += 1;
        }
        assert!(checked >= 7, "{file}: only {checked} ternary tensors");
    }
}

#[test]
fn bad_operands_are_typed_errors() {
    let m = GpuTernaryMatrix::new(gpu(), 4, 64, &[0; 256], &TernaryScales::PerTensor(1.0)).unwrap();
    let mut out = vec![0.0; 4];
    assert!(matches!(
        m.bitlinear(&[0.0; 63], 1, &mut out),
        Err(bitnet_gpu::GpuError::Shape { .. })
    ));
    assert!(matches!(
        GpuTernaryMatrix::new(gpu(), 4, 100, &[0; 400], &TernaryScales::PerTensor(1.0)),
        Err(bitnet_gpu::GpuError::Shape { .. })
    ));
}
