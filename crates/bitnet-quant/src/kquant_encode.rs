//! Quantizers for the k-quant formats the engine writes: Q8_K (ggml's reference rule, exact),
//! Q6_K and Q4_K (per-sub-block least-squares scale search, then 8-bit / 6-bit scale
//! quantization against the super-block scale, then a final re-quantization with the stored
//! scales). PyPI gguf cannot quantize these types, so Q6_K/Q4_K bytes are not claimed identical to
//! ggml's; their accuracy is bounded by tests and they decode with the gguf-py-exact dequantizers.
//!
//! Documented (and property-tested) bounds per 256-block with largest magnitude `a`, while the
//! super-block scales are normal f16 values (`a` ≳ 0.5 for Q6_K; smaller blocks lose precision to
//! f16-subnormal scales, exactly as in ggml): Q8_K max error ≤ a/254; Q6_K max ≤ a/32,
//! RMS ≤ a/80; Q4_K max ≤ a/6, RMS ≤ a/20. Non-finite input never panics (the output is then
//! unspecified).

use crate::float::{f16_at, f32_to_f16_bits};
use crate::kquants::QK_K;

/// ggml's `nearest_int`: round half to even, by adding 1.5·2^23 so the FPU rounds (the same
/// trick ggml uses; `f32::round_ties_even` is a library call on baseline x86-64). The input is
/// clamped to ±2^22 first, where the trick is exact; callers clamp the result further.
#[inline]
fn nearest(x: f32) -> i32 {
    let v = x.clamp(-4_194_304.0, 4_194_304.0) + 12_582_912.0;
    (v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// The element of largest magnitude, with its sign (first on ties).
fn signed_absmax(x: &[f32]) -> f32 {
    x.iter().fold(
        0.0f32,
        |best, &v| if v.abs() > best.abs() { v } else { best },
    )
}

/// Q8_K exactly as ggml's `quantize_row_q8_K_ref`: `iscale = −127/max` (max = the signed
/// largest-magnitude value), `q = min(127, nearest(iscale·x))`, `d = 1/iscale`, plus the
/// sums of each 16 codes.
pub(crate) fn quantize_q8_k(x: &[f32], block: &mut [u8]) {
    let max = signed_absmax(x);
    block.fill(0);
    if max == 0.0 {
        return;
    }
    let iscale = -127.0 / max;
    let mut sums = [0i16; 16];
    for (j, &v) in x.iter().enumerate() {
        // ggml clamps only above; the lower clamp only matters for non-finite input.
        let q = nearest(iscale * v).clamp(-128, 127) as i8;
        block[4 + j] = q as u8;
        sums[j / 16] += i16::from(q);
    }
    block[0..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    for (j, s) in sums.iter().enumerate() {
        block[260 + 2 * j..262 + 2 * j].copy_from_slice(&s.to_le_bytes());
    }
}

/// Best signed scale for `x ≈ scale · L`, `L ∈ [−nmax, nmax − 1]`, by trying 19 reciprocal
/// scales around `−nmax / max` and solving the x²-weighted least-squares scale for each.
fn symmetric_scale(x: &[f32], nmax: i32) -> f32 {
    let max = signed_absmax(x);
    if max.abs() < 1e-30 {
        return 0.0;
    }
    let mut best = (0.0f32, 0.0f32); // (sumlx² / suml2 score, scale)
    for k in -9..=9 {
        let iscale = -(nmax as f32 + 0.1 * k as f32) / max;
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for &v in x {
            let l = nearest(iscale * v).clamp(-nmax, nmax - 1) as f32;
            let w = v * v;
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        if suml2 > 0.0 && sumlx * sumlx > best.0 * suml2 {
            best = (sumlx * sumlx / suml2, sumlx / suml2);
        }
    }
    best.1
}

/// Q6_K: 16 sub-blocks of 16 with i8 scales and an f16 super-scale.
pub(crate) fn quantize_q6_k(x: &[f32], block: &mut [u8]) {
    block.fill(0);
    let mut scales = [0f32; 16];
    for (s, sub) in scales.iter_mut().zip(x.chunks_exact(16)) {
        *s = symmetric_scale(sub, 32);
    }
    let max_scale = signed_absmax(&scales);
    if max_scale.abs() < 1e-30 {
        // All zero: codes 32 (value 0), scales 0, d = 0.
        fill_q6_k_codes(&[32u8; QK_K], block);
        return;
    }
    let iscale = -128.0 / max_scale;
    block[208..210].copy_from_slice(&f32_to_f16_bits(1.0 / iscale).to_le_bytes());
    let d = f16_at(block, 208);
    let mut codes = [32u8; QK_K];
    for (i, &s) in scales.iter().enumerate() {
        let sc = nearest(iscale * s).clamp(-128, 127) as i8;
        block[192 + i] = sc as u8;
        let dl = d * f32::from(sc);
        if dl == 0.0 {
            continue;
        }
        for j in 16 * i..16 * i + 16 {
            codes[j] = (nearest(x[j] / dl).clamp(-32, 31) + 32) as u8;
        }
    }
    fill_q6_k_codes(&codes, block);
}

fn fill_q6_k_codes(codes: &[u8; QK_K], block: &mut [u8]) {
    block[..192].fill(0);
    for (e, &q) in codes.iter().enumerate() {
        let (h, r) = (e / 128, e % 128);
        block[64 * h + r % 64] |= (q & 0x0f) << (4 * (r / 64));
        block[128 + 32 * h + r % 32] |= (q >> 4) << (2 * (r / 32));
    }
}

/// Best `(scale ≥ 0, min ≤ 0)` for `x ≈ scale · L + min`, `L ∈ 0..=15`: the plain min/max fit
/// and 21 reciprocal scales around `15/(max − min)`, each refined by weighted least squares
/// (weights `rms(x) + |x|`); the smallest weighted squared error wins.
fn affine_scale_min(x: &[f32]) -> (f32, f32) {
    let mut min = x.iter().fold(f32::INFINITY, |m, &v| m.min(v)).min(0.0);
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    if max <= min {
        return (0.0, min);
    }
    let rms = (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
    let mut weights = [0f32; 32];
    for (w, v) in weights.iter_mut().zip(x) {
        *w = rms + v.abs();
    }
    let error = |scale: f32, min: f32| -> f32 {
        let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        x.iter()
            .zip(&weights)
            .map(|(&v, &w)| {
                let l = nearest((v - min) * inv).clamp(0, 15) as f32;
                let diff = scale * l + min - v;
                w * diff * diff
            })
            .sum()
    };
    let mut scale = (max - min) / 15.0;
    let mut best_err = error(scale, min);
    let first_min = min;
    for step in 0..=20 {
        let iscale = (14.0 + 0.1 * step as f32) / (max - first_min);
        let (mut sw, mut sl, mut sl2, mut sx, mut slx) = (0f32, 0f32, 0f32, 0f32, 0f32);
        for (&v, &w) in x.iter().zip(&weights) {
            let l = nearest(iscale * (v - first_min)).clamp(0, 15) as f32;
            sw += w;
            sl += w * l;
            sl2 += w * l * l;
            sx += w * v;
            slx += w * l * v;
        }
        let det = sw * sl2 - sl * sl;
        if det <= 0.0 {
            continue;
        }
        let mut cand_scale = (sw * slx - sl * sx) / det;
        let mut cand_min = (sl2 * sx - sl * slx) / det;
        if cand_min > 0.0 {
            cand_min = 0.0;
            cand_scale = if sl2 > 0.0 { slx / sl2 } else { 0.0 };
        }
        if cand_scale <= 0.0 {
            continue;
        }
        let err = error(cand_scale, cand_min);
        if err < best_err {
            best_err = err;
            scale = cand_scale;
            min = cand_min;
        }
    }
    (scale, min)
}

/// Q4_K: 8 sub-blocks of 32 with 6-bit scales and mins under f16 `d` and `dmin`.
pub(crate) fn quantize_q4_k(x: &[f32], block: &mut [u8]) {
    block.fill(0);
    let mut scales = [0f32; 8];
    let mut mins = [0f32; 8]; // stored as positive offsets: value = d·sc·q − dmin·m
    for (i, sub) in x.chunks_exact(32).enumerate() {
        let (s, m) = affine_scale_min(sub);
        scales[i] = s;
        mins[i] = -m;
    }
    let max_scale = scales.iter().fold(0f32, |m, &v| m.max(v));
    let max_min = mins.iter().fold(0f32, |m, &v| m.max(v));
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    for i in 0..8 {
        sc[i] = nearest(inv_scale * scales[i]).clamp(0, 63) as u8;
        mn[i] = nearest(inv_min * mins[i]).clamp(0, 63) as u8;
    }
    block[0..2].copy_from_slice(&f32_to_f16_bits(max_scale / 63.0).to_le_bytes());
    block[2..4].copy_from_slice(&f32_to_f16_bits(max_min / 63.0).to_le_bytes());
    for j in 0..4 {
        block[4 + j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        block[8 + j] = mn[j] | ((mn[j + 4] >> 4) << 6);
        block[12 + j] = (sc[j + 4] & 0x0f) | ((mn[j + 4] & 0x0f) << 4);
    }
    let d = f16_at(block, 0);
    let dmin = f16_at(block, 2);
    for (i, sub) in x.chunks_exact(32).enumerate() {
        let dl = d * f32::from(sc[i]);
        let ml = dmin * f32::from(mn[i]);
        for (k, &v) in sub.iter().enumerate() {
            let q = if dl > 0.0 {
                nearest((v + ml) / dl).clamp(0, 15) as u8
            } else {
                0
            };
            let e = 32 * i + k;
            let (c, s, m) = (e / 64, (e / 32) % 2, e % 32);
            block[16 + 32 * c + m] |= q << (4 * s);
        }
    }
}
