//! F16 head matvec and batched (prefill) matmul on every ISA against an f64 evaluation of the same products, within the
//! standard bound for an n-term f32 sum (n · 2⁻²⁴ · Σ|w·x|), and bit for bit against the
//! documented summation order whatever the ISA and batch size.

use bitnet_kernels::f16::matmul_f16_with_isa;
use bitnet_kernels::{matvec_f16, Isa, ThreadPool};
use half::f16;
use proptest::prelude::*;

/// Every supported ISA gives the scalar reference's bits for this product (2 threads).
fn every_isa_equals_scalar(
    rows: usize,
    cols: usize,
    batch: usize,
    w: &[f16],
    x: &[f32],
) -> Result<(), TestCaseError> {
    let pool = ThreadPool::new(2);
    let mut want = vec![f32::NAN; batch * rows];
    matmul_f16_with_isa(Isa::Scalar, w, rows, cols, x, batch, &mut want, &pool).unwrap();
    for isa in Isa::supported_for_tests() {
        let mut out = vec![f32::NAN; batch * rows];
        matmul_f16_with_isa(isa, w, rows, cols, x, batch, &mut out, &pool).unwrap();
        let same = out
            .iter()
            .zip(&want)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        prop_assert!(
            same,
            "isa {} differs from scalar ({} x {} x {}): {:?} vs {:?}",
            isa,
            rows,
            cols,
            batch,
            out,
            want
        );
    }
    Ok(())
}

fn check(rows: usize, cols: usize, batch: usize, w: &[f16], x: &[f32], out: &[f32], isa: Isa) {
    for b in 0..batch {
        for r in 0..rows {
            let terms =
                (0..cols).map(|j| f64::from(w[r * cols + j].to_f32()) * f64::from(x[b * cols + j]));
            let exact: f64 = terms.clone().sum();
            let magnitude: f64 = terms.map(f64::abs).sum();
            let tolerance = cols as f64 * f64::from(f32::EPSILON) * 0.5 * magnitude + 1e-30;
            let got = f64::from(out[b * rows + r]);
            assert!(
                (got - exact).abs() <= tolerance,
                "isa {isa} row {r} batch {b}: got {got} want {exact} (tol {tolerance})"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_isa_within_f32_sum_bound(
        (rows, cols, batch, w, x) in (1usize..=11, 1usize..=300, 1usize..=3).prop_flat_map(|(rows, cols, batch)| (
            Just(rows), Just(cols), Just(batch),
            prop::collection::vec((-4.0f32..4.0).prop_map(f16::from_f32), rows * cols),
            prop::collection::vec(-3.0f32..3.0, batch * cols),
        ))
    ) {
        for threads in [1, 3] {
            let pool = ThreadPool::new(threads);
            for isa in Isa::supported_for_tests() {
                let mut out = vec![f32::NAN; batch * rows];
                matmul_f16_with_isa(isa, &w, rows, cols, &x, batch, &mut out, &pool).unwrap();
                check(rows, cols, batch, &w, &x, &out, isa);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Prefill-sized batches: the register-tiled path with ragged row panels (rows not a multiple
    /// of 6 or 12), token tails (batch not a multiple of 8 or 16, odd) and cols not a multiple of 16.
    #[test]
    fn batched_every_isa_within_f32_sum_bound(
        (rows, cols, batch, w, x) in (1usize..=29, 1usize..=200, 1usize..=53).prop_flat_map(|(rows, cols, batch)| (
            Just(rows), Just(cols), Just(batch),
            prop::collection::vec((-4.0f32..4.0).prop_map(f16::from_f32), rows * cols),
            prop::collection::vec(-3.0f32..3.0, batch * cols),
        ))
    ) {
        for threads in [1, 3] {
            let pool = ThreadPool::new(threads);
            for isa in Isa::supported_for_tests() {
                let mut out = vec![f32::NAN; batch * rows];
                matmul_f16_with_isa(isa, &w, rows, cols, &x, batch, &mut out, &pool).unwrap();
                check(rows, cols, batch, &w, &x, &out, isa);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The summation order is one contract: every ISA, one token or a batch, gives the scalar
    /// reference's bits exactly (cols past several 32-lane bodies, with every tail length).
    #[test]
    fn every_isa_equals_the_scalar_reference_bit_for_bit(
        (rows, cols, batch, w, x) in (1usize..=9, 1usize..=200, 1usize..=20).prop_flat_map(|(rows, cols, batch)| (
            Just(rows), Just(cols), Just(batch),
            prop::collection::vec((-4.0f32..4.0).prop_map(f16::from_f32), rows * cols),
            prop::collection::vec(-3.0f32..3.0, batch * cols),
        ))
    ) {
        every_isa_equals_scalar(rows, cols, batch, &w, &x)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Batched decode (a few tokens, long rows): the AVX-512 few-token kernel walks each group of
    /// rows in 1024-column panels, each lane half in its own sweep, keeping every dot's lanes
    /// between panels; the bits stay the scalar reference's across several panels, a short last
    /// panel, every tail length and token counts that leave a short last sweep.
    #[test]
    fn few_tokens_over_several_panels_equal_the_scalar_reference(
        (rows, cols, batch, w, x) in (1usize..=9, 480usize..=3300, 2usize..=9).prop_flat_map(|(rows, cols, batch)| (
            Just(rows), Just(cols), Just(batch),
            prop::collection::vec((-4.0f32..4.0).prop_map(f16::from_f32), rows * cols),
            prop::collection::vec(-3.0f32..3.0, batch * cols),
        ))
    ) {
        every_isa_equals_scalar(rows, cols, batch, &w, &x)?;
    }
}

#[test]
fn prefill_shaped_matmul() {
    // SmolLM2 FFN width (576 columns), 100 rows (not a multiple of the panels), 37 tokens.
    let (rows, cols, batch) = (100, 576, 37);
    let w: Vec<f16> = (0..rows * cols)
        .map(|i| f16::from_f32(((i * 37 % 1001) as f32 - 500.0) / 700.0))
        .collect();
    let x: Vec<f32> = (0..batch * cols)
        .map(|j| ((j * 13 % 97) as f32 - 48.0) / 50.0)
        .collect();
    let pool = ThreadPool::new(2);
    for isa in Isa::supported_for_tests() {
        let mut out = vec![f32::NAN; batch * rows];
        matmul_f16_with_isa(isa, &w, rows, cols, &x, batch, &mut out, &pool).unwrap();
        check(rows, cols, batch, &w, &x, &out, isa);
    }
}

#[test]
fn head_shaped_matvec() {
    // 2B-4T head width (2560 columns) over a slice of vocab rows, plus a ragged row count.
    let (rows, cols) = (1027, 2560);
    let w: Vec<f16> = (0..rows * cols)
        .map(|i| f16::from_f32(((i * 37 % 1001) as f32 - 500.0) / 700.0))
        .collect();
    let x: Vec<f32> = (0..cols)
        .map(|j| ((j * 13 % 97) as f32 - 48.0) / 50.0)
        .collect();
    let pool = ThreadPool::new(2);
    for isa in Isa::supported_for_tests() {
        let mut out = vec![0f32; rows];
        matmul_f16_with_isa(isa, &w, rows, cols, &x, 1, &mut out, &pool).unwrap();
        check(rows, cols, 1, &w, &x, &out, isa);
    }
    let mut out = vec![0f32; rows];
    assert!(matvec_f16(&w, rows, cols, &x[..cols - 1], &mut out, &pool).is_err());
}

/// Receipts report what ran: a batched product on a SIMD tier records the tiled kernel's id.
#[test]
fn batched_product_records_the_tiled_kernel() {
    for (isa, name) in [
        (Isa::Avx2, "f16_avx2_f16c_tiled_matmul"),
        (Isa::Avx512, "f16_avx512_tiled_matmul"),
    ] {
        if !isa.is_supported() {
            continue;
        }
        let (rows, cols, batch) = (24, 64, 40); // past every tier's tiled threshold
        let w = vec![f16::from_f32(0.5); rows * cols];
        let x = vec![1.0f32; batch * cols];
        let mut out = vec![0.0f32; batch * rows];
        matmul_f16_with_isa(
            isa,
            &w,
            rows,
            cols,
            &x,
            batch,
            &mut out,
            &ThreadPool::new(1),
        )
        .unwrap();
        assert!(out.iter().all(|&v| v == 32.0));
        let used = bitnet_kernels::kernels_used();
        assert!(used.contains(&name), "{used:?}");
    }
}

/// The summation order `bitnet_kernels::order` documents for the F16 products, written out from
/// its definition: 32 lanes, lane `l` taking columns `j ≡ l (mod 32)` of the body with one fused
/// multiply-add each, the halving-tree fold, then the tail columns with one fused multiply-add
/// each.
fn documented_order(w: &[f16], x: &[f32]) -> f32 {
    let body = x.len() / 32 * 32;
    let mut lanes = [0f32; 32];
    for j in 0..body {
        lanes[j % 32] = w[j].to_f32().mul_add(x[j], lanes[j % 32]);
    }
    let mut width = 16;
    while width > 0 {
        for l in 0..width {
            lanes[l] += lanes[l + width];
        }
        width /= 2;
    }
    (body..x.len()).fold(lanes[0], |sum, j| w[j].to_f32().mul_add(x[j], sum))
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every ISA, one token, a few tokens or a tiled batch (≥ 4 tokens on AVX2, ≥ 32 on
    /// AVX-512), any thread count: each output has exactly the bits of the documented order, so a token's logits do
    /// not depend on the ISA nor on the sequences batched with it.
    #[test]
    fn every_isa_and_batch_size_gives_the_documented_bits(
        (rows, cols, batch, w, x) in (1usize..=29, 1usize..=300, 1usize..=70).prop_flat_map(|(rows, cols, batch)| (
            Just(rows), Just(cols), Just(batch),
            prop::collection::vec((-4.0f32..4.0).prop_map(f16::from_f32), rows * cols),
            prop::collection::vec(-3.0f32..3.0, batch * cols),
        ))
    ) {
        let mut expected = vec![0f32; batch * rows];
        for b in 0..batch {
            for r in 0..rows {
                expected[b * rows + r] =
                    documented_order(&w[r * cols..(r + 1) * cols], &x[b * cols..(b + 1) * cols]);
            }
        }
        for threads in [1, 2] {
            let pool = ThreadPool::new(threads);
            for isa in Isa::supported_for_tests() {
                let mut out = vec![f32::NAN; batch * rows];
                matmul_f16_with_isa(isa, &w, rows, cols, &x, batch, &mut out, &pool).unwrap();
                prop_assert_eq!(bits(&out), bits(&expected), "isa {} threads {}", isa, threads);
                // And token by token (the one-token row dots) against the batched rows.
                for b in [0, batch / 2, batch - 1] {
                    let mut one = vec![f32::NAN; rows];
                    matmul_f16_with_isa(isa, &w, rows, cols, &x[b * cols..(b + 1) * cols], 1, &mut one, &pool).unwrap();
                    prop_assert_eq!(bits(&one), bits(&out[b * rows..(b + 1) * rows]), "isa {} token {}", isa, b);
                }
            }
        }
    }
}

/// Real shapes (SmolLM2's 576 and 1536 columns, the 2B-4T head's 2560, plus a tail of 17):
/// every ISA and both the row dots and the tiled kernel give the documented bits.
#[test]
fn model_shapes_give_the_documented_bits_on_every_isa() {
    let pool = ThreadPool::new(2);
    for (rows, cols, batch) in [(37, 576, 45), (13, 1536, 9), (25, 2560, 3), (30, 593, 33)] {
        let w: Vec<f16> = (0..rows * cols)
            .map(|i| f16::from_f32(((i * 7919 % 1001) as f32 - 500.0) / 333.0))
            .collect();
        let x: Vec<f32> = (0..batch * cols)
            .map(|j| ((j * 104_729 % 977) as f32 - 488.0) / 97.0)
            .collect();
        let mut expected = vec![0f32; batch * rows];
        for b in 0..batch {
            for r in 0..rows {
                expected[b * rows + r] =
                    documented_order(&w[r * cols..(r + 1) * cols], &x[b * cols..(b + 1) * cols]);
            }
        }
        for isa in Isa::supported_for_tests() {
            let mut out = vec![f32::NAN; batch * rows];
            matmul_f16_with_isa(isa, &w, rows, cols, &x, batch, &mut out, &pool).unwrap();
            assert_eq!(
                bits(&out),
                bits(&expected),
                "isa {isa} shape {rows}x{cols} batch {batch}"
            );
        }
    }
}
