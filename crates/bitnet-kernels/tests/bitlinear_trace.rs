//! Op-level check against bitnet.cpp itself: three BitLinears of the tiny-b158 oracle model, fed
//! the inputs bitnet.cpp traced, must reproduce its traced outputs bit for bit through
//! `a = quantize(x); D = t·q; y = ((float)D / a) · s` on every ISA and thread count.
//! Fixture: tests/data/bitlinear_trace_ref.bin, written by tools/gen_kernel_bitlinear_ref.py from
//! testdata/oracle/tiny-b158 (the F32 GGUF's ternary tensors and the I2_S trace).

use bitnet_kernels::quantize::quantize_activations_with_isa;
use bitnet_kernels::{BitLinearScratch, Isa, Scales, TernaryMatrix, ThreadPool};

struct Linear {
    name: String,
    rows: usize,
    cols: usize,
    tokens: usize,
    scale: f32,
    values: Vec<i8>,
    x: Vec<f32>,
    y: Vec<f32>,
}

fn load() -> Vec<Linear> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/bitlinear_trace_ref.bin"
    );
    let bytes = std::fs::read(path).unwrap_or_else(|e| {
        panic!("missing fixture {path} ({e}); regenerate with python3 tools/gen_kernel_bitlinear_ref.py")
    });
    let mut at = 0usize;
    let mut take = |n: usize| {
        let s = &bytes[at..at + n];
        at += n;
        s
    };
    let u32_le = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap()) as usize;
    let floats = |b: &[u8]| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let count = u32_le(take(4));
    (0..count)
        .map(|_| {
            let name_len = u32_le(take(4));
            let name = String::from_utf8(take(name_len).to_vec()).unwrap();
            let (rows, cols, tokens) = (u32_le(take(4)), u32_le(take(4)), u32_le(take(4)));
            let scale = f32::from_le_bytes(take(4).try_into().unwrap());
            let values = take(rows * cols).iter().map(|&b| b as i8).collect();
            let x = floats(take(tokens * cols * 4));
            let y = floats(take(tokens * rows * 4));
            Linear {
                name,
                rows,
                cols,
                tokens,
                scale,
                values,
                x,
                y,
            }
        })
        .collect()
}

#[test]
fn bitlinears_reproduce_bitnet_cpp_bit_for_bit() {
    let linears = load();
    assert_eq!(linears.len(), 3);
    for pool in [ThreadPool::new(1), ThreadPool::new(2)] {
        for isa in Isa::supported_for_tests() {
            for l in &linears {
                let matrix = TernaryMatrix::from_values(
                    l.rows,
                    l.cols,
                    &l.values,
                    Scales::PerTensor(l.scale),
                )
                .unwrap();
                let mut q = vec![0i8; l.tokens * l.cols];
                let a: Vec<f32> =
                    l.x.chunks_exact(l.cols)
                        .zip(q.chunks_exact_mut(l.cols))
                        .map(|(x, q)| quantize_activations_with_isa(isa, x, q).unwrap())
                        .collect();
                let mut dots = vec![0i32; l.tokens * l.rows];
                matrix
                    .matmul_with_isa(isa, &q, l.tokens, &mut dots, &pool)
                    .unwrap();
                for t in 0..l.tokens {
                    for r in 0..l.rows {
                        let y = (dots[t * l.rows + r] as f32 / a[t]) * l.scale;
                        let want = l.y[t * l.rows + r];
                        assert_eq!(
                            y.to_bits(),
                            want.to_bits(),
                            "{} isa {isa} token {t} row {r}: {y} vs bitnet.cpp {want}",
                            l.name
                        );
                    }
                }
                // The one-call BitLinear gives the same bits.
                let mut y = vec![f32::NAN; l.tokens * l.rows];
                let mut scratch = BitLinearScratch::new();
                matrix
                    .bitlinear_with_isa(isa, &l.x, l.tokens, &mut y, &mut scratch, &pool)
                    .unwrap();
                let ours: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
                let theirs: Vec<u32> = l.y.iter().map(|v| v.to_bits()).collect();
                assert_eq!(ours, theirs, "{} isa {isa} (bitlinear)", l.name);
            }
        }
    }
}
