//! Element-wise and row-wise operations of the forward pass, each written to reproduce
//! ggml's CPU arithmetic (bitnet.cpp / llama.cpp) as measured in the oracle README §5:
//! RMSNorm summing squares in f64 (`bitnet_kernels::norm`), RoPE angles by repeated f32
//! multiplication, softmax with an f64 sum, and the F16 roundings of the attention path.

use bitnet_kernels::exp;

use crate::arch::{Activation, RopeStyle};

/// `out = rms_norm(x) * w` as ggml's `rms_norm` then `MUL`: the squares are f32 products summed
/// in f64 (in the lanes of [`bitnet_kernels::norm`]), the mean is rounded to f32,
/// `scale = 1 / sqrtf(mean + eps)`, and the multiply by the norm weight is a separate f32
/// rounding.
pub fn rms_norm_weighted(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    bitnet_kernels::rms_norm(x, Some(w), eps, out)
        .expect("rms_norm: the input, weight and output of one row have one length");
}

/// Applies [`rms_norm_weighted`] to every `w.len()`-wide row of `x` in place.
pub fn rms_norm_rows_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    let mut tmp = vec![0.0f32; w.len()];
    for row in x.chunks_exact_mut(w.len()) {
        rms_norm_weighted(row, w, eps, &mut tmp);
        row.copy_from_slice(&tmp);
    }
}

/// `out = (x − mean) / sqrt(var + eps) · w (+ b)` on every `w.len()`-wide row of `x`, in place,
/// as ggml's `norm` then `MUL` (and `ADD`): mean and variance summed in f64 here (ggml sums in
/// f32; the difference is far below the tolerance of any comparison with it).
pub fn layer_norm_rows_in_place(x: &mut [f32], w: &[f32], b: Option<&[f32]>, eps: f32) {
    let n = w.len();
    for row in x.chunks_exact_mut(n) {
        let mean = (row.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64) as f32;
        let mut var = 0.0f64;
        for v in row.iter_mut() {
            *v -= mean;
            var += f64::from(*v * *v);
        }
        let scale = 1.0f32 / ((var / n as f64) as f32 + eps).sqrt();
        for (v, &wi) in row.iter_mut().zip(w) {
            *v = *v * scale * wi;
        }
        if let Some(b) = b {
            row.iter_mut().zip(b).for_each(|(v, bi)| *v += bi);
        }
    }
}

/// The cos/sin table of one position: `theta_i = p · base^(−2i/n_rot)`, the angle advanced by
/// repeated f32 multiplication by `powf(base, −2/n_rot)` as ggml's rope cache does.
pub fn rope_table(pos: usize, n_rot: usize, base: f32, cos: &mut [f32], sin: &mut [f32]) {
    let theta_scale = base.powf(-2.0 / n_rot as f32);
    let mut theta = pos as f32;
    for i in 0..n_rot / 2 {
        cos[i] = theta.cos();
        sin[i] = theta.sin();
        theta *= theta_scale;
    }
}

/// [`rope_table`] with per-dimension frequency factors (LongRoPE: `theta_i / factors[i]`) and
/// the cos/sin multiplied by `mscale`, as ggml's `rope_yarn` without extrapolation mixing.
pub fn rope_table_scaled(
    pos: usize,
    n_rot: usize,
    base: f32,
    factors: &[f32],
    mscale: f32,
    cos: &mut [f32],
    sin: &mut [f32],
) {
    let theta_scale = base.powf(-2.0 / n_rot as f32);
    let mut theta = pos as f32;
    for i in 0..n_rot / 2 {
        let t = theta / factors[i];
        cos[i] = t.cos() * mscale;
        sin[i] = t.sin() * mscale;
        theta *= theta_scale;
    }
}

/// Adds `bias` to every `bias.len()`-wide row of `x`.
pub fn add_bias_rows(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
    }
}

/// Rotates the first `cos.len() * 2` elements of every `head_dim`-wide head in `x` (the heads
/// of one token) using a table from [`rope_table`].
pub fn rope_apply(x: &mut [f32], head_dim: usize, style: RopeStyle, cos: &[f32], sin: &[f32]) {
    let half = cos.len();
    let rotate = |x0: f32, x1: f32, c: f32, s: f32| (x0 * c - x1 * s, x0 * s + x1 * c);
    // One loop per style, so each vectorizes (no branch per element).
    for head in x.chunks_exact_mut(head_dim) {
        match style {
            RopeStyle::Neox => {
                let (a, b) = head[..2 * half].split_at_mut(half);
                for (((a, b), &c), &s) in a.iter_mut().zip(b).zip(cos).zip(sin) {
                    (*a, *b) = rotate(*a, *b, c, s);
                }
            }
            RopeStyle::Normal => {
                let pairs = head[..2 * half].chunks_exact_mut(2);
                for ((pair, &c), &s) in pairs.zip(cos).zip(sin) {
                    (pair[0], pair[1]) = rotate(pair[0], pair[1], c, s);
                }
            }
        }
    }
}

/// `act(x)` of one value.
fn activate(act: Activation, x: f32) -> f32 {
    match act {
        Activation::Relu2 => {
            let r = x.max(0.0);
            r * r
        }
        Activation::Silu => exp::silu(x),
        Activation::GeluTanh => gelu_tanh(x),
        Activation::GeluErf => gelu_erf(x),
    }
}

/// `gate = act(gate) * up`, element-wise.
pub fn gated_activation(act: Activation, gate: &mut [f32], up: &[f32]) {
    if act == Activation::Silu {
        return exp::silu_times_in_place(gate, up);
    }
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = activate(act, *g) * u;
    }
}

/// `x = act(x)`, element-wise (a plain FFN).
pub fn activation_in_place(act: Activation, x: &mut [f32]) {
    if act == Activation::Silu {
        return exp::silu_in_place(x);
    }
    x.iter_mut().for_each(|v| *v = activate(act, *v));
}

/// GELU with the tanh approximation: `0.5·x·(1 + tanh(√(2/π)·x·(1 + 0.044715·x²)))`.
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + 0.044715 * x * x)).tanh())
}

/// GELU with the error function: `0.5·x·(1 + erf(x/√2))`, in f64.
pub fn gelu_erf(x: f32) -> f32 {
    let x = f64::from(x);
    (0.5 * x * (1.0 + erf(x * std::f64::consts::FRAC_1_SQRT_2))) as f32
}

/// The error function: its Taylor series below |x| = 0.5 (exact to f64 there), elsewhere
/// Numerical Recipes' Chebyshev fit of `erfc` (fractional error below 1.2e-7).
fn erf(x: f64) -> f64 {
    let z = x.abs();
    if z < 0.5 {
        let (mut term, mut sum, z2) = (z, z, z * z);
        for n in 1..30 {
            term *= -z2 / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        return (sum * std::f64::consts::FRAC_2_SQRT_PI).copysign(x);
    }
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    (1.0 - t * poly.exp()).copysign(x)
}

/// `cap · tanh(x / cap)` applied in place.
pub fn soft_cap(x: &mut [f32], cap: f32) {
    for v in x.iter_mut() {
        *v = cap * (*v / cap).tanh();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_norm_centres_and_scales() {
        let mut x = [1.0f32, 2.0, 3.0, 6.0];
        layer_norm_rows_in_place(
            &mut x,
            &[1.0, 1.0, 2.0, 1.0],
            Some(&[0.0, 0.5, 0.0, 0.0]),
            0.0,
        );
        // mean 3, variance (4 + 1 + 0 + 9) / 4 = 3.5
        let s = 1.0 / 3.5f64.sqrt();
        let expect = [-2.0 * s, -s + 0.5, 0.0, 3.0 * s];
        for (a, e) in x.iter().zip(expect) {
            assert!((f64::from(*a) - e).abs() < 1e-6, "{a} vs {e}");
        }
    }

    #[test]
    fn rope_at_position_zero_is_identity() {
        let mut cos = [0.0; 4];
        let mut sin = [0.0; 4];
        rope_table(0, 8, 10_000.0, &mut cos, &mut sin);
        let orig: Vec<f32> = (0..8).map(|i| i as f32 - 3.5).collect();
        let mut x = orig.clone();
        rope_apply(&mut x, 8, RopeStyle::Neox, &cos, &sin);
        assert_eq!(x, orig);
    }

    #[test]
    fn gelu_erf_matches_the_error_function() {
        // erf values from Python's math.erf
        for (x, e) in [
            (0.25f64, 0.276_326_390_168_236_9),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (-3.0, -0.999_977_909_503_001_4),
        ] {
            assert!((erf(x) - e).abs() < 2e-7 * e.abs(), "erf({x}) = {}", erf(x));
        }
        assert_eq!(gelu_erf(0.0), 0.0);
        let g = gelu_erf(1.0) as f64;
        // 0.5 · (1 + erf(1/√2)), erf(1/√2) = 0.682_689_492_137_085_9
        assert!((g - 0.841_344_746_068_543).abs() < 1e-7, "{g}");
    }

    #[test]
    fn gated_relu2_and_silu_match_their_definitions() {
        let mut g = [-1.0f32, 2.0];
        gated_activation(Activation::Relu2, &mut g, &[3.0, 0.5]);
        assert_eq!(g, [0.0, 2.0]);
        let mut g = [1.0f32];
        gated_activation(Activation::Silu, &mut g, &[2.0]);
        let expect = 2.0 / (1.0 + (-1.0f64).exp());
        assert!((f64::from(g[0]) - expect).abs() < 1e-6);
    }
}
