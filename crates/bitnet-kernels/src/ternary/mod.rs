//! Ternary weight matrices in the kernels' packed layout, and their products with int8 activations.
//!
//! # Layout (2 bits per weight, codes `c = t + 1`: −1 → 0, 0 → 1, +1 → 2)
//! Rows are grouped into tiles of [`ROW_TILE`] = 4 rows (the last tile padded with zero rows); a
//! tile occupies `cols` bytes, so one kernel call streams one contiguous run of memory. Inside a
//! tile, each 256-column chunk `k` holds 4 × 64 bytes (row 0's 64 bytes, then row 1's, …); byte `b`
//! of a row's 64 holds columns `256k + 64s + b` at bit shift `2s` (s = 0..3). A trailing 128-column
//! chunk (when `cols % 256 == 128`) holds 4 × 32 bytes, byte `b` holding columns `32s + b` at shift
//! `2s`. So one 64-byte (or 32-byte) load, shifted by `2s` and masked with 3, gives the codes of 64
//! (32) consecutive columns, matching one contiguous load of activations.
//!
//! # Products
//! With codes, `D = Σ t·q = Σ c·q − Σ q`: the unsigned×signed byte dot (`vpdpbusd`, `pmaddubsw`)
//! over codes, minus the activation sum. [`TernaryMatrix::matmul`] returns the exact integer `D` for
//! every (token, row); [`TernaryMatrix::matmul_scaled`] returns `Σ_blocks D_block · s_block` in f32.
//! [`TernaryMatrix::bitlinear`] does the whole BitLinear (quantize, product, rescale).
//! Rows are split over the pool's threads; for batches, a row tile stays in L1 while it is applied
//! to several tokens at once (the weights are unpacked once per token group, not once per token).

mod bitlinear;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use bitlinear::BitLinearScratch;

use std::cell::RefCell;
use std::sync::atomic::Ordering;

use crate::error::KernelError;
use crate::isa::{active_isa, record, Isa, KernelId};
use crate::pool::{atomic_f32_view, atomic_i32_view, split_range, ThreadPool};

/// Rows per packed tile (and per kernel call).
pub const ROW_TILE: usize = 4;
/// `cols` must be a multiple of this.
pub const COL_GRANULARITY: usize = 128;
/// Columns of one full chunk (64 bytes per row).
const CHUNK_COLS: usize = 256;
/// Columns sharing one expanded block scale inside the kernels.
const GROUP_COLS: usize = 32;
/// Tokens whose activation sums are computed together (bounded stack buffer).
const TOKEN_BLOCK: usize = 64;
/// Lanes of the block-scaled summation order ([`crate::order`]): the term of quad `k` (columns
/// `4k..4k+4`, an exact integer dot times its group's scale) is fused into lane `k mod 16`, quads
/// in order, the lanes fold by the halving tree (`cols / 4` is a multiple of 16: no tail). One
/// AVX-512 register, or two AVX2 registers (lanes 0–7 and 8–15).
const SCALED_LANES: usize = 16;

/// Weight scales of a ternary matrix.
#[derive(Debug, Clone, PartialEq)]
pub enum Scales {
    /// One scale for the whole tensor (I2_S).
    PerTensor(f32),
    /// One scale per `block_len` consecutive weights in row-major order (`rows·cols/block_len`
    /// scales); `block_len` must be a multiple of 32 dividing `cols` (TQ2_0: 256, BitNet32: 32).
    PerBlock { block_len: usize, scales: Vec<f32> },
}

/// 64 bytes aligned to a cache line: the storage unit of the packed weights.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// A ternary matrix (`rows` outputs × `cols` inputs) packed for the kernels.
#[derive(Clone)]
pub struct TernaryMatrix {
    rows: usize,
    cols: usize,
    packed: Vec<Line>,
    scales: Scales,
    /// PerBlock only: each row's scale for every 32 columns (`rows_padded × cols/32`, zero in
    /// padding rows), the form the kernels consume.
    group_scales: Vec<f32>,
}

impl std::fmt::Debug for TernaryMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TernaryMatrix")
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("packed_bytes", &self.packed_len())
            .finish()
    }
}

/// Where the code of column `col` of row `r` (within its tile) lives: (byte in tile, bit shift).
fn code_position(r: usize, col: usize, cols: usize) -> (usize, u32) {
    let full = cols / CHUNK_COLS;
    let chunk = col / CHUNK_COLS;
    if chunk < full {
        let within = col % CHUNK_COLS;
        (
            chunk * CHUNK_COLS + r * 64 + within % 64,
            2 * (within / 64) as u32,
        )
    } else {
        let within = col - full * CHUNK_COLS;
        (
            full * CHUNK_COLS + r * 32 + within % 32,
            2 * (within / 32) as u32,
        )
    }
}

/// Writes the codes of one row (`r`-th of its tile) into the tile, a whole byte at a time: the
/// byte holding columns `base + step·s` (s = 0..3) gets code `t + 1` at shift `2s`.
fn pack_row(r: usize, values: &[i8], tile: &mut [u8]) {
    let cols = values.len();
    let code = |col: usize| (values[col] + 1) as u8;
    let full = cols / CHUNK_COLS;
    for chunk in 0..full {
        let base = chunk * CHUNK_COLS;
        let out = &mut tile[base + r * 64..base + r * 64 + 64];
        for (b, byte) in out.iter_mut().enumerate() {
            let col = base + b;
            *byte = code(col) | code(col + 64) << 2 | code(col + 128) << 4 | code(col + 192) << 6;
        }
    }
    if !cols.is_multiple_of(CHUNK_COLS) {
        let base = full * CHUNK_COLS;
        let out = &mut tile[base + r * 32..base + r * 32 + 32];
        for (b, byte) in out.iter_mut().enumerate() {
            let col = base + b;
            *byte = code(col) | code(col + 32) << 2 | code(col + 64) << 4 | code(col + 96) << 6;
        }
    }
}

impl TernaryMatrix {
    /// Packs row-major values in {−1, 0, 1} (`values[row * cols + col]`, row = output).
    pub fn from_values(
        rows: usize,
        cols: usize,
        values: &[i8],
        scales: Scales,
    ) -> Result<TernaryMatrix, KernelError> {
        if rows == 0 || cols == 0 {
            return Err(KernelError::EmptyShape { rows, cols });
        }
        if !cols.is_multiple_of(COL_GRANULARITY) {
            return Err(KernelError::ColsNotMultiple {
                cols,
                granularity: COL_GRANULARITY,
            });
        }
        let count = rows
            .checked_mul(cols)
            .ok_or(KernelError::EmptyShape { rows, cols })?;
        if values.len() != count {
            return Err(KernelError::LengthMismatch {
                what: "ternary values",
                expected: count,
                actual: values.len(),
            });
        }
        if let Some((index, &value)) = values
            .iter()
            .enumerate()
            .find(|(_, v)| !(-1..=1).contains(*v))
        {
            return Err(KernelError::NotTernary { index, value });
        }
        let tiles = rows.div_ceil(ROW_TILE);
        let rows_padded = tiles * ROW_TILE;
        let group_scales = match &scales {
            Scales::PerTensor(_) => Vec::new(),
            Scales::PerBlock { block_len, scales } => {
                let block_len = *block_len;
                if block_len == 0
                    || !block_len.is_multiple_of(GROUP_COLS)
                    || !cols.is_multiple_of(block_len)
                {
                    return Err(KernelError::BadBlockLen { block_len, cols });
                }
                if scales.len() != count / block_len {
                    return Err(KernelError::LengthMismatch {
                        what: "block scales",
                        expected: count / block_len,
                        actual: scales.len(),
                    });
                }
                let groups = cols / GROUP_COLS;
                let mut expanded = vec![0.0f32; rows_padded * groups];
                for row in 0..rows {
                    for g in 0..groups {
                        expanded[row * groups + g] =
                            scales[(row * cols + g * GROUP_COLS) / block_len];
                    }
                }
                expanded
            }
        };
        // Every code starts as 1 (weight 0): padding rows contribute nothing.
        let mut packed = vec![Line([0x55; 64]); tiles * cols / 64];
        let bytes = lines_as_bytes_mut(&mut packed);
        for (row, row_values) in values.chunks_exact(cols).enumerate() {
            let tile = &mut bytes[(row / ROW_TILE) * cols..(row / ROW_TILE + 1) * cols];
            pack_row(row % ROW_TILE, row_values, tile);
        }
        Ok(TernaryMatrix {
            rows,
            cols,
            packed,
            scales,
            group_scales,
        })
    }

    /// Output count.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input count.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The scales given at construction.
    pub fn scales(&self) -> &Scales {
        &self.scales
    }

    /// Bytes of packed weights one product streams (for bandwidth figures).
    pub fn packed_len(&self) -> usize {
        self.packed.len() * 64
    }

    /// The weight at (`row`, `col`) read back from the packed layout (`None` if out of range).
    pub fn value(&self, row: usize, col: usize) -> Option<i8> {
        if row >= self.rows || col >= self.cols {
            return None;
        }
        let (byte, shift) = code_position(row % ROW_TILE, col, self.cols);
        let code = (self.packed_bytes()[(row / ROW_TILE) * self.cols + byte] >> shift) & 3;
        Some(code as i8 - 1)
    }

    fn packed_bytes(&self) -> &[u8] {
        lines_as_bytes(&self.packed)
    }

    fn row_tiles(&self) -> usize {
        self.rows.div_ceil(ROW_TILE)
    }

    fn tile(&self, tile: usize) -> &[u8] {
        &self.packed_bytes()[tile * self.cols..(tile + 1) * self.cols]
    }

    fn check_operands(
        &self,
        isa: Isa,
        x_q: &[i8],
        batch: usize,
        out_len: usize,
    ) -> Result<(), KernelError> {
        if !isa.is_supported() {
            return Err(KernelError::IsaUnsupported { isa });
        }
        if x_q.len() != batch * self.cols {
            return Err(KernelError::LengthMismatch {
                what: "quantized activations (batch × cols)",
                expected: batch * self.cols,
                actual: x_q.len(),
            });
        }
        if out_len != batch * self.rows {
            return Err(KernelError::LengthMismatch {
                what: "output (batch × rows)",
                expected: batch * self.rows,
                actual: out_len,
            });
        }
        Ok(())
    }

    /// Exact integer products `out[b·rows + r] = Σ_j t[r][j] · x_q[b·cols + j]` for `batch` tokens
    /// (batch = 1 is the decode matvec). Needs [`Scales::PerTensor`].
    pub fn matmul(
        &self,
        x_q: &[i8],
        batch: usize,
        out: &mut [i32],
        pool: &ThreadPool,
    ) -> Result<(), KernelError> {
        self.matmul_with_isa(active_isa(), x_q, batch, out, pool)
    }

    /// [`TernaryMatrix::matmul`] on a chosen instruction set (for tests and benchmarks).
    pub fn matmul_with_isa(
        &self,
        isa: Isa,
        x_q: &[i8],
        batch: usize,
        out: &mut [i32],
        pool: &ThreadPool,
    ) -> Result<(), KernelError> {
        if !matches!(self.scales, Scales::PerTensor(_)) {
            return Err(KernelError::NeedsPerTensorScales);
        }
        self.check_operands(isa, x_q, batch, out.len())?;
        let out = atomic_i32_view(out);
        self.integer_products(isa, x_q, batch, pool, |index, d| {
            out[index].store(d, Ordering::Relaxed)
        });
        Ok(())
    }

    /// Computes every `D[b][r]` (operands already checked) and hands `(b·rows + r, D)` to `sink`,
    /// from whichever pool thread computed it.
    fn integer_products(
        &self,
        isa: Isa,
        x_q: &[i8],
        batch: usize,
        pool: &ThreadPool,
        sink: impl Fn(usize, i32) + Sync,
    ) {
        record(match (isa, batch) {
            (Isa::Scalar, 1) => KernelId::TernaryScalarMatvec,
            (Isa::Scalar, _) => KernelId::TernaryScalarMatmul,
            (Isa::Avx2, 1) => KernelId::TernaryAvx2Matvec,
            (Isa::Avx2, _) => KernelId::TernaryAvx2Matmul,
            (Isa::Avx512, 1) => KernelId::TernaryAvx512Matvec,
            (Isa::Avx512, _) => KernelId::TernaryAvx512Matmul,
        });
        let (rows, cols) = (self.rows, self.cols);
        let tiles = self.row_tiles();
        let chunks = pool.chunk_count(tiles);
        pool.run(chunks, &|chunk| {
            let my_tiles = split_range(tiles, chunks, chunk);
            for block_start in (0..batch).step_by(TOKEN_BLOCK) {
                let block_end = batch.min(block_start + TOKEN_BLOCK);
                let mut sums = [0i32; TOKEN_BLOCK];
                for (b, sum) in (block_start..block_end).zip(sums.iter_mut()) {
                    *sum = x_q[b * cols..(b + 1) * cols]
                        .iter()
                        .map(|&q| i32::from(q))
                        .sum();
                }
                for tile in my_tiles.clone() {
                    let weights = self.tile(tile);
                    let mut b = block_start;
                    while b < block_end {
                        let x = &x_q[b * cols..];
                        let (dots, n) = tile_code_dots(isa, weights, x, cols, block_end - b);
                        for (r, row_dots) in dots.iter().enumerate() {
                            let row = tile * ROW_TILE + r;
                            if row >= rows {
                                break;
                            }
                            for t in 0..n {
                                sink(
                                    (b + t) * rows + row,
                                    row_dots[t] - sums[b - block_start + t],
                                );
                            }
                        }
                        b += n;
                    }
                }
            }
        });
    }

    /// Scaled products in f32: `out[b·rows + r] = Σ_blocks D_block · s_block` (per-block scales)
    /// or `D · s` (per-tensor scale), `D` the integer dot as in [`TernaryMatrix::matmul`]. The
    /// activation scale is not applied.
    pub fn matmul_scaled(
        &self,
        x_q: &[i8],
        batch: usize,
        out: &mut [f32],
        pool: &ThreadPool,
    ) -> Result<(), KernelError> {
        self.matmul_scaled_with_isa(active_isa(), x_q, batch, out, pool)
    }

    /// [`TernaryMatrix::matmul_scaled`] on a chosen instruction set.
    pub fn matmul_scaled_with_isa(
        &self,
        isa: Isa,
        x_q: &[i8],
        batch: usize,
        out: &mut [f32],
        pool: &ThreadPool,
    ) -> Result<(), KernelError> {
        self.check_operands(isa, x_q, batch, out.len())?;
        if let Scales::PerTensor(scale) = self.scales {
            let out = atomic_f32_view(out);
            self.integer_products(isa, x_q, batch, pool, |index, d| {
                out[index].store((d as f32 * scale).to_bits(), Ordering::Relaxed)
            });
            return Ok(());
        }
        record(match isa {
            Isa::Scalar => KernelId::TernaryScalarBlockScaled,
            Isa::Avx2 => KernelId::TernaryAvx2BlockScaled,
            Isa::Avx512 => KernelId::TernaryAvx512BlockScaled,
        });
        let cols = self.cols;
        let quads = cols / 4;
        QUAD_SUMS.with(|cell| {
            let mut quad_sums = cell.borrow_mut();
            quad_sums.clear();
            quad_sums.extend(
                x_q.chunks_exact(4)
                    .map(|q| q.iter().map(|&v| i32::from(v)).sum::<i32>()),
            );
            let quad_sums = &quad_sums[..];
            let out = atomic_f32_view(out);
            let (rows, tiles) = (self.rows, self.row_tiles());
            let groups = cols / GROUP_COLS;
            let chunks = pool.chunk_count(tiles);
            pool.run(chunks, &|chunk| {
                for tile in split_range(tiles, chunks, chunk) {
                    let weights = self.tile(tile);
                    let scales = &self.group_scales
                        [tile * ROW_TILE * groups..(tile + 1) * ROW_TILE * groups];
                    for b in 0..batch {
                        let dots = tile_scaled_dots(
                            isa,
                            weights,
                            &x_q[b * cols..(b + 1) * cols],
                            &quad_sums[b * quads..(b + 1) * quads],
                            scales,
                        );
                        for (r, &dot) in dots.iter().enumerate() {
                            let row = tile * ROW_TILE + r;
                            if row < rows {
                                out[b * rows + row].store(dot.to_bits(), Ordering::Relaxed);
                            }
                        }
                    }
                }
            });
        });
        Ok(())
    }
}

thread_local! {
    /// Per-thread scratch for the activation sums of 4 consecutive columns (block-scaled path).
    static QUAD_SUMS: RefCell<Vec<i32>> = const { RefCell::new(Vec::new()) };
}

/// Raw code dots `Σ c·q` (indexed `[row][token]`) of one row tile for the widest token tile the
/// ISA supports (up to `remaining` tokens); returns them and the number of tokens done.
fn tile_code_dots(
    isa: Isa,
    weights: &[u8],
    x: &[i8],
    cols: usize,
    remaining: usize,
) -> ([[i32; 4]; ROW_TILE], usize) {
    fn widen<const T: usize>(dots: [[i32; T]; ROW_TILE]) -> [[i32; 4]; ROW_TILE] {
        let mut wide = [[0i32; 4]; ROW_TILE];
        for (w, d) in wide.iter_mut().zip(dots) {
            w[..T].copy_from_slice(&d);
        }
        wide
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => match remaining {
            4.. => (widen(x86::avx512::tile_code_dots::<4>(weights, x, cols)), 4),
            3 => (widen(x86::avx512::tile_code_dots::<3>(weights, x, cols)), 3),
            2 => (widen(x86::avx512::tile_code_dots::<2>(weights, x, cols)), 2),
            _ => (widen(x86::avx512::tile_code_dots::<1>(weights, x, cols)), 1),
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => match remaining {
            2.. => (widen(x86::avx2::tile_code_dots::<2>(weights, x, cols)), 2),
            _ => (widen(x86::avx2::tile_code_dots::<1>(weights, x, cols)), 1),
        },
        _ => match remaining {
            4.. => (widen(scalar::tile_code_dots::<4>(weights, x, cols)), 4),
            _ => (widen(scalar::tile_code_dots::<1>(weights, x, cols)), 1),
        },
    }
}

/// `Σ_groups (Σ c·q − Σ q) · s_group` for the 4 rows of one tile and one token.
fn tile_scaled_dots(
    isa: Isa,
    weights: &[u8],
    x: &[i8],
    quad_sums: &[i32],
    scales: &[f32],
) -> [f32; ROW_TILE] {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => x86::avx512::tile_scaled_dots(weights, x, quad_sums, scales),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => x86::avx2::tile_scaled_dots(weights, x, quad_sums, scales),
        _ => scalar::tile_scaled_dots(weights, x, quad_sums, scales),
    }
}

fn lines_as_bytes(lines: &[Line]) -> &[u8] {
    // SAFETY: `Line` is `repr(C)` around `[u8; 64]` with no padding (size 64), so the lines are
    // `64 · len` initialised bytes.
    unsafe { std::slice::from_raw_parts(lines.as_ptr().cast::<u8>(), lines.len() * 64) }
}

fn lines_as_bytes_mut(lines: &mut [Line]) -> &mut [u8] {
    // SAFETY: as in `lines_as_bytes`; the exclusive borrow carries over.
    unsafe { std::slice::from_raw_parts_mut(lines.as_mut_ptr().cast::<u8>(), lines.len() * 64) }
}
