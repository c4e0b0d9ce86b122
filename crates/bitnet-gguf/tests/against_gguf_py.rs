//! The reader against PyPI `gguf` (GGUFReader): every GGUF under testdata/oracle, SmolLM2 and
//! Gemma-3 are read here and compared with the JSON dump tools/gguf_dump.py made of them
//! (cache_dir()/gguf-dumps/, written by tools/refs/gguf-dumps.sh from
//! scripts/fetch-test-data.sh): version, alignment, data offset, every metadata key in order
//! with its gguf-py type list and value, every tensor's name, type id, shape, offset, size and
//! the sha256 of its bytes. The I2_S file, which gguf-py cannot build tensors for, is checked
//! against FORMATS.md (n/4 + 32 bytes per I2_S tensor) and against the F32 file's dump.

use std::path::{Path, PathBuf};

use bitnet_gguf::{GgmlType, GgufFile, MetadataValue};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn dump_for(gguf: &Path) -> Value {
    let stem = gguf.file_stem().unwrap().to_str().unwrap();
    let path = bitnet_testdata::cached(&format!("gguf-dumps/{stem}.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn oracle_ggufs() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "gguf") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&bitnet_testdata::oracle_dir(), &mut out);
    out.sort();
    assert!(
        out.len() >= 10,
        "expected the 10 oracle GGUFs, found {}",
        out.len()
    );
    out
}

/// gguf-py's `ReaderField.types`: the type, then for arrays the first element's types.
fn gguf_py_types(v: &MetadataValue) -> Vec<&'static str> {
    let mut out = vec![v.type_name()];
    if let Some(first) = v.as_array().and_then(|a| a.first()) {
        out.extend(gguf_py_types(first));
    }
    out
}

/// gguf-py's `ReaderField.contents()` flattens nested arrays into their leaves.
fn leaves<'a>(v: &'a MetadataValue, out: &mut Vec<&'a MetadataValue>) {
    match v.as_array() {
        Some(items) => items.iter().for_each(|i| leaves(i, out)),
        None => out.push(v),
    }
}

fn scalar_matches(v: &MetadataValue, j: &Value) -> bool {
    let float = |x: f64| match j {
        Value::String(s) => {
            (s == "nan" && x.is_nan())
                || (s == "inf" && x == f64::INFINITY)
                || (s == "-inf" && x == f64::NEG_INFINITY)
        }
        // Bit-exact, signed zero included.
        _ => j.as_f64().is_some_and(|y| y.to_bits() == x.to_bits()),
    };
    match v {
        MetadataValue::F32(x) => float(f64::from(*x)),
        MetadataValue::F64(x) => float(*x),
        MetadataValue::Bool(b) => j.as_bool() == Some(*b),
        MetadataValue::String(s) => j.as_str() == Some(s.as_str()),
        MetadataValue::Array(_) => false,
        int => match (int.as_i64(), int.as_u64()) {
            (Some(i), _) if j.is_i64() => j.as_i64() == Some(i),
            (_, Some(u)) => j.as_u64() == Some(u),
            _ => false,
        },
    }
}

fn value_matches(v: &MetadataValue, j: &Value) -> bool {
    if v.as_array().is_none() {
        return scalar_matches(v, j);
    }
    let mut flat = Vec::new();
    leaves(v, &mut flat);
    let Some(items) = j.as_array() else {
        return false;
    };
    items.len() == flat.len() && flat.iter().zip(items).all(|(v, j)| scalar_matches(v, j))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compares one file with its dump; returns the number of values checked.
fn compare_with_dump(f: &GgufFile, dump: &Value, check_data: bool) -> usize {
    let name = dump["file"].as_str().unwrap();
    assert_eq!(
        u64::from(f.version()),
        dump["version"].as_u64().unwrap(),
        "{name}: version"
    );
    assert_eq!(
        f.alignment(),
        dump["alignment"].as_u64().unwrap(),
        "{name}: alignment"
    );
    assert_eq!(
        f.data_offset(),
        dump["data_offset"].as_u64().unwrap(),
        "{name}: data offset"
    );
    let meta = dump["metadata"].as_array().unwrap();
    assert_eq!(f.metadata().len(), meta.len(), "{name}: number of keys");
    let mut checked = 0;
    for ((key, value), j) in f.metadata().iter().zip(meta) {
        assert_eq!(key, j["key"].as_str().unwrap(), "{name}: key order");
        let types: Vec<&str> = j["types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(gguf_py_types(value), types, "{name}: types of {key}");
        assert!(
            value_matches(value, &j["value"]),
            "{name}: value of {key}: ours {value:?}"
        );
        assert_eq!(f.get(key), Some(value));
        checked += 1;
    }
    let tensors = dump["tensors"].as_array().unwrap();
    assert_eq!(
        f.tensors().len(),
        tensors.len(),
        "{name}: number of tensors"
    );
    for (t, j) in f.tensors().iter().zip(tensors) {
        let tn = &t.name;
        assert_eq!(tn, j["name"].as_str().unwrap(), "{name}: tensor order");
        assert_eq!(
            u64::from(t.type_id),
            j["type_id"].as_u64().unwrap(),
            "{name}: {tn} type id"
        );
        let shape: Vec<u64> = j["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(t.dims, shape, "{name}: {tn} shape");
        assert_eq!(
            t.offset,
            j["offset"].as_u64().unwrap(),
            "{name}: {tn} offset"
        );
        assert_eq!(
            t.n_elements,
            j["n_elements"].as_u64().unwrap(),
            "{name}: {tn} n_elements"
        );
        if let Some(ty) = j["type"].as_str() {
            assert_eq!(t.ggml_type.name(), ty, "{name}: {tn} type");
        }
        if let Some(n) = j["n_bytes"].as_u64() {
            assert_eq!(t.n_bytes, n, "{name}: {tn} n_bytes");
        }
        assert_eq!(f.tensor_data(t).len() as u64, t.n_bytes);
        assert_eq!(f.tensor(tn), Some(t));
        if check_data {
            if let Some(sha) = j["sha256"].as_str() {
                assert_eq!(sha256_hex(f.tensor_data(t)), sha, "{name}: {tn} bytes");
            }
        }
        checked += 1;
    }
    checked
}

#[test]
fn oracle_files_match_gguf_py() {
    for path in oracle_ggufs() {
        let f = GgufFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let dump = dump_for(&path);
        let n = compare_with_dump(&f, &dump, true);
        eprintln!(
            "{}: {n} keys and tensors agree with gguf-py",
            path.display()
        );
        // Every file gguf-py could read fully is complete in the dump.
        if dump["tensor_error"].is_null() {
            assert!(f
                .tensors()
                .iter()
                .all(|t| t.ggml_type.dialect() == bitnet_gguf::Dialect::Mainline));
        }
    }
}

#[test]
fn i2s_file_matches_formats_md_and_the_f32_file() {
    let i2s_path = bitnet_testdata::oracle("tiny-b158/gguf/tiny-b158-i2_s.gguf");
    let f32_path = bitnet_testdata::oracle("tiny-b158/gguf/tiny-b158-f32.gguf");
    let f = GgufFile::open(&i2s_path).unwrap();
    let dump = dump_for(&i2s_path);
    assert!(
        dump["tensor_error"].as_str().unwrap().contains("36"),
        "gguf-py is expected to refuse type 36"
    );
    let f32_dump = dump_for(&f32_path);
    let f32_tensors = f32_dump["tensors"].as_array().unwrap();
    assert_eq!(f.get_u64("general.file_type"), Some(40));
    let mut n_i2s = 0;
    let sorted = {
        let mut v: Vec<_> = f.tensors().iter().collect();
        v.sort_by_key(|t| t.offset);
        v
    };
    for (k, t) in sorted.iter().enumerate() {
        let other = f32_tensors
            .iter()
            .find(|j| j["name"] == t.name.as_str())
            .expect("same tensor in the F32 file");
        let shape: Vec<u64> = other["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(t.dims, shape, "{}: same shape as in the F32 file", t.name);
        if t.type_id == 36 {
            n_i2s += 1;
            assert_eq!(t.ggml_type, GgmlType::I2S);
            assert_eq!(
                t.n_bytes,
                t.n_elements / 4 + 32,
                "{}: FORMATS.md n/4 + 32",
                t.name
            );
        } else {
            // Not re-quantized: byte-identical to the F32 file's tensor (gguf-py's hash).
            assert_eq!(
                sha256_hex(f.tensor_data(t)),
                other["sha256"].as_str().unwrap(),
                "{}",
                t.name
            );
        }
        // Packed back to back: the next tensor starts at this one's end rounded to 32.
        let next = sorted
            .get(k + 1)
            .map_or(f.as_bytes().len() as u64 - f.data_offset(), |n| n.offset);
        assert_eq!(
            next,
            (t.offset + t.n_bytes).next_multiple_of(32),
            "{}",
            t.name
        );
    }
    assert_eq!(n_i2s, 14, "14 ternary linears");
}

#[test]
fn real_models_match_gguf_py() {
    // What opening costs (header only, never the tensor data) is tests/open_cost.rs.
    for path in [bitnet_testdata::smollm2(), bitnet_testdata::gemma3()] {
        let f = GgufFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let n = compare_with_dump(&f, &dump_for(&path), true);
        eprintln!(
            "{}: {n} keys and tensors agree with gguf-py",
            path.display()
        );
    }
    let gemma = GgufFile::open(bitnet_testdata::gemma3()).unwrap();
    assert_eq!(gemma.architecture(), Some("gemma3"));
    assert_eq!(
        gemma.get_array("tokenizer.ggml.tokens").map(|a| a.len()),
        Some(262_144)
    );
}

#[test]
fn writer_reference_file_matches_its_gguf_py_dump() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let f = GgufFile::open(dir.join("writer-ref.gguf")).unwrap();
    let dump: Value =
        serde_json::from_slice(&std::fs::read(dir.join("writer-ref.json")).unwrap()).unwrap();
    let n = compare_with_dump(&f, &dump, true);
    assert_eq!(n, 29 + 7);
    // Accessors on values gguf-py flattens: the nested structure is kept here.
    let nested = f.get_array("a.nested").unwrap();
    assert_eq!(nested.len(), 3);
    assert_eq!(nested[2].as_array().unwrap()[2].as_i64(), Some(6));
    assert_eq!(f.get_u64("t.u64"), Some(u64::MAX));
    assert_eq!(f.get_u64("t.i8"), None);
    assert_eq!(f.get_f32("t.f64"), Some(std::f32::consts::PI));
}

#[test]
fn type_table_matches_gguf_py() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gguf-py-quant-sizes.json"),
    )
    .unwrap();
    let table: Value = serde_json::from_str(&text).unwrap();
    let table = table.as_object().unwrap();
    assert_eq!(table.len(), 34, "gguf-py 0.19 lists 34 mainline types");
    for (name, j) in table {
        let ty =
            GgmlType::from_name(name).unwrap_or_else(|| panic!("{name} missing from GgmlType"));
        assert_eq!(u64::from(ty.id()), j["id"].as_u64().unwrap(), "{name} id");
        assert_eq!(ty.dialect(), bitnet_gguf::Dialect::Mainline);
        let (block, bytes) = ty.block_geometry().unwrap();
        let expected = (
            j["block"].as_u64().unwrap() as usize,
            j["bytes"].as_u64().unwrap() as usize,
        );
        if ty == GgmlType::Q8_1 {
            // gguf-py keeps Q8_1's old f32 (d, s) size, 40; ggml's block_q8_1 is two f16 + 32
            // int8 = 36 bytes. No GGUF stores Q8_1 (it is an activation type).
            assert_eq!(expected, (32, 40));
            assert_eq!((block, bytes), (32, 36));
        } else {
            assert_eq!((block, bytes), expected, "{name} geometry");
        }
    }
}
