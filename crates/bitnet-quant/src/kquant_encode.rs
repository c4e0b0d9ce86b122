//! Quantizers for the k-quant formats the engine writes: Q8_K (ggml's reference rule, exact),
//! Q6_K (ggml's `quantize_row_q6_K_ref` algorithm: per-sub-block least-squares scale search,
//! 8-bit scales against the f16 super-scale, re-quantization with the stored scales) and Q4_K
//! (the same idea with 6-bit scales and mins). PyPI gguf cannot quantize these types, so their
//! bytes are not checked against ggml's (and ggml's own bytes depend on whether its compiler fuses
//! the sums' multiply-adds); their accuracy is bounded by tests, they decode with the
//! gguf-py-exact dequantizers, and crates/bitnet-quant/tests/q6_k_gguf.rs checks gguf's decoding
//! of our Q6_K bytes.
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

/// Below this largest magnitude a group counts as all zero (ggml's `GROUP_MAX_EPS`).
const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `make_qx_quants` with x²-weighted least squares (`rmse_type` 1, no importance
/// weights): the best signed scale for `x ≈ scale · (L − nmax)`, `L ∈ 0..2·nmax`, and its codes
/// `L`. The reciprocal scale `−nmax / m` (m the value of largest magnitude, first on ties) is
/// tried first, then `−(nmax + k/10) / m` for k = −9..=9 (k ≠ 0); a candidate replaces the best
/// when `sumlx² > best · suml2` with `best = scale · sumlx`, `scale = sumlx / suml2`, each sum
/// accumulated in f32 in element order as `(w·x)·l` and `(w·l)·l` (no fused operations). A group
/// below [`GROUP_MAX_EPS`] gives scale 0 and codes 0.
fn make_qx_quants(x: &[f32], nmax: i32, codes: &mut [u8]) -> f32 {
    let mut max = 0f32;
    let mut amax = 0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        codes.fill(0);
        return 0.0;
    }
    let level = |iscale: f32, v: f32| nearest(iscale * v).clamp(-nmax, nmax - 1);
    let sums = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0f32, 0f32);
        for &v in x {
            let l = level(iscale, v) as f32;
            let w = v * v;
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        (sumlx, suml2)
    };
    let fill = |iscale: f32, codes: &mut [u8]| {
        for (c, &v) in codes.iter_mut().zip(x) {
            *c = (level(iscale, v) + nmax) as u8;
        }
    };
    let iscale = -(nmax as f32) / max;
    fill(iscale, codes);
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for k in (-9..=9).filter(|&k| k != 0) {
        let iscale = -(nmax as f32 + 0.1 * k as f32) / max;
        let (sumlx, suml2) = sums(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            fill(iscale, codes);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Q6_K by ggml's `quantize_row_q6_K_ref` algorithm: each sub-block of 16 gets its
/// [`make_qx_quants`] scale and codes (nmax 32); the scale of largest magnitude `s` sets
/// `iscale = −128 / s`, `d = f16(1 / iscale)`, sub-block scales `min(127, nearest(iscale ·
/// scale))`; every sub-block whose `d · scale` is non-zero is re-coded as `clamp(nearest(x /
/// (d · scale)), −32, 31) + 32` (the others keep their first codes). A block whose scales are
/// all below [`GROUP_MAX_EPS`] is all zero bytes.
pub(crate) fn quantize_q6_k(x: &[f32], block: &mut [u8]) {
    block.fill(0);
    let mut codes = [0u8; QK_K];
    let mut scales = [0f32; 16];
    let (mut max_scale, mut max_abs_scale) = (0f32, 0f32);
    for (i, (sub, c)) in x
        .chunks_exact(16)
        .zip(codes.chunks_exact_mut(16))
        .enumerate()
    {
        scales[i] = make_qx_quants(sub, 32, c);
        if scales[i].abs() > max_abs_scale {
            max_abs_scale = scales[i].abs();
            max_scale = scales[i];
        }
    }
    if max_abs_scale < GROUP_MAX_EPS {
        return;
    }
    let iscale = -128.0 / max_scale;
    block[208..210].copy_from_slice(&f32_to_f16_bits(1.0 / iscale).to_le_bytes());
    let d = f16_at(block, 208);
    for (i, &s) in scales.iter().enumerate() {
        let sc = nearest(iscale * s).min(127) as i8;
        block[192 + i] = sc as u8;
        let dl = d * f32::from(sc);
        if dl == 0.0 {
            continue;
        }
        for j in 16 * i..16 * i + 16 {
            codes[j] = (nearest(x[j] / dl).clamp(-32, 31) + 32) as u8;
        }
    }
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
