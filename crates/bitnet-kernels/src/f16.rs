//! `f16 × f32` matrix products: the F16 LM head (the tied `token_embd` of BitNet 2B-4T:
//! 128256 × 2560) and every weight of the llama-family models kept in F16 (SmolLM2, Gemma-3).
//! One token (decode) streams each row once through a row dot, threaded over output rows; several
//! tokens (prefill) on AVX2 / AVX-512 go through the register-tiled kernel of `f16::tiled`.
//!
//! Every output follows the order of [`crate::order`] with [`LANES`] = 32 lanes and a fused
//! multiply-add per term (`acc = w·x + acc`, the weight widened to f32 exactly): lane `l` takes
//! columns `j ≡ l (mod 32)` in order, the lanes fold by the halving tree, the last `cols mod 32`
//! columns follow in order. So scalar, AVX2, AVX-512 and NEON, one token or a tiled batch, give
//! the same bits. (32 lanes are the two 16-float accumulators the AVX-512 row dot needs anyway to
//! keep the FMA latency off its stream; AVX2 holds them in four registers.)

#![allow(clippy::needless_range_loop)] // SIMD lanes and tiles read best as indexed loops.

use half::f16;
use std::sync::atomic::Ordering;

use crate::error::KernelError;
use crate::isa::{active_isa, record, Isa, KernelId};
#[cfg(target_arch = "x86_64")]
use crate::memory::CacheAligned;
use crate::order::fold;
use crate::pool::{atomic_f32_view, ThreadPool};

#[cfg(target_arch = "x86_64")]
mod multi;
#[cfg(target_arch = "x86_64")]
mod tiled;

/// Rows handled per kernel call (they share activation loads).
const ROWS_PER_CALL: usize = 4;
/// Accumulator lanes of the summation order (see the module docs).
pub const LANES: usize = 32;

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// The caller's copy of the activations, cache-line aligned (see [`with_aligned`]).
    static ALIGNED_X: std::cell::RefCell<CacheAligned<f32>> =
        std::cell::RefCell::new(CacheAligned::new());
}

/// Calls `f` with `x`, or with a cache-line aligned copy of it when `x` is not aligned (in a
/// per-thread buffer: no allocation per token).
#[cfg(target_arch = "x86_64")]
fn with_aligned<R>(x: &[f32], f: impl FnOnce(&[f32]) -> R) -> R {
    if x.as_ptr().align_offset(64) == 0 {
        return f(x);
    }
    ALIGNED_X.with(|buf| match buf.try_borrow_mut() {
        Ok(mut buf) => f(buf.copy_from(x)),
        Err(_) => f(x), // re-entered from `f` itself: unaligned is only slower
    })
}

/// `out[r] = Σ_j w[r·cols + j] · x[j]` for a row-major F16 matrix.
pub fn matvec_f16(
    w: &[f16],
    rows: usize,
    cols: usize,
    x: &[f32],
    out: &mut [f32],
    pool: &ThreadPool,
) -> Result<(), KernelError> {
    matmul_f16_with_isa(active_isa(), w, rows, cols, x, 1, out, pool)
}

/// Batched [`matvec_f16`]: `out[b·rows + r] = Σ_j w[r·cols + j] · x[b·cols + j]`.
pub fn matmul_f16(
    w: &[f16],
    rows: usize,
    cols: usize,
    x: &[f32],
    batch: usize,
    out: &mut [f32],
    pool: &ThreadPool,
) -> Result<(), KernelError> {
    matmul_f16_with_isa(active_isa(), w, rows, cols, x, batch, out, pool)
}

/// [`matmul_f16`] on a chosen instruction set (for tests and benchmarks).
#[allow(clippy::too_many_arguments)]
pub fn matmul_f16_with_isa(
    isa: Isa,
    w: &[f16],
    rows: usize,
    cols: usize,
    x: &[f32],
    batch: usize,
    out: &mut [f32],
    pool: &ThreadPool,
) -> Result<(), KernelError> {
    if !isa.is_supported() {
        return Err(KernelError::IsaUnsupported { isa });
    }
    let checks = [
        ("f16 weights (rows × cols)", rows * cols, w.len()),
        ("activations (batch × cols)", batch * cols, x.len()),
        ("output (batch × rows)", batch * rows, out.len()),
    ];
    for (what, expected, actual) in checks {
        if expected != actual {
            return Err(KernelError::LengthMismatch {
                what,
                expected,
                actual,
            });
        }
    }
    if rows == 0 || cols == 0 || batch == 0 {
        out.fill(0.0);
        return Ok(());
    }
    #[cfg(target_arch = "x86_64")]
    if tiled::worthwhile(isa, batch) && tiled::matmul(isa, w, rows, cols, x, batch, out, pool) {
        record(match isa {
            Isa::Avx512 => KernelId::F16Avx512TiledMatmul,
            _ => KernelId::F16Avx2TiledMatmul,
        });
        return Ok(());
    }
    record(match isa {
        Isa::Scalar => KernelId::F16ScalarMatvec,
        Isa::Neon => KernelId::F16NeonMatvec,
        Isa::Avx2 => KernelId::F16Avx2Matvec,
        Isa::Avx512 => KernelId::F16Avx512Matvec,
    });
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 && batch > 1 {
        // The few-token kernel loads every activation vector once per 32 weights of every row:
        // from 64-byte aligned rows those loads never split a cache line (twice the load slots).
        with_aligned(x, |x| multi::matmul(w, rows, cols, x, batch, out, pool));
        return Ok(());
    }
    let out = atomic_f32_view(out);
    pool.run_row_groups(rows, ROWS_PER_CALL, &|first, count| {
        let block = &w[first * cols..(first + count) * cols];
        for b in 0..batch {
            let xb = &x[b * cols..(b + 1) * cols];
            let mut dots = [0f32; ROWS_PER_CALL];
            rows_dot(isa, block, count, xb, &mut dots);
            for (r, &dot) in dots[..count].iter().enumerate() {
                out[b * rows + first + r].store(dot.to_bits(), Ordering::Relaxed);
            }
        }
    });
    Ok(())
}

/// Rounds every element of `x` to the nearest F16 value, ties to even (kept as f32): what
/// llama.cpp's F16 attention does to queries and probabilities. F16C conversions on x86 (AVX2 and
/// AVX-512 tiers), `half`'s elsewhere; the same bits.
pub fn round_to_f16_in_place(x: &mut [f32]) {
    round_to_f16_with_isa(active_isa(), x)
}

/// [`round_to_f16_in_place`] on a chosen instruction set (scalar where it is not supported).
pub fn round_to_f16_with_isa(isa: Isa, x: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512 if Isa::Avx2.is_supported() => x86::round_to_f16(x),
        _ => round_to_f16_scalar(x),
    }
}

fn round_to_f16_scalar(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = f16::from_f32(*v).to_f32();
    }
}

/// Dots of `count` (≤ 4) consecutive rows (`block`, count × x.len()) with `x` into `dots[..count]`.
/// One row at a time: the weights then stream as one sequential run, which measured faster from
/// DRAM than interleaving 4 rows (22 vs 15 GB/s on the 2B-4T head, 1 thread).
fn rows_dot(isa: Isa, block: &[f16], count: usize, x: &[f32], dots: &mut [f32; ROWS_PER_CALL]) {
    let cols = x.len();
    for (r, dot) in dots[..count].iter_mut().enumerate() {
        let row = &block[r * cols..(r + 1) * cols];
        *dot = match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::row_dot_avx512(row, x),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::row_dot_avx2(row, x),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => neon::row_dot(row, x),
            _ => dot_scalar(row, x),
        };
    }
}

/// The scalar reference, in the order of the module docs.
fn dot_scalar(w: &[f16], x: &[f32]) -> f32 {
    let body = x.len() - x.len() % LANES;
    let mut lanes = [0f32; LANES];
    for (wc, xc) in w[..body]
        .chunks_exact(LANES)
        .zip(x[..body].chunks_exact(LANES))
    {
        for l in 0..LANES {
            lanes[l] = wc[l].to_f32().mul_add(xc[l], lanes[l]);
        }
    }
    dot_tail(fold(lanes), &w[body..], &x[body..])
}

/// `sum` followed by the fused products of the tail columns, in order.
#[inline(always)]
fn dot_tail(sum: f32, w: &[f16], x: &[f32]) -> f32 {
    w.iter()
        .zip(x)
        .fold(sum, |acc, (w, &x)| w.to_f32().mul_add(x, acc))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! F16C / AVX-512 row dots: 16 (8) halves converted per instruction, FMA into the 32 lanes
    //! of the order (two zmm / four ymm accumulators), software prefetch ahead of the stream.

    use super::{dot_tail, LANES};
    use crate::order::x86::{fold_256x4, fold_512x2};
    use half::f16;
    use std::arch::x86_64::*;

    /// How far ahead (in halves) the row is prefetched where it is (see [`prefetch_ahead`]):
    /// 2 KiB, between what the two Intel hosts measured best. The 2B-4T head alone
    /// (`benches/ternary.rs` `f16_head/2560to128256`, one thread):
    /// - host C (Sapphire Rapids-class): 1 KiB 13.4–13.9 GB/s, 2 KiB 11.7–11.8, 4 KiB 10.7; in the
    ///   model's decode 1 KiB +4–6% against 2 KiB.
    /// - host D (Emerald Rapids-class): none 10.0–10.2 GiB/s, 1 KiB 11.8–12.0, 2 KiB 13.2–13.3,
    ///   4 KiB 13.2–13.4, 6 KiB 13.5–13.8; 2B-4T tg64 (trit5 4 KiB ahead, 4 interleaved rounds):
    ///   1 KiB 17.2–19.8 t/s, 2 KiB 18.4–22.1, 4 KiB 18.1–21.8, none 16.5–19.2.
    const PREFETCH_HALVES: usize = 1024;

    /// Whether the row dots prefetch their row ahead in software (`prefetcht0`), decided once
    /// per process by the CPU's vendor, as measured (docs/PERFORMANCE.md):
    /// - AMD (host B, Zen 4): no. The hardware prefetchers alone stream the rows at the memory
    ///   wall; a `prefetcht0` per line, at any distance from 1 to 8 KiB, halved the head's rate
    ///   on one thread (`f16_head`: 11 GiB/s with, 22–23 without; 2 threads 19–21 vs 25) and
    ///   2B-4T decode with the F16 head ran 20–23 t/s with it, 26–29 without.
    /// - others (hosts C and D, Intel): yes, [`PREFETCH_HALVES`] ahead (the figures above).
    fn prefetch_ahead() -> bool {
        static PREFETCH: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *PREFETCH.get_or_init(|| !crate::isa::cpu_is_amd())
    }

    /// Dot of one row with `x`.
    pub(super) fn row_dot_avx512(row: &[f16], x: &[f32]) -> f32 {
        assert!(
            is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
        );
        assert!(row.len() == x.len());
        // SAFETY: features checked; the kernel reads cols halves and cols floats (checked).
        unsafe {
            if prefetch_ahead() {
                row_dot_avx512_impl::<true>(row, x)
            } else {
                row_dot_avx512_impl::<false>(row, x)
            }
        }
    }

    /// `PREFETCH`: see [`prefetch_ahead`].
    #[target_feature(enable = "avx512f,fma,f16c")]
    unsafe fn row_dot_avx512_impl<const PREFETCH: bool>(row: &[f16], x: &[f32]) -> f32 {
        let cols = x.len();
        let body = cols - cols % LANES;
        let w = row.as_ptr().cast::<u16>();
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut j = 0;
        while j < body {
            // SAFETY: j + 32 <= body <= cols for x and the row; the prefetch address may lie past
            // the end (prefetches never fault), hence the wrapping pointer.
            unsafe {
                let p = w.add(j);
                if PREFETCH {
                    _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH_HALVES).cast());
                }
                let x0 = _mm512_loadu_ps(x.as_ptr().add(j));
                let x1 = _mm512_loadu_ps(x.as_ptr().add(j + 16));
                let w0 = _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()));
                let w1 = _mm512_cvtph_ps(_mm256_loadu_si256(p.add(16).cast()));
                acc0 = _mm512_fmadd_ps(w0, x0, acc0);
                acc1 = _mm512_fmadd_ps(w1, x1, acc1);
            }
            j += 32;
        }
        dot_tail(fold_512x2(acc0, acc1), &row[body..], &x[body..])
    }

    pub(super) fn round_to_f16(x: &mut [f32]) {
        assert!(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("f16c"));
        // SAFETY: AVX2/F16C checked; the kernel reads and writes within x.
        unsafe { round_to_f16_impl(x) }
    }

    #[target_feature(enable = "avx2,f16c")]
    unsafe fn round_to_f16_impl(x: &mut [f32]) {
        let body = x.len() - x.len() % 8;
        let ptr = x.as_mut_ptr();
        let mut i = 0;
        while i < body {
            // SAFETY: i + 8 <= body <= x.len().
            unsafe {
                let v = _mm256_loadu_ps(ptr.add(i));
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
                _mm256_storeu_ps(ptr.add(i), _mm256_cvtph_ps(h));
            }
            i += 8;
        }
        super::round_to_f16_scalar(&mut x[body..]);
    }

    /// Dot of one row with `x`.
    pub(super) fn row_dot_avx2(row: &[f16], x: &[f32]) -> f32 {
        assert!(
            is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
        );
        assert!(row.len() == x.len());
        // SAFETY: features checked; the kernel reads cols halves and cols floats (checked).
        unsafe {
            if prefetch_ahead() {
                row_dot_avx2_impl::<true>(row, x)
            } else {
                row_dot_avx2_impl::<false>(row, x)
            }
        }
    }

    /// `PREFETCH`: see [`prefetch_ahead`].
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn row_dot_avx2_impl<const PREFETCH: bool>(row: &[f16], x: &[f32]) -> f32 {
        let cols = x.len();
        let body = cols - cols % LANES;
        let w = row.as_ptr().cast::<u16>();
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut j = 0;
        while j < body {
            // SAFETY: j + 32 <= body <= cols for x and the row; the prefetch address may lie past
            // the end (prefetches never fault), hence the wrapping pointer.
            unsafe {
                let p = w.add(j);
                if PREFETCH {
                    _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH_HALVES).cast());
                }
                for (v, acc) in acc.iter_mut().enumerate() {
                    let xv = _mm256_loadu_ps(x.as_ptr().add(j + 8 * v));
                    let wv = _mm256_cvtph_ps(_mm_loadu_si128(p.add(8 * v).cast()));
                    *acc = _mm256_fmadd_ps(wv, xv, *acc);
                }
            }
            j += LANES;
        }
        dot_tail(fold_256x4(acc), &row[body..], &x[body..])
    }
}

#[cfg(target_arch = "aarch64")]
pub(crate) mod neon {
    //! aarch64 NEON row dot: the 32 lanes of the order as eight 4-float accumulators (lanes
    //! `4v..4v+4` in register `v`), halves widened by `fcvtl` (exact; the Rust intrinsics for
    //! half-precision vectors are not stable, hence the one-instruction `asm!`).

    use super::{dot_tail, LANES};
    use half::f16;
    use std::arch::aarch64::*;
    use std::arch::asm;

    /// The four halves of `h` widened to f32 exactly (also the attention kernels' F16 loads).
    #[inline(always)]
    pub(crate) fn widen(h: uint16x4_t) -> float32x4_t {
        let out: float32x4_t;
        // SAFETY: `fcvtl` only reads and writes the named vector registers (NEON is part of the
        // aarch64 baseline); it does not touch memory, the stack or the flags.
        unsafe {
            asm!("fcvtl {out:v}.4s, {h:v}.4h", h = in(vreg) h, out = lateout(vreg) out,
                 options(pure, nomem, nostack, preserves_flags));
        }
        out
    }

    /// Dot of one row with `x`, in the order of the parent module.
    pub(super) fn row_dot(row: &[f16], x: &[f32]) -> f32 {
        assert!(row.len() == x.len());
        let cols = x.len();
        let body = cols - cols % LANES;
        let w = row.as_ptr().cast::<u16>();
        // SAFETY: NEON baseline register operation.
        let mut acc = [unsafe { vdupq_n_f32(0.0) }; LANES / 4];
        let mut j = 0;
        while j < body {
            for (v, acc) in acc.iter_mut().enumerate() {
                // SAFETY: j + 4v + 4 <= j + 32 <= body <= cols for x and the row (checked above).
                unsafe {
                    let wv = widen(vld1_u16(w.add(j + 4 * v)));
                    let xv = vld1q_f32(x.as_ptr().add(j + 4 * v));
                    *acc = vfmaq_f32(*acc, wv, xv);
                }
            }
            j += LANES;
        }
        // The halving tree of `order::fold` over 32 lanes: registers 16, 8 and 4 lanes apart,
        // then lanes 2 apart within the last register, then 1.
        // SAFETY: NEON baseline register operations.
        let sum = unsafe {
            let a: [float32x4_t; 4] = std::array::from_fn(|v| vaddq_f32(acc[v], acc[v + 4]));
            let b = [vaddq_f32(a[0], a[2]), vaddq_f32(a[1], a[3])];
            let c = vaddq_f32(b[0], b[1]);
            let d = vadd_f32(vget_low_f32(c), vget_high_f32(c));
            vget_lane_f32::<0>(d) + vget_lane_f32::<1>(d)
        };
        dot_tail(sum, &row[body..], &x[body..])
    }
}
