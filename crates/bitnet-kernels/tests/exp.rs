//! The engine's `exp` against `f64::exp` (within 2 ulp wherever the result is a normal f32), its
//! special values, and the softmax and SiLU kernels of every ISA against the scalar reference,
//! bit for bit.

use bitnet_kernels::exp::{exp, silu, silu_times_with_isa, softmax_in_place_with_isa};
use bitnet_kernels::Isa;
use proptest::prelude::*;

/// Distance in units in the last place between `got` and the f32 nearest to `want`.
fn ulps(got: f32, want: f64) -> u32 {
    let want = want as f32;
    (got.to_bits() as i64 - want.to_bits() as i64).unsigned_abs() as u32
}

#[test]
fn exp_is_within_two_ulp_of_f64_exp() {
    let (lo, hi) = (-87.33f32, 88.72f32);
    let steps = 2_000_000;
    let mut worst = (0u32, 0f32);
    for i in 0..=steps {
        let x = lo + (hi - lo) * (i as f32 / steps as f32);
        let u = ulps(exp(x), f64::from(x).exp());
        if u > worst.0 {
            worst = (u, x);
        }
    }
    // Every f32 in a range around 0, where softmax arguments and SiLU inputs mostly lie.
    let mut x = -20.0f32;
    while x < 20.0 {
        let u = ulps(exp(x), f64::from(x).exp());
        if u > worst.0 {
            worst = (u, x);
        }
        x = f32::from_bits(if x < 0.0 {
            x.to_bits() - 97
        } else {
            x.to_bits() + 97
        });
        if x == 0.0 {
            x = f32::MIN_POSITIVE;
        }
    }
    assert!(worst.0 <= 2, "exp({}) is {} ulp off", worst.1, worst.0);
}

#[test]
fn exp_special_values() {
    assert_eq!(exp(0.0), 1.0);
    assert_eq!(exp(-0.0), 1.0);
    assert_eq!(exp(f32::NEG_INFINITY), 0.0);
    assert_eq!(
        exp(-87.4),
        0.0,
        "results below the normal range are flushed to zero"
    );
    assert_eq!(exp(-1000.0), 0.0);
    assert_eq!(exp(f32::INFINITY), f32::INFINITY);
    assert_eq!(exp(88.73), f32::INFINITY);
    assert_eq!(exp(1e30), f32::INFINITY);
    assert!(exp(88.72).is_finite() && exp(88.72) > 3.3e38);
    assert!(exp(f32::NAN).is_nan());
    // Near the bottom of the range the result is tiny but not zero.
    let tiny = exp(-87.3);
    assert!(
        tiny > 0.0 && ulps(tiny, f64::from(-87.3f32).exp()) <= 2,
        "{tiny}"
    );
    assert_eq!(exp(1.0), std::f32::consts::E);
    assert_eq!(silu(0.0), 0.0);
    assert_eq!(silu(-200.0), -0.0);
    assert_eq!(silu(200.0), 200.0);
}

/// Values softmax and SiLU meet, with the edges: −inf (masked scores), zeros of both signs,
/// magnitudes past both ends of `exp`'s range.
fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        8 => -30.0f32..30.0,
        2 => -200.0f32..200.0,
        1 => prop::sample::select(vec![f32::NEG_INFINITY, 0.0, -0.0, 88.9, -88.0, 1e-30]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn softmax_every_isa_matches_scalar(
        x in prop::collection::vec(value(), 1..300),
        round in any::<bool>(),
    ) {
        let mut reference = x.clone();
        softmax_in_place_with_isa(Isa::Scalar, &mut reference, round);
        let sum: f64 = reference.iter().map(|&v| f64::from(v)).sum();
        prop_assert!((sum - 1.0).abs() < if round { 1e-2 } else { 1e-5 }, "sum {}", sum);
        for isa in Isa::supported_for_tests() {
            let mut out = x.clone();
            softmax_in_place_with_isa(isa, &mut out, round);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&out), bits(&reference), "isa {}", isa);
        }
    }

    #[test]
    fn silu_every_isa_matches_scalar(
        pairs in prop::collection::vec((value(), -4.0f32..4.0), 0..300),
        gated in any::<bool>(),
    ) {
        let (x, up): (Vec<f32>, Vec<f32>) = pairs.into_iter().unzip();
        let up = gated.then_some(up.as_slice());
        let mut reference = x.clone();
        silu_times_with_isa(Isa::Scalar, &mut reference, up);
        for (i, (&r, &v)) in reference.iter().zip(&x).enumerate() {
            let want = f64::from(v) / (1.0 + (-f64::from(v)).exp()) * up.map_or(1.0, |u| f64::from(u[i]));
            // silu(−inf) is −inf / inf: NaN, in f64 too.
            let close = if want.is_nan() {
                r.is_nan()
            } else {
                (f64::from(r) - want).abs() <= 1e-6 * want.abs().max(1e-30)
            };
            prop_assert!(close, "silu({}) = {}", v, r);
        }
        for isa in Isa::supported_for_tests() {
            let mut out = x.clone();
            silu_times_with_isa(isa, &mut out, up);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&out), bits(&reference), "isa {}", isa);
        }
    }
}

#[test]
fn softmax_of_a_masked_row_and_a_single_value() {
    for isa in Isa::supported_for_tests() {
        let mut one = [3.5f32];
        softmax_in_place_with_isa(isa, &mut one, false);
        assert_eq!(one, [1.0], "isa {isa}");
        let mut masked = [0.5f32, f32::NEG_INFINITY, 0.5, f32::NEG_INFINITY];
        softmax_in_place_with_isa(isa, &mut masked, true);
        assert_eq!(masked, [0.5, 0.0, 0.5, 0.0], "isa {isa}");
    }
}
