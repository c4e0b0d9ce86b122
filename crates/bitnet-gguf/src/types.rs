//! The tensor type table: every ggml type id of mainline llama.cpp plus bitnet.cpp's
//! I2_S / I8_S / TL1 / TL2, with block geometry and exact byte sizes.
//!
//! Ids 36..=39 mean different things in mainline llama.cpp and in bitnet.cpp; the reader
//! resolves them by architecture and exact tensor size (see `crate::resolve`). This module
//! only knows, for each id, which types it can stand for.

use thiserror::Error;

/// A tensor storage type. `BitNet32F16` is the block-scaled I2_S flavour (FORMATS.md
/// "BitNet32-F16"); it has no id of its own on disk (it is stored under I2_S's id 36) and is
/// recognised by exact size.
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
    /// Mainline llama.cpp id 40: 64-element blocks of 36 bytes.
    NVFP4,
    /// Mainline llama.cpp id 41: 128-element blocks of 18 bytes.
    Q1_0,
    /// bitnet.cpp id 36: 2-bit codes in 128-element / 32-byte blocks + one f32 scale + 28 pad bytes.
    I2S,
    /// Block-scaled I2_S: 32-element blocks of 8 code bytes + f16 scale (10 bytes).
    BitNet32F16,
    /// bitnet.cpp id 37: int8 activations (1 byte per element); a compute type, not normally stored.
    I8S,
    /// bitnet.cpp id 38 (LUT format, shape-specific layout).
    TL1,
    /// bitnet.cpp id 39 (LUT format, shape-specific layout).
    TL2,
}

/// Which project gives a type id its meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Mainline llama.cpp / ggml (and the ids bitnet.cpp shares with it, 0..=35).
    Mainline,
    /// Microsoft's bitnet.cpp fork (ids 36..=39).
    BitnetCpp,
}

/// Why a tensor's byte size cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TensorSizeError {
    #[error("{ty}: row length ne0 = {ne0} is not a multiple of the block size {block}")]
    RowNotBlockMultiple { ty: GgmlType, ne0: u64, block: u64 },
    #[error("{ty}: the element count {n_elements} does not equal the product of dims {dims:?}")]
    ElementCountMismatch {
        ty: GgmlType,
        n_elements: u64,
        dims: Vec<u64>,
    },
    #[error("{ty}: byte size of {n_elements} elements overflows u64")]
    Overflow { ty: GgmlType, n_elements: u64 },
    #[error("TL2 needs a 2-D tensor with ne0 >= 256 (bitnet.cpp's size rule); got dims {dims:?}")]
    Tl2Shape { dims: Vec<u64> },
}

/// Every type, in id order (mainline first, then bitnet.cpp).
pub const ALL_TYPES: &[GgmlType] = &[
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q8_1,
    GgmlType::Q2K,
    GgmlType::Q3K,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
    GgmlType::Q8K,
    GgmlType::IQ2XXS,
    GgmlType::IQ2XS,
    GgmlType::IQ3XXS,
    GgmlType::IQ1S,
    GgmlType::IQ4NL,
    GgmlType::IQ3S,
    GgmlType::IQ2S,
    GgmlType::IQ4XS,
    GgmlType::I8,
    GgmlType::I16,
    GgmlType::I32,
    GgmlType::I64,
    GgmlType::F64,
    GgmlType::IQ1M,
    GgmlType::BF16,
    GgmlType::TQ1_0,
    GgmlType::TQ2_0,
    GgmlType::MXFP4,
    GgmlType::NVFP4,
    GgmlType::Q1_0,
    GgmlType::I2S,
    GgmlType::BitNet32F16,
    GgmlType::I8S,
    GgmlType::TL1,
    GgmlType::TL2,
];

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
            NVFP4 => "NVFP4",
            Q1_0 => "Q1_0",
            I2S => "I2_S",
            BitNet32F16 => "I2_S_BN32F16",
            I8S => "I8_S",
            TL1 => "TL1",
            TL2 => "TL2",
        }
    }

    /// The type id written on disk. `BitNet32F16` is stored under I2_S's id 36; ids 36..=39
    /// are bitnet.cpp's meaning except `MXFP4` (mainline 39).
    pub fn id(self) -> u32 {
        use GgmlType::*;
        match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q5_0 => 6,
            Q5_1 => 7,
            Q8_0 => 8,
            Q8_1 => 9,
            Q2K => 10,
            Q3K => 11,
            Q4K => 12,
            Q5K => 13,
            Q6K => 14,
            Q8K => 15,
            IQ2XXS => 16,
            IQ2XS => 17,
            IQ3XXS => 18,
            IQ1S => 19,
            IQ4NL => 20,
            IQ3S => 21,
            IQ2S => 22,
            IQ4XS => 23,
            I8 => 24,
            I16 => 25,
            I32 => 26,
            I64 => 27,
            F64 => 28,
            IQ1M => 29,
            BF16 => 30,
            TQ1_0 => 34,
            TQ2_0 => 35,
            MXFP4 => 39,
            NVFP4 => 40,
            Q1_0 => 41,
            I2S | BitNet32F16 => 36,
            I8S => 37,
            TL1 => 38,
            TL2 => 39,
        }
    }

    /// The project that defines this type's id.
    pub fn dialect(self) -> Dialect {
        use GgmlType::*;
        match self {
            I2S | BitNet32F16 | I8S | TL1 | TL2 => Dialect::BitnetCpp,
            _ => Dialect::Mainline,
        }
    }

    /// Every type an on-disk id can stand for, mainline and bitnet.cpp together. Empty for
    /// ids neither project defines (4, 5, 31..=33 were removed from mainline; 42 and up are
    /// unknown). Two entries for the colliding ids 36 (I2_S or its block-scaled flavour) and
    /// 39 (bitnet.cpp TL2 or mainline MXFP4); mainline's 36..=38 are removed types.
    pub fn candidates_for_id(id: u32) -> &'static [GgmlType] {
        use GgmlType::*;
        match id {
            36 => &[I2S, BitNet32F16],
            37 => &[I8S],
            38 => &[TL1],
            39 => &[TL2, MXFP4],
            _ => ALL_TYPES
                .iter()
                .position(|t| t.id() == id)
                .map_or(&[], |i| std::slice::from_ref(&ALL_TYPES[i])),
        }
    }

    /// Looks a type up by [`GgmlType::name`] (case-insensitive).
    pub fn from_name(name: &str) -> Option<GgmlType> {
        ALL_TYPES
            .iter()
            .copied()
            .find(|t| t.name().eq_ignore_ascii_case(name))
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
            // ggml's block_q8_1 is two f16 (d, s) + 32 int8 = 36 bytes. (PyPI gguf 0.19 still
            // lists 40, from the old float layout; no file stores Q8_1.)
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
            I8 | I8S => (1, 1),
            I16 => (1, 2),
            I32 => (1, 4),
            I64 | F64 => (1, 8),
            IQ1M => (256, 56),
            TQ1_0 => (256, 54),
            TQ2_0 => (256, 66),
            MXFP4 => (32, 17),
            NVFP4 => (64, 36),
            Q1_0 => (128, 18),
            BitNet32F16 => (32, 10),
            I2S | TL1 | TL2 => return None,
        })
    }

    /// Exact byte size of a tensor of this type with `n_elements` elements and shape `dims`
    /// (ne0 first; empty `dims` means a flat run of `n_elements`).
    ///
    /// - block types: `ne0` must be a multiple of the block size; `n / block * block_bytes`;
    /// - I2_S and TL1: `n / 4 + 32` (codes, f32 scale, padding; bitnet.cpp `ggml_nbytes`);
    /// - TL2 (bitnet.cpp `ggml_nbytes`, K = ne0, M = ne1):
    ///   `b = (K - 256)·M / 3 · 5 / 8 + 256·M / 2 · 4 / 8` (integer arithmetic, left to right),
    ///   rounded up to a multiple of 32, plus 32 for the scale. 2-D only, K >= 256.
    pub fn tensor_bytes(self, n_elements: u64, dims: &[u64]) -> Result<u64, TensorSizeError> {
        if !dims.is_empty() {
            let product = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
            if product != Some(n_elements) {
                return Err(TensorSizeError::ElementCountMismatch {
                    ty: self,
                    n_elements,
                    dims: dims.to_vec(),
                });
            }
        }
        let overflow = || TensorSizeError::Overflow {
            ty: self,
            n_elements,
        };
        match self {
            GgmlType::I2S | GgmlType::TL1 => (n_elements / 4).checked_add(32).ok_or_else(overflow),
            GgmlType::TL2 => tl2_bytes(dims).ok_or_else(|| TensorSizeError::Tl2Shape {
                dims: dims.to_vec(),
            }),
            _ => {
                let (block, bytes) = self.block_geometry().unwrap_or((1, 1));
                let (block, bytes) = (block as u64, bytes as u64);
                let ne0 = dims.first().copied().unwrap_or(n_elements);
                if !ne0.is_multiple_of(block) || !n_elements.is_multiple_of(block) {
                    return Err(TensorSizeError::RowNotBlockMultiple {
                        ty: self,
                        ne0,
                        block,
                    });
                }
                (n_elements / block).checked_mul(bytes).ok_or_else(overflow)
            }
        }
    }
}

/// bitnet.cpp's TL2 size rule (see [`GgmlType::tensor_bytes`]); `None` for unsupported shapes.
fn tl2_bytes(dims: &[u64]) -> Option<u64> {
    let k = *dims.first()?;
    let m = dims.get(1).copied().unwrap_or(1);
    if k < 256 || dims.iter().skip(2).any(|&d| d != 1) {
        return None;
    }
    let packed = (k - 256).checked_mul(m)? / 3 * 5 / 8;
    let tail = 256u64.checked_mul(m)? / 2 * 4 / 8;
    let bytes = packed.checked_add(tail)?;
    bytes.checked_next_multiple_of(32)?.checked_add(32)
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_candidates() {
        for &t in ALL_TYPES {
            assert!(
                GgmlType::candidates_for_id(t.id()).contains(&t),
                "{t} not a candidate of its own id {}",
                t.id()
            );
            assert_eq!(GgmlType::from_name(t.name()), Some(t));
        }
        for removed in [4, 5, 31, 32, 33, 42, 1000] {
            assert!(GgmlType::candidates_for_id(removed).is_empty());
        }
    }

    #[test]
    fn bitnet_sizes_follow_bitnet_cpp_rules() {
        // FORMATS.md §3: I2_S is n/4 + 32 (2-B-4T attn_q: 2560 x 2560).
        assert_eq!(
            GgmlType::I2S.tensor_bytes(2560 * 2560, &[2560, 2560]),
            Ok(1_638_432)
        );
        assert_eq!(
            GgmlType::TL1.tensor_bytes(256 * 768, &[256, 768]),
            Ok(49_184)
        );
        // TL2 for a 2560 x 6912 (K x M) matrix:
        // (2304 * 6912 / 3 * 5 / 8) + 256 * 6912 / 2 * 4 / 8 = 3_317_760 + 442_368, already
        // a multiple of 32, + 32.
        assert_eq!(
            GgmlType::TL2.tensor_bytes(2560 * 6912, &[2560, 6912]),
            Ok(3_760_160)
        );
        assert!(GgmlType::TL2.tensor_bytes(128 * 4, &[128, 4]).is_err());
        assert_eq!(GgmlType::BitNet32F16.tensor_bytes(64, &[64]), Ok(20));
        assert!(matches!(
            GgmlType::Q4K.tensor_bytes(128, &[128]),
            Err(TensorSizeError::RowNotBlockMultiple { .. })
        ));
        assert!(matches!(
            GgmlType::F32.tensor_bytes(u64::MAX, &[]),
            Err(TensorSizeError::Overflow { .. })
        ));
    }
}
