//! AVX-512 VNNI ternary kernels: `vpdpbusd` of the unsigned codes (0/1/2) with int8 activations.

#![allow(clippy::needless_range_loop)] // SIMD lanes and tiles read best as indexed loops.

use std::arch::x86_64::*;

use super::super::{CHUNK_COLS, GROUP_COLS, ROW_TILE};
use super::sum_4_rows;
use crate::order::x86::fold_512;

/// How far ahead of the current chunk weights are prefetched.
const PREFETCH_BYTES: usize = 8192;

fn features_present() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vnni")
}

/// `out[t] = [Σ_j c[r][j] · x[t·cols + j] for r in 0..4]` for the 4 rows of a tile and
/// `out.len()` consecutive tokens (prefill: one call per tile and token block, 4 tokens per pass),
/// the tile in the 2-bit layout or, with `rows_interleaved`, in the copy's: byte `j` holds column
/// `j`'s code of row `r` at bit shift `2r`, so one 64-byte load and one mask per row give 4 rows'
/// codes of 64 columns with no shifts (row `r`'s codes come out as `4^r · c`, its sums `4^r` times
/// the code dot, and an exact arithmetic shift by `2r` ends them).
pub(in crate::ternary) fn tile_block_code_dots(
    rows_interleaved: bool,
    weights: &[u8],
    x: &[i8],
    cols: usize,
    out: &mut [[i32; ROW_TILE]],
) {
    assert!(
        features_present(),
        "AVX-512 VNNI kernel called on a CPU without it"
    );
    let tokens = out.len();
    assert!(cols.is_multiple_of(128) && weights.len() == cols && x.len() >= tokens * cols);
    assert!(!rows_interleaved || cols <= super::super::INTERLEAVED_MAX_COLS);
    let (w, x) = (weights.as_ptr(), x.as_ptr());
    // SAFETY: the features were checked above; the kernel reads `cols` bytes of `weights` and
    // `tokens·cols` bytes of `x`, and writes `tokens` entries of `out`, all checked.
    unsafe {
        if rows_interleaved {
            token_blocks::<InterleavedTile>(w, x, cols, out)
        } else {
            token_blocks::<TwoBitTile>(w, x, cols, out)
        }
    }
}

/// A tile layout's accumulators for up to 4 tokens at a time.
trait TileAccumulators {
    /// Right shifts that turn row `r`'s lane sums into its code dots.
    const ROW_SHIFTS: [i32; ROW_TILE];

    /// The 4 rows × `T` tokens accumulators of one tile.
    ///
    /// # Safety
    /// `w` points at one tile's `cols` bytes and `x` at `T·cols` activations; the CPU has the
    /// module's features.
    unsafe fn accumulators<const T: usize>(
        w: *const u8,
        x: *const i8,
        cols: usize,
    ) -> [[__m512i; T]; ROW_TILE];
}

/// The 2-bit layout (`tile_accumulators`).
struct TwoBitTile;

impl TileAccumulators for TwoBitTile {
    const ROW_SHIFTS: [i32; ROW_TILE] = [0; ROW_TILE];

    unsafe fn accumulators<const T: usize>(
        w: *const u8,
        x: *const i8,
        cols: usize,
    ) -> [[__m512i; T]; ROW_TILE] {
        // SAFETY: the caller's conditions.
        unsafe { tile_accumulators::<T>(w, x, cols) }
    }
}

/// The interleaved copy (`interleaved_accumulators`): row `r`'s sums are `4^r` times its dots.
struct InterleavedTile;

impl TileAccumulators for InterleavedTile {
    const ROW_SHIFTS: [i32; ROW_TILE] = [0, 2, 4, 6];

    unsafe fn accumulators<const T: usize>(
        w: *const u8,
        x: *const i8,
        cols: usize,
    ) -> [[__m512i; T]; ROW_TILE] {
        // SAFETY: the caller's conditions.
        unsafe { interleaved_accumulators::<T>(w, x, cols) }
    }
}

/// The code dots of one tile for `out.len()` tokens, 4 tokens per pass.
///
/// # Safety
/// `w` points at one tile's `cols` bytes and `x` at `out.len()·cols` activations; the CPU has
/// the module's features.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn token_blocks<K: TileAccumulators>(
    w: *const u8,
    x: *const i8,
    cols: usize,
    out: &mut [[i32; ROW_TILE]],
) {
    /// Token `t`'s 4 row sums, reduced together and shifted to code dots (exact), into `out[t]`.
    #[target_feature(enable = "avx512f,avx512vl")]
    fn store<K: TileAccumulators, const T: usize>(
        acc: [[__m512i; T]; ROW_TILE],
        out: &mut [[i32; ROW_TILE]],
    ) {
        let [s0, s1, s2, s3] = K::ROW_SHIFTS;
        let shifts = _mm_setr_epi32(s0, s1, s2, s3);
        for (t, out) in out.iter_mut().take(T).enumerate() {
            let sums = sum_4_rows(std::array::from_fn(|r| acc[r][t]));
            let dots = _mm_srav_epi32(sums, shifts);
            // SAFETY: `out` is 4 i32 (16 bytes); the store is unaligned.
            unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), dots) };
        }
    }
    let tokens = out.len();
    let mut t = 0;
    while t < tokens {
        // SAFETY: tokens t.. are within the `tokens·cols` activations the caller checked.
        let xt = unsafe { x.add(t * cols) };
        let out = &mut out[t..];
        // SAFETY: the tile's `cols` bytes and the `n <= tokens - t` tokens' activations from `t`
        // are within the checked lengths.
        t += unsafe {
            match tokens - t {
                4.. => store::<K, 4>(K::accumulators::<4>(w, xt, cols), out),
                3 => store::<K, 3>(K::accumulators::<3>(w, xt, cols), out),
                2 => store::<K, 2>(K::accumulators::<2>(w, xt, cols), out),
                _ => store::<K, 1>(K::accumulators::<1>(w, xt, cols), out),
            }
            (tokens - t).min(4)
        };
    }
}

/// The 4 rows × `T` tokens accumulators of one interleaved tile (row `r`'s lane sums are `4^r`
/// times its code dots).
///
/// # Safety
/// `w` points at one tile's `cols` bytes (a multiple of 64) and `x` at `T·cols` activations;
/// the CPU has the module's features.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn interleaved_accumulators<const T: usize>(
    w: *const u8,
    x: *const i8,
    cols: usize,
) -> [[__m512i; T]; ROW_TILE] {
    let masks = [0x03, 0x0c, 0x30, 0xc0].map(|m: u8| _mm512_set1_epi8(m as i8));
    // Two accumulator sets when few tokens share the tile, to break the vpdpbusd latency chain.
    let mut acc = [[_mm512_setzero_si512(); T]; ROW_TILE];
    let mut acc_odd = [[_mm512_setzero_si512(); T]; ROW_TILE];
    for line in 0..cols / 64 {
        // SAFETY (whole block): line·64 + 64 <= cols bytes of weights; activations are read at
        // t·cols + line·64 + 64 <= T·cols.
        unsafe {
            let wp = w.add(64 * line);
            // Weights stream from memory in batched decode: keep lines in flight ahead of use.
            // A prefetch past the end of the matrix is harmless (no fault).
            _mm_prefetch::<_MM_HINT_T0>(wp.wrapping_add(PREFETCH_BYTES).cast());
            let raw = _mm512_loadu_si512(wp.cast());
            let codes = masks.map(|mask| _mm512_and_si512(raw, mask));
            for t in 0..T {
                let a = _mm512_loadu_si512(x.add(t * cols + 64 * line).cast());
                for r in 0..ROW_TILE {
                    if T <= 2 && line % 2 == 1 {
                        acc_odd[r][t] = _mm512_dpbusd_epi32(acc_odd[r][t], codes[r], a);
                    } else {
                        acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], codes[r], a);
                    }
                }
            }
        }
    }
    for r in 0..ROW_TILE {
        for t in 0..T {
            acc[r][t] = _mm512_add_epi32(acc[r][t], acc_odd[r][t]);
        }
    }
    acc
}

/// The 4 rows × `T` tokens accumulators of one tile (their lane sums are the code dots).
///
/// # Safety
/// `w` points at one tile's `cols` bytes and `x` at `T·cols` activations; the CPU has the
/// module's features.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn tile_accumulators<const T: usize>(
    w: *const u8,
    x: *const i8,
    cols: usize,
) -> [[__m512i; T]; ROW_TILE] {
    let mask = _mm512_set1_epi8(3);
    // Two accumulator sets when few tokens share the tile, to break the vpdpbusd latency chain.
    let mut acc = [[_mm512_setzero_si512(); T]; ROW_TILE];
    let mut acc_odd = [[_mm512_setzero_si512(); T]; ROW_TILE];
    let full = cols / CHUNK_COLS;
    for chunk in 0..full {
        // SAFETY (whole block): chunk·256 + 256 <= cols bytes of weights; activations are read
        // at t·cols + chunk·256 + 64·s + 64 <= T·cols.
        unsafe {
            let wp = w.add(chunk * CHUNK_COLS);
            let xp = x.add(chunk * CHUNK_COLS);
            // Weights stream from DRAM in decode: keep lines in flight ahead of use. A prefetch
            // past the end of the matrix is harmless (no fault), hence the wrapping pointer.
            for line in 0..4 {
                let ahead = wp.wrapping_add(PREFETCH_BYTES + 64 * line);
                _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
            }
            let raw = [
                _mm512_loadu_si512(wp.cast()),
                _mm512_loadu_si512(wp.add(64).cast()),
                _mm512_loadu_si512(wp.add(128).cast()),
                _mm512_loadu_si512(wp.add(192).cast()),
            ];
            macro_rules! shift_step {
                ($shift:literal, $s:literal) => {{
                    let mut codes = [mask; ROW_TILE];
                    for r in 0..ROW_TILE {
                        codes[r] = _mm512_and_si512(_mm512_srli_epi16::<$shift>(raw[r]), mask);
                    }
                    for t in 0..T {
                        let a = _mm512_loadu_si512(xp.add(t * cols + 64 * $s).cast());
                        for r in 0..ROW_TILE {
                            if T <= 2 && $s % 2 == 1 {
                                acc_odd[r][t] = _mm512_dpbusd_epi32(acc_odd[r][t], codes[r], a);
                            } else {
                                acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], codes[r], a);
                            }
                        }
                    }
                }};
            }
            shift_step!(0, 0);
            shift_step!(2, 1);
            shift_step!(4, 2);
            shift_step!(6, 3);
        }
    }
    for r in 0..ROW_TILE {
        for t in 0..T {
            acc[r][t] = _mm512_add_epi32(acc[r][t], acc_odd[r][t]);
        }
    }
    if cols.is_multiple_of(CHUNK_COLS) {
        return acc;
    }
    // The 128-column tail in 256-bit registers, added to the low halves of the 512-bit ones.
    let tail = full * CHUNK_COLS;
    let mask = _mm256_set1_epi8(3);
    let mut tail_acc = [[_mm256_setzero_si256(); T]; ROW_TILE];
    // SAFETY: the tail holds 4 × 32 bytes at `tail` (cols = tail + 128) and activations are
    // read at t·cols + tail + 32·s + 32 <= T·cols.
    unsafe {
        let wp = w.add(tail);
        let xp = x.add(tail);
        let raw = [
            _mm256_loadu_si256(wp.cast()),
            _mm256_loadu_si256(wp.add(32).cast()),
            _mm256_loadu_si256(wp.add(64).cast()),
            _mm256_loadu_si256(wp.add(96).cast()),
        ];
        macro_rules! shift_step {
            ($shift:literal, $s:literal) => {{
                let mut codes = [mask; ROW_TILE];
                for r in 0..ROW_TILE {
                    codes[r] = _mm256_and_si256(_mm256_srli_epi16::<$shift>(raw[r]), mask);
                }
                for t in 0..T {
                    let a = _mm256_loadu_si256(xp.add(t * cols + 32 * $s).cast());
                    for r in 0..ROW_TILE {
                        tail_acc[r][t] = _mm256_dpbusd_epi32(tail_acc[r][t], codes[r], a);
                    }
                }
            }};
        }
        shift_step!(0, 0);
        shift_step!(2, 1);
        shift_step!(4, 2);
        shift_step!(6, 3);
    }
    for r in 0..ROW_TILE {
        for t in 0..T {
            acc[r][t] = _mm512_add_epi32(acc[r][t], _mm512_zextsi256_si512(tail_acc[r][t]));
        }
    }
    acc
}

/// `Σ_g (Σ_{j∈g} c·q − Σ_{j∈g} q) · s[r][g]` over 32-column groups, 4 rows, one token.
pub(in crate::ternary) fn tile_scaled_dots(
    weights: &[u8],
    x: &[i8],
    quad_sums: &[i32],
    scales: &[f32],
) -> [f32; ROW_TILE] {
    assert!(
        features_present(),
        "AVX-512 VNNI kernel called on a CPU without it"
    );
    let cols = x.len();
    assert!(
        cols.is_multiple_of(128)
            && weights.len() == cols
            && quad_sums.len() == cols / 4
            && scales.len() == ROW_TILE * (cols / GROUP_COLS)
    );
    // SAFETY: the features and every slice length the kernel relies on were checked above.
    unsafe {
        tile_scaled_dots_impl(
            weights.as_ptr(),
            x.as_ptr(),
            quad_sums.as_ptr(),
            scales.as_ptr(),
            cols,
        )
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_scaled_dots_impl(
    w: *const u8,
    x: *const i8,
    quad_sums: *const i32,
    scales: *const f32,
    cols: usize,
) -> [f32; ROW_TILE] {
    let mask = _mm512_set1_epi8(3);
    let groups = cols / GROUP_COLS;
    // Lane l of the vector for shift s covers group 2s + l/8 of the chunk.
    let spread = [
        _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
        _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3),
        _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5),
        _mm512_setr_epi32(6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7),
    ];
    let mut acc = [_mm512_setzero_ps(); ROW_TILE];
    let full = cols / CHUNK_COLS;
    for chunk in 0..full {
        // SAFETY (whole block): weights read within chunk·256 + 256 <= cols; activations within
        // cols; quad sums within cols/4; each row's 8 group scales at r·groups + chunk·8 + 8 <=
        // 4·groups.
        unsafe {
            let wp = w.add(chunk * CHUNK_COLS);
            let xp = x.add(chunk * CHUNK_COLS);
            let qp = quad_sums.add(chunk * 64);
            for s in 0..4 {
                let a = _mm512_loadu_si512(xp.add(64 * s).cast());
                let q4 = _mm512_loadu_si512(qp.add(16 * s).cast());
                for r in 0..ROW_TILE {
                    let raw = _mm512_loadu_si512(wp.add(r * 64).cast());
                    let shifted = _mm512_srlv_epi16(raw, _mm512_set1_epi16(2 * s as i16));
                    let codes = _mm512_and_si512(shifted, mask);
                    let dots = _mm512_dpbusd_epi32(_mm512_setzero_si512(), codes, a);
                    let d = _mm512_cvtepi32_ps(_mm512_sub_epi32(dots, q4));
                    let group_scales =
                        _mm512_castps256_ps512(_mm256_loadu_ps(scales.add(r * groups + chunk * 8)));
                    let scale = _mm512_permutexvar_ps(spread[s], group_scales);
                    acc[r] = _mm512_fmadd_ps(d, scale, acc[r]);
                }
            }
        }
    }
    if !cols.is_multiple_of(CHUNK_COLS) {
        // The 128-column tail: shifts s and s + 1 of a row's 32 bytes cover 64 consecutive
        // columns (tail + 64·pair ..), i.e. quads 16 apart from the chunks' — the same lanes.
        let tail = full * CHUNK_COLS;
        // SAFETY: the tail holds 4 × 32 bytes at `tail`; activations tail + 64·pair + 64 <=
        // cols, quad sums tail/4 + 16·pair + 16 <= cols/4, and each row's 4 tail group scales
        // at r·groups + tail/32 + 4 <= 4·groups lie within their slices (checked lengths).
        unsafe {
            for pair in 0..2 {
                let a = _mm512_loadu_si512(x.add(tail + 64 * pair).cast());
                let q4 = _mm512_loadu_si512(quad_sums.add(tail / 4 + 16 * pair).cast());
                let low_shift = _mm_cvtsi32_si128(4 * pair as i32);
                let high_shift = _mm_cvtsi32_si128(4 * pair as i32 + 2);
                for r in 0..ROW_TILE {
                    let raw = _mm256_loadu_si256(w.add(tail + r * 32).cast());
                    let shifted = _mm512_inserti64x4::<1>(
                        _mm512_castsi256_si512(_mm256_srl_epi16(raw, low_shift)),
                        _mm256_srl_epi16(raw, high_shift),
                    );
                    let codes = _mm512_and_si512(shifted, mask);
                    let dots = _mm512_dpbusd_epi32(_mm512_setzero_si512(), codes, a);
                    let d = _mm512_cvtepi32_ps(_mm512_sub_epi32(dots, q4));
                    let tail_scales = _mm512_castps128_ps512(_mm_loadu_ps(
                        scales.add(r * groups + tail / GROUP_COLS),
                    ));
                    let scale = _mm512_permutexvar_ps(spread[pair], tail_scales);
                    acc[r] = _mm512_fmadd_ps(d, scale, acc[r]);
                }
            }
        }
    }
    let mut out = [0f32; ROW_TILE];
    for r in 0..ROW_TILE {
        out[r] = fold_512(acc[r]);
    }
    out
}
