//! The one exact ternary representation (`TernaryTensor`) and its lossless conversion from and to
//! every ternary storage format: I2_S, BitNet32-F16, TQ1_0, TQ2_0, and TL1/TL2 at the shapes
//! bitnet.cpp has tile sizes for. Kernels build their packed layouts from a `TernaryTensor`;
//! nothing else decodes ternary codes.

use bitnet_gguf::GgmlType;

use crate::float::{f16_at, f32_to_f16_bits};
use crate::i2s::{bn32_codes, i2s_scale, i2s_values, put_bn32, put_i2s, BN32_BYTES, BN32_LEN};
use crate::size::{check_bytes, tensor_bytes, tensor_bytes_for_shape};
use crate::tl::{self, tl_shape, tl_tiles};
use crate::tq::{put_tq1, put_tq2, tq1_codes, tq2_codes, QK, TQ1_BYTES, TQ2_BYTES};
use crate::QuantError;

/// How the ternary levels are scaled.
#[derive(Debug, Clone, PartialEq)]
pub enum TernaryScales {
    /// One scale for the whole tensor (I2_S).
    PerTensor(f32),
    /// One scale per `block_len` consecutive elements of a row, row-major
    /// (TQ1_0 / TQ2_0: 256, BitNet32-F16: 32; the f16 scale as stored, widened to f32).
    PerBlock { block_len: usize, scales: Vec<f32> },
}

/// A ternary weight matrix: `values[r * cols + c] ∈ {−1, 0, 1}`; row `r` is output feature `r`
/// (the GGUF ne1 index), `cols` is ne0 (the input dimension). Element value = `t · scale`.
#[derive(Debug, Clone, PartialEq)]
pub struct TernaryTensor {
    pub rows: usize,
    pub cols: usize,
    pub values: Vec<i8>,
    pub scales: TernaryScales,
}

impl TernaryTensor {
    /// Builds a tensor after checking that the parts fit together.
    pub fn new(
        rows: usize,
        cols: usize,
        values: Vec<i8>,
        scales: TernaryScales,
    ) -> Result<Self, QuantError> {
        let tensor = Self {
            rows,
            cols,
            values,
            scales,
        };
        tensor.validate()?;
        Ok(tensor)
    }

    fn validate(&self) -> Result<(), QuantError> {
        let n = self.rows.checked_mul(self.cols).ok_or_else(|| {
            QuantError::InvalidTernary(format!("{} x {} overflows", self.rows, self.cols))
        })?;
        if self.values.len() != n {
            return Err(QuantError::InvalidTernary(format!(
                "{} values for {} x {}",
                self.values.len(),
                self.rows,
                self.cols
            )));
        }
        if let Some(i) = self.values.iter().position(|v| !(-1..=1).contains(v)) {
            return Err(QuantError::InvalidTernary(format!(
                "value {} at {i} is not -1, 0 or 1",
                self.values[i]
            )));
        }
        if let TernaryScales::PerBlock { block_len, scales } = &self.scales {
            if *block_len == 0 || !self.cols.is_multiple_of(*block_len) {
                return Err(QuantError::InvalidTernary(format!(
                    "block length {block_len} does not divide the row length {}",
                    self.cols
                )));
            }
            if scales.len() != n / block_len {
                return Err(QuantError::InvalidTernary(format!(
                    "{} block scales, {} needed",
                    scales.len(),
                    n / block_len
                )));
            }
        }
        Ok(())
    }

    /// A tensor the decoders built: levels and scale counts are right by construction, so the
    /// full validation pass is only repeated in debug builds.
    fn decoded(
        rows: usize,
        cols: usize,
        values: Vec<i8>,
        scales: TernaryScales,
    ) -> Result<Self, QuantError> {
        let tensor = Self {
            rows,
            cols,
            values,
            scales,
        };
        debug_assert_eq!(tensor.validate(), Ok(()));
        Ok(tensor)
    }

    /// Number of elements (`rows · cols`).
    pub fn n_elements(&self) -> usize {
        self.values.len()
    }

    /// The scale that multiplies element `index` (row-major).
    pub fn scale_at(&self, index: usize) -> f32 {
        match &self.scales {
            TernaryScales::PerTensor(s) => *s,
            TernaryScales::PerBlock { block_len, scales } => scales[index / block_len],
        }
    }

    /// The real values `t · scale`, row-major (the same f32 products every dequantizer gives).
    pub fn to_f32(&self) -> Vec<f32> {
        self.values
            .iter()
            .enumerate()
            .map(|(i, &t)| f32::from(t) * self.scale_at(i))
            .collect()
    }
}

/// `(rows, cols)` of a ne0-first shape: cols = ne0, rows = product of the rest.
pub(crate) fn matrix_shape(ty: GgmlType, dims: &[u64]) -> Result<(usize, usize), QuantError> {
    let bad = |reason| QuantError::BadShape {
        ty,
        shape: dims.to_vec(),
        reason,
    };
    let (&cols, rest) = dims.split_first().ok_or_else(|| bad("no dimensions"))?;
    let cols = usize::try_from(cols).map_err(|_| bad("element count overflows"))?;
    let rows = rest
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(usize::try_from(d).ok()?))
        .ok_or_else(|| bad("element count overflows"))?;
    rows.checked_mul(cols)
        .ok_or_else(|| bad("element count overflows"))?;
    Ok((rows, cols))
}

fn require_row_blocks(
    ty: GgmlType,
    dims: &[u64],
    cols: usize,
    block: usize,
) -> Result<(), QuantError> {
    if !cols.is_multiple_of(block) {
        return Err(QuantError::BadShape {
            ty,
            shape: dims.to_vec(),
            reason: "row length (ne0) is not a multiple of the block length",
        });
    }
    Ok(())
}

/// Decodes a ternary-format tensor (ne0-first `dims`, as `u64` from a GGUF tensor table or as
/// `usize`) into its exact levels and scales. Lossless: `encode_ternary` of the result gives
/// back the same codes and scales.
pub fn decode_ternary<D: Copy + TryInto<u64>>(
    ty: GgmlType,
    bytes: &[u8],
    dims: &[D],
) -> Result<TernaryTensor, QuantError> {
    decode_ternary_reusing(ty, bytes, dims, Vec::new())
}

/// [`decode_ternary`] writing the values into `buffer`'s memory (its contents are discarded): a
/// loader that decodes tensor after tensor hands each result's `values` back in, so the memory is
/// allocated (and faulted in) once instead of once per tensor.
pub fn decode_ternary_reusing<D: Copy + TryInto<u64>>(
    ty: GgmlType,
    bytes: &[u8],
    dims: &[D],
    buffer: Vec<i8>,
) -> Result<TernaryTensor, QuantError> {
    let dims = dims
        .iter()
        .map(|&d| d.try_into().ok())
        .collect::<Option<Vec<u64>>>()
        .ok_or(QuantError::BadShape {
            ty,
            shape: Vec::new(),
            reason: "a dimension does not fit in u64",
        })?;
    decode_ternary_dims(ty, bytes, &dims, buffer)
}

fn decode_ternary_dims(
    ty: GgmlType,
    bytes: &[u8],
    dims: &[u64],
    mut buffer: Vec<i8>,
) -> Result<TernaryTensor, QuantError> {
    let (rows, cols) = matrix_shape(ty, dims)?;
    let n = rows * cols;
    buffer.clear();
    match ty {
        GgmlType::TL1 | GgmlType::TL2 => {
            let tiles = tl_shape(ty, dims)?;
            let expected = tensor_bytes_for_shape(ty, dims)?;
            if bytes.len() != expected {
                return Err(QuantError::ByteLength {
                    ty,
                    n_elements: n,
                    expected,
                    got: bytes.len(),
                });
            }
            let (values, scale) = tl::decode(ty, &tiles, bytes)?;
            TernaryTensor::decoded(rows, cols, values, TernaryScales::PerTensor(scale))
        }
        GgmlType::I2S => {
            check_bytes(ty, bytes, n)?;
            let mut values = buffer;
            values.resize(n, 0);
            i2s_values(bytes, n, &mut values)?;
            TernaryTensor::decoded(
                rows,
                cols,
                values,
                TernaryScales::PerTensor(i2s_scale(bytes, n)),
            )
        }
        GgmlType::TQ1_0 | GgmlType::TQ2_0 => {
            require_row_blocks(ty, dims, cols, QK)?;
            check_bytes(ty, bytes, n)?;
            let (block_bytes, scale_at) = if ty == GgmlType::TQ2_0 {
                (TQ2_BYTES, 64)
            } else {
                (TQ1_BYTES, 52)
            };
            let mut values = buffer;
            values.reserve(n);
            let mut scales = Vec::with_capacity(n / QK);
            for (b, block) in bytes.chunks_exact(block_bytes).enumerate() {
                let codes = if ty == GgmlType::TQ2_0 {
                    tq2_codes(block)
                } else {
                    tq1_codes(block)
                };
                push_codes(ty, &codes, b * QK, &mut values)?;
                scales.push(f16_at(block, scale_at));
            }
            TernaryTensor::decoded(
                rows,
                cols,
                values,
                TernaryScales::PerBlock {
                    block_len: QK,
                    scales,
                },
            )
        }
        GgmlType::BitNet32F16 => {
            require_row_blocks(ty, dims, cols, BN32_LEN)?;
            check_bytes(ty, bytes, n)?;
            let mut values = buffer;
            values.reserve(n);
            let mut scales = Vec::with_capacity(n / BN32_LEN);
            for (b, block) in bytes.chunks_exact(BN32_BYTES).enumerate() {
                push_codes(ty, &bn32_codes(block), b * BN32_LEN, &mut values)?;
                scales.push(f16_at(block, 8));
            }
            TernaryTensor::decoded(
                rows,
                cols,
                values,
                TernaryScales::PerBlock {
                    block_len: BN32_LEN,
                    scales,
                },
            )
        }
        _ => Err(QuantError::Unsupported {
            ty,
            op: "ternary decoding",
        }),
    }
}

fn push_codes(
    ty: GgmlType,
    codes: &[u8],
    first: usize,
    values: &mut Vec<i8>,
) -> Result<(), QuantError> {
    for (i, &c) in codes.iter().enumerate() {
        if c > 2 {
            return Err(QuantError::NotTernary {
                ty,
                index: first + i,
                code: c,
            });
        }
        values.push(c as i8 - 1);
    }
    Ok(())
}

/// Encodes a ternary tensor in format `ty`. I2_S needs a per-tensor scale (padding written as
/// zeros); TL1/TL2 a per-tensor scale and a shape bitnet.cpp has tile sizes for (bytes as its
/// converter and GGUF writer lay them out, padding zero); TQ1_0/TQ2_0 need per-block scales of 256, BitNet32-F16 of 32, stored as f16 (a scale
/// that is not an f16 value is rounded to the nearest one).
pub fn encode_ternary(tensor: &TernaryTensor, ty: GgmlType) -> Result<Vec<u8>, QuantError> {
    tensor.validate()?;
    let n = tensor.n_elements();
    let codes = || tensor.values.iter().map(|&t| (t + 1) as u8);
    let wrong_scales = |want: &str| {
        Err(QuantError::InvalidTernary(format!(
            "{} needs {want}, the tensor has {}",
            ty.name(),
            match &tensor.scales {
                TernaryScales::PerTensor(_) => "one per-tensor scale".to_string(),
                TernaryScales::PerBlock { block_len, .. } =>
                    format!("scales per {block_len} elements"),
            }
        )))
    };
    let mut out = vec![
        0u8;
        match ty {
            GgmlType::TL1 | GgmlType::TL2 =>
                tensor_bytes_for_shape(ty, &[tensor.cols as u64, tensor.rows as u64])?,
            _ => tensor_bytes(ty, n)?,
        }
    ];
    match (ty, &tensor.scales) {
        (GgmlType::TL1 | GgmlType::TL2, TernaryScales::PerTensor(s)) => {
            let tiles = tl_tiles(ty, tensor.rows, tensor.cols)?;
            tl::encode(ty, &tiles, &tensor.values, *s, &mut out);
        }
        (GgmlType::TL1 | GgmlType::TL2, _) => return wrong_scales("one per-tensor scale"),
        (GgmlType::I2S, TernaryScales::PerTensor(s)) => put_i2s(codes(), n, *s, &mut out),
        (GgmlType::I2S, _) => return wrong_scales("one per-tensor scale"),
        (
            GgmlType::TQ1_0 | GgmlType::TQ2_0,
            TernaryScales::PerBlock {
                block_len: QK,
                scales,
            },
        ) => {
            let block_bytes = if ty == GgmlType::TQ2_0 {
                TQ2_BYTES
            } else {
                TQ1_BYTES
            };
            for ((dst, src), &s) in out
                .chunks_exact_mut(block_bytes)
                .zip(tensor.values.chunks_exact(QK))
                .zip(scales)
            {
                let mut block_codes = [1u8; QK];
                for (c, &t) in block_codes.iter_mut().zip(src) {
                    *c = (t + 1) as u8;
                }
                if ty == GgmlType::TQ2_0 {
                    put_tq2(&block_codes, f32_to_f16_bits(s), dst);
                } else {
                    put_tq1(&block_codes, f32_to_f16_bits(s), dst);
                }
            }
        }
        (GgmlType::TQ1_0 | GgmlType::TQ2_0, _) => return wrong_scales("scales per 256 elements"),
        (
            GgmlType::BitNet32F16,
            TernaryScales::PerBlock {
                block_len: BN32_LEN,
                scales,
            },
        ) => {
            for ((dst, src), &s) in out
                .chunks_exact_mut(BN32_BYTES)
                .zip(tensor.values.chunks_exact(BN32_LEN))
                .zip(scales)
            {
                let mut block_codes = [1u8; BN32_LEN];
                for (c, &t) in block_codes.iter_mut().zip(src) {
                    *c = (t + 1) as u8;
                }
                put_bn32(&block_codes, f32_to_f16_bits(s), dst);
            }
        }
        (GgmlType::BitNet32F16, _) => return wrong_scales("scales per 32 elements"),
        _ => {
            return Err(QuantError::Unsupported {
                ty,
                op: "ternary encoding",
            })
        }
    }
    Ok(out)
}

/// The absmean ternarisation of BitNet b1.58 converters (FORMATS.md §2, oracle README §1.2):
/// `s = max(mean|W|, 1e-5)` with the mean taken in f64 and rounded to f32, then
/// `t = clamp(round_half_even(W / s), −1, 1)` in f32. `weights` is row-major `rows × cols`.
pub fn ternarize_absmean(
    rows: usize,
    cols: usize,
    weights: &[f32],
) -> Result<TernaryTensor, QuantError> {
    if rows.checked_mul(cols) != Some(weights.len()) {
        return Err(QuantError::InvalidTernary(format!(
            "{} weights for {rows} x {cols}",
            weights.len()
        )));
    }
    let mean = if weights.is_empty() {
        0.0
    } else {
        weights.iter().map(|&w| f64::from(w).abs()).sum::<f64>() / weights.len() as f64
    };
    let s = (mean as f32).max(1e-5);
    let values = weights
        .iter()
        .map(|&w| (w / s).round_ties_even().clamp(-1.0, 1.0) as i8)
        .collect();
    TernaryTensor::new(rows, cols, values, TernaryScales::PerTensor(s))
}
