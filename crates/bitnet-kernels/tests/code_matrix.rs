//! `CodeMatrix` (weights as integer codes with per-16 or per-32 scales and offsets, in 16-row
//! panels; activations quantized per 32): every ISA gives the scalar reference's bits, for the
//! code ranges, scale groups and storage (nibble or byte codes, f16 or f32 scales and offsets)
//! of every block type, any row count, batch and thread count (and AVX-512 with and without AMX
//! tiles); a token's outputs do not depend
//! on the batch it is in; the stored weights are the given ones and take the bytes the storage
//! says; and the result equals the module's formula evaluated in f64 from the quantized
//! activations (recomputed here independently), to f32 rounding.

use bitnet_kernels::code_matrix::{CodeMatrix, Tiles, ACTIVATION_BLOCK, CODE_GROUP, PANEL_ROWS};
use bitnet_kernels::{Isa, KernelError, ThreadPool};
use half::f16;
use proptest::prelude::*;

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The code shapes of the block types (`bitnet_quant::decode_int_codes`): name, code range,
/// whether rows have offsets, whether scales come in equal pairs of 16-groups (one per 32), and
/// whether scales and offsets are f16 values (the legacy types' `d` and `m` are f16 in the file;
/// the K-quants' are f32 products). The ranges make Q4_0, Q4_1, Q2_K, Q3_K and Q4_K nibble codes
/// (biased codes ≤ 15), the others byte codes.
const TYPES: [(&str, i8, i8, bool, bool, bool); 11] = [
    ("Q4_0", -8, 7, false, true, true),
    ("Q4_1", 0, 15, true, true, true),
    ("Q5_0", -16, 15, false, true, true),
    ("Q5_1", 0, 31, true, true, true),
    ("Q8_0", -128, 127, false, true, true),
    ("Q2_K", 0, 3, true, false, false),
    ("Q3_K", -4, 3, false, false, false),
    ("Q4_K", 0, 15, true, true, false),
    ("Q5_K", 0, 31, true, true, false),
    ("Q6_K", -32, 31, false, false, false),
    ("any i8, per-16 offsets", -128, 127, true, false, false),
];

/// The inputs of [`CodeMatrix::from_parts`]: codes, scales, offsets.
type Parts = (Vec<i8>, Vec<f32>, Option<Vec<f32>>);

/// Codes, scales and offsets of type `TYPES[ty]` from a seed: codes over the type's whole range,
/// scales and offsets of mixed signs and magnitudes (f16 values, among them a subnormal one,
/// for the types whose parameters are f16), and `batch` tokens of activations.
fn parts(rows: usize, cols: usize, batch: usize, ty: usize, seed: u64) -> (Parts, Vec<f32>) {
    let (_, lo, hi, offsets, paired, half) = TYPES[ty];
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let span = (i32::from(hi) - i32::from(lo) + 1) as u64;
    let codes: Vec<i8> = (0..rows * cols)
        .map(|_| (i32::from(lo) + (next() % span) as i32) as i8)
        .collect();
    let mut unit = move || (next() % 20_001) as f32 / 10_000.0 - 1.0;
    let groups = rows * cols / CODE_GROUP;
    let mut per_group = |scale: f32| -> Vec<f32> {
        let mut v: Vec<f32> = (0..groups).map(|_| unit() * scale).collect();
        if half {
            for s in v.iter_mut() {
                *s = f16::from_f32(*s).to_f32();
            }
            v[0] = f16::from_bits(0x8003).to_f32();
        }
        if paired {
            for pair in v.chunks_exact_mut(2) {
                pair[1] = pair[0];
            }
        }
        v
    };
    let scales = per_group(0.05);
    let offsets = offsets.then(|| per_group(0.3));
    let mut x: Vec<f32> = (0..batch * cols).map(|_| unit() * 3.0).collect();
    // An all-zero block (d = 0) and a block with one outlier.
    x[..ACTIVATION_BLOCK].fill(0.0);
    if x.len() > 2 * ACTIVATION_BLOCK {
        x[ACTIVATION_BLOCK + 3] = 250.0;
    }
    ((codes, scales, offsets), x)
}

/// A matrix of type `TYPES[ty]` and activations from a seed (see [`parts`]).
fn case(rows: usize, cols: usize, batch: usize, ty: usize, seed: u64) -> (CodeMatrix, Vec<f32>) {
    let ((codes, scales, offsets), x) = parts(rows, cols, batch, ty, seed);
    (
        CodeMatrix::from_parts(rows, cols, codes, scales, offsets).unwrap(),
        x,
    )
}

/// A kernel choice: an instruction set, and whether AVX-512 may use AMX tiles.
type Kernel = (Isa, Tiles);

/// The scalar reference.
const SCALAR: Kernel = (Isa::Scalar, Tiles::Off);

/// Every kernel this CPU runs: each supported ISA, and AVX-512 both with and without AMX tiles
/// (which it uses for several tokens where present; `Isa::supported_for_tests` says on stderr
/// when the CPU lacks them).
fn kernels() -> Vec<Kernel> {
    let mut kernels = Vec::new();
    for isa in Isa::supported_for_tests() {
        kernels.push((isa, Tiles::Allowed));
        if isa == Isa::Avx512 {
            kernels.push((isa, Tiles::Off));
        }
    }
    kernels
}

fn run(m: &CodeMatrix, (isa, tiles): Kernel, x: &[f32], batch: usize, threads: usize) -> Vec<f32> {
    let mut out = vec![0f32; batch * m.rows()];
    m.matmul_with_tiles(isa, tiles, x, batch, &mut out, &ThreadPool::new(threads))
        .unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_isa_gives_the_scalar_bits(
        rows in 1usize..40,
        chunks in 1usize..14,
        batch in 1usize..=20,
        ty in 0..TYPES.len(),
        threads in 1usize..4,
        seed: u64,
    ) {
        let cols = 64 * chunks;
        let (m, x) = case(rows, cols, batch, ty, seed);
        let want = run(&m, SCALAR, &x, batch, 1);
        for kernel in kernels() {
            let got = run(&m, kernel, &x, batch, threads);
            prop_assert_eq!(bits(&got), bits(&want), "{:?} {}", kernel, TYPES[ty].0);
        }
    }

    #[test]
    fn a_token_gets_the_same_bits_alone_and_in_a_batch(
        rows in 1usize..40,
        chunks in 1usize..10,
        batch in 2usize..=9,
        ty in 0..TYPES.len(),
        seed: u64,
    ) {
        let cols = 64 * chunks;
        let (m, x) = case(rows, cols, batch, ty, seed);
        for kernel in kernels() {
            let all = run(&m, kernel, &x, batch, 2);
            for b in 0..batch {
                let alone = run(&m, kernel, &x[b * cols..(b + 1) * cols], 1, 1);
                prop_assert_eq!(bits(&alone), bits(&all[b * rows..(b + 1) * rows]));
            }
        }
    }
}

/// A prefill-sized batch (its activations are quantized in pieces over the threads) gives every
/// token the bits it gets alone.
#[test]
fn a_long_batch_gives_each_token_its_bits_alone() {
    let (rows, cols, batch) = (40, 640, 60);
    for ty in [1, 9] {
        let (m, x) = case(rows, cols, batch, ty, 5);
        for kernel in kernels() {
            let all = run(&m, kernel, &x, batch, 3);
            for b in 0..batch {
                let alone = run(&m, SCALAR, &x[b * cols..(b + 1) * cols], 1, 1);
                assert_eq!(
                    bits(&alone),
                    bits(&all[b * rows..(b + 1) * rows]),
                    "{kernel:?}"
                );
            }
        }
    }
}

/// Matrices multiplied together (one quantization, one pool run over all their panels) give each
/// output the bits of its own product, at decode, batched-decode and prefill sizes; matrices
/// that do not share their activations are refused.
#[test]
fn matrices_multiplied_together_give_their_own_bits() {
    let cols = 192;
    for (ty, batch) in [(1, 1), (9, 8), (4, 17), (0, 40)] {
        let seed = 21 + ty as u64;
        let ms: Vec<CodeMatrix> = [37, 16, 5]
            .iter()
            .map(|&rows| case(rows, cols, 1, ty, seed + rows as u64).0)
            .collect();
        let (_, x) = parts(1, cols, batch, ty, seed);
        for threads in [1, 3] {
            let pool = ThreadPool::new(threads);
            let mut outs: Vec<Vec<f32>> = ms.iter().map(|m| vec![0.0; batch * m.rows()]).collect();
            let refs: Vec<&CodeMatrix> = ms.iter().collect();
            let mut slices: Vec<&mut [f32]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
            CodeMatrix::matmul_several(&refs, &x, batch, &mut slices, &pool).unwrap();
            for (m, got) in ms.iter().zip(&outs) {
                let mut want = vec![0.0; batch * m.rows()];
                m.matmul(&x, batch, &mut want, &pool).unwrap();
                assert_eq!(bits(got), bits(&want), "{} batch {batch}", TYPES[ty].0);
            }
        }
    }
    let (q4_0, q4_1) = (case(16, cols, 1, 0, 1).0, case(16, cols, 1, 1, 1).0);
    let mut outs = [vec![0.0; 16], vec![0.0; 16]];
    let [a, b] = &mut outs;
    assert_eq!(
        CodeMatrix::matmul_several(
            &[&q4_0, &q4_1],
            &vec![0.5; cols],
            1,
            &mut [a.as_mut_slice(), b.as_mut_slice()],
            &ThreadPool::new(1)
        ),
        Err(KernelError::ActivationsNotShared)
    );
}

/// `row_into` gives back `scale · code + offset` of the given parts (through every storage), and
/// so do the parts of `split_rows`.
#[test]
fn rows_and_splits_keep_the_values() {
    let (rows, cols) = (37, 192);
    for (ty, &(name, _, _, _, paired, _)) in TYPES.iter().enumerate() {
        let ((codes, scales, offsets), _) = parts(rows, cols, 1, ty, 11 + ty as u64);
        let m = CodeMatrix::from_parts(rows, cols, codes.clone(), scales.clone(), offsets.clone())
            .unwrap();
        let parts = m.split_rows(&[16, 5, 16]).unwrap();
        let mut want = vec![0f32; cols];
        let mut whole = vec![0f32; cols];
        let mut got = vec![0f32; cols];
        for r in 0..rows {
            for (e, w) in want.iter_mut().enumerate() {
                let g = (r * cols + e) / CODE_GROUP;
                let product = scales[g] * f32::from(codes[r * cols + e]);
                *w = offsets.as_ref().map_or(product, |o| product + o[g]);
            }
            m.row_into(r, &mut whole);
            assert_eq!(bits(&whole), bits(&want), "{name} row {r}");
            let (part, at) = match r {
                0..16 => (&parts[0], r),
                16..21 => (&parts[1], r - 16),
                _ => (&parts[2], r - 21),
            };
            part.row_into(at, &mut got);
            assert_eq!(bits(&got), bits(&want), "{name} row {r} split");
        }
        assert_eq!(m.group(), if paired { 32 } else { 16 });
    }
}

/// Bytes a matrix of `TYPES[ty]`'s storage streams: codes (half a byte each when biased codes
/// are ≤ 15), then one scale (and offset) per group (2 bytes each when f16), panels padded.
fn expected_stored_len(rows: usize, cols: usize, ty: usize) -> usize {
    let (_, lo, hi, offsets, paired, half) = TYPES[ty];
    let padded = rows.div_ceil(PANEL_ROWS) * PANEL_ROWS;
    let nibble = i16::from(hi) + (-i16::from(lo)).max(0) <= 15;
    let code_bytes = if nibble {
        padded * cols / 2
    } else {
        padded * cols
    };
    let group = if paired { 2 * CODE_GROUP } else { CODE_GROUP };
    let params = padded * cols / group * (1 + usize::from(offsets));
    code_bytes + params * if half { 2 } else { 4 }
}

#[test]
fn storage_takes_the_bytes_of_its_codes_and_parameters() {
    for (ty, &(name, ..)) in TYPES.iter().enumerate() {
        for rows in [16, 37] {
            let (m, _) = case(rows, 256, 1, ty, 3 + ty as u64);
            assert_eq!(
                m.stored_len(),
                expected_stored_len(rows, 256, ty),
                "{name} {rows}"
            );
        }
    }
}

/// SmolLM2's body (Q4_1) streams what the file holds: 0.625 bytes per weight (nibble codes, one
/// f16 scale and offset per 32), plus the zero rows padding the last panel.
#[test]
fn a_q4_1_matrix_takes_five_eighths_of_a_byte_per_weight() {
    let q4_1 = 1;
    let cols = 576;
    for rows in [64, 1536, 49] {
        let (m, _) = case(rows, cols, 1, q4_1, rows as u64);
        let padded = rows.div_ceil(PANEL_ROWS) * PANEL_ROWS;
        assert_eq!(m.stored_len() * 8, padded * cols * 5, "{rows} rows");
    }
}

/// One offset pair that is not an f16 value keeps the whole matrix's parameters f32 (and
/// exact).
#[test]
fn parameters_stay_f32_unless_every_one_is_an_f16() {
    let q4_1 = 1;
    let (rows, cols) = (20, 128);
    let ((codes, scales, offsets), x) = parts(rows, cols, 3, q4_1, 9);
    let mut offsets = offsets.unwrap();
    // Row 2, columns 64..96 (one 32-group): 0.1 is not an f16.
    offsets[20] = 0.1;
    offsets[21] = 0.1;
    let m =
        CodeMatrix::from_parts(rows, cols, codes.clone(), scales.clone(), Some(offsets)).unwrap();
    let padded = 2 * PANEL_ROWS;
    // Nibble codes; f32 scales and offsets, one each per 32.
    assert_eq!(
        m.stored_len(),
        padded * cols / 2 + 2 * 4 * padded * cols / 32
    );
    let mut w = vec![0f32; cols];
    m.row_into(2, &mut w);
    for e in 64..96 {
        let want = scales[20] * f32::from(codes[2 * cols + e]) + 0.1;
        assert_eq!(w[e].to_bits(), want.to_bits(), "column {e}");
    }
    let want = run(&m, SCALAR, &x, 3, 1);
    for kernel in kernels() {
        assert_eq!(bits(&run(&m, kernel, &x, 3, 2)), bits(&want), "{kernel:?}");
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
    for (rows, cols, batch, ty) in [
        (5, 64, 3, 4),
        (7, 576, 2, 1),
        (19, 2048, 4, 10),
        (3, 640, 9, 9),
    ] {
        let (m, x) = case(rows, cols, batch, ty, 7 + rows as u64);
        let got = run(&m, (Isa::best_supported(), Tiles::Allowed), &x, batch, 2);
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
