//! Plain float storage: F32, F16 and BF16 (conversions to and from f32, and the f16 scale
//! fields the block formats share).

use half::f16;

/// The f16 stored little-endian at `bytes[at..at + 2]`, widened to f32 (exact).
#[inline]
pub(crate) fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([bytes[at], bytes[at + 1]])).to_f32()
}

/// f32 → f16 bits, round to nearest even; overflow gives ±inf (IEEE conversion, as ggml and
/// numpy do). NaN stays NaN with the quiet bit set (as the x86 F16C instruction ggml uses does).
#[inline]
pub fn f32_to_f16_bits(x: f32) -> u16 {
    f16::from_f32(x).to_bits()
}

/// f32 → bf16 bits exactly as ggml (`ggml_compute_fp32_to_bf16`) and gguf-py do: NaN forced
/// quiet (payload's top bits kept, bit 6 set), everything else rounded to nearest even.
#[inline]
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    if bits & 0x7fff_ffff > 0x7f80_0000 {
        return ((bits >> 16) | 0x40) as u16;
    }
    // Cannot overflow: the largest non-NaN pattern is 0xff80_0000.
    ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

/// bf16 bits → f32 (exact).
#[inline]
pub fn bf16_bits_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

pub(crate) fn dequantize_f32(bytes: &[u8], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

/// Every f16 bit pattern widened to f32 (256 KiB, built once): a table lookup is several times
/// faster than the bit-manipulating conversion on CPUs without F16C in the baseline target.
fn f16_table() -> &'static [f32] {
    static TABLE: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| (0..=u16::MAX).map(|b| f16::from_bits(b).to_f32()).collect())
}

pub(crate) fn dequantize_f16(bytes: &[u8], out: &mut [f32]) {
    let table = f16_table();
    for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = table[usize::from(u16::from_le_bytes([b[0], b[1]]))];
    }
}

pub(crate) fn dequantize_bf16(bytes: &[u8], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = bf16_bits_to_f32(u16::from_le_bytes([b[0], b[1]]));
    }
}

pub(crate) fn quantize_f32(src: &[f32], dst: &mut [u8]) {
    for (d, x) in dst.chunks_exact_mut(4).zip(src) {
        d.copy_from_slice(&x.to_le_bytes());
    }
}

pub(crate) fn quantize_f16(src: &[f32], dst: &mut [u8]) {
    for (d, &x) in dst.chunks_exact_mut(2).zip(src) {
        d.copy_from_slice(&f32_to_f16_bits(x).to_le_bytes());
    }
}

pub(crate) fn quantize_bf16(src: &[f32], dst: &mut [u8]) {
    for (d, &x) in dst.chunks_exact_mut(2).zip(src) {
        d.copy_from_slice(&f32_to_bf16_bits(x).to_le_bytes());
    }
}
