//! The Q6_K head product on every ISA: bit for bit the scalar reference (one summation order,
//! module docs of `bitnet_kernels::q6k`), each token of a batch exactly as alone, any thread
//! count; within f32 rounding of an f64 evaluation of the same quantized operands, with the
//! weights decoded by bitnet-quant's dequantizer (bit-exact with PyPI gguf) and the activations
//! quantized exactly as bitnet-quant's Q8_K (ggml's `quantize_row_q8_K_ref` rule).

use bitnet_kernels::q6k::{quantize_q8_k, Q6KMatrix, Q6K_BLOCK, Q6K_BLOCK_BYTES};
use bitnet_kernels::{Isa, ThreadPool};
use bitnet_quant::{dequantize, quantize, GgmlType};
use proptest::prelude::*;

/// Random Q6_K blocks: every code, scale and high-bit pattern, with finite super-scales.
fn random_blocks(count: usize) -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(any::<u8>(), count * 208),
        prop::collection::vec(-2.0f32..2.0, count),
    )
        .prop_map(move |(bytes, scales)| {
            let mut out = Vec::with_capacity(count * Q6K_BLOCK_BYTES);
            for (body, d) in bytes.chunks_exact(208).zip(scales) {
                out.extend_from_slice(body);
                out.extend_from_slice(&half::f16::from_f32(d / 64.0).to_le_bytes());
            }
            out
        })
}

/// Activations with occasional all-zero blocks and a few large values.
fn activations(len: usize) -> impl Strategy<Value = Vec<f32>> {
    (prop::collection::vec(-3.0f32..3.0, len), any::<u64>()).prop_map(|(mut x, seed)| {
        if seed % 5 == 0 {
            let end = x.len().min(Q6K_BLOCK);
            x[..end].fill(0.0);
        }
        if seed % 3 == 0 {
            let at = (seed as usize / 7) % x.len();
            x[at] = -40.0;
        }
        x
    })
}

/// `Σ_b f32(d_w) d_x S_b` evaluated in f64 from operands decoded independently of the kernel —
/// `scales_j · (c − 32)` by bitnet-quant's dequantizer with the block's `d` set to 1 (small
/// integers, exact), the activation codes and `d_x` from bitnet-quant's Q8_K bytes — and the bound
/// on the kernel's rounding: each term rounds at most three times (S_b to f32, the scale
/// product, the fused step), then one f32 sum over the blocks.
fn reference(m: &Q6KMatrix, r: usize, x: &[f32]) -> (f64, f64) {
    let blocks = Q6KMatrix::blocks_per_row(m.cols());
    let mut padded = x.to_vec();
    padded.resize(blocks * Q6K_BLOCK, 0.0);
    let xq = quantize(GgmlType::Q8K, &padded).unwrap();
    let (mut exact, mut magnitude) = (0f64, 0f64);
    for (b, (w, xb)) in m
        .row_blocks(r)
        .chunks_exact(Q6K_BLOCK_BYTES)
        .zip(xq.chunks_exact(292))
        .enumerate()
    {
        let d_w = half::f16::from_le_bytes([w[208], w[209]]).to_f32();
        let mut unit = w.to_vec();
        unit[208..210].copy_from_slice(&half::f16::ONE.to_le_bytes());
        let mut levels = vec![0f32; Q6K_BLOCK];
        dequantize(GgmlType::Q6K, &unit, Q6K_BLOCK, &mut levels).unwrap();
        let d_x = f32::from_le_bytes(xb[0..4].try_into().unwrap());
        let s: i64 = levels
            .iter()
            .zip(&xb[4..260])
            .map(|(&l, &a)| l as i64 * i64::from(a as i8))
            .sum();
        let term = s as f64 * f64::from(d_w) * f64::from(d_x);
        assert!(b < blocks);
        exact += term;
        magnitude += term.abs();
    }
    let tolerance = (blocks + 3) as f64 * f64::from(f32::EPSILON) * 0.5 * magnitude + 1e-30;
    (exact, tolerance)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_isa_same_bits_each_token_as_alone_within_f32_rounding(
        (rows, cols, batch, w, x) in (1usize..=9, 1usize..=3, 0usize..4, 1usize..=11)
            .prop_flat_map(|(rows, n_blocks, pad, batch)| {
                // A quarter of the shapes leave the last super-block partly padded.
                let cols = n_blocks * Q6K_BLOCK - [0, 0, 0, 96][pad];
                (
                    Just(rows), Just(cols), Just(batch),
                    random_blocks(rows * Q6KMatrix::blocks_per_row(cols)),
                    activations(batch * cols),
                )
            })
    ) {
        let m = Q6KMatrix::from_blocks(rows, cols, w).unwrap();
        let mut scalar_bits = Vec::new();
        for threads in [1, 3] {
            let pool = ThreadPool::new(threads);
            for isa in Isa::supported_for_tests() {
                let mut out = vec![f32::NAN; batch * rows];
                m.matmul_with_isa(isa, &x, batch, &mut out, &pool).unwrap();
                let bits: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
                if scalar_bits.is_empty() {
                    scalar_bits = bits.clone();
                } else {
                    prop_assert_eq!(&bits, &scalar_bits, "isa {} threads {}", isa, threads);
                }
                for t in 0..batch {
                    let token = &x[t * cols..(t + 1) * cols];
                    let mut alone = vec![f32::NAN; rows];
                    m.matmul_with_isa(isa, token, 1, &mut alone, &pool).unwrap();
                    let alone: Vec<u32> = alone.iter().map(|v| v.to_bits()).collect();
                    prop_assert_eq!(&alone[..], &bits[t * rows..(t + 1) * rows], "isa {} token {}", isa, t);
                }
            }
        }
        for t in 0..batch {
            for r in 0..rows {
                let (exact, tolerance) = reference(&m, r, &x[t * cols..(t + 1) * cols]);
                let got = f64::from(f32::from_bits(scalar_bits[t * rows + r]));
                prop_assert!((got - exact).abs() <= tolerance, "row {} token {}: {} vs {}", r, t, got, exact);
            }
        }
    }

    #[test]
    fn activations_quantize_as_bitnet_quant_q8_k(x in activations(2 * Q6K_BLOCK)) {
        let mut qs = vec![0i8; x.len()];
        let mut scales = vec![0f32; 2];
        let mut sums = vec![0i16; x.len() / 16];
        quantize_q8_k(&x, &mut qs, &mut scales, &mut sums).unwrap();
        let theirs = quantize(GgmlType::Q8K, &x).unwrap();
        for (b, block) in theirs.chunks_exact(292).enumerate() {
            prop_assert_eq!(&block[0..4], &scales[b].to_le_bytes());
            let codes: Vec<i8> = block[4..260].iter().map(|&c| c as i8).collect();
            prop_assert_eq!(&codes[..], &qs[b * 256..(b + 1) * 256]);
            let bsums: Vec<i16> = block[260..292]
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            prop_assert_eq!(&bsums[..], &sums[b * 16..(b + 1) * 16]);
        }
    }
}

#[test]
fn extreme_codes_and_scales_stay_exact_in_i32() {
    // Every code 0 (value −32) under scale −128, every activation code −127: the largest |S_b|.
    let mut block = vec![0u8; Q6K_BLOCK_BYTES];
    block[192..208].fill(0x80); // scales −128
    block[208..210].copy_from_slice(&half::f16::from_f32(1.0).to_le_bytes());
    let m = Q6KMatrix::from_blocks(1, Q6K_BLOCK, block).unwrap();
    let x = vec![-1.0f32; Q6K_BLOCK]; // iscale = −127/−1 = 127: a = −127, d_x = 1/127
    let pool = ThreadPool::new(1);
    for isa in Isa::supported_for_tests() {
        let mut out = [f32::NAN];
        m.matmul_with_isa(isa, &x, 1, &mut out, &pool).unwrap();
        // S = 256 · (−128) · (−32) · (−127) = −133,169,152 (exact in f32: 2^13 · 16,256);
        // d_w = 1, so the scale is d_x = 1/127 rounded in f32.
        let want = (-133_169_152f32).mul_add(1.0 / 127.0f32, 0.0);
        assert_eq!(out[0].to_bits(), want.to_bits(), "isa {isa}");
    }
}

#[test]
fn shapes_and_lengths_are_checked() {
    assert!(Q6KMatrix::from_blocks(0, 256, Vec::new()).is_err());
    assert!(Q6KMatrix::from_blocks(2, 256, vec![0; Q6K_BLOCK_BYTES]).is_err());
    let m = Q6KMatrix::from_blocks(1, 300, vec![0; 2 * Q6K_BLOCK_BYTES]).unwrap();
    let pool = ThreadPool::new(1);
    assert!(m.matmul(&[0.0; 299], 1, &mut [0.0], &pool).is_err());
    assert!(m.matmul(&[0.0; 300], 1, &mut [0.0; 2], &pool).is_err());
    let mut out = [f32::NAN];
    m.matmul(&[1.0; 300], 1, &mut out, &pool).unwrap();
    assert_eq!(out[0], 0.0, "all-zero blocks (d = 0) give +0");
    assert!(quantize_q8_k(&[0.0; 100], &mut [0; 100], &mut [0.0], &mut [0; 6]).is_err());
}
