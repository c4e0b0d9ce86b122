//! Block-quantized rows in integer form, for kernels that keep the weights quantized: each
//! element `e` of a row is exactly `scales[e / 16] · codes[e] + offsets[e / 16]` in f32 (the
//! same float operations ggml's dequantization does, so [`decode_int_codes`] followed by that
//! formula is bit-identical to [`crate::dequantize`]).
//!
//! One scale (and one offset) per 16 elements covers every type below: the legacy 32-element
//! blocks and Q4_K/Q5_K repeat theirs over both halves of a 32-element sub-block; Q2_K, Q3_K and
//! Q6_K have one per 16. Codes are the type's integers, signed where the type subtracts a
//! constant (Q4_0 `q − 8`, Q5_0 `q − 16`, Q3_K, Q6_K `q − 32`, Q8_0), unsigned where it adds an
//! offset (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K), and always within `−128..=127`.

use bitnet_gguf::GgmlType;

use crate::error::QuantError;
use crate::float::f16_at;
use crate::kquants::k_scale_min;

/// Elements per scale / offset.
pub const INT_CODE_GROUP: usize = 16;

/// Whether [`decode_int_codes`] handles type `ty`, and if so whether its rows carry offsets
/// (`Some(true)`: Q4_1, Q5_1, Q2_K, Q4_K, Q5_K) or not (`Some(false)`).
pub fn int_code_offsets(ty: GgmlType) -> Option<bool> {
    use GgmlType as T;
    match ty {
        T::Q4_0 | T::Q5_0 | T::Q8_0 | T::Q3K | T::Q6K => Some(false),
        T::Q4_1 | T::Q5_1 | T::Q2K | T::Q4K | T::Q5K => Some(true),
        _ => None,
    }
}

/// Decodes `n_elements` values of type `ty` from `bytes` into `codes` (`n_elements` long),
/// `scales` and `offsets` (`n_elements / 16` long each; offsets are 0 for a type without
/// them), see the module docs.
pub fn decode_int_codes(
    ty: GgmlType,
    bytes: &[u8],
    n_elements: usize,
    codes: &mut [i8],
    scales: &mut [f32],
    offsets: &mut [f32],
) -> Result<(), QuantError> {
    let decode: BlockDecoder = match ty {
        GgmlType::Q4_0 => q4_0,
        GgmlType::Q4_1 => q4_1,
        GgmlType::Q5_0 => q5_0,
        GgmlType::Q5_1 => q5_1,
        GgmlType::Q8_0 => q8_0,
        GgmlType::Q2K => q2_k,
        GgmlType::Q3K => q3_k,
        GgmlType::Q4K => q4_k,
        GgmlType::Q5K => q5_k,
        GgmlType::Q6K => q6_k,
        _ => {
            return Err(QuantError::Unsupported {
                ty,
                op: "decoding to integer codes",
            })
        }
    };
    let (block, block_bytes) = ty.block_geometry().ok_or(QuantError::Unsupported {
        ty,
        op: "decoding to integer codes",
    })?;
    // Block multiple and exact byte length, as every decoder checks them.
    crate::size::check_bytes(ty, bytes, n_elements)?;
    for (len, got) in [
        (n_elements, codes.len()),
        (n_elements / INT_CODE_GROUP, scales.len()),
        (n_elements / INT_CODE_GROUP, offsets.len()),
    ] {
        if len != got {
            return Err(QuantError::OutputLength { expected: len, got });
        }
    }
    let groups = block / INT_CODE_GROUP;
    for (((src, c), s), o) in bytes
        .chunks_exact(block_bytes)
        .zip(codes.chunks_exact_mut(block))
        .zip(scales.chunks_exact_mut(groups))
        .zip(offsets.chunks_exact_mut(groups))
    {
        decode(src, c, s, o);
    }
    Ok(())
}

type BlockDecoder = fn(&[u8], &mut [i8], &mut [f32], &mut [f32]);

/// Element `j` of a 32-element nibble array (low nibbles first, then high nibbles).
fn nibble(qs: &[u8], j: usize) -> u8 {
    if j < 16 {
        qs[j] & 0x0f
    } else {
        qs[j - 16] >> 4
    }
}

/// The 32 codes `nibble | fifth bit << 4` of a legacy block, minus `bias`.
fn legacy_codes(qs: &[u8], qh: u32, bias: i8, codes: &mut [i8]) {
    for (j, c) in codes.iter_mut().enumerate() {
        let q = nibble(qs, j) | ((((qh >> j) & 1) as u8) << 4);
        *c = q as i8 - bias;
    }
}

fn q4_0(b: &[u8], codes: &mut [i8], scales: &mut [f32], offsets: &mut [f32]) {
    legacy_codes(&b[2..18], 0, 8, codes);
    scales.fill(f16_at(b, 0));
    offsets.fill(0.0);
}

fn q4_1(b: &[u8], codes: &mut [i8], scales: &mut [f32], offsets: &mut [f32]) {
    legacy_codes(&b[4..20], 0, 0, codes);
    scales.fill(f16_at(b, 0));
    offsets.fill(f16_at(b, 2));
}

fn q5_0(b: &[u8], codes: &mut [i8], scales: &mut [f32], offsets: &mut [f32]) {
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    legacy_codes(&b[6..22], qh, 16, codes);
    scales.fill(f16_at(b, 0));
    offsets.fill(0.0);
}

fn q5_1(b: &[u8], codes: &mut [i8], scales: &mut [f32], offsets: &mut [f32]) {
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    legacy_codes(&b[8..24], qh, 0, codes);
    scales.fill(f16_at(b, 0));
    offsets.fill(f16_at(b, 2));
}

fn q8_0(b: &[u8], codes: &mut [i8], scales: &mut [f32], offsets: &mut [f32]) {
    for (c, &q) in codes.iter_mut().zip(&b[2..34]) {
        *c = q as i8;
    }
    scales.fill(f16_at(b, 0));
    offsets.fill(0.0);
}

fn q2_k(b: &[u8], codes: &mut [i8], scales: &mut [f32], offsets: &mut [f32]) {
    let (sc, qs) = (&b[0..16], &b[16..80]);
    let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
    for (e, c) in codes.iter_mut().enumerate() {
        let (h, s, m) = (e / 128, (e / 32) % 4, e % 32);
        *c = ((qs[32 * h + m] >> (2 * s)) & 3) as i8;
    }
    for (g, (s, o)) in scales.iter_mut().zip(offsets.iter_mut()).enumerate() {
        *s = d * f32::from(sc[g] & 0x0f);
        // ggml computes `dl · q − ml`; `a − b` and `a + (−b)` are the same IEEE operation.
        *o = -(dmin * f32::from(sc[g] >> 4));
    }
}

fn q3_k(b: &[u8], codes: &mut [i8], scales: &mut [f32], offsets: &mut [f32]) {
    let (hmask, qs) = (&b[0..32], &b[32..96]);
    let packed = &b[96..108];
    let d = f16_at(b, 108);
    for (e, c) in codes.iter_mut().enumerate() {
        let (h, s, m) = (e / 128, (e / 32) % 4, e % 32);
        let low = ((qs[32 * h + m] >> (2 * s)) & 3) as i8;
        let high_clear = ((hmask[m] >> (e / 32)) & 1) ^ 1;
        *c = low - ((high_clear << 2) as i8);
    }
    for (i, s) in scales.iter_mut().enumerate() {
        let low = if i < 8 {
            packed[i] & 0x0f
        } else {
            packed[i - 8] >> 4
        };
        let high = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
        *s = d * f32::from((low | (high << 4)) as i8 - 32);
    }
    offsets.fill(0.0);
}

/// Q4_K / Q5_K scales and offsets: sub-block `sub` of 32 covers groups `2·sub` and `2·sub + 1`.
fn k_scales(b: &[u8], scales: &mut [f32], offsets: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (sc, mn) = k_scale_min(&b[4..16]);
    for g in 0..scales.len() {
        scales[g] = d * f32::from(sc[g / 2]);
        offsets[g] = -(dmin * f32::from(mn[g / 2]));
    }
}

fn q4_k(b: &[u8], codes: &mut [i8], scales: &mut [f32], offsets: &mut [f32]) {
    let qs = &b[16..144];
    for (e, c) in codes.iter_mut().enumerate() {
        let (k, s, m) = (e / 64, (e / 32) % 2, e % 32);
        *c = ((qs[32 * k + m] >> (4 * s)) & 0x0f) as i8;
    }
    k_scales(b, scales, offsets);
}

fn q5_k(b: &[u8], codes: &mut [i8], scales: &mut [f32], offsets: &mut [f32]) {
    let (qh, qs) = (&b[16..48], &b[48..176]);
    for (e, c) in codes.iter_mut().enumerate() {
        let (k, s, m) = (e / 64, (e / 32) % 2, e % 32);
        let low = (qs[32 * k + m] >> (4 * s)) & 0x0f;
        let high = (qh[m] >> (e / 32)) & 1;
        *c = (low | (high << 4)) as i8;
    }
    k_scales(b, scales, offsets);
}

fn q6_k(b: &[u8], codes: &mut [i8], scales: &mut [f32], offsets: &mut [f32]) {
    let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
    let d = f16_at(b, 208);
    for (e, c) in codes.iter_mut().enumerate() {
        let (h, r) = (e / 128, e % 128);
        let low = (ql[64 * h + r % 64] >> (4 * (r / 64))) & 0x0f;
        let high = (qh[32 * h + r % 32] >> (2 * (r / 32))) & 3;
        *c = (low | (high << 4)) as i8 - 32;
    }
    for (s, &v) in scales.iter_mut().zip(sc) {
        *s = d * f32::from(v as i8);
    }
    offsets.fill(0.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte offsets of each type's f16 scale fields (set to finite values in the random blocks).
    fn f16_fields(ty: GgmlType) -> &'static [usize] {
        use GgmlType as T;
        match ty {
            T::Q4_0 | T::Q5_0 | T::Q8_0 => &[0],
            T::Q4_1 | T::Q5_1 | T::Q4K | T::Q5K => &[0, 2],
            T::Q2K => &[80, 82],
            T::Q3K => &[108],
            T::Q6K => &[208],
            _ => unreachable!(),
        }
    }

    #[test]
    fn codes_rebuild_the_dequantized_values_bit_for_bit() {
        use GgmlType as T;
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for ty in [
            T::Q4_0,
            T::Q4_1,
            T::Q5_0,
            T::Q5_1,
            T::Q8_0,
            T::Q2K,
            T::Q3K,
            T::Q4K,
            T::Q5K,
            T::Q6K,
        ] {
            let (block, block_bytes) = ty.block_geometry().unwrap();
            let n = 4 * block;
            let mut bytes: Vec<u8> = (0..4 * block_bytes).map(|_| next() as u8).collect();
            for b in 0..4 {
                for &at in f16_fields(ty) {
                    // Finite halves of either sign, tiny to large.
                    let h = half::f16::from_f32(
                        ((next() % 2000) as f32 - 1000.0) * 1e-4 * (1 + next() % 50) as f32,
                    );
                    bytes[b * block_bytes + at..b * block_bytes + at + 2]
                        .copy_from_slice(&h.to_bits().to_le_bytes());
                }
            }
            let mut want = vec![0f32; n];
            crate::dequantize(ty, &bytes, n, &mut want).unwrap();
            let mut codes = vec![0i8; n];
            let mut scales = vec![0f32; n / 16];
            let mut offsets = vec![0f32; n / 16];
            decode_int_codes(ty, &bytes, n, &mut codes, &mut scales, &mut offsets).unwrap();
            for e in 0..n {
                let g = e / 16;
                let got = scales[g] * f32::from(codes[e]) + offsets[g];
                // d·q + (−m) for offset types; d·q + 0 is d·q except for −0 (sign of zero only).
                let got = if int_code_offsets(ty) == Some(true) {
                    got
                } else {
                    scales[g] * f32::from(codes[e])
                };
                assert_eq!(got.to_bits(), want[e].to_bits(), "{ty:?} element {e}");
            }
        }
    }

    #[test]
    fn bad_lengths_are_refused() {
        let mut codes = vec![0i8; 32];
        let mut s = vec![0f32; 2];
        let mut o = vec![0f32; 2];
        assert!(matches!(
            decode_int_codes(GgmlType::Q4_0, &[0u8; 17], 32, &mut codes, &mut s, &mut o),
            Err(QuantError::ByteLength { .. })
        ));
        assert!(matches!(
            decode_int_codes(GgmlType::F16, &[0u8; 64], 32, &mut codes, &mut s, &mut o),
            Err(QuantError::Unsupported { .. })
        ));
    }
}
