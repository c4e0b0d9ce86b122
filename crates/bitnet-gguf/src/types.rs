//! The tensor type table: every ggml type id of mainline llama.cpp plus bitnet.cpp's
//! I2_S / TL1 / TL2, with block geometry and exact byte sizes.
//!
//! Ids 36..=39 mean different things in mainline llama.cpp and in bitnet.cpp; the reader
//! resolves them by architecture and exact tensor size (see `crate::reader`).

/// A tensor storage type. `BitNet32F16` is the block-scaled I2_S flavour (FORMATS.md
/// "BitNet32-F16"); it has no id of its own on disk and is recognised by exact size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
    IQ2XXS,
    IQ2XS,
    IQ3XXS,
    IQ1S,
    IQ4NL,
    IQ3S,
    IQ2S,
    IQ4XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    IQ1M,
    BF16,
    TQ1_0,
    TQ2_0,
    /// Mainline llama.cpp id 39.
    MXFP4,
    /// bitnet.cpp id 36: 2-bit codes in 128-element / 32-byte blocks + one f32 scale + 28 pad bytes.
    I2S,
    /// Block-scaled I2_S: 32-element blocks of 8 code bytes + f16 scale (10 bytes).
    BitNet32F16,
    /// bitnet.cpp id 38 (LUT format, shape-specific layout).
    TL1,
    /// bitnet.cpp id 39 (LUT format, shape-specific layout).
    TL2,
}

impl GgmlType {
    /// Human-readable name, as llama.cpp / bitnet.cpp print it.
    pub fn name(self) -> &'static str {
        use GgmlType::*;
        match self {
            F32 => "F32",
            F16 => "F16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q8_1 => "Q8_1",
            Q2K => "Q2_K",
            Q3K => "Q3_K",
            Q4K => "Q4_K",
            Q5K => "Q5_K",
            Q6K => "Q6_K",
            Q8K => "Q8_K",
            IQ2XXS => "IQ2_XXS",
            IQ2XS => "IQ2_XS",
            IQ3XXS => "IQ3_XXS",
            IQ1S => "IQ1_S",
            IQ4NL => "IQ4_NL",
            IQ3S => "IQ3_S",
            IQ2S => "IQ2_S",
            IQ4XS => "IQ4_XS",
            I8 => "I8",
            I16 => "I16",
            I32 => "I32",
            I64 => "I64",
            F64 => "F64",
            IQ1M => "IQ1_M",
            BF16 => "BF16",
            TQ1_0 => "TQ1_0",
            TQ2_0 => "TQ2_0",
            MXFP4 => "MXFP4",
            I2S => "I2_S",
            BitNet32F16 => "I2_S_BN32F16",
            TL1 => "TL1",
            TL2 => "TL2",
        }
    }

    /// Elements per block and bytes per block for block-regular types.
    /// `None` for types whose size is per tensor (I2_S, TL1, TL2): use [`GgmlType::tensor_bytes`].
    pub fn block_geometry(self) -> Option<(usize, usize)> {
        use GgmlType::*;
        Some(match self {
            F32 => (1, 4),
            F16 | BF16 => (1, 2),
            Q4_0 => (32, 18),
            Q4_1 => (32, 20),
            Q5_0 => (32, 22),
            Q5_1 => (32, 24),
            Q8_0 => (32, 34),
            Q8_1 => (32, 36),
            Q2K => (256, 84),
            Q3K => (256, 110),
            Q4K => (256, 144),
            Q5K => (256, 176),
            Q6K => (256, 210),
            Q8K => (256, 292),
            IQ2XXS => (256, 66),
            IQ2XS => (256, 74),
            IQ3XXS => (256, 98),
            IQ1S => (256, 50),
            IQ4NL => (32, 18),
            IQ3S => (256, 110),
            IQ2S => (256, 82),
            IQ4XS => (256, 136),
            I8 => (1, 1),
            I16 => (1, 2),
            I32 => (1, 4),
            I64 | F64 => (1, 8),
            IQ1M => (256, 56),
            TQ1_0 => (256, 54),
            TQ2_0 => (256, 66),
            MXFP4 => (32, 17),
            BitNet32F16 => (32, 10),
            I2S | TL1 | TL2 => return None,
        })
    }
}
