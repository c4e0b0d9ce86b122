//! x86-64 ternary kernels (AVX2, AVX-512 VNNI, and AVX-512 VBMI for the trit5 layout), each
//! behind a safe wrapper that checks the CPU features and the slice lengths before entering the
//! `target_feature` code.

pub(super) mod avx2;
pub(super) mod avx512;
pub(super) mod avx512_vbmi;

use std::arch::x86_64::*;

/// Sum of the 8 i32 lanes.
#[target_feature(enable = "avx")]
fn hsum_epi32_256(v: __m256i) -> i32 {
    let mut lanes = [0i32; 8];
    // SAFETY: `lanes` holds 8 i32 (32 bytes); the store is unaligned.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), v) };
    lanes.iter().sum()
}
