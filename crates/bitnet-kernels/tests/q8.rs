//! Q8_0 against PyPI `gguf` (ggml's bit-exact Python port): quantization must reproduce gguf's
//! blocks byte for byte, and the matmul must equal `Σ_blocks d_w d_x Σ q_w q_x` evaluated in f64
//! from gguf's blocks, to f32 rounding. Fixture: tests/data/q8_0_gguf_ref.bin, written by
//! tools/gen_kernel_q8_refs.py.

use bitnet_kernels::q8::{quantize_q8_0, Q8Matrix, Q8_BLOCK};
use bitnet_kernels::{Isa, ThreadPool};
use half::f16;

struct Reference {
    rows: usize,
    cols: usize,
    batch: usize,
    w: Vec<f32>,
    w_blocks: Vec<u8>,
    x: Vec<f32>,
    x_blocks: Vec<u8>,
}

fn load() -> Reference {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/q8_0_gguf_ref.bin");
    let bytes = std::fs::read(path).unwrap_or_else(|e| {
        panic!("missing fixture {path} ({e}); regenerate with python3 tools/gen_kernel_q8_refs.py")
    });
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap()) as usize;
    let (rows, cols, batch) = (u32_at(0), u32_at(4), u32_at(8));
    let mut offset = 12;
    let mut take = |n: usize| {
        let s = bytes[offset..offset + n].to_vec();
        offset += n;
        s
    };
    let floats = |b: Vec<u8>| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let w = floats(take(rows * cols * 4));
    let w_blocks = take(rows * cols / 32 * 34);
    let x = floats(take(batch * cols * 4));
    let x_blocks = take(batch * cols / 32 * 34);
    Reference {
        rows,
        cols,
        batch,
        w,
        w_blocks,
        x,
        x_blocks,
    }
}

/// Splits gguf block bytes into (codes, scales).
fn split_blocks(blocks: &[u8]) -> (Vec<i8>, Vec<f16>) {
    let mut codes = Vec::new();
    let mut scales = Vec::new();
    for block in blocks.chunks_exact(34) {
        scales.push(f16::from_le_bytes([block[0], block[1]]));
        codes.extend(block[2..].iter().map(|&b| b as i8));
    }
    (codes, scales)
}

#[test]
fn quantization_matches_gguf_bit_for_bit() {
    let r = load();
    let (codes, scales) = split_blocks(&r.w_blocks);
    let m = Q8Matrix::quantize_f32(&r.w, r.rows, r.cols).unwrap();
    assert_eq!(m.codes(), &codes[..]);
    let ours: Vec<u16> = m.block_scales().iter().map(|s| s.to_bits()).collect();
    let theirs: Vec<u16> = scales.iter().map(|s| s.to_bits()).collect();
    assert_eq!(ours, theirs);
    // The tie block: max 127 → d = 1, k + 0.5 rounds away from zero.
    assert_eq!(&m.codes()[..4], &[127, -16, -15, -14]); // 127, -15.5, -14.5, -13.5

    let (x_codes, x_scales) = split_blocks(&r.x_blocks);
    let mut q = vec![0i8; r.x.len()];
    let mut s = vec![f16::ZERO; r.x.len() / Q8_BLOCK];
    quantize_q8_0(&r.x, &mut q, &mut s).unwrap();
    assert_eq!(q, x_codes);
    assert_eq!(s, x_scales);
}

#[test]
fn matmul_matches_gguf_blocks_on_every_isa() {
    let r = load();
    let (w_codes, w_scales) = split_blocks(&r.w_blocks);
    let (x_codes, x_scales) = split_blocks(&r.x_blocks);
    let blocks = r.cols / Q8_BLOCK;
    let m = Q8Matrix::quantize_f32(&r.w, r.rows, r.cols).unwrap();
    for threads in [1, 2] {
        let pool = ThreadPool::new(threads);
        for isa in Isa::supported_for_tests() {
            let mut out = vec![f32::NAN; r.batch * r.rows];
            m.matmul_with_isa(isa, &r.x, r.batch, &mut out, &pool)
                .unwrap();
            for b in 0..r.batch {
                for row in 0..r.rows {
                    let (mut exact, mut magnitude) = (0f64, 0f64);
                    for k in 0..blocks {
                        let dot: i64 = (0..Q8_BLOCK)
                            .map(|j| {
                                let c = k * Q8_BLOCK + j;
                                i64::from(w_codes[row * r.cols + c])
                                    * i64::from(x_codes[b * r.cols + c])
                            })
                            .sum();
                        let term = dot as f64
                            * f64::from(w_scales[row * blocks + k].to_f32())
                            * f64::from(x_scales[b * blocks + k].to_f32());
                        exact += term;
                        magnitude += term.abs();
                    }
                    // Each term rounds twice (scale product, product), then `blocks` f32 sums.
                    let tolerance = (blocks + 3) as f64 * f64::from(f32::EPSILON) * 0.5 * magnitude;
                    let got = f64::from(out[b * r.rows + row]);
                    assert!(
                        (got - exact).abs() <= tolerance,
                        "isa {isa} row {row} batch {b}: got {got} want {exact} (tol {tolerance})"
                    );
                }
            }
        }
    }
}

#[test]
fn f16_head_quantizes_like_its_f32_values() {
    let r = load();
    let halves: Vec<f16> = r.w.iter().map(|&v| f16::from_f32(v)).collect();
    let widened: Vec<f32> = halves.iter().map(|h| h.to_f32()).collect();
    let from_f16 = Q8Matrix::quantize_f16(&halves, r.rows, r.cols).unwrap();
    let from_f32 = Q8Matrix::quantize_f32(&widened, r.rows, r.cols).unwrap();
    assert_eq!(from_f16.codes(), from_f32.codes());
    assert_eq!(from_f16.block_scales(), from_f32.block_scales());
    assert!(Q8Matrix::quantize_f32(&r.w[..100], 1, 100).is_err());
}

mod random_shapes {
    //! Odd block counts (tails of the 8-block scale groups) on every ISA, against f64 evaluation
    //! of the quantized operands, and bit for bit equal across ISAs.
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn every_isa_within_f32_rounding(
            (rows, cols, batch, w, x) in (1usize..=9, 1usize..=11, 1usize..=11).prop_flat_map(|(rows, blocks, batch)| (
                Just(rows), Just(blocks * 32), Just(batch),
                prop::collection::vec(-2.0f32..2.0, rows * blocks * 32),
                prop::collection::vec(-5.0f32..5.0, batch * blocks * 32),
            ))
        ) {
            let m = Q8Matrix::quantize_f32(&w, rows, cols).unwrap();
            let mut xq = vec![0i8; x.len()];
            let mut xs = vec![f16::ZERO; x.len() / 32];
            quantize_q8_0(&x, &mut xq, &mut xs).unwrap();
            let blocks = cols / 32;
            let pool = ThreadPool::new(2);
            let mut scalar_bits = Vec::new();
            for isa in Isa::supported_for_tests() {
                let mut out = vec![f32::NAN; batch * rows];
                m.matmul_with_isa(isa, &x, batch, &mut out, &pool).unwrap();
                // One summation order on every ISA: the same bits as the scalar path.
                let bits: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
                if isa == Isa::Scalar {
                    scalar_bits = bits;
                } else {
                    prop_assert_eq!(&bits, &scalar_bits, "isa {} differs from scalar", isa);
                }
                for b in 0..batch {
                    for r in 0..rows {
                        let (mut exact, mut magnitude) = (0f64, 0f64);
                        // The SIMD paths sum exact 4-code partial dots (scaled) in f32 lanes:
                        // bound the error over those terms.
                        for quad in 0..cols / 4 {
                            let k = quad / 8;
                            let dot: i64 = (0..4)
                                .map(|j| i64::from(m.codes()[r * cols + quad * 4 + j]) * i64::from(xq[b * cols + quad * 4 + j]))
                                .sum();
                            let term = dot as f64
                                * f64::from(m.block_scales()[r * blocks + k].to_f32())
                                * f64::from(xs[b * blocks + k].to_f32());
                            exact += term;
                            magnitude += term.abs();
                        }
                        let tolerance = (cols / 4 + 3) as f64 * f64::from(f32::EPSILON) * 0.5 * magnitude;
                        let got = f64::from(out[b * rows + r]);
                        prop_assert!((got - exact).abs() <= tolerance, "isa {} got {} want {}", isa, got, exact);
                    }
                }
            }
        }
    }
}
