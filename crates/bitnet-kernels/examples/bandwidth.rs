//! Decode-kernel speed as a fraction of this machine's streaming-read bandwidth, best of N runs
//! (the best run is the one least disturbed by other processes on a shared machine).
//!
//! `cargo run --release -p bitnet-kernels --example bandwidth [threads] [repeats]`
//!
//! Measures, for the given thread count: a plain streaming read of 1 GiB (u64 sum split over the
//! same pool), the ternary matvec cycling through 1 GiB of 2560→6912 matrices, and the F16 head
//! 2560→128256 (657 MB) and its Q8_0 form (349 MB); then the prefill matmul (128 tokens).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bitnet_kernels::{active_isa, matvec_f16, Q8Matrix, Scales, TernaryMatrix, ThreadPool};
use half::f16;

fn best_of(repeats: usize, mut f: impl FnMut()) -> Duration {
    f(); // warm-up
    (0..repeats)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn gbps(bytes: usize, t: Duration) -> f64 {
    bytes as f64 / t.as_secs_f64() / 1e9
}

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let repeats: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let pool = ThreadPool::new(threads);
    println!(
        "isa {} threads {} best of {}",
        active_isa(),
        pool.threads(),
        repeats
    );

    // Cost of one pool dispatch (empty chunks), as seen by a decode step issuing ~210 of them.
    let calls = 20_000;
    let t = best_of(repeats, || {
        for _ in 0..calls {
            pool.run(pool.threads(), &|i| {
                black_box(i);
            });
        }
    });
    println!(
        "pool dispatch: {:.2} us per call",
        t.as_secs_f64() * 1e6 / calls as f64
    );

    // Streaming read baseline.
    let words = vec![1u64; (1 << 30) / 8];
    let chunks = pool.chunk_count(1 << 12);
    let read = best_of(repeats, || {
        let total = std::sync::atomic::AtomicU64::new(0);
        pool.run(chunks, &|c| {
            let per = words.len() / chunks;
            let part = &words[c * per..(c + 1) * per];
            let s = part.iter().fold(0u64, |a, &w| a.wrapping_add(w));
            total.fetch_add(s, std::sync::atomic::Ordering::Relaxed);
        });
        black_box(total.into_inner());
    });
    let bandwidth = gbps(words.len() * 8, read);
    println!("streaming read 1 GiB: {bandwidth:.1} GB/s");
    drop(words);

    // Ternary matvec over DRAM-resident weights.
    let (rows, cols) = (6912, 2560);
    let values: Vec<i8> = (0..rows * cols)
        .map(|i| ((i * 7 + i / 11) % 3) as i8 - 1)
        .collect();
    let start = Instant::now();
    let base =
        TernaryMatrix::from_values(rows, cols, &values, Scales::PerTensor(1.0)).expect("shape");
    println!(
        "packing {rows}x{cols}: {:.1} ms ({:.2} ns/weight)",
        start.elapsed().as_secs_f64() * 1e3,
        start.elapsed().as_secs_f64() * 1e9 / (rows * cols) as f64
    );
    let copies = (1 << 30) / base.packed_len();
    let stack: Vec<TernaryMatrix> = (0..copies).map(|_| base.clone()).collect();
    let x: Vec<i8> = (0..cols).map(|i| ((i * 89 + 7) % 255) as i8).collect();
    let mut out = vec![0i32; rows];
    let t = best_of(repeats, || {
        for m in &stack {
            m.matmul(&x, 1, &mut out, &pool).expect("matvec");
        }
    });
    let mut single = vec![0i32; rows];
    stack[copies - 1]
        .matmul(&x, 1, &mut single, &ThreadPool::new(1))
        .expect("matvec");
    assert_eq!(out, single, "threaded matvec differs from single-threaded");
    let ternary = gbps(copies * base.packed_len(), t);
    println!(
        "ternary matvec 2560->6912 x{copies}: {ternary:.1} GB/s ({:.0}% of read), {:.1} us per matrix",
        100.0 * ternary / bandwidth,
        t.as_secs_f64() * 1e6 / copies as f64
    );
    drop(stack);

    // One decode step's linears for the 2B-4T shape: 30 layers × (q, k, v, o, gate, up, down),
    // every matrix distinct (521 MB), each preceded by the activation quantization.
    let layer_shapes = [
        (2560usize, 2560usize),
        (640, 2560),
        (640, 2560),
        (2560, 2560),
        (6912, 2560),
        (6912, 2560),
        (2560, 6912),
    ];
    let model: Vec<TernaryMatrix> = (0..30)
        .flat_map(|_| layer_shapes.iter())
        .map(|&(rows, cols)| {
            let values: Vec<i8> = (0..rows * cols)
                .map(|i| ((i * 7 + i / 11) % 3) as i8 - 1)
                .collect();
            TernaryMatrix::from_values(rows, cols, &values, Scales::PerTensor(1.0)).expect("shape")
        })
        .collect();
    let model_bytes: usize = model.iter().map(TernaryMatrix::packed_len).sum();
    let xf_in: Vec<f32> = (0..6912)
        .map(|j| ((j * 13 % 97) as f32 - 48.0) / 50.0)
        .collect();
    let mut q = vec![0i8; 6912];
    let mut y = vec![0i32; 6912];
    let t_linears = best_of(repeats, || {
        for m in &model {
            let (q, y) = (&mut q[..m.cols()], &mut y[..m.rows()]);
            bitnet_kernels::quantize_activations(&xf_in[..m.cols()], q).expect("quantize");
            m.matmul(q, 1, y, &pool).expect("matvec");
        }
    });
    println!(
        "decode linears 2B-4T (30 layers, {:.0} MB): {:.2} ms/token = {:.1} GB/s ({:.0}% of read)",
        model_bytes as f64 / 1e6,
        t_linears.as_secs_f64() * 1e3,
        gbps(model_bytes, t_linears),
        100.0 * gbps(model_bytes, t_linears) / bandwidth
    );
    drop(model);

    // Prefill: 128 tokens against one (cache-resident) matrix per shape.
    for (rows, cols) in [(2560usize, 2560usize), (6912, 2560), (2560, 6912)] {
        let values: Vec<i8> = (0..rows * cols)
            .map(|i| ((i * 7 + i / 11) % 3) as i8 - 1)
            .collect();
        let m =
            TernaryMatrix::from_values(rows, cols, &values, Scales::PerTensor(1.0)).expect("shape");
        let batch = 128;
        let xb: Vec<i8> = (0..batch * cols)
            .map(|i| ((i * 89 + 7) % 255) as i8)
            .collect();
        let mut out = vec![0i32; batch * rows];
        let t = best_of(repeats, || {
            m.matmul(&xb, batch, &mut out, &pool).expect("matmul")
        });
        println!(
            "ternary matmul b128 {cols}->{rows}: {:.0} GMAC/s, {:.2} ms",
            (rows * cols * batch) as f64 / t.as_secs_f64() / 1e9,
            t.as_secs_f64() * 1e3
        );
    }

    // F16 head.
    let (rows, cols) = (128_256usize, 2560usize);
    let w: Vec<f16> = (0..rows * cols)
        .map(|i| f16::from_f32((i % 1001) as f32 / 5000.0))
        .collect();
    let xf: Vec<f32> = (0..cols).map(|j| (j % 97) as f32 / 50.0).collect();
    let mut logits = vec![0f32; rows];
    let t = best_of(repeats, || {
        matvec_f16(&w, rows, cols, &xf, &mut logits, &pool).expect("head")
    });
    let head = gbps(rows * cols * 2, t);
    // The threaded result must equal a single-threaded one bit for bit (rows are independent).
    let mut single = vec![0f32; rows];
    matvec_f16(&w, rows, cols, &xf, &mut single, &ThreadPool::new(1)).expect("head");
    assert_eq!(logits, single, "threaded head differs from single-threaded");
    let warm_rows = 128;
    let t_warm = best_of(repeats * 20, || {
        matvec_f16(
            &w[..warm_rows * cols],
            warm_rows,
            cols,
            &xf,
            &mut logits[..warm_rows],
            &pool,
        )
        .expect("head slice")
    });
    println!(
        "f16 matvec cache-warm 2560->{warm_rows}: {:.1} GB/s",
        gbps(warm_rows * cols * 2, t_warm)
    );
    println!(
        "f16 head 2560->128256: {head:.1} GB/s ({:.0}% of read), {:.2} ms",
        100.0 * head / bandwidth,
        t.as_secs_f64() * 1e3
    );

    // Q8_0 head (the same values quantized).
    let q8 = Q8Matrix::quantize_f16(&w, rows, cols).expect("q8 head");
    drop(w);
    let t = best_of(repeats, || {
        q8.matmul(&xf, 1, &mut logits, &pool).expect("q8 head")
    });
    let head = gbps(q8.stored_len(), t);
    println!(
        "q8_0 head 2560->128256: {head:.1} GB/s ({:.0}% of read), {:.2} ms",
        100.0 * head / bandwidth,
        t.as_secs_f64() * 1e3
    );
}
