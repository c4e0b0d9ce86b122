//! The BitLinear weights of a checkpoint as exact ternary tensors, from either layout HF uses:
//!
//! - **latent** floats (F32/F16/BF16, `[out, in]`): ternarised by absmean
//!   (`bitnet_quant::ternarize_absmean`: `s = max(mean|W|, 1e-5)`, mean in f64 then rounded to
//!   f32, `t = clamp(round_half_even(W/s), -1, 1)`);
//! - **packed** "offline" uint8 (`[out/4, in]`, transformers' `pack_weights`): byte `[r, c]` holds
//!   at bits `2i..2i+2` the code `t + 1` of output row `i·(out/4) + r`, column `c`; the scale comes
//!   from the one-element `<name>_scale` tensor (`weight_scale`), which `BitLinear` divides the
//!   output by (so `s = 1/weight_scale`, computed in f64 and rounded once) and offline
//!   `AutoBitLinear` multiplies by.
//!
//! Both give a `TernaryTensor` with rows = output features (GGUF ne1) and cols = input features
//! (GGUF ne0): the HF `[out, in]` matrix and the GGUF `[in, out]` tensor have the same bytes order.

use bitnet_quant::{ternarize_absmean, TernaryScales, TernaryTensor};
use safetensors::Dtype;

use crate::checkpoint::{Checkpoint, TensorRef};
use crate::config::PackedScale;
use crate::error::{ConvertError, Result};

/// Ternary values per packed byte.
const VALUES_PER_BYTE: usize = 4;

/// Reads the linear weight `name` (`[rows, cols]` = `[out, in]`) as a ternary tensor, whichever
/// layout it is stored in.
pub fn ternary_weight(
    ckpt: &Checkpoint,
    name: &str,
    rows: usize,
    cols: usize,
    packed_scale: PackedScale,
) -> Result<TernaryTensor> {
    let tensor = ckpt.tensor(name)?;
    let quant_err = |error| ConvertError::Quant {
        name: name.to_string(),
        error,
    };
    if tensor.dtype == Dtype::U8 {
        let scale_name = format!("{}_scale", name);
        let scale = ckpt.tensor(&scale_name)?.scalar_f32()?;
        let s = match packed_scale {
            PackedScale::Divide => (1.0 / f64::from(scale)) as f32,
            PackedScale::Multiply => scale,
        };
        if !s.is_finite() || s <= 0.0 {
            return Err(ConvertError::BadTensor {
                name: scale_name,
                reason: format!("weight scale {scale} gives the unusable tensor scale {s}"),
            });
        }
        let values = unpack_codes(&tensor, rows, cols)?;
        TernaryTensor::new(rows, cols, values, TernaryScales::PerTensor(s)).map_err(quant_err)
    } else {
        tensor.expect_shape(&[rows, cols])?;
        ternarize_absmean(rows, cols, &tensor.to_f32()?).map_err(quant_err)
    }
}

/// Undoes transformers' `pack_weights` for a `[rows, cols]` weight stored as `[rows/4, cols]`
/// bytes; returns the levels row-major.
fn unpack_codes(tensor: &TensorRef<'_>, rows: usize, cols: usize) -> Result<Vec<i8>> {
    let bad = |reason: String| ConvertError::BadTensor {
        name: tensor.name.to_string(),
        reason,
    };
    if !rows.is_multiple_of(VALUES_PER_BYTE) {
        return Err(bad(format!(
            "{rows} output rows cannot be packed 4 per byte"
        )));
    }
    let packed_rows = rows / VALUES_PER_BYTE;
    tensor.expect_shape(&[packed_rows, cols]).map_err(|_| {
        bad(format!(
            "packed shape {:?}, expected [{packed_rows}, {cols}] for a [{rows}, {cols}] weight",
            tensor.shape
        ))
    })?;
    let mut values = vec![0i8; rows * cols];
    for (r, packed_row) in tensor.bytes.chunks_exact(cols).enumerate() {
        for (c, &byte) in packed_row.iter().enumerate() {
            for i in 0..VALUES_PER_BYTE {
                let code = (byte >> (2 * i)) & 3;
                if code == 3 {
                    return Err(bad(format!(
                        "packed byte [{r}, {c}] holds code 3 at bits {}..{}, not a ternary level",
                        2 * i,
                        2 * i + 2
                    )));
                }
                values[(i * packed_rows + r) * cols + c] = code as i8 - 1;
            }
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of transformers' `unpack_weights` docstring: packed
    /// `[[0b10100001, 0b00011000], [0b10010000, 0b00001010]]` unpacks to the 8 × 2 levels below.
    #[test]
    fn unpacks_the_transformers_docstring_example() {
        let bytes = [0b1010_0001u8, 0b0001_1000, 0b1001_0000, 0b0000_1010];
        let tensor = TensorRef {
            name: "example",
            dtype: Dtype::U8,
            shape: &[2, 2],
            bytes: &bytes,
        };
        let expected: [[i8; 2]; 8] = [
            [0, -1],
            [-1, 1],
            [-1, 1],
            [-1, 1],
            [1, 0],
            [0, -1],
            [1, -1],
            [1, -1],
        ];
        assert_eq!(unpack_codes(&tensor, 8, 2).unwrap(), expected.concat());
    }

    #[test]
    fn code_3_and_wrong_shapes_are_refused() {
        let tensor = TensorRef {
            name: "w",
            dtype: Dtype::U8,
            shape: &[1, 1],
            bytes: &[0b1100_0000],
        };
        let err = unpack_codes(&tensor, 4, 1).unwrap_err().to_string();
        assert!(err.contains("code 3 at bits 6..8"), "{err}");
        assert!(unpack_codes(&tensor, 8, 1)
            .unwrap_err()
            .to_string()
            .contains("packed shape"));
        assert!(unpack_codes(&tensor, 6, 1)
            .unwrap_err()
            .to_string()
            .contains("4 per byte"));
    }
}
