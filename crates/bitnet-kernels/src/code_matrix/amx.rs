//! The AVX-512 code-matrix kernel for blocks of 16 tokens on AMX-INT8 tiles (Intel Sapphire
//! Rapids and later; [`crate::isa::amx_int8_supported`]).
//!
//! Per panel and scale group, one `tdpbsud` multiplies the tokens' signed activation codes (a
//! tile of 16 tokens × group bytes, read in place: the tokens' codes lie one after another) by
//! the panel's unsigned codes (a tile of group / 4 quads × 64 bytes: a panel's quad is exactly a
//! row of the tile's paired-byte layout, so byte codes are read in place and nibble codes are
//! unpacked into a scratch tile first), giving the exact integer sums `Σ u · q` of every (token,
//! row) of the group. The float chain of the module docs then runs on those sums in 16 lanes, as
//! in the VNNI kernel, so the results are its bits.
//!
//! The groups are pipelined over two sets of tile registers: group g multiplies while group g − 1's
//! sums are stored and group g − 2's go through the float chain. The tiles are configured once
//! per product (per thread) and released at its end. Host C (Sapphire Rapids-class, 1 thread,
//! `benches/code_matrix.rs`): 64 tokens × SmolLM2's Q4_1 FFN 171–179 G multiply-adds/s against
//! the VNNI kernel's 139–148; at 8 tokens the tiles were slower (stores of the sum tiles and the
//! float chain per 8 tokens), so batched decode stays on VNNI.

use std::arch::asm;
use std::arch::x86_64::*;
use std::ops::Range;

use super::x86::{params16, unpack512};
use super::{check_operands, CodeMatrix, PanelsRef, TokenRef, PANEL_ROWS, QUAD_BYTES};

/// Tokens per step: the rows of the activation and sum tiles. The products run on whole blocks
/// of them; fewer tokens stay on the VNNI kernel, which is faster there on Sapphire Rapids.
pub(super) const TILE_TOKENS: usize = 16;
/// Quads of the largest scale group (32 codes): the most rows of a weight tile.
const GROUP_QUADS: usize = 8;

/// Dots of one step: `dots[t][l]` is row `l` of the panel with token `t`.
pub(super) type TileDots = [[f32; PANEL_ROWS]; TILE_TOKENS];

/// The 64-byte operand of `ldtilecfg` (palette 1): rows and bytes per row of each tile register.
/// Registers, two of each kind (see [`tile_products`]): `tmm0`/`tmm1` activations, `tmm2`/`tmm3`
/// weights, `tmm4`/`tmm5` sums.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    row_bytes: [u16; 16],
    rows: [u8; 16],
}

/// 64-byte aligned storage for tile loads and stores.
#[repr(C, align(64))]
struct Aligned<T>(T);

/// The products of panels `range` of `m` with the tokens of `xs`, a whole number of
/// [`TILE_TOKENS`] blocks of one batch of [`super::Activations`] (each of their arrays holds the
/// tokens one after another): `store(p, t, dots)` receives the dots of panel `p` with tokens
/// `t..t + TILE_TOKENS`. Panels outermost, so a panel stays in cache while the token blocks pass
/// over it; the tiles are configured once.
pub(super) fn panels_times_tokens(
    m: &CodeMatrix,
    range: Range<usize>,
    xs: &[TokenRef],
    store: &mut dyn FnMut(usize, usize, &TileDots),
) {
    assert!(crate::isa::amx_int8_supported());
    assert!(!xs.is_empty() && xs.len().is_multiple_of(TILE_TOKENS));
    let groups = m.cols / m.group;
    let first = &xs[0];
    assert!(xs.iter().enumerate().all(|(t, x)| {
        let at = t * groups;
        std::ptr::eq(x.qs.as_ptr(), first.qs.as_ptr().wrapping_add(t * m.cols))
            && std::ptr::eq(
                x.bias_sums.as_ptr(),
                first.bias_sums.as_ptr().wrapping_add(at),
            )
            && std::ptr::eq(x.scales.as_ptr(), first.scales.as_ptr().wrapping_add(at))
            && std::ptr::eq(x.sums.as_ptr(), first.sums.as_ptr().wrapping_add(at))
    }));
    let mut config = TileConfig {
        palette: 1,
        start_row: 0,
        reserved: [0; 14],
        row_bytes: [0; 16],
        rows: [0; 16],
    };
    let (tokens, quads) = (TILE_TOKENS as u8, (m.group / 4) as u8);
    for odd in 0..2 {
        (config.rows[odd], config.row_bytes[odd]) = (tokens, m.group as u16);
        (config.rows[2 + odd], config.row_bytes[2 + odd]) = (quads, QUAD_BYTES as u16);
        (config.rows[4 + odd], config.row_bytes[4 + odd]) = (tokens, (4 * PANEL_ROWS) as u16);
    }
    // SAFETY: AMX is present and permitted (asserted); a valid palette-1 configuration
    // (≤ 16 rows of ≤ 64 bytes), read only.
    unsafe { asm!("ldtilecfg [{}]", in(reg) &config, options(nostack, readonly)) };
    let biased = m.bias != 0;
    for p in range {
        let w = m.panels(p, 1);
        for t in (0..xs.len()).step_by(TILE_TOKENS) {
            let block = &xs[t..t + TILE_TOKENS];
            check_operands(&w, block, (1, TILE_TOKENS));
            let mut dots = [[0f32; PANEL_ROWS]; TILE_TOKENS];
            // SAFETY: AVX-512 and AMX-INT8 present and permitted, the tiles configured for
            // `TILE_TOKENS` tokens and `m.group`, operands checked, the block's arrays contiguous.
            unsafe {
                match (w.nibble, w.half()) {
                    (false, false) => kernel::<false, false>(&w, block, biased, t == 0, &mut dots),
                    (false, true) => kernel::<false, true>(&w, block, biased, t == 0, &mut dots),
                    (true, false) => kernel::<true, false>(&w, block, biased, t == 0, &mut dots),
                    (true, true) => kernel::<true, true>(&w, block, biased, t == 0, &mut dots),
                }
            }
            store(p, t, &dots);
        }
    }
    // SAFETY: returns the tiles to their initial state.
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
}

/// Dots of one panel with [`TILE_TOKENS`] tokens, adding the tokens' bias sums if the codes are
/// `biased`, and prefetching the next panel's codes if `prefetch` (weights streamed from memory
/// are then in cache when their turn comes).
///
/// # Safety
/// AVX-512 and AMX-INT8 present and permitted; the tiles configured as [`panels_times_tokens`]
/// does; the operands passed `check_operands`; `NIBBLE` / `HALF` are their storage; the tokens'
/// codes, bias sums, scales and sums lie one token after another.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn kernel<const NIBBLE: bool, const HALF: bool>(
    w: &PanelsRef,
    xs: &[TokenRef],
    biased: bool,
    prefetch: bool,
    dots: &mut TileDots,
) {
    let panel_bytes = w.panel_bytes();
    let (cols, group) = (w.cols, w.group);
    let groups = cols / group;
    let quads = group / 4;
    let group_bytes = if NIBBLE { quads / 2 } else { quads } * QUAD_BYTES;
    // Scratch tiles, three groups deep: group g's weights are unpacked while group g − 1's
    // tiles multiply, and its sums are read two groups after the tile store that wrote them (a
    // tile load does not take data from stores still in flight, nor a vector load from a tile
    // store, and a tile store waits for its product).
    let mut unpacked = Aligned([[[0u8; QUAD_BYTES]; GROUP_QUADS]; 2]);
    let mut sums = Aligned([[[0i32; PANEL_ROWS]; TILE_TOKENS]; 2]);
    let mut acc = [_mm512_setzero_ps(); TILE_TOKENS];
    let (bias_sums, scales, act_sums) = (
        xs[0].bias_sums.as_ptr(),
        xs[0].scales.as_ptr(),
        xs[0].sums.as_ptr(),
    );
    let codes = w.codes.as_ptr();
    // The weight tile of group g: in place (byte codes) or unpacked into `unpacked[g % 2]`.
    let mut weights = |g: usize| {
        // SAFETY: group g of the panel lies inside its codes (checked lengths).
        let at = unsafe { codes.add(g * group_bytes) };
        if prefetch {
            // The next panel's group g (an address past the matrix is never dereferenced).
            for line in (0..group_bytes).step_by(64) {
                let ahead = at.wrapping_add(panel_bytes + line);
                _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
            }
        }
        if NIBBLE {
            let rows = &mut unpacked.0[g % 2];
            // SAFETY: the group's quads / 2 blocks of 64 bytes, into as many pairs of rows.
            unsafe { unpack_group(at, &mut rows[..quads]) };
            rows.as_ptr().cast()
        } else {
            at
        }
    };
    let mut next = weights(0);
    for g in 0..groups + 2 {
        // Multiply group g into the sum tile of its parity; store group g − 1's.
        let stored = sums.0[(g + 1) % 2].as_mut_ptr().cast::<i32>();
        // SAFETY: token t's codes of group g are `group` bytes at `t · cols + g · group` of the
        // tokens' contiguous codes; the weight tile is `quads` rows of 64 bytes at `next`; a
        // sum tile is `TILE_TOKENS` rows of 64 bytes of `sums`.
        unsafe {
            if g < groups {
                let acts = xs[0].qs.as_ptr().add(g * group);
                tile_products(g % 2 == 1, acts, cols, next, stored);
            } else if g == groups {
                store_sums(g % 2 == 1, stored);
            }
        }
        if g + 1 < groups {
            next = weights(g + 1);
        }
        let Some(g) = g.checked_sub(2) else { continue };
        let at = g * PANEL_ROWS;
        // SAFETY: the panel's 16 scales (offsets) of group g: inside the checked slices.
        let s = unsafe { params16::<HALF>(w.scales.as_ptr(), at) };
        let o = w
            .offsets
            .map(|o| unsafe { params16::<HALF>(o.as_ptr(), at) });
        // Written out token by token (a loop of 16 stays a loop, and its accumulators in memory).
        macro_rules! token {
            ($($t:literal)*) => {$(
                {
                    // SAFETY: 16 sums of a [i32; 16]; token t's group terms at t · groups + g.
                    unsafe {
                        let sum = _mm512_load_si512(sums.0[g % 2][$t].as_ptr().cast());
                        let int = if biased {
                            let bias = _mm512_set1_epi32(*bias_sums.add($t * groups + g));
                            _mm512_add_epi32(sum, bias)
                        } else {
                            sum
                        };
                        let sd = _mm512_mul_ps(s, _mm512_set1_ps(*scales.add($t * groups + g)));
                        acc[$t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(int), sd, acc[$t]);
                        if let Some(o) = o {
                            let x = _mm512_set1_ps(*act_sums.add($t * groups + g));
                            acc[$t] = _mm512_fmadd_ps(o, x, acc[$t]);
                        }
                    }
                }
            )*};
        }
        token!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
    }
    for t in 0..TILE_TOKENS {
        // SAFETY: 16 floats into a [f32; 16].
        unsafe { _mm512_storeu_ps(dots[t].as_mut_ptr(), acc[t]) };
    }
}

/// Unpacks nibble blocks at `at` into `rows` (two rows, the low then the high nibbles, per
/// 64-byte block).
///
/// # Safety
/// `rows.len() / 2` blocks of 64 bytes lie at `at`.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn unpack_group(at: *const u8, rows: &mut [[u8; QUAD_BYTES]]) {
    for (i, pair) in rows.chunks_exact_mut(2).enumerate() {
        // SAFETY: block i, inside the caller's blocks.
        let block = unsafe { _mm512_loadu_si512(at.add(i * QUAD_BYTES).cast()) };
        for (k, row) in pair.iter_mut().enumerate() {
            // SAFETY: 64 bytes into a 64-byte row.
            unsafe { _mm512_storeu_si512(row.as_mut_ptr().cast(), unpack512::<true>(block, k)) };
        }
    }
}

/// Group g's products: loads the activation tile at `acts` (rows `stride` bytes apart) and the
/// weight tile at `weights` into the registers of g's parity (`odd`), multiplies them into that
/// parity's zeroed sum tile, and stores the other parity's sum tile (group g − 1's) at
/// `stored`. Registers: activations `tmm0`/`tmm1`, weights `tmm2`/`tmm3`, sums `tmm4`/`tmm5`
/// (even/odd), so a group's loads never wait for the previous group's product. A sum tile
/// keeps its contents from one of these blocks to the next: no Rust code compiles to tile
/// instructions, nothing else in the process touches the tiles between them, and the OS saves
/// them with the thread's state.
///
/// # Safety
/// AMX-INT8 configured as in [`panels_times_tokens`]; the tiles' memory lies where the
/// configuration says; the other parity's sum tile holds group g − 1's sums (or, for g = 0,
/// anything: its store only fills scratch).
#[inline(always)]
unsafe fn tile_products(
    odd: bool,
    acts: *const i8,
    stride: usize,
    weights: *const u8,
    stored: *mut i32,
) {
    let row = 4 * PANEL_ROWS;
    // SAFETY: the caller's contract.
    unsafe {
        if odd {
            asm!(
                "tileloadd tmm1, [{a} + {sa}]",
                "tileloadd tmm3, [{w} + {row}]",
                "tilezero tmm5",
                "tdpbsud tmm5, tmm1, tmm3",
                "tilestored [{s} + {row}], tmm4",
                a = in(reg) acts, sa = in(reg) stride, w = in(reg) weights, s = in(reg) stored,
                row = in(reg) row, options(nostack),
            )
        } else {
            asm!(
                "tileloadd tmm0, [{a} + {sa}]",
                "tileloadd tmm2, [{w} + {row}]",
                "tilezero tmm4",
                "tdpbsud tmm4, tmm0, tmm2",
                "tilestored [{s} + {row}], tmm5",
                a = in(reg) acts, sa = in(reg) stride, w = in(reg) weights, s = in(reg) stored,
                row = in(reg) row, options(nostack),
            )
        }
    }
}

/// Stores the last group's sum tile (of parity `!odd`, as [`tile_products`] would for a group
/// of parity `odd`) at `stored`.
///
/// # Safety
/// As [`tile_products`].
#[inline(always)]
unsafe fn store_sums(odd: bool, stored: *mut i32) {
    let row = 4 * PANEL_ROWS;
    // SAFETY: the caller's contract.
    unsafe {
        if odd {
            asm!("tilestored [{s} + {row}], tmm4", s = in(reg) stored, row = in(reg) row, options(nostack))
        } else {
            asm!("tilestored [{s} + {row}], tmm5", s = in(reg) stored, row = in(reg) row, options(nostack))
        }
    }
}
