//! Kernel benchmarks in the BitNet 2B-4T shapes (hidden 2560, FFN 6912, vocab 128256).
//!
//! - `ternary_matvec/*`: decode (batch 1), one matrix (cache-warm: it fits in L3);
//!   `ternary_matvec_stream/*` cycles through 128 MB of copies so the weights come from DRAM
//!   (compare its GB/s with the ~25 / ~31 GB/s streaming-read bandwidth at 1 / 2 threads).
//!   `trit5_*` entries: the same products over the trit5 layout (1.6 bits per weight; GB/s of
//!   its own, 20% smaller, bytes), the rest the 2-bit layout.
//! - `ternary_matmul_b8/*`: batched decode, 8 tokens (cache-warm); throughput in int8 MACs.
//! - `bitlinear_qkv_b8_t2/*`: a layer's q, k, v BitLinears (trit5 with the 2-bit copy), 8 tokens,
//!   each alone or run together over their one input.
//! - `ternary_matmul_b128/*`: prefill, 128 tokens; throughput in elements = int8 MACs.
//! - `f16_head/*`: the F16 tied head 128256 × 2560 (657 MB, always from DRAM);
//!   `q8_0_head/*`: the same head quantized to Q8_0 (349 MB); its `_warm` entry: 4096 of its
//!   rows (10 MB, cache-resident), the kernel's own rate; `_b8` entries: 8 tokens (batched
//!   decode).
//!
//! Run: `cargo bench -p bitnet-kernels -- --quick` (BITNET_ISA picks the instruction set).

use std::time::Duration;

use bitnet_kernels::ternary::TernaryLayout;
use bitnet_kernels::{
    active_isa, matmul_f16, matvec_f16, quantize_activations, BitLinearScratch, Q8Matrix, Scales,
    TernaryMatrix, ThreadPool,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use half::f16;

/// As in the `bitnet` binary: large buffers on transparent huge pages (the decode figures depend
/// on it: 4 KiB pages cost the F16 head ~15% of its rate on host C).
#[global_allocator]
static ALLOCATOR: bitnet_kernels::memory::HugePageAllocator =
    bitnet_kernels::memory::HugePageAllocator;

const SHAPES: [(usize, usize, &str); 3] = [
    (2560, 2560, "2560to2560"),
    (6912, 2560, "2560to6912"),
    (2560, 6912, "6912to2560"),
];

/// The decode shapes also measured over the trit5 layout.
const TRIT5_SHAPES: [(usize, usize, &str); 2] = [
    (6912, 2560, "trit5_2560to6912"),
    (2560, 6912, "trit5_6912to2560"),
];

/// Deterministic pseudo-random ternary weights (the values do not affect speed).
fn matrix(rows: usize, cols: usize, layout: TernaryLayout) -> TernaryMatrix {
    let mut state = 0x2545_F491_4F6C_DD1Du64 ^ (rows * 31 + cols) as u64;
    let values: Vec<i8> = (0..rows * cols)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 3) as i8 - 1
        })
        .collect();
    TernaryMatrix::from_values_with_layout(rows, cols, &values, Scales::PerTensor(1.0), layout)
        .expect("valid shape")
}

fn activations(batch: usize, cols: usize) -> Vec<i8> {
    (0..batch * cols)
        .map(|i| ((i * 89 + 7) % 255) as i8)
        .collect()
}

fn bench_ternary(c: &mut Criterion) {
    eprintln!("active ISA: {}", active_isa());
    for threads in [1usize, 2] {
        let pool = ThreadPool::new(threads);
        let mut group = c.benchmark_group(format!("ternary_matvec_t{threads}"));
        group
            .sample_size(20)
            .measurement_time(Duration::from_secs(2))
            .warm_up_time(Duration::from_millis(500));
        let two_bit = SHAPES.map(|(rows, cols, name)| (rows, cols, name, TernaryLayout::TwoBit));
        let trit5 = TRIT5_SHAPES.map(|(rows, cols, name)| (rows, cols, name, TernaryLayout::Trit5));
        for (rows, cols, name, layout) in two_bit.into_iter().chain(trit5) {
            let m = matrix(rows, cols, layout);
            let x = activations(1, cols);
            let mut out = vec![0i32; rows];
            group.throughput(Throughput::Bytes(m.packed_len() as u64));
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| m.matmul(&x, 1, &mut out, &pool).expect("matvec"))
            });
        }
        group.finish();

        // DRAM-resident: 128 MB of weights, every matrix read once per iteration.
        let mut group = c.benchmark_group(format!("ternary_matvec_stream_t{threads}"));
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(3))
            .warm_up_time(Duration::from_millis(500));
        for (layout, name) in [
            (TernaryLayout::TwoBit, "2560to6912_x_copies"),
            (TernaryLayout::Trit5, "trit5_2560to6912_x_copies"),
        ] {
            let base = matrix(6912, 2560, layout);
            let copies = (128 << 20) / base.packed_len() + 1;
            let stack: Vec<TernaryMatrix> = (0..copies).map(|_| base.clone()).collect();
            let x = activations(1, 2560);
            let mut out = vec![0i32; 6912];
            group.throughput(Throughput::Bytes((copies * base.packed_len()) as u64));
            group.bench_function(name, |b| {
                b.iter(|| {
                    for m in &stack {
                        m.matmul(&x, 1, &mut out, &pool).expect("matvec");
                    }
                })
            });
        }
        group.finish();
    }

    let pool = ThreadPool::new(2);
    // Batched decode: 8 sequences in flight, one token each (compute-bound: every byte decoded
    // once serves 8 tokens).
    let mut group = c.benchmark_group("ternary_matmul_b8_t2");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    for (layout, copy, name) in [
        (TernaryLayout::TwoBit, false, "2560to6912"),
        (TernaryLayout::Trit5, false, "trit5_2560to6912"),
        (TernaryLayout::Trit5, true, "trit5_copy_2560to6912"),
    ] {
        let mut m = matrix(6912, 2560, layout);
        if copy {
            m.keep_two_bit_copy();
        }
        let batch = 8;
        let x = activations(batch, 2560);
        let mut out = vec![0i32; batch * 6912];
        group.throughput(Throughput::Elements((6912 * 2560 * batch) as u64));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| m.matmul(&x, batch, &mut out, &pool).expect("matmul"))
        });
    }
    group.finish();

    // A layer's q, k and v BitLinears over one input, 8 tokens, trit5 with the 2-bit copy (as
    // `serve --parallel` loads them): each alone, or together (input quantized once, one pool run).
    let mut group = c.benchmark_group("bitlinear_qkv_b8_t2");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    let qkv = [2560, 640, 640].map(|rows| {
        let mut m = matrix(rows, 2560, TernaryLayout::Trit5);
        m.keep_two_bit_copy();
        m
    });
    let batch = 8;
    let x: Vec<f32> = (0..batch * 2560)
        .map(|i| ((i * 37 % 1001) as f32 - 500.0) / 100.0)
        .collect();
    let mut outs = qkv.each_ref().map(|m| vec![0f32; batch * m.rows()]);
    let mut scratch = BitLinearScratch::new();
    group.throughput(Throughput::Elements((3840 * 2560 * batch) as u64));
    group.bench_function("alone", |b| {
        b.iter(|| {
            for (m, out) in qkv.iter().zip(&mut outs) {
                m.bitlinear(&x, batch, out, &mut scratch, &pool)
                    .expect("bitlinear");
            }
        })
    });
    group.bench_function("together", |b| {
        b.iter(|| {
            let [q, k, v] = &mut outs;
            TernaryMatrix::bitlinear_several(
                &qkv.each_ref(),
                &x,
                batch,
                &mut [q, k, v],
                &mut scratch,
                &pool,
            )
            .expect("bitlinears")
        })
    });
    group.finish();

    let mut group = c.benchmark_group("ternary_matmul_b128_t2");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    let two_bit = SHAPES.map(|(rows, cols, name)| (rows, cols, name, TernaryLayout::TwoBit));
    // Prefill over trit5 unpacks each tile once per 128 tokens (`TOKEN_BLOCK`): it should cost
    // about the same.
    let trit5 = (6912, 2560, "trit5_2560to6912", TernaryLayout::Trit5);
    for (rows, cols, name, layout) in two_bit.into_iter().chain([trit5]) {
        let m = matrix(rows, cols, layout);
        let batch = 128;
        let x = activations(batch, cols);
        let mut out = vec![0i32; batch * rows];
        group.throughput(Throughput::Elements((rows * cols * batch) as u64));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| m.matmul(&x, batch, &mut out, &pool).expect("matmul"))
        });
    }
    group.finish();
}

fn bench_f16_head(c: &mut Criterion) {
    let (rows, cols) = (128_256usize, 2560usize);
    let w: Vec<f16> = (0..rows * cols)
        .map(|i| f16::from_f32(((i * 37 % 1001) as f32 - 500.0) / 5000.0))
        .collect();
    let x: Vec<f32> = (0..cols)
        .map(|j| ((j * 13 % 97) as f32 - 48.0) / 50.0)
        .collect();
    // Batched decode: 8 sequences in flight, one token each.
    let batch = 8;
    let x8: Vec<f32> = (0..batch * cols)
        .map(|j| ((j * 13 % 97) as f32 - 48.0) / 50.0)
        .collect();
    let mut out = vec![0f32; batch * rows];
    let mut group = c.benchmark_group("f16_head");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    group.throughput(Throughput::Bytes((rows * cols * 2) as u64));
    for threads in [1usize, 2] {
        let pool = ThreadPool::new(threads);
        group.bench_function(
            BenchmarkId::new("2560to128256", format!("t{threads}")),
            |b| b.iter(|| matvec_f16(&w, rows, cols, &x, &mut out[..rows], &pool).expect("head")),
        );
        group.bench_function(
            BenchmarkId::new("2560to128256_b8", format!("t{threads}")),
            |b| b.iter(|| matmul_f16(&w, rows, cols, &x8, batch, &mut out, &pool).expect("head")),
        );
    }
    group.finish();

    // The same head quantized to Q8_0 (349 MB instead of 657 MB).
    let q8 = Q8Matrix::quantize_f16(&w, rows, cols).expect("q8 head");
    let warm_rows = 4096;
    let q8_warm = Q8Matrix::quantize_f16(&w[..warm_rows * cols], warm_rows, cols).expect("q8 rows");
    drop(w);
    let mut group = c.benchmark_group("q8_0_head");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    group.throughput(Throughput::Bytes(q8.stored_len() as u64));
    for threads in [1usize, 2] {
        let pool = ThreadPool::new(threads);
        group.bench_function(
            BenchmarkId::new("2560to128256", format!("t{threads}")),
            |b| b.iter(|| q8.matmul(&x, 1, &mut out[..rows], &pool).expect("q8 head")),
        );
        group.bench_function(
            BenchmarkId::new("2560to128256_b8", format!("t{threads}")),
            |b| b.iter(|| q8.matmul(&x8, batch, &mut out, &pool).expect("q8 head")),
        );
    }
    group.throughput(Throughput::Bytes(q8_warm.stored_len() as u64));
    let pool = ThreadPool::new(1);
    group.bench_function(BenchmarkId::new("2560to4096_warm", "t1"), |b| {
        b.iter(|| {
            q8_warm
                .matmul(&x, 1, &mut out[..warm_rows], &pool)
                .expect("q8 rows")
        })
    });
    group.finish();
}

fn bench_quantize(c: &mut Criterion) {
    let x: Vec<f32> = (0..6912)
        .map(|j| ((j * 13 % 97) as f32 - 48.0) / 50.0)
        .collect();
    let mut q = vec![0i8; 6912];
    c.bench_function("quantize_6912", |b| {
        b.iter(|| quantize_activations(&x, &mut q).expect("quantize"))
    });
}

criterion_group!(benches, bench_ternary, bench_f16_head, bench_quantize);
criterion_main!(benches);
