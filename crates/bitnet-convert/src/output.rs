//! The output types `bitnet convert --type` offers and how a ternary linear weight is stored in
//! each: I2_S (bitnet.cpp's bytes, one per-tensor scale), TQ2_0 / TQ1_0 (256-element blocks whose
//! f16 scale is the tensor scale, or 0 for an all-zero block: exactly what `gguf.quants.quantize`
//! makes of `t·s`), or plain F16 / F32 values `t·s`.

use bitnet_gguf::GgmlType;
use bitnet_quant::{encode_ternary, quantize, QuantError, TernaryScales, TernaryTensor};

/// The storage type of the ternary linears (`--type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputType {
    I2S,
    TQ2_0,
    TQ1_0,
    F16,
    F32,
    /// Q8_0 (for BERT checkpoints' float weights; a ternary linear stored so is `t·s` in Q8_0).
    Q8_0,
}

/// TQ1_0 / TQ2_0 block length.
const TQ_BLOCK: usize = 256;

impl OutputType {
    /// Every type, in `--type` order.
    pub const ALL: [OutputType; 6] = [
        OutputType::I2S,
        OutputType::TQ2_0,
        OutputType::TQ1_0,
        OutputType::F16,
        OutputType::F32,
        OutputType::Q8_0,
    ];

    /// The `--type` name.
    pub fn name(self) -> &'static str {
        match self {
            OutputType::I2S => "i2_s",
            OutputType::TQ2_0 => "tq2_0",
            OutputType::TQ1_0 => "tq1_0",
            OutputType::F16 => "f16",
            OutputType::F32 => "f32",
            OutputType::Q8_0 => "q8_0",
        }
    }

    /// Parses a `--type` name (case-insensitive).
    pub fn from_name(name: &str) -> Option<OutputType> {
        Self::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// The ggml type of the linear weights.
    pub fn ggml_type(self) -> GgmlType {
        match self {
            OutputType::I2S => GgmlType::I2S,
            OutputType::TQ2_0 => GgmlType::TQ2_0,
            OutputType::TQ1_0 => GgmlType::TQ1_0,
            OutputType::F16 => GgmlType::F16,
            OutputType::F32 => GgmlType::F32,
            OutputType::Q8_0 => GgmlType::Q8_0,
        }
    }

    /// `general.file_type` (llama.cpp's `llama_ftype`; 40 = bitnet.cpp's `MOSTLY_I2_S`).
    pub fn file_type(self) -> u32 {
        match self {
            OutputType::F32 => 0,
            OutputType::F16 => 1,
            OutputType::Q8_0 => 7,
            OutputType::TQ1_0 => 36,
            OutputType::TQ2_0 => 37,
            OutputType::I2S => 40,
        }
    }
}

impl std::fmt::Display for OutputType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The bytes of a ternary weight (per-tensor scale) in `ty`.
pub fn encode_linear(weight: TernaryTensor, ty: OutputType) -> Result<Vec<u8>, QuantError> {
    match ty {
        OutputType::I2S => encode_ternary(&weight, GgmlType::I2S),
        OutputType::TQ2_0 | OutputType::TQ1_0 => {
            encode_ternary(&per_block(weight, TQ_BLOCK)?, ty.ggml_type())
        }
        OutputType::F16 | OutputType::F32 | OutputType::Q8_0 => {
            quantize(ty.ggml_type(), &weight.to_f32())
        }
    }
}

/// The same levels with one scale per `block_len` elements: the tensor scale where the block
/// holds a non-zero level, 0 where it is all zeros (the block maximum |t·s|, as ggml's block
/// quantizers compute it).
fn per_block(weight: TernaryTensor, block_len: usize) -> Result<TernaryTensor, QuantError> {
    if !weight.cols.is_multiple_of(block_len) {
        return Err(QuantError::InvalidTernary(format!(
            "rows of {} elements are not a multiple of the {block_len}-element blocks",
            weight.cols
        )));
    }
    let scales = weight
        .values
        .chunks_exact(block_len)
        .enumerate()
        .map(|(b, block)| {
            let s = weight.scale_at(b * block_len);
            if block.iter().any(|&t| t != 0) {
                s
            } else {
                0.0
            }
        })
        .collect();
    TernaryTensor::new(
        weight.rows,
        weight.cols,
        weight.values,
        TernaryScales::PerBlock { block_len, scales },
    )
}
