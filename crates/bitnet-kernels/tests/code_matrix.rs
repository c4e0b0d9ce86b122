//! `CodeMatrix` (weights as int8 codes with per-16 scales and offsets, activations quantized per
//! 32): every ISA gives the scalar reference's bits, for any row count, batch and thread count;
//! a token's outputs do not depend on the batch it is in; and the result equals the module's
//! formula evaluated in f64 from the quantized activations (recomputed here independently), to
//! f32 rounding.

use bitnet_kernels::code_matrix::{CodeMatrix, ACTIVATION_BLOCK, CODE_GROUP};
use bitnet_kernels::{Isa, KernelError, ThreadPool};
use proptest::prelude::*;

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// A matrix and activations from a seed: codes over the whole i8 range (−128 too) or a 4-bit
/// range, scales and offsets of mixed signs and magnitudes.
fn case(
    rows: usize,
    cols: usize,
    batch: usize,
    offsets: bool,
    nibbles: bool,
    seed: u64,
) -> (CodeMatrix, Vec<f32>) {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let codes: Vec<i8> = (0..rows * cols)
        .map(|_| {
            if nibbles {
                (next() % 16) as i8
            } else {
                next() as u8 as i8
            }
        })
        .collect();
    let mut unit = move || (next() % 20_001) as f32 / 10_000.0 - 1.0;
    let groups = rows * cols / CODE_GROUP;
    let scales: Vec<f32> = (0..groups).map(|_| unit() * 0.05).collect();
    let offsets = offsets.then(|| (0..groups).map(|_| unit() * 0.3).collect());
    let mut x: Vec<f32> = (0..batch * cols).map(|_| unit() * 3.0).collect();
    // An all-zero block (d = 0) and a block with one outlier.
    x[..ACTIVATION_BLOCK].fill(0.0);
    if x.len() > 2 * ACTIVATION_BLOCK {
        x[ACTIVATION_BLOCK + 3] = 250.0;
    }
    (
        CodeMatrix::from_parts(rows, cols, codes, scales, offsets).unwrap(),
        x,
    )
}

fn run(m: &CodeMatrix, isa: Isa, x: &[f32], batch: usize, threads: usize) -> Vec<f32> {
    let mut out = vec![0f32; batch * m.rows()];
    m.matmul_with_isa(isa, x, batch, &mut out, &ThreadPool::new(threads))
        .unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_isa_gives_the_scalar_bits(
        rows in 1usize..11,
        chunks in 1usize..20,
        batch in 1usize..6,
        offsets: bool,
        nibbles: bool,
        threads in 1usize..4,
        seed: u64,
    ) {
        let cols = 64 * chunks;
        let (m, x) = case(rows, cols, batch, offsets, nibbles, seed);
        let want = run(&m, Isa::Scalar, &x, batch, 1);
        for isa in Isa::supported_for_tests() {
            let got = run(&m, isa, &x, batch, threads);
            prop_assert_eq!(bits(&got), bits(&want), "{}", isa);
        }
    }

    #[test]
    fn a_token_gets_the_same_bits_alone_and_in_a_batch(
        rows in 1usize..9,
        chunks in 1usize..12,
        batch in 2usize..7,
        offsets: bool,
        seed: u64,
    ) {
        let cols = 64 * chunks;
        let (m, x) = case(rows, cols, batch, offsets, false, seed);
        for isa in Isa::supported_for_tests() {
            let all = run(&m, isa, &x, batch, 2);
            for b in 0..batch {
                let alone = run(&m, isa, &x[b * cols..(b + 1) * cols], 1, 1);
                prop_assert_eq!(bits(&alone), bits(&all[b * rows..(b + 1) * rows]));
            }
        }
    }
}

/// The activation quantization of the module docs, restated: `(d, codes)` of one block.
fn quantize_block(x: &[f32]) -> (f32, Vec<i32>) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let inv = if d == 0.0 { 0.0 } else { 1.0 / d };
    (
        d,
        x.iter()
            .map(|&v| (v * inv).round_ties_even().clamp(-127.0, 127.0) as i32)
            .collect(),
    )
}

#[test]
fn result_is_the_quantized_product_to_f32_rounding() {
    for (rows, cols, batch, offsets) in [(5, 64, 3, false), (7, 576, 2, true), (3, 2048, 4, true)] {
        let (m, x) = case(rows, cols, batch, offsets, offsets, 7 + rows as u64);
        let got = run(&m, Isa::best_supported(), &x, batch, 2);
        let mut w = vec![0f32; cols];
        for b in 0..batch {
            let xb = &x[b * cols..(b + 1) * cols];
            for r in 0..rows {
                m.row_into(r, &mut w);
                // Σ_blocks d_x Σ_j w_j q_j, with w_j = s·c + o exactly as stored.
                let want: f64 = xb
                    .chunks_exact(ACTIVATION_BLOCK)
                    .zip(w.chunks_exact(ACTIVATION_BLOCK))
                    .map(|(xs, ws)| {
                        let (d, q) = quantize_block(xs);
                        f64::from(d)
                            * ws.iter()
                                .zip(&q)
                                .map(|(&wj, &qj)| f64::from(wj) * f64::from(qj))
                                .sum::<f64>()
                    })
                    .sum();
                let scale: f64 = xb
                    .iter()
                    .zip(&w)
                    .map(|(a, b)| f64::from(*a * *b).abs())
                    .sum();
                let g = f64::from(got[b * rows + r]);
                assert!(
                    (g - want).abs() <= 1e-5 * (1.0 + scale),
                    "row {r} token {b}: {g} vs {want}"
                );
            }
        }
    }
}

#[test]
fn bad_shapes_are_refused() {
    assert!(matches!(
        CodeMatrix::from_parts(2, 96, vec![0; 192], vec![0.0; 12], None),
        Err(KernelError::ColsNotMultiple { .. })
    ));
    assert!(matches!(
        CodeMatrix::from_parts(2, 64, vec![0; 128], vec![0.0; 7], None),
        Err(KernelError::LengthMismatch { .. })
    ));
    let m = CodeMatrix::from_parts(2, 64, vec![0; 128], vec![0.0; 8], None).unwrap();
    let mut out = vec![0f32; 2];
    assert!(matches!(
        m.matmul(&[0.0; 63], 1, &mut out, &ThreadPool::new(1)),
        Err(KernelError::LengthMismatch { .. })
    ));
}
