//! Property tests: quantize → dequantize stays within each format's error bound, ternary formats
//! are lossless on ternary input, ternary decode/encode round-trips, and every format writes
//! exactly `tensor_bytes` bytes.

use bitnet_quant::{
    decode_ternary, dequantize, encode_ternary, quantize, tensor_bytes, GgmlType, TernaryScales,
    TernaryTensor, I2S_TRAILER_BYTES,
};
use proptest::prelude::*;

const QUANTIZABLE: [GgmlType; 15] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q8K,
    GgmlType::Q6K,
    GgmlType::Q4K,
    GgmlType::TQ1_0,
    GgmlType::TQ2_0,
    GgmlType::I2S,
    GgmlType::BitNet32F16,
];

/// 256 values with magnitudes up to `scale` (in 0.5..100: every f16 scale stays normal).
fn block_256() -> impl Strategy<Value = Vec<f32>> {
    (0.5f32..100.0, prop::collection::vec(-1.0f32..1.0, 256))
        .prop_map(|(scale, v)| v.into_iter().map(|x| x * scale).collect())
}

fn round_trip(ty: GgmlType, x: &[f32]) -> Vec<f32> {
    let bytes = quantize(ty, x).unwrap();
    assert_eq!(bytes.len(), tensor_bytes(ty, x.len()).unwrap());
    let mut y = vec![0f32; x.len()];
    dequantize(ty, &bytes, x.len(), &mut y).unwrap();
    y
}

fn absmax(x: &[f32]) -> f32 {
    x.iter().fold(0f32, |m, v| m.max(v.abs()))
}

fn max_err(x: &[f32], y: &[f32]) -> f32 {
    x.iter().zip(y).fold(0f32, |m, (a, b)| m.max((a - b).abs()))
}

fn rms_err(x: &[f32], y: &[f32]) -> f32 {
    (x.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum::<f32>() / x.len() as f32).sqrt()
}

/// Per block of `len`: the largest error allowed as a function of the block's values.
fn check_blocks(ty: GgmlType, x: &[f32], len: usize, bound: impl Fn(&[f32]) -> f32) {
    let y = round_trip(ty, x);
    for (xb, yb) in x.chunks(len).zip(y.chunks(len)) {
        let err = max_err(xb, yb);
        let allowed = bound(xb);
        assert!(
            err <= allowed,
            "{}: error {err} > bound {allowed}",
            ty.name()
        );
    }
}

const F16_REL: f32 = 1.0 / 2048.0; // 2^-11, f16 rounding

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn floats_round_within_their_precision(x in block_256()) {
        // F32 exact; F16 relative 2^-11; BF16 relative 2^-8 (inputs are normal in both).
        prop_assert_eq!(round_trip(GgmlType::F32, &x), x.clone());
        for (ty, rel) in [(GgmlType::F16, F16_REL), (GgmlType::BF16, 1.0 / 256.0)] {
            let y = round_trip(ty, &x);
            for (a, b) in x.iter().zip(&y) {
                prop_assert!((a - b).abs() <= a.abs() * rel + 6e-8, "{}: {} -> {}", ty.name(), a, b);
            }
        }
    }

    #[test]
    fn legacy_blocks_within_bounds(x in block_256()) {
        // Symmetric: half a step, except the clamp of the opposite extreme (one full step |d|),
        // plus the f16 rounding of d times the largest code.
        check_blocks(GgmlType::Q8_0, &x, 32, |b| absmax(b) / 127.0 * (0.5 + 127.0 * F16_REL) * 1.0001);
        check_blocks(GgmlType::Q4_0, &x, 32, |b| absmax(b) / 8.0 * (1.0 + 8.0 * F16_REL) * 1.0001);
        check_blocks(GgmlType::Q5_0, &x, 32, |b| absmax(b) / 16.0 * (1.0 + 16.0 * F16_REL) * 1.0001);
        // Affine: half a step plus f16 rounding of d (times 15 / 31) and of the minimum.
        let affine = |levels: f32| move |b: &[f32]| {
            let lo = b.iter().fold(f32::INFINITY, |m, &v| m.min(v));
            let hi = b.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let d = (hi - lo) / levels;
            (0.5 * d + (levels * d + lo.abs()) * F16_REL) * 1.0001
        };
        check_blocks(GgmlType::Q4_1, &x, 32, affine(15.0));
        check_blocks(GgmlType::Q5_1, &x, 32, affine(31.0));
    }

    #[test]
    fn k_blocks_within_bounds(x in block_256()) {
        // Q8_K: f32 scale, round to nearest: half a step.
        check_blocks(GgmlType::Q8K, &x, 256, |b| absmax(b) / 127.0 * 0.5 * 1.0001);
        // Q6_K: 16 sub-scales (8-bit) under an f16 scale; the sign clamp can cost one step.
        check_blocks(GgmlType::Q6K, &x, 256, |b| absmax(b) / 32.0);
        // Q4_K: asymmetric 4-bit with 6-bit scales and mins.
        check_blocks(GgmlType::Q4K, &x, 256, |b| absmax(b) / 6.0);
        let y6 = round_trip(GgmlType::Q6K, &x);
        prop_assert!(rms_err(&x, &y6) <= absmax(&x) / 80.0);
        let y4 = round_trip(GgmlType::Q4K, &x);
        prop_assert!(rms_err(&x, &y4) <= absmax(&x) / 20.0);
    }

    #[test]
    fn ternary_formats_within_bounds_on_any_input(x in block_256()) {
        // round(x/d)·f16(d): half a step d = max|x|, plus f16 rounding of d.
        for ty in [GgmlType::TQ1_0, GgmlType::TQ2_0] {
            check_blocks(ty, &x, 256, |b| absmax(b) * (0.5 + F16_REL) * 1.0001);
        }
        check_blocks(GgmlType::BitNet32F16, &x, 32, |b| absmax(b) * (0.5 + F16_REL) * 1.0001);
        // I2_S keeps only the sign: error at most the scale max|x| (whole tensor).
        let y = round_trip(GgmlType::I2S, &x);
        prop_assert!(max_err(&x, &y) <= absmax(&x));
    }

    #[test]
    fn ternary_formats_lossless_on_ternary_input(
        levels in prop::collection::vec(-1i8..=1, 512),
        s in 1e-3f32..10.0,
    ) {
        // Block formats store f16 scales: use an f16 value so t·s survives exactly.
        let s16 = half::f16::from_f32(s).to_f32();
        for (ty, scale) in [
            (GgmlType::TQ1_0, s16),
            (GgmlType::TQ2_0, s16),
            (GgmlType::BitNet32F16, s16),
            (GgmlType::I2S, s),
        ] {
            let x: Vec<f32> = levels.iter().map(|&t| f32::from(t) * scale).collect();
            let y = round_trip(ty, &x);
            for (a, b) in x.iter().zip(&y) {
                // Blocks that are all zero decode to +0; compare values, not the sign of zero.
                prop_assert!(a == b, "{}: {} -> {}", ty.name(), a, b);
            }
        }
    }

    #[test]
    fn ternary_encode_decode_round_trip(
        rows in 1usize..4,
        blocks_per_row in 1usize..3,
        seed_levels in prop::collection::vec(-1i8..=1, 4 * 2 * 256),
        seed_scales in prop::collection::vec(1e-4f32..50.0, 4 * 2 * 8),
    ) {
        let cols = 256 * blocks_per_row;
        let n = rows * cols;
        let values = seed_levels[..n].to_vec();
        let f16s = |len: usize| -> Vec<f32> {
            seed_scales[..len].iter().map(|&s| half::f16::from_f32(s).to_f32()).collect()
        };
        let cases = [
            (GgmlType::I2S, TernaryScales::PerTensor(seed_scales[0])),
            (GgmlType::TQ1_0, TernaryScales::PerBlock { block_len: 256, scales: f16s(n / 256) }),
            (GgmlType::TQ2_0, TernaryScales::PerBlock { block_len: 256, scales: f16s(n / 256) }),
            (GgmlType::BitNet32F16, TernaryScales::PerBlock { block_len: 32, scales: f16s(n / 32) }),
        ];
        for (ty, scales) in cases {
            let t = TernaryTensor::new(rows, cols, values.clone(), scales).unwrap();
            let bytes = encode_ternary(&t, ty).unwrap();
            prop_assert_eq!(bytes.len(), tensor_bytes(ty, n).unwrap());
            let back = decode_ternary(ty, &bytes, &[cols, rows]).unwrap();
            prop_assert_eq!(&back, &t);
            prop_assert_eq!(encode_ternary(&back, ty).unwrap(), bytes);
        }
    }

    #[test]
    fn byte_size_formula_equals_bytes_written(blocks in 1usize..6) {
        for ty in QUANTIZABLE {
            let n = 256 * blocks;
            let x: Vec<f32> = (0..n).map(|i| (i % 7) as f32 - 3.0).collect();
            let bytes = quantize(ty, &x).unwrap();
            prop_assert_eq!(bytes.len(), tensor_bytes(ty, n).unwrap(), "{}", ty.name());
            let (block, block_bytes) = ty.block_geometry().unwrap_or((128, 32));
            let expected = if ty == GgmlType::I2S { n / 4 + I2S_TRAILER_BYTES } else { n / block * block_bytes };
            prop_assert_eq!(bytes.len(), expected, "{}", ty.name());
        }
    }
}

#[test]
fn non_finite_input_never_panics() {
    let mut x: Vec<f32> = (0..512).map(|i| (i as f32 - 256.0) * 1e3).collect();
    x[3] = f32::NAN;
    x[40] = f32::INFINITY;
    x[300] = f32::NEG_INFINITY;
    x[301] = f32::MAX;
    x[302] = f32::MIN_POSITIVE / 4.0;
    for ty in QUANTIZABLE {
        let bytes = quantize(ty, &x).unwrap();
        assert_eq!(bytes.len(), tensor_bytes(ty, x.len()).unwrap());
        let mut y = vec![0f32; x.len()];
        // I2_S / BitNet32-F16 output is always ternary codes; every decoder must accept it.
        dequantize(ty, &bytes, x.len(), &mut y).unwrap();
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let mut out = vec![0f32; 256];
    // wrong byte count, wrong output length, partial block, unsupported type, TL layouts
    assert!(dequantize(GgmlType::Q4K, &[0u8; 143], 256, &mut out).is_err());
    assert!(dequantize(GgmlType::Q4K, &[0u8; 144], 255, &mut out).is_err());
    assert!(quantize(GgmlType::Q8_0, &[0.0; 33]).is_err());
    assert!(quantize(GgmlType::IQ2S, &[0.0; 256]).is_err());
    assert!(dequantize(GgmlType::I2S, &[0u8; 64 + 32], 256, &mut out).is_ok());
    assert!(dequantize(GgmlType::I2S, &[0u8; 64 + 31], 256, &mut out).is_err());
    for ty in [GgmlType::TL1, GgmlType::TL2] {
        let err = decode_ternary(ty, &[0u8; 64], &[256, 1]).unwrap_err();
        assert!(err.to_string().contains("tile sizes"), "{err}");
        assert!(dequantize(ty, &[0u8; 96], 256, &mut out).is_err());
    }
    // code 3 is not a ternary level in I2_S (element 0 sits in bits 7..6 of byte 0)
    let mut i2s = vec![0x55u8; 64 + 32];
    i2s[0] = 0xC0 | 0x15;
    let err = dequantize(GgmlType::I2S, &i2s, 256, &mut out).unwrap_err();
    assert_eq!(
        err,
        bitnet_quant::QuantError::NotTernary {
            ty: GgmlType::I2S,
            index: 0,
            code: 3
        }
    );
    // TQ2_0 code 3 decodes like ggml (+2·d) but is not ternary
    let mut tq2 = vec![0x55u8; 66];
    tq2[64..66].copy_from_slice(&half::f16::from_f32(1.0).to_bits().to_le_bytes());
    tq2[0] = 0x57;
    dequantize(GgmlType::TQ2_0, &tq2, 256, &mut out).unwrap();
    assert_eq!(out[0], 2.0);
    assert!(decode_ternary(GgmlType::TQ2_0, &tq2, &[256]).is_err());
    // shapes: TQ rows must hold whole blocks; tensor/scales must agree
    assert!(decode_ternary(GgmlType::TQ2_0, &[0u8; 132], &[128, 4]).is_err());
    assert!(TernaryTensor::new(2, 256, vec![0; 511], TernaryScales::PerTensor(1.0)).is_err());
    assert!(TernaryTensor::new(1, 256, vec![2; 256], TernaryScales::PerTensor(1.0)).is_err());
    let t = TernaryTensor::new(1, 256, vec![0; 256], TernaryScales::PerTensor(1.0)).unwrap();
    assert!(encode_ternary(&t, GgmlType::TQ2_0).is_err());
}
