//! bitnet-quant: every tensor storage format the engine reads or writes, bit-exact.
//!
//! - [`dequantize`] turns the bytes of any supported type into f32 (F32, F16, BF16, Q4_0, Q4_1,
//!   Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, Q8_K, IQ2_S, TQ1_0, TQ2_0, I2_S, BitNet32-F16), bit-identical to
//!   PyPI gguf's `gguf.quants` where it implements the type.
//! - [`quantize`] writes F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_K, Q6_K, Q4_K, TQ1_0,
//!   TQ2_0, I2_S (bitnet.cpp's bytes) and BitNet32-F16; bit-identical to gguf-py for the types it
//!   can quantize.
//! - [`TernaryTensor`] is the one exact ternary representation; [`decode_ternary`] /
//!   [`encode_ternary`] convert it losslessly from / to I2_S, BitNet32-F16, TQ1_0, TQ2_0 and
//!   bitnet.cpp's TL1/TL2.
//! - [`decode_int_codes`] gives the legacy and k-quant types as integer codes with one scale and
//!   offset per 16 elements, for kernels that keep weights quantized.
//! - [`tensor_bytes`] is the byte-size formula of every format addressed by element count;
//!   [`tensor_bytes_for_shape`] also covers TL1/TL2, whose size and layout depend on the shape.
//!
//! TL1/TL2 are permuted by kernel tile sizes that bitnet.cpp chose per matrix shape and the file
//! does not record; they are read (via [`decode_ternary`] or [`dequantize_tensor`], which take the
//! shape) for the shapes in [`TL1_TILES`] / [`TL2_TILES`], and any other shape is refused with
//! [`QuantError::UnsupportedLayout`].

#![forbid(unsafe_code)]

mod error;
mod float;
mod i2s;
mod int_codes;
mod iq2s;
mod iq2s_grid;
mod kquant_encode;
mod kquants;
mod legacy;
mod size;
mod ternary;
mod tl;
mod tq;

pub use bitnet_gguf::GgmlType;
pub use error::QuantError;
pub use float::{bf16_bits_to_f32, f32_to_bf16_bits, f32_to_f16_bits};
pub use int_codes::{decode_int_codes, int_code_offsets, INT_CODE_GROUP};
pub use size::{block_len, tensor_bytes, tensor_bytes_for_shape, I2S_BLOCK_LEN, I2S_TRAILER_BYTES};
pub use ternary::{
    decode_ternary, decode_ternary_reusing, encode_ternary, ternarize_absmean, TernaryScales,
    TernaryTensor,
};
pub use tl::{tl_tiles, TlTiles, TL1_TILES, TL2_TILES};

use size::{check_bytes, TL_REASON};

/// Per-block codec: `(block bytes, output values)`.
type BlockDecoder = fn(&[u8], &mut [f32]);
/// Per-block encoder: `(input values, block bytes)`.
type BlockEncoder = fn(&[f32], &mut [u8]);

fn block_decoder(ty: GgmlType) -> Option<BlockDecoder> {
    use GgmlType as T;
    Some(match ty {
        T::Q4_0 => legacy::dequantize_q4_0,
        T::Q4_1 => legacy::dequantize_q4_1,
        T::Q5_0 => legacy::dequantize_q5_0,
        T::Q5_1 => legacy::dequantize_q5_1,
        T::Q8_0 => legacy::dequantize_q8_0,
        T::Q2K => kquants::dequantize_q2_k,
        T::Q3K => kquants::dequantize_q3_k,
        T::Q4K => kquants::dequantize_q4_k,
        T::Q5K => kquants::dequantize_q5_k,
        T::Q6K => kquants::dequantize_q6_k,
        T::Q8K => kquants::dequantize_q8_k,
        T::IQ2S => iq2s::dequantize_iq2_s,
        T::TQ1_0 => tq::dequantize_tq1_0,
        T::TQ2_0 => tq::dequantize_tq2_0,
        _ => return None,
    })
}

fn block_encoder(ty: GgmlType) -> Option<BlockEncoder> {
    use GgmlType as T;
    Some(match ty {
        T::Q4_0 => legacy::quantize_q4_0,
        T::Q4_1 => legacy::quantize_q4_1,
        T::Q5_0 => legacy::quantize_q5_0,
        T::Q5_1 => legacy::quantize_q5_1,
        T::Q8_0 => legacy::quantize_q8_0,
        T::Q4K => kquant_encode::quantize_q4_k,
        T::Q6K => kquant_encode::quantize_q6_k,
        T::Q8K => kquant_encode::quantize_q8_k,
        T::TQ1_0 => tq::quantize_tq1_0,
        T::TQ2_0 => tq::quantize_tq2_0,
        T::BitNet32F16 => i2s::quantize_bn32,
        _ => return None,
    })
}

fn tl_error(ty: GgmlType, n_elements: usize) -> QuantError {
    QuantError::UnsupportedLayout {
        ty,
        shape: vec![n_elements as u64],
        reason: TL_REASON,
    }
}

/// Dequantizes `n_elements` values of type `ty` from `bytes` (exactly `tensor_bytes(ty, n)`
/// long) into `out` (exactly `n_elements` long).
///
/// I2_S and BitNet32-F16 reject code 3 ([`QuantError::NotTernary`]); TQ2_0 decodes it as +2·d
/// like ggml. NaN/inf scales propagate as IEEE arithmetic does (as in gguf-py). TL1/TL2 need the
/// shape: use [`dequantize_tensor`].
pub fn dequantize(
    ty: GgmlType,
    bytes: &[u8],
    n_elements: usize,
    out: &mut [f32],
) -> Result<(), QuantError> {
    if matches!(ty, GgmlType::TL1 | GgmlType::TL2) {
        return Err(tl_error(ty, n_elements));
    }
    if out.len() != n_elements {
        return Err(QuantError::OutputLength {
            expected: n_elements,
            got: out.len(),
        });
    }
    check_bytes(ty, bytes, n_elements)?;
    match ty {
        GgmlType::F32 => float::dequantize_f32(bytes, out),
        GgmlType::F16 => float::dequantize_f16(bytes, out),
        GgmlType::BF16 => float::dequantize_bf16(bytes, out),
        GgmlType::I2S => i2s::dequantize_i2s(bytes, out)?,
        GgmlType::BitNet32F16 => {
            for (b, (block, o)) in bytes
                .chunks_exact(i2s::BN32_BYTES)
                .zip(out.chunks_exact_mut(i2s::BN32_LEN))
                .enumerate()
            {
                i2s::dequantize_bn32(block, o, b)?;
            }
        }
        _ => {
            let decode = block_decoder(ty).ok_or(QuantError::Unsupported {
                ty,
                op: "dequantization",
            })?;
            let (block, block_bytes) = ty.block_geometry().ok_or(QuantError::Unsupported {
                ty,
                op: "dequantization",
            })?;
            for (src, dst) in bytes
                .chunks_exact(block_bytes)
                .zip(out.chunks_exact_mut(block))
            {
                decode(src, dst);
            }
        }
    }
    Ok(())
}

/// Dequantizes a tensor of shape `dims` (ne0 first) of any supported type from `bytes` (exactly
/// [`tensor_bytes_for_shape`] long) into `out` (one value per element, row-major). The one entry
/// point for TL1/TL2, whose layout depends on the shape; other types as [`dequantize`].
pub fn dequantize_tensor(
    ty: GgmlType,
    bytes: &[u8],
    dims: &[u64],
    out: &mut [f32],
) -> Result<(), QuantError> {
    if !matches!(ty, GgmlType::TL1 | GgmlType::TL2) {
        let (rows, cols) = ternary::matrix_shape(ty, dims)?;
        return dequantize(ty, bytes, rows * cols, out);
    }
    let tensor = decode_ternary(ty, bytes, dims)?;
    if out.len() != tensor.n_elements() {
        return Err(QuantError::OutputLength {
            expected: tensor.n_elements(),
            got: out.len(),
        });
    }
    out.copy_from_slice(&tensor.to_f32());
    Ok(())
}

/// Quantizes `src` into a new byte vector of `tensor_bytes(ty, src.len())` bytes.
///
/// Element counts must fill whole blocks. I2_S follows bitnet.cpp's `quantize_i2_s` (scale =
/// max|x| of the whole slice, so pass one whole tensor; padding written as zeros).
pub fn quantize(ty: GgmlType, src: &[f32]) -> Result<Vec<u8>, QuantError> {
    if matches!(ty, GgmlType::TL1 | GgmlType::TL2) {
        return Err(tl_error(ty, src.len()));
    }
    let n_bytes = tensor_bytes(ty, src.len())?;
    let mut out = vec![0u8; n_bytes];
    match ty {
        GgmlType::F32 => float::quantize_f32(src, &mut out),
        GgmlType::F16 => float::quantize_f16(src, &mut out),
        GgmlType::BF16 => float::quantize_bf16(src, &mut out),
        GgmlType::I2S => i2s::quantize_i2s(src, &mut out),
        _ => {
            let encode = block_encoder(ty).ok_or(QuantError::Unsupported {
                ty,
                op: "quantization",
            })?;
            let (block, block_bytes) = ty.block_geometry().ok_or(QuantError::Unsupported {
                ty,
                op: "quantization",
            })?;
            for (x, dst) in src
                .chunks_exact(block)
                .zip(out.chunks_exact_mut(block_bytes))
            {
                encode(x, dst);
            }
        }
    }
    Ok(out)
}
