//! The 256-element "k-quant" super-blocks: dequantization of Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
//! Q8_K, bit-identical to PyPI gguf / ggml. The quantizers live in `kquant_encode`.
//!
//! Layouts (bytes, QK_K = 256):
//! - Q2_K (84): `scales[16]` (low nibble scale, high nibble min, per 16 elements), `qs[64]`,
//!   `d:f16`, `dmin:f16`. Element `128h + 32s + m` is bits `2s..2s+2` of `qs[32h + m]`.
//! - Q3_K (110): `hmask[32]`, `qs[64]`, `scales[12]` (16 six-bit scales, offset 32), `d:f16`.
//!   Element `32s + m` has high bit `(hmask[m] >> s) & 1`; a CLEAR high bit subtracts 4.
//! - Q4_K (144): `d`, `dmin`, `scales[12]` (8 six-bit scales and mins), `qs[128]`. Element
//!   `64c + 32s + m` is nibble `s` of `qs[32c + m]`.
//! - Q5_K (176): `d`, `dmin`, `scales[12]`, `qh[32]`, `qs[128]`; bit 4 of element `32s + m`
//!   is `(qh[m] >> s) & 1`.
//! - Q6_K (210): `ql[128]`, `qh[64]`, `scales:i8[16]`, `d:f16`. Element `128h + 64s + m`
//!   (m < 64) takes nibble `s` of `ql[64h + m]`; element `128h + 32s + m` (m < 32) takes bits
//!   `2s..2s+2` of `qh[32h + m]` as its bits 4..6; value offset 32.
//! - Q8_K (292): `d:f32`, `qs:i8[256]`, `bsums:i16[16]` (sums of 16 consecutive qs).

use crate::float::f16_at;

pub(crate) const QK_K: usize = 256;

pub(crate) fn dequantize_q2_k(block: &[u8], out: &mut [f32]) {
    let scales = &block[0..16];
    let qs = &block[16..80];
    let d = f16_at(block, 80);
    let dmin = f16_at(block, 82);
    for (e, o) in out.iter_mut().enumerate() {
        let (h, s, m) = (e / 128, (e / 32) % 4, e % 32);
        let q = (qs[32 * h + m] >> (2 * s)) & 3;
        let sc = scales[e / 16];
        let dl = d * f32::from(sc & 0x0f);
        let ml = dmin * f32::from(sc >> 4);
        *o = dl * f32::from(q) - ml;
    }
}

/// The 16 six-bit Q3_K scales (before the −32 offset).
fn q3_k_scales(packed: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        let low = if i < 8 {
            packed[i] & 0x0f
        } else {
            packed[i - 8] >> 4
        };
        let high = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
        *o = low | (high << 4);
    }
    out
}

pub(crate) fn dequantize_q3_k(block: &[u8], out: &mut [f32]) {
    let hmask = &block[0..32];
    let qs = &block[32..96];
    let scales = q3_k_scales(&block[96..108]);
    let d = f16_at(block, 108);
    for (e, o) in out.iter_mut().enumerate() {
        let (h, s, m) = (e / 128, (e / 32) % 4, e % 32);
        let low = ((qs[32 * h + m] >> (2 * s)) & 3) as i8;
        let high_clear = ((hmask[m] >> (e / 32)) & 1) ^ 1;
        let q = low - ((high_clear << 2) as i8);
        let dl = d * f32::from(scales[e / 16] as i8 - 32);
        *o = dl * f32::from(q);
    }
}

/// Q4_K / Q5_K: the 8 six-bit (scale, min) pairs packed in 12 bytes.
pub(crate) fn k_scale_min(packed: &[u8]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    for j in 0..4 {
        sc[j] = packed[j] & 0x3f;
        mn[j] = packed[j + 4] & 0x3f;
        sc[j + 4] = (packed[j + 8] & 0x0f) | ((packed[j] >> 2) & 0x30);
        mn[j + 4] = (packed[j + 8] >> 4) | ((packed[j + 4] >> 2) & 0x30);
    }
    (sc, mn)
}

pub(crate) fn dequantize_q4_k(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    let dmin = f16_at(block, 2);
    let (sc, mn) = k_scale_min(&block[4..16]);
    let qs = &block[16..144];
    for (e, o) in out.iter_mut().enumerate() {
        let (c, s, m) = (e / 64, (e / 32) % 2, e % 32);
        let q = (qs[32 * c + m] >> (4 * s)) & 0x0f;
        let sub = e / 32;
        let dl = d * f32::from(sc[sub]);
        let ml = dmin * f32::from(mn[sub]);
        *o = dl * f32::from(q) - ml;
    }
}

pub(crate) fn dequantize_q5_k(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    let dmin = f16_at(block, 2);
    let (sc, mn) = k_scale_min(&block[4..16]);
    let qh = &block[16..48];
    let qs = &block[48..176];
    for (e, o) in out.iter_mut().enumerate() {
        let (c, s, m) = (e / 64, (e / 32) % 2, e % 32);
        let sub = e / 32;
        let low = (qs[32 * c + m] >> (4 * s)) & 0x0f;
        let high = (qh[m] >> sub) & 1;
        let q = low | (high << 4);
        let dl = d * f32::from(sc[sub]);
        let ml = dmin * f32::from(mn[sub]);
        *o = dl * f32::from(q) - ml;
    }
}

pub(crate) fn dequantize_q6_k(block: &[u8], out: &mut [f32]) {
    let ql = &block[0..128];
    let qh = &block[128..192];
    let scales = &block[192..208];
    let d = f16_at(block, 208);
    for (e, o) in out.iter_mut().enumerate() {
        let h = e / 128;
        let r = e % 128;
        let low = (ql[64 * h + r % 64] >> (4 * (r / 64))) & 0x0f;
        let high = (qh[32 * h + r % 32] >> (2 * (r / 32))) & 3;
        let q = (low | (high << 4)) as i8 - 32;
        let dl = d * f32::from(scales[e / 16] as i8);
        *o = dl * f32::from(q);
    }
}

pub(crate) fn dequantize_q8_k(block: &[u8], out: &mut [f32]) {
    let d = f32::from_le_bytes([block[0], block[1], block[2], block[3]]);
    for (o, &q) in out.iter_mut().zip(&block[4..260]) {
        *o = d * f32::from(q as i8);
    }
}
