//! Register-tiled `f16 × f32` matmul for several tokens at once (prefill) on AVX2 / AVX-512.
//!
//! The activations are packed once per call, token-interleaved (`lanes` tokens side by side for
//! each column), into a thread-local buffer. Each thread converts a panel of weight rows (12 on
//! AVX-512, 6 on AVX2) to f32 once with F16C, column-major, into thread-local scratch, and
//! multiplies it with every tile of `VECTORS × lanes` tokens: per column, one broadcast weight per
//! row times the token vectors, accumulated with FMA in `rows × VECTORS` registers. Work is split
//! over output rows, and over tokens too when the rows are few.
//!
//! Every output follows the 32-lane order of the row dots (`super` module docs), so a token gets
//! the same bits here as alone. The kernel sums one lane's columns (`j ≡ l (mod 32)`) for the
//! whole tile at a time — the token packing puts them in sequence (column `32k + l` at position
//! `l·cols/32 + k`, the tail columns after the body in order), the panel is read with a stride of
//! 32 columns — and folds the 32 lane sums of the tile as they come: visited in bit-reversed order,
//! adjacent ones merged on a stack, which is the halving tree. The tail columns then accumulate
//! onto the folded sums. Storing each lane's sums costs about 15% of the kernel's speed at 576
//! columns (less for wider rows): the price of batch-independent results.

use std::arch::x86_64::*;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, Ordering};

use half::f16;

use super::LANES;
use crate::isa::Isa;
use crate::order::bit_reverse;
use crate::pool::{atomic_f32_view, split_range, ThreadPool};

/// Token vectors per tile: with the panel rows this fills the register file.
const VECTORS: usize = 2;
/// Weight rows per panel on AVX-512 (12 × 2 accumulators of 32 zmm registers).
const AVX512_ROWS: usize = 12;
/// Weight rows per panel on AVX2 (6 × 2 accumulators of 16 ymm registers).
const AVX2_ROWS: usize = 6;
/// The largest tile (rows × tokens), for the accumulator spill buffer.
const MAX_TILE: usize = AVX512_ROWS * VECTORS * 16;

thread_local! {
    /// Token-interleaved activations of the current call (caller thread).
    static PACKED_X: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// One panel of weight rows converted to f32 (each worker thread).
    static PANEL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The per-ISA micro-kernel geometry.
#[derive(Clone, Copy)]
struct Geometry {
    /// f32 lanes per vector register (tokens per packed block).
    lanes: usize,
    /// Weight rows per panel.
    rows: usize,
}

/// Whether the tiled kernel beats repeated row dots for `batch` tokens on `isa` (it pads the
/// tokens to whole vectors).
pub(super) fn worthwhile(isa: Isa, batch: usize) -> bool {
    match isa {
        Isa::Avx512 => batch >= 32,
        Isa::Avx2 => batch >= 4,
        Isa::Scalar | Isa::Neon => false,
    }
}

/// `out[b·rows + r] = Σ_j w[r·cols + j] · x[b·cols + j]` (lengths checked by the caller, which
/// also made sure `isa` is supported). Returns false, touching nothing, for [`Isa::Scalar`].
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul(
    isa: Isa,
    w: &[f16],
    rows: usize,
    cols: usize,
    x: &[f32],
    batch: usize,
    out: &mut [f32],
    pool: &ThreadPool,
) -> bool {
    let geometry = match isa {
        Isa::Avx512 => Geometry {
            lanes: 16,
            rows: AVX512_ROWS,
        },
        Isa::Avx2 => Geometry {
            lanes: 8,
            rows: AVX2_ROWS,
        },
        Isa::Scalar | Isa::Neon => return false,
    };
    let lanes = geometry.lanes;
    let blocks = batch.div_ceil(lanes);
    let tiles = blocks.div_ceil(VECTORS);
    let panels = rows.div_ceil(geometry.rows);
    let row_chunks = pool.chunk_count(panels);
    let wanted = pool.chunk_count(usize::MAX);
    let token_parts = wanted.div_ceil(row_chunks).clamp(1, tiles);
    let out = atomic_f32_view(out);
    PACKED_X.with(|packed| {
        let mut packed = packed.borrow_mut();
        pack_tokens(x, cols, batch, lanes, &mut packed);
        let packed = &packed[..blocks * cols * lanes];
        pool.run(row_chunks * token_parts, &|chunk| {
            let (row_chunk, token_part) = (chunk / token_parts, chunk % token_parts);
            PANEL.with(|panel| {
                let mut panel = panel.borrow_mut();
                if panel.len() < geometry.rows * cols {
                    panel.resize(geometry.rows * cols, 0.0);
                }
                let panel = &mut panel[..geometry.rows * cols];
                for p in split_range(panels, row_chunks, row_chunk) {
                    let first_row = p * geometry.rows;
                    let count = geometry.rows.min(rows - first_row);
                    let block = &w[first_row * cols..(first_row + count) * cols];
                    pack_panel(block, cols, geometry.rows, panel);
                    for tile in split_range(tiles, token_parts, token_part) {
                        let first_block = tile * VECTORS;
                        let vectors = VECTORS.min(blocks - first_block);
                        let tokens = &packed[first_block * cols * lanes..];
                        let mut sums = [0f32; MAX_TILE];
                        tile_sums(isa, geometry, vectors, panel, cols, tokens, &mut sums);
                        let spot = Spot {
                            rows,
                            batch,
                            first_row,
                            row_count: count,
                            first_token: first_block * lanes,
                            tokens_per_row: vectors * lanes,
                        };
                        store_tile(&sums, spot, out);
                    }
                }
            });
        });
    });
    true
}

/// Where a tile's sums go in the output.
#[derive(Clone, Copy)]
struct Spot {
    rows: usize,
    batch: usize,
    first_row: usize,
    row_count: usize,
    first_token: usize,
    /// Sums per panel row in the spill buffer (valid or padding tokens).
    tokens_per_row: usize,
}

/// Writes the valid rows and tokens of a tile (`sums[r·tokens_per_row + t]`) into `out`.
fn store_tile(sums: &[f32], spot: Spot, out: &[AtomicU32]) {
    let token_count = spot.tokens_per_row.min(spot.batch - spot.first_token);
    for t in 0..token_count {
        // The tile's rows are contiguous in each token's output row.
        let start = (spot.first_token + t) * spot.rows + spot.first_row;
        let out_rows = &out[start..start + spot.row_count];
        for (r, slot) in out_rows.iter().enumerate() {
            slot.store(
                sums[r * spot.tokens_per_row + t].to_bits(),
                Ordering::Relaxed,
            );
        }
    }
}

/// Packs `x` (batch × cols) as blocks of `lanes` tokens: `packed[(blk·cols + p(j))·lanes + l] =
/// x[(blk·lanes + l)·cols + j]`, zero for tokens past `batch`, where the position `p(j)` is
/// lane-major for the body (`p(32k + l) = l·(body/32) + k`, so the kernel streams each lane's
/// columns in sequence) and `p(j) = j` for the tail.
fn pack_tokens(x: &[f32], cols: usize, batch: usize, lanes: usize, packed: &mut Vec<f32>) {
    let blocks = batch.div_ceil(lanes);
    let len = blocks * cols * lanes;
    if packed.len() < len {
        packed.resize(len, 0.0);
    }
    for (blk, block) in packed[..len].chunks_exact_mut(cols * lanes).enumerate() {
        for l in 0..lanes {
            let token = blk * lanes + l;
            if token < batch {
                let row = &x[token * cols..(token + 1) * cols];
                // Position by position: lane-major through the body, then the tail.
                let body = cols - cols % LANES;
                let mut slots = block[l..].iter_mut().step_by(lanes);
                if body > 0 {
                    for lane in 0..LANES {
                        // The row's values first: zip stops at their end without taking a slot.
                        let values = row[lane..body].iter().step_by(LANES);
                        for (&value, slot) in values.zip(&mut slots) {
                            *slot = value;
                        }
                    }
                }
                for (slot, &value) in slots.zip(&row[body..]) {
                    *slot = value;
                }
            } else {
                for j in 0..cols {
                    block[j * lanes + l] = 0.0;
                }
            }
        }
    }
}

/// Converts `block` (count × cols f16 rows, count ≤ `panel_rows`) to f32 column-major:
/// `panel[j·panel_rows + r] = block[r·cols + j]`, zero for rows past `count`, so the kernel finds
/// one column's weights side by side.
fn pack_panel(block: &[f16], cols: usize, panel_rows: usize, panel: &mut [f32]) {
    let count = block.len() / cols;
    assert!(count <= panel_rows && panel_rows <= AVX512_ROWS);
    assert!(panel.len() == panel_rows * cols);
    assert!(is_x86_feature_detected!("f16c") && is_x86_feature_detected!("avx"));
    if count < panel_rows {
        panel.fill(0.0);
    }
    // SAFETY: features checked (both SIMD tiers have F16C); the shapes it relies on are checked
    // above.
    unsafe { pack_panel_f16c(block, cols, count, panel_rows, panel) }
}

#[target_feature(enable = "avx,f16c")]
unsafe fn pack_panel_f16c(
    block: &[f16],
    cols: usize,
    count: usize,
    panel_rows: usize,
    panel: &mut [f32],
) {
    // Eight columns at a time: convert them in every row, then write each column's rows as one
    // contiguous run.
    let body = cols - cols % 8;
    let mut converted = [[0f32; 8]; AVX512_ROWS];
    for j in (0..body).step_by(8) {
        for (r, floats) in converted[..count].iter_mut().enumerate() {
            let halves = &block[r * cols + j..r * cols + j + 8];
            // SAFETY: `halves` holds 8 f16 (16 bytes), `floats` 8 f32.
            unsafe {
                let packed = _mm_loadu_si128(halves.as_ptr().cast());
                _mm256_storeu_ps(floats.as_mut_ptr(), _mm256_cvtph_ps(packed));
            }
        }
        for (i, column) in panel[j * panel_rows..(j + 8) * panel_rows]
            .chunks_exact_mut(panel_rows)
            .enumerate()
        {
            for (slot, floats) in column.iter_mut().zip(&converted[..count]) {
                *slot = floats[i];
            }
        }
    }
    for j in body..cols {
        let column = &mut panel[j * panel_rows..(j + 1) * panel_rows];
        for (r, slot) in column[..count].iter_mut().enumerate() {
            *slot = block[r * cols + j].to_f32();
        }
    }
}

/// Runs the `isa` micro-kernel for one tile of `vectors` (1 or [`VECTORS`]) token blocks.
fn tile_sums(
    isa: Isa,
    geometry: Geometry,
    vectors: usize,
    panel: &[f32],
    cols: usize,
    tokens: &[f32],
    sums: &mut [f32; MAX_TILE],
) {
    let Geometry { lanes, rows } = geometry;
    assert!(panel.len() >= rows * cols && tokens.len() >= vectors * cols * lanes);
    assert!((1..=VECTORS).contains(&vectors));
    if isa == Isa::Avx512 {
        assert!(lanes == 16 && rows == AVX512_ROWS);
        assert!(is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma"));
        // SAFETY: features checked; the kernel reads rows × cols panel floats, vectors × cols ×
        // 16 token floats and writes rows × vectors × 16 ≤ MAX_TILE sums (all checked above).
        unsafe {
            match vectors {
                1 => tile_avx512::<1>(panel, cols, tokens, sums),
                _ => tile_avx512::<VECTORS>(panel, cols, tokens, sums),
            }
        }
    } else {
        assert!(lanes == 8 && rows == AVX2_ROWS);
        assert!(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"));
        // SAFETY: as above with 8-float vectors and AVX2_ROWS rows.
        unsafe {
            match vectors {
                1 => tile_avx2::<1>(panel, cols, tokens, sums),
                _ => tile_avx2::<VECTORS>(panel, cols, tokens, sums),
            }
        }
    }
}

/// Bits of a lane index.
const LANE_BITS: u32 = LANES.trailing_zeros();

/// The body of both micro-kernels (`$vector` f32 lanes per register, `$rows` panel rows): the
/// tile's sums in the order of the module docs, written to `$sums[(r·V + v)·$width + l]`.
/// Per lane (visited in bit-reversed order) the `rows × V` accumulators start at zero and take
/// that lane's columns with one FMA each; the finished lane sums merge with the stack of folded
/// runs (adjacent pairs, as the halving tree pairs them); the tail columns then accumulate onto
/// the folded sums.
macro_rules! tile_body {
    ($vector:ty, $width:expr, $rows:expr, $zero:ident, $load:ident, $store:ident, $splat:ident,
     $fmadd:ident, $add:ident, $panel:ident, $cols:ident, $tokens:ident, $sums:ident, $v:ident) => {{
        let w = $panel.as_ptr();
        let t = $tokens.as_ptr();
        let zero: [[$vector; $v]; $rows] = [[$zero(); $v]; $rows];
        macro_rules! accumulate {
            // Columns `first, first + step, …` (`count` of them), whose tokens lie at positions
            // `position, position + 1, …`.
            ($acc:ident, $first:expr, $step:expr, $count:expr, $position:expr) => {
                for i in 0..$count {
                    let j: usize = $first + i * $step;
                    let p: usize = $position + i;
                    let mut xv = [$zero(); $v];
                    for v in 0..$v {
                        // SAFETY: p < cols, so (v·cols + p)·width + width <= V·cols·width <=
                        // tokens.len() (lengths checked by the caller).
                        xv[v] = unsafe { $load(t.add((v * $cols + p) * $width)) };
                    }
                    for r in 0..$rows {
                        // SAFETY: j < cols, so j·rows + r < rows·cols <= panel.len() (checked by
                        // the caller).
                        let wr = $splat(unsafe { *w.add(j * $rows + r) });
                        for v in 0..$v {
                            $acc[r][v] = $fmadd(wr, xv[v], $acc[r][v]);
                        }
                    }
                }
            };
        }
        let per_lane = $cols / LANES;
        let mut acc = zero;
        if per_lane > 0 {
            let mut stack = [zero; LANE_BITS as usize + 1];
            let mut depth = 0;
            for visit in 0..LANES {
                let lane = bit_reverse(visit, LANE_BITS);
                acc = zero;
                accumulate!(acc, lane, LANES, per_lane, lane * per_lane);
                let mut merged = visit + 1;
                while merged.is_multiple_of(2) {
                    depth -= 1;
                    for r in 0..$rows {
                        for v in 0..$v {
                            acc[r][v] = $add(stack[depth][r][v], acc[r][v]);
                        }
                    }
                    merged /= 2;
                }
                stack[depth] = acc;
                depth += 1;
            }
            acc = stack[0];
        }
        let body = per_lane * LANES;
        accumulate!(acc, body, 1, $cols - body, body);
        for r in 0..$rows {
            for v in 0..$v {
                // SAFETY: (r·V + v)·width + width <= rows·V·width <= MAX_TILE.
                unsafe { $store($sums.as_mut_ptr().add((r * $v + v) * $width), acc[r][v]) };
            }
        }
    }};
}

/// `sums[(r·V + v)·16 + l] = Σ_j panel[j·AVX512_ROWS + r] · tokens[(v·cols + p(j))·16 + l]`
/// (`p(j)` as in [`pack_tokens`]) in the order of the module docs.
#[target_feature(enable = "avx512f,fma")]
unsafe fn tile_avx512<const V: usize>(
    panel: &[f32],
    cols: usize,
    tokens: &[f32],
    sums: &mut [f32; MAX_TILE],
) {
    tile_body!(
        __m512,
        16,
        AVX512_ROWS,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_storeu_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps,
        _mm512_add_ps,
        panel,
        cols,
        tokens,
        sums,
        V
    )
}

/// `sums[(r·V + v)·8 + l] = Σ_j panel[j·AVX2_ROWS + r] · tokens[(v·cols + p(j))·8 + l]`
/// (`p(j)` as in [`pack_tokens`]) in the order of the module docs.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<const V: usize>(
    panel: &[f32],
    cols: usize,
    tokens: &[f32],
    sums: &mut [f32; MAX_TILE],
) {
    tile_body!(
        __m256,
        8,
        AVX2_ROWS,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        _mm256_set1_ps,
        _mm256_fmadd_ps,
        _mm256_add_ps,
        panel,
        cols,
        tokens,
        sums,
        V
    )
}
