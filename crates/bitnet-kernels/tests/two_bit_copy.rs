//! A trit5 matrix that keeps the 2-bit copy reads it for every product of 2 or more tokens and
//! the trit5 bytes for one token: which kernels ran, in a process of its own (the record of
//! kernels that ran is per process). The products' values are checked against the definition
//! in `ternary.rs`, with and without the copy.

use bitnet_kernels::ternary::{Scales, TernaryLayout, TernaryMatrix};
use bitnet_kernels::{kernels_used, Isa, ThreadPool};

#[test]
fn batched_products_read_the_two_bit_copy_and_one_token_the_trit5_bytes() {
    let direct = Isa::Avx512.is_supported() && cpu_has_vbmi();
    if !direct {
        // Elsewhere trit5 products all unpack to the 2-bit layout: the copy changes nothing
        // that a kernel record could show (its values are checked in `ternary.rs`).
        eprintln!("no AVX-512 VBMI on this CPU: checked only that the copy is made");
    }
    let (rows, cols) = (8, 640);
    let values: Vec<i8> = (0..rows * cols).map(|i| (i % 3) as i8 - 1).collect();
    let mut matrix = TernaryMatrix::from_values_with_layout(
        rows,
        cols,
        &values,
        Scales::PerTensor(1.0),
        TernaryLayout::Trit5,
    )
    .unwrap();
    matrix.keep_two_bit_copy();
    assert_eq!(matrix.two_bit_copy_len(), rows * cols / 4);
    if !direct {
        return;
    }
    let pool = ThreadPool::new(2);
    let x = vec![3i8; 8 * cols];
    let mut out = vec![0i32; 8 * rows];
    matrix
        .matmul_with_isa(Isa::Avx512, &x, 8, &mut out, &pool)
        .unwrap();
    let used = kernels_used();
    assert!(used.contains(&"i2s_avx512_vnni_matmul"), "{used:?}");
    assert!(!used.contains(&"i2s_trit5_avx512_vbmi_matmul"), "{used:?}");
    matrix
        .matmul_with_isa(Isa::Avx512, &x[..cols], 1, &mut out[..rows], &pool)
        .unwrap();
    assert!(kernels_used().contains(&"i2s_trit5_avx512_vbmi_matvec"));
}

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
