//! The activation quantizer on every ISA against the formula of FORMATS.md §2 written out here
//! directly, plus hand-worked cases (ties to even, the 1e-5 floor, the clamp).

use bitnet_kernels::quantize::quantize_activations_with_isa;
use bitnet_kernels::{quantize_activations, quantize_activations_batch, Isa};
use proptest::prelude::*;

/// `m = max(max|x| in f64, 1e-5); a = (127/m) as f32; q = clamp(rint((x·a) as f32), -128, 127)`.
fn formula(x: &[f32]) -> (Vec<i8>, f32) {
    let m = x
        .iter()
        .map(|v| f64::from(v.abs()))
        .fold(0.0f64, f64::max)
        .max(1e-5);
    let a = (127.0 / m) as f32;
    let q = x
        .iter()
        .map(|&v| {
            let p = v * a; // f32 product
            let r = p.round_ties_even();
            r.clamp(-128.0, 127.0) as i8
        })
        .collect();
    (q, a)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_isa_matches_the_formula(
        x in prop::collection::vec(
            prop_oneof![
                -10.0f32..10.0,
                -1e-6f32..1e-6,
                (-200i32..200).prop_map(|k| k as f32 * 0.5), // exact half steps: ties
                -3.0e4f32..3.0e4,
            ],
            1..600,
        )
    ) {
        let (expected_q, expected_a) = formula(&x);
        for isa in Isa::supported_for_tests() {
            let mut q = vec![0i8; x.len()];
            let a = quantize_activations_with_isa(isa, &x, &mut q).unwrap();
            prop_assert_eq!(a.to_bits(), expected_a.to_bits(), "isa {}", isa);
            prop_assert_eq!(&q, &expected_q, "isa {}", isa);
        }
    }
}

#[test]
fn hand_worked_cases() {
    // max |x| = 127 → a = 1, so q is x rounded half to even.
    let x = [127.0f32, 0.5, 1.5, 2.5, -0.5, -2.5, -3.5, 126.49];
    for isa in Isa::supported_for_tests() {
        let mut q = [0i8; 8];
        let a = quantize_activations_with_isa(isa, &x, &mut q).unwrap();
        assert_eq!(a, 1.0);
        assert_eq!(q, [127, 0, 2, 2, 0, -2, -4, 126], "isa {isa}");
    }
    // All zeros: m is floored at 1e-5, a = 127e5, every code 0.
    let mut q = [1i8; 40];
    let a = quantize_activations(&[0.0; 40], &mut q).unwrap();
    assert_eq!(a, (127.0f64 / 1e-5) as f32);
    assert_eq!(q, [0; 40]);
    // −max maps to −127 (never −128 from the scale alone).
    let mut q = [0i8; 3];
    quantize_activations(&[-4.0, 4.0, 2.0], &mut q).unwrap();
    assert_eq!(q, [-127, 127, 64]);
}

#[test]
fn batch_quantizes_each_token_with_its_own_scale() {
    let x = [1.0f32, -2.0, 0.5, 8.0, 4.0, -1.0];
    let mut q = [0i8; 6];
    let mut scales = [0f32; 2];
    quantize_activations_batch(&x, 3, &mut q, &mut scales).unwrap();
    assert_eq!(scales, [63.5, 15.875]);
    assert_eq!(q, [64, -127, 32, 127, 64, -16]);
    assert!(quantize_activations_batch(&x, 4, &mut q, &mut scales).is_err());
    assert!(quantize_activations(&x, &mut [0i8; 5]).is_err());
}
