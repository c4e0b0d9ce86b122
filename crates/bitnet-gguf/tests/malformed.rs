//! The malformed corpus (tests/malformed/, made by tools/make_malformed_gguf.py from the GGUF
//! spec byte by byte): every file is refused with the variant its MANIFEST.tsv names, through
//! both `from_bytes` and `open`, without a panic. Also the type-resolution cases of
//! tests/data/resolve/ (ids 36 and 39 decided by architecture and exact size).

use std::path::{Path, PathBuf};

use bitnet_gguf::{GgmlType, GgufFile};

fn manifest(dir: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(dir.join("MANIFEST.tsv")).expect("MANIFEST.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

fn crate_dir(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn every_malformed_file_gets_its_typed_error() {
    let dir = crate_dir("tests/malformed");
    let cases = manifest(&dir);
    assert!(cases.len() >= 30, "corpus has only {} files", cases.len());
    let on_disk = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "gguf")
        })
        .count();
    assert_eq!(
        on_disk,
        cases.len(),
        "every .gguf in the corpus is in the manifest"
    );
    let mut failures = Vec::new();
    for case in &cases {
        let (file, expected) = (&case[0], &case[1]);
        let path = dir.join(file);
        let bytes = std::fs::read(&path).unwrap();
        for (how, result) in [
            ("from_bytes", GgufFile::from_bytes(bytes)),
            ("open", GgufFile::open(&path)),
        ] {
            match result {
                Ok(_) => failures.push(format!("{file} ({how}): accepted, expected {expected}")),
                Err(e) if e.kind() != expected => failures.push(format!(
                    "{file} ({how}): got {} ({e}), expected {expected}",
                    e.kind()
                )),
                Err(e) => {
                    // Every message says where: a byte offset.
                    let msg = e.to_string();
                    if !msg.contains("offset") {
                        failures.push(format!("{file}: message names no offset: {msg}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn colliding_type_ids_resolve_by_architecture_and_exact_size() {
    let dir = crate_dir("tests/data/resolve");
    let cases = manifest(&dir);
    assert_eq!(cases.len(), 8);
    for case in &cases {
        let (file, tensor, expected) = (&case[0], &case[1], &case[2]);
        let f = GgufFile::open(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let t = f.tensor(tensor).expect("tensor");
        let expected = GgmlType::from_name(expected).expect("known type name");
        assert_eq!(t.ggml_type, expected, "{file}: {}", case[3]);
        assert_eq!(t.type_id, expected.id());
        assert_eq!(f.tensor_data(t).len() as u64, t.n_bytes);
    }
}

#[test]
fn truncation_at_every_byte_is_an_error_not_a_panic() {
    // The writer reference file, cut at every length: each prefix shorter than the file is
    // refused (the last tensor's data is needed in full).
    let bytes = std::fs::read(crate_dir("tests/data/writer-ref.gguf")).unwrap();
    let last = {
        let f = GgufFile::from_bytes(bytes.clone()).unwrap();
        let t = f.tensors().last().unwrap().clone();
        (f.data_offset() + t.offset + t.n_bytes) as usize
    };
    for len in 0..last {
        let r = GgufFile::from_bytes(bytes[..len].to_vec());
        assert!(r.is_err(), "prefix of {len} bytes accepted");
    }
    for len in last..=bytes.len() {
        GgufFile::from_bytes(bytes[..len].to_vec())
            .unwrap_or_else(|e| panic!("prefix of {len} bytes (all data present): {e}"));
    }
}
