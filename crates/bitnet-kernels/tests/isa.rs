//! ISA names, the `BITNET_ISA` override and the record of kernels that ran.

use bitnet_kernels::ternary::TernaryLayout;
use bitnet_kernels::{
    kernels_used, select_isa, Isa, KernelError, Scales, TernaryMatrix, ThreadPool,
};

#[test]
fn names_parse_and_tiers_are_ordered() {
    for isa in Isa::ALL {
        assert_eq!(Isa::from_name(isa.name()), Ok(isa));
    }
    assert_eq!(Isa::from_name(" AVX512 "), Ok(Isa::Avx512));
    assert_eq!(Isa::from_name("neon"), Ok(Isa::Neon));
    assert!(matches!(
        Isa::from_name("sve"),
        Err(KernelError::BadIsaName { .. })
    ));
    // One architecture's tiers only.
    assert!(!(Isa::Neon.is_supported() && Isa::Avx2.is_supported()));
    let supported = Isa::supported();
    assert_eq!(supported[0], Isa::Scalar);
    assert!(Isa::best_supported().is_supported());
    assert_eq!(Isa::best_supported(), *supported.last().unwrap());
}

#[test]
fn a_tier_is_supported_exactly_when_nothing_is_missing() {
    for isa in Isa::ALL {
        let missing = isa.missing_features();
        assert_eq!(isa.is_supported(), missing.is_empty(), "{isa}: {missing:?}");
    }
    assert!(Isa::Scalar.missing_features().is_empty());
    assert_eq!(Isa::supported_for_tests(), Isa::supported());
}

#[test]
fn env_override_is_validated() {
    // The only test in this binary touching the environment.
    std::env::set_var("BITNET_ISA", "scalar");
    assert_eq!(select_isa(), Ok(Isa::Scalar));
    std::env::set_var("BITNET_ISA", "sse9");
    assert!(matches!(select_isa(), Err(KernelError::BadIsaName { .. })));
    for isa in Isa::ALL {
        std::env::set_var("BITNET_ISA", isa.name());
        if isa.is_supported() {
            assert_eq!(select_isa(), Ok(isa));
        } else {
            assert_eq!(select_isa(), Err(KernelError::IsaUnsupported { isa }));
        }
    }
    std::env::remove_var("BITNET_ISA");
    assert_eq!(select_isa(), Ok(Isa::best_supported()));
}

#[test]
fn kernels_that_ran_are_recorded() {
    // The 2-bit layout's kernels (the trit5 one is checked in tests/ternary.rs).
    let m = TernaryMatrix::from_values_with_layout(
        4,
        128,
        &[1; 512],
        Scales::PerTensor(1.0),
        TernaryLayout::TwoBit,
    )
    .unwrap();
    let pool = ThreadPool::new(1);
    for isa in Isa::supported() {
        let mut out = [0i32; 4];
        m.matmul_with_isa(isa, &[1; 128], 1, &mut out, &pool)
            .unwrap();
        assert_eq!(out, [128; 4]);
    }
    let used = kernels_used();
    assert!(used.contains(&"i2s_scalar_matvec"), "{used:?}");
    if Isa::Avx512.is_supported() {
        assert!(used.contains(&"i2s_avx512_vnni_matvec"), "{used:?}");
    }
    if Isa::Avx2.is_supported() {
        assert!(used.contains(&"i2s_avx2_matvec"), "{used:?}");
    }
    if Isa::Neon.is_supported() {
        assert!(used.contains(&"i2s_neon_matvec"), "{used:?}");
    }
}
