//! Instruction-set selection: what the CPU supports, the `BITNET_ISA` override, and a record of
//! which kernels actually ran (so run receipts can say so).
//!
//! Tiers: [`Isa::Avx512`] needs AVX-512 F/BW/VL/VNNI (+F16C); [`Isa::Avx2`] needs AVX2/FMA/F16C;
//! [`Isa::Neon`] is aarch64's baseline SIMD (ternary, F16, Q8_0, Q6_K and int8-code products, attention);
//! [`Isa::Scalar`] runs everywhere. The active tier is chosen once per process: the best tier the CPU has, or the one named by `BITNET_ISA=scalar|avx2|avx512|neon`.
//! Within the AVX-512 tier, two kernels use further features when present, with the same
//! results: trit5 decode (AVX-512 VBMI) and code-matrix products of several tokens (AMX-INT8
//! tiles, [`amx_int8_supported`]).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::error::KernelError;

/// An instruction-set tier the kernels are written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// Portable Rust, the reference every other path must equal.
    Scalar,
    /// AVX2 + FMA + F16C (x86-64).
    Avx2,
    /// AVX-512 F/BW/VL/VNNI + F16C (x86-64).
    Avx512,
    /// NEON (aarch64): the ternary, F16, Q8_0 and int8-code products and attention.
    Neon,
}

impl Isa {
    /// All tiers, slowest first within an architecture.
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon];

    /// The name used by `BITNET_ISA` and in receipts.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// Parses a `BITNET_ISA` value.
    pub fn from_name(value: &str) -> Result<Isa, KernelError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "scalar" => Ok(Isa::Scalar),
            "avx2" => Ok(Isa::Avx2),
            "avx512" => Ok(Isa::Avx512),
            "neon" => Ok(Isa::Neon),
            _ => Err(KernelError::BadIsaName {
                value: value.to_string(),
            }),
        }
    }

    /// Whether this CPU can run the tier.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            Isa::Avx2 => has_avx2(),
            Isa::Avx512 => has_avx512(),
            Isa::Neon => cfg!(target_arch = "aarch64"),
        }
    }

    /// What this CPU lacks to run the tier (empty when it is supported), e.g. `["avx512vnni"]`,
    /// or `["aarch64"]` for NEON on another architecture.
    pub fn missing_features(self) -> Vec<&'static str> {
        match self {
            Isa::Scalar => Vec::new(),
            Isa::Avx2 => missing_x86(&["avx2", "fma", "f16c"]),
            Isa::Avx512 => missing_x86(&[
                "avx2",
                "fma",
                "f16c",
                "avx512f",
                "avx512bw",
                "avx512vl",
                "avx512vnni",
            ]),
            Isa::Neon if cfg!(target_arch = "aarch64") => Vec::new(),
            Isa::Neon => vec!["aarch64"],
        }
    }

    /// The tiers a test suite can check on this CPU ([`Isa::supported`]), after saying on
    /// stderr, once per process and past the test harness's output capture, which tiers it
    /// cannot check here and what the CPU lacks for them. A suite that compares every tier with
    /// the scalar reference therefore never passes silently on a CPU where it compared nothing.
    pub fn supported_for_tests() -> Vec<Isa> {
        static REPORTED: std::sync::Once = std::sync::Once::new();
        REPORTED.call_once(|| {
            use std::io::Write;
            let mut err = std::io::stderr().lock();
            for isa in Isa::ALL {
                let missing = isa.missing_features();
                if missing.is_empty() {
                    continue;
                }
                let how = if isa == Isa::Neon {
                    " (scripts/test-aarch64.sh runs these tests for aarch64 under qemu-user)"
                } else {
                    ""
                };
                // A failed write to stderr leaves nothing to report to.
                let _ = writeln!(
                    err,
                    "skipped: the {isa} kernels are not tested on this CPU, which lacks {}{how}",
                    missing.join(", ")
                );
            }
            if has_avx512() && !amx_int8_supported() {
                let _ = writeln!(
                    err,
                    "skipped: the AMX-INT8 code kernels are not tested on this CPU, which lacks \
                     amx-tile/amx-int8 or Linux's permission to use the tiles"
                );
            }
            if !trit5_vbmi_supported() && cfg!(target_arch = "x86_64") {
                let _ = writeln!(
                    err,
                    "skipped: the trit5 AVX-512 VBMI kernels are not tested on this CPU, which \
                     lacks {}",
                    missing_x86(&["avx512vbmi"]).join(", ")
                );
            }
        });
        Isa::supported()
    }

    /// The tiers this CPU supports, slowest first (always starts with `Scalar`).
    pub fn supported() -> Vec<Isa> {
        Isa::ALL
            .into_iter()
            .filter(|isa| isa.is_supported())
            .collect()
    }

    /// The fastest tier this CPU supports.
    pub fn best_supported() -> Isa {
        *Isa::supported().last().unwrap_or(&Isa::Scalar)
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The names among `features` this x86-64 CPU lacks (all of them on another architecture).
fn missing_x86(features: &[&'static str]) -> Vec<&'static str> {
    features
        .iter()
        .copied()
        .filter(|&f| !x86_feature(f))
        .collect()
}

/// Whether the AVX-512 tier's code-matrix kernel for several tokens can run on AMX-INT8 tiles
/// here: the tier is supported, CPUID reports AMX-TILE and AMX-INT8, and Linux granted this
/// process the tile data state (asked once, on the first call; the grant covers every thread).
pub fn amx_int8_supported() -> bool {
    static GRANTED: OnceLock<bool> = OnceLock::new();
    *GRANTED.get_or_init(|| has_avx512() && request_amx_tiles())
}

/// Whether the CPU has AMX-TILE and AMX-INT8 and Linux lets this process use the tiles.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn request_amx_tiles() -> bool {
    /// `arch_prctl` request for permission to use an extended state component.
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    /// The AMX tile data state component.
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
    let (tile, int8) = (leaf7.edx >> 24 & 1 == 1, leaf7.edx >> 25 & 1 == 1);
    // SAFETY: this request only changes which extended states this process may use; it reads
    // and writes no memory of ours, and a kernel without AMX support answers with an error.
    tile && int8
        && unsafe {
            libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_PERM,
                XFEATURE_XTILEDATA,
            )
        } == 0
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn request_amx_tiles() -> bool {
    false
}

/// Whether the CPU's vendor string (CPUID leaf 0) is AMD's: some kernels tune their software
/// prefetching by vendor, as measured on each (see `f16`).
#[cfg(target_arch = "x86_64")]
pub(crate) fn cpu_is_amd() -> bool {
    let leaf0 = std::arch::x86_64::__cpuid(0);
    let vendor: Vec<u8> = [leaf0.ebx, leaf0.edx, leaf0.ecx]
        .iter()
        .flat_map(|r| r.to_le_bytes())
        .collect();
    vendor == b"AuthenticAMD"
}

/// Whether the AVX-512 tier's trit5 decode kernels (AVX-512 VBMI) can run here.
fn trit5_vbmi_supported() -> bool {
    has_avx512() && x86_feature("avx512vbmi")
}

#[cfg(target_arch = "x86_64")]
fn x86_feature(name: &str) -> bool {
    match name {
        "avx2" => is_x86_feature_detected!("avx2"),
        "fma" => is_x86_feature_detected!("fma"),
        "f16c" => is_x86_feature_detected!("f16c"),
        "avx512f" => is_x86_feature_detected!("avx512f"),
        "avx512bw" => is_x86_feature_detected!("avx512bw"),
        "avx512vl" => is_x86_feature_detected!("avx512vl"),
        "avx512vnni" => is_x86_feature_detected!("avx512vnni"),
        "avx512vbmi" => is_x86_feature_detected!("avx512vbmi"),
        _ => false,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn x86_feature(_name: &str) -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx2() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    has_avx2()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vnni")
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx512() -> bool {
    false
}

/// Chooses the tier for this process from `BITNET_ISA` (if set) and the CPU. An unknown name or a
/// tier the CPU lacks is an error, so the caller can tell the user; [`active_isa`] then falls back
/// to the best supported tier.
pub fn select_isa() -> Result<Isa, KernelError> {
    match std::env::var("BITNET_ISA") {
        Ok(value) if !value.trim().is_empty() => {
            let isa = Isa::from_name(&value)?;
            if isa.is_supported() {
                Ok(isa)
            } else {
                Err(KernelError::IsaUnsupported { isa })
            }
        }
        _ => Ok(Isa::best_supported()),
    }
}

/// The tier every kernel dispatches to (decided once per process, see [`select_isa`]).
pub fn active_isa() -> Isa {
    static ACTIVE: OnceLock<Isa> = OnceLock::new();
    *ACTIVE.get_or_init(|| select_isa().unwrap_or_else(|_| Isa::best_supported()))
}

/// Identifies one kernel implementation; [`KernelId::name`] is what receipts print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum KernelId {
    TernaryScalarMatvec,
    TernaryScalarMatmul,
    TernaryAvx2Matvec,
    TernaryAvx2Matmul,
    TernaryAvx512Matvec,
    TernaryAvx512Matmul,
    TernaryAvx512VbmiMatvec,
    TernaryAvx512VbmiMatmul,
    TernaryNeonMatvec,
    TernaryNeonMatmul,
    TernaryScalarBlockScaled,
    TernaryAvx2BlockScaled,
    TernaryAvx512BlockScaled,
    TernaryNeonBlockScaled,
    QuantizeScalar,
    QuantizeAvx2,
    QuantizeAvx512,
    F16ScalarMatvec,
    F16NeonMatvec,
    F16Avx2Matvec,
    F16Avx512Matvec,
    F16Avx2TiledMatmul,
    F16Avx512TiledMatmul,
    Q8ScalarMatvec,
    Q8NeonMatvec,
    Q8Avx2Matvec,
    Q8Avx512Matvec,
    Q6kScalarMatvec,
    Q6kNeonMatvec,
    Q6kAvx2Matvec,
    Q6kAvx512Matvec,
    CodeScalarMatmul,
    CodeNeonMatmul,
    CodeAvx2Matmul,
    CodeAvx512Matmul,
    CodeAmxMatmul,
}

impl KernelId {
    /// Every kernel this build has.
    pub const ALL: [KernelId; 36] = [
        KernelId::TernaryScalarMatvec,
        KernelId::TernaryScalarMatmul,
        KernelId::TernaryAvx2Matvec,
        KernelId::TernaryAvx2Matmul,
        KernelId::TernaryAvx512Matvec,
        KernelId::TernaryAvx512Matmul,
        KernelId::TernaryAvx512VbmiMatvec,
        KernelId::TernaryAvx512VbmiMatmul,
        KernelId::TernaryNeonMatvec,
        KernelId::TernaryNeonMatmul,
        KernelId::TernaryScalarBlockScaled,
        KernelId::TernaryAvx2BlockScaled,
        KernelId::TernaryAvx512BlockScaled,
        KernelId::TernaryNeonBlockScaled,
        KernelId::QuantizeScalar,
        KernelId::QuantizeAvx2,
        KernelId::QuantizeAvx512,
        KernelId::F16ScalarMatvec,
        KernelId::F16NeonMatvec,
        KernelId::F16Avx2Matvec,
        KernelId::F16Avx512Matvec,
        KernelId::F16Avx2TiledMatmul,
        KernelId::F16Avx512TiledMatmul,
        KernelId::Q8ScalarMatvec,
        KernelId::Q8NeonMatvec,
        KernelId::Q8Avx2Matvec,
        KernelId::Q8Avx512Matvec,
        KernelId::Q6kScalarMatvec,
        KernelId::Q6kNeonMatvec,
        KernelId::Q6kAvx2Matvec,
        KernelId::Q6kAvx512Matvec,
        KernelId::CodeScalarMatmul,
        KernelId::CodeNeonMatmul,
        KernelId::CodeAvx2Matmul,
        KernelId::CodeAvx512Matmul,
        KernelId::CodeAmxMatmul,
    ];

    /// The receipt name, e.g. `"i2s_avx512_vnni_matvec"`.
    pub fn name(self) -> &'static str {
        match self {
            KernelId::TernaryScalarMatvec => "i2s_scalar_matvec",
            KernelId::TernaryScalarMatmul => "i2s_scalar_matmul",
            KernelId::TernaryAvx2Matvec => "i2s_avx2_matvec",
            KernelId::TernaryAvx2Matmul => "i2s_avx2_matmul",
            KernelId::TernaryAvx512Matvec => "i2s_avx512_vnni_matvec",
            KernelId::TernaryAvx512Matmul => "i2s_avx512_vnni_matmul",
            KernelId::TernaryAvx512VbmiMatvec => "i2s_trit5_avx512_vbmi_matvec",
            KernelId::TernaryAvx512VbmiMatmul => "i2s_trit5_avx512_vbmi_matmul",
            KernelId::TernaryNeonMatvec => "i2s_neon_matvec",
            KernelId::TernaryNeonMatmul => "i2s_neon_matmul",
            KernelId::TernaryScalarBlockScaled => "i2s_scalar_block_scaled",
            KernelId::TernaryAvx2BlockScaled => "i2s_avx2_block_scaled",
            KernelId::TernaryAvx512BlockScaled => "i2s_avx512_vnni_block_scaled",
            KernelId::TernaryNeonBlockScaled => "i2s_neon_block_scaled",
            KernelId::QuantizeScalar => "quantize_i8_scalar",
            KernelId::QuantizeAvx2 => "quantize_i8_avx2",
            KernelId::QuantizeAvx512 => "quantize_i8_avx512",
            KernelId::F16ScalarMatvec => "f16_scalar_matvec",
            KernelId::F16NeonMatvec => "f16_neon_matvec",
            KernelId::F16Avx2Matvec => "f16_avx2_f16c_matvec",
            KernelId::F16Avx512Matvec => "f16_avx512_matvec",
            KernelId::F16Avx2TiledMatmul => "f16_avx2_f16c_tiled_matmul",
            KernelId::F16Avx512TiledMatmul => "f16_avx512_tiled_matmul",
            KernelId::Q8ScalarMatvec => "q8_0_scalar_matvec",
            KernelId::Q8NeonMatvec => "q8_0_neon_matvec",
            KernelId::Q8Avx2Matvec => "q8_0_avx2_matvec",
            KernelId::Q8Avx512Matvec => "q8_0_avx512_vnni_matvec",
            KernelId::Q6kScalarMatvec => "q6_k_scalar_matvec",
            KernelId::Q6kNeonMatvec => "q6_k_neon_matvec",
            KernelId::Q6kAvx2Matvec => "q6_k_avx2_matvec",
            KernelId::Q6kAvx512Matvec => "q6_k_avx512_vnni_matvec",
            KernelId::CodeScalarMatmul => "codes_i8_scalar_matmul",
            KernelId::CodeNeonMatmul => "codes_i8_neon_matmul",
            KernelId::CodeAvx2Matmul => "codes_i8_avx2_matmul",
            KernelId::CodeAvx512Matmul => "codes_i8_avx512_vnni_matmul",
            KernelId::CodeAmxMatmul => "codes_i8_amx_int8_matmul",
        }
    }

    fn bit(self) -> u64 {
        1u64 << (self as u8)
    }
}

static KERNELS_USED: AtomicU64 = AtomicU64::new(0);

/// Notes that a kernel ran (cheap: one relaxed load once the bit is set).
pub(crate) fn record(id: KernelId) {
    if KERNELS_USED.load(Ordering::Relaxed) & id.bit() == 0 {
        KERNELS_USED.fetch_or(id.bit(), Ordering::Relaxed);
    }
}

/// Names of every kernel that has run in this process, in a fixed order.
pub fn kernels_used() -> Vec<&'static str> {
    let used = KERNELS_USED.load(Ordering::Relaxed);
    KernelId::ALL
        .into_iter()
        .filter(|id| used & id.bit() != 0)
        .map(KernelId::name)
        .collect()
}
