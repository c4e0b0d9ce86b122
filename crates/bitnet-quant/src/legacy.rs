//! The 32-element "legacy" ggml blocks: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (dequantize and the
//! reference quantizers, bit-identical to ggml's `quantize_row_*_ref` / PyPI gguf).
//!
//! Layouts (bytes): Q4_0 `d:f16, qs[16]`; Q4_1 `d, m, qs[16]`; Q5_0 `d, qh:u32, qs[16]`;
//! Q5_1 `d, m, qh, qs[16]`; Q8_0 `d, qs:i8[32]`. A 4-bit nibble array holds element `j` in the
//! low nibble of byte `j` and element `j + 16` in the high nibble; bit `j` of `qh` is bit 4 of
//! element `j`.

use crate::float::{f16_at, f32_to_f16_bits};

pub(crate) const QK: usize = 32;

fn nibble(qs: &[u8], j: usize) -> u8 {
    if j < 16 {
        qs[j] & 0x0f
    } else {
        qs[j - 16] >> 4
    }
}

fn fifth_bit(qh: u32, j: usize) -> u8 {
    ((qh >> j) & 1) as u8
}

pub(crate) fn dequantize_q4_0(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    let qs = &block[2..18];
    for (j, o) in out.iter_mut().enumerate() {
        *o = d * (f32::from(nibble(qs, j)) - 8.0);
    }
}

pub(crate) fn dequantize_q4_1(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    let m = f16_at(block, 2);
    let qs = &block[4..20];
    for (j, o) in out.iter_mut().enumerate() {
        *o = d * f32::from(nibble(qs, j)) + m;
    }
}

pub(crate) fn dequantize_q5_0(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
    let qs = &block[6..22];
    for (j, o) in out.iter_mut().enumerate() {
        let q = nibble(qs, j) | (fifth_bit(qh, j) << 4);
        *o = d * (f32::from(q) - 16.0);
    }
}

pub(crate) fn dequantize_q5_1(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    let m = f16_at(block, 2);
    let qh = u32::from_le_bytes([block[4], block[5], block[6], block[7]]);
    let qs = &block[8..24];
    for (j, o) in out.iter_mut().enumerate() {
        let q = nibble(qs, j) | (fifth_bit(qh, j) << 4);
        *o = d * f32::from(q) + m;
    }
}

pub(crate) fn dequantize_q8_0(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    for (o, &q) in out.iter_mut().zip(&block[2..34]) {
        *o = f32::from(q as i8) * d;
    }
}

/// The element of largest magnitude, keeping its sign; the first one on ties (numpy argmax).
fn signed_absmax(x: &[f32]) -> f32 {
    let mut best = x[0];
    for &v in &x[1..] {
        if v.abs() > best.abs() {
            best = v;
        }
    }
    best
}

fn min_max(x: &[f32]) -> (f32, f32) {
    x.iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

fn inverse(d: f32) -> f32 {
    if d == 0.0 {
        0.0
    } else {
        1.0 / d
    }
}

/// `trunc(v)` clamped to `0..=max` (ggml's `MIN(max, (int8_t)(v))`, numpy's `astype().clip()`).
fn trunc_code(v: f32, max: u8) -> u8 {
    (v.trunc() as u8).min(max)
}

fn put_f16(dst: &mut [u8], at: usize, v: f32) {
    dst[at..at + 2].copy_from_slice(&f32_to_f16_bits(v).to_le_bytes());
}

fn pack_nibbles(q: &[u8; QK], qs: &mut [u8]) {
    for j in 0..16 {
        qs[j] = (q[j] & 0x0f) | (q[j + 16] << 4);
    }
}

fn fifth_bits(q: &[u8; QK]) -> u32 {
    q.iter()
        .enumerate()
        .fold(0u32, |acc, (j, &v)| acc | (u32::from(v >> 4) << j))
}

pub(crate) fn quantize_q4_0(x: &[f32], dst: &mut [u8]) {
    let d = signed_absmax(x) / -8.0;
    let id = inverse(d);
    let mut q = [0u8; QK];
    for (qj, &v) in q.iter_mut().zip(x) {
        *qj = trunc_code(v * id + 8.5, 15);
    }
    put_f16(dst, 0, d);
    pack_nibbles(&q, &mut dst[2..18]);
}

pub(crate) fn quantize_q4_1(x: &[f32], dst: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = inverse(d);
    let mut q = [0u8; QK];
    for (qj, &v) in q.iter_mut().zip(x) {
        *qj = trunc_code((v - min) * id + 0.5, 15);
    }
    put_f16(dst, 0, d);
    put_f16(dst, 2, min);
    pack_nibbles(&q, &mut dst[4..20]);
}

pub(crate) fn quantize_q5_0(x: &[f32], dst: &mut [u8]) {
    let d = signed_absmax(x) / -16.0;
    let id = inverse(d);
    let mut q = [0u8; QK];
    for (qj, &v) in q.iter_mut().zip(x) {
        *qj = trunc_code(v * id + 16.5, 31);
    }
    put_f16(dst, 0, d);
    dst[2..6].copy_from_slice(&fifth_bits(&q).to_le_bytes());
    pack_nibbles(&q, &mut dst[6..22]);
}

pub(crate) fn quantize_q5_1(x: &[f32], dst: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = inverse(d);
    let mut q = [0u8; QK];
    for (qj, &v) in q.iter_mut().zip(x) {
        *qj = trunc_code((v - min) * id + 0.5, 31);
    }
    put_f16(dst, 0, d);
    put_f16(dst, 2, min);
    dst[4..8].copy_from_slice(&fifth_bits(&q).to_le_bytes());
    pack_nibbles(&q, &mut dst[8..24]);
}

pub(crate) fn quantize_q8_0(x: &[f32], dst: &mut [u8]) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = inverse(d);
    put_f16(dst, 0, d);
    for (q, &v) in dst[2..34].iter_mut().zip(x) {
        // f32::round is round-half-away-from-zero, ggml's roundf.
        *q = ((v * id).round() as i8) as u8;
    }
}
