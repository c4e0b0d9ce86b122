//! IQ2_S dequantization (256-element blocks of 82 bytes), bit-identical to PyPI gguf.
//!
//! Layout: `d:f16`, `qs[32]` (low 8 bits of 32 grid indices), `signs[32]` (one bit per
//! element, element `e` is bit `e % 8` of `signs[e / 8]`, set = negative), `qh[8]` (bits 8..10
//! of grid index `g` are bits `2(g % 4)..` of `qh[g / 4]`), `scales[8]` (4-bit scale per 16
//! elements, low nibble first). Element `e` = `d·(0.5 + scale)·0.25 · grid[index(e/8)][e%8] · sign`.

use crate::float::f16_at;
use crate::iq2s_grid::IQ2S_GRID;

pub(crate) fn dequantize_iq2_s(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    let qs = &block[2..34];
    let signs = &block[34..66];
    let qh = &block[66..74];
    let scales = &block[74..82];
    for (g, group) in out.chunks_exact_mut(8).enumerate() {
        let high = u16::from((qh[g / 4] >> (2 * (g % 4))) & 3);
        let index = usize::from(u16::from(qs[g]) | (high << 8));
        let magnitudes = IQ2S_GRID[index].to_le_bytes();
        let sub = g / 2;
        let scale = (scales[sub / 2] >> (4 * (sub % 2))) & 0x0f;
        let db = d * (0.5 + f32::from(scale)) * 0.25;
        for (j, o) in group.iter_mut().enumerate() {
            let e = 8 * g + j;
            let sign = if (signs[e / 8] >> (e % 8)) & 1 == 0 {
                1.0
            } else {
                -1.0
            };
            *o = db * f32::from(magnitudes[j]) * sign;
        }
    }
}
