//! AVX-512 VBMI kernels over the trit5 layout: a byte's 5 codes come from two table lookups
//! (`vpermi2b` for codes 0–3 as 2-bit fields, `vpermb` for code 4; see [`DecodeTables`]), then are
//! multiplied with int8 activations by `vpdpbusd` (the one-token decode kernel) or shifted into
//! the 2-bit layout (the unpacking of a tile for the batched kernels).

#![allow(clippy::needless_range_loop)] // SIMD lanes and tiles read best as indexed loops.

use std::arch::x86_64::*;
use std::mem::MaybeUninit;

use super::super::trit5::{tile_bytes, CHUNK_BYTES, CHUNK_COLS, DIGITS, STREAMS};
use super::super::{CHUNK_COLS as TWO_BIT_CHUNK_COLS, ROW_TILE};
use super::sum_4_rows;

/// How far ahead of the current chunk weights are prefetched (`prefetcht0`): 4 KiB on every CPU,
/// as measured on each host (docs/PERFORMANCE.md):
/// - host D (Intel Emerald Rapids-class, 24.6 GB/s at 2 threads, 12.6 at 1):
///   `ternary_matvec_stream_t{1,2}/trit5` (from DRAM) 6.9–7.1 / 13.9–14.1 GiB/s at 512 B, 7.8–8.1 /
///   15.3–20.9 at 1 KiB, 10.0–12.6 / 18.1–24.0 at 2 KiB, 9.8–12.4 / 21.4–25.0 at 4 KiB, 10.9–11.0 /
///   23.3–25.3 at 8 KiB; 2B-4T tg64 with the F16 head, 4 interleaved rounds: 1 KiB 16.1–20.2 t/s
///   (median 17.3), 4 KiB 17.2–19.8 (19.1).
/// - host B (AMD Zen 4): the same stream 15.4 / 28.4 GiB/s at 1 KiB, 16.2 / 28.3 at 2 KiB,
///   16.9 / 29.3–29.6 at 4 KiB, 16.2 / 28.9 at 8 KiB (`prefetcht1` the same or worse),
///   cache-resident 18.1 / 34.8; 2B-4T tg64 +1.4% against 1 KiB.
/// - host C (Intel Sapphire Rapids-class), which chose 1 KiB until host D: interleaved 2B-4T
///   tg64 19.5–19.9 t/s at 1 KiB, 18.5–19.1 at 4 KiB (its rates drift ~10% between runs).
///
/// The share's first 8 KiB are prefetched at its start (`CHUNK_PREFETCH_BYTES`).
const PREFETCH_BYTES: usize = 4096;

/// Whether this CPU has everything the kernels below use.
pub(in crate::ternary) fn features_present() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vnni")
        && is_x86_feature_detected!("avx512vbmi")
}

/// The decoding tables, as bytes (64-byte aligned rows).
///
/// A byte `v = 84·c4 + r` (`r = c0 + 3·c1 + 9·c2 + 27·c3 < 81`, see the trit5 module) gives
/// `PACKED[v] = c0 | c1 << 2 | c2 << 4 | c3 << 6`, one 256-entry lookup (two `vpermi2b` blended
/// on bit 7), from which codes 0–3 come out by a shift and a mask each, as in the 2-bit layout;
/// and, 84 being a multiple of 4, `c4 = ⌊v / 84⌋` is a function of `v >> 2` (< 63): one `vpermb`
/// (`HIGH`; `vpermb` reads only index bits 0..5, so the bits a 16-bit shift brings in from the
/// neighbouring byte are ignored). Three byte permutes per 64 bytes where base-3 digits took
/// seven: on Zen 4 they share an execution port with `vpdpbusd`.
#[repr(C, align(64))]
struct DecodeTables {
    packed: [u8; 256],
    high: [u8; 64],
}

static DECODE_TABLES: DecodeTables = decode_tables();

const fn decode_tables() -> DecodeTables {
    let mut tables = DecodeTables {
        packed: [0; 256],
        high: [0; 64],
    };
    let mut v = 0;
    while v < 256 {
        let mut packed = 0;
        let mut s = 0;
        while s < STREAMS - 1 {
            packed |= DIGITS.0[s][v] << (2 * s);
            s += 1;
        }
        tables.packed[v] = packed;
        tables.high[v >> 2] = DIGITS.0[STREAMS - 1][v];
        v += 1;
    }
    tables
}

/// [`DECODE_TABLES`] in registers.
#[derive(Clone, Copy)]
struct Decoder {
    packed: [__m512i; 4],
    high: __m512i,
    two_bits: __m512i,
}

/// One 64-byte row block split for decoding: `PACKED` of each byte, and its code 4.
#[derive(Clone, Copy)]
struct Fields {
    packed: __m512i,
    high: __m512i,
}

impl Decoder {
    #[target_feature(enable = "avx512f")]
    fn new() -> Decoder {
        let t = &DECODE_TABLES;
        // SAFETY: every load reads 64 bytes inside one of the tables' rows.
        unsafe {
            let load = |p: *const u8| _mm512_loadu_si512(p.cast());
            Decoder {
                packed: [0, 1, 2, 3].map(|q| load(t.packed.as_ptr().add(64 * q))),
                high: load(t.high.as_ptr()),
                two_bits: _mm512_set1_epi8(3),
            }
        }
    }

    /// The fields of 64 packed bytes.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    #[inline]
    fn fields(&self, raw: __m512i) -> Fields {
        let low_half = _mm512_permutex2var_epi8(self.packed[0], raw, self.packed[1]);
        let high_half = _mm512_permutex2var_epi8(self.packed[2], raw, self.packed[3]);
        Fields {
            packed: _mm512_mask_blend_epi8(_mm512_movepi8_mask(raw), low_half, high_half),
            high: _mm512_permutexvar_epi8(_mm512_srli_epi16::<2>(raw), self.high),
        }
    }

    /// The codes of stream `s` of 64 packed bytes, given their [`Decoder::fields`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    #[inline]
    fn stream(&self, fields: Fields, s: usize) -> __m512i {
        let field = match s {
            0 => fields.packed,
            1 => _mm512_srli_epi16::<2>(fields.packed),
            2 => _mm512_srli_epi16::<4>(fields.packed),
            3 => _mm512_srli_epi16::<6>(fields.packed),
            _ => return fields.high,
        };
        _mm512_and_si512(field, self.two_bits)
    }
}

/// The codes of 64-column block `g` (columns 64g..64g + 64) of row `r` of a trit5 tile: chunk
/// g / 5, stream g mod 5.
///
/// # Safety
/// The tile at `w` must hold the row's 64 bytes of chunk g / 5 (g < cols / 64 of its matrix).
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
#[inline]
unsafe fn block_codes(decoder: &Decoder, w: *const u8, r: usize, g: usize) -> __m512i {
    // SAFETY: in bounds by the caller's contract.
    let raw = unsafe { _mm512_loadu_si512(w.add((g / STREAMS) * CHUNK_BYTES + 64 * r).cast()) };
    decoder.stream(decoder.fields(raw), g % STREAMS)
}

/// `Σ_j c[r][j] · x[t·cols + j]` for the 4 rows of a trit5 tile and `T` consecutive tokens
/// (each 64 bytes are decoded once for all `T`).
pub(in crate::ternary) fn tile_code_dots<const T: usize>(
    weights: &[u8],
    x: &[i8],
    cols: usize,
) -> [[i32; T]; ROW_TILE] {
    assert!(
        features_present(),
        "AVX-512 VBMI kernel called on a CPU without it"
    );
    assert!(cols.is_multiple_of(128) && weights.len() == tile_bytes(cols) && x.len() >= T * cols);
    // SAFETY: the features were checked above; the kernel reads `tile_bytes(cols)` bytes of
    // `weights` and `T·cols` bytes of `x`, both checked.
    unsafe { tile_code_dots_impl::<T>(weights.as_ptr(), x.as_ptr(), cols) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
unsafe fn tile_code_dots_impl<const T: usize>(
    w: *const u8,
    x: *const i8,
    cols: usize,
) -> [[i32; T]; ROW_TILE] {
    let decoder = Decoder::new();
    // One token: two accumulator sets (even and odd streams) halve the `vpdpbusd` latency
    // chains; several tokens already give independent chains (the odd set stays unused).
    let mut acc = [[[_mm512_setzero_si512(); T]; ROW_TILE]; 2];
    // SAFETY: the caller's bounds are the helper's.
    unsafe { tile_chunks_code_dots::<T>(&decoder, w, x, cols, &mut acc) };
    let mut out = [[0i32; T]; ROW_TILE];
    for r in 0..ROW_TILE {
        for t in 0..T {
            out[r][t] = _mm512_reduce_add_epi32(_mm512_add_epi32(acc[0][r][t], acc[1][r][t]));
        }
    }
    out
}

/// Adds one tile's code dots over all its columns to `acc` for `T` tokens: the whole chunks, then
/// only the streams of the last chunk that hold columns < `cols` (activations past `cols` are
/// never read).
///
/// # Safety
/// `w` points at one tile's `tile_bytes(cols)` bytes and `x` at `T·cols` activations; the CPU
/// has the module's features.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
#[inline]
unsafe fn tile_chunks_code_dots<const T: usize>(
    decoder: &Decoder,
    w: *const u8,
    x: *const i8,
    cols: usize,
    acc: &mut [[[__m512i; T]; ROW_TILE]; 2],
) {
    let full = cols / CHUNK_COLS;
    // SAFETY: chunk·256 + 256 <= tile_bytes(cols) bytes of weights and t·cols + chunk·320 + 320
    // <= T·cols activations; the last chunk's 256 bytes lie within tile_bytes(cols) and its first
    // `m` streams' activations end at full·320 + 64·m = cols (for every token).
    unsafe {
        for chunk in 0..full {
            chunk_code_dots::<STREAMS, T>(decoder, w, x, cols, chunk, acc);
        }
        match (cols - full * CHUNK_COLS) / 64 {
            1 => chunk_code_dots::<1, T>(decoder, w, x, cols, full, acc),
            2 => chunk_code_dots::<2, T>(decoder, w, x, cols, full, acc),
            3 => chunk_code_dots::<3, T>(decoder, w, x, cols, full, acc),
            4 => chunk_code_dots::<4, T>(decoder, w, x, cols, full, acc),
            _ => {}
        }
    }
}

/// `dots[4·i + r] = Σ_j c[r][j] · x[j]` for the 4 rows of each of the consecutive trit5 tiles
/// in `weights` (`dots.len() / 4` of them) and one token: [`tile_code_dots::<1>`] tile after
/// tile, with the tables loaded once and each tile's 4 sums reduced together (one-token decode
/// calls this for a thread's whole share, so the per-tile work is only the products).
pub(in crate::ternary) fn tile_run_code_dots(
    weights: &[u8],
    x: &[i8],
    cols: usize,
    dots: &mut [i32],
) {
    assert!(
        features_present(),
        "AVX-512 VBMI kernel called on a CPU without it"
    );
    let tiles = dots.len() / ROW_TILE;
    assert!(
        cols.is_multiple_of(128)
            && dots.len() == tiles * ROW_TILE
            && weights.len() == tiles * tile_bytes(cols)
            && x.len() >= cols
    );
    // SAFETY: the features were checked above; the kernel reads `tiles · tile_bytes(cols)` bytes
    // of `weights`, `cols` bytes of `x` and writes `4 · tiles` sums, all checked.
    unsafe { tile_run_code_dots_impl(weights.as_ptr(), x.as_ptr(), cols, dots) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
unsafe fn tile_run_code_dots_impl(w: *const u8, x: *const i8, cols: usize, dots: &mut [i32]) {
    let decoder = Decoder::new();
    let tile_len = tile_bytes(cols);
    for (tile, out) in dots.chunks_exact_mut(ROW_TILE).enumerate() {
        // SAFETY: tile < dots.len() / 4, so the tile's bytes lie within `weights` (checked by the
        // caller); chunks and activations as in `tile_code_dots_impl`.
        unsafe {
            let w = w.add(tile * tile_len);
            let mut acc = [[[_mm512_setzero_si512(); 1]; ROW_TILE]; 2];
            tile_chunks_code_dots::<1>(&decoder, w, x, cols, &mut acc);
            let rows: [__m512i; ROW_TILE] =
                std::array::from_fn(|r| _mm512_add_epi32(acc[0][r][0], acc[1][r][0]));
            _mm_storeu_si128(out.as_mut_ptr().cast(), sum_4_rows(rows));
        }
    }
}

/// Adds the code dots of the first `M` streams of chunk `chunk` to the 4 rows' accumulators of
/// `T` tokens (stream `s` to set `s mod 2` for one token, set 0 otherwise).
///
/// # Safety
/// The tile at `w` must hold chunk `chunk` (256 bytes) and `x` the activations of its first `M`
/// streams (columns chunk·320 .. chunk·320 + 64·M) for `T` tokens `cols` apart.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
#[inline]
unsafe fn chunk_code_dots<const M: usize, const T: usize>(
    decoder: &Decoder,
    w: *const u8,
    x: *const i8,
    cols: usize,
    chunk: usize,
    acc: &mut [[[__m512i; T]; ROW_TILE]; 2],
) {
    // SAFETY (whole block): in bounds by the caller's contract.
    unsafe {
        let wp = w.add(chunk * CHUNK_BYTES);
        let xp = x.add(chunk * CHUNK_COLS);
        // Weights stream from DRAM in decode: keep lines in flight ahead of use. A prefetch past
        // the end of the matrix is harmless (no fault), hence the wrapping pointer.
        for line in 0..ROW_TILE {
            let ahead = wp.wrapping_add(PREFETCH_BYTES + 64 * line);
            _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
        }
        let fields: [Fields; ROW_TILE] =
            std::array::from_fn(|r| decoder.fields(_mm512_loadu_si512(wp.add(64 * r).cast())));
        for s in 0..M {
            let set = if T == 1 { s % 2 } else { 0 };
            let mut codes = [_mm512_setzero_si512(); ROW_TILE];
            for r in 0..ROW_TILE {
                codes[r] = decoder.stream(fields[r], s);
            }
            for t in 0..T {
                let a = _mm512_loadu_si512(xp.add(t * cols + 64 * s).cast());
                for r in 0..ROW_TILE {
                    acc[set][r][t] = _mm512_dpbusd_epi32(acc[set][r][t], codes[r], a);
                }
            }
        }
    }
}

/// Chunks of one panel of the row-pair kernel: 8 tokens' activations over 4 chunks (1280
/// columns) are 10 KiB, so the second row pair reads them from L1 after the first.
const PAIR_PANEL_CHUNKS: usize = 4;

/// [`tile_code_dots`] two rows at a time, for batched decode: 2 rows × 8 tokens are 16
/// accumulators, which leaves registers for the decoding (4 rows × 8 tokens would spill them).
/// Each row's bytes are still decoded once for all `T` tokens. The rows are walked in panels of
/// [`PAIR_PANEL_CHUNKS`] chunks (the first pair, then the second, over the same activations);
/// the integer sums do not depend on the order.
pub(in crate::ternary) fn tile_code_dots_row_pairs<const T: usize>(
    weights: &[u8],
    x: &[i8],
    cols: usize,
) -> [[i32; T]; ROW_TILE] {
    assert!(
        features_present(),
        "AVX-512 VBMI kernel called on a CPU without it"
    );
    assert!(cols.is_multiple_of(128) && weights.len() == tile_bytes(cols) && x.len() >= T * cols);
    // SAFETY: the features were checked above; the kernel reads `tile_bytes(cols)` bytes of
    // `weights` and `T·cols` bytes of `x`, both checked.
    unsafe { tile_code_dots_row_pairs_impl::<T>(weights.as_ptr(), x.as_ptr(), cols) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
unsafe fn tile_code_dots_row_pairs_impl<const T: usize>(
    w: *const u8,
    x: *const i8,
    cols: usize,
) -> [[i32; T]; ROW_TILE] {
    let decoder = Decoder::new();
    // Each pair's accumulators start as zero registers in the first panel: an array of zeros
    // here would be a 2 KiB `memset` per call (1.6% of the samples of 8 sequences in flight on
    // host B).
    let zero = [[_mm512_setzero_si512(); T]; 2];
    let mut acc = [MaybeUninit::<[[__m512i; T]; 2]>::uninit(); ROW_TILE / 2];
    let full = cols / CHUNK_COLS;
    let mut start = 0;
    while start < full {
        let end = full.min(start + PAIR_PANEL_CHUNKS);
        for (pair, acc) in acc.iter_mut().enumerate() {
            // SAFETY: after the first panel every pair's accumulators have been written.
            let mut regs = if start == 0 {
                zero
            } else {
                unsafe { acc.assume_init() }
            };
            for chunk in start..end {
                // SAFETY: chunk·256 + 256 <= tile_bytes(cols) bytes of weights and t·cols +
                // chunk·320 + 320 <= T·cols activations.
                unsafe {
                    pair_chunk_code_dots::<STREAMS, T>(&decoder, w, x, cols, chunk, pair, &mut regs)
                };
            }
            acc.write(regs);
        }
        start = end;
    }
    // Only the streams holding columns < cols: activations past `cols` are never read.
    let mut out = [[0i32; T]; ROW_TILE];
    for (pair, acc) in acc.iter().enumerate() {
        let mut regs = if full == 0 {
            zero
        } else {
            // SAFETY: the first panel (full > 0) wrote every pair's accumulators.
            unsafe { acc.assume_init() }
        };
        // SAFETY: the last chunk's 256 bytes lie within tile_bytes(cols) and its first `m`
        // streams' activations end at full·320 + 64·m = cols (for every token).
        unsafe {
            match (cols - full * CHUNK_COLS) / 64 {
                1 => pair_chunk_code_dots::<1, T>(&decoder, w, x, cols, full, pair, &mut regs),
                2 => pair_chunk_code_dots::<2, T>(&decoder, w, x, cols, full, pair, &mut regs),
                3 => pair_chunk_code_dots::<3, T>(&decoder, w, x, cols, full, pair, &mut regs),
                4 => pair_chunk_code_dots::<4, T>(&decoder, w, x, cols, full, pair, &mut regs),
                _ => {}
            }
        }
        for (r, regs) in regs.iter().enumerate() {
            for (t, &lanes) in regs.iter().enumerate() {
                out[2 * pair + r][t] = _mm512_reduce_add_epi32(lanes);
            }
        }
    }
    out
}

/// Adds the code dots of the first `M` streams of chunk `chunk` to the accumulators of rows
/// `2·pair` and `2·pair + 1` for `T` tokens.
///
/// # Safety
/// As [`chunk_code_dots`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
#[inline]
unsafe fn pair_chunk_code_dots<const M: usize, const T: usize>(
    decoder: &Decoder,
    w: *const u8,
    x: *const i8,
    cols: usize,
    chunk: usize,
    pair: usize,
    acc: &mut [[__m512i; T]; 2],
) {
    // SAFETY (whole block): in bounds by the caller's contract.
    unsafe {
        let wp = w.add(chunk * CHUNK_BYTES);
        let xp = x.add(chunk * CHUNK_COLS);
        if pair == 0 {
            // The whole chunk (both pairs' lines) ahead, as in `chunk_code_dots`.
            for line in 0..ROW_TILE {
                let ahead = wp.wrapping_add(PREFETCH_BYTES + 64 * line);
                _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
            }
        }
        let mut fields = [Fields {
            packed: _mm512_setzero_si512(),
            high: _mm512_setzero_si512(),
        }; 2];
        for r in 0..2 {
            fields[r] = decoder.fields(_mm512_loadu_si512(wp.add(64 * (2 * pair + r)).cast()));
        }
        for s in 0..M {
            // (A loop, not a closure: a closure would not inherit the target features, and
            // the decoding would be an out-of-line call.)
            let mut codes = [_mm512_setzero_si512(); 2];
            for r in 0..2 {
                codes[r] = decoder.stream(fields[r], s);
            }
            for t in 0..T {
                let a = _mm512_loadu_si512(xp.add(t * cols + 64 * s).cast());
                for r in 0..2 {
                    acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], codes[r], a);
                }
            }
        }
    }
}

/// Rewrites a trit5 tile as the 2-bit tile of the same weights (`out` holds `cols` bytes).
pub(in crate::ternary) fn unpack_tile(weights: &[u8], cols: usize, out: &mut [u8]) {
    assert!(
        features_present(),
        "AVX-512 VBMI kernel called on a CPU without it"
    );
    assert!(cols.is_multiple_of(128) && weights.len() == tile_bytes(cols) && out.len() == cols);
    // SAFETY: the features were checked above; the kernel reads `tile_bytes(cols)` bytes of
    // `weights` and writes `cols` bytes of `out`, both checked.
    unsafe { unpack_tile_impl(weights.as_ptr(), cols, out.as_mut_ptr()) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
unsafe fn unpack_tile_impl(w: *const u8, cols: usize, out: *mut u8) {
    let decoder = Decoder::new();
    // SAFETY (for every `block_codes` below): blocks g < cols / 64 lie within the tile.
    macro_rules! block {
        ($r:expr, $g:expr) => {
            unsafe { block_codes(&decoder, w, $r, $g) }
        };
    }
    let full = cols / TWO_BIT_CHUNK_COLS;
    for r in 0..ROW_TILE {
        // Blocks in column order: trit5 chunk g / 5 is loaded and split into fields once for its 5
        // streams; 2-bit chunk k collects blocks 4k..4k + 4 at shifts 0, 2, 4, 6 (codes are 2
        // bits wide, so the 16-bit shifts carry nothing into the neighbouring byte).
        let mut fields = Fields {
            packed: _mm512_setzero_si512(),
            high: _mm512_setzero_si512(),
        };
        let mut bytes = _mm512_setzero_si512();
        for g in 0..4 * full {
            let stream = g % STREAMS;
            if stream == 0 {
                // SAFETY: g < cols / 64, so chunk g / 5 of the row lies within the tile.
                fields = decoder.fields(unsafe {
                    _mm512_loadu_si512(w.add((g / STREAMS) * CHUNK_BYTES + 64 * r).cast())
                });
            }
            let codes = decoder.stream(fields, stream);
            let shift = _mm_cvtsi32_si128(2 * (g % 4) as i32);
            bytes = _mm512_or_si512(bytes, _mm512_sll_epi16(codes, shift));
            if g % 4 == 3 {
                // SAFETY: (g / 4)·256 + 64·r + 64 <= full·256 <= cols bytes of `out`.
                unsafe {
                    _mm512_storeu_si512(
                        out.add((g / 4) * TWO_BIT_CHUNK_COLS + 64 * r).cast(),
                        bytes,
                    )
                };
                bytes = _mm512_setzero_si512();
            }
        }
        if !cols.is_multiple_of(TWO_BIT_CHUNK_COLS) {
            // The 128-column tail: byte b holds columns tail + 32s + b at shift 2s, i.e. the low
            // and high halves of the tail's two 64-column blocks.
            let g = 4 * full;
            let (first, second) = (block!(r, g), block!(r, g + 1));
            let bytes = _mm256_or_si256(
                _mm256_or_si256(
                    _mm512_castsi512_si256(first),
                    _mm256_slli_epi16::<2>(_mm512_extracti64x4_epi64::<1>(first)),
                ),
                _mm256_or_si256(
                    _mm256_slli_epi16::<4>(_mm512_castsi512_si256(second)),
                    _mm256_slli_epi16::<6>(_mm512_extracti64x4_epi64::<1>(second)),
                ),
            );
            // SAFETY: full·256 + 32·r + 32 <= full·256 + 128 = cols bytes of `out`.
            unsafe {
                _mm256_storeu_si256(out.add(full * TWO_BIT_CHUNK_COLS + 32 * r).cast(), bytes)
            };
        }
    }
}
