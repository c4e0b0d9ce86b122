//! `CodeMatrix` products (llama-family weights kept quantized) in SmolLM2-135M's Q4_1 shapes:
//! the FFN up projection (576→1536, cache-resident per thread) and down projection (1536→576),
//! and the Q8_0 head (576→49152, streamed from memory), at 1, 8 (batched decode) and 64 tokens,
//! on the active ISA with and without AMX tiles (`amx` / `vnni`; the same bits, see the tests).
//! Throughput in elements = multiply-adds.
//!
//! Run: `cargo bench -p bitnet-kernels --bench code_matrix -- --quick` (BITNET_ISA picks the ISA).

use std::time::Duration;

use bitnet_kernels::code_matrix::{Tiles, CODE_GROUP};
use bitnet_kernels::{active_isa, CodeMatrix, ThreadPool};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use half::f16;

/// (rows, cols, codes lo..=hi, offsets, name)
const SHAPES: [(usize, usize, i8, i8, bool, &str); 3] = [
    (1536, 576, 0, 15, true, "q4_1_576to1536"),
    (576, 1536, 0, 15, true, "q4_1_1536to576"),
    (49152, 576, -128, 127, false, "q8_0_576to49152"),
];

/// A matrix of the given code range with f16 scales (and offsets) shared by each 16-group pair.
fn matrix(rows: usize, cols: usize, lo: i8, hi: i8, offsets: bool) -> CodeMatrix {
    let span = (i32::from(hi) - i32::from(lo) + 1) as usize;
    let codes = (0..rows * cols)
        .map(|i| (i32::from(lo) + (i * 7919 % span) as i32) as i8)
        .collect();
    let groups = rows * cols / CODE_GROUP;
    let param = |k: usize| {
        (0..groups)
            .map(|g| f16::from_f32(((g / 2 * k % 101) as f32 - 50.0) / 2000.0).to_f32())
            .collect::<Vec<f32>>()
    };
    CodeMatrix::from_parts(rows, cols, codes, param(31), offsets.then(|| param(17)))
        .expect("valid parts")
}

fn bench_code_matrix(c: &mut Criterion) {
    eprintln!("active ISA: {}", active_isa());
    for (rows, cols, lo, hi, offsets, name) in SHAPES {
        let m = matrix(rows, cols, lo, hi, offsets);
        for batch in [1usize, 8, 64] {
            let x: Vec<f32> = (0..batch * cols)
                .map(|j| ((j * 13 % 97) as f32 - 48.0) / 50.0)
                .collect();
            let mut out = vec![0f32; batch * rows];
            let mut group = c.benchmark_group(format!("code_matrix_b{batch}"));
            group
                .sample_size(10)
                .measurement_time(Duration::from_secs(2))
                .warm_up_time(Duration::from_millis(300));
            group.throughput(Throughput::Elements((rows * cols * batch) as u64));
            let pool = ThreadPool::new(1);
            for (tiles, label) in [(Tiles::Allowed, "amx"), (Tiles::Off, "vnni")] {
                let id = BenchmarkId::new(name, label);
                group.bench_function(id, |b| {
                    b.iter(|| {
                        m.matmul_with_tiles(active_isa(), tiles, &x, batch, &mut out, &pool)
                            .expect("matmul")
                    })
                });
            }
            group.finish();
        }
    }
}

criterion_group!(benches, bench_code_matrix);
criterion_main!(benches);
