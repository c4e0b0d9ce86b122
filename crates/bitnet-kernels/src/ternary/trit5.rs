//! The trit5 layout (5 ternary codes per byte, 1.6 bits per weight): packing, reading back, the
//! scalar reference dot over it, and the unpacking of one tile into the 2-bit layout (see the
//! parent module for both layouts and when each is chosen).

#![allow(clippy::needless_range_loop)] // Tiles and streams read best as indexed loops.

use super::{code_position, ROW_TILE};

/// Columns of one trit5 chunk: 5 streams of 64 columns.
pub(super) const CHUNK_COLS: usize = 320;
/// Bytes one row tile spends on one chunk (4 rows × 64 bytes).
pub(super) const CHUNK_BYTES: usize = ROW_TILE * 64;
/// Streams (codes) per byte.
pub(super) const STREAMS: usize = 5;
/// Multiplier of code 4 in a byte: codes 0–3 take `r = c0 + 3·c1 + 9·c2 + 27·c3 < 81`, and
/// `v = 84·c4 + r` (at most 248). 84 rather than 81 so that `c4` is a function of `v >> 2` (a
/// 64-entry lookup in the SIMD kernels).
const HIGH_STEP: usize = 84;
/// The byte of five zero weights (all codes 1): 84 + 1 + 3 + 9 + 27.
pub(super) const ZERO_BYTE: u8 = 124;

/// `DIGITS.0[s][v]` = the code of stream `s` in byte `v` (bytes `84·c4 + r` with `r ≥ 81`, or
/// above 248, never occur in a packed matrix).
pub(super) struct DigitTables(pub(super) [[u8; 256]; STREAMS]);

pub(super) static DIGITS: DigitTables = DigitTables(digit_tables());

const fn digit_tables() -> [[u8; 256]; STREAMS] {
    let mut tables = [[0u8; 256]; STREAMS];
    let mut v = 0;
    while v < 256 {
        let mut rest = v % HIGH_STEP;
        let mut s = 0;
        while s < STREAMS - 1 {
            tables[s][v] = (rest % 3) as u8;
            rest /= 3;
            s += 1;
        }
        tables[STREAMS - 1][v] = (v / HIGH_STEP % 3) as u8;
        v += 1;
    }
    tables
}

/// Bytes one row tile occupies: 256 per started 320-column chunk.
pub(super) fn tile_bytes(cols: usize) -> usize {
    cols.div_ceil(CHUNK_COLS) * CHUNK_BYTES
}

/// Streams present in chunk `chunk` (5, or `(cols mod 320)/64` in a short last chunk).
pub(super) fn streams_in_chunk(chunk: usize, cols: usize) -> usize {
    STREAMS.min((cols - chunk * CHUNK_COLS) / 64)
}

/// Where the code of column `col` of row `r` (within its tile) lives: (byte in tile, stream).
pub(super) fn code_position_trit5(r: usize, col: usize) -> (usize, usize) {
    let (chunk, within) = (col / CHUNK_COLS, col % CHUNK_COLS);
    (chunk * CHUNK_BYTES + r * 64 + within % 64, within / 64)
}

/// Writes the codes of one row (`r`-th of its tile) into a trit5 tile already filled with
/// [`ZERO_BYTE`]: the byte holding columns `320k + 64s + b` (codes `c_s = t + 1`) becomes
/// `84·c4 + Σ_{s<4} c_s · 3^s`, the streams past `cols` keeping code 1.
pub(super) fn pack_row(r: usize, values: &[i8], tile: &mut [u8]) {
    let cols = values.len();
    for chunk in 0..cols.div_ceil(CHUNK_COLS) {
        let streams = streams_in_chunk(chunk, cols);
        let base = chunk * CHUNK_COLS;
        let out = &mut tile[chunk * CHUNK_BYTES + r * 64..chunk * CHUNK_BYTES + r * 64 + 64];
        for (b, byte) in out.iter_mut().enumerate() {
            let code = |s: usize| {
                if s < streams {
                    (values[base + 64 * s + b] + 1) as u8
                } else {
                    1
                }
            };
            let low = (0..STREAMS - 1)
                .rev()
                .fold(0, |packed, s| packed * 3 + code(s));
            *byte = HIGH_STEP as u8 * code(STREAMS - 1) + low;
        }
    }
}

/// Calls `visit(r, col, code)` for every weight (columns < `cols`) of a trit5 row tile.
fn for_each_code(weights: &[u8], cols: usize, mut visit: impl FnMut(usize, usize, u8)) {
    for chunk in 0..cols.div_ceil(CHUNK_COLS) {
        let streams = streams_in_chunk(chunk, cols);
        for r in 0..ROW_TILE {
            let base = chunk * CHUNK_BYTES + r * 64;
            for (b, &byte) in weights[base..base + 64].iter().enumerate() {
                for s in 0..streams {
                    visit(
                        r,
                        chunk * CHUNK_COLS + 64 * s + b,
                        DIGITS.0[s][usize::from(byte)],
                    );
                }
            }
        }
    }
}

/// Scalar reference: `Σ_j c[r][j] · x[j]` for the 4 rows of a trit5 tile and one token (the twin
/// of the AVX-512 VBMI kernel).
#[cfg(all(test, target_arch = "x86_64"))]
pub(super) fn tile_code_dots(weights: &[u8], x: &[i8], cols: usize) -> [i32; ROW_TILE] {
    let mut acc = [0i32; ROW_TILE];
    for_each_code(weights, cols, |r, col, code| {
        acc[r] += i32::from(code) * i32::from(x[col]);
    });
    acc
}

/// Scalar reference: rewrites a trit5 tile as the 2-bit tile of the same weights (`out` holds
/// `cols` bytes; the twin of the AVX-512 VBMI unpacking).
pub(super) fn unpack_tile(weights: &[u8], cols: usize, out: &mut [u8]) {
    out.fill(0);
    for_each_code(weights, cols, |r, col, code| {
        let (byte, shift) = code_position(r, col, cols);
        out[byte] |= code << shift;
    });
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    //! The AVX-512 VBMI trit5 kernels against their scalar twins (exact equality): the one-token
    //! and the row-pair (batched decode) dots, and the unpacking.

    use super::super::x86::avx512_vbmi;
    use super::*;
    use proptest::prelude::*;

    /// One packed trit5 tile of random ternary rows, and `cols` int8 activations.
    fn tile_case() -> impl Strategy<Value = (usize, Vec<u8>, Vec<i8>)> {
        (1usize..=13)
            .prop_map(|k| 128 * k)
            .prop_flat_map(|cols| {
                (
                    Just(cols),
                    prop::collection::vec(-1i8..=1, ROW_TILE * cols),
                    prop::collection::vec(any::<i8>(), cols),
                )
            })
            .prop_map(|(cols, values, x)| {
                let mut tile = vec![ZERO_BYTE; tile_bytes(cols)];
                for (r, row) in values.chunks_exact(cols).enumerate() {
                    pack_row(r, row, &mut tile);
                }
                (cols, tile, x)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn vbmi_dots_equal_the_scalar_twin((cols, tile, x) in tile_case()) {
            // Without VBMI there is no SIMD path to compare (the public tests still cover the
            // layout through the unpacking on every ISA).
            if avx512_vbmi::features_present() {
                prop_assert_eq!(
                    avx512_vbmi::tile_code_dots::<1>(&tile, &x, cols).map(|row| row[0]),
                    tile_code_dots(&tile, &x, cols)
                );
            }
        }

        #[test]
        fn vbmi_row_pair_dots_equal_the_scalar_twin(
            (cols, tile, x) in tile_case(),
            more in prop::collection::vec(any::<i8>(), 7 * 13 * 128),
        ) {
            if avx512_vbmi::features_present() {
                // 8 tokens: the case's, then 7 more.
                let mut xs = x.clone();
                xs.extend_from_slice(&more[..7 * cols]);
                let per_token = |t: usize| tile_code_dots(&tile, &xs[t * cols..(t + 1) * cols], cols);
                let eight = avx512_vbmi::tile_code_dots_row_pairs::<8>(&tile, &xs, cols);
                let five = avx512_vbmi::tile_code_dots_row_pairs::<5>(&tile, &xs, cols);
                for t in 0..8 {
                    let want = per_token(t);
                    prop_assert_eq!(eight.map(|row| row[t]), want);
                    if t < 5 {
                        prop_assert_eq!(five.map(|row| row[t]), want);
                    }
                }
            }
        }

        #[test]
        fn vbmi_unpacking_equals_the_scalar_twin((cols, tile, _x) in tile_case()) {
            if avx512_vbmi::features_present() {
                let mut expected = vec![0u8; cols];
                unpack_tile(&tile, cols, &mut expected);
                let mut got = vec![0xAAu8; cols];
                avx512_vbmi::unpack_tile(&tile, cols, &mut got);
                prop_assert_eq!(got, expected);
            }
        }
    }
}
