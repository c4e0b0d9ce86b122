//! The two inner loops of attention over a cached span of positions, for the query heads that
//! share one KV head: scores (`q_h · k_j`, scaled) and the probability-weighted sum of values
//! (`o_h = Σ_j p_hj · v_j`). Keys and values are read straight from the KV cache, F16 (widened to
//! f32 exactly as they are loaded) or f32, one row per position at a stride (this KV head's slice
//! at an offset). BF16 and Q8_0 caches (blocks of 32 codes with an F16 scale each, the scale
//! times the code being exact in f32) are widened exactly, a span of one KV head's rows at a
//! time, into a per-thread f32 scratch that the f32 loops then read ([`widen_with_isa`]), so
//! they give the bits of the same values held in an f32 cache.
//!
//! Arithmetic order (the same on every ISA, see [`crate::order`]): a score is a dot product in
//! 16 lanes, each step a fused multiply-add `q·k + acc`, folded by the halving tree, the tail
//! added in order by fused multiply-adds, then multiplied by the scale; an output element is the
//! fused multiply-add chain `o = fma(p_j, v_j, o)` over the positions in order, from `+0.0`.

use std::ops::Range;

use std::cell::RefCell;

use half::{bf16, f16};

use crate::isa::{active_isa, Isa};
use crate::order::fold;
use crate::q8::Q8_BLOCK;

const LANES: usize = 16;

/// The cache's storage of one layer's keys or values.
#[derive(Debug, Clone, Copy)]
pub enum KvData<'a> {
    F16(&'a [f16]),
    Bf16(&'a [bf16]),
    F32(&'a [f32]),
    /// Q8_0: value `i` is `scales[i / 32] · codes[i]`.
    Q8_0 {
        codes: &'a [i8],
        scales: &'a [f16],
    },
}

impl KvData<'_> {
    fn len(&self) -> usize {
        match self {
            KvData::F16(d) => d.len(),
            KvData::Bf16(d) => d.len(),
            KvData::F32(d) => d.len(),
            KvData::Q8_0 { codes, scales } => codes.len().min(scales.len() * Q8_BLOCK),
        }
    }

    /// Whether the kernels widen this type into f32 scratch first (see the module docs).
    fn is_widened(&self) -> bool {
        matches!(self, KvData::Bf16(_) | KvData::Q8_0 { .. })
    }
}

/// Where one KV head's rows sit in a layer of the cache: row `j` is
/// `data[j * stride + offset..j * stride + offset + head_dim]`.
#[derive(Debug, Clone, Copy)]
pub struct CachedRows<'a> {
    pub data: KvData<'a>,
    pub stride: usize,
    pub offset: usize,
    pub head_dim: usize,
}

impl CachedRows<'_> {
    /// Start of row `j`.
    fn start(&self, j: usize) -> usize {
        j * self.stride + self.offset
    }

    fn check(&self, positions: &Range<usize>) {
        assert!(
            positions.is_empty()
                || self.start(positions.end - 1) + self.head_dim <= self.data.len(),
            "positions outside the cache"
        );
        if let KvData::Q8_0 { .. } = self.data {
            assert!(
                [self.stride, self.offset, self.head_dim]
                    .iter()
                    .all(|n| n.is_multiple_of(Q8_BLOCK)),
                "Q8_0 rows must start and end on 32-value blocks"
            );
        }
    }

    /// Calls `f` with rows `positions` widened to f32 (contiguous, at positions `0..span`)
    /// when the data is BF16 or Q8_0, else with the rows as they are.
    fn widened<R>(
        self,
        isa: Isa,
        positions: Range<usize>,
        f: impl FnOnce(CachedRows<'_>, Range<usize>) -> R,
    ) -> R {
        if !self.data.is_widened() {
            return f(self, positions);
        }
        thread_local! {
            static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
        }
        SCRATCH.with(|scratch| {
            let mut buf = scratch.borrow_mut();
            let hd = self.head_dim;
            buf.resize(positions.len() * hd, 0.0);
            for (row, j) in buf.chunks_exact_mut(hd).zip(positions.clone()) {
                widen_with_isa(isa, self.data, self.start(j), row);
            }
            let rows = CachedRows {
                data: KvData::F32(&buf),
                stride: hd,
                offset: 0,
                head_dim: hd,
            };
            f(rows, 0..positions.len())
        })
    }
}

/// Writes the cache values `start..start + out.len()` of `data`, widened exactly to f32, into
/// `out` (on the active instruction set).
///
/// # Panics
/// If the values lie outside `data`, or for Q8_0 when `start` or the length is not a multiple of
/// 32.
pub fn widen(data: KvData<'_>, start: usize, out: &mut [f32]) {
    widen_with_isa(active_isa(), data, start, out)
}

/// [`widen`] on a chosen instruction set (scalar where it is not supported).
pub fn widen_with_isa(isa: Isa, data: KvData<'_>, start: usize, out: &mut [f32]) {
    let n = out.len();
    assert!(start + n <= data.len(), "values outside the cache");
    match data {
        KvData::F32(d) => out.copy_from_slice(&d[start..start + n]),
        KvData::F16(d) => widen_scalar(&d[start..start + n], out),
        KvData::Bf16(d) => {
            let d = &d[start..start + n];
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 | Isa::Avx2 if Isa::Avx2.is_supported() => x86::widen_bf16(d, out),
                _ => widen_scalar(d, out),
            }
        }
        KvData::Q8_0 { codes, scales } => {
            assert!(
                start.is_multiple_of(Q8_BLOCK) && n.is_multiple_of(Q8_BLOCK),
                "Q8_0 values must start and end on 32-value blocks"
            );
            let codes = &codes[start..start + n];
            let scales = &scales[start / Q8_BLOCK..(start + n) / Q8_BLOCK];
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 if isa.is_supported() => x86::widen_q8_0_avx512(codes, scales, out),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 | Isa::Avx2 if Isa::Avx2.is_supported() => {
                    x86::widen_q8_0_avx2(codes, scales, out)
                }
                _ => widen_q8_0_scalar(codes, scales, out),
            }
        }
    }
}

/// The scalar reference widening of one element type.
fn widen_scalar<T: Element>(x: &[T], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v.widen();
    }
}

/// The scalar reference widening of Q8_0 blocks: `scale · code` (exact in f32).
fn widen_q8_0_scalar(codes: &[i8], scales: &[f16], out: &mut [f32]) {
    for ((o, c), &d) in out
        .chunks_exact_mut(Q8_BLOCK)
        .zip(codes.chunks_exact(Q8_BLOCK))
        .zip(scales)
    {
        let d = d.to_f32();
        for (o, &c) in o.iter_mut().zip(c) {
            *o = d * f32::from(c);
        }
    }
}

/// An element type of the cache, widened exactly to f32.
trait Element: Copy {
    fn widen(self) -> f32;
}

impl Element for f32 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
}

impl Element for f16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self.to_f32()
    }
}

impl Element for bf16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self.to_f32()
    }
}

/// `out[h · span + (j − positions.start)] = (q_h · k_j) · scale` for the heads `q_h` of `q`
/// (`heads × head_dim`) and `j` in `positions` (`span` of them).
///
/// # Panics
/// If the lengths disagree or a position lies outside `keys`.
pub fn attention_scores(
    q: &[f32],
    keys: CachedRows<'_>,
    positions: Range<usize>,
    scale: f32,
    out: &mut [f32],
) {
    attention_scores_with_isa(active_isa(), q, keys, positions, scale, out)
}

/// [`attention_scores`] on a chosen instruction set (scalar where it is not supported).
pub fn attention_scores_with_isa(
    isa: Isa,
    q: &[f32],
    keys: CachedRows<'_>,
    positions: Range<usize>,
    scale: f32,
    out: &mut [f32],
) {
    let hd = keys.head_dim;
    assert!(hd > 0 && q.len().is_multiple_of(hd), "q is not whole heads");
    assert_eq!(out.len(), q.len() / hd * positions.len(), "scores length");
    keys.check(&positions);
    keys.widened(isa, positions, |keys, positions| {
        scores_dispatch(isa, q, keys, positions, scale, out)
    })
}

/// [`attention_scores_with_isa`] on F16 or f32 rows.
fn scores_dispatch(
    isa: Isa,
    q: &[f32],
    keys: CachedRows<'_>,
    positions: Range<usize>,
    scale: f32,
    out: &mut [f32],
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if isa.is_supported() => x86::scores_avx512(q, keys, positions, scale, out),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512 if Isa::Avx2.is_supported() => {
            x86::scores_avx2(q, keys, positions, scale, out)
        }
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => neon::scores(q, keys, positions, scale, out),
        _ => match keys.data {
            KvData::F16(d) => scores_with(dot_scalar, q, d, keys, positions, scale, out),
            KvData::F32(d) => scores_with(dot_scalar, q, d, keys, positions, scale, out),
            KvData::Bf16(_) | KvData::Q8_0 { .. } => unreachable!("widened before"),
        },
    }
}

/// `out_h = Σ_j p[h · span + (j − positions.start)] · v_j` for each head `h` of `out`
/// (`heads × head_dim`), `j` in `positions` (`span` of them).
///
/// # Panics
/// If the lengths disagree or a position lies outside `values`.
pub fn attention_values(
    p: &[f32],
    values: CachedRows<'_>,
    positions: Range<usize>,
    out: &mut [f32],
) {
    attention_values_with_isa(active_isa(), p, values, positions, out)
}

/// [`attention_values`] on a chosen instruction set (scalar where it is not supported).
pub fn attention_values_with_isa(
    isa: Isa,
    p: &[f32],
    values: CachedRows<'_>,
    positions: Range<usize>,
    out: &mut [f32],
) {
    let hd = values.head_dim;
    assert!(
        hd > 0 && out.len().is_multiple_of(hd),
        "out is not whole heads"
    );
    assert_eq!(
        p.len(),
        out.len() / hd * positions.len(),
        "probabilities length"
    );
    values.check(&positions);
    values.widened(isa, positions, |values, positions| {
        values_dispatch(isa, p, values, positions, out)
    })
}

/// [`attention_values_with_isa`] on F16 or f32 rows.
fn values_dispatch(
    isa: Isa,
    p: &[f32],
    values: CachedRows<'_>,
    positions: Range<usize>,
    out: &mut [f32],
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if isa.is_supported() => x86::values_avx512(p, values, positions, out),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512 if Isa::Avx2.is_supported() => {
            x86::values_avx2(p, values, positions, out)
        }
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => neon::values(p, values, positions, out),
        _ => match values.data {
            KvData::F16(d) => values_with(axpy_scalar, p, d, values, positions, out),
            KvData::F32(d) => values_with(axpy_scalar, p, d, values, positions, out),
            KvData::Bf16(_) | KvData::Q8_0 { .. } => unreachable!("widened before"),
        },
    }
}

/// The score loops around one dot product (inlined into each ISA's compiled copy).
#[inline(always)]
fn scores_with<T>(
    dot: impl Fn(&[f32], &[T]) -> f32,
    q: &[f32],
    data: &[T],
    rows: CachedRows<'_>,
    positions: Range<usize>,
    scale: f32,
    out: &mut [f32],
) {
    let span = positions.len();
    let hd = rows.head_dim;
    for (jj, j) in positions.enumerate() {
        let k = &data[rows.start(j)..rows.start(j) + hd];
        for (h, qh) in q.chunks_exact(hd).enumerate() {
            out[h * span + jj] = dot(qh, k) * scale;
        }
    }
}

/// The value loops around one fused axpy (inlined into each ISA's compiled copy).
#[inline(always)]
fn values_with<T>(
    axpy: impl Fn(f32, &[T], &mut [f32]),
    p: &[f32],
    data: &[T],
    rows: CachedRows<'_>,
    positions: Range<usize>,
    out: &mut [f32],
) {
    let span = positions.len();
    let hd = rows.head_dim;
    out.fill(0.0);
    for (jj, j) in positions.enumerate() {
        let v = &data[rows.start(j)..rows.start(j) + hd];
        for (h, o) in out.chunks_exact_mut(hd).enumerate() {
            axpy(p[h * span + jj], v, o);
        }
    }
}

/// The scalar reference dot (module docs' order).
fn dot_scalar<T: Element>(q: &[f32], k: &[T]) -> f32 {
    let body = q.len() - q.len() % LANES;
    let mut lanes = [0f32; LANES];
    for (cq, ck) in q[..body]
        .chunks_exact(LANES)
        .zip(k[..body].chunks_exact(LANES))
    {
        for l in 0..LANES {
            lanes[l] = cq[l].mul_add(ck[l].widen(), lanes[l]);
        }
    }
    dot_tail(fold(lanes), &q[body..], &k[body..])
}

/// `sum` plus the tail products, in order, by fused multiply-adds.
#[inline(always)]
fn dot_tail<T: Element>(sum: f32, q: &[f32], k: &[T]) -> f32 {
    q.iter()
        .zip(k)
        .fold(sum, |acc, (&x, &y)| x.mul_add(y.widen(), acc))
}

/// The scalar reference of `y = fma(alpha, x, y)`.
fn axpy_scalar<T: Element>(alpha: f32, x: &[T], y: &mut [f32]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = alpha.mul_add(v.widen(), *o);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! AVX2 (two 8-lane registers = lanes 0–7 and 8–15) and AVX-512 (one 16-lane register)
    //! copies of the loops, loading F16 rows through F16C conversions, and the BF16 and Q8_0
    //! widenings; the CPU features are checked once per call.

    use super::{
        axpy_scalar, dot_tail, scores_with, values_with, widen_scalar, CachedRows, KvData, LANES,
    };
    use crate::order::x86::{fold_256x2, fold_512, fold_512x16};
    use half::{bf16, f16};
    use std::arch::x86_64::*;
    use std::ops::Range;

    fn has_avx512() -> bool {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    }

    fn has_avx2() -> bool {
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    }

    /// 16 values from `p` (f32) as one 512-bit vector.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn load16_f32(p: *const f32) -> __m512 {
        // SAFETY: the caller guarantees 16 readable values at p.
        unsafe { _mm512_loadu_ps(p) }
    }

    /// 16 halves from `p`, widened.
    #[target_feature(enable = "avx512f,f16c")]
    #[inline]
    unsafe fn load16_f16(p: *const f16) -> __m512 {
        // SAFETY: the caller guarantees 16 readable halves at p.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())) }
    }

    /// 8 values from `p` (f32).
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn load8_f32(p: *const f32) -> __m256 {
        // SAFETY: the caller guarantees 8 readable values at p.
        unsafe { _mm256_loadu_ps(p) }
    }

    /// 8 halves from `p`, widened.
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    unsafe fn load8_f16(p: *const f16) -> __m256 {
        // SAFETY: the caller guarantees 8 readable halves at p.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }

    /// Generates the 16-lane AVX-512 dot and axpy for one element type.
    macro_rules! avx512_pair {
        ($dot:ident, $axpy:ident, $t:ty, $load:ident) => {
            #[target_feature(enable = "avx512f,fma,f16c")]
            #[inline]
            unsafe fn $dot(q: &[f32], k: &[$t]) -> f32 {
                let n = q.len().min(k.len());
                let body = n - n % LANES;
                let mut acc = _mm512_setzero_ps();
                let mut i = 0;
                while i < body {
                    // SAFETY: i + 16 <= body <= length of both.
                    let (x, y) =
                        unsafe { (load16_f32(q.as_ptr().add(i)), $load(k.as_ptr().add(i))) };
                    acc = _mm512_fmadd_ps(x, y, acc);
                    i += LANES;
                }
                dot_tail(fold_512(acc), &q[body..n], &k[body..n])
            }

            #[target_feature(enable = "avx512f,fma,f16c")]
            #[inline]
            unsafe fn $axpy(alpha: f32, x: &[$t], y: &mut [f32]) {
                let n = x.len().min(y.len());
                let body = n - n % 16;
                let a = _mm512_set1_ps(alpha);
                let mut i = 0;
                while i < body {
                    // SAFETY: i + 16 <= body <= length of both.
                    unsafe {
                        let py = y.as_mut_ptr().add(i);
                        let r = _mm512_fmadd_ps(a, $load(x.as_ptr().add(i)), _mm512_loadu_ps(py));
                        _mm512_storeu_ps(py, r);
                    }
                    i += 16;
                }
                axpy_scalar(alpha, &x[body..n], &mut y[body..n]);
            }
        };
    }

    /// Generates the 16-lane (two 8-lane halves) AVX2 dot and 8-wide axpy for one element type.
    macro_rules! avx2_pair {
        ($dot:ident, $axpy:ident, $t:ty, $load:ident) => {
            #[target_feature(enable = "avx2,fma,f16c")]
            #[inline]
            unsafe fn $dot(q: &[f32], k: &[$t]) -> f32 {
                let n = q.len().min(k.len());
                let body = n - n % LANES;
                let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
                let mut i = 0;
                while i < body {
                    // SAFETY: i + 16 <= body <= length of both.
                    unsafe {
                        let (pq, pk) = (q.as_ptr().add(i), k.as_ptr().add(i));
                        lo = _mm256_fmadd_ps(load8_f32(pq), $load(pk), lo);
                        hi = _mm256_fmadd_ps(load8_f32(pq.add(8)), $load(pk.add(8)), hi);
                    }
                    i += LANES;
                }
                dot_tail(fold_256x2(lo, hi), &q[body..n], &k[body..n])
            }

            #[target_feature(enable = "avx2,fma,f16c")]
            #[inline]
            unsafe fn $axpy(alpha: f32, x: &[$t], y: &mut [f32]) {
                let n = x.len().min(y.len());
                let body = n - n % 8;
                let a = _mm256_set1_ps(alpha);
                let mut i = 0;
                while i < body {
                    // SAFETY: i + 8 <= body <= length of both.
                    unsafe {
                        let py = y.as_mut_ptr().add(i);
                        let r = _mm256_fmadd_ps(a, $load(x.as_ptr().add(i)), _mm256_loadu_ps(py));
                        _mm256_storeu_ps(py, r);
                    }
                    i += 8;
                }
                axpy_scalar(alpha, &x[body..n], &mut y[body..n]);
            }
        };
    }

    avx512_pair!(dot512_f32, axpy512_f32, f32, load16_f32);
    avx512_pair!(dot512_f16, axpy512_f16, f16, load16_f16);
    avx2_pair!(dot256_f32, axpy256_f32, f32, load8_f32);
    avx2_pair!(dot256_f16, axpy256_f16, f16, load8_f16);

    /// BF16 widened 8 at a time (the 16 bits become the high half of an f32).
    pub(super) fn widen_bf16(x: &[bf16], out: &mut [f32]) {
        assert!(has_avx2());
        // SAFETY: the features are checked; the loop stays inside both slices.
        unsafe { widen_bf16_impl(x, out) }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn widen_bf16_impl(x: &[bf16], out: &mut [f32]) {
        let n = x.len().min(out.len());
        let body = n - n % 8;
        let mut i = 0;
        while i < body {
            // SAFETY: i + 8 <= body <= length of both.
            unsafe {
                let h = _mm_loadu_si128(x.as_ptr().add(i).cast());
                let w = _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16);
                _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_castsi256_ps(w));
            }
            i += 8;
        }
        widen_scalar(&x[body..n], &mut out[body..n]);
    }

    /// Q8_0 blocks widened 8 codes at a time: `scale · code`.
    pub(super) fn widen_q8_0_avx2(codes: &[i8], scales: &[f16], out: &mut [f32]) {
        assert!(has_avx2());
        assert!(codes.len() >= out.len() && scales.len() * 32 >= out.len());
        // SAFETY: the features are checked; the lengths are asserted.
        unsafe { widen_q8_0_avx2_impl(codes, scales, out) }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn widen_q8_0_avx2_impl(codes: &[i8], scales: &[f16], out: &mut [f32]) {
        for (b, o) in out.chunks_exact_mut(32).enumerate() {
            let d = _mm256_set1_ps(scales[b].to_f32());
            for k in 0..4 {
                // SAFETY: block b's 32 codes lie inside `codes` (asserted), o holds 32 floats.
                unsafe {
                    let c = _mm_loadl_epi64(codes.as_ptr().add(32 * b + 8 * k).cast());
                    let v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(c));
                    _mm256_storeu_ps(o.as_mut_ptr().add(8 * k), _mm256_mul_ps(d, v));
                }
            }
        }
    }

    /// Q8_0 blocks widened 16 codes at a time: `scale · code`.
    pub(super) fn widen_q8_0_avx512(codes: &[i8], scales: &[f16], out: &mut [f32]) {
        assert!(has_avx512());
        assert!(codes.len() >= out.len() && scales.len() * 32 >= out.len());
        // SAFETY: the features are checked; the lengths are asserted.
        unsafe { widen_q8_0_avx512_impl(codes, scales, out) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn widen_q8_0_avx512_impl(codes: &[i8], scales: &[f16], out: &mut [f32]) {
        for (b, o) in out.chunks_exact_mut(32).enumerate() {
            let d = _mm512_set1_ps(scales[b].to_f32());
            for k in 0..2 {
                // SAFETY: block b's 32 codes lie inside `codes` (asserted), o holds 32 floats.
                unsafe {
                    let c = _mm_loadu_si128(codes.as_ptr().add(32 * b + 16 * k).cast());
                    let v = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(c));
                    _mm512_storeu_ps(o.as_mut_ptr().add(16 * k), _mm512_mul_ps(d, v));
                }
            }
        }
    }

    pub(super) fn scores_avx512(
        q: &[f32],
        keys: CachedRows<'_>,
        positions: Range<usize>,
        scale: f32,
        out: &mut [f32],
    ) {
        assert!(has_avx512());
        // SAFETY: the features are checked; every slice access inside is bounds-checked.
        unsafe { scores_avx512_impl(q, keys, positions, scale, out) }
    }

    #[target_feature(enable = "avx512f,fma,f16c")]
    unsafe fn scores_avx512_impl(
        q: &[f32],
        keys: CachedRows<'_>,
        positions: Range<usize>,
        scale: f32,
        out: &mut [f32],
    ) {
        if keys.head_dim == 256 {
            // SAFETY (both closures): this function has the features the loads need.
            match keys.data {
                KvData::F16(d) => scores_by_positions(
                    |p| unsafe { load16_f16(p) },
                    q,
                    d,
                    keys,
                    positions,
                    scale,
                    out,
                ),
                KvData::F32(d) => scores_by_positions(
                    |p| unsafe { load16_f32(p) },
                    q,
                    d,
                    keys,
                    positions,
                    scale,
                    out,
                ),
                KvData::Bf16(_) | KvData::Q8_0 { .. } => unreachable!("widened before"),
            }
            return;
        }
        if matches!(keys.head_dim, 64 | 128) && positions.len() >= FOLD_POSITIONS {
            // SAFETY: this function has the features; the rows of `positions` lie inside the
            // data (checked by the public entry point).
            unsafe { scores_folded_by_16(q, keys, positions, scale, out) };
            return;
        }
        if matches!(keys.head_dim, 64 | 128) {
            // SAFETY (both closures): this function has the features the loads need.
            match keys.data {
                KvData::F16(d) => scores_in_registers(
                    |p| unsafe { load16_f16(p) },
                    q,
                    d,
                    keys,
                    positions,
                    scale,
                    out,
                ),
                KvData::F32(d) => scores_in_registers(
                    |p| unsafe { load16_f32(p) },
                    q,
                    d,
                    keys,
                    positions,
                    scale,
                    out,
                ),
                KvData::Bf16(_) | KvData::Q8_0 { .. } => unreachable!("widened before"),
            }
            return;
        }
        // SAFETY (both closures): this function has the features the dots need.
        match keys.data {
            KvData::F16(d) => scores_with(
                |a, b| unsafe { dot512_f16(a, b) },
                q,
                d,
                keys,
                positions,
                scale,
                out,
            ),
            KvData::F32(d) => scores_with(
                |a, b| unsafe { dot512_f32(a, b) },
                q,
                d,
                keys,
                positions,
                scale,
                out,
            ),
            KvData::Bf16(_) | KvData::Q8_0 { .. } => unreachable!("widened before"),
        }
    }

    pub(super) fn scores_avx2(
        q: &[f32],
        keys: CachedRows<'_>,
        positions: Range<usize>,
        scale: f32,
        out: &mut [f32],
    ) {
        assert!(has_avx2());
        // SAFETY: the features are checked; every slice access inside is bounds-checked.
        unsafe { scores_avx2_impl(q, keys, positions, scale, out) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn scores_avx2_impl(
        q: &[f32],
        keys: CachedRows<'_>,
        positions: Range<usize>,
        scale: f32,
        out: &mut [f32],
    ) {
        // SAFETY (both closures): this function has the features the dots need.
        match keys.data {
            KvData::F16(d) => scores_with(
                |a, b| unsafe { dot256_f16(a, b) },
                q,
                d,
                keys,
                positions,
                scale,
                out,
            ),
            KvData::F32(d) => scores_with(
                |a, b| unsafe { dot256_f32(a, b) },
                q,
                d,
                keys,
                positions,
                scale,
                out,
            ),
            KvData::Bf16(_) | KvData::Q8_0 { .. } => unreachable!("widened before"),
        }
    }

    pub(super) fn values_avx512(
        p: &[f32],
        values: CachedRows<'_>,
        positions: Range<usize>,
        out: &mut [f32],
    ) {
        assert!(has_avx512());
        // SAFETY: the features are checked; every slice access inside is bounds-checked.
        unsafe { values_avx512_impl(p, values, positions, out) }
    }

    #[target_feature(enable = "avx512f,fma,f16c")]
    unsafe fn values_avx512_impl(
        p: &[f32],
        values: CachedRows<'_>,
        positions: Range<usize>,
        out: &mut [f32],
    ) {
        let hd = values.head_dim;
        if matches!(hd, 64 | 128 | 256) {
            // SAFETY (both closures): this function has the features the loads need.
            match values.data {
                KvData::F16(d) => {
                    values_in_registers(|p| unsafe { load16_f16(p) }, p, d, values, positions, out)
                }
                KvData::F32(d) => {
                    values_in_registers(|p| unsafe { load16_f32(p) }, p, d, values, positions, out)
                }
                KvData::Bf16(_) | KvData::Q8_0 { .. } => unreachable!("widened before"),
            }
            return;
        }
        // SAFETY (both closures): this function has the features the axpys need.
        match values.data {
            KvData::F16(d) => values_with(
                |a, x, y| unsafe { axpy512_f16(a, x, y) },
                p,
                d,
                values,
                positions,
                out,
            ),
            KvData::F32(d) => values_with(
                |a, x, y| unsafe { axpy512_f32(a, x, y) },
                p,
                d,
                values,
                positions,
                out,
            ),
            KvData::Bf16(_) | KvData::Q8_0 { .. } => unreachable!("widened before"),
        }
    }

    /// Positions whose scores [`scores_folded_by_16`] folds together.
    const FOLD_POSITIONS: usize = 16;

    /// The scores of head dims 64 and 128 over spans of 16 positions or more, 16 positions at
    /// a time: their key rows are widened once into f32 scratch in L1, then for each head of
    /// the group the 16 positions' lane sums are accumulated side by side and folded together
    /// ([`fold_512x16`]: the same additions as one [`fold_512`] per score, on whole registers),
    /// scaled and stored as one vector. Per score the arithmetic of the one-head dot: 16 lanes,
    /// `q·k + acc` from `+0.0` over the head dim in order, the halving fold, times the scale.
    ///
    /// # Safety
    /// AVX-512F/FMA/F16C present; the rows of `positions` lie inside the keys' data.
    #[target_feature(enable = "avx512f,fma,f16c")]
    unsafe fn scores_folded_by_16(
        q: &[f32],
        keys: CachedRows<'_>,
        positions: Range<usize>,
        scale: f32,
        out: &mut [f32],
    ) {
        // SAFETY (every arm): the caller's contract; the closures have the features they use.
        unsafe {
            match (keys.data, keys.head_dim) {
                (KvData::F16(d), 64) => {
                    folded_scores::<_, 4>(|p| load16_f16(p), q, d, keys, positions, scale, out)
                }
                (KvData::F16(d), _) => {
                    folded_scores::<_, 8>(|p| load16_f16(p), q, d, keys, positions, scale, out)
                }
                (KvData::F32(d), 64) => {
                    folded_scores::<_, 4>(|p| load16_f32(p), q, d, keys, positions, scale, out)
                }
                (KvData::F32(d), _) => {
                    folded_scores::<_, 8>(|p| load16_f32(p), q, d, keys, positions, scale, out)
                }
                (KvData::Bf16(_) | KvData::Q8_0 { .. }, _) => unreachable!("widened before"),
            }
        }
    }

    /// [`scores_folded_by_16`] for head dim `16 · PARTS`.
    ///
    /// # Safety
    /// As [`scores_folded_by_16`]; `load` reads 16 values of `data` at a pointer.
    #[target_feature(enable = "avx512f,fma,f16c")]
    unsafe fn folded_scores<T, const PARTS: usize>(
        load: impl Fn(*const T) -> __m512,
        q: &[f32],
        data: &[T],
        keys: CachedRows<'_>,
        positions: Range<usize>,
        scale: f32,
        out: &mut [f32],
    ) {
        let hd = 16 * PARTS;
        let span = positions.len();
        let heads = q.len() / hd;
        assert!(keys.head_dim == hd && heads * span <= out.len());
        let scale_v = _mm512_set1_ps(scale);
        let whole = span - span % FOLD_POSITIONS;
        let mut wide = [[_mm512_setzero_ps(); PARTS]; FOLD_POSITIONS];
        for first in (0..whole).step_by(FOLD_POSITIONS) {
            for (jj, row) in wide.iter_mut().enumerate() {
                let start = keys.start(positions.start + first + jj);
                // SAFETY: the row's hd values lie inside `data` (the caller's contract).
                *row = std::array::from_fn(|k| load(unsafe { data.as_ptr().add(start + 16 * k) }));
            }
            for h in 0..heads {
                let mut acc = [_mm512_setzero_ps(); FOLD_POSITIONS];
                for k in 0..PARTS {
                    // SAFETY: head h's hd floats lie inside q (heads = q.len() / hd).
                    let qk = unsafe { load16_f32(q.as_ptr().add(h * hd + 16 * k)) };
                    for (acc, row) in acc.iter_mut().zip(&wide) {
                        *acc = _mm512_fmadd_ps(qk, row[k], *acc);
                    }
                }
                let scores = _mm512_mul_ps(fold_512x16(&acc), scale_v);
                // SAFETY: h·span + first + 16 <= heads·span <= out.len() (asserted).
                unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(h * span + first), scores) };
            }
        }
        for jj in whole..span {
            let start = keys.start(positions.start + jj);
            // SAFETY: as above.
            let row: [__m512; PARTS] =
                std::array::from_fn(|k| load(unsafe { data.as_ptr().add(start + 16 * k) }));
            for h in 0..heads {
                let mut acc = _mm512_setzero_ps();
                for (k, part) in row.iter().enumerate() {
                    // SAFETY: as above.
                    let qk = unsafe { load16_f32(q.as_ptr().add(h * hd + 16 * k)) };
                    acc = _mm512_fmadd_ps(qk, *part, acc);
                }
                out[h * span + jj] = fold_512(acc) * scale;
            }
        }
    }

    /// How many of the `left` heads of a KV group the register kernels take at once: up to 4 of
    /// head dim 64, 2 of 128, else 1 (each key or value row is then widened once for them).
    fn heads_at_once(hd: usize, left: usize) -> usize {
        match hd {
            64 => left.min(4),
            128 => left.min(2),
            _ => 1,
        }
    }

    /// The scores of head dims 64 and 128 with the queries held in registers: each cached key is
    /// widened once for up to 4 (64) or 2 (128) heads. Per score the same arithmetic as the
    /// one-head dot: 16 lanes, `q·k + acc` from `+0.0` over the head dim in order, the halving
    /// fold (no tail: the head dim is a multiple of 16), times the scale.
    #[target_feature(enable = "avx512f,fma,f16c")]
    #[inline]
    unsafe fn scores_in_registers<T>(
        load: impl Fn(*const T) -> __m512 + Copy,
        q: &[f32],
        data: &[T],
        rows: CachedRows<'_>,
        positions: Range<usize>,
        scale: f32,
        out: &mut [f32],
    ) {
        let hd = rows.head_dim;
        let heads = q.len() / hd;
        let mut h = 0;
        while h < heads {
            let batch = heads_at_once(hd, heads - h);
            // SAFETY (each arm): the callee reads heads h..h + batch of q and out and, per
            // position, hd values of a row the caller checked is inside `data`.
            unsafe {
                match (hd, batch) {
                    (64, 4) => {
                        head_scores::<T, 4, 4>(load, q, data, rows, &positions, scale, out, h)
                    }
                    (64, 3) => {
                        head_scores::<T, 3, 4>(load, q, data, rows, &positions, scale, out, h)
                    }
                    (64, 2) => {
                        head_scores::<T, 2, 4>(load, q, data, rows, &positions, scale, out, h)
                    }
                    (64, _) => {
                        head_scores::<T, 1, 4>(load, q, data, rows, &positions, scale, out, h)
                    }
                    (_, 2) => {
                        head_scores::<T, 2, 8>(load, q, data, rows, &positions, scale, out, h)
                    }
                    _ => head_scores::<T, 1, 8>(load, q, data, rows, &positions, scale, out, h),
                }
            }
            h += batch;
        }
    }

    /// Heads `first..first + H` of [`scores_in_registers`], `PARTS` = head_dim / 16 vectors each.
    ///
    /// # Safety
    /// AVX-512F/FMA/F16C present; `q` and `out` hold heads `first..first + H`; every row of
    /// `positions` lies inside `data` (checked by the public entry point).
    #[target_feature(enable = "avx512f,fma,f16c")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn head_scores<T, const H: usize, const PARTS: usize>(
        load: impl Fn(*const T) -> __m512,
        q: &[f32],
        data: &[T],
        rows: CachedRows<'_>,
        positions: &Range<usize>,
        scale: f32,
        out: &mut [f32],
        first: usize,
    ) {
        let span = positions.len();
        let hd = rows.head_dim;
        assert!(PARTS * 16 == hd && (first + H) * hd <= q.len() && (first + H) * span <= out.len());
        // SAFETY: q holds heads first..first + H of hd = 16·PARTS floats (asserted).
        let qv: [[__m512; PARTS]; H] = std::array::from_fn(|h| {
            std::array::from_fn(|k| unsafe {
                load16_f32(q.as_ptr().add((first + h) * hd + 16 * k))
            })
        });
        for (jj, j) in positions.clone().enumerate() {
            // SAFETY: row j's hd values lie inside `data` (caller).
            let k: [__m512; PARTS] = unsafe {
                let row = data.as_ptr().add(rows.start(j));
                std::array::from_fn(|k| load(row.add(16 * k)))
            };
            for (h, qh) in qv.iter().enumerate() {
                let mut acc = _mm512_setzero_ps();
                for part in 0..PARTS {
                    acc = _mm512_fmadd_ps(qh[part], k[part], acc);
                }
                out[(first + h) * span + jj] = fold_512(acc) * scale;
            }
        }
    }

    /// The scores of head dim 256 (Gemma 3), [`SCORE_POSITIONS`] positions at a time for each
    /// head: a score's 16 fused multiply-adds form one dependent chain, so one position at a
    /// time waits on that chain; several positions keep independent chains in flight (their
    /// key rows stay in L1 for the group's heads). Per score the same arithmetic as the one-head
    /// dot: 16 lanes, `q·k + acc` from `+0.0` over the head dim in order, the halving fold (no
    /// tail), times the scale.
    #[target_feature(enable = "avx512f,fma,f16c")]
    #[inline]
    unsafe fn scores_by_positions<T>(
        load: impl Fn(*const T) -> __m512 + Copy,
        q: &[f32],
        data: &[T],
        rows: CachedRows<'_>,
        positions: Range<usize>,
        scale: f32,
        out: &mut [f32],
    ) {
        let span = positions.len();
        let mut jj = 0;
        while jj < span {
            let j = positions.start + jj;
            // SAFETY (both arms): rows j..j + J of `positions` lie inside `data` (checked by the
            // public entry point); `q` is whole heads of 256 and `out` holds heads × span.
            unsafe {
                if span - jj >= SCORE_POSITIONS {
                    position_scores::<T, SCORE_POSITIONS>(
                        load, q, data, rows, j, jj, span, scale, out,
                    );
                    jj += SCORE_POSITIONS;
                } else {
                    position_scores::<T, 1>(load, q, data, rows, j, jj, span, scale, out);
                    jj += 1;
                }
            }
        }
    }

    /// Positions a 256-wide score loop takes together.
    const SCORE_POSITIONS: usize = 4;

    /// The scores of every head of `q` (head dim 256) for the `J` positions from `j` (output
    /// columns from `jj`), see [`scores_by_positions`].
    ///
    /// # Safety
    /// AVX-512F/FMA/F16C present; rows `j..j + J` lie inside `data`.
    #[target_feature(enable = "avx512f,fma,f16c")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn position_scores<T, const J: usize>(
        load: impl Fn(*const T) -> __m512,
        q: &[f32],
        data: &[T],
        rows: CachedRows<'_>,
        j: usize,
        jj: usize,
        span: usize,
        scale: f32,
        out: &mut [f32],
    ) {
        const PARTS: usize = 16;
        let hd = rows.head_dim;
        let heads = q.len() / hd;
        assert!(hd == 16 * PARTS && heads * hd == q.len() && jj + J <= span);
        assert!(heads * span <= out.len());
        // SAFETY: rows j..j + J lie inside `data` (caller).
        let row: [*const T; J] =
            std::array::from_fn(|i| unsafe { data.as_ptr().add(rows.start(j + i)) });
        for (h, qh) in q.chunks_exact(hd).enumerate() {
            let mut acc = [_mm512_setzero_ps(); J];
            for part in 0..PARTS {
                // SAFETY: qh and each row hold hd = 16·PARTS values.
                unsafe {
                    let qv = load16_f32(qh.as_ptr().add(16 * part));
                    for (acc, row) in acc.iter_mut().zip(&row) {
                        *acc = _mm512_fmadd_ps(qv, load(row.add(16 * part)), *acc);
                    }
                }
            }
            for (i, acc) in acc.iter().enumerate() {
                out[h * span + jj + i] = fold_512(*acc) * scale;
            }
        }
    }

    /// The value sums of head dims 64, 128 and 256 with the outputs held in registers across the
    /// positions (the axpy form stores and reloads every output vector at every position, a
    /// store-to-load chain per position): each cached row is widened once for up to 4 (64) or 2
    /// (128) heads, or for one (256). Per output element the same chain `o = fma(p_j, v_j, o)`
    /// from `+0.0`.
    #[target_feature(enable = "avx512f,fma,f16c")]
    #[inline]
    unsafe fn values_in_registers<T>(
        load: impl Fn(*const T) -> __m512 + Copy,
        p: &[f32],
        data: &[T],
        rows: CachedRows<'_>,
        positions: Range<usize>,
        out: &mut [f32],
    ) {
        let hd = rows.head_dim;
        let heads = out.len() / hd;
        let mut h = 0;
        while h < heads {
            // SAFETY (each arm): the callee reads heads h..h+H of p and out and, per position,
            // hd values of a row the caller checked is inside `data`.
            let batch = heads_at_once(hd, heads - h);
            unsafe {
                match (hd, batch) {
                    (64, 4) => head_values::<T, 4, 4>(load, p, data, rows, &positions, out, h),
                    (64, 3) => head_values::<T, 3, 4>(load, p, data, rows, &positions, out, h),
                    (64, 2) => head_values::<T, 2, 4>(load, p, data, rows, &positions, out, h),
                    (64, _) => head_values::<T, 1, 4>(load, p, data, rows, &positions, out, h),
                    (256, _) => head_values::<T, 1, 16>(load, p, data, rows, &positions, out, h),
                    (_, 2) => head_values::<T, 2, 8>(load, p, data, rows, &positions, out, h),
                    _ => head_values::<T, 1, 8>(load, p, data, rows, &positions, out, h),
                }
            }
            h += batch;
        }
    }

    /// Heads `first..first + H` of [`values_in_registers`], `PARTS` = head_dim / 16 vectors each.
    ///
    /// # Safety
    /// AVX-512F/FMA/F16C present; `out` and `p` hold heads `first..first + H`; every row of
    /// `positions` lies inside `data` (checked by the public entry point).
    #[target_feature(enable = "avx512f,fma,f16c")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn head_values<T, const H: usize, const PARTS: usize>(
        load: impl Fn(*const T) -> __m512,
        p: &[f32],
        data: &[T],
        rows: CachedRows<'_>,
        positions: &Range<usize>,
        out: &mut [f32],
        first: usize,
    ) {
        let span = positions.len();
        let hd = rows.head_dim;
        assert!(PARTS * 16 == hd && (first + H) * hd <= out.len() && (first + H) * span <= p.len());
        let mut acc = [[_mm512_setzero_ps(); PARTS]; H];
        for (jj, j) in positions.clone().enumerate() {
            // SAFETY: row j's hd values lie inside `data` (caller); the weights read are
            // p[(first + h)·span + jj] < (first + H)·span (asserted).
            unsafe {
                let row = data.as_ptr().add(rows.start(j));
                let v: [__m512; PARTS] = std::array::from_fn(|k| load(row.add(16 * k)));
                for (h, acc) in acc.iter_mut().enumerate() {
                    let a = _mm512_set1_ps(*p.get_unchecked((first + h) * span + jj));
                    for k in 0..PARTS {
                        acc[k] = _mm512_fmadd_ps(a, v[k], acc[k]);
                    }
                }
            }
        }
        for (h, acc) in acc.iter().enumerate() {
            let o = &mut out[(first + h) * hd..(first + h + 1) * hd];
            for (k, &sum) in acc.iter().enumerate() {
                // SAFETY: o holds hd = 16·PARTS floats.
                unsafe { _mm512_storeu_ps(o.as_mut_ptr().add(16 * k), sum) };
            }
        }
    }

    pub(super) fn values_avx2(
        p: &[f32],
        values: CachedRows<'_>,
        positions: Range<usize>,
        out: &mut [f32],
    ) {
        assert!(has_avx2());
        // SAFETY: the features are checked; every slice access inside is bounds-checked.
        unsafe { values_avx2_impl(p, values, positions, out) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn values_avx2_impl(
        p: &[f32],
        values: CachedRows<'_>,
        positions: Range<usize>,
        out: &mut [f32],
    ) {
        // SAFETY (both closures): this function has the features the axpys need.
        match values.data {
            KvData::F16(d) => values_with(
                |a, x, y| unsafe { axpy256_f16(a, x, y) },
                p,
                d,
                values,
                positions,
                out,
            ),
            KvData::F32(d) => values_with(
                |a, x, y| unsafe { axpy256_f32(a, x, y) },
                p,
                d,
                values,
                positions,
                out,
            ),
            KvData::Bf16(_) | KvData::Q8_0 { .. } => unreachable!("widened before"),
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    //! NEON copies of the loops: the 16 lanes of the order as four 4-float registers (lanes
    //! `4v..4v+4` in register `v`), F16 rows widened by `fcvtl` as they are loaded.

    use super::{
        axpy_scalar, dot_tail, scores_with, values_with, CachedRows, Element, KvData, LANES,
    };
    use crate::f16::neon::widen;
    use half::f16;
    use std::arch::aarch64::*;
    use std::ops::Range;

    /// A cache element type NEON loads four at a time, widened to f32.
    trait Load4: Element {
        /// # Safety
        /// `p..p + 4` must be readable.
        unsafe fn load4(p: *const Self) -> float32x4_t;
    }

    impl Load4 for f32 {
        #[inline(always)]
        unsafe fn load4(p: *const f32) -> float32x4_t {
            // SAFETY: the caller guarantees 4 readable floats at p.
            unsafe { vld1q_f32(p) }
        }
    }

    impl Load4 for f16 {
        #[inline(always)]
        unsafe fn load4(p: *const f16) -> float32x4_t {
            // SAFETY: the caller guarantees 4 readable halves at p.
            widen(unsafe { vld1_u16(p.cast()) })
        }
    }

    /// The dot of the module docs' order.
    fn dot<T: Load4>(q: &[f32], k: &[T]) -> f32 {
        assert!(q.len() == k.len());
        let body = q.len() - q.len() % LANES;
        // SAFETY: NEON baseline register operation.
        let mut acc = [unsafe { vdupq_n_f32(0.0) }; LANES / 4];
        let mut j = 0;
        while j < body {
            for (v, acc) in acc.iter_mut().enumerate() {
                // SAFETY: j + 4v + 4 <= j + 16 <= body <= len of q and k (checked above).
                unsafe {
                    let qv = vld1q_f32(q.as_ptr().add(j + 4 * v));
                    *acc = vfmaq_f32(*acc, qv, T::load4(k.as_ptr().add(j + 4 * v)));
                }
            }
            j += LANES;
        }
        // The halving tree over 16 lanes: registers 8 lanes apart, then 4, then lanes 2 apart
        // within the last register, then 1.
        // SAFETY: NEON baseline register operations.
        let sum = unsafe {
            let c = vaddq_f32(vaddq_f32(acc[0], acc[2]), vaddq_f32(acc[1], acc[3]));
            let d = vadd_f32(vget_low_f32(c), vget_high_f32(c));
            vget_lane_f32::<0>(d) + vget_lane_f32::<1>(d)
        };
        dot_tail(sum, &q[body..], &k[body..])
    }

    /// `y = fma(alpha, x, y)`, four elements per instruction, the last `len mod 4` scalar.
    fn axpy<T: Load4>(alpha: f32, x: &[T], y: &mut [f32]) {
        assert!(x.len() == y.len());
        let body = y.len() - y.len() % 4;
        let mut j = 0;
        while j < body {
            // SAFETY: j + 4 <= body <= len of x and y (checked above).
            unsafe {
                let o = y.as_mut_ptr().add(j);
                vst1q_f32(
                    o,
                    vfmaq_f32(
                        vld1q_f32(o),
                        vdupq_n_f32(alpha),
                        T::load4(x.as_ptr().add(j)),
                    ),
                );
            }
            j += 4;
        }
        axpy_scalar(alpha, &x[body..], &mut y[body..]);
    }

    pub(super) fn scores(
        q: &[f32],
        keys: CachedRows<'_>,
        positions: Range<usize>,
        scale: f32,
        out: &mut [f32],
    ) {
        match keys.data {
            KvData::F16(d) => scores_with(dot::<f16>, q, d, keys, positions, scale, out),
            KvData::F32(d) => scores_with(dot::<f32>, q, d, keys, positions, scale, out),
            KvData::Bf16(_) | KvData::Q8_0 { .. } => unreachable!("widened before"),
        }
    }

    pub(super) fn values(
        p: &[f32],
        values: CachedRows<'_>,
        positions: Range<usize>,
        out: &mut [f32],
    ) {
        match values.data {
            KvData::F16(d) => values_with(axpy::<f16>, p, d, values, positions, out),
            KvData::F32(d) => values_with(axpy::<f32>, p, d, values, positions, out),
            KvData::Bf16(_) | KvData::Q8_0 { .. } => unreachable!("widened before"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rows(data: KvData<'_>, stride: usize, offset: usize, head_dim: usize) -> CachedRows<'_> {
        CachedRows {
            data,
            stride,
            offset,
            head_dim,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Every ISA this CPU has gives the scalar reference's bits, for F16 and f32 caches, and
        /// an F16 cache gives the bits of the same values widened into an f32 cache.
        #[test]
        fn every_isa_equals_the_scalar_reference(
            heads in 1usize..7,
            // Every small shape, and the models' head dims (64, 128, 256: the register-resident
            // loops) more often than chance would pick them.
            head_dim in prop_oneof![1usize..80, Just(64usize), Just(128usize), Just(256usize)],
            span in 1usize..40,
            seed in any::<u64>(),
        ) {
            let mut state = seed | 1;
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 4.0
            };
            let stride = 2 * head_dim;
            let first = 3;
            let positions = first..first + span;
            let halves: Vec<f16> = (0..(first + span) * stride).map(|_| f16::from_f32(next())).collect();
            let widened: Vec<f32> = halves.iter().map(|h| h.to_f32()).collect();
            let q: Vec<f32> = (0..heads * head_dim).map(|_| next()).collect();
            let p: Vec<f32> = (0..heads * span).map(|_| next().abs()).collect();
            let reference = rows(KvData::F32(&widened), stride, head_dim, head_dim);
            let mut want_s = vec![0f32; heads * span];
            let mut want_o = vec![0f32; heads * head_dim];
            attention_scores_with_isa(Isa::Scalar, &q, reference, positions.clone(), 0.125, &mut want_s);
            attention_values_with_isa(Isa::Scalar, &p, reference, positions.clone(), &mut want_o);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            for data in [KvData::F32(&widened), KvData::F16(&halves)] {
                let kv = rows(data, stride, head_dim, head_dim);
                for isa in Isa::supported_for_tests() {
                    let mut s = vec![f32::NAN; heads * span];
                    let mut o = vec![f32::NAN; heads * head_dim];
                    attention_scores_with_isa(isa, &q, kv, positions.clone(), 0.125, &mut s);
                    attention_values_with_isa(isa, &p, kv, positions.clone(), &mut o);
                    prop_assert_eq!(bits(&s), bits(&want_s), "scores on {}", isa.name());
                    prop_assert_eq!(bits(&o), bits(&want_o), "values on {}", isa.name());
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100))]
        /// BF16 and Q8_0 caches: every ISA's widening equals the scalar widening, and every
        /// ISA's scores and value sums equal the scalar reference on the widened values in an
        /// f32 cache, bit for bit.
        #[test]
        fn widened_caches_equal_the_scalar_reference_on_every_isa(
            heads in 1usize..5,
            blocks in 1usize..5,
            span in 1usize..30,
            seed in any::<u64>(),
        ) {
            let mut state = seed | 1;
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 6.0
            };
            let head_dim = 32 * blocks;
            let stride = 2 * head_dim;
            let first = 2;
            let positions = first..first + span;
            let x: Vec<f32> = (0..(first + span) * stride).map(|_| next()).collect();
            let halves: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
            let mut codes = vec![0i8; x.len()];
            let mut scales = vec![f16::ZERO; x.len() / Q8_BLOCK];
            crate::q8::quantize_q8_0(&x, &mut codes, &mut scales).unwrap();
            let q: Vec<f32> = (0..heads * head_dim).map(|_| next()).collect();
            let p: Vec<f32> = (0..heads * span).map(|_| next().abs()).collect();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            for data in [KvData::Bf16(&halves), KvData::Q8_0 { codes: &codes, scales: &scales }] {
                let mut widened = vec![0f32; x.len()];
                widen_with_isa(Isa::Scalar, data, 0, &mut widened);
                let reference = rows(KvData::F32(&widened), stride, head_dim, head_dim);
                let mut want_s = vec![0f32; heads * span];
                let mut want_o = vec![0f32; heads * head_dim];
                attention_scores_with_isa(Isa::Scalar, &q, reference, positions.clone(), 0.125, &mut want_s);
                attention_values_with_isa(Isa::Scalar, &p, reference, positions.clone(), &mut want_o);
                let kv = rows(data, stride, head_dim, head_dim);
                for isa in Isa::supported_for_tests() {
                    let mut w = vec![f32::NAN; head_dim];
                    widen_with_isa(isa, data, stride + head_dim, &mut w);
                    prop_assert_eq!(bits(&w), bits(&widened[stride + head_dim..stride + 2 * head_dim]));
                    let mut s = vec![f32::NAN; heads * span];
                    let mut o = vec![f32::NAN; heads * head_dim];
                    attention_scores_with_isa(isa, &q, kv, positions.clone(), 0.125, &mut s);
                    attention_values_with_isa(isa, &p, kv, positions.clone(), &mut o);
                    prop_assert_eq!(bits(&s), bits(&want_s), "scores on {}", isa.name());
                    prop_assert_eq!(bits(&o), bits(&want_o), "values on {}", isa.name());
                }
            }
        }
    }

    #[test]
    fn q8_0_and_bf16_widen_to_their_values() {
        let codes: Vec<i8> = (0..64).map(|i| (i as i8) - 32).collect();
        let scales = [f16::from_f32(0.5), f16::from_f32(-2.0)];
        let mut out = vec![0f32; 64];
        widen(
            KvData::Q8_0 {
                codes: &codes,
                scales: &scales,
            },
            0,
            &mut out,
        );
        assert_eq!(out[0], -16.0);
        assert_eq!(out[31], -0.5);
        assert_eq!(out[32], -0.0);
        assert_eq!(out[63], -62.0);
        let halves = [bf16::from_f32(1.5), bf16::from_f32(-3.0e30)];
        let mut out = [0f32; 2];
        widen(KvData::Bf16(&halves), 0, &mut out);
        assert_eq!(out, [1.5, bf16::from_f32(-3.0e30).to_f32()]);
    }

    #[test]
    fn scores_and_values_are_the_textbook_sums() {
        // Exact small integers: every order gives the same result.
        let cache = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let kv = rows(KvData::F32(&cache), 2, 0, 2);
        let mut s = [0f32; 3];
        attention_scores(&[1.0, -1.0], kv, 0..3, 2.0, &mut s);
        assert_eq!(s, [-2.0, -2.0, -2.0]);
        let mut o = [0f32; 2];
        attention_values(&[1.0, 0.0, 2.0], kv, 0..3, &mut o);
        assert_eq!(o, [11.0, 14.0]);
    }
}
