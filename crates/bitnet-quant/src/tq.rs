//! The ternary block formats of ggml: TQ1_0 (256 elements in 54 bytes, base-3 packed) and TQ2_0
//! (256 elements in 66 bytes, 2-bit codes). Codes/trits `c ∈ {0,1,2}` mean `t = c − 1`; each block
//! ends with its f16 scale `d`. Quantization is bit-identical to PyPI gguf / ggml's reference.
//!
//! TQ2_0: element `128h + 32s + m` is bits `2s..2s+2` of `qs[32h + m]`.
//! TQ1_0: a byte holds up to 5 trits as `ceil(v·256/243)` of the base-3 number `v` whose most
//! significant digit is trit 0; trit `n` is `((byte·3^n) mod 256)·3 >> 8`. Bytes 0–31 hold
//! elements `m + 32n` (n < 5), bytes 32–47 hold `160 + m + 16n` (n < 5), bytes 48–51 hold
//! `240 + m + 4n` (n < 4).

use crate::float::{f16_at, f32_to_f16_bits};

pub(crate) const QK: usize = 256;
pub(crate) const TQ2_BYTES: usize = 66;
pub(crate) const TQ1_BYTES: usize = 54;

/// The 256 codes (0, 1, 2; TQ2_0 can also hold 3) of a TQ2_0 block.
pub(crate) fn tq2_codes(block: &[u8]) -> [u8; QK] {
    let mut codes = [0u8; QK];
    for (e, c) in codes.iter_mut().enumerate() {
        let (h, s, m) = (e / 128, (e / 32) % 4, e % 32);
        *c = (block[32 * h + m] >> (2 * s)) & 3;
    }
    codes
}

/// Writes codes and scale bits into a TQ2_0 block.
pub(crate) fn put_tq2(codes: &[u8; QK], d_bits: u16, block: &mut [u8]) {
    block[..64].fill(0);
    for (e, &c) in codes.iter().enumerate() {
        let (h, s, m) = (e / 128, (e / 32) % 4, e % 32);
        block[32 * h + m] |= c << (2 * s);
    }
    block[64..66].copy_from_slice(&d_bits.to_le_bytes());
}

/// (byte index, trit position) holding element `e` of a TQ1_0 block.
fn tq1_slot(e: usize) -> (usize, usize) {
    if e < 160 {
        (e % 32, e / 32)
    } else if e < 240 {
        (32 + (e - 160) % 16, (e - 160) / 16)
    } else {
        (48 + (e - 240) % 4, (e - 240) / 4)
    }
}

const POW3: [u8; 5] = [1, 3, 9, 27, 81];

/// The 256 trits (0, 1, 2) of a TQ1_0 block.
pub(crate) fn tq1_codes(block: &[u8]) -> [u8; QK] {
    let mut codes = [0u8; QK];
    for (e, c) in codes.iter_mut().enumerate() {
        let (byte, n) = tq1_slot(e);
        let shifted = block[byte].wrapping_mul(POW3[n]);
        *c = ((u16::from(shifted) * 3) >> 8) as u8;
    }
    codes
}

/// Writes trits (each 0..=2) and scale bits into a TQ1_0 block.
pub(crate) fn put_tq1(codes: &[u8; QK], d_bits: u16, block: &mut [u8]) {
    let mut values = [0u16; 52];
    for (e, &c) in codes.iter().enumerate() {
        let (byte, n) = tq1_slot(e);
        values[byte] += u16::from(c) * u16::from(POW3[4 - n]);
    }
    for (b, v) in block.iter_mut().zip(values) {
        // ceil(v·256 / 243)
        *b = (v * 256).div_ceil(243) as u8;
    }
    block[52..54].copy_from_slice(&d_bits.to_le_bytes());
}

/// Ternary codes of a float block by ggml's rule: `d = max|x|`, `c = round(x/d) + 1`
/// (round half away from zero, computed as `x · (1/d)`).
fn ternary_codes(x: &[f32]) -> ([u8; QK], f32) {
    let d = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    let mut codes = [1u8; QK];
    for (c, &v) in codes.iter_mut().zip(x) {
        *c = ((v * id).round() as i8 + 1) as u8;
    }
    (codes, d)
}

pub(crate) fn quantize_tq2_0(x: &[f32], block: &mut [u8]) {
    let (codes, d) = ternary_codes(x);
    put_tq2(&codes, f32_to_f16_bits(d), block);
}

pub(crate) fn quantize_tq1_0(x: &[f32], block: &mut [u8]) {
    let (codes, d) = ternary_codes(x);
    put_tq1(&codes, f32_to_f16_bits(d), block);
}

pub(crate) fn dequantize_tq2_0(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 64);
    for (o, c) in out.iter_mut().zip(tq2_codes(block)) {
        *o = d * f32::from(c as i8 - 1);
    }
}

pub(crate) fn dequantize_tq1_0(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 52);
    for (o, c) in out.iter_mut().zip(tq1_codes(block)) {
        *o = d * f32::from(c as i8 - 1);
    }
}
