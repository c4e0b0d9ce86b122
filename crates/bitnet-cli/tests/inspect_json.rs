//! `bitnet inspect` against PyPI `gguf`: for every GGUF under testdata/oracle, SmolLM2 and
//! Gemma-3, `bitnet inspect --json` is compared with tools/gguf_dump.py's dump
//! (cache_dir()/gguf-dumps/, from tools/refs/gguf-dumps.sh): every metadata key, type and value
//! (gguf-py flattens nested arrays; so does the comparison), every tensor's name, type, shape,
//! offset and size. The text summary is checked for the facts the dump gives (architecture,
//! vocabulary size, chat template, tensors per type).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn inspect(file: &Path, flags: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_bitnet"))
        .arg("inspect")
        .arg(file)
        .args(flags)
        .output()
        .expect("run bitnet");
    assert!(
        out.status.success(),
        "bitnet inspect {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn dump_for(gguf: &Path) -> Value {
    let stem = gguf.file_stem().unwrap().to_str().unwrap();
    let path = bitnet_testdata::cached(&format!("gguf-dumps/{stem}.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn all_files() -> Vec<PathBuf> {
    let oracle = bitnet_testdata::oracle_dir();
    let mut out = Vec::new();
    for sub in ["tiny-b158/gguf", "tiny-bitnet-silu/gguf", "tokenizer"] {
        for e in std::fs::read_dir(oracle.join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "gguf") {
                out.push(p);
            }
        }
    }
    out.sort();
    assert_eq!(out.len(), 10);
    out.push(bitnet_testdata::smollm2());
    out.push(bitnet_testdata::gemma3());
    out
}

fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v.as_array() {
        Some(items) => items.iter().for_each(|i| flatten(i, out)),
        None => out.push(v),
    }
}

/// Same JSON scalar: integers exactly, floats bit-exactly as f64, strings, bools.
fn same_scalar(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            x.as_f64().map(f64::to_bits) == y.as_f64().map(f64::to_bits)
        }
        _ => a == b,
    }
}

#[test]
fn inspect_json_matches_gguf_py_for_every_file() {
    for path in all_files() {
        let ours: Value = serde_json::from_str(&inspect(&path, &["--json"])).unwrap();
        let dump = dump_for(&path);
        let name = path.display().to_string();
        for key in ["version", "alignment", "data_offset", "file_size"] {
            assert_eq!(ours[key], dump[key], "{name}: {key}");
        }
        let (ours_md, dump_md) = (
            ours["metadata"].as_array().unwrap(),
            dump["metadata"].as_array().unwrap(),
        );
        assert_eq!(ours_md.len(), dump_md.len(), "{name}: number of keys");
        for (o, d) in ours_md.iter().zip(dump_md) {
            let key = d["key"].as_str().unwrap();
            assert_eq!(o["key"], d["key"], "{name}: key order");
            let types = d["types"].as_array().unwrap();
            assert_eq!(o["type"], types[0], "{name}: type of {key}");
            if types.len() > 1 {
                assert_eq!(o["element_type"], types[1], "{name}: element type of {key}");
            }
            let (mut a, mut b) = (Vec::new(), Vec::new());
            flatten(&o["value"], &mut a);
            flatten(&d["value"], &mut b);
            if !d["value"].is_array() {
                assert!(!o["value"].is_array());
            }
            assert_eq!(a.len(), b.len(), "{name}: length of {key}");
            let bad = a.iter().zip(&b).position(|(x, y)| !same_scalar(x, y));
            assert_eq!(bad, None, "{name}: first differing element of {key}");
        }
        let (ours_t, dump_t) = (
            ours["tensors"].as_array().unwrap(),
            dump["tensors"].as_array().unwrap(),
        );
        assert_eq!(ours_t.len(), dump_t.len(), "{name}: number of tensors");
        for (o, d) in ours_t.iter().zip(dump_t) {
            let tn = d["name"].as_str().unwrap();
            for key in ["name", "type_id", "shape", "offset", "n_elements"] {
                assert_eq!(o[key], d[key], "{name}: {tn} {key}");
            }
            if !d["type"].is_null() {
                assert_eq!(o["type"], d["type"], "{name}: {tn} type");
            }
            if !d["n_bytes"].is_null() {
                assert_eq!(o["n_bytes"], d["n_bytes"], "{name}: {tn} n_bytes");
            } else {
                // gguf-py cannot size bitnet.cpp's I2_S (id 36): FORMATS.md says n/4 + 32.
                assert_eq!(
                    d["type_id"], 36,
                    "{name}: {tn}: only I2_S is unknown to gguf-py"
                );
                assert_eq!(o["type"], "I2_S");
                let n = d["n_elements"].as_u64().unwrap();
                assert_eq!(o["n_bytes"].as_u64().unwrap(), n / 4 + 32, "{name}: {tn}");
            }
        }
        eprintln!(
            "{name}: {} keys, {} tensors agree with gguf-py",
            dump_md.len(),
            dump_t.len()
        );
    }
}

#[test]
fn inspect_summary_states_what_gguf_py_reads() {
    for path in [
        bitnet_testdata::smollm2(),
        bitnet_testdata::gemma3(),
        bitnet_testdata::oracle("tiny-b158/gguf/tiny-b158-i2_s.gguf"),
    ] {
        let text = inspect(&path, &["--tensors"]);
        let dump = dump_for(&path);
        let md = dump["metadata"].as_array().unwrap();
        let get = |k: &str| md.iter().find(|e| e["key"] == k).map(|e| &e["value"]);
        let arch = get("general.architecture").unwrap().as_str().unwrap();
        assert!(text.contains(&format!("architecture:  {arch}\n")), "{text}");
        let vocab = get("tokenizer.ggml.tokens")
            .unwrap()
            .as_array()
            .unwrap()
            .len();
        assert!(text.contains(&format!("vocab size    {vocab}\n")), "{text}");
        let template = if get("tokenizer.chat_template").is_some() {
            "chat template present"
        } else {
            "chat template absent"
        };
        assert!(text.contains(template), "{text}");
        let mut per_type: BTreeMap<String, usize> = BTreeMap::new();
        for t in dump["tensors"].as_array().unwrap() {
            let ty = t["type"]
                .as_str()
                .unwrap_or(if t["type_id"] == 36 { "I2_S" } else { "?" });
            *per_type.entry(ty.to_owned()).or_default() += 1;
        }
        for (ty, count) in &per_type {
            assert!(
                text.contains(&format!("  {ty:<14} {count:>5} tensors")),
                "{ty} x {count} missing:\n{text}"
            );
        }
        for t in dump["tensors"].as_array().unwrap() {
            assert!(
                text.contains(&format!("\n{} ", t["name"].as_str().unwrap())),
                "tensor table"
            );
        }
        let ft = get("general.file_type").and_then(Value::as_u64).unwrap();
        assert!(text.contains(&format!("file type:     {ft} (")), "{text}");
    }
}

#[test]
fn inspect_refuses_a_malformed_file_with_its_reason() {
    let bad = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../bitnet-gguf/tests/malformed/overlapping_tensors.gguf");
    let out = Command::new(env!("CARGO_BIN_EXE_bitnet"))
        .arg("inspect")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("overlaps tensor"), "{err}");
}
