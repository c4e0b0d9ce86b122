//! Batched F16 matmul (prefill of llama-family models with F16 weights) in the SmolLM2-135M and
//! Gemma-3-270M shapes: `f16_matmul_b512/*` are the FFN up projections (576→1536, 640→2048) at
//! 512 tokens, `f16_matmul_b64/576to49152` the SmolLM2 head at 64 tokens, `f16_matmul_b8/*` batched decode
//! of 8 sequences (a cache-resident attention projection, and the head streamed from memory). Throughput in elements =
//! multiply-adds.
//!
//! Run: `cargo bench -p bitnet-kernels --bench f16_matmul -- --quick` (BITNET_ISA picks the ISA).

use std::time::Duration;

use bitnet_kernels::{active_isa, matmul_f16, ThreadPool};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use half::f16;

/// (rows, cols, batch, group, name)
const SHAPES: [(usize, usize, usize, &str, &str); 5] = [
    (1536, 576, 512, "f16_matmul_b512", "576to1536"),
    (2048, 640, 512, "f16_matmul_b512", "640to2048"),
    (49152, 576, 64, "f16_matmul_b64", "576to49152"),
    (576, 576, 8, "f16_matmul_b8", "576to576"),
    (49152, 576, 8, "f16_matmul_b8", "576to49152"),
];

fn bench_f16_matmul(c: &mut Criterion) {
    eprintln!("active ISA: {}", active_isa());
    for (rows, cols, batch, group_name, name) in SHAPES {
        let w: Vec<f16> = (0..rows * cols)
            .map(|i| f16::from_f32(((i * 37 % 1001) as f32 - 500.0) / 5000.0))
            .collect();
        let x: Vec<f32> = (0..batch * cols)
            .map(|j| ((j * 13 % 97) as f32 - 48.0) / 50.0)
            .collect();
        let mut out = vec![0f32; batch * rows];
        let mut group = c.benchmark_group(group_name);
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(3))
            .warm_up_time(Duration::from_millis(500));
        group.throughput(Throughput::Elements((rows * cols * batch) as u64));
        for threads in [1usize, 2] {
            let pool = ThreadPool::new(threads);
            group.bench_function(BenchmarkId::new(name, format!("t{threads}")), |b| {
                b.iter(|| matmul_f16(&w, rows, cols, &x, batch, &mut out, &pool).expect("matmul"))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench_f16_matmul);
criterion_main!(benches);
