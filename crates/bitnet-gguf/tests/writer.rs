//! The writer against PyPI `gguf`'s GGUFWriter: the same content gives byte-identical files
//! (tests/data/writer-ref.gguf, made by tools/make_gguf_writer_ref.py), and every oracle GGUF
//! (written by gguf-py, llama.cpp's converter, bitnet.cpp's llama-quantize) and the real models
//! are rewritten byte for byte from what the reader parsed.

use std::path::Path;

use bitnet_gguf::{GgmlType, GgufFile, GgufWriter, MetadataValue as M};

/// byte i = (31 i + 17 seed + 5) mod 256, as in tools/make_gguf_writer_ref.py.
fn pattern(n: usize, seed: usize) -> Vec<u8> {
    (0..n)
        .map(|i| ((31 * i + 17 * seed + 5) & 0xFF) as u8)
        .collect()
}

fn strings(items: &[&str]) -> M {
    M::Array(items.iter().map(|s| M::String((*s).into())).collect())
}

#[test]
fn writer_output_is_byte_identical_to_gguf_py() {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", M::String("writer-test".into()))
        .add_metadata("general.alignment", M::U32(64))
        .add_metadata("t.u8", M::U8(255))
        .add_metadata("t.i8", M::I8(-128))
        .add_metadata("t.u16", M::U16(65535))
        .add_metadata("t.i16", M::I16(-32768))
        .add_metadata("t.u32", M::U32(4_000_000_000))
        .add_metadata("t.i32", M::I32(-2_000_000_000))
        .add_metadata("t.f32", M::F32(0.1))
        .add_metadata("t.f32_neg_zero", M::F32(-0.0))
        .add_metadata("t.f32_inf", M::F32(f32::INFINITY))
        .add_metadata("t.bool_true", M::Bool(true))
        .add_metadata("t.bool_false", M::Bool(false))
        .add_metadata(
            "t.string",
            M::String("h\u{e9}llo \u{2713} \u{1F600}".into()),
        )
        .add_metadata("t.string_empty", M::String(String::new()))
        .add_metadata("t.u64", M::U64(u64::MAX))
        .add_metadata("t.i64", M::I64(i64::MIN))
        .add_metadata("t.f64", M::F64(std::f64::consts::PI))
        .add_metadata("a.u8", M::Array(vec![M::U8(0), M::U8(1), M::U8(255)]))
        .add_metadata("a.i16", M::Array(vec![M::I16(-1), M::I16(2), M::I16(-3)]))
        .add_metadata("a.u32", M::Array(vec![M::U32(7)]))
        .add_metadata("a.i32", M::Array(vec![M::I32(-5), M::I32(6)]))
        .add_metadata(
            "a.f32",
            M::Array(vec![M::F32(0.5), M::F32(-1.25), M::F32(3.0e38)]),
        )
        .add_metadata(
            "a.bool",
            M::Array(vec![M::Bool(true), M::Bool(false), M::Bool(true)]),
        )
        .add_metadata("a.u64", M::Array(vec![M::U64(1 << 40), M::U64(3)]))
        .add_metadata("a.i64", M::Array(vec![M::I64(-(1 << 40))]))
        .add_metadata("a.f64", M::Array(vec![M::F64(1.0e-300), M::F64(-2.5)]))
        .add_metadata(
            "a.string",
            strings(&["<s>", "", "\u{2581}the", "\u{e9}\u{e8}"]),
        )
        .add_metadata(
            "a.nested",
            M::Array(vec![
                M::Array(vec![M::I32(1), M::I32(2)]),
                M::Array(vec![M::I32(3)]),
                M::Array(vec![M::I32(4), M::I32(5), M::I32(6)]),
            ]),
        );
    let tensors: [(&str, &[u64], GgmlType, usize); 7] = [
        ("f32.weight", &[3, 2], GgmlType::F32, 24),
        ("f16.weight", &[5], GgmlType::F16, 10),
        ("q4k.weight", &[256, 2], GgmlType::Q4K, 288),
        ("q8_0.weight", &[64], GgmlType::Q8_0, 68),
        ("tq2_0.weight", &[256], GgmlType::TQ2_0, 66),
        ("i8.weight", &[7, 1, 2], GgmlType::I8, 14),
        ("bf16.weight", &[4, 3], GgmlType::BF16, 24),
    ];
    for (seed, (name, dims, ty, n)) in tensors.into_iter().enumerate() {
        w.add_tensor(name, dims, ty, pattern(n, seed));
    }
    let ours = w.to_bytes().unwrap();
    let reference =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/writer-ref.gguf"))
            .unwrap();
    assert_eq!(ours.len(), reference.len());
    let first_diff = ours.iter().zip(&reference).position(|(a, b)| a != b);
    assert_eq!(first_diff, None, "first differing byte");
}

fn assert_rewrites_identically(path: &Path) {
    let original = std::fs::read(path).unwrap();
    let f = GgufFile::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rewritten = GgufWriter::from_file(&f).to_bytes().unwrap();
    if f.tensors().is_empty() && rewritten.len() > original.len() {
        // llama.cpp's vocab-only files end right after the metadata; like gguf-py, the writer
        // pads the (empty) data section to the alignment. Only zero padding may differ.
        let extra = rewritten.split_off(original.len());
        assert!(extra.len() < f.alignment() as usize && extra.iter().all(|&b| b == 0));
    }
    assert_eq!(
        rewritten.len(),
        original.len(),
        "{}: length",
        path.display()
    );
    let first_diff = rewritten.iter().zip(&original).position(|(a, b)| a != b);
    assert_eq!(first_diff, None, "{}: first differing byte", path.display());
    eprintln!(
        "{}: {} bytes rewritten identically",
        path.display(),
        original.len()
    );
}

#[test]
fn oracle_files_round_trip_byte_for_byte() {
    let oracle = bitnet_testdata::oracle_dir();
    let mut n = 0;
    for sub in ["tiny-b158/gguf", "tiny-bitnet-silu/gguf", "tokenizer"] {
        for e in std::fs::read_dir(oracle.join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "gguf") {
                assert_rewrites_identically(&p);
                n += 1;
            }
        }
    }
    assert_eq!(n, 10);
}

#[test]
fn real_models_round_trip_byte_for_byte() {
    assert_rewrites_identically(&bitnet_testdata::smollm2());
    assert_rewrites_identically(&bitnet_testdata::gemma3());
}

#[test]
fn bitnet_types_written_are_read_back_as_written() {
    // I2_S, its block-scaled flavour and TL2 share ids with other types: the reader must pick
    // them again from the architecture and the exact sizes the writer laid out.
    let (i2s, bn32, tl2) = (
        GgmlType::I2S.tensor_bytes(128 * 8, &[128, 8]).unwrap(),
        GgmlType::BitNet32F16
            .tensor_bytes(128 * 8, &[128, 8])
            .unwrap(),
        GgmlType::TL2.tensor_bytes(512 * 4, &[512, 4]).unwrap(),
    );
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", M::String("bitnet-b1.58".into()))
        .add_tensor("a", &[128, 8], GgmlType::I2S, vec![1u8; i2s as usize])
        .add_tensor(
            "b",
            &[128, 8],
            GgmlType::BitNet32F16,
            vec![2u8; bn32 as usize],
        )
        .add_tensor("c", &[512, 4], GgmlType::TL2, vec![3u8; tl2 as usize])
        .add_tensor("d", &[4], GgmlType::F32, vec![4u8; 16]);
    let f = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
    let types: Vec<_> = f
        .tensors()
        .iter()
        .map(|t| (t.ggml_type, t.type_id))
        .collect();
    assert_eq!(
        types,
        [
            (GgmlType::I2S, 36),
            (GgmlType::BitNet32F16, 36),
            (GgmlType::TL2, 39),
            (GgmlType::F32, 0)
        ]
    );
    for (t, byte) in f.tensors().iter().zip(1u8..) {
        assert!(f.tensor_data(t).iter().all(|&b| b == byte));
    }
}

#[test]
fn writer_refuses_what_gguf_cannot_hold() {
    let kind = |w: &GgufWriter| w.to_bytes().unwrap_err().kind();
    let mut w = GgufWriter::new();
    w.add_metadata("k", M::U8(1)).add_metadata("k", M::U8(2));
    assert_eq!(kind(&w), "InvalidMetadata");
    let mut w = GgufWriter::new();
    w.add_metadata("k", M::Array(vec![M::U8(1), M::I8(2)]));
    assert_eq!(kind(&w), "InvalidMetadata");
    let mut w = GgufWriter::new();
    w.add_metadata("general.alignment", M::U32(24));
    assert_eq!(kind(&w), "InvalidMetadata");
    let mut w = GgufWriter::new();
    w.add_tensor("t", &[4], GgmlType::F32, vec![0u8; 15]);
    assert_eq!(kind(&w), "InvalidTensor");
    let mut w = GgufWriter::new();
    w.add_tensor("t", &[4], GgmlType::F32, vec![0u8; 16])
        .add_tensor("t", &[4], GgmlType::F32, vec![0u8; 16]);
    assert_eq!(kind(&w), "InvalidTensor");
    let mut w = GgufWriter::new();
    w.add_tensor("t", &[100], GgmlType::Q4_0, vec![0u8; 72]);
    assert_eq!(kind(&w), "InvalidTensor");
}

#[test]
fn version_2_files_read_like_version_3() {
    // GGUF v2 differs from v3 only in the version field (v3 added big-endian files); the
    // gguf-py reference file with its version set to 2 reads to the same content.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/writer-ref.gguf");
    let v3 = std::fs::read(&path).unwrap();
    let mut v2 = v3.clone();
    v2[4..8].copy_from_slice(&2u32.to_le_bytes());
    let (a, b) = (
        GgufFile::from_bytes(v3).unwrap(),
        GgufFile::from_bytes(v2).unwrap(),
    );
    assert_eq!((a.version(), b.version()), (3, 2));
    assert_eq!(a.metadata(), b.metadata());
    assert_eq!(a.tensors(), b.tensors());
}
