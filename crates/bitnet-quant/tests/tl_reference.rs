//! TL1 / TL2 against bitnet.cpp's own packing code, run on seeded random ternary matrices of every
//! shape it supports.
//!
//! How `tests/data/tl/` was made: the generator is `tools/gen_tl_refs.py`, run from the repository
//! root as `python3 tools/gen_tl_refs.py --bitnet-cpp <BitNet checkout> --gguf-py <fork>/gguf-py`
//! (`--out` defaults to `crates/bitnet-quant/tests/data/tl`); it runs bitnet.cpp's code, unchanged,
//! from github.com/microsoft/BitNet at 16da220ae2b510caff437d403288882687f44ae5:
//! 1. For each format and model, `utils/codegen_tl{1,2}.py` ran with the `--BM/--BK/--bm`
//!    arguments that `setup_env.py` passes (parsed out of setup_env.py), writing
//!    `include/kernel_config.ini` (recorded per shape as `kernel_config` in manifest.json).
//! 2. For each shape `M × K` (M = ne1, K = ne0), the ternary matrix `t` is splitmix64 in counter
//!    mode from `seed` (element `i`, row-major: `mix(seed + (i+1)·0x9E3779B97F4A7C15) % 3 − 1`);
//!    `W = t · scale` (f32, `scale_bits`) went through `transform_to_tl1` / `transform_to_tl2`
//!    and their helpers, extracted verbatim with `ast` from `utils/convert-hf-to-gguf-bitnet.py`
//!    and executed as is, in the directory holding that `kernel_config.ini`.
//! 3. The fork's gguf-py (github.com/Eddie-Wang1120/llama.cpp, branch merge-dev, 406a5036)
//!    `GGUFWriter` wrote `name` (raw_dtype TL1/TL2, raw_shape (M, K)) and `name_scale` (F32) as
//!    the converter does; the tensor's bytes were cut from the file at its offset, with the length
//!    of the fork's `ggml_nbytes` (which bitnet-gguf's size rule reproduces).
//!
//! manifest.json holds, per shape, the sha256 of `t` (as i8 bytes) and of those tensor bytes;
//! the bytes themselves are committed for the two smallest tensors (1536 × 1536, TL1 and TL2).

use std::path::PathBuf;

use bitnet_quant::{
    decode_ternary, dequantize, dequantize_tensor, encode_ternary, tensor_bytes,
    tensor_bytes_for_shape, tl_tiles, GgmlType, QuantError, TernaryScales, TernaryTensor,
    TL1_TILES, TL2_TILES,
};
use sha2::{Digest, Sha256};

struct Case {
    ty: GgmlType,
    ne0: usize,
    ne1: usize,
    seed: u64,
    scale: f32,
    tensor_bytes: usize,
    values_sha256: String,
    tensor_sha256: String,
    /// (BM, BK, bm) as bitnet.cpp's codegen wrote them in kernel_config.ini.
    kernel_config: (usize, usize, usize),
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/tl")
}

fn config_value(ini: &str, key: &str) -> usize {
    ini.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {ini}"))
}

fn cases() -> Vec<Case> {
    let path = data_dir().join("manifest.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("missing fixture {}: {e}", path.display()));
    let entries: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    entries
        .iter()
        .map(|e| {
            let ini = e["kernel_config"].as_str().unwrap();
            Case {
                ty: GgmlType::from_name(e["format"].as_str().unwrap()).unwrap(),
                ne0: e["ne0"].as_u64().unwrap() as usize,
                ne1: e["ne1"].as_u64().unwrap() as usize,
                seed: e["seed"].as_u64().unwrap(),
                scale: f32::from_bits(
                    u32::from_str_radix(e["scale_bits"].as_str().unwrap(), 16).unwrap(),
                ),
                tensor_bytes: e["tensor_bytes"].as_u64().unwrap() as usize,
                values_sha256: e["values_sha256"].as_str().unwrap().to_string(),
                tensor_sha256: e["tensor_sha256"].as_str().unwrap().to_string(),
                kernel_config: (
                    config_value(ini, "bm"),
                    config_value(ini, "bk"),
                    config_value(ini, "bmm"),
                ),
            }
        })
        .collect()
}

/// The seeded ternary matrix the reference script generated (see the module comment).
fn ternary_values(seed: u64, n: usize) -> Vec<i8> {
    (1..=n as u64)
        .map(|i| {
            let mut z = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z % 3) as i8 - 1
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn reference_tensor(case: &Case) -> TernaryTensor {
    let values = ternary_values(case.seed, case.ne0 * case.ne1);
    let as_bytes: Vec<u8> = values.iter().map(|&v| v as u8).collect();
    assert_eq!(
        sha256_hex(&as_bytes),
        case.values_sha256,
        "{} [{}, {}]: the seeded matrix differs from the one the reference script packed",
        case.ty,
        case.ne0,
        case.ne1
    );
    TernaryTensor::new(
        case.ne1,
        case.ne0,
        values,
        TernaryScales::PerTensor(case.scale),
    )
    .unwrap()
}

#[test]
fn tile_table_is_what_bitnet_cpp_codegen_wrote() {
    let cases = cases();
    assert_eq!(cases.len(), TL1_TILES.len() + TL2_TILES.len());
    for case in &cases {
        let tiles = tl_tiles(case.ty, case.ne1, case.ne0).unwrap();
        assert_eq!(
            (tiles.tile_rows, tiles.tile_cols, tiles.block_rows),
            case.kernel_config,
            "{} [{}, {}]",
            case.ty,
            case.ne0,
            case.ne1
        );
    }
}

#[test]
fn sizes_match_the_bytes_bitnet_cpp_files_hold() {
    for case in cases() {
        let dims = [case.ne0 as u64, case.ne1 as u64];
        assert_eq!(
            tensor_bytes_for_shape(case.ty, &dims).unwrap(),
            case.tensor_bytes,
            "{} {dims:?}",
            case.ty
        );
    }
}

/// Every shape and format: our packing of the seeded matrix is byte-identical (sha256) to the
/// bytes bitnet.cpp's converter and writer produced, and decoding those bytes gives back the
/// exact values and scale.
#[test]
fn every_shape_is_byte_identical_to_bitnet_cpp_and_decodes_exactly() {
    for case in cases() {
        let tensor = reference_tensor(&case);
        let bytes = encode_ternary(&tensor, case.ty).unwrap();
        assert_eq!(bytes.len(), case.tensor_bytes);
        assert_eq!(
            sha256_hex(&bytes),
            case.tensor_sha256,
            "{} [{}, {}] packs differently from bitnet.cpp",
            case.ty,
            case.ne0,
            case.ne1
        );
        let decoded = decode_ternary(case.ty, &bytes, &[case.ne0, case.ne1]).unwrap();
        assert!(
            decoded == tensor,
            "{} [{}, {}]",
            case.ty,
            case.ne0,
            case.ne1
        );
    }
}

/// The committed bitnet.cpp bytes, decoded directly (no encoder involved).
#[test]
fn committed_bitnet_cpp_tensors_decode_to_the_seeded_matrix() {
    let cases = cases();
    for (ty, file) in [
        (GgmlType::TL1, "tl1_1536x1536.bin"),
        (GgmlType::TL2, "tl2_1536x1536.bin"),
    ] {
        let path = data_dir().join(file);
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("missing fixture {}: {e}", path.display()));
        let case = cases
            .iter()
            .find(|c| c.ty == ty && c.ne0 == 1536 && c.ne1 == 1536)
            .unwrap();
        assert_eq!(sha256_hex(&bytes), case.tensor_sha256, "{file}");
        let expected = reference_tensor(case);
        let decoded = decode_ternary(ty, &bytes, &[1536u64, 1536]).unwrap();
        assert_eq!(decoded.scales, TernaryScales::PerTensor(case.scale));
        let wrong = decoded
            .values
            .iter()
            .zip(&expected.values)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(wrong, 0, "{file}: {wrong} of {} values differ", 1536 * 1536);

        let mut out = vec![0f32; 1536 * 1536];
        dequantize_tensor(ty, &bytes, &[1536, 1536], &mut out).unwrap();
        assert_eq!(out, expected.to_f32());
    }
}

#[test]
fn other_shapes_and_bad_bytes_are_clear_errors() {
    let small =
        TernaryTensor::new(256, 256, vec![0; 256 * 256], TernaryScales::PerTensor(1.0)).unwrap();
    for ty in [GgmlType::TL1, GgmlType::TL2] {
        // 2B-4T's attention matrix: bitnet.cpp has no TL tiles for it
        let err = decode_ternary(ty, &[0u8; 64], &[2560u64, 2560]).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, QuantError::UnsupportedLayout { ref shape, .. } if shape == &[2560, 2560])
        );
        assert!(
            text.contains("[2560, 2560]") && text.contains("[14336, 4096]"),
            "{text}"
        );
        assert!(matches!(
            encode_ternary(&small, ty),
            Err(QuantError::UnsupportedLayout { .. })
        ));
        assert!(tensor_bytes_for_shape(ty, &[2560, 2560]).is_err());
        // without a shape: refused, pointing at the shaped entry points
        let mut out = vec![0f32; 1536 * 1536];
        let err = dequantize(ty, &[0u8; 64], 1536 * 1536, &mut out).unwrap_err();
        assert!(err.to_string().contains("dequantize_tensor"), "{err}");
        assert!(tensor_bytes(ty, 1536 * 1536).is_err());

        // a known element count spread over three dimensions is no TL matrix
        let n = tensor_bytes_for_shape(ty, &[1536, 1536]).unwrap();
        assert!(matches!(
            decode_ternary(ty, &vec![0u8; n], &[1536u64, 768, 2]),
            Err(QuantError::BadShape { .. })
        ));
        // right shape, wrong length
        assert!(matches!(
            decode_ternary(ty, &vec![0u8; n - 1], &[1536u64, 1536]),
            Err(QuantError::ByteLength { .. })
        ));
        // a per-block scale cannot be stored
        let blocks = TernaryTensor::new(
            1536,
            1536,
            vec![0; 1536 * 1536],
            TernaryScales::PerBlock {
                block_len: 256,
                scales: vec![1.0; 1536 * 6],
            },
        )
        .unwrap();
        assert!(matches!(
            encode_ternary(&blocks, ty),
            Err(QuantError::InvalidTernary(_))
        ));
    }
    // nibble 15 is no TL1 pair index (0..=8) and no TL2 magnitude (0..=13)
    for ty in [GgmlType::TL1, GgmlType::TL2] {
        let mut bytes = vec![0x44u8; tensor_bytes_for_shape(ty, &[1536, 1536]).unwrap()];
        bytes[0] = 0xF4;
        let err = decode_ternary(ty, &bytes, &[1536u64, 1536]).unwrap_err();
        assert!(
            matches!(err, QuantError::NotTernary { code: 15, .. }),
            "{ty}: {err}"
        );
    }
}
