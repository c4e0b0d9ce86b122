//! Block-quantized weights kept quantized in memory: [`CodeMatrix`] holds integer codes with one
//! scale (and, for the types that have one, one offset) per group of codes, so weight `e` of a
//! row is `scale[e/16] · code[e] + offset[e/16]` exactly (ggml's dequantized value;
//! `bitnet_quant::decode_int_codes` produces this form for Q4_0 … Q8_0 and Q2_K … Q6_K). Half a
//! byte per weight for 4-bit codes, one byte otherwise, instead of the two of F16, and products
//! on the integer units.
//!
//! # Layout (repacked at load)
//! Rows are cut into **panels** of [`PANEL_ROWS`] = 16 (the last one padded with zero rows).
//! Within a panel, for each 4 consecutive columns (a **quad**), the 16 rows' 4 codes lie together
//! (64 bytes), so one 64-byte load gives a `vpdpbusd` one lane per row, and the 4 activation
//! codes it pairs with are one broadcast 32-bit word. Codes are stored **unsigned**:
//! `u = code + bias`, with `bias = max(0, −min code)` of the matrix (8 for Q4_0, 16 for Q5_0, 32
//! for Q6_K, 0 for the types that add an offset); the bias comes back out exactly, as the integer
//! `bias · Σ q` of the activation group. The scale group is 32 codes when every pair of
//! 16-groups shares its scale and offset (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K), else 16
//! (Q2_K, Q3_K, Q6_K).
//!
//! **Nibble codes.** When every biased code of the matrix is ≤ 15 (Q4_0, Q4_1, Q2_K, Q3_K,
//! Q4_K), two quads share one 64-byte block: byte `4·row + k` of block `i` holds code `k` of quad
//! `2i` in its low nibble and code `k` of quad `2i + 1` in its high nibble (a group is a whole,
//! even number of quads, so a block never straddles two groups). The kernels unpack a block with
//! AND 0x0F and a shift right by 4, then run the same integer dots. Other matrices keep one
//! byte per code.
//!
//! **Half-precision parameters.** Scales and offsets lie per panel, then group, then row. When
//! every scale and offset of the matrix is finite and exactly an f16 (checked by a bit-exact
//! round trip; true for Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0, whose `d` and `m` are f16 in the file),
//! they are stored as f16 and widened on load, which is exact: the chain below sees the same
//! f32 values. Otherwise they stay f32. So Q4_1 streams 0.625 bytes per weight, as the file.
//!
//! Activations are quantized per token in blocks of 32 (`d = max|x| / 127` in f32,
//! `q = x · (1/d)` rounded half to even, 0 when d = 0), like ggml's Q8_0 but with an f32 scale.
//!
//! # Result (the same bits on every ISA and in every batch)
//! For a row and a token, with `G` the group size, `acc = +0.0` and, for each group `g` in order:
//! - `D = Σ_{e ∈ g} u[e] · q[e] − bias · Σ_{e ∈ g} q[e]` (an exact integer: `Σ code · q`);
//! - `acc = fma(D as f32, s[g] · d[g], acc)`, with `s[g] · d[g]` rounded to f32 (`d[g]` is the
//!   scale of the activation block holding group `g`);
//! - for rows with offsets, `acc = fma(offset[g], d[g] · (Σ_{e ∈ g} q[e] as f32), acc)`.
//!
//! The output is `acc`: one sequential chain per (row, token), which every kernel (scalar,
//! AVX2, AVX-512, NEON, and on CPUs with AMX-INT8 the AVX-512 tier's tile kernel for blocks of
//! 16 tokens, [`amx`]) computes for 16 rows at once in vector lanes, for every storage choice
//! above (one kernel per ISA, generic over them). Decode (1 token), batched decode and prefill
//! run the same micro-kernel over blocks of tokens that share each weight load, so a token's
//! logits do not depend on the batch it is in.

#![allow(clippy::needless_range_loop)] // SIMD lanes, panels and tokens read best as indexed loops.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use half::f16;

use crate::error::KernelError;
use crate::isa::{active_isa, record, Isa, KernelId};
use crate::memory::CacheAligned;
use crate::pool::{atomic_f32_view, split_range, store_f32_run, ThreadPool};
use crate::q8::check_len;

/// Codes per scale / offset as given to [`CodeMatrix::from_parts`].
pub const CODE_GROUP: usize = 16;
/// Activation values per quantization block (one f32 scale each).
pub const ACTIVATION_BLOCK: usize = 32;
/// Granularity of `cols`.
pub const CODE_CHUNK: usize = 64;
/// Rows per panel (one 32-bit lane of a 512-bit register each).
pub const PANEL_ROWS: usize = 16;
/// Bytes of one block of a panel's codes: one quad (byte codes) or two (nibble codes).
const QUAD_BYTES: usize = 4 * PANEL_ROWS;
/// Largest biased code stored as a nibble.
const NIBBLE_MAX: i16 = 15;

/// Whether an AVX-512 product of several tokens may run on AMX-INT8 tiles where the CPU and OS
/// allow them ([`crate::isa::amx_int8_supported`]). The results are the same bits either way:
/// the tiles compute the same exact integer group sums as the VNNI kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tiles {
    /// Use the tiles when present.
    Allowed,
    /// Use the VNNI kernel only.
    Off,
}

/// A matrix of integer codes with per-group scales and optional offsets, in panels (module docs).
#[derive(Clone)]
pub struct CodeMatrix {
    rows: usize,
    cols: usize,
    /// Codes per scale: 16 or 32.
    group: usize,
    /// Added to every code to make it unsigned.
    bias: u8,
    /// Whether some biased code exceeds 127 (AVX2's byte products then split it).
    wide: bool,
    /// Whether codes are nibbles, two quads per 64-byte block (else one byte each).
    nibble: bool,
    /// `panels × panel_bytes` unsigned codes: panel, then block of 1 (bytes) or 2 (nibbles)
    /// column quads, then row, then 4 codes.
    codes: CacheAligned<u8>,
    /// `panels × groups × 16`: panel, then group, then row.
    scales: Params,
    /// As `scales` (and of the same precision), for the types that have offsets.
    offsets: Option<Params>,
}

/// Scales or offsets of a matrix: f16 when every one of them is exactly an f16, else f32.
#[derive(Clone, Debug)]
enum Params {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

impl Params {
    /// `values` as f16 (`half`: each is exactly one) or as given.
    fn new(values: Vec<f32>, half: bool) -> Params {
        if half {
            Params::F16(values.into_iter().map(f16::from_f32).collect())
        } else {
            Params::F32(values)
        }
    }

    /// Whether `v` is finite and an f16 exactly, so storing it as one loses nothing.
    fn fits_half(v: f32) -> bool {
        v.is_finite() && f16::from_f32(v).to_f32().to_bits() == v.to_bits()
    }

    fn get(&self, i: usize) -> f32 {
        self.slice(i..i + 1).get(0)
    }

    fn stored_len(&self) -> usize {
        match self {
            Params::F32(v) => 4 * v.len(),
            Params::F16(v) => 2 * v.len(),
        }
    }

    fn slice(&self, range: std::ops::Range<usize>) -> ParamsRef<'_> {
        match self {
            Params::F32(v) => ParamsRef::F32(&v[range]),
            Params::F16(v) => ParamsRef::F16(&v[range]),
        }
    }
}

impl PartialEq for Params {
    /// Same precision and the same bits.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Params::F32(a), Params::F32(b)) => a
                .iter()
                .map(|v| v.to_bits())
                .eq(b.iter().map(|v| v.to_bits())),
            (Params::F16(a), Params::F16(b)) => a
                .iter()
                .map(|v| v.to_bits())
                .eq(b.iter().map(|v| v.to_bits())),
            _ => false,
        }
    }
}

/// A range of [`Params`], as a kernel reads it.
#[derive(Clone, Copy)]
enum ParamsRef<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
}

impl ParamsRef<'_> {
    /// Value `i`, widened exactly.
    fn get(&self, i: usize) -> f32 {
        match self {
            ParamsRef::F32(v) => v[i],
            ParamsRef::F16(v) => v[i].to_f32(),
        }
    }

    fn len(&self) -> usize {
        match self {
            ParamsRef::F32(v) => v.len(),
            ParamsRef::F16(v) => v.len(),
        }
    }

    fn is_half(&self) -> bool {
        matches!(self, ParamsRef::F16(_))
    }

    /// The first value's address (f32 or f16 values, as [`ParamsRef::is_half`] says).
    fn as_ptr(&self) -> *const u8 {
        match self {
            ParamsRef::F32(v) => v.as_ptr().cast(),
            ParamsRef::F16(v) => v.as_ptr().cast(),
        }
    }
}

/// Where code `e` (a column) of row `lane` of a panel lies in the panel's codes: the byte and
/// the shift of its bits in it (module docs).
fn code_place(nibble: bool, e: usize, lane: usize) -> (usize, u32) {
    let quad = e / 4;
    if nibble {
        (
            (quad / 2) * QUAD_BYTES + 4 * lane + e % 4,
            4 * (quad % 2) as u32,
        )
    } else {
        (quad * QUAD_BYTES + 4 * lane + e % 4, 0)
    }
}

/// The biased code `e` of row `lane` in a panel's codes.
fn code_at(panel: &[u8], nibble: bool, e: usize, lane: usize) -> u8 {
    let (at, shift) = code_place(nibble, e, lane);
    let byte = panel[at] >> shift;
    if nibble {
        byte & 0x0f
    } else {
        byte
    }
}

/// Bytes of one panel's codes for `cols` columns.
fn panel_bytes(cols: usize, nibble: bool) -> usize {
    if nibble {
        cols * PANEL_ROWS / 2
    } else {
        cols * PANEL_ROWS
    }
}

impl PartialEq for CodeMatrix {
    fn eq(&self, other: &Self) -> bool {
        (
            self.rows,
            self.cols,
            self.group,
            self.bias,
            self.wide,
            self.nibble,
        ) == (
            other.rows,
            other.cols,
            other.group,
            other.bias,
            other.wide,
            other.nibble,
        ) && self.codes.as_slice() == other.codes.as_slice()
            && self.scales == other.scales
            && self.offsets == other.offsets
    }
}

impl std::fmt::Debug for CodeMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeMatrix")
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("group", &self.group)
            .field("bias", &self.bias)
            .field("codes", &if self.nibble { "nibble" } else { "byte" })
            .field(
                "params",
                &if matches!(self.scales, Params::F16(_)) {
                    "f16"
                } else {
                    "f32"
                },
            )
            .field("offsets", &self.offsets.is_some())
            .finish()
    }
}

impl CodeMatrix {
    /// Repacks row-major codes (`rows × cols`, `cols` a multiple of 64), `rows × cols / 16`
    /// scales and, if the type has them, as many offsets (one per 16 codes of a row).
    pub fn from_parts(
        rows: usize,
        cols: usize,
        codes: Vec<i8>,
        scales: Vec<f32>,
        offsets: Option<Vec<f32>>,
    ) -> Result<CodeMatrix, KernelError> {
        if rows == 0 || cols == 0 {
            return Err(KernelError::EmptyShape { rows, cols });
        }
        if !cols.is_multiple_of(CODE_CHUNK) {
            return Err(KernelError::ColsNotMultiple {
                cols,
                granularity: CODE_CHUNK,
            });
        }
        check_len("codes (rows × cols)", rows * cols, codes.len())?;
        check_len(
            "scales (rows × cols / 16)",
            rows * cols / CODE_GROUP,
            scales.len(),
        )?;
        if let Some(o) = &offsets {
            check_len(
                "offsets (rows × cols / 16)",
                rows * cols / CODE_GROUP,
                o.len(),
            )?;
        }
        let paired = |v: &[f32]| v.chunks_exact(2).all(|p| p[0].to_bits() == p[1].to_bits());
        let group = if paired(&scales) && offsets.as_deref().is_none_or(paired) {
            2 * CODE_GROUP
        } else {
            CODE_GROUP
        };
        let min = codes.iter().copied().min().unwrap_or(0);
        let max = codes.iter().copied().max().unwrap_or(0);
        let bias = (-i16::from(min)).max(0) as u8;
        let wide = i16::from(max) + i16::from(bias) > 127;
        let nibble = i16::from(max) + i16::from(bias) <= NIBBLE_MAX;
        let half = scales
            .iter()
            .chain(offsets.iter().flatten())
            .all(|&v| Params::fits_half(v));

        let panels = rows.div_ceil(PANEL_ROWS);
        let groups = cols / group;
        let panel_len = panel_bytes(cols, nibble);
        let mut packed = CacheAligned::new();
        let packed_codes = packed.resize(panels * panel_len);
        packed_codes.fill(0);
        for (r, row) in codes.chunks_exact(cols).enumerate() {
            let panel = &mut packed_codes[(r / PANEL_ROWS) * panel_len..];
            let lane = r % PANEL_ROWS;
            for (e, &c) in row.iter().enumerate() {
                let (at, shift) = code_place(nibble, e, lane);
                panel[at] |= ((i16::from(c) + i16::from(bias)) as u8) << shift;
            }
        }
        let stride = group / CODE_GROUP;
        let repack = |v: &[f32]| {
            let mut out = vec![0f32; panels * groups * PANEL_ROWS];
            for (r, row) in v.chunks_exact(cols / CODE_GROUP).enumerate() {
                let (p, lane) = (r / PANEL_ROWS, r % PANEL_ROWS);
                for g in 0..groups {
                    out[(p * groups + g) * PANEL_ROWS + lane] = row[g * stride];
                }
            }
            Params::new(out, half)
        };
        Ok(CodeMatrix {
            rows,
            cols,
            group,
            bias,
            wide,
            nibble,
            codes: packed,
            scales: repack(&scales),
            offsets: offsets.as_deref().map(repack),
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

    /// Codes per scale (16 or 32, see the module docs).
    pub fn group(&self) -> usize {
        self.group
    }

    /// Bytes one product streams (codes, scales, offsets; panel padding included).
    pub fn stored_len(&self) -> usize {
        self.codes.as_slice().len()
            + self.scales.stored_len()
            + self.offsets.as_ref().map_or(0, Params::stored_len)
    }

    /// Row `r`'s codes (signed, as given), one scale and one offset (0 without offsets) per 16.
    fn row_parts(&self, r: usize, codes: &mut [i8], scales: &mut [f32], offsets: &mut [f32]) {
        let (p, lane) = (r / PANEL_ROWS, r % PANEL_ROWS);
        let panel_len = panel_bytes(self.cols, self.nibble);
        let panel = &self.codes.as_slice()[p * panel_len..(p + 1) * panel_len];
        for (e, c) in codes.iter_mut().enumerate() {
            let u = code_at(panel, self.nibble, e, lane);
            *c = (i16::from(u) - i16::from(self.bias)) as i8;
        }
        let groups = self.cols / self.group;
        let stride = self.group / CODE_GROUP;
        for (i, s) in scales.iter_mut().enumerate() {
            *s = self
                .scales
                .get((p * groups + i / stride) * PANEL_ROWS + lane);
        }
        for (i, o) in offsets.iter_mut().enumerate() {
            *o = self.offsets.as_ref().map_or(0.0, |v| {
                v.get((p * groups + i / stride) * PANEL_ROWS + lane)
            });
        }
    }

    /// Row `r`'s weights, `scale · code + offset` (bit-identical to ggml's dequantization).
    pub fn row_into(&self, r: usize, out: &mut [f32]) {
        let mut codes = vec![0i8; self.cols];
        let mut scales = vec![0f32; self.cols / CODE_GROUP];
        let mut offsets = vec![0f32; self.cols / CODE_GROUP];
        self.row_parts(r, &mut codes, &mut scales, &mut offsets);
        for (g, (o, c)) in out
            .chunks_exact_mut(CODE_GROUP)
            .zip(codes.chunks_exact(CODE_GROUP))
            .enumerate()
        {
            for (o, &c) in o.iter_mut().zip(c) {
                *o = if self.offsets.is_some() {
                    scales[g] * f32::from(c) + offsets[g]
                } else {
                    scales[g] * f32::from(c)
                };
            }
        }
    }

    /// The matrix cut into consecutive blocks of output rows (`sizes` must add up to `rows`).
    pub fn split_rows(&self, sizes: &[usize]) -> Option<Vec<CodeMatrix>> {
        if sizes.iter().sum::<usize>() != self.rows || sizes.contains(&0) {
            return None;
        }
        let (cols, groups) = (self.cols, self.cols / CODE_GROUP);
        let mut start = 0;
        let mut parts = Vec::with_capacity(sizes.len());
        for &rows in sizes {
            let mut codes = vec![0i8; rows * cols];
            let mut scales = vec![0f32; rows * groups];
            let mut offsets = vec![0f32; rows * groups];
            for r in 0..rows {
                self.row_parts(
                    start + r,
                    &mut codes[r * cols..(r + 1) * cols],
                    &mut scales[r * groups..(r + 1) * groups],
                    &mut offsets[r * groups..(r + 1) * groups],
                );
            }
            let offsets = self.offsets.is_some().then_some(offsets);
            parts.push(CodeMatrix::from_parts(rows, cols, codes, scales, offsets).ok()?);
            start += rows;
        }
        Some(parts)
    }

    /// `out[b·rows + r]` = row `r` · token `b` of `x` (batch × cols, f32), see the module docs.
    pub fn matmul(
        &self,
        x: &[f32],
        batch: usize,
        out: &mut [f32],
        pool: &ThreadPool,
    ) -> Result<(), KernelError> {
        self.matmul_with_isa(active_isa(), x, batch, out, pool)
    }

    /// [`CodeMatrix::matmul`] on a chosen instruction set.
    pub fn matmul_with_isa(
        &self,
        isa: Isa,
        x: &[f32],
        batch: usize,
        out: &mut [f32],
        pool: &ThreadPool,
    ) -> Result<(), KernelError> {
        self.matmul_with_tiles(isa, Tiles::Allowed, x, batch, out, pool)
    }

    /// [`CodeMatrix::matmul_with_isa`], saying whether AVX-512 products of several tokens may
    /// run on AMX-INT8 tiles (the same bits either way; tests compare both).
    pub fn matmul_with_tiles(
        &self,
        isa: Isa,
        tiles: Tiles,
        x: &[f32],
        batch: usize,
        out: &mut [f32],
        pool: &ThreadPool,
    ) -> Result<(), KernelError> {
        Self::products(isa, tiles, &[self], x, batch, &mut [out], pool)
    }

    /// Whether `self` and `other` take the same quantized activations (the same columns, scale
    /// group and code bias), so [`CodeMatrix::matmul_several`] can multiply them together.
    pub fn shares_activations(&self, other: &CodeMatrix) -> bool {
        (self.cols, self.group, self.bias) == (other.cols, other.group, other.bias)
    }

    /// `outs[i]` = [`CodeMatrix::matmul`] of `ms[i]` with the one input `x`, for matrices that
    /// [share their activations](CodeMatrix::shares_activations) (e.g. a layer's q, k and v): the
    /// input is quantized once and the panels of all of them are split over the pool in one run.
    /// Each output has the bits its own `matmul` gives.
    pub fn matmul_several(
        ms: &[&CodeMatrix],
        x: &[f32],
        batch: usize,
        outs: &mut [&mut [f32]],
        pool: &ThreadPool,
    ) -> Result<(), KernelError> {
        Self::products(active_isa(), Tiles::Allowed, ms, x, batch, outs, pool)
    }

    /// The products of [`CodeMatrix::matmul_several`] on `isa`, with or without AMX `tiles`.
    fn products(
        isa: Isa,
        tiles: Tiles,
        ms: &[&CodeMatrix],
        x: &[f32],
        batch: usize,
        outs: &mut [&mut [f32]],
        pool: &ThreadPool,
    ) -> Result<(), KernelError> {
        if !isa.is_supported() {
            return Err(KernelError::IsaUnsupported { isa });
        }
        check_len("outputs (one per matrix)", ms.len(), outs.len())?;
        let Some(&first) = ms.first() else {
            return Ok(());
        };
        if !ms.iter().all(|m| first.shares_activations(m)) {
            return Err(KernelError::ActivationsNotShared);
        }
        check_len("activations (batch × cols)", batch * first.cols, x.len())?;
        for (m, out) in ms.iter().zip(outs.iter()) {
            check_len("output (batch × rows)", batch * m.rows, out.len())?;
        }
        #[cfg(target_arch = "x86_64")]
        let amx = tiles == Tiles::Allowed
            && isa == Isa::Avx512
            && batch >= amx::TILE_TOKENS
            && crate::isa::amx_int8_supported();
        #[cfg(not(target_arch = "x86_64"))]
        let amx = {
            let _ = tiles; // AMX is x86-64 only
            false
        };
        record(match isa {
            Isa::Scalar => KernelId::CodeScalarMatmul,
            Isa::Neon => KernelId::CodeNeonMatmul,
            Isa::Avx2 => KernelId::CodeAvx2Matmul,
            Isa::Avx512 if amx => KernelId::CodeAmxMatmul,
            Isa::Avx512 => KernelId::CodeAvx512Matmul,
        });
        if batch == 0 {
            return Ok(());
        }
        ACTIVATIONS.with(|cell| {
            let acts = &mut *cell.borrow_mut();
            acts.quantize(isa, x, first.group, first.bias, pool);
            let acts = &*acts;
            let tokens: Vec<TokenRef> = (0..batch).map(|b| acts.token(b, first)).collect();
            let outs: Vec<&[AtomicU32]> = outs.iter_mut().map(|o| atomic_f32_view(o)).collect();
            // Panel ranges of the matrices, end to end.
            let ends: Vec<usize> = ms
                .iter()
                .scan(0, |end, m| {
                    *end += m.rows.div_ceil(PANEL_ROWS);
                    Some(*end)
                })
                .collect();
            let total = ends.last().copied().unwrap_or(0);
            let chunks = pool.chunk_count_per_thread(total, CHUNKS_PER_THREAD);
            pool.run(chunks, &|chunk| {
                let range = split_range(total, chunks, chunk);
                let mut start = 0;
                for ((m, out), &end) in ms.iter().zip(&outs).zip(&ends) {
                    let (lo, hi) = (range.start.max(start), range.end.min(end));
                    if lo < hi {
                        m.panels_times_tokens(isa, amx, lo - start..hi - start, &tokens, out);
                    }
                    start = end;
                }
            });
        });
        Ok(())
    }

    /// The outputs of panels `range` for every token on `isa`, or on AMX tiles (`amx`).
    fn panels_times_tokens(
        &self,
        isa: Isa,
        amx: bool,
        range: std::ops::Range<usize>,
        tokens: &[TokenRef],
        out: &[AtomicU32],
    ) {
        // Whole blocks of tokens on AMX tiles (where chosen), the rest on `isa`.
        #[cfg(target_arch = "x86_64")]
        let (tokens, first) = if amx {
            let whole = tokens.len() / amx::TILE_TOKENS * amx::TILE_TOKENS;
            let (tiled, rest) = tokens.split_at(whole);
            let mut store = |p, t, dots: &amx::TileDots| {
                self.store_dots(out, (p, 1), (t, amx::TILE_TOKENS), &[*dots]);
            };
            amx::panels_times_tokens(self, range.clone(), tiled, &mut store);
            (rest, whole)
        } else {
            (tokens, 0)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let (tokens, first) = {
            let _ = amx; // AMX is x86-64 only
            (tokens, 0)
        };
        if tokens.is_empty() {
            return;
        }
        let shape = block_shape(isa, tokens.len(), self.group);
        let kernel = |w: &PanelsRef, xs: &[TokenRef], dots: &mut Dots| match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::dots_avx512(w, xs, dots),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::dots_avx2(w, xs, dots),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => neon::dots_neon(w, xs, dots),
            _ => dots_scalar(w, xs, dots),
        };
        self.blocks_times_tokens(range, (tokens, first), out, shape, kernel);
    }

    /// The outputs of panels `range` for `tokens` (the batch's tokens from `first` on), `kernel`
    /// taking blocks of up to `shape` panels × tokens: panels outermost, so each block of panels
    /// stays in cache while every token block passes over it.
    fn blocks_times_tokens(
        &self,
        range: std::ops::Range<usize>,
        (tokens, first): (&[TokenRef], usize),
        out: &[AtomicU32],
        (panel_block, token_block): (usize, usize),
        kernel: impl Fn(&PanelsRef, &[TokenRef], &mut Dots),
    ) {
        // Every kernel writes each dot of the np × nt block it is given, so one buffer serves.
        let mut dots = [[[0f32; PANEL_ROWS]; MAX_TOKENS]; MAX_PANELS];
        let mut p = range.start;
        while p < range.end {
            let np = panel_block.min(range.end - p);
            let w = self.panels(p, np);
            let mut t = 0;
            while t < tokens.len() {
                let nt = token_block.min(tokens.len() - t);
                let xs = &tokens[t..t + nt];
                kernel(&w, xs, &mut dots);
                self.store_dots(out, (p, np), (first + t, nt), &dots);
                t += nt;
            }
            p += np;
        }
    }

    /// Writes `dots[i][j]` (panel `p + i`, token `t + j`) for `i < np`, `j < nt` into `out`
    /// (batch × rows), leaving out the padding rows of the last panel.
    fn store_dots<const P: usize, const T: usize>(
        &self,
        out: &[AtomicU32],
        (p, np): (usize, usize),
        (t, nt): (usize, usize),
        dots: &[[[f32; PANEL_ROWS]; T]; P],
    ) {
        for (i, panel) in dots[..np].iter().enumerate() {
            let row0 = (p + i) * PANEL_ROWS;
            let live = PANEL_ROWS.min(self.rows - row0);
            for (j, lanes) in panel[..nt].iter().enumerate() {
                let at = (t + j) * self.rows + row0;
                if live == PANEL_ROWS {
                    // SAFETY: rows of panel p + i belong to this chunk of the pool run alone
                    // (the products split their panels between chunks).
                    unsafe { store_f32_run(out, at, lanes) };
                } else {
                    for (o, v) in out[at..at + live].iter().zip(lanes) {
                        o.store(v.to_bits(), Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// `count` consecutive panels from panel `first`.
    fn panels(&self, first: usize, count: usize) -> PanelsRef<'_> {
        let panel_len = panel_bytes(self.cols, self.nibble);
        let groups = self.cols / self.group;
        let params = first * groups * PANEL_ROWS..(first + count) * groups * PANEL_ROWS;
        PanelsRef {
            codes: &self.codes.as_slice()[first * panel_len..(first + count) * panel_len],
            scales: self.scales.slice(params.clone()),
            offsets: self.offsets.as_ref().map(|o| o.slice(params)),
            cols: self.cols,
            group: self.group,
            wide: self.wide,
            nibble: self.nibble,
            count,
        }
    }
}

/// Most panels one kernel call handles.
const MAX_PANELS: usize = 4;
/// Most tokens one kernel call handles.
const MAX_TOKENS: usize = 4;

/// Panels and tokens per kernel call for `tokens` tokens on `isa` with scale groups of `group`
/// codes (results do not depend on it). AVX-512, several tokens: 3 panels × 4 tokens for groups
/// of 32 (24 accumulators; host C, 8 in flight: SmolLM2 +5%, Gemma-3 +4%, paired), 2 × 4 for
/// groups of 16, whose twice as many float steps per code need the registers (3 × 4 was slower on
/// Gemma-3's Q6_K prefill).
fn block_shape(isa: Isa, tokens: usize, group: usize) -> (usize, usize) {
    match (isa, tokens) {
        (Isa::Avx512, 1) => (4, 1),
        (Isa::Avx512, _) if group == 32 => (3, 4),
        (Isa::Avx512, _) => (2, 4),
        (Isa::Avx2 | Isa::Neon, 1) => (2, 1),
        (Isa::Avx2 | Isa::Neon, _) => (1, 2),
        (Isa::Scalar, _) => (1, 4),
    }
}

/// Consecutive panels of a [`CodeMatrix`].
struct PanelsRef<'a> {
    codes: &'a [u8],
    scales: ParamsRef<'a>,
    offsets: Option<ParamsRef<'a>>,
    cols: usize,
    group: usize,
    wide: bool,
    nibble: bool,
    count: usize,
}

impl PanelsRef<'_> {
    /// Whether scales and offsets are f16.
    fn half(&self) -> bool {
        self.scales.is_half()
    }

    /// Bytes of one panel's codes.
    fn panel_bytes(&self) -> usize {
        panel_bytes(self.cols, self.nibble)
    }
}

/// One quantized activation row, per group of the matrix it multiplies.
struct TokenRef<'a> {
    /// Codes, `cols` long.
    qs: &'a [i8],
    /// `−bias · Σ q` per group.
    bias_sums: &'a [i32],
    /// The block scale `d` of each group.
    scales: &'a [f32],
    /// `d · (Σ q as f32)` per group.
    sums: &'a [f32],
}

/// Quantized activations of a batch (per-thread scratch, reused from call to call).
#[derive(Default)]
struct Activations {
    qs: CacheAligned<i8>,
    bias_sums: Vec<i32>,
    scales: Vec<f32>,
    sums: Vec<f32>,
}

impl Activations {
    /// Quantizes a batch (`x`, whole activation blocks) for a matrix of scale group `group` and
    /// code bias `bias` on `isa`; large batches are cut into pieces of whole blocks over the pool.
    fn quantize(&mut self, isa: Isa, x: &[f32], group: usize, bias: u8, pool: &ThreadPool) {
        let groups = x.len() / group;
        self.bias_sums.resize(groups, 0);
        self.scales.resize(groups, 0.0);
        self.sums.resize(groups, 0.0);
        let blocks = x.len() / ACTIVATION_BLOCK;
        let pieces = if x.len() >= PARALLEL_QUANTIZE {
            pool.chunk_count(blocks)
        } else {
            1
        };
        let groups_per_block = ACTIVATION_BLOCK / group;
        let mut rest = ActivationsMut {
            x,
            qs: self.qs.resize(x.len()),
            bias_sums: &mut self.bias_sums,
            scales: &mut self.scales,
            sums: &mut self.sums,
        };
        let mut parts = Vec::with_capacity(pieces);
        for i in 0..pieces {
            let len = split_range(blocks, pieces, i).len();
            let (part, tail) = rest.split_at(len * ACTIVATION_BLOCK, len * groups_per_block);
            parts.push(Mutex::new(part));
            rest = tail;
        }
        pool.run(pieces, &|i| {
            let mut part = parts[i].lock().unwrap_or_else(|p| p.into_inner());
            part.quantize(isa, group, bias);
        });
    }

    fn token(&self, b: usize, m: &CodeMatrix) -> TokenRef<'_> {
        let groups = m.cols / m.group;
        let span = b * groups..(b + 1) * groups;
        TokenRef {
            qs: &self.qs.as_slice()[b * m.cols..(b + 1) * m.cols],
            bias_sums: &self.bias_sums[span.clone()],
            scales: &self.scales[span.clone()],
            sums: &self.sums[span],
        }
    }
}

/// Chunks per pool thread of a product's panels. Two measured faster than the pool's default
/// four on host C (2 threads, interleaved binaries, medians of 3–5 rounds): SmolLM2 8 in flight
/// 1131–1184 → 1134–1244 t/s, one sequence 392 → 402; Gemma-3 8 in flight 443 → 469. A chunk
/// has a fixed cost (its panels' parameters, a kernel call per block, the claim), and with
/// 8-token steps of a 135 M model there are ~120 products per step.
const CHUNKS_PER_THREAD: usize = 2;

/// Activation values from which [`Activations::quantize`] uses the pool.
const PARALLEL_QUANTIZE: usize = 1 << 15;

/// A piece of a batch being quantized: the inputs and where their codes and group terms go.
struct ActivationsMut<'a> {
    x: &'a [f32],
    qs: &'a mut [i8],
    bias_sums: &'a mut [i32],
    scales: &'a mut [f32],
    sums: &'a mut [f32],
}

impl<'a> ActivationsMut<'a> {
    /// The first `values` inputs (and their `groups` groups), and the rest.
    fn split_at(self, values: usize, groups: usize) -> (Self, Self) {
        let (x, x_rest) = self.x.split_at(values);
        let (qs, qs_rest) = self.qs.split_at_mut(values);
        let (bias_sums, bias_rest) = self.bias_sums.split_at_mut(groups);
        let (scales, scales_rest) = self.scales.split_at_mut(groups);
        let (sums, sums_rest) = self.sums.split_at_mut(groups);
        (
            ActivationsMut {
                x,
                qs,
                bias_sums,
                scales,
                sums,
            },
            ActivationsMut {
                x: x_rest,
                qs: qs_rest,
                bias_sums: bias_rest,
                scales: scales_rest,
                sums: sums_rest,
            },
        )
    }

    /// Quantizes the piece block by block (module docs) on `isa`, for groups of `group` codes.
    fn quantize(&mut self, isa: Isa, group: usize, bias: u8) {
        const BLOCKS_AT_ONCE: usize = 64;
        let per_block = ACTIVATION_BLOCK / group;
        let mut terms = [BlockTerms::default(); BLOCKS_AT_ONCE];
        let values = BLOCKS_AT_ONCE * ACTIVATION_BLOCK;
        let pieces = self.x.chunks(values).zip(self.qs.chunks_mut(values));
        for (c, (x, q)) in pieces.enumerate() {
            let terms = &mut terms[..x.len() / ACTIVATION_BLOCK];
            quantize_blocks(isa, x, q, terms);
            for (i, t) in terms.iter().enumerate() {
                let whole = [t.half_sums[0] + t.half_sums[1]];
                let totals: &[i32] = if per_block == 1 { &whole } else { &t.half_sums };
                for (k, &total) in totals.iter().enumerate() {
                    let g = (c * BLOCKS_AT_ONCE + i) * per_block + k;
                    self.bias_sums[g] = -i32::from(bias) * total;
                    self.scales[g] = t.scale;
                    self.sums[g] = t.scale * total as f32;
                }
            }
        }
    }
}

/// What quantizing a block of [`ACTIVATION_BLOCK`] activations gives besides its codes: the
/// scale `d` and the sums of the codes of its two halves (the 16-code groups).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct BlockTerms {
    scale: f32,
    half_sums: [i32; 2],
}

/// Quantizes the blocks of `x` (a whole number of [`ACTIVATION_BLOCK`]s) into `q` on `isa`, one
/// [`BlockTerms`] per block into `terms`: block by block the scalar reference's values.
fn quantize_blocks(isa: Isa, x: &[f32], q: &mut [i8], terms: &mut [BlockTerms]) {
    assert!(x.len() == q.len() && x.len() == terms.len() * ACTIVATION_BLOCK);
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => x86::quantize_blocks_avx512(x, q, terms),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => x86::quantize_blocks_avx2(x, q, terms),
        _ => block_by_block(x, q, terms, quantize_block_scalar),
    }
}

/// [`quantize_blocks`] with a one-block quantizer (returning the scale and the half sums).
fn block_by_block(
    x: &[f32],
    q: &mut [i8],
    terms: &mut [BlockTerms],
    mut quantize: impl FnMut(&[f32; ACTIVATION_BLOCK], &mut [i8; ACTIVATION_BLOCK]) -> (f32, [i32; 2]),
) {
    let blocks = x.chunks_exact(ACTIVATION_BLOCK);
    for ((x, q), t) in blocks.zip(q.chunks_exact_mut(ACTIVATION_BLOCK)).zip(terms) {
        let x = x.try_into().expect("whole blocks");
        let q = q.try_into().expect("whole blocks");
        let (scale, half_sums) = quantize(x, q);
        *t = BlockTerms { scale, half_sums };
    }
}

/// The scalar reference of [`quantize_blocks`], one block: `d = max|x| / 127` (NaN inputs
/// ignored), `q = x · (1/d)` clamped to ±127 and rounded half to even (0 where that is NaN, as for
/// infinite inputs, and everywhere when d = 0).
fn quantize_block_scalar(
    x: &[f32; ACTIVATION_BLOCK],
    q: &mut [i8; ACTIVATION_BLOCK],
) -> (f32, [i32; 2]) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let inverse = if d != 0.0 { 1.0 / d } else { 0.0 };
    for (q, &v) in q.iter_mut().zip(x) {
        *q = round_half_even_in_range((v * inverse).clamp(-127.0, 127.0)) as i8;
    }
    let half_sum = |h: &[i8]| h.iter().map(|&v| i32::from(v)).sum::<i32>();
    let (lo, hi) = q.split_at(ACTIVATION_BLOCK / 2);
    (d, [half_sum(lo), half_sum(hi)])
}

/// `v` rounded half to even, for `|v| ≤ 2^22` (NaN stays NaN): adding 1.5·2^23 leaves no
/// fraction bits, so the FPU's default rounding (to nearest, ties to even) rounds, and the
/// subtraction is exact. The same value as `f32::round_ties_even` (a zero may lose its sign,
/// which the conversion to an integer code drops anyway), which is a library call on
/// baseline x86-64 (it kept this loop from vectorizing).
#[inline]
fn round_half_even_in_range(v: f32) -> f32 {
    const SHIFT: f32 = 12_582_912.0; // 1.5 · 2^23
    (v + SHIFT) - SHIFT
}

thread_local! {
    static ACTIVATIONS: RefCell<Activations> = RefCell::new(Activations::default());
}

/// Dots for `MAX_PANELS × MAX_TOKENS` outputs of 16 rows: `dots[p][t][l]` is row `l` of panel
/// `p` with token `t`.
type Dots = [[[f32; PANEL_ROWS]; MAX_TOKENS]; MAX_PANELS];

/// The scalar reference (module docs).
fn dots_scalar(w: &PanelsRef, xs: &[TokenRef], dots: &mut Dots) {
    let (cols, group) = (w.cols, w.group);
    let groups = cols / group;
    let panel_len = w.panel_bytes();
    for p in 0..w.count {
        let codes = &w.codes[p * panel_len..(p + 1) * panel_len];
        for (t, x) in xs.iter().enumerate() {
            for l in 0..PANEL_ROWS {
                let mut acc = 0f32;
                for g in 0..groups {
                    let mut dot = x.bias_sums[g];
                    for e in g * group..(g + 1) * group {
                        let u = code_at(codes, w.nibble, e, l);
                        dot += i32::from(u) * i32::from(x.qs[e]);
                    }
                    let at = (p * groups + g) * PANEL_ROWS + l;
                    acc = (dot as f32).mul_add(w.scales.get(at) * x.scales[g], acc);
                    if let Some(o) = w.offsets {
                        acc = o.get(at).mul_add(x.sums[g], acc);
                    }
                }
                dots[p][t][l] = acc;
            }
        }
    }
}

/// Checks a kernel call's operands (every pointer offset the SIMD kernels form stays inside),
/// for a kernel taking up to `max` panels × tokens.
fn check_operands(w: &PanelsRef, xs: &[TokenRef], max: (usize, usize)) {
    let groups = w.cols / w.group;
    assert!(
        w.count <= max.0
            && xs.len() <= max.1
            && w.cols.is_multiple_of(CODE_CHUNK)
            && (w.group == 16 || w.group == 32)
            && w.codes.len() == w.count * w.panel_bytes()
            && !(w.nibble && w.wide)
            && w.scales.len() == w.count * groups * PANEL_ROWS
            && w.offsets
                .is_none_or(|o| o.len() == w.scales.len() && o.is_half() == w.half())
            && xs.iter().all(|x| x.qs.len() == w.cols
                && x.bias_sums.len() == groups
                && x.scales.len() == groups
                && x.sums.len() == groups)
    );
}

#[cfg(target_arch = "x86_64")]
mod amx;

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! AVX-512 VNNI and AVX2 panel kernels: one 64-byte load of a panel's codes for 4 columns
    //! (byte codes) or 8 (nibble codes, unpacked by AND 0x0F and a 16-bit shift right by 4 into
    //! the two quads' bytes), one broadcast of each token's 4 activation codes per quad, integer
    //! products summed over a group, then the float chain of the module docs in 16 lanes (one
    //! 512-bit or two 256-bit registers), with scales and offsets widened from f16 on load when
    //! stored so. Generic over those storage choices: `NIBBLE` and `HALF`. And the activation
    //! block quantizers (the scalar reference's values, 16 or 8 lanes at a time).

    use std::arch::x86_64::*;

    use super::{
        block_by_block, check_operands, BlockTerms, Dots, PanelsRef, TokenRef, ACTIVATION_BLOCK,
        MAX_PANELS, MAX_TOKENS, PANEL_ROWS, QUAD_BYTES,
    };

    /// [`super::quantize_blocks`] on AVX-512: the same values as the scalar reference (the
    /// conversion rounds half to even, like the reference's shift; NaN products are zeroed
    /// before the clamp, as the reference's cast does after it). Sixteen blocks at a time:
    /// their maxima, scales and code sums are reduced together, a lane per block (maxima and
    /// integer sums do not depend on the order), the rest block by block.
    pub(super) fn quantize_blocks_avx512(x: &[f32], q: &mut [i8], terms: &mut [BlockTerms]) {
        assert!(crate::isa::Isa::Avx512.is_supported());
        assert!(x.len() == q.len() && x.len() == terms.len() * ACTIVATION_BLOCK);
        let mut done = 0;
        for (x, q) in x
            .chunks_exact(16 * ACTIVATION_BLOCK)
            .zip(q.chunks_exact_mut(16 * ACTIVATION_BLOCK))
        {
            let terms: &mut [BlockTerms; 16] = (&mut terms[done..done + 16]).try_into().unwrap();
            // SAFETY: features checked; 512 floats in, 512 bytes out (lengths of the chunks).
            unsafe { quantize_16_blocks_avx512(x, q, terms) };
            done += 16;
        }
        let rest = done * ACTIVATION_BLOCK;
        block_by_block(&x[rest..], &mut q[rest..], &mut terms[done..], |x, q| {
            // SAFETY: features checked; 32 floats read, 32 bytes written (array types).
            unsafe { quantize_block_avx512_impl(x, q) }
        });
    }

    /// The codes of 16 activations `x` with the inverse of their block's scale: `x · inverse`
    /// (0 where NaN, as the reference's cast gives after its clamp), clamped to ±127, rounded half
    /// to even.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn codes16(x: __m512, inverse: __m512) -> __m512i {
        let p = _mm512_mul_ps(x, inverse);
        let p = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_ORD_Q>(p, p), p);
        let p = _mm512_min_ps(
            _mm512_max_ps(p, _mm512_set1_ps(-127.0)),
            _mm512_set1_ps(127.0),
        );
        _mm512_cvtps_epi32(p)
    }

    /// The lane of [`reduce_16`]'s result that holds block `b`'s value.
    const fn reduced_lane(b: usize) -> usize {
        4 * (b % 4) + b / 4
    }

    /// Reduces each of 16 vectors to one value (their maximum if `MAX`, else the sum of their
    /// 32-bit integers), block `b`'s in lane [`reduced_lane`]`(b)`: a transpose by halves,
    /// quarters, pairs and lanes, 45 instructions for the 16 reductions.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn reduce_16<const MAX: bool>(v: [__m512i; 16]) -> __m512i {
        let op = |a: __m512i, b: __m512i| {
            if MAX {
                _mm512_castps_si512(_mm512_max_ps(
                    _mm512_castsi512_ps(a),
                    _mm512_castsi512_ps(b),
                ))
            } else {
                _mm512_add_epi32(a, b)
            }
        };
        // Halves: lanes 0..8 hold vector 2i's 8 partial values, 8..16 vector 2i + 1's.
        let h: [__m512i; 8] = std::array::from_fn(|i| {
            let (a, b) = (v[2 * i], v[2 * i + 1]);
            op(
                _mm512_shuffle_i32x4::<0b01_00_01_00>(a, b),
                _mm512_shuffle_i32x4::<0b11_10_11_10>(a, b),
            )
        });
        // Quarters: quarter j of vector i holds vector 4i + j's 4 partial values.
        let q: [__m512i; 4] = std::array::from_fn(|i| {
            let (a, b) = (h[2 * i], h[2 * i + 1]);
            op(
                _mm512_shuffle_i32x4::<0b10_00_10_00>(a, b),
                _mm512_shuffle_i32x4::<0b11_01_11_01>(a, b),
            )
        });
        // Pairs, then lanes, inside each quarter.
        let p: [__m512i; 2] = std::array::from_fn(|i| {
            let (a, b) = (q[2 * i], q[2 * i + 1]);
            op(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b))
        });
        op(
            _mm512_unpacklo_epi64(p[0], p[1]),
            _mm512_unpackhi_epi64(p[0], p[1]),
        )
    }

    /// Sixteen blocks of [`quantize_blocks_avx512`].
    ///
    /// # Safety
    /// AVX-512 F/BW/VL supported.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn quantize_16_blocks_avx512(x: &[f32], q: &mut [i8], terms: &mut [BlockTerms; 16]) {
        assert!(x.len() == 16 * ACTIVATION_BLOCK && q.len() == 16 * ACTIVATION_BLOCK);
        let zero = _mm512_setzero_ps();
        // SAFETY (loads and stores below): block b's 32 floats and 32 bytes are inside the
        // asserted lengths.
        let v: [[__m512; 2]; 16] = std::array::from_fn(|b| unsafe {
            let at = x.as_ptr().add(b * ACTIVATION_BLOCK);
            [_mm512_loadu_ps(at), _mm512_loadu_ps(at.add(16))]
        });
        // `max(|v|, m)` returns `m` where `|v|` is NaN, as `f32::max` ignores a NaN.
        let m = v.map(|[lo, hi]| {
            let m = _mm512_max_ps(_mm512_abs_ps(hi), _mm512_max_ps(_mm512_abs_ps(lo), zero));
            _mm512_castps_si512(m)
        });
        let d = _mm512_div_ps(
            _mm512_castsi512_ps(reduce_16::<true>(m)),
            _mm512_set1_ps(127.0),
        );
        // `1 / d` where `d != 0` (as the scalar reference's comparison, unordered included).
        let nonzero = _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(d, zero);
        let inverse = _mm512_maskz_div_ps(nonzero, _mm512_set1_ps(1.0), d);
        let mut codes = [[_mm512_setzero_si512(); 16]; 2];
        for (b, [lo, hi]) in v.into_iter().enumerate() {
            let lane = _mm512_set1_epi32(reduced_lane(b) as i32);
            let inverse = _mm512_permutexvar_ps(lane, inverse);
            for (h, half) in [lo, hi].into_iter().enumerate() {
                let c = codes16(half, inverse);
                // SAFETY: as above.
                unsafe {
                    let at = q.as_mut_ptr().add(b * ACTIVATION_BLOCK + 16 * h);
                    _mm_storeu_si128(at.cast(), _mm512_cvtepi32_epi8(c));
                }
                codes[h][b] = c;
            }
        }
        let (mut scales, mut sums) = ([0f32; 16], [[0i32; 16]; 2]);
        // SAFETY: 16 lanes into arrays of 16.
        unsafe {
            _mm512_storeu_ps(scales.as_mut_ptr(), d);
            for (sums, codes) in sums.iter_mut().zip(codes) {
                _mm512_storeu_si512(sums.as_mut_ptr().cast(), reduce_16::<false>(codes));
            }
        }
        for (b, t) in terms.iter_mut().enumerate() {
            let l = reduced_lane(b);
            *t = BlockTerms {
                scale: scales[l],
                half_sums: [sums[0][l], sums[1][l]],
            };
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn quantize_block_avx512_impl(
        x: &[f32; ACTIVATION_BLOCK],
        q: &mut [i8; ACTIVATION_BLOCK],
    ) -> (f32, [i32; 2]) {
        // SAFETY: 2 × 16 floats in, 2 × 16 bytes out, inside the arrays.
        let v = unsafe {
            [
                _mm512_loadu_ps(x.as_ptr()),
                _mm512_loadu_ps(x.as_ptr().add(16)),
            ]
        };
        // `max(|v|, m)` returns `m` where `|v|` is NaN, as `f32::max` ignores a NaN.
        let zero = _mm512_setzero_ps();
        let m = _mm512_max_ps(
            _mm512_abs_ps(v[1]),
            _mm512_max_ps(_mm512_abs_ps(v[0]), zero),
        );
        let d = _mm512_reduce_max_ps(m) / 127.0;
        let inverse = _mm512_set1_ps(if d != 0.0 { 1.0 / d } else { 0.0 });
        let mut sums = [0i32; 2];
        for h in 0..2 {
            let codes = codes16(v[h], inverse);
            // SAFETY: bytes 16h..16h + 16 of `q`.
            unsafe {
                _mm_storeu_si128(
                    q.as_mut_ptr().add(16 * h).cast(),
                    _mm512_cvtepi32_epi8(codes),
                )
            };
            sums[h] = _mm512_reduce_add_epi32(codes);
        }
        (d, sums)
    }

    /// [`super::quantize_blocks`] on AVX2, block by block (as [`quantize_blocks_avx512`]).
    pub(super) fn quantize_blocks_avx2(x: &[f32], q: &mut [i8], terms: &mut [BlockTerms]) {
        assert!(crate::isa::Isa::Avx2.is_supported());
        block_by_block(x, q, terms, |x, q| {
            // SAFETY: features checked; 32 floats read, 32 bytes written (array types).
            unsafe { quantize_block_avx2_impl(x, q) }
        });
    }

    #[target_feature(enable = "avx2")]
    unsafe fn quantize_block_avx2_impl(
        x: &[f32; ACTIVATION_BLOCK],
        q: &mut [i8; ACTIVATION_BLOCK],
    ) -> (f32, [i32; 2]) {
        let mut v = [_mm256_setzero_ps(); 4];
        for (i, vi) in v.iter_mut().enumerate() {
            // SAFETY: floats 8i..8i + 8 of the array.
            *vi = unsafe { _mm256_loadu_ps(x.as_ptr().add(8 * i)) };
        }
        let magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        // `max(|v|, m)` returns `m` where `|v|` is NaN, as `f32::max` ignores a NaN.
        let mut m = _mm256_setzero_ps();
        for vi in v {
            m = _mm256_max_ps(_mm256_and_ps(vi, magnitude), m);
        }
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let m = _mm_max_ss(m, _mm_shuffle_ps::<1>(m, m));
        let d = _mm_cvtss_f32(m) / 127.0;
        let inverse = _mm256_set1_ps(if d != 0.0 { 1.0 / d } else { 0.0 });
        let mut codes = [_mm256_setzero_si256(); 4];
        for (c, vi) in codes.iter_mut().zip(v) {
            let p = _mm256_mul_ps(vi, inverse);
            let p = _mm256_and_ps(p, _mm256_cmp_ps::<_CMP_ORD_Q>(p, p));
            let p = _mm256_min_ps(
                _mm256_max_ps(p, _mm256_set1_ps(-127.0)),
                _mm256_set1_ps(127.0),
            );
            *c = _mm256_cvtps_epi32(p);
        }
        // Packing interleaves 128-bit halves; the permutation restores column order.
        let words = _mm256_packs_epi16(
            _mm256_packs_epi32(codes[0], codes[1]),
            _mm256_packs_epi32(codes[2], codes[3]),
        );
        let bytes = _mm256_permutevar8x32_epi32(words, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        // SAFETY: 32 bytes into the array.
        unsafe { _mm256_storeu_si256(q.as_mut_ptr().cast(), bytes) };
        let mut sums = [0i32; 2];
        for (h, sum) in sums.iter_mut().enumerate() {
            let s = _mm256_add_epi32(codes[2 * h], codes[2 * h + 1]);
            let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
            *sum = _mm_cvtsi128_si32(s);
        }
        (d, sums)
    }

    pub(super) fn dots_avx512(w: &PanelsRef, xs: &[TokenRef], dots: &mut Dots) {
        assert!(crate::isa::Isa::Avx512.is_supported());
        check_operands(w, xs, (MAX_PANELS, MAX_TOKENS));
        // SAFETY: features checked; the kernels only read within the lengths checked above,
        // with the storage the operands say.
        unsafe {
            match (w.nibble, w.half()) {
                (false, false) => avx512_shapes::<false, false>(w, xs, dots),
                (false, true) => avx512_shapes::<false, true>(w, xs, dots),
                (true, false) => avx512_shapes::<true, false>(w, xs, dots),
                (true, true) => avx512_shapes::<true, true>(w, xs, dots),
            }
        }
    }

    /// The AVX-512 kernel for the block shape of the operands.
    ///
    /// # Safety
    /// AVX-512 VNNI is supported, the operands passed `check_operands`, and `NIBBLE` / `HALF`
    /// are their storage.
    unsafe fn avx512_shapes<const NIBBLE: bool, const HALF: bool>(
        w: &PanelsRef,
        xs: &[TokenRef],
        dots: &mut Dots,
    ) {
        // SAFETY: the caller's contract.
        unsafe {
            match (w.count, xs.len()) {
                (4, 1) => avx512::<4, 1, NIBBLE, HALF>(w, xs, dots),
                (3, 1) => avx512::<3, 1, NIBBLE, HALF>(w, xs, dots),
                (2, 1) => avx512::<2, 1, NIBBLE, HALF>(w, xs, dots),
                (1, 1) => avx512::<1, 1, NIBBLE, HALF>(w, xs, dots),
                (2, 2) => avx512::<2, 2, NIBBLE, HALF>(w, xs, dots),
                (2, 3) => avx512::<2, 3, NIBBLE, HALF>(w, xs, dots),
                (2, 4) => avx512::<2, 4, NIBBLE, HALF>(w, xs, dots),
                (3, 4) => avx512::<3, 4, NIBBLE, HALF>(w, xs, dots),
                (3, 3) => avx512::<3, 3, NIBBLE, HALF>(w, xs, dots),
                (3, 2) => avx512::<3, 2, NIBBLE, HALF>(w, xs, dots),
                (1, 2) => avx512::<1, 2, NIBBLE, HALF>(w, xs, dots),
                (1, 3) => avx512::<1, 3, NIBBLE, HALF>(w, xs, dots),
                (1, 4) => avx512::<1, 4, NIBBLE, HALF>(w, xs, dots),
                shape => unreachable!("no AVX-512 code kernel for {shape:?}"),
            }
        }
    }

    /// Reads the 4 activation codes at `at` as one little-endian word.
    ///
    /// # Safety
    /// `at + 4 <= qs.len()`.
    #[inline(always)]
    unsafe fn quad(qs: &[i8], at: usize) -> i32 {
        // SAFETY: in bounds by the caller's contract; unaligned read of plain bytes.
        unsafe { qs.as_ptr().add(at).cast::<i32>().read_unaligned() }
    }

    /// Column quads per 64-byte block of codes.
    const fn quads_per_block(nibble: bool) -> usize {
        if nibble {
            2
        } else {
            1
        }
    }

    /// The bytes of quad `k` of a block of codes: the block itself (byte codes), else its low
    /// (k = 0) or high (k = 1) nibbles.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) fn unpack512<const NIBBLE: bool>(block: __m512i, k: usize) -> __m512i {
        if !NIBBLE {
            block
        } else if k == 0 {
            _mm512_and_si512(block, _mm512_set1_epi8(0x0f))
        } else {
            _mm512_and_si512(_mm512_srli_epi16::<4>(block), _mm512_set1_epi8(0x0f))
        }
    }

    /// As [`unpack512`], for half a block.
    #[target_feature(enable = "avx2")]
    fn unpack256<const NIBBLE: bool>(block: __m256i, k: usize) -> __m256i {
        if !NIBBLE {
            block
        } else if k == 0 {
            _mm256_and_si256(block, _mm256_set1_epi8(0x0f))
        } else {
            _mm256_and_si256(_mm256_srli_epi16::<4>(block), _mm256_set1_epi8(0x0f))
        }
    }

    /// 16 scales or offsets from `params + at` (f16 values if `HALF`, else f32), as f32.
    ///
    /// # Safety
    /// The 16 values are inside the slice `params` points into.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn params16<const HALF: bool>(params: *const u8, at: usize) -> __m512 {
        // SAFETY: in bounds by the caller's contract; unaligned loads.
        unsafe {
            if HALF {
                _mm512_cvtph_ps(_mm256_loadu_si256(params.cast::<u16>().add(at).cast()))
            } else {
                _mm512_loadu_ps(params.cast::<f32>().add(at))
            }
        }
    }

    /// 8 scales or offsets from `params + at`, as f32.
    ///
    /// # Safety
    /// The 8 values are inside the slice `params` points into.
    #[target_feature(enable = "avx,f16c")]
    unsafe fn params8<const HALF: bool>(params: *const u8, at: usize) -> __m256 {
        // SAFETY: in bounds by the caller's contract; unaligned loads.
        unsafe {
            if HALF {
                _mm256_cvtph_ps(_mm_loadu_si128(params.cast::<u16>().add(at).cast()))
            } else {
                _mm256_loadu_ps(params.cast::<f32>().add(at))
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
    unsafe fn avx512<const NP: usize, const NT: usize, const NIBBLE: bool, const HALF: bool>(
        w: &PanelsRef,
        xs: &[TokenRef],
        dots: &mut Dots,
    ) {
        let (cols, group) = (w.cols, w.group);
        let groups = cols / group;
        let panel_bytes = w.panel_bytes();
        let per_block = quads_per_block(NIBBLE);
        let codes = w.codes.as_ptr();
        let mut acc = [[_mm512_setzero_ps(); NT]; NP];
        for g in 0..groups {
            let mut int = [[_mm512_setzero_si512(); NT]; NP];
            for t in 0..NT {
                let b = _mm512_set1_epi32(xs[t].bias_sums[g]);
                for p in 0..NP {
                    int[p][t] = b;
                }
            }
            for i in g * group / (4 * per_block)..(g + 1) * group / (4 * per_block) {
                // SAFETY: block i < panel_bytes / 64 of panel p < count: inside `codes`
                // (checked); activation bytes 4j..4j+4 of quad j < cols / 4.
                unsafe {
                    let wv: [__m512i; NP] = std::array::from_fn(|p| {
                        _mm512_loadu_si512(codes.add(p * panel_bytes + i * QUAD_BYTES).cast())
                    });
                    for k in 0..per_block {
                        let j = i * per_block + k;
                        let u: [__m512i; NP] =
                            std::array::from_fn(|p| unpack512::<NIBBLE>(wv[p], k));
                        for t in 0..NT {
                            let x = _mm512_set1_epi32(quad(xs[t].qs, 4 * j));
                            for p in 0..NP {
                                int[p][t] = _mm512_dpbusd_epi32(int[p][t], u[p], x);
                            }
                        }
                    }
                }
            }
            for p in 0..NP {
                let at = (p * groups + g) * PANEL_ROWS;
                // SAFETY: 16 scales (offsets) of panel p, group g: inside the checked slices.
                let s = unsafe { params16::<HALF>(w.scales.as_ptr(), at) };
                for t in 0..NT {
                    let sd = _mm512_mul_ps(s, _mm512_set1_ps(xs[t].scales[g]));
                    acc[p][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(int[p][t]), sd, acc[p][t]);
                }
                if let Some(o) = w.offsets {
                    // SAFETY: as above.
                    let o = unsafe { params16::<HALF>(o.as_ptr(), at) };
                    for t in 0..NT {
                        acc[p][t] = _mm512_fmadd_ps(o, _mm512_set1_ps(xs[t].sums[g]), acc[p][t]);
                    }
                }
            }
        }
        for p in 0..NP {
            for t in 0..NT {
                // SAFETY: 16 floats into a [f32; 16].
                unsafe { _mm512_storeu_ps(dots[p][t].as_mut_ptr(), acc[p][t]) };
            }
        }
    }

    pub(super) fn dots_avx2(w: &PanelsRef, xs: &[TokenRef], dots: &mut Dots) {
        assert!(crate::isa::Isa::Avx2.is_supported());
        check_operands(w, xs, (MAX_PANELS, MAX_TOKENS));
        // SAFETY: features checked; the kernels only read within the lengths checked above,
        // with the storage the operands say (nibble codes are never wide: checked).
        unsafe {
            match (w.nibble, w.wide, w.half()) {
                (false, false, false) => avx2_shapes::<false, false, false>(w, xs, dots),
                (false, false, true) => avx2_shapes::<false, false, true>(w, xs, dots),
                (false, true, false) => avx2_shapes::<false, true, false>(w, xs, dots),
                (false, true, true) => avx2_shapes::<false, true, true>(w, xs, dots),
                (true, _, false) => avx2_shapes::<true, false, false>(w, xs, dots),
                (true, _, true) => avx2_shapes::<true, false, true>(w, xs, dots),
            }
        }
    }

    /// The AVX2 kernel for the block shape of the operands.
    ///
    /// # Safety
    /// AVX2, FMA and F16C are supported, the operands passed `check_operands`, and `NIBBLE`,
    /// `WIDE` and `HALF` are their storage.
    unsafe fn avx2_shapes<const NIBBLE: bool, const WIDE: bool, const HALF: bool>(
        w: &PanelsRef,
        xs: &[TokenRef],
        dots: &mut Dots,
    ) {
        // SAFETY: the caller's contract.
        unsafe {
            match (w.count, xs.len()) {
                (2, 1) => avx2::<2, 1, NIBBLE, WIDE, HALF>(w, xs, dots),
                (1, 1) => avx2::<1, 1, NIBBLE, WIDE, HALF>(w, xs, dots),
                (1, 2) => avx2::<1, 2, NIBBLE, WIDE, HALF>(w, xs, dots),
                shape => unreachable!("no AVX2 code kernel for {shape:?}"),
            }
        }
    }

    /// `Σ u·q` of 4-byte lanes, exact: `u ≤ 127` (narrow) keeps `vpmaddubsw`'s pair sums below
    /// 2·127·127; wide codes are split as `(u mod 128) + 128·(u div 128)`.
    #[target_feature(enable = "avx2,fma")]
    fn quad_dots<const WIDE: bool>(u: __m256i, q: __m256i) -> __m256i {
        let ones = _mm256_set1_epi16(1);
        if WIDE {
            let low = _mm256_and_si256(u, _mm256_set1_epi8(0x7f));
            let high = _mm256_and_si256(_mm256_srli_epi16::<7>(u), _mm256_set1_epi8(1));
            _mm256_add_epi32(
                _mm256_madd_epi16(_mm256_maddubs_epi16(low, q), ones),
                _mm256_madd_epi16(_mm256_maddubs_epi16(high, q), _mm256_set1_epi16(128)),
            )
        } else {
            _mm256_madd_epi16(_mm256_maddubs_epi16(u, q), ones)
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn avx2<
        const NP: usize,
        const NT: usize,
        const NIBBLE: bool,
        const WIDE: bool,
        const HALF: bool,
    >(
        w: &PanelsRef,
        xs: &[TokenRef],
        dots: &mut Dots,
    ) {
        let (cols, group) = (w.cols, w.group);
        let groups = cols / group;
        let panel_bytes = w.panel_bytes();
        let per_block = quads_per_block(NIBBLE);
        let codes = w.codes.as_ptr();
        let mut acc = [[[_mm256_setzero_ps(); 2]; NT]; NP];
        for g in 0..groups {
            let mut int = [[[_mm256_setzero_si256(); 2]; NT]; NP];
            for t in 0..NT {
                let b = _mm256_set1_epi32(xs[t].bias_sums[g]);
                for p in 0..NP {
                    int[p][t] = [b; 2];
                }
            }
            for i in g * group / (4 * per_block)..(g + 1) * group / (4 * per_block) {
                // SAFETY: as in the AVX-512 kernel; each half is 32 of the block's 64 bytes.
                unsafe {
                    let wv: [[__m256i; 2]; NP] = std::array::from_fn(|p| {
                        let at = codes.add(p * panel_bytes + i * QUAD_BYTES);
                        [
                            _mm256_loadu_si256(at.cast()),
                            _mm256_loadu_si256(at.add(32).cast()),
                        ]
                    });
                    for k in 0..per_block {
                        let j = i * per_block + k;
                        let u: [[__m256i; 2]; NP] = std::array::from_fn(|p| {
                            std::array::from_fn(|h| unpack256::<NIBBLE>(wv[p][h], k))
                        });
                        for t in 0..NT {
                            let x = _mm256_set1_epi32(quad(xs[t].qs, 4 * j));
                            for p in 0..NP {
                                for h in 0..2 {
                                    int[p][t][h] = _mm256_add_epi32(
                                        int[p][t][h],
                                        quad_dots::<WIDE>(u[p][h], x),
                                    );
                                }
                            }
                        }
                    }
                }
            }
            for p in 0..NP {
                let at = (p * groups + g) * PANEL_ROWS;
                for h in 0..2 {
                    // SAFETY: 8 scales (offsets) of half h of panel p, group g: in bounds.
                    let s = unsafe { params8::<HALF>(w.scales.as_ptr(), at + 8 * h) };
                    for t in 0..NT {
                        let sd = _mm256_mul_ps(s, _mm256_set1_ps(xs[t].scales[g]));
                        acc[p][t][h] =
                            _mm256_fmadd_ps(_mm256_cvtepi32_ps(int[p][t][h]), sd, acc[p][t][h]);
                    }
                    if let Some(o) = w.offsets {
                        // SAFETY: as above.
                        let o = unsafe { params8::<HALF>(o.as_ptr(), at + 8 * h) };
                        for t in 0..NT {
                            acc[p][t][h] =
                                _mm256_fmadd_ps(o, _mm256_set1_ps(xs[t].sums[g]), acc[p][t][h]);
                        }
                    }
                }
            }
        }
        for p in 0..NP {
            for t in 0..NT {
                for h in 0..2 {
                    // SAFETY: 8 floats into lanes 8h..8h+8 of a [f32; 16].
                    unsafe { _mm256_storeu_ps(dots[p][t].as_mut_ptr().add(8 * h), acc[p][t][h]) };
                }
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    //! NEON panel kernel: a panel's 64-byte block of codes as four 16-byte registers (4 rows
    //! each), holding one quad (byte codes) or two (nibble codes, unpacked by AND 0x0F and a
    //! shift right by 4), the token's 4 activation codes duplicated into every 32-bit lane, exact
    //! quad dots by widening multiplies, then the float chain of the module docs in 16 lanes
    //! (four 4-lane registers), with scales and offsets widened from f16 on load when stored so.
    //! Generic over those storage choices: `NIBBLE` and `HALF`.

    use std::arch::aarch64::*;

    use super::{
        check_operands, Dots, PanelsRef, TokenRef, MAX_PANELS, MAX_TOKENS, PANEL_ROWS, QUAD_BYTES,
    };
    use crate::f16::neon::widen;
    use crate::ternary::neon::quad_dots;

    pub(super) fn dots_neon(w: &PanelsRef, xs: &[TokenRef], dots: &mut Dots) {
        check_operands(w, xs, (MAX_PANELS, MAX_TOKENS));
        // Nibble codes are never wide (checked).
        match (w.nibble, w.wide, w.half()) {
            (false, false, false) => shapes::<false, false, false>(w, xs, dots),
            (false, false, true) => shapes::<false, false, true>(w, xs, dots),
            (false, true, false) => shapes::<false, true, false>(w, xs, dots),
            (false, true, true) => shapes::<false, true, true>(w, xs, dots),
            (true, _, false) => shapes::<true, false, false>(w, xs, dots),
            (true, _, true) => shapes::<true, false, true>(w, xs, dots),
        }
    }

    /// The kernel for the block shape of the operands (checked, of storage `NIBBLE`, `WIDE`,
    /// `HALF`).
    fn shapes<const NIBBLE: bool, const WIDE: bool, const HALF: bool>(
        w: &PanelsRef,
        xs: &[TokenRef],
        dots: &mut Dots,
    ) {
        match (w.count, xs.len()) {
            (2, 1) => kernel::<2, 1, NIBBLE, WIDE, HALF>(w, xs, dots),
            (1, 1) => kernel::<1, 1, NIBBLE, WIDE, HALF>(w, xs, dots),
            (1, 2) => kernel::<1, 2, NIBBLE, WIDE, HALF>(w, xs, dots),
            shape => unreachable!("no NEON code kernel for {shape:?}"),
        }
    }

    /// `Σ u·q` of 4-byte lanes, exact: codes ≤ 127 are the same bytes signed; wide codes are
    /// split as `(u mod 128) + 128·(u div 128)`.
    #[inline(always)]
    fn unsigned_quad_dots<const WIDE: bool>(u: uint8x16_t, q: int8x16_t) -> int32x4_t {
        // SAFETY: NEON baseline register operations.
        unsafe {
            if WIDE {
                let low = vreinterpretq_s8_u8(vandq_u8(u, vdupq_n_u8(0x7f)));
                let high = vreinterpretq_s8_u8(vshrq_n_u8::<7>(u));
                vaddq_s32(quad_dots(low, q), vshlq_n_s32::<7>(quad_dots(high, q)))
            } else {
                quad_dots(vreinterpretq_s8_u8(u), q)
            }
        }
    }

    /// The bytes of quad `k` of (a quarter of) a block of codes: the block itself (byte codes),
    /// else its low (k = 0) or high (k = 1) nibbles.
    #[inline(always)]
    fn unpack<const NIBBLE: bool>(block: uint8x16_t, k: usize) -> uint8x16_t {
        // SAFETY: NEON baseline register operations.
        unsafe {
            if !NIBBLE {
                block
            } else if k == 0 {
                vandq_u8(block, vdupq_n_u8(0x0f))
            } else {
                vshrq_n_u8::<4>(block)
            }
        }
    }

    /// 4 scales or offsets from `params + at` (f16 values if `HALF`, else f32), as f32.
    ///
    /// # Safety
    /// The 4 values are inside the slice `params` points into.
    #[inline(always)]
    unsafe fn params4<const HALF: bool>(params: *const u8, at: usize) -> float32x4_t {
        // SAFETY: in bounds by the caller's contract; NEON baseline loads.
        unsafe {
            if HALF {
                widen(vld1_u16(params.cast::<u16>().add(at)))
            } else {
                vld1q_f32(params.cast::<f32>().add(at))
            }
        }
    }

    fn kernel<
        const NP: usize,
        const NT: usize,
        const NIBBLE: bool,
        const WIDE: bool,
        const HALF: bool,
    >(
        w: &PanelsRef,
        xs: &[TokenRef],
        dots: &mut Dots,
    ) {
        let (cols, group) = (w.cols, w.group);
        let groups = cols / group;
        let panel_bytes = w.panel_bytes();
        let per_block = if NIBBLE { 2 } else { 1 };
        // SAFETY (this block and the ones below): NEON is part of the aarch64 baseline; every
        // load is inside the slices `check_operands` measured (block i < panel_bytes / 64 of
        // panel p < count; 16 scales / offsets of panel p, group g, of the precision `HALF`
        // says; activation bytes 4j..4j+4 of quad j < cols / 4).
        unsafe {
            let mut acc = [[[vdupq_n_f32(0.0); 4]; NT]; NP];
            for g in 0..groups {
                let mut int = [[[vdupq_n_s32(0); 4]; NT]; NP];
                for t in 0..NT {
                    let b = vdupq_n_s32(xs[t].bias_sums[g]);
                    for p in 0..NP {
                        int[p][t] = [b; 4];
                    }
                }
                for i in g * group / (4 * per_block)..(g + 1) * group / (4 * per_block) {
                    let wv: [[uint8x16_t; 4]; NP] = std::array::from_fn(|p| {
                        let at = w.codes.as_ptr().add(p * panel_bytes + i * QUAD_BYTES);
                        std::array::from_fn(|r| vld1q_u8(at.add(16 * r)))
                    });
                    for k in 0..per_block {
                        let j = i * per_block + k;
                        for t in 0..NT {
                            let word = xs[t].qs.as_ptr().add(4 * j).cast::<i32>().read_unaligned();
                            let x = vreinterpretq_s8_s32(vdupq_n_s32(word));
                            for p in 0..NP {
                                for r in 0..4 {
                                    int[p][t][r] = vaddq_s32(
                                        int[p][t][r],
                                        unsigned_quad_dots::<WIDE>(
                                            unpack::<NIBBLE>(wv[p][r], k),
                                            x,
                                        ),
                                    );
                                }
                            }
                        }
                    }
                }
                for p in 0..NP {
                    let at = (p * groups + g) * PANEL_ROWS;
                    for r in 0..4 {
                        let s = params4::<HALF>(w.scales.as_ptr(), at + 4 * r);
                        for t in 0..NT {
                            let sd = vmulq_n_f32(s, xs[t].scales[g]);
                            acc[p][t][r] = vfmaq_f32(acc[p][t][r], vcvtq_f32_s32(int[p][t][r]), sd);
                        }
                        if let Some(o) = w.offsets {
                            let o = params4::<HALF>(o.as_ptr(), at + 4 * r);
                            for t in 0..NT {
                                acc[p][t][r] = vfmaq_n_f32(acc[p][t][r], o, xs[t].sums[g]);
                            }
                        }
                    }
                }
            }
            for p in 0..NP {
                for t in 0..NT {
                    for r in 0..4 {
                        vst1q_f32(dots[p][t].as_mut_ptr().add(4 * r), acc[p][t][r]);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{
        quantize_block_scalar, quantize_blocks, round_half_even_in_range, BlockTerms,
        ACTIVATION_BLOCK,
    };
    use crate::isa::Isa;

    /// Every ISA's block quantizer gives the scalar reference's codes, scale and half sums, on
    /// random blocks and on the edge cases: zeros, ties at every magnitude, NaN, infinities,
    /// subnormals, one huge value.
    #[test]
    fn every_isa_quantizes_blocks_as_the_scalar_reference() {
        let mut blocks: Vec<[f32; ACTIVATION_BLOCK]> =
            vec![[0.0; ACTIVATION_BLOCK], [-0.0; ACTIVATION_BLOCK]];
        // 127 at lane 0 makes d = 1, so lane i holds the tie (i - 16) + 0.5 and its neighbours.
        for shift in [0.5f32, 0.5f32.next_up(), 0.5f32.next_down()] {
            let mut b = [0.0; ACTIVATION_BLOCK];
            b[0] = 127.0;
            for (i, v) in b.iter_mut().enumerate().skip(1) {
                *v = (i as f32 - 16.0) * 7.0 + shift;
            }
            blocks.push(b);
        }
        for special in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e-40, -3e38] {
            let mut b: [f32; ACTIVATION_BLOCK] = std::array::from_fn(|i| i as f32 * 0.37 - 5.0);
            b[5] = special;
            blocks.push(b);
            blocks.push([special; ACTIVATION_BLOCK]);
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let scale = [1e-3f32, 1.0, 50.0, 1e6][blocks.len() % 4];
            blocks.push(std::array::from_fn(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((state >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * scale
            }));
        }
        let mut want = vec![0i8; blocks.len() * ACTIVATION_BLOCK];
        let mut want_terms = Vec::with_capacity(blocks.len());
        for (b, q) in blocks.iter().zip(want.chunks_exact_mut(ACTIVATION_BLOCK)) {
            let (scale, half_sums) = quantize_block_scalar(b, q.try_into().unwrap());
            want_terms.push(BlockTerms { scale, half_sums });
        }
        let x = blocks.concat();
        for isa in Isa::supported_for_tests() {
            // Runs of every length up to 70 blocks from the first 20 offsets, so every special
            // block passes through every position of the kernels' groups of blocks.
            for start in 0..20 {
                for len in 0..70 {
                    let span = start..start + len;
                    let values = span.start * ACTIVATION_BLOCK..span.end * ACTIVATION_BLOCK;
                    let mut got = vec![0i8; values.len()];
                    let mut terms = vec![BlockTerms::default(); span.len()];
                    quantize_blocks(isa, &x[values.clone()], &mut got, &mut terms);
                    assert_eq!(got, want[values], "{isa} {span:?}");
                    assert_terms_eq(&terms, &want_terms[span], isa);
                }
            }
            let mut got = vec![0i8; x.len()];
            let mut terms = vec![BlockTerms::default(); blocks.len()];
            quantize_blocks(isa, &x, &mut got, &mut terms);
            assert!(got == want, "{isa}");
            assert_terms_eq(&terms, &want_terms, isa);
        }
    }

    /// Scales compared by their bits.
    fn assert_terms_eq(got: &[BlockTerms], want: &[BlockTerms], isa: Isa) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let (g, w) = (
                (g.scale.to_bits(), g.half_sums),
                (w.scale.to_bits(), w.half_sums),
            );
            assert_eq!(g, w, "{isa} block {i}");
        }
    }

    #[test]
    fn rounding_in_range_is_round_ties_even() {
        // Every half-integer and its neighbours within the activation range, then a grid.
        for i in -300..=300 {
            let tie = i as f32 / 2.0;
            for v in [tie, tie.next_up(), tie.next_down()] {
                assert_eq!(round_half_even_in_range(v), v.round_ties_even(), "{v}");
            }
        }
        for i in -1_000_000..=1_000_000 {
            let v = i as f32 * 1.27e-4;
            assert_eq!(round_half_even_in_range(v), v.round_ties_even(), "{v}");
        }
        assert!(round_half_even_in_range(f32::NAN).is_nan());
    }
}
