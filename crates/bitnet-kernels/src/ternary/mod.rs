//! Ternary weight matrices in the kernels' packed layouts, and their products with int8 activations.
//!
//! A matrix stores its weights in exactly one of two layouts ([`TernaryLayout`]), both built from
//! codes `c = t + 1` (−1 → 0, 0 → 1, +1 → 2) in row tiles of [`ROW_TILE`] = 4 rows (the last tile
//! padded with zero rows). [`TernaryMatrix::from_values`] picks trit5 when the scales are
//! per-tensor, the active ISA is AVX-512 and the CPU has AVX-512 VBMI (the decode kernel's byte
//! lookups), and the 2-bit layout otherwise; [`TernaryMatrix::from_values_with_layout`] takes the
//! layout explicitly.
//!
//! # 2-bit layout (2 bits per weight)
//! Rows are grouped into tiles of [`ROW_TILE`] = 4 rows (the last tile padded with zero rows); a
//! tile occupies `cols` bytes, so one kernel call streams one contiguous run of memory. Inside a
//! tile, each 256-column chunk `k` holds 4 × 64 bytes (row 0's 64 bytes, then row 1's, …); byte `b`
//! of a row's 64 holds columns `256k + 64s + b` at bit shift `2s` (s = 0..3). A trailing 128-column
//! chunk (when `cols % 256 == 128`) holds 4 × 32 bytes, byte `b` holding columns `32s + b` at shift
//! `2s`. So one 64-byte (or 32-byte) load, shifted by `2s` and masked with 3, gives the codes of 64
//! (32) consecutive columns, matching one contiguous load of activations.
//!
//! # Trit5 layout (5 weights per byte, 1.6 bits per weight: 20% fewer bytes streamed per token)
//! Inside a tile, each 320-column chunk `k` holds 4 × 64 bytes (row 0's 64 bytes, then row 1's,
//! …); byte `b` of a row's 64 holds the codes of columns `320k + 64s + b` (s = 0..5) as
//! `84·c_4 + Σ_{s<4} c_s · 3^s` (at most 248; 84 so that `c_4` is a function of the byte's top 6
//! bits). A tile takes `256 · ceil(cols / 320)` bytes: the last chunk
//! may hold only `m = (cols mod 320) / 64` streams, the missing ones stored as code 1 (weight 0)
//! and never multiplied (no activation past `cols` is read). Decode and batched decode (up to 15
//! tokens) decode the codes with byte table lookups (AVX-512 VBMI `vpermi2b` / `vpermb`: codes 0–3
//! as 2-bit fields of one lookup, code 4 from another), then shifts and masks, straight
//! into `vpdpbusd`, each row's bytes once per group of up to 8 tokens (5–8 tokens two rows at a
//! time, so that 16 accumulators leave registers for the decoding); larger batches and the other
//! ISAs first unpack a tile into the 2-bit layout (a per-thread buffer) and run the 2-bit kernels
//! on it, so a tile is unpacked once per group of up to 128 tokens (`TOKEN_BLOCK`; the AVX-512
//! kernel takes such a group in one call).
//!
//! # The 2-bit copy for batched decode
//! [`TernaryMatrix::keep_two_bit_copy`] makes a trit5 matrix also hold its weights at 2 bits
//! each, which every product of 2 or more tokens on AVX-512 (and the scalar reference) then reads
//! (one token still streams the trit5 bytes): the byte lookups that decode trit5 cost more than
//! 2-bit fields once a row's bytes serve several tokens, and batched products are bound by
//! instructions, not by memory. For servers and batched runs (the copy adds 25% of the trit5
//! bytes). Host B (Zen 4), 8 tokens over 6912 × 2560 (`ternary_matmul_b8_t2`): 2-bit 398 G
//! MACs/s, trit5 332; 2B-4T with 8 sequences in flight +6.7% (median of 6 interleaved rounds,
//! docs/PERFORMANCE.md).
//!
//! The copy interleaves a tile's rows: byte `j` of a tile (`cols` bytes) holds column `j`'s codes
//! of the 4 rows, row `r` at bit shift `2r`. One 64-byte load and one mask per row then give 4
//! rows' codes of 64 consecutive columns, with no shifts: row `r`'s masked codes are `4^r · c`
//! (at most 128, still an unsigned byte), its sums `4^r` times its code dots, and an arithmetic
//! shift by `2r` ends each exactly (the sums stay within `i32` up to [`INTERLEAVED_MAX_COLS`]).
//! The 2-bit layout's kernel spends 3 shifts and 4 masks per 64 bytes. Host D (Intel), 8 tokens,
//! 2 threads: q, k and v together (`bitlinear_qkv_b8_t2`) 188–212 → 165–199 µs, 6912 × 2560
//! 333–423 → 298–360 µs. The integer sums, and so every output, are the same.
//!
//! Decode speed (Zen 5, one core, cache-warm): ~185 G weights/s over trit5 against ~220 G/s over
//! 2-bit, so trit5 pays off where weights stream from DRAM at under ~36 GB/s per core (it reads
//! 20% fewer bytes); see `benches/ternary.rs`.
//!
//! # Products
//! With codes, `D = Σ t·q = Σ c·q − Σ q`: the unsigned×signed byte dot (`vpdpbusd`, `pmaddubsw`)
//! over codes, minus the activation sum. [`TernaryMatrix::matmul`] returns the exact integer `D` for
//! every (token, row); [`TernaryMatrix::matmul_scaled`] returns `Σ_blocks D_block · s_block` in f32.
//! [`TernaryMatrix::bitlinear`] does the whole BitLinear (quantize, product, rescale);
//! [`TernaryMatrix::bitlinear_several`] several over one input (q, k, v) in one pool run, the
//! input quantized once (`bitlinear_qkv_b8_t2` on host B: 233 µs alone, 205 µs together).
//! Rows are split over the pool's threads; for batches, a row tile stays in L1 while it is applied
//! to several tokens at once (the weights are unpacked once per token group, not once per token).

mod bitlinear;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;
mod scalar;
mod trit5;
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
/// Tokens applied to one (unpacked) tile together: 2B-4T prefill on host B (Zen 4), interleaved,
/// 7 rounds: pp128 +4% (ahead in every round) and pp512 +3% with 128 against 64 (a trit5 tile
/// unpacked half as often); 256 was no better than 128.
const TOKEN_BLOCK: usize = 128;
/// Most tokens a trit5 product decodes straight from the packed bytes (batched decode); more
/// (prefill) unpack each tile to the 2-bit layout once per [`TOKEN_BLOCK`] tokens instead.
const DIRECT_TRIT5_TOKENS: usize = 15;
/// Bytes at the start of each thread's share of a matrix requested at once (see
/// `integer_products`).
const CHUNK_PREFETCH_BYTES: usize = 8192;

/// Most matrices one pool run takes together (a layer's q, k and v).
pub const MAX_MATRICES_PER_RUN: usize = 3;

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

/// How a [`TernaryMatrix`] stores its weights (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TernaryLayout {
    /// 4 weights per byte; every kernel reads it directly.
    TwoBit,
    /// 5 weights per byte (base 3); needs [`Scales::PerTensor`]. The one-token product on
    /// AVX-512 VBMI reads it directly, everything else unpacks one tile at a time.
    Trit5,
}

impl TernaryLayout {
    /// The layout [`TernaryMatrix::from_values`] picks for these scales on this CPU and active
    /// ISA: trit5 for per-tensor scales on AVX-512 with VBMI, 2-bit otherwise.
    pub fn preferred(scales: &Scales) -> TernaryLayout {
        if matches!(scales, Scales::PerTensor(_)) && active_isa() == Isa::Avx512 && vbmi_present() {
            TernaryLayout::Trit5
        } else {
            TernaryLayout::TwoBit
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn vbmi_present() -> bool {
    x86::avx512_vbmi::features_present()
}

#[cfg(not(target_arch = "x86_64"))]
fn vbmi_present() -> bool {
    false
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
    layout: TernaryLayout,
    packed: Vec<Line>,
    scales: Scales,
    /// PerBlock only: each row's scale for every 32 columns (`rows_padded × cols/32`, zero in
    /// padding rows), the form the kernels consume.
    group_scales: Vec<f32>,
    /// The same weights at 2 bits each with the tile's rows interleaved, for products of 2 or
    /// more tokens (see [`TernaryMatrix::keep_two_bit_copy`]).
    two_bit_copy: Option<Box<TernaryMatrix>>,
    /// Set on that copy only: byte `c` of a tile holds column `c`'s codes of the tile's 4 rows,
    /// row `r` at bit shift `2r` (the module documentation's "2-bit copy"); `layout` then says
    /// `TwoBit` (2 bits per weight, `cols` bytes per tile).
    rows_interleaved: bool,
}

impl std::fmt::Debug for TernaryMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TernaryMatrix")
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("layout", &self.layout)
            .field("packed_bytes", &self.packed_len())
            .field("two_bit_copy", &self.two_bit_copy.is_some())
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
    /// Packs row-major values in {−1, 0, 1} (`values[row * cols + col]`, row = output) in the
    /// layout [`TernaryLayout::preferred`] picks.
    pub fn from_values(
        rows: usize,
        cols: usize,
        values: &[i8],
        scales: Scales,
    ) -> Result<TernaryMatrix, KernelError> {
        let layout = TernaryLayout::preferred(&scales);
        TernaryMatrix::from_values_with_layout(rows, cols, values, scales, layout)
    }

    /// [`TernaryMatrix::from_values`] in a chosen layout (for tests and benchmarks); trit5 with
    /// per-block scales is [`KernelError::NeedsPerTensorScales`].
    pub fn from_values_with_layout(
        rows: usize,
        cols: usize,
        values: &[i8],
        scales: Scales,
        layout: TernaryLayout,
    ) -> Result<TernaryMatrix, KernelError> {
        if layout == TernaryLayout::Trit5 && !matches!(scales, Scales::PerTensor(_)) {
            return Err(KernelError::NeedsPerTensorScales);
        }
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
        type PackRow = fn(usize, &[i8], &mut [u8]);
        let (tile_bytes, zero_byte, pack): (usize, u8, PackRow) = match layout {
            TernaryLayout::TwoBit => (cols, 0x55, pack_row),
            TernaryLayout::Trit5 => (trit5::tile_bytes(cols), trit5::ZERO_BYTE, trit5::pack_row),
        };
        let mut packed = vec![Line([zero_byte; 64]); tiles * tile_bytes / 64];
        let bytes = lines_as_bytes_mut(&mut packed);
        for (row, row_values) in values.chunks_exact(cols).enumerate() {
            let tile = row / ROW_TILE;
            pack(
                row % ROW_TILE,
                row_values,
                &mut bytes[tile * tile_bytes..(tile + 1) * tile_bytes],
            );
        }
        Ok(TernaryMatrix {
            rows,
            cols,
            layout,
            packed,
            scales,
            group_scales,
            two_bit_copy: None,
            rows_interleaved: false,
        })
    }

    /// For batched decode: a trit5 matrix also keeps its weights at 2 bits each, the tile's 4
    /// rows interleaved, and every product of 2 or more tokens on AVX-512 (and the scalar
    /// reference) reads that copy (the same integer sums, fewer instructions; see the module
    /// documentation). Adds 25% of the trit5 bytes; a 2-bit matrix is unchanged, and so is a
    /// matrix too wide for the copy's 32-bit sums ([`INTERLEAVED_MAX_COLS`]).
    pub fn keep_two_bit_copy(&mut self) {
        if self.layout != TernaryLayout::Trit5
            || self.two_bit_copy.is_some()
            || self.cols > INTERLEAVED_MAX_COLS
        {
            return;
        }
        let (cols, tiles) = (self.cols, self.row_tiles());
        let vbmi = vbmi_present();
        let mut packed = vec![Line([0; 64]); tiles * cols / 64];
        let mut two_bit = vec![0u8; cols];
        for (tile, out) in lines_as_bytes_mut(&mut packed)
            .chunks_exact_mut(cols)
            .enumerate()
        {
            unpack_trit5_tile(vbmi, self.tile(tile), cols, &mut two_bit);
            interleave_rows(&two_bit, out);
        }
        self.two_bit_copy = Some(Box::new(TernaryMatrix {
            rows: self.rows,
            cols,
            layout: TernaryLayout::TwoBit,
            packed,
            scales: self.scales.clone(),
            group_scales: Vec::new(),
            two_bit_copy: None,
            rows_interleaved: true,
        }));
    }

    /// Bytes of the 2-bit copy kept for batched products (0 without one).
    pub fn two_bit_copy_len(&self) -> usize {
        self.two_bit_copy
            .as_ref()
            .map_or(0, |copy| copy.packed_len())
    }

    /// Output count.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input count.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// How the weights are stored.
    pub fn layout(&self) -> TernaryLayout {
        self.layout
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
        let tile = self.tile(row / ROW_TILE);
        let code = match self.layout {
            TernaryLayout::TwoBit => {
                let (byte, shift) = code_position(row % ROW_TILE, col, self.cols);
                (tile[byte] >> shift) & 3
            }
            TernaryLayout::Trit5 => {
                let (byte, stream) = trit5::code_position_trit5(row % ROW_TILE, col);
                trit5::DIGITS.0[stream][usize::from(tile[byte])]
            }
        };
        Some(code as i8 - 1)
    }

    fn packed_bytes(&self) -> &[u8] {
        lines_as_bytes(&self.packed)
    }

    fn row_tiles(&self) -> usize {
        self.rows.div_ceil(ROW_TILE)
    }

    /// Bytes of one row tile in this matrix's layout.
    fn tile_bytes(&self) -> usize {
        match self.layout {
            TernaryLayout::TwoBit => self.cols,
            TernaryLayout::Trit5 => trit5::tile_bytes(self.cols),
        }
    }

    fn tile(&self, tile: usize) -> &[u8] {
        let len = self.tile_bytes();
        &self.packed_bytes()[tile * len..(tile + 1) * len]
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
        self.integer_products(isa, x_q, batch, pool, |_, index, d, valid| {
            for (slot, d) in out[index..index + valid].iter().zip(d) {
                slot.store(d, Ordering::Relaxed)
            }
        });
        Ok(())
    }

    /// Computes every `D[b][r]` (operands already checked) and hands them to `sink` a row tile at
    /// a time, from whichever pool thread computed them: `(b, b·rows + r, [D[b][r + i]; 4],
    /// valid)` for the tile's first row `r`, only the first `valid` of the 4 being rows of the
    /// matrix (the last tile may be padded).
    fn integer_products(
        &self,
        isa: Isa,
        x_q: &[i8],
        batch: usize,
        pool: &ThreadPool,
        sink: impl Fn(usize, usize, [i32; ROW_TILE], usize) + Sync,
    ) {
        TernaryMatrix::integer_products_several(&[self], isa, x_q, batch, pool, |_, b, i, d, v| {
            sink(b, i, d, v)
        });
    }

    /// [`TernaryMatrix::integer_products`] of several matrices with the same columns over the same
    /// activations (a layer's q, k and v): one pool run over all their row tiles, the activation
    /// sums taken once; `sink` also gets the matrix's index in `matrices`.
    fn integer_products_several(
        matrices: &[&TernaryMatrix],
        isa: Isa,
        x_q: &[i8],
        batch: usize,
        pool: &ThreadPool,
        sink: impl Fn(usize, usize, usize, [i32; ROW_TILE], usize) + Sync,
    ) {
        assert!(
            matrices.len() <= MAX_MATRICES_PER_RUN,
            "checked by the callers"
        );
        // A product of 2 or more tokens reads a matrix's 2-bit copy where it has one, on the ISAs
        // with a kernel for its interleaved rows (AVX-512 and the scalar reference; AVX2 keeps
        // unpacking the trit5 tiles).
        let reads_copy = batch >= 2 && matches!(isa, Isa::Avx512 | Isa::Scalar);
        let matrices = matrices.iter().map(|m| match &m.two_bit_copy {
            Some(copy) if reads_copy => &**copy,
            _ => *m,
        });
        let mut plans = [None; MAX_MATRICES_PER_RUN];
        let mut total_tiles = 0;
        for (slot, m) in plans.iter_mut().zip(matrices) {
            *slot = Some((m, m.products_kernel(isa, batch), total_tiles));
            total_tiles += m.row_tiles();
        }
        let Some(cols) = plans[0].map(|(m, ..)| m.cols) else {
            return;
        };
        // The activation sums below are per token of `cols` codes, one for every matrix.
        assert!(
            plans.iter().flatten().all(|(m, ..)| m.cols == cols),
            "checked by the callers"
        );
        let chunks = pool.chunk_count(total_tiles);
        // Each token's activation sum, once per call (not once per chunk or matrix).
        let mut token_sums = ACTIVATION_SUMS.with(|cell| cell.take());
        token_sums.clear();
        token_sums.extend(
            x_q.chunks_exact(cols)
                .take(batch)
                .map(|x| x.iter().map(|&q| i32::from(q)).sum::<i32>()),
        );
        let token_sums_ref = &token_sums;
        pool.run(chunks, &|chunk| {
            let mine = split_range(total_tiles, chunks, chunk);
            for (index, &(m, direct, first_tile)) in plans.iter().flatten().enumerate() {
                let start = mine.start.max(first_tile) - first_tile;
                let end = mine
                    .end
                    .min(first_tile + m.row_tiles())
                    .saturating_sub(first_tile);
                if start < end {
                    m.tile_range_products(
                        isa,
                        direct,
                        x_q,
                        batch,
                        token_sums_ref,
                        start..end,
                        &|b, i, d, v| sink(index, b, i, d, v),
                    );
                }
            }
        });
        ACTIVATION_SUMS.with(|cell| cell.set(token_sums));
    }

    /// Records the product kernel this matrix runs for `batch` tokens on `isa`, and returns
    /// whether it reads trit5 bytes directly (VBMI).
    fn products_kernel(&self, isa: Isa, batch: usize) -> bool {
        let trit5 = self.layout == TernaryLayout::Trit5;
        // Decode and batched decode (up to DIRECT_TRIT5_TOKENS tokens) read trit5 bytes directly
        // on VBMI; every other trit5 product (prefill, other ISAs) unpacks each tile to the 2-bit
        // layout once per TOKEN_BLOCK tokens (with VBMI when the AVX-512 tier is asked for).
        let direct = trit5 && isa == Isa::Avx512 && vbmi_present() && batch <= DIRECT_TRIT5_TOKENS;
        record(match (isa, batch) {
            (Isa::Avx512, 1) if direct => KernelId::TernaryAvx512VbmiMatvec,
            (Isa::Avx512, _) if direct => KernelId::TernaryAvx512VbmiMatmul,
            (Isa::Scalar, 1) => KernelId::TernaryScalarMatvec,
            (Isa::Scalar, _) => KernelId::TernaryScalarMatmul,
            (Isa::Avx2, 1) => KernelId::TernaryAvx2Matvec,
            (Isa::Avx2, _) => KernelId::TernaryAvx2Matmul,
            (Isa::Avx512, 1) => KernelId::TernaryAvx512Matvec,
            (Isa::Avx512, _) => KernelId::TernaryAvx512Matmul,
            (Isa::Neon, 1) => KernelId::TernaryNeonMatvec,
            (Isa::Neon, _) => KernelId::TernaryNeonMatmul,
        });
        direct
    }

    /// The products of row tiles `my_tiles` (one pool chunk's share), handed to `sink` as in
    /// [`TernaryMatrix::integer_products`]; `direct` as [`TernaryMatrix::products_kernel`] said.
    #[allow(clippy::too_many_arguments)]
    fn tile_range_products<S: Fn(usize, usize, [i32; ROW_TILE], usize) + Sync>(
        &self,
        isa: Isa,
        direct: bool,
        x_q: &[i8],
        batch: usize,
        token_sums: &[i32],
        my_tiles: std::ops::Range<usize>,
        sink: &S,
    ) {
        let (rows, cols) = (self.rows, self.cols);
        let trit5 = self.layout == TernaryLayout::Trit5;
        let vbmi = trit5 && isa == Isa::Avx512 && vbmi_present();
        // Start this share's weight stream at once: the kernels prefetch ahead of the bytes they
        // read, so without this the first lines of every share arrive one miss at a time.
        if let Some(first) = my_tiles.clone().next() {
            let start = first * self.tile_bytes();
            let end = (my_tiles.end * self.tile_bytes()).min(start + CHUNK_PREFETCH_BYTES);
            crate::memory::prefetch_lines(&self.packed_bytes()[start..end]);
        }
        UNPACKED_TILE.with(|cell| {
            let mut unpacked = cell.borrow_mut();
            if trit5 && !direct && unpacked.len() < cols / 64 {
                unpacked.resize(cols / 64, Line([0; 64]));
            }
            let mut block_dots = [[0i32; ROW_TILE]; TOKEN_BLOCK];
            for block_start in (0..batch).step_by(TOKEN_BLOCK) {
                let block_end = batch.min(block_start + TOKEN_BLOCK);
                let sums = &token_sums[block_start..block_end];
                if direct && block_end - block_start == 1 {
                    // One token: the share's tiles in runs through one kernel call each.
                    let x = &x_q[block_start * cols..(block_start + 1) * cols];
                    let tile_len = self.tile_bytes();
                    for run in my_tiles.clone().step_by(RUN_TILES) {
                        let run_end = my_tiles.end.min(run + RUN_TILES);
                        let mut dots = [0i32; RUN_TILES * ROW_TILE];
                        let dots = &mut dots[..(run_end - run) * ROW_TILE];
                        let weights = &self.packed_bytes()[run * tile_len..run_end * tile_len];
                        trit5_run_code_dots_vbmi(weights, x, cols, dots);
                        for (i, dots) in dots.chunks_exact(ROW_TILE).enumerate() {
                            let row = (run + i) * ROW_TILE;
                            let d = std::array::from_fn(|r| dots[r] - sums[0]);
                            let valid = ROW_TILE.min(rows - row);
                            sink(block_start, block_start * rows + row, d, valid);
                        }
                    }
                    continue;
                }
                for tile in my_tiles.clone() {
                    // `dots[t]`: token `block_start + t`'s code dots of the tile's 4 rows.
                    let dots = &mut block_dots[..block_end - block_start];
                    if direct {
                        let mut t = 0;
                        while t < dots.len() {
                            let x = &x_q[(block_start + t) * cols..];
                            let (tile_dots, n) =
                                trit5_code_dots_vbmi(self.tile(tile), x, cols, dots.len() - t);
                            for (i, out) in dots[t..t + n].iter_mut().enumerate() {
                                *out = std::array::from_fn(|r| tile_dots[r][i]);
                            }
                            t += n;
                        }
                    } else {
                        let weights = if trit5 {
                            let out = &mut lines_as_bytes_mut(&mut unpacked)[..cols];
                            unpack_trit5_tile(vbmi, self.tile(tile), cols, out);
                            &*out
                        } else {
                            self.tile(tile)
                        };
                        let x = &x_q[block_start * cols..];
                        tile_block_code_dots(isa, self.rows_interleaved, weights, x, cols, dots);
                    }
                    let row = tile * ROW_TILE;
                    let valid = ROW_TILE.min(rows - row);
                    for (t, dots) in dots.iter().enumerate() {
                        let b = block_start + t;
                        let d = dots.map(|d| d - sums[t]);
                        sink(b, b * rows + row, d, valid);
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
            self.integer_products(isa, x_q, batch, pool, |_, index, d, valid| {
                let y = d.map(|d| (d as f32 * scale).to_bits());
                for (slot, y) in out[index..index + valid].iter().zip(y) {
                    slot.store(y, Ordering::Relaxed)
                }
            });
            return Ok(());
        }
        record(match isa {
            Isa::Scalar => KernelId::TernaryScalarBlockScaled,
            Isa::Avx2 => KernelId::TernaryAvx2BlockScaled,
            Isa::Avx512 => KernelId::TernaryAvx512BlockScaled,
            Isa::Neon => KernelId::TernaryNeonBlockScaled,
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
    /// The caller's per-token activation sums of the current product (grown once, then reused).
    static ACTIVATION_SUMS: std::cell::Cell<Vec<i32>> = const { std::cell::Cell::new(Vec::new()) };
    /// Per-thread scratch: one trit5 tile unpacked to the 2-bit layout (grown once, then reused).
    static UNPACKED_TILE: RefCell<Vec<Line>> = const { RefCell::new(Vec::new()) };
}

/// Most tokens [`trit5_code_dots_vbmi`] does in one call.
const TRIT5_TOKEN_TILE: usize = 8;

/// Raw code dots `Σ c·q` (indexed `[row][token]`) of one trit5 row tile for up to 8 of the
/// `remaining` tokens, straight from the packed bytes (AVX-512 VBMI; callers check
/// [`vbmi_present`]); returns them and the number of tokens done. 5–8 tokens go two rows at a
/// time (16 accumulators at 8 tokens), fewer four rows at a time.
fn trit5_code_dots_vbmi(
    weights: &[u8],
    x: &[i8],
    cols: usize,
    remaining: usize,
) -> ([[i32; TRIT5_TOKEN_TILE]; ROW_TILE], usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use x86::avx512_vbmi::{tile_code_dots, tile_code_dots_row_pairs};
        fn widen<const T: usize>(
            dots: [[i32; T]; ROW_TILE],
        ) -> [[i32; TRIT5_TOKEN_TILE]; ROW_TILE] {
            dots.map(|row| std::array::from_fn(|t| if t < T { row[t] } else { 0 }))
        }
        match remaining {
            8.. => (widen(tile_code_dots_row_pairs::<8>(weights, x, cols)), 8),
            7 => (widen(tile_code_dots_row_pairs::<7>(weights, x, cols)), 7),
            6 => (widen(tile_code_dots_row_pairs::<6>(weights, x, cols)), 6),
            5 => (widen(tile_code_dots_row_pairs::<5>(weights, x, cols)), 5),
            4 => (widen(tile_code_dots::<4>(weights, x, cols)), 4),
            2 | 3 => (widen(tile_code_dots::<2>(weights, x, cols)), 2),
            _ => (widen(tile_code_dots::<1>(weights, x, cols)), 1),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (weights, x, cols, remaining);
        unreachable!("the AVX-512 VBMI kernel exists only on x86-64")
    }
}

/// Tiles per call of [`trit5_run_code_dots_vbmi`] (their sums fit a small stack array).
const RUN_TILES: usize = 16;

/// Raw code dots `Σ c·q` of the rows of consecutive trit5 tiles (`dots.len() / 4` of them, `dots`
/// indexed by row from the first tile's) for one token (AVX-512 VBMI; callers check
/// [`vbmi_present`]).
fn trit5_run_code_dots_vbmi(weights: &[u8], x: &[i8], cols: usize, dots: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    x86::avx512_vbmi::tile_run_code_dots(weights, x, cols, dots);
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (weights, x, cols, dots);
        unreachable!("the AVX-512 VBMI kernel exists only on x86-64")
    }
}

/// Rewrites one trit5 tile as the 2-bit tile of the same weights (`out`: `cols` bytes), with the
/// AVX-512 VBMI kernel when `vbmi`, else the scalar one.
fn unpack_trit5_tile(vbmi: bool, weights: &[u8], cols: usize, out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if vbmi {
        return x86::avx512_vbmi::unpack_tile(weights, cols, out);
    }
    let _ = vbmi;
    trit5::unpack_tile(weights, cols, out);
}

/// Raw code dots `Σ c·q` (indexed `[row][token]`) of one row tile for the widest token tile the
/// ISA supports (up to `remaining` tokens); returns them and the number of tokens done (AVX2,
/// NEON and scalar: the AVX-512 kernel takes a whole token block, see [`tile_block_code_dots`]).
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
        Isa::Avx2 => match remaining {
            2.. => (widen(x86::avx2::tile_code_dots::<2>(weights, x, cols)), 2),
            _ => (widen(x86::avx2::tile_code_dots::<1>(weights, x, cols)), 1),
        },
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => match remaining {
            4.. => (widen(neon::tile_code_dots::<4>(weights, x, cols)), 4),
            2 | 3 => (widen(neon::tile_code_dots::<2>(weights, x, cols)), 2),
            _ => (widen(neon::tile_code_dots::<1>(weights, x, cols)), 1),
        },
        _ => match remaining {
            4.. => (widen(scalar::tile_code_dots::<4>(weights, x, cols)), 4),
            _ => (widen(scalar::tile_code_dots::<1>(weights, x, cols)), 1),
        },
    }
}

/// `out[t] = [Σ_j c[r][j] · x[t·cols + j] for r in 0..4]`: raw code dots of one row tile for
/// `out.len()` consecutive tokens, the tile in the 2-bit layout or, with `rows_interleaved`, in
/// the copy's (byte `j` = column `j`'s 4 codes; AVX-512 and the scalar reference only).
fn tile_block_code_dots(
    isa: Isa,
    rows_interleaved: bool,
    weights: &[u8],
    x: &[i8],
    cols: usize,
    out: &mut [[i32; ROW_TILE]],
) {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        // One call per token block: the wrapper's per-call work, for every 4 tokens, was ~5% of
        // a 128-token prefill.
        return x86::avx512::tile_block_code_dots(rows_interleaved, weights, x, cols, out);
    }
    if rows_interleaved {
        return scalar::interleaved_tile_block_code_dots(weights, x, cols, out);
    }
    let mut b = 0;
    while b < out.len() {
        let (dots, n) = tile_code_dots(isa, weights, &x[b * cols..], cols, out.len() - b);
        for (t, out) in out[b..b + n].iter_mut().enumerate() {
            *out = std::array::from_fn(|r| dots[r][t]);
        }
        b += n;
    }
}

/// Widest matrix the interleaved copy takes: its row-3 codes are `64·c` (up to 128), so a
/// token's sum of `128 · 128` per column stays within `i32` up to 131072 columns; half of that.
pub const INTERLEAVED_MAX_COLS: usize = 65536;

/// Rewrites one tile of the 2-bit layout (`two_bit`, `cols` bytes) with its rows interleaved
/// (`out`, `cols` bytes): byte `c` of `out` holds column `c`'s code of row `r` at shift `2r`.
fn interleave_rows(two_bit: &[u8], out: &mut [u8]) {
    let cols = out.len();
    let full = cols / CHUNK_COLS;
    // A full chunk: row r's 64 bytes hold columns 64s + b at shift 2s; a whole-byte loop that
    // the compiler vectorises (2B-4T's 2 G weights are rewritten at load).
    for (src, dst) in two_bit
        .chunks_exact(CHUNK_COLS)
        .zip(out.chunks_exact_mut(CHUNK_COLS))
    {
        for (s, dst) in dst.chunks_exact_mut(64).enumerate() {
            for (b, byte) in dst.iter_mut().enumerate() {
                *byte = (0..ROW_TILE)
                    .map(|r| ((src[64 * r + b] >> (2 * s)) & 3) << (2 * r))
                    .fold(0, |acc, code| acc | code);
            }
        }
    }
    // The 128-column tail, column by column.
    let tail = full * CHUNK_COLS;
    for (col, byte) in out.iter_mut().enumerate().skip(tail) {
        *byte = (0..ROW_TILE)
            .map(|r| {
                let (byte, shift) = code_position(r, col, cols);
                ((two_bit[byte] >> shift) & 3) << (2 * r)
            })
            .fold(0, |acc, code| acc | code);
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
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => neon::tile_scaled_dots(weights, x, quad_sums, scales),
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
