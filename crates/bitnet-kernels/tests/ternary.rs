//! Every ternary kernel path (scalar, AVX2, AVX-512 VNNI, and AVX-512 VBMI over the trit5 layout)
//! against the definition of the product, `D[b][r] = Σ_j t[r][j] · q[b][j]`, evaluated naively
//! from the unpacked values; the block-scaled float product against an f64 evaluation,
//! bit-identical across ISAs and thread counts; the layout choice and the trit5 packed size.

use bitnet_kernels::ternary::{BitLinearScratch, Scales, TernaryLayout, TernaryMatrix};
use bitnet_kernels::{active_isa, kernels_used, Isa, KernelError, ThreadPool};

const LAYOUTS: [TernaryLayout; 2] = [TernaryLayout::TwoBit, TernaryLayout::Trit5];
use proptest::prelude::*;

fn naive_dots(values: &[i8], rows: usize, cols: usize, x: &[i8], batch: usize) -> Vec<i32> {
    let mut out = vec![0i32; batch * rows];
    for b in 0..batch {
        for r in 0..rows {
            out[b * rows + r] = (0..cols)
                .map(|j| i32::from(values[r * cols + j]) * i32::from(x[b * cols + j]))
                .sum();
        }
    }
    out
}

/// Ternary weights, skewed so runs of one value (and all-zero stretches) also occur.
fn ternary(len: usize) -> impl Strategy<Value = Vec<i8>> {
    prop::collection::vec(prop_oneof![Just(-1i8), Just(0i8), Just(1i8)], len)
}

/// int8 activations with the extremes −128 and 127 over-represented.
fn activations(len: usize) -> impl Strategy<Value = Vec<i8>> {
    prop::collection::vec(
        prop_oneof![3 => any::<i8>(), 1 => Just(-128i8), 1 => Just(127i8)],
        len,
    )
}

fn case() -> impl Strategy<Value = (usize, usize, usize, Vec<i8>, Vec<i8>)> {
    (
        1usize..=13,
        prop::sample::select(vec![128usize, 256, 384, 640, 896]),
        1usize..=9,
    )
        .prop_flat_map(|(rows, cols, batch)| {
            (
                Just(rows),
                Just(cols),
                Just(batch),
                ternary(rows * cols),
                activations(batch * cols),
            )
        })
}

/// Shapes for the trit5 layout: every multiple of 128 up to 1664 columns, batches 1..=17: the
/// direct VBMI path's token groups (8 to 5 two rows at a time, 4, 2, 1) up to its limit of 15,
/// and the unpacking path above it.
fn trit5_case() -> impl Strategy<Value = (usize, usize, usize, Vec<i8>, Vec<i8>)> {
    (
        1usize..=13,
        (1usize..=13).prop_map(|k| 128 * k),
        1usize..=17,
    )
        .prop_flat_map(|(rows, cols, batch)| {
            (
                Just(rows),
                Just(cols),
                Just(batch),
                ternary(rows * cols),
                activations(batch * cols),
            )
        })
}

fn pools() -> Vec<ThreadPool> {
    vec![ThreadPool::new(1), ThreadPool::new(2), ThreadPool::new(3)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn every_isa_equals_the_definition((rows, cols, batch, values, x) in case()) {
        let expected = naive_dots(&values, rows, cols, &x, batch);
        for layout in LAYOUTS {
            let matrix = TernaryMatrix::from_values_with_layout(
                rows, cols, &values, Scales::PerTensor(1.0), layout,
            ).unwrap();
            for pool in pools() {
                for isa in Isa::supported_for_tests() {
                    let mut out = vec![i32::MIN; batch * rows];
                    matrix.matmul_with_isa(isa, &x, batch, &mut out, &pool).unwrap();
                    prop_assert_eq!(
                        &out, &expected, "{:?} isa {} threads {}", layout, isa, pool.threads()
                    );
                }
            }
        }
    }

    #[test]
    fn packing_round_trips((rows, cols, _batch, values, _x) in case()) {
        for layout in LAYOUTS {
            let matrix = TernaryMatrix::from_values_with_layout(
                rows, cols, &values, Scales::PerTensor(0.5), layout,
            ).unwrap();
            for r in 0..rows {
                for c in 0..cols {
                    prop_assert_eq!(matrix.value(r, c), Some(values[r * cols + c]));
                }
            }
            prop_assert_eq!(matrix.value(rows, 0), None);
            prop_assert_eq!(matrix.value(0, cols), None);
        }
    }

    /// The trit5 layout on every ISA, batch and thread count against the 2-bit layout's scalar
    /// products (integer and per-tensor scaled), over every `cols mod 320` residue (cols = 128k,
    /// k = 1..=13: residues 128, 256, 64, 192, 0, …), and its values and packed size; with and
    /// without the 2-bit copy that batched products read.
    #[test]
    fn trit5_equals_two_bit_scalar_on_every_isa((rows, cols, batch, values, x) in trit5_case()) {
        let scales = Scales::PerTensor(0.375);
        let two_bit = TernaryMatrix::from_values_with_layout(
            rows, cols, &values, scales.clone(), TernaryLayout::TwoBit,
        ).unwrap();
        let trit5 = TernaryMatrix::from_values_with_layout(
            rows, cols, &values, scales, TernaryLayout::Trit5,
        ).unwrap();
        prop_assert_eq!(trit5.layout(), TernaryLayout::Trit5);
        prop_assert_eq!(trit5.packed_len(), rows.div_ceil(4) * 4 * cols.div_ceil(320) * 64);
        for r in 0..rows {
            for c in 0..cols {
                prop_assert_eq!(trit5.value(r, c), Some(values[r * cols + c]));
            }
        }
        let serial = ThreadPool::new(1);
        let mut expected = vec![0i32; batch * rows];
        two_bit.matmul_with_isa(Isa::Scalar, &x, batch, &mut expected, &serial).unwrap();
        let mut expected_scaled = vec![0f32; batch * rows];
        two_bit
            .matmul_scaled_with_isa(Isa::Scalar, &x, batch, &mut expected_scaled, &serial)
            .unwrap();
        // The same matrix with the 2-bit copy that batched products read.
        let mut with_copy = trit5.clone();
        with_copy.keep_two_bit_copy();
        prop_assert_eq!(with_copy.two_bit_copy_len(), two_bit.packed_len());
        prop_assert_eq!(with_copy.packed_len(), trit5.packed_len());
        for pool in pools() {
            for isa in Isa::supported_for_tests() {
                for (matrix, copy) in [(&trit5, false), (&with_copy, true)] {
                    let mut out = vec![i32::MIN; batch * rows];
                    matrix.matmul_with_isa(isa, &x, batch, &mut out, &pool).unwrap();
                    prop_assert_eq!(
                        &out, &expected, "isa {} threads {} copy {}", isa, pool.threads(), copy
                    );
                    let mut scaled = vec![f32::NAN; batch * rows];
                    matrix.matmul_scaled_with_isa(isa, &x, batch, &mut scaled, &pool).unwrap();
                    prop_assert_eq!(
                        &scaled, &expected_scaled, "isa {} threads {} copy {}", isa,
                        pool.threads(), copy
                    );
                }
            }
        }
    }

    #[test]
    fn block_scaled_matches_f64_definition(
        (rows, cols, batch, values, x) in case(),
        block_choice in 0usize..3,
        seed in any::<u64>(),
    ) {
        let block_len = [32usize, 128, cols][block_choice];
        let blocks = rows * cols / block_len;
        // Deterministic scales of varied magnitude and sign from the seed.
        let scales: Vec<f32> = (0..blocks)
            .map(|i| {
                let h = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add((i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
                ((h >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
            })
            .collect();
        let matrix = TernaryMatrix::from_values(
            rows, cols, &values, Scales::PerBlock { block_len, scales: scales.clone() },
        ).unwrap();
        let mut first_bits: Option<Vec<u32>> = None;
        for pool in pools() {
            for isa in Isa::supported_for_tests() {
                let mut out = vec![f32::NAN; batch * rows];
                matrix.matmul_scaled_with_isa(isa, &x, batch, &mut out, &pool).unwrap();
                // One summation order on every ISA and thread count: identical bits.
                let bits: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
                match &first_bits {
                    None => first_bits = Some(bits),
                    Some(first) => prop_assert_eq!(&bits, first, "isa {} threads {}", isa, pool.threads()),
                }
                for b in 0..batch {
                    for r in 0..rows {
                        // The kernels sum exact 4-column partial dots, scaled, in f32: bound the
                        // error by the standard n·u·Σ|terms| over those cols/4 terms.
                        let (mut exact, mut magnitude) = (0f64, 0f64);
                        for quad in 0..cols / 4 {
                            let d: i64 = (0..4)
                                .map(|k| {
                                    let j = quad * 4 + k;
                                    i64::from(values[r * cols + j]) * i64::from(x[b * cols + j])
                                })
                                .sum();
                            let scale = f64::from(scales[(r * cols + quad * 4) / block_len]);
                            exact += d as f64 * scale;
                            magnitude += (d as f64 * scale).abs();
                        }
                        let got = f64::from(out[b * rows + r]);
                        let tolerance = (cols / 4) as f64 * f64::from(f32::EPSILON) * 0.5 * magnitude + 1e-9;
                        prop_assert!((got - exact).abs() <= tolerance,
                            "isa {} r {} b {}: got {} want {} (tol {})", isa, r, b, got, exact, tolerance);
                    }
                }
            }
        }
    }
}

#[test]
fn real_model_shapes_equal_the_definition() {
    // The 2B-4T shapes' column counts (2560, 6912) and the tiny model's (256, 768, 128); a
    // prefill of 300 tokens spans several of the kernels' token blocks (a tile is unpacked once
    // per block).
    let pool = ThreadPool::new(2);
    let shapes = [
        (9, 2560, 5),
        (6, 6912, 3),
        (4, 768, 2),
        (7, 128, 4),
        (5, 640, 300),
    ];
    for &(rows, cols, batch) in &shapes {
        let values: Vec<i8> = (0..rows * cols)
            .map(|i| ((i * 7 + i / 13) % 3) as i8 - 1)
            .collect();
        let x: Vec<i8> = (0..batch * cols)
            .map(|i| ((i * 151 + 17) % 256) as u8 as i8)
            .collect();
        let expected = naive_dots(&values, rows, cols, &x, batch);
        for layout in LAYOUTS {
            let matrix = TernaryMatrix::from_values_with_layout(
                rows,
                cols,
                &values,
                Scales::PerTensor(1.0),
                layout,
            )
            .unwrap();
            for isa in Isa::supported_for_tests() {
                for batch in [1, batch] {
                    let mut out = vec![0; batch * rows];
                    matrix
                        .matmul_with_isa(isa, &x[..batch * cols], batch, &mut out, &pool)
                        .unwrap();
                    assert_eq!(
                        out,
                        expected[..batch * rows],
                        "{layout:?} isa {isa} shape {rows}x{cols} batch {batch}"
                    );
                }
            }
        }
    }
}

#[test]
fn extreme_activations_do_not_saturate() {
    // All weights +1 (or −1) against all −128 / 127: the largest |D| a row can reach.
    let (rows, cols) = (4, 6912);
    let pool = ThreadPool::new(1);
    for (w, q) in [(1i8, -128i8), (-1, -128), (1, 127), (-1, 127)] {
        for layout in LAYOUTS {
            let matrix = TernaryMatrix::from_values_with_layout(
                rows,
                cols,
                &vec![w; rows * cols],
                Scales::PerTensor(1.0),
                layout,
            )
            .unwrap();
            let x = vec![q; cols];
            for isa in Isa::supported_for_tests() {
                let mut out = vec![0; rows];
                matrix.matmul_with_isa(isa, &x, 1, &mut out, &pool).unwrap();
                assert_eq!(
                    out,
                    vec![i32::from(w) * i32::from(q) * cols as i32; rows],
                    "{layout:?} isa {isa}"
                );
            }
        }
    }
}

/// Rows of each matrix, columns, batch, each matrix's values, float activations, 2-bit copy.
type SeveralCase = (Vec<usize>, usize, usize, Vec<Vec<i8>>, Vec<f32>, bool);

/// Up to 3 matrices over one input (q, k, v): rows not multiples of the tile, every layout,
/// with and without the 2-bit copy, and float activations for the whole BitLinear.
fn several_case() -> impl Strategy<Value = SeveralCase> {
    (
        prop::collection::vec(1usize..=11, 2..=3),
        prop::sample::select(vec![128usize, 384, 640, 2560]),
        1usize..=9,
        any::<bool>(),
    )
        .prop_flat_map(|(rows, cols, batch, copy)| {
            (
                Just(rows.clone()),
                Just(cols),
                Just(batch),
                rows.iter().map(|&r| ternary(r * cols)).collect::<Vec<_>>(),
                prop::collection::vec(-8.0f32..8.0, batch * cols),
                Just(copy),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// The BitLinears of a layer's projections over one input, run together (input quantized
    /// once, one pool run), give each matrix's own BitLinear bits on every ISA and thread count.
    #[test]
    fn bitlinears_run_together_equal_each_alone(
        (rows, cols, batch, values, x, copy) in several_case()
    ) {
        for layout in LAYOUTS {
            let matrices: Vec<TernaryMatrix> = rows
                .iter()
                .zip(&values)
                .enumerate()
                .map(|(i, (&r, v))| {
                    let scale = Scales::PerTensor(0.5 + i as f32 / 3.0);
                    let mut m = TernaryMatrix::from_values_with_layout(r, cols, v, scale, layout)
                        .unwrap();
                    if copy {
                        m.keep_two_bit_copy();
                    }
                    m
                })
                .collect();
            let refs: Vec<&TernaryMatrix> = matrices.iter().collect();
            for pool in pools() {
                for isa in Isa::supported_for_tests() {
                    let mut scratch = BitLinearScratch::new();
                    let mut alone: Vec<Vec<f32>> = Vec::new();
                    for m in &matrices {
                        let mut y = vec![f32::NAN; batch * m.rows()];
                        m.bitlinear_with_isa(isa, &x, batch, &mut y, &mut scratch, &pool).unwrap();
                        alone.push(y);
                    }
                    let mut together: Vec<Vec<f32>> =
                        matrices.iter().map(|m| vec![f32::NAN; batch * m.rows()]).collect();
                    let mut outs: Vec<&mut [f32]> =
                        together.iter_mut().map(|y| &mut y[..]).collect();
                    TernaryMatrix::bitlinear_several_with_isa(
                        isa, &refs, &x, batch, &mut outs, &mut scratch, &pool,
                    )
                    .unwrap();
                    for (a, t) in alone.iter().zip(&together) {
                        let a: Vec<u32> = a.iter().map(|v| v.to_bits()).collect();
                        let t: Vec<u32> = t.iter().map(|v| v.to_bits()).collect();
                        prop_assert_eq!(a, t, "isa {} layout {:?} copy {}", isa, layout, copy);
                    }
                }
            }
        }
    }
}

#[test]
fn bitlinears_run_together_refuse_what_they_cannot_share() {
    let pool = ThreadPool::new(2);
    let mut scratch = BitLinearScratch::new();
    let m = |rows, cols| {
        TernaryMatrix::from_values(rows, cols, &vec![1; rows * cols], Scales::PerTensor(1.0))
            .unwrap()
    };
    let (a, b) = (m(4, 128), m(4, 256));
    let x = vec![1.0f32; 128];
    let (mut y0, mut y1, mut y2, mut y3) =
        (vec![0f32; 4], vec![0f32; 4], vec![0f32; 4], vec![0f32; 4]);
    // Different columns cannot take one input.
    assert_eq!(
        TernaryMatrix::bitlinear_several(
            &[&a, &b],
            &x,
            1,
            &mut [&mut y0, &mut y1],
            &mut scratch,
            &pool
        )
        .unwrap_err(),
        KernelError::ActivationsNotShared
    );
    // More matrices than one run takes, or an output missing: typed errors, nothing written.
    assert!(matches!(
        TernaryMatrix::bitlinear_several(
            &[&a, &a, &a, &a],
            &x,
            1,
            &mut [&mut y0, &mut y1, &mut y2, &mut y3],
            &mut scratch,
            &pool
        ),
        Err(KernelError::LengthMismatch { .. })
    ));
    assert!(matches!(
        TernaryMatrix::bitlinear_several(&[&a, &a], &x, 1, &mut [&mut y0], &mut scratch, &pool),
        Err(KernelError::LengthMismatch { .. })
    ));
    let blocked = TernaryMatrix::from_values(
        4,
        128,
        &[0; 512],
        Scales::PerBlock {
            block_len: 32,
            scales: vec![1.0; 16],
        },
    )
    .unwrap();
    assert_eq!(
        TernaryMatrix::bitlinear_several(
            &[&a, &blocked],
            &x,
            1,
            &mut [&mut y0, &mut y1],
            &mut scratch,
            &pool
        )
        .unwrap_err(),
        KernelError::NeedsPerTensorScales
    );
    assert_eq!(y0, vec![0f32; 4], "an error leaves the outputs untouched");
}

#[test]
fn bad_operands_are_typed_errors() {
    let pool = ThreadPool::new(1);
    assert_eq!(
        TernaryMatrix::from_values(2, 100, &[0; 200], Scales::PerTensor(1.0)).unwrap_err(),
        KernelError::ColsNotMultiple {
            cols: 100,
            granularity: 128
        }
    );
    assert_eq!(
        TernaryMatrix::from_values(1, 128, &[2; 128], Scales::PerTensor(1.0)).unwrap_err(),
        KernelError::NotTernary { index: 0, value: 2 }
    );
    assert!(matches!(
        TernaryMatrix::from_values(1, 128, &[0; 127], Scales::PerTensor(1.0)),
        Err(KernelError::LengthMismatch { .. })
    ));
    assert!(matches!(
        TernaryMatrix::from_values(0, 128, &[], Scales::PerTensor(1.0)),
        Err(KernelError::EmptyShape { .. })
    ));
    assert_eq!(
        TernaryMatrix::from_values(
            1,
            128,
            &[0; 128],
            Scales::PerBlock {
                block_len: 48,
                scales: vec![]
            }
        )
        .unwrap_err(),
        KernelError::BadBlockLen {
            block_len: 48,
            cols: 128
        }
    );
    let blocked = TernaryMatrix::from_values(
        1,
        128,
        &[0; 128],
        Scales::PerBlock {
            block_len: 32,
            scales: vec![1.0; 4],
        },
    )
    .unwrap();
    assert_eq!(
        blocked.matmul(&[0; 128], 1, &mut [0], &pool).unwrap_err(),
        KernelError::NeedsPerTensorScales
    );
    let matrix = TernaryMatrix::from_values(2, 128, &[1; 256], Scales::PerTensor(1.0)).unwrap();
    assert!(matches!(
        matrix.matmul(&[0; 128], 1, &mut [0; 3], &pool),
        Err(KernelError::LengthMismatch { .. })
    ));
    assert!(matches!(
        matrix.matmul(&[0; 127], 1, &mut [0; 2], &pool),
        Err(KernelError::LengthMismatch { .. })
    ));
}

#[test]
fn per_tensor_scaled_product_is_dot_times_scale() {
    let pool = ThreadPool::new(2);
    let values: Vec<i8> = (0..3 * 256).map(|i| (i % 3) as i8 - 1).collect();
    let x: Vec<i8> = (0..256).map(|i| (i - 128) as i8).collect();
    let matrix = TernaryMatrix::from_values(3, 256, &values, Scales::PerTensor(0.25)).unwrap();
    let expected: Vec<f32> = naive_dots(&values, 3, 256, &x, 1)
        .iter()
        .map(|&d| d as f32 * 0.25)
        .collect();
    let mut out = vec![0f32; 3];
    matrix.matmul_scaled(&x, 1, &mut out, &pool).unwrap();
    assert_eq!(out, expected);
}

/// Whether this CPU has AVX-512 VBMI (never off x86-64).
fn cpu_has_vbmi() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512vbmi")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[test]
fn from_values_picks_trit5_exactly_on_avx512_vbmi_with_per_tensor_scales() {
    let vbmi = cpu_has_vbmi();
    let expected = if active_isa() == Isa::Avx512 && vbmi {
        TernaryLayout::Trit5
    } else {
        TernaryLayout::TwoBit
    };
    let per_tensor = TernaryMatrix::from_values(4, 640, &[1; 4 * 640], Scales::PerTensor(1.0));
    assert_eq!(per_tensor.unwrap().layout(), expected, "vbmi {vbmi}");
    let blocked = Scales::PerBlock {
        block_len: 128,
        scales: vec![1.0; 4 * 640 / 128],
    };
    let per_block = TernaryMatrix::from_values(4, 640, &[1; 4 * 640], blocked.clone()).unwrap();
    assert_eq!(per_block.layout(), TernaryLayout::TwoBit);
    assert_eq!(
        TernaryMatrix::from_values_with_layout(
            4,
            640,
            &[1; 4 * 640],
            blocked,
            TernaryLayout::Trit5
        )
        .unwrap_err(),
        KernelError::NeedsPerTensorScales
    );
}

/// One token over trit5 shares of many tiles (the one-token kernel takes a thread's share in runs
/// of 16 tiles: here 1 to 3 threads' shares of 38 tiles, the last one partly rows past the end),
/// with whole and partial last chunks, equals the definition on every ISA.
#[test]
fn trit5_one_token_over_many_tiles_equals_the_definition() {
    let rows = 150;
    for cols in [640, 768, 2560] {
        let values: Vec<i8> = (0..rows * cols)
            .map(|i| ((i * 7 + i / 13) % 3) as i8 - 1)
            .collect();
        let x: Vec<i8> = (0..cols).map(|j| ((j * 29) % 255) as i8).collect();
        let matrix = TernaryMatrix::from_values_with_layout(
            rows,
            cols,
            &values,
            Scales::PerTensor(1.0),
            TernaryLayout::Trit5,
        )
        .unwrap();
        let expected = naive_dots(&values, rows, cols, &x, 1);
        for pool in pools() {
            for isa in Isa::supported_for_tests() {
                let mut out = vec![i32::MIN; rows];
                matrix.matmul_with_isa(isa, &x, 1, &mut out, &pool).unwrap();
                assert_eq!(
                    out,
                    expected,
                    "cols {cols} isa {isa} threads {}",
                    pool.threads()
                );
            }
        }
    }
}

#[test]
fn trit5_packed_size_is_256_bytes_per_started_320_columns_per_tile() {
    // 2B-4T shapes: 2560 = 8 × 320 (2048 bytes per tile instead of 2560), 6912 = 21 × 320 + 192.
    for (rows, cols, tile_bytes) in [(4, 2560, 2048), (9, 6912, 22 * 256), (1, 128, 256)] {
        let matrix = TernaryMatrix::from_values_with_layout(
            rows,
            cols,
            &vec![0; rows * cols],
            Scales::PerTensor(1.0),
            TernaryLayout::Trit5,
        )
        .unwrap();
        assert_eq!(matrix.packed_len(), rows.div_ceil(4) * tile_bytes);
    }
}

#[test]
fn vbmi_matvec_is_recorded_when_it_runs() {
    let matrix = TernaryMatrix::from_values_with_layout(
        4,
        384,
        &[-1; 4 * 384],
        Scales::PerTensor(1.0),
        TernaryLayout::Trit5,
    )
    .unwrap();
    let pool = ThreadPool::new(1);
    let mut out = [0i32; 4];
    for isa in Isa::supported_for_tests() {
        matrix
            .matmul_with_isa(isa, &[2; 384], 1, &mut out, &pool)
            .unwrap();
        assert_eq!(out, [-768; 4], "isa {isa}");
    }
    let ran = kernels_used().contains(&"i2s_trit5_avx512_vbmi_matvec");
    let expected = Isa::Avx512.is_supported() && cpu_has_vbmi();
    assert_eq!(ran, expected, "{:?}", kernels_used());
}
