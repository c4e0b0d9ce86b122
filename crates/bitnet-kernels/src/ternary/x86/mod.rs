//! x86-64 ternary kernels (AVX2, AVX-512 VNNI, and AVX-512 VBMI for the trit5 layout), each
//! behind a safe wrapper that checks the CPU features and the slice lengths before entering the
//! `target_feature` code.

pub(super) mod avx2;
pub(super) mod avx512;
pub(super) mod avx512_vbmi;

use std::arch::x86_64::*;

use super::ROW_TILE;

/// Sum of the 8 i32 lanes.
#[target_feature(enable = "avx")]
fn hsum_epi32_256(v: __m256i) -> i32 {
    let mut lanes = [0i32; 8];
    // SAFETY: `lanes` holds 8 i32 (32 bytes); the store is unaligned.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), v) };
    lanes.iter().sum()
}

/// The lane sums of 4 accumulators as the 4 lanes of one vector (integer sums: the grouping
/// does not change them): pairs of rows interleaved and added, then the 128-bit quarters.
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) fn sum_4_rows(rows: [__m512i; ROW_TILE]) -> __m128i {
    // Per 128-bit quarter: [r0 r1 r0 r1] and [r2 r3 r2 r3] partial sums, then [r0 r1 r2 r3].
    let r01 = _mm512_add_epi32(
        _mm512_unpacklo_epi32(rows[0], rows[1]),
        _mm512_unpackhi_epi32(rows[0], rows[1]),
    );
    let r23 = _mm512_add_epi32(
        _mm512_unpacklo_epi32(rows[2], rows[3]),
        _mm512_unpackhi_epi32(rows[2], rows[3]),
    );
    let quarters = _mm512_add_epi32(
        _mm512_unpacklo_epi64(r01, r23),
        _mm512_unpackhi_epi64(r01, r23),
    );
    let halves = _mm256_add_epi32(
        _mm512_castsi512_si256(quarters),
        _mm512_extracti64x4_epi64::<1>(quarters),
    );
    _mm_add_epi32(
        _mm256_castsi256_si128(halves),
        _mm256_extracti128_si256::<1>(halves),
    )
}
