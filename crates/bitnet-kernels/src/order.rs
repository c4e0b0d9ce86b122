//! The one summation order of every float kernel, so that each output has the same bits whatever
//! instruction set computes it and whatever batch it is computed in (the one-token row dots and
//! the tiled prefill matmul agree).
//!
//! A sum of `n` terms is accumulated in `N` lanes (a power of two; each kernel documents its
//! `N`): lane `l` starts at `+0.0` and takes the terms `i ≡ l (mod N)` of the body (the first
//! `n − n mod N` terms) in increasing `i`, each step one fused multiply-add (`f32::mul_add` in
//! the scalar code) or one addition, as the kernel says. The lanes are then folded by the halving
//! tree — `lane[l] += lane[l + w]` for `l < w`, with `w = N/2, N/4, …, 1` — and the tail terms
//! (`i ≥ n − n mod N`) are then accumulated onto the folded sum, in order, with the same step.
//!
//! The tree is the cheap one for vector registers: its first steps add whole registers (`N/2`
//! lanes apart), then register halves. [`fold`] is the scalar definition; `x86` folds registers
//! in exactly the same order.

use std::ops::Add;

/// Folds `N` lanes (a power of two) by the halving tree and returns the sum.
#[inline(always)]
pub fn fold<T: Copy + Add<Output = T>, const N: usize>(mut lanes: [T; N]) -> T {
    debug_assert!(N.is_power_of_two());
    let mut width = N / 2;
    while width > 0 {
        for l in 0..width {
            lanes[l] = lanes[l] + lanes[l + width];
        }
        width /= 2;
    }
    lanes[0]
}

/// Position of the `n`-bit index `i` in bit-reversed order: folding `N` leaves by the halving
/// tree is folding them in adjacent pairs when they are visited in this order, so leaves
/// produced one after another (the tiled matmul computes one lane of a whole tile at a time) can
/// be merged on a small stack as they come.
#[cfg(target_arch = "x86_64")]
pub(crate) fn bit_reverse(i: usize, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        i.reverse_bits() >> (usize::BITS - bits)
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    //! Register folds in the halving-tree order of [`super::fold`].

    use std::arch::x86_64::*;

    /// Folds the 8 lanes of `v`.
    #[target_feature(enable = "avx")]
    pub(crate) fn fold_256(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps::<1>(v);
        let four = _mm_add_ps(lo, hi); // l + (l + 4)
        let two = _mm_add_ps(four, _mm_movehl_ps(four, four)); // l + (l + 2)
        let one = _mm_add_ss(two, _mm_shuffle_ps::<0b01>(two, two)); // 0 + 1
        _mm_cvtss_f32(one)
    }

    /// Folds 16 lanes held as lanes 0–7 in `lo` and 8–15 in `hi`.
    #[target_feature(enable = "avx")]
    pub(crate) fn fold_256x2(lo: __m256, hi: __m256) -> f32 {
        fold_256(_mm256_add_ps(lo, hi))
    }

    /// Folds 32 lanes held as lanes 0–7, 8–15, 16–23 and 24–31 in `v[0..4]`.
    #[target_feature(enable = "avx")]
    pub(crate) fn fold_256x4(v: [__m256; 4]) -> f32 {
        fold_256x2(_mm256_add_ps(v[0], v[2]), _mm256_add_ps(v[1], v[3]))
    }

    /// Folds the 16 lanes of `v`.
    #[target_feature(enable = "avx512f")]
    pub(crate) fn fold_512(v: __m512) -> f32 {
        let lo = _mm512_castps512_ps256(v);
        let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
        fold_256x2(lo, hi)
    }

    /// Folds each of 16 registers of 16 lanes: lane `j` of the result is `fold_512(v[j])`, the
    /// same additions, done on whole registers: each halving step adds the two halves of two
    /// registers at once (`lanes[l] + lanes[l + w]` of each), so the 16 folds take 15 additions
    /// and 30 shuffles where one at a time they take 64 of each.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(crate) fn fold_512x16(v: &[__m512; 16]) -> __m512 {
        // w = 8: register i holds sums 2i (lanes 0–7) and 2i + 1 (lanes 8–15).
        let eights: [__m512; 8] = std::array::from_fn(|i| {
            let (a, b) = (v[2 * i], v[2 * i + 1]);
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0x44>(a, b), // a.q0 a.q1 b.q0 b.q1
                _mm512_shuffle_f32x4::<0xEE>(a, b), // a.q2 a.q3 b.q2 b.q3
            )
        });
        // w = 4: register i holds sums 4i..4i + 4, one per 128-bit quarter.
        let fours: [__m512; 4] = std::array::from_fn(|i| {
            let (c, d) = (eights[2 * i], eights[2 * i + 1]);
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0x88>(c, d), // lanes l < 4 of each sum
                _mm512_shuffle_f32x4::<0xDD>(c, d), // lanes l + 4
            )
        });
        // w = 2: quarter q of register i holds sums 8i + q (lanes 0, 1) and 8i + 4 + q (2, 3).
        let twos: [__m512; 2] = std::array::from_fn(|i| {
            let (e, f) = (fours[2 * i], fours[2 * i + 1]);
            _mm512_add_ps(
                _mm512_shuffle_ps::<0x44>(e, f),
                _mm512_shuffle_ps::<0xEE>(e, f),
            )
        });
        // w = 1: lane 4q + r holds sum 4r + q.
        let (g, h) = (twos[0], twos[1]);
        let ones = _mm512_add_ps(
            _mm512_shuffle_ps::<0x88>(g, h),
            _mm512_shuffle_ps::<0xDD>(g, h),
        );
        let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        _mm512_permutexvar_ps(order, ones)
    }

    /// Folds 32 lanes held as lanes 0–15 in `lo` and 16–31 in `hi`.
    #[target_feature(enable = "avx512f")]
    pub(crate) fn fold_512x2(lo: __m512, hi: __m512) -> f32 {
        fold_512(_mm512_add_ps(lo, hi))
    }

    /// Folds 8 f64 lanes held as lanes 0–3 in `lo` and 4–7 in `hi`.
    #[target_feature(enable = "avx")]
    pub(crate) fn fold_256d_x2(lo: __m256d, hi: __m256d) -> f64 {
        let four = _mm256_add_pd(lo, hi); // l + (l + 4)
        let two = _mm_add_pd(
            _mm256_castpd256_pd128(four),
            _mm256_extractf128_pd::<1>(four),
        ); // l + (l + 2)
        let one = _mm_add_sd(two, _mm_unpackhi_pd(two, two)); // 0 + 1
        _mm_cvtsd_f64(one)
    }
}
