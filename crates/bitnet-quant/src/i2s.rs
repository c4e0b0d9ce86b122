//! bitnet.cpp's I2_S (per-tensor scale) and the block-scaled "BitNet32-F16" flavour.
//!
//! I2_S: `n/4` bytes of 2-bit codes in 128-element / 32-byte blocks, element `j` of a block in
//! byte `j % 32` at shift `6 − 2⌊j/32⌋`; then the f32 scale at byte `n/4`; then 28 padding bytes
//! that bitnet.cpp leaves uninitialised (never read here). Codes: 0 → −1, 1 → 0, 2 → +1.
//!
//! BitNet32-F16: 32-element blocks of 10 bytes: 8 code bytes (element `i` in byte `i/4` at shift
//! `2(i % 4)`, LSB first) and the block's f16 scale.

use bitnet_gguf::GgmlType;

use crate::float::{f16_at, f32_to_f16_bits};
use crate::size::{I2S_BLOCK_LEN, I2S_TRAILER_BYTES};
use crate::QuantError;

pub(crate) const BN32_LEN: usize = 32;
pub(crate) const BN32_BYTES: usize = 10;

/// Byte and shift of element `i` of an I2_S tensor.
#[inline]
fn i2s_slot(i: usize) -> (usize, u32) {
    let block = i / I2S_BLOCK_LEN;
    let j = i % I2S_BLOCK_LEN;
    (block * 32 + j % 32, (6 - 2 * (j / 32)) as u32)
}

/// The per-tensor scale stored after the codes of an I2_S tensor of `n` elements.
pub(crate) fn i2s_scale(bytes: &[u8], n: usize) -> f32 {
    let at = n / 4;
    f32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Fails with the first element whose code is 3 (not ternary).
fn check_i2s_codes(codes: &[u8]) -> Result<(), QuantError> {
    // A 2-bit field equals 3 exactly when both of its bits are set.
    if let Some(p) = codes.iter().position(|&b| b & (b >> 1) & 0x55 != 0) {
        let group = (0..4)
            .find(|g| (codes[p] >> (6 - 2 * g)) & 3 == 3)
            .unwrap_or(0);
        return Err(QuantError::NotTernary {
            ty: GgmlType::I2S,
            index: (p / 32) * I2S_BLOCK_LEN + 32 * group + p % 32,
            code: 3,
        });
    }
    Ok(())
}

/// Calls `f(i, code)` for every element `i < n` (codes 0..=2); fails if any code is 3.
pub(crate) fn i2s_codes(
    bytes: &[u8],
    n: usize,
    mut f: impl FnMut(usize, u8),
) -> Result<(), QuantError> {
    let codes = &bytes[..n / 4];
    check_i2s_codes(codes)?;
    for (block, chunk) in codes.chunks_exact(32).enumerate() {
        for group in 0..4 {
            let first = block * I2S_BLOCK_LEN + 32 * group;
            let shift = 6 - 2 * group;
            for (m, &b) in chunk.iter().enumerate() {
                f(first + m, (b >> shift) & 3);
            }
        }
    }
    Ok(())
}

/// Writes the ternary values (code − 1) of the first `n` elements into `out` (`n` long): the
/// loader's path, written block by block so it vectorises. Fails if any code is 3.
pub(crate) fn i2s_values(bytes: &[u8], n: usize, out: &mut [i8]) -> Result<(), QuantError> {
    let codes = &bytes[..n / 4];
    check_i2s_codes(codes)?;
    for (chunk, block) in codes
        .chunks_exact(32)
        .zip(out.chunks_exact_mut(I2S_BLOCK_LEN))
    {
        for (group, dst) in block.chunks_exact_mut(32).enumerate() {
            let shift = 6 - 2 * group;
            for (d, &b) in dst.iter_mut().zip(chunk) {
                *d = ((b >> shift) & 3) as i8 - 1;
            }
        }
    }
    Ok(())
}

/// Writes I2_S bytes (codes, scale, zero padding) for `codes` (each 0..=2).
pub(crate) fn put_i2s(codes: impl Iterator<Item = u8>, n: usize, scale: f32, dst: &mut [u8]) {
    dst.fill(0);
    for (i, c) in codes.enumerate() {
        let (byte, shift) = i2s_slot(i);
        dst[byte] |= c << shift;
    }
    dst[n / 4..n / 4 + 4].copy_from_slice(&scale.to_le_bytes());
    debug_assert_eq!(dst.len(), n / 4 + I2S_TRAILER_BYTES);
}

pub(crate) fn dequantize_i2s(bytes: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    let n = out.len();
    let scale = i2s_scale(bytes, n);
    i2s_codes(bytes, n, |i, c| out[i] = f32::from(c as i8 - 1) * scale)
}

/// bitnet.cpp's `quantize_i2_s`: scale = max|x| (over the whole tensor, in double, stored as
/// f32); an element with |x| < 1e-6 becomes 0, otherwise its sign.
pub(crate) fn quantize_i2s(src: &[f32], dst: &mut [u8]) {
    let max = src.iter().fold(0.0f64, |m, &v| m.max(f64::from(v).abs()));
    let codes = src.iter().map(|&v| {
        let v = f64::from(v);
        if v.abs() < 1e-6 {
            1
        } else if v * max > 0.0 {
            2
        } else {
            0
        }
    });
    put_i2s(codes, src.len(), max as f32, dst);
}

/// The 32 codes of a BitNet32-F16 block (may include 3; callers decide).
pub(crate) fn bn32_codes(block: &[u8]) -> [u8; BN32_LEN] {
    let mut codes = [0u8; BN32_LEN];
    for (i, c) in codes.iter_mut().enumerate() {
        *c = (block[i / 4] >> (2 * (i % 4))) & 3;
    }
    codes
}

pub(crate) fn put_bn32(codes: &[u8; BN32_LEN], d_bits: u16, block: &mut [u8]) {
    block[..8].fill(0);
    for (i, &c) in codes.iter().enumerate() {
        block[i / 4] |= c << (2 * (i % 4));
    }
    block[8..10].copy_from_slice(&d_bits.to_le_bytes());
}

pub(crate) fn dequantize_bn32(
    block: &[u8],
    out: &mut [f32],
    block_index: usize,
) -> Result<(), QuantError> {
    let d = f16_at(block, 8);
    for (i, (o, c)) in out.iter_mut().zip(bn32_codes(block)).enumerate() {
        if c == 3 {
            return Err(QuantError::NotTernary {
                ty: GgmlType::BitNet32F16,
                index: block_index * BN32_LEN + i,
                code: c,
            });
        }
        *o = d * f32::from(c as i8 - 1);
    }
    Ok(())
}

/// Block-scaled I2_S from floats, by the same rule as TQ2_0: `d = max|x|` of the block (stored as
/// f16), `t = round(x/d)` (half away from zero, as `x · (1/d)`).
pub(crate) fn quantize_bn32(x: &[f32], block: &mut [u8]) {
    let d = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    let mut codes = [1u8; BN32_LEN];
    for (c, &v) in codes.iter_mut().zip(x) {
        *c = ((v * id).round().clamp(-1.0, 1.0) as i8 + 1) as u8;
    }
    put_bn32(&codes, f32_to_f16_bits(d), block);
}
