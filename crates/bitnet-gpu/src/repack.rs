//! Ternary weights repacked on the CPU at load into the layout the WGSL BitLinear reads
//! (pure functions: testable without a GPU).
//!
//! Codes `c = t + 1` (−1 → 0, 0 → 1, +1 → 2), 16 per `u32`, rows one after another
//! (`cols / 16` words per row; `cols` a multiple of 64, so a row is whole quads and the 16
//! lanes of the kernel take equally many). In word `w` of a row, column `16w + 4j + b` sits at
//! bit `8b + 2j`: `(word >> 2j) & 0x03030303` is quad `4w + j` (columns `16w + 4j ..+4`) as
//! four int8 lanes, ready for `dot4I8Packed` against four packed int8 activations.

use crate::error::GpuError;

/// Columns per row must be a multiple of this (whole quads for every one of the 16 lanes).
pub const COL_MULTIPLE: usize = 64;

/// Codes per `u32` word.
pub const CODES_PER_WORD: usize = 16;

/// Checks a ternary matrix shape for the GPU layout.
pub fn check_shape(rows: usize, cols: usize) -> Result<(), GpuError> {
    if rows == 0 || cols == 0 || !cols.is_multiple_of(COL_MULTIPLE) {
        return Err(GpuError::Shape {
            what: "ternary matrix",
            reason: format!(
                "{rows} × {cols}: the GPU kernels need rows > 0 and cols a positive multiple of {COL_MULTIPLE}"
            ),
        });
    }
    Ok(())
}

/// Packs `values` (`rows × cols`, row-major, each −1, 0 or 1) into the GPU layout.
pub fn pack_ternary(rows: usize, cols: usize, values: &[i8]) -> Result<Vec<u32>, GpuError> {
    check_shape(rows, cols)?;
    if values.len() != rows * cols {
        return Err(GpuError::Shape {
            what: "ternary values",
            reason: format!("{} values for {rows} × {cols}", values.len()),
        });
    }
    let mut words = vec![0u32; rows * cols / CODES_PER_WORD];
    for (word, chunk) in words.iter_mut().zip(values.chunks_exact(CODES_PER_WORD)) {
        for (i, &v) in chunk.iter().enumerate() {
            if !(-1..=1).contains(&v) {
                return Err(GpuError::Shape {
                    what: "ternary values",
                    reason: format!("value {v} is not -1, 0 or 1"),
                });
            }
            let (j, b) = (i / 4, i % 4);
            *word |= ((v + 1) as u32) << (8 * b + 2 * j);
        }
    }
    Ok(words)
}

/// The code (`t + 1`) of column `col` in a packed row, as the kernel extracts it.
pub fn code_at(row_words: &[u32], col: usize) -> u8 {
    let (w, j, b) = (col / 16, (col % 16) / 4, col % 4);
    let lanes = (row_words[w] >> (2 * j)) & 0x0303_0303;
    (lanes >> (8 * b)) as u8
}

/// The `dot4I8Packed` the WGSL kernel calls, in Rust: the dot of four signed bytes.
pub fn dot4_i8_packed(a: u32, b: u32) -> i32 {
    (0..4)
        .map(|i| i32::from((a >> (8 * i)) as u8 as i8) * i32::from((b >> (8 * i)) as u8 as i8))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn every_code_comes_back_from_its_quad(
            rows in 1usize..5,
            blocks in 1usize..4,
            seed in any::<u64>(),
        ) {
            let cols = blocks * COL_MULTIPLE;
            let mut state = seed | 1;
            let values: Vec<i8> = (0..rows * cols)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state % 3) as i8 - 1
                })
                .collect();
            let words = pack_ternary(rows, cols, &values).unwrap();
            let wpr = cols / CODES_PER_WORD;
            for r in 0..rows {
                let row = &words[r * wpr..(r + 1) * wpr];
                for c in 0..cols {
                    prop_assert_eq!(i32::from(code_at(row, c)), i32::from(values[r * cols + c]) + 1);
                }
                // Quad k against activations 1, 2, 3, 4: the lanes are in column order.
                for k in 0..cols / 4 {
                    let lanes = (row[k / 4] >> (2 * (k % 4))) & 0x0303_0303;
                    let expected: i32 = (0..4)
                        .map(|b| (i32::from(values[r * cols + 4 * k + b]) + 1) * (b as i32 + 1))
                        .sum();
                    prop_assert_eq!(dot4_i8_packed(lanes, 0x0403_0201), expected);
                }
            }
        }
    }

    #[test]
    fn bad_shapes_and_values_are_refused() {
        assert!(matches!(
            pack_ternary(1, 32, &[0; 32]),
            Err(GpuError::Shape { .. })
        ));
        assert!(matches!(
            pack_ternary(1, 64, &[0; 63]),
            Err(GpuError::Shape { .. })
        ));
        assert!(matches!(
            pack_ternary(1, 64, &[2; 64]),
            Err(GpuError::Shape { .. })
        ));
    }
}
