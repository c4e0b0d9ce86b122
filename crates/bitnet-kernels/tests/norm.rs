//! RMSNorm against bitnet.cpp's trace (tiny-b158, layer 0: `inp_embd` → `norm-0` → `attn_norm-0`,
//! copied into tests/data/rmsnorm_trace_ref.bin by tools/gen_kernel_bitlinear_ref.py) bit for bit,
//! and every ISA against the scalar path on random data.

use bitnet_kernels::norm::rms_norm_with_isa;
use bitnet_kernels::Isa;
use proptest::prelude::*;

#[test]
fn reproduces_bitnet_cpp_trace() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/rmsnorm_trace_ref.bin"
    );
    let bytes = std::fs::read(path).unwrap_or_else(|e| {
        panic!("missing fixture {path} ({e}); regenerate with python3 tools/gen_kernel_bitlinear_ref.py")
    });
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap()) as usize;
    let (tokens, n) = (u32_at(0), u32_at(4));
    let eps = f32::from_le_bytes(bytes[8..12].try_into().unwrap());
    let floats: Vec<f32> = bytes[12..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let (x, rest) = floats.split_at(tokens * n);
    let (normed, rest) = rest.split_at(tokens * n);
    let (weight, weighted) = rest.split_at(n);
    for isa in Isa::supported_for_tests() {
        for t in 0..tokens {
            let row = t * n..(t + 1) * n;
            let mut out = vec![0f32; n];
            rms_norm_with_isa(isa, &x[row.clone()], None, eps, &mut out).unwrap();
            assert_eq!(out, normed[row.clone()], "isa {isa} token {t} (norm)");
            rms_norm_with_isa(isa, &x[row.clone()], Some(weight), eps, &mut out).unwrap();
            assert_eq!(out, weighted[row], "isa {isa} token {t} (norm · weight)");
        }
    }
}

proptest! {
    #[test]
    fn every_isa_matches_scalar(x in prop::collection::vec(-100.0f32..100.0, 1..3000)) {
        let mut reference = vec![0f32; x.len()];
        rms_norm_with_isa(Isa::Scalar, &x, None, 1e-5, &mut reference).unwrap();
        for isa in Isa::supported_for_tests() {
            let mut out = vec![0f32; x.len()];
            rms_norm_with_isa(isa, &x, None, 1e-5, &mut out).unwrap();
            prop_assert_eq!(&out, &reference, "isa {}", isa);
        }
    }
}
