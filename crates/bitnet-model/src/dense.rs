//! The path for non-ternary weights: a row-major `[rows × cols]` matrix and `y = x · Wᵀ` over a
//! batch of input rows.
//!
//! Storage, by the tensor's type:
//! - F32/BF16: f32 (exact), on the portable loop here;
//! - F16: F16 (exact), on the SIMD `matmul_f16` kernel of `bitnet-kernels`;
//! - Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K with `cols` a multiple of 64:
//!   kept quantized as integer codes (half a byte each for 4-bit codes) with per-16 or per-32
//!   scales and offsets (f16 where exact), repacked into 16-row panels for the integer
//!   dot-product units ([`bitnet_kernels::CodeMatrix`], exact; Q4_1 takes 0.625 bytes per weight,
//!   as stored), activations quantized to int8 per 32 (llama.cpp quantizes its activations for these
//!   products too). The panels serve a batch of tokens from each weight load, so a Gemma-3
//!   Q8_0 head of 262,144 rows costs 8 decoding sequences far less than 8 times one;
//! - Q8_0 with `cols` a multiple of 32 only, and the `--head q8_0` requantization: row-major
//!   ([`bitnet_kernels::Q8Matrix`], exact), activations quantized to Q8_0;
//! - any other block type (IQ2_S, and the types above with other column counts): dequantized at
//!   load and rounded to F16 (relative error ≤ 2⁻¹¹ per weight, far below the quantization error
//!   itself).

use std::sync::Mutex;

use bitnet_gguf::GgmlType;
use bitnet_kernels::pool::split_range;
use bitnet_kernels::{KernelError, ThreadPool};
use half::f16;

use crate::error::ModelError;

/// Input bytes converted between two calls of the `done` callback of
/// [`DenseMatrix::dequantized_releasing`].
pub const RELEASE_PIECE: usize = 16 << 20;

/// A dense matrix: `rows` output features, each a contiguous row of `cols` input weights
/// (the GGUF `[cols, rows]` tensor, not transposed).
#[derive(Debug, Clone, PartialEq)]
pub struct DenseMatrix {
    pub rows: usize,
    pub cols: usize,
    pub data: DenseData,
}

/// The element storage of a [`DenseMatrix`].
#[derive(Debug, Clone, PartialEq)]
pub enum DenseData {
    F32(Vec<f32>),
    F16(Vec<f16>),
    /// Q8_0, as stored or requantized at load (`--head q8_0`): half the bytes of F16 per product.
    Q8(bitnet_kernels::Q8Matrix),
    /// Q6_K (`--head q6_k`): requantized at load, or a stored Q6_K head as it is; 0.82 bytes
    /// per weight, kept packed.
    Q6K(bitnet_kernels::Q6KMatrix),
    /// Integer codes (nibbles or bytes) with per-16 or per-32 scales and offsets, in row panels
    /// (the legacy and k-quant types, exact).
    Codes(bitnet_kernels::CodeMatrix),
}

const LANES: usize = 8;

impl DenseMatrix {
    /// The block-quantized codes, when the weights are kept as such.
    pub fn codes(&self) -> Option<&bitnet_kernels::CodeMatrix> {
        match &self.data {
            DenseData::Codes(m) => Some(m),
            _ => None,
        }
    }

    /// Wraps row-major f32 data; `data.len()` must equal `rows * cols`.
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), rows * cols, "dense matrix data length");
        DenseMatrix {
            rows,
            cols,
            data: DenseData::F32(data),
        }
    }

    /// Wraps row-major F16 data; `data.len()` must equal `rows * cols`.
    pub fn new_f16(rows: usize, cols: usize, data: Vec<f16>) -> Self {
        assert_eq!(data.len(), rows * cols, "dense matrix data length");
        DenseMatrix {
            rows,
            cols,
            data: DenseData::F16(data),
        }
    }

    /// Dequantizes `rows × cols` elements of type `ty` (tensor `name`, for errors) into f32
    /// storage for F32/BF16 and F16 storage otherwise (see the module docs).
    pub fn dequantized(
        name: &str,
        ty: GgmlType,
        bytes: &[u8],
        rows: usize,
        cols: usize,
    ) -> Result<Self, ModelError> {
        Self::dequantized_releasing(name, ty, bytes, rows, cols, |_| {})
    }

    /// [`DenseMatrix::dequantized`], calling `done(range)` after each piece of about
    /// [`RELEASE_PIECE`] input bytes is converted (in order), so a loader reading `bytes` from a
    /// mapped file can release them as it goes and never hold the tensor twice.
    pub fn dequantized_releasing(
        name: &str,
        ty: GgmlType,
        bytes: &[u8],
        rows: usize,
        cols: usize,
        done: impl Fn(std::ops::Range<usize>),
    ) -> Result<Self, ModelError> {
        let err = |e: bitnet_quant::QuantError| ModelError::TensorData {
            name: name.to_string(),
            reason: e.to_string(),
        };
        match ty {
            GgmlType::F32 | GgmlType::BF16 => {
                let mut data = vec![0.0f32; rows * cols];
                bitnet_quant::dequantize(ty, bytes, rows * cols, &mut data).map_err(err)?;
                Ok(DenseMatrix::new(rows, cols, data))
            }
            GgmlType::F16 => {
                let expected = rows * cols * 2;
                if bytes.len() != expected {
                    return Err(ModelError::TensorData {
                        name: name.to_string(),
                        reason: format!("{} bytes, {expected} expected", bytes.len()),
                    });
                }
                let mut data = Vec::with_capacity(rows * cols);
                for (i, piece) in bytes.chunks(RELEASE_PIECE).enumerate() {
                    data.extend(
                        piece
                            .chunks_exact(2)
                            .map(|b| f16::from_le_bytes([b[0], b[1]])),
                    );
                    done(i * RELEASE_PIECE..i * RELEASE_PIECE + piece.len());
                }
                Ok(DenseMatrix::new_f16(rows, cols, data))
            }
            _ if bitnet_quant::int_code_offsets(ty).is_some()
                && cols.is_multiple_of(bitnet_kernels::code_matrix::CODE_CHUNK) =>
            {
                let row_bytes = check_row_bytes(name, ty, bytes, rows, cols)?;
                let groups = cols / bitnet_quant::INT_CODE_GROUP;
                let mut codes = vec![0i8; rows * cols];
                let mut scales = vec![0f32; rows * groups];
                let mut offsets = vec![0f32; rows * groups];
                let rows_per_piece = (RELEASE_PIECE / row_bytes).max(1);
                for (i, piece) in bytes.chunks(rows_per_piece * row_bytes).enumerate() {
                    let r0 = i * rows_per_piece;
                    let n = piece.len() / row_bytes;
                    bitnet_quant::decode_int_codes(
                        ty,
                        piece,
                        n * cols,
                        &mut codes[r0 * cols..(r0 + n) * cols],
                        &mut scales[r0 * groups..(r0 + n) * groups],
                        &mut offsets[r0 * groups..(r0 + n) * groups],
                    )
                    .map_err(err)?;
                    let start = r0 * row_bytes;
                    done(start..start + piece.len());
                }
                let offsets = (bitnet_quant::int_code_offsets(ty) == Some(true)).then_some(offsets);
                let m = bitnet_kernels::CodeMatrix::from_parts(rows, cols, codes, scales, offsets)
                    .map_err(|e| kernel_err(name, e))?;
                Ok(DenseMatrix {
                    rows,
                    cols,
                    data: DenseData::Codes(m),
                })
            }
            GgmlType::Q8_0 if cols.is_multiple_of(bitnet_kernels::q8::Q8_BLOCK) => {
                let row_bytes = check_row_bytes(name, ty, bytes, rows, cols)?;
                let mut qs = Vec::with_capacity(rows * cols);
                let mut scales = Vec::with_capacity(rows * cols / 32);
                let rows_per_piece = (RELEASE_PIECE / row_bytes).max(1);
                for (i, piece) in bytes.chunks(rows_per_piece * row_bytes).enumerate() {
                    for block in piece.chunks_exact(34) {
                        scales.push(f16::from_le_bytes([block[0], block[1]]));
                        qs.extend(block[2..].iter().map(|&b| b as i8));
                    }
                    let start = i * rows_per_piece * row_bytes;
                    done(start..start + piece.len());
                }
                let q8 = bitnet_kernels::Q8Matrix::from_blocks(rows, cols, qs, scales)
                    .map_err(|e| kernel_err(name, e))?;
                Ok(DenseMatrix {
                    rows,
                    cols,
                    data: DenseData::Q8(q8),
                })
            }
            _ => {
                // Row by row, so no full-size f32 copy is ever held.
                let row_bytes = bitnet_quant::tensor_bytes(ty, cols).map_err(err)?;
                if bytes.len() != row_bytes * rows {
                    return Err(ModelError::TensorData {
                        name: name.to_string(),
                        reason: format!("{} bytes, {} expected", bytes.len(), row_bytes * rows),
                    });
                }
                let mut row = vec![0.0f32; cols];
                let mut data = Vec::with_capacity(rows * cols);
                let rows_per_piece = (RELEASE_PIECE / row_bytes.max(1)).max(1);
                for (i, piece) in bytes.chunks(rows_per_piece * row_bytes).enumerate() {
                    for chunk in piece.chunks_exact(row_bytes) {
                        bitnet_quant::dequantize(ty, chunk, cols, &mut row).map_err(err)?;
                        data.extend(row.iter().map(|&v| f16::from_f32(v)));
                    }
                    let start = i * rows_per_piece * row_bytes;
                    done(start..start + piece.len());
                }
                Ok(DenseMatrix::new_f16(rows, cols, data))
            }
        }
    }

    /// The matrix cut into consecutive blocks of output rows (`sizes` must add up to `rows`):
    /// a fused projection (`attn_qkv`, Phi-3's gate-up) becomes its parts. Each part's rows
    /// hold the same values, so each output is the same dot product as in the fused matrix.
    pub fn split_rows(self, sizes: &[usize]) -> Option<Vec<DenseMatrix>> {
        if sizes.iter().sum::<usize>() != self.rows {
            return None;
        }
        let cols = self.cols;
        if let DenseData::Codes(m) = &self.data {
            return Some(
                m.split_rows(sizes)?
                    .into_iter()
                    .zip(sizes)
                    .map(|(m, &rows)| DenseMatrix {
                        rows,
                        cols,
                        data: DenseData::Codes(m),
                    })
                    .collect(),
            );
        }
        let mut start = 0;
        let mut parts = Vec::with_capacity(sizes.len());
        for &rows in sizes {
            let span = start * cols..(start + rows) * cols;
            let data = match &self.data {
                DenseData::F32(d) => DenseData::F32(d[span].to_vec()),
                DenseData::F16(d) => DenseData::F16(d[span].to_vec()),
                DenseData::Q8(q) => {
                    let blocks = span.start / 32..span.end / 32;
                    DenseData::Q8(
                        bitnet_kernels::Q8Matrix::from_blocks(
                            rows,
                            cols,
                            q.codes()[span].to_vec(),
                            q.block_scales()[blocks].to_vec(),
                        )
                        .ok()?,
                    )
                }
                DenseData::Q6K(_) => return None,
                DenseData::Codes(_) => unreachable!("split above"),
            };
            parts.push(DenseMatrix { rows, cols, data });
            start += rows;
        }
        Some(parts)
    }

    /// The same matrix requantized to Q8_0 (ggml's rounding), for a smaller, faster head.
    pub fn to_q8_0(&self) -> Result<DenseMatrix, KernelError> {
        let q8 = match &self.data {
            DenseData::F32(w) => bitnet_kernels::Q8Matrix::quantize_f32(w, self.rows, self.cols)?,
            DenseData::F16(w) => bitnet_kernels::Q8Matrix::quantize_f16(w, self.rows, self.cols)?,
            DenseData::Q8(_) | DenseData::Q6K(_) => return Ok(self.clone()),
            DenseData::Codes(_) => {
                let mut row = vec![0f32; self.cols];
                let mut qs = vec![0i8; self.rows * self.cols];
                let mut scales = vec![f16::ZERO; self.rows * self.cols / 32];
                for (r, (q, s)) in qs
                    .chunks_exact_mut(self.cols)
                    .zip(scales.chunks_exact_mut(self.cols / 32))
                    .enumerate()
                {
                    self.row_into(r, &mut row);
                    bitnet_kernels::quantize_q8_0(&row, q, s)?;
                }
                bitnet_kernels::Q8Matrix::from_blocks(self.rows, self.cols, qs, scales)?
            }
        };
        Ok(DenseMatrix {
            rows: self.rows,
            cols: self.cols,
            data: DenseData::Q8(q8),
        })
    }

    /// The same matrix requantized to Q6_K by ggml's algorithm (bitnet-quant's quantizer), each
    /// row zero-padded to whole 256-value super-blocks; rows are spread over `threads` threads
    /// (the 2B-4T head takes seconds).
    pub fn to_q6_k(&self, threads: usize) -> Result<DenseMatrix, ModelError> {
        use bitnet_kernels::q6k::{Q6K_BLOCK, Q6K_BLOCK_BYTES};
        if matches!(self.data, DenseData::Q6K(_)) {
            return Ok(self.clone());
        }
        let (rows, cols) = (self.rows, self.cols);
        let padded = bitnet_kernels::Q6KMatrix::blocks_per_row(cols) * Q6K_BLOCK;
        let row_bytes = padded / Q6K_BLOCK * Q6K_BLOCK_BYTES;
        let mut data = vec![0u8; rows * row_bytes];
        let threads = threads.clamp(1, rows);
        let per_thread = rows.div_ceil(threads);
        let failure: Mutex<Option<String>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for (part, out) in data.chunks_mut(per_thread * row_bytes).enumerate() {
                let failure = &failure;
                scope.spawn(move || {
                    let mut row = vec![0f32; padded];
                    for (i, out) in out.chunks_exact_mut(row_bytes).enumerate() {
                        let r = part * per_thread + i;
                        // ggml's values of the row (dequantized where the head is quantized).
                        self.row_into(r, &mut row[..cols]);
                        match bitnet_quant::quantize(GgmlType::Q6K, &row) {
                            Ok(bytes) => out.copy_from_slice(&bytes),
                            Err(e) => {
                                *failure.lock().unwrap_or_else(|p| p.into_inner()) =
                                    Some(e.to_string());
                                return;
                            }
                        }
                    }
                });
            }
        });
        if let Some(reason) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(ModelError::Kernel(reason));
        }
        Self::from_q6_k(rows, cols, data)
    }

    /// Wraps Q6_K bytes (ggml's blocks, each row `⌈cols/256⌉` of them).
    pub fn from_q6_k(rows: usize, cols: usize, bytes: Vec<u8>) -> Result<DenseMatrix, ModelError> {
        let q6k = bitnet_kernels::Q6KMatrix::from_blocks(rows, cols, bytes)
            .map_err(|e| ModelError::Kernel(e.to_string()))?;
        Ok(DenseMatrix {
            rows,
            cols,
            data: DenseData::Q6K(q6k),
        })
    }

    /// Whether this matrix holds exactly the values of a tensor stored as `ty` (so rows can be
    /// read from it instead of from a second copy of that tensor).
    pub fn is_exact_copy_of(&self, ty: GgmlType) -> bool {
        matches!(
            (&self.data, ty),
            (DenseData::F16(_), GgmlType::F16)
                | (DenseData::F32(_), GgmlType::F32 | GgmlType::BF16)
                | (DenseData::Q8(_), GgmlType::Q8_0)
        ) || (matches!(self.data, DenseData::Codes(_))
            && bitnet_quant::int_code_offsets(ty).is_some())
    }

    /// Whether the token lookups of a tied table stored as `ty` read this (head) matrix: when it
    /// holds the table's exact values, and when it is Q6_K (one quantized table for both uses,
    /// as bitnet.cpp's Q6_K embedding: the lookups get ggml's dequantized Q6_K values).
    pub fn serves_lookups_of(&self, ty: GgmlType) -> bool {
        self.is_exact_copy_of(ty) || matches!(self.data, DenseData::Q6K(_))
    }

    /// Row `r` as f32 (ggml's dequantized values for quantized storage).
    pub fn row_into(&self, r: usize, out: &mut [f32]) {
        let span = r * self.cols..(r + 1) * self.cols;
        match &self.data {
            DenseData::F32(d) => out.copy_from_slice(&d[span]),
            DenseData::F16(d) => out
                .iter_mut()
                .zip(&d[span])
                .for_each(|(o, v)| *o = v.to_f32()),
            DenseData::Q6K(m) => {
                // ggml's dequantized values (the row's padding is dropped).
                let blocks = m.row_blocks(r);
                let padded = blocks.len() / bitnet_kernels::q6k::Q6K_BLOCK_BYTES
                    * bitnet_kernels::q6k::Q6K_BLOCK;
                let mut row = vec![0f32; padded];
                bitnet_quant::dequantize(GgmlType::Q6K, blocks, padded, &mut row)
                    .expect("a Q6KMatrix row holds whole Q6_K blocks");
                out.copy_from_slice(&row[..self.cols]);
            }
            DenseData::Q8(q) => {
                let blocks = span.start / 32..span.end / 32;
                for ((o, c), d) in out
                    .chunks_exact_mut(32)
                    .zip(q.codes()[span].chunks_exact(32))
                    .zip(&q.block_scales()[blocks])
                {
                    let d = d.to_f32();
                    for (o, &c) in o.iter_mut().zip(c) {
                        *o = f32::from(c) * d; // ggml: x[j] · d
                    }
                }
            }
            DenseData::Codes(m) => m.row_into(r, out),
        }
    }

    /// Row `r` of f32 storage (the weights of output feature `r`).
    fn row_f32(&self, r: usize) -> &[f32] {
        match &self.data {
            DenseData::F32(d) => &d[r * self.cols..(r + 1) * self.cols],
            DenseData::F16(_) | DenseData::Q8(_) | DenseData::Q6K(_) | DenseData::Codes(_) => {
                unreachable!("row_f32 is only called on f32 storage")
            }
        }
    }

    /// `out[t][r] = Σ_j x[t][j] · W[r][j]` for `batch` rows of `x` (each `cols` wide);
    /// `out` is `batch × rows`. Work is split over the pool's threads (by input rows for
    /// batches, by output features for a single row).
    pub fn matmul(
        &self,
        x: &[f32],
        batch: usize,
        out: &mut [f32],
        pool: &ThreadPool,
    ) -> Result<(), KernelError> {
        match &self.data {
            DenseData::F16(w) => {
                return bitnet_kernels::matmul_f16(w, self.rows, self.cols, x, batch, out, pool)
            }
            DenseData::Q8(w) => return w.matmul(x, batch, out, pool),
            DenseData::Q6K(w) => return w.matmul(x, batch, out, pool),
            DenseData::Codes(w) => return w.matmul(x, batch, out, pool),
            DenseData::F32(_) => {}
        }
        if x.len() != batch * self.cols || out.len() != batch * self.rows {
            return Err(KernelError::LengthMismatch {
                what: "dense matmul operands",
                expected: batch * self.cols,
                actual: x.len(),
            });
        }
        let threads = pool.threads();
        let work = batch * self.rows * self.cols;
        if threads == 1 || work < 1 << 16 {
            self.matmul_rows(x, batch, 0..self.rows, out, self.rows);
            return Ok(());
        }
        let by_batch = batch >= 4 * threads;
        let parts: Vec<Mutex<Vec<f32>>> = (0..threads).map(|_| Mutex::new(Vec::new())).collect();
        pool.run(threads, &|i| {
            let part = if by_batch {
                let t = split_range(batch, threads, i);
                let mut buf = vec![0.0f32; t.len() * self.rows];
                let xs = &x[t.start * self.cols..t.end * self.cols];
                self.matmul_rows(xs, t.len(), 0..self.rows, &mut buf, self.rows);
                buf
            } else {
                let r = split_range(self.rows, threads, i);
                let mut buf = vec![0.0f32; batch * r.len()];
                let w = r.len();
                self.matmul_rows(x, batch, r, &mut buf, w);
                buf
            };
            *parts[i].lock().unwrap_or_else(|p| p.into_inner()) = part;
        });
        for (i, part) in parts.into_iter().enumerate() {
            let part = part.into_inner().unwrap_or_else(|p| p.into_inner());
            if by_batch {
                let t = split_range(batch, threads, i);
                out[t.start * self.rows..t.end * self.rows].copy_from_slice(&part);
            } else {
                let r = split_range(self.rows, threads, i);
                let w = r.len();
                for t in 0..batch {
                    out[t * self.rows + r.start..t * self.rows + r.end]
                        .copy_from_slice(&part[t * w..(t + 1) * w]);
                }
            }
        }
        Ok(())
    }

    /// Single-threaded core: output features `rows` for every input row, written to `out`
    /// whose row stride is `out_stride` (column `r - rows.start`).
    fn matmul_rows(
        &self,
        x: &[f32],
        batch: usize,
        rows: std::ops::Range<usize>,
        out: &mut [f32],
        out_stride: usize,
    ) {
        const ROW_BLOCK: usize = 16;
        let k = self.cols;
        let mut r_block = rows.start;
        while r_block < rows.end {
            let r_end = (r_block + ROW_BLOCK).min(rows.end);
            let mut t = 0;
            while t < batch {
                let tn = (batch - t).min(4);
                let xs: [&[f32]; 4] = std::array::from_fn(|i| {
                    &x[(t + i.min(tn - 1)) * k..(t + i.min(tn - 1) + 1) * k]
                });
                let mut r = r_block;
                while r < r_end {
                    let rn = (r_end - r).min(2);
                    let w0 = self.row_f32(r);
                    let w1 = self.row_f32(r + rn - 1);
                    let d = dot_2x4(w0, w1, xs);
                    for i in 0..tn {
                        out[(t + i) * out_stride + (r - rows.start)] = d[0][i];
                        if rn == 2 {
                            out[(t + i) * out_stride + (r + 1 - rows.start)] = d[1][i];
                        }
                    }
                    r += rn;
                }
                t += tn;
            }
            r_block = r_end;
        }
    }
}

/// The byte length of one row of `cols` elements of `ty`, after checking `bytes` holds `rows`.
fn check_row_bytes(
    name: &str,
    ty: GgmlType,
    bytes: &[u8],
    rows: usize,
    cols: usize,
) -> Result<usize, ModelError> {
    let row_bytes = bitnet_quant::tensor_bytes(ty, cols).map_err(|e| ModelError::TensorData {
        name: name.to_string(),
        reason: e.to_string(),
    })?;
    if bytes.len() != row_bytes * rows {
        return Err(ModelError::TensorData {
            name: name.to_string(),
            reason: format!("{} bytes, {} expected", bytes.len(), row_bytes * rows),
        });
    }
    Ok(row_bytes)
}

fn kernel_err(name: &str, e: KernelError) -> ModelError {
    ModelError::TensorData {
        name: name.to_string(),
        reason: e.to_string(),
    }
}

/// Dot products of two weight rows with four input rows, in 8-lane accumulators.
fn dot_2x4(w0: &[f32], w1: &[f32], xs: [&[f32]; 4]) -> [[f32; 4]; 2] {
    let k = w0.len();
    let main = k - k % LANES;
    let mut acc = [[[0.0f32; LANES]; 4]; 2];
    let mut j = 0;
    while j < main {
        let a: &[f32; LANES] = w0[j..j + LANES].try_into().expect("lane slice");
        let b: &[f32; LANES] = w1[j..j + LANES].try_into().expect("lane slice");
        for (i, xr) in xs.iter().enumerate() {
            let v: &[f32; LANES] = xr[j..j + LANES].try_into().expect("lane slice");
            for l in 0..LANES {
                acc[0][i][l] += a[l] * v[l];
                acc[1][i][l] += b[l] * v[l];
            }
        }
        j += LANES;
    }
    let mut out = [[0.0f32; 4]; 2];
    for (i, xr) in xs.iter().enumerate() {
        for (wi, w) in [w0, w1].iter().enumerate() {
            let mut s: f32 = acc[wi][i].iter().sum();
            for jj in main..k {
                s += w[jj] * xr[jj];
            }
            out[wi][i] = s;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(w: &DenseMatrix, x: &[f32], batch: usize) -> Vec<f64> {
        let mut out = vec![0.0f64; batch * w.rows];
        for t in 0..batch {
            for r in 0..w.rows {
                out[t * w.rows + r] = (0..w.cols)
                    .map(|j| f64::from(w.row_f32(r)[j]) * f64::from(x[t * w.cols + j]))
                    .sum();
            }
        }
        out
    }

    #[test]
    fn matmul_agrees_with_f64_sums_for_all_split_strategies() {
        for &(rows, cols, batch) in &[(7, 13, 1), (33, 70, 5), (64, 300, 9), (5, 1024, 40)] {
            let w = DenseMatrix::new(
                rows,
                cols,
                (0..rows * cols)
                    .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 300.0)
                    .collect(),
            );
            let x: Vec<f32> = (0..batch * cols)
                .map(|i| ((i * 104_729 % 977) as f32 - 488.0) / 250.0)
                .collect();
            let expect = naive(&w, &x, batch);
            for threads in [1, 2, 3] {
                let pool = ThreadPool::new(threads);
                let mut out = vec![0.0f32; batch * rows];
                w.matmul(&x, batch, &mut out, &pool).unwrap();
                for (o, e) in out.iter().zip(&expect) {
                    assert!(
                        (f64::from(*o) - e).abs() <= 1e-4 * (1.0 + e.abs()),
                        "{o} vs {e}"
                    );
                }
            }
        }
    }
}
