//! Byte sizes of tensors in every format this crate knows: bitnet-gguf's table
//! (`GgmlType::tensor_bytes`) plus the block-multiple rules of the layouts decoded here.

use bitnet_gguf::GgmlType;

use crate::ternary::matrix_shape;
use crate::tl::tl_shape;
use crate::QuantError;

/// Elements per I2_S block (bitnet.cpp x86 layout: 128 elements in 32 bytes).
pub const I2S_BLOCK_LEN: usize = 128;
/// Bytes after the I2_S codes: the f32 scale and 28 bytes of (ignored) padding.
pub const I2S_TRAILER_BYTES: usize = 32;

/// Why TL1/TL2 are refused where only an element count is given: their size (TL2) and layout
/// (both) depend on the matrix shape.
pub(crate) const TL_REASON: &str = "TL1/TL2 sizes and layouts depend on the matrix shape \
(bitnet.cpp permutes weights by tile sizes chosen per shape): use tensor_bytes_for_shape, \
decode_ternary / encode_ternary or dequantize_tensor with the tensor's dims";

/// The smallest element count step of a format (its block length), or an error for formats
/// whose layout is not handled.
pub fn block_len(ty: GgmlType) -> Result<usize, QuantError> {
    match ty {
        GgmlType::I2S => Ok(I2S_BLOCK_LEN),
        GgmlType::TL1 | GgmlType::TL2 => Err(QuantError::UnsupportedLayout {
            ty,
            shape: Vec::new(),
            reason: TL_REASON,
        }),
        _ => ty
            .block_geometry()
            .map(|(block, _)| block)
            .ok_or(QuantError::Unsupported { ty, op: "sizing" }),
    }
}

/// Exact number of bytes a tensor of `n_elements` occupies in format `ty`: bitnet-gguf's size
/// table (`GgmlType::tensor_bytes`), after checking that the count fills whole blocks of the
/// layout this crate decodes (I2_S: `n/4 + 32` with `n` a multiple of 128).
pub fn tensor_bytes(ty: GgmlType, n_elements: usize) -> Result<usize, QuantError> {
    let block = block_len(ty)?;
    if !n_elements.is_multiple_of(block) {
        return Err(QuantError::NotBlockMultiple {
            ty,
            n_elements,
            block_len: block,
        });
    }
    let bytes = ty
        .tensor_bytes(n_elements as u64, &[])
        .map_err(|_| QuantError::Unsupported { ty, op: "sizing" })?;
    usize::try_from(bytes).map_err(|_| QuantError::Unsupported { ty, op: "sizing" })
}

/// Exact number of bytes of a tensor of shape `dims` (ne0 first) in format `ty`. For TL1/TL2 the
/// shape must be one bitnet.cpp has tile sizes for (see [`crate::TL1_TILES`]); the size is
/// bitnet-gguf's rule (bitnet.cpp's `ggml_nbytes`: TL1 `n/4 + 32`, TL2 the packed length rounded
/// up to 32, plus 32 for the scale). Other formats: [`tensor_bytes`] of the element count.
pub fn tensor_bytes_for_shape(ty: GgmlType, dims: &[u64]) -> Result<usize, QuantError> {
    let (rows, cols) = matrix_shape(ty, dims)?;
    if !matches!(ty, GgmlType::TL1 | GgmlType::TL2) {
        return tensor_bytes(ty, rows * cols);
    }
    tl_shape(ty, dims)?;
    let sizing = || QuantError::Unsupported { ty, op: "sizing" };
    let bytes = ty
        .tensor_bytes((rows * cols) as u64, dims)
        .map_err(|_| sizing())?;
    usize::try_from(bytes).map_err(|_| sizing())
}

/// Checks that `bytes` is exactly the size of `n_elements` of `ty`.
pub(crate) fn check_bytes(ty: GgmlType, bytes: &[u8], n_elements: usize) -> Result<(), QuantError> {
    let expected = tensor_bytes(ty, n_elements)?;
    if bytes.len() != expected {
        return Err(QuantError::ByteLength {
            ty,
            n_elements,
            expected,
            got: bytes.len(),
        });
    }
    Ok(())
}
