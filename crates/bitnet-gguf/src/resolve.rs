//! Resolving a tensor's on-disk type id to a `GgmlType`, including the ids 36..=39 that mean
//! different things in bitnet.cpp and mainline llama.cpp (FORMATS.md §3).
//!
//! Rules, for an id with several candidates (36: I2_S or its block-scaled flavour
//! BitNet32F16; 39: bitnet.cpp TL2 or mainline MXFP4):
//! 1. A candidate *fits exactly* when its computed size `s` and the tensor's extent `e` (bytes
//!    from its offset to the next tensor's offset, or to the end of the data) satisfy
//!    `s <= e < s + alignment`, i.e. the next tensor starts right after this one's padding.
//! 2. One exact fit: that type.
//! 3. Several exact fits: the architecture's default for the id wins if every other exact fit
//!    belongs to the other project (`bitnet-b1.58`/`bitnet-25` → bitnet.cpp, any other
//!    architecture → mainline, where mainline has no meaning for the id → bitnet.cpp);
//!    otherwise the file is ambiguous and an error says so.
//! 4. No exact fit: the architecture's default if there is one (BitNet32F16 is never a
//!    default: it is only ever taken on an exact size match); then the usual bounds checks
//!    apply. Id 39 in a file without `general.architecture` and without an exact fit is
//!    ambiguous.

use crate::error::GgufError;
use crate::types::GgmlType;

/// Which project's meaning the file's architecture prefers for the colliding ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialects {
    /// `bitnet-b1.58` or `bitnet-25`: Microsoft's converter, bitnet.cpp types.
    BitnetCpp,
    /// Any other architecture (including mainline's `bitnet`).
    Mainline,
    /// No `general.architecture`.
    Unknown,
}

impl Dialects {
    /// The preference implied by `general.architecture`.
    pub fn for_architecture(arch: Option<&str>) -> Dialects {
        match arch {
            Some("bitnet-b1.58") | Some("bitnet-25") => Dialects::BitnetCpp,
            Some(_) => Dialects::Mainline,
            None => Dialects::Unknown,
        }
    }
}

/// Where a tensor's data may lie: bytes up to the next tensor (or the end of the data), and the
/// file's alignment.
#[derive(Debug, Clone, Copy)]
pub struct Extent {
    pub bytes: u64,
    pub alignment: u64,
}

impl Extent {
    fn fits_exactly(self, size: u64) -> bool {
        size <= self.bytes && self.bytes - size < self.alignment
    }
}

/// The default meaning of an id under an architecture preference, if there is one.
fn default_for(id: u32, dialects: Dialects) -> Option<GgmlType> {
    match (id, dialects) {
        (39, Dialects::BitnetCpp) => Some(GgmlType::TL2),
        (39, Dialects::Mainline) => Some(GgmlType::MXFP4),
        (39, Dialects::Unknown) => None,
        (36, _) => Some(GgmlType::I2S),
        _ => match GgmlType::candidates_for_id(id) {
            [only] => Some(*only),
            _ => None,
        },
    }
}

/// Resolves a tensor's type and exact byte size. `info_offset` is the file offset of its
/// tensor-table entry (for error messages).
pub fn resolve_tensor_type(
    tensor: &str,
    info_offset: u64,
    type_id: u32,
    n_elements: u64,
    dims: &[u64],
    dialects: Dialects,
    extent: Extent,
) -> Result<(GgmlType, u64), GgufError> {
    let candidates = GgmlType::candidates_for_id(type_id);
    let size_of = |ty: GgmlType| {
        ty.tensor_bytes(n_elements, dims)
            .map_err(|source| GgufError::TensorSize {
                tensor: tensor.to_owned(),
                offset: info_offset,
                source,
            })
    };
    match candidates {
        [] => Err(GgufError::UnknownTensorType {
            tensor: tensor.to_owned(),
            offset: info_offset,
            type_id,
        }),
        [only] => Ok((*only, size_of(*only)?)),
        _ => {
            let exact: Vec<(GgmlType, u64)> = candidates
                .iter()
                .filter_map(|&ty| size_of(ty).ok().map(|size| (ty, size)))
                .filter(|&(_, size)| extent.fits_exactly(size))
                .collect();
            let default = default_for(type_id, dialects);
            let ambiguous = |reason: String| GgufError::AmbiguousType {
                tensor: tensor.to_owned(),
                offset: info_offset,
                type_id,
                reason,
            };
            let names = |list: &[(GgmlType, u64)]| {
                list.iter()
                    .map(|(t, s)| format!("{t} ({s} bytes)"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            match exact.as_slice() {
                [one] => Ok(*one),
                [] => match default {
                    Some(ty) => Ok((ty, size_of(ty)?)),
                    None => Err(ambiguous(format!(
                        "no general.architecture to choose between {} and the {} bytes available fit none exactly",
                        candidates.iter().map(|t| t.name()).collect::<Vec<_>>().join(" and "),
                        extent.bytes
                    ))),
                },
                several => {
                    let winner = default.and_then(|d| {
                        let d_exact = several.iter().find(|(t, _)| *t == d)?;
                        let others_foreign = several
                            .iter()
                            .filter(|(t, _)| *t != d)
                            .all(|(t, _)| t.dialect() != d.dialect());
                        others_foreign.then_some(*d_exact)
                    });
                    winner.ok_or_else(|| {
                        ambiguous(format!(
                            "the {} bytes available fit {} exactly and the architecture does not decide",
                            extent.bytes,
                            names(several)
                        ))
                    })
                }
            }
        }
    }
}
