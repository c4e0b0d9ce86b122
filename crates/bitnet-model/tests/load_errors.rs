//! Loading refuses what it cannot run, with errors that name the problem: an unknown
//! architecture (listing the supported ones), a missing tensor, a mis-shaped tensor, a tensor
//! the graph would ignore. The files are variants of tiny-b158-f32.gguf built in memory.

use bitnet_gguf::{GgufFile, GgufWriter, MetadataValue};
use bitnet_model::{Model, ModelError, ARCHITECTURES};

fn base() -> GgufFile {
    GgufFile::open(bitnet_testdata::oracle("tiny-b158/gguf/tiny-b158-f32.gguf")).unwrap()
}

/// Rebuilds `file` with metadata values replaced and tensors edited by `edit_tensor`
/// (`None` drops the tensor; `Some((name, dims, bytes source name))` renames/reshapes).
fn variant(
    file: &GgufFile,
    meta: &[(&str, MetadataValue)],
    edit_tensor: impl Fn(&str) -> Option<(String, Vec<u64>, String)>,
) -> GgufFile {
    let mut w = GgufWriter::new();
    for (k, v) in file.metadata() {
        let v = meta
            .iter()
            .find(|(mk, _)| mk == k)
            .map(|(_, mv)| mv.clone())
            .unwrap_or_else(|| v.clone());
        w.add_metadata(k.clone(), v);
    }
    for t in file.tensors() {
        if let Some((name, dims, source)) = edit_tensor(&t.name) {
            let src = file.tensor(&source).unwrap();
            w.add_tensor(name, &dims, src.ggml_type, file.tensor_data(src));
        }
    }
    GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap()
}

fn keep(name: &str, file: &GgufFile) -> Option<(String, Vec<u64>, String)> {
    let t = file.tensor(name).unwrap();
    Some((name.to_string(), t.dims.clone(), name.to_string()))
}

#[test]
fn the_unmodified_file_loads() {
    let file = base();
    let same = variant(&file, &[], |n| keep(n, &file));
    Model::load(&same).unwrap();
}

#[test]
fn unknown_architecture_lists_the_supported_ones() {
    let file = base();
    let bad = variant(
        &file,
        &[(
            "general.architecture",
            MetadataValue::String("mamba".into()),
        )],
        |n| keep(n, &file),
    );
    let err = Model::load(&bad).unwrap_err();
    assert!(
        matches!(err, ModelError::UnsupportedArchitecture { .. }),
        "{err}"
    );
    let msg = err.to_string();
    for a in ARCHITECTURES {
        assert!(msg.contains(a.name), "{msg}");
    }
}

#[test]
fn missing_tensor_is_named() {
    let file = base();
    let bad = variant(&file, &[], |n| {
        if n == "blk.1.ffn_sub_norm.weight" {
            None
        } else {
            keep(n, &file)
        }
    });
    let err = Model::load(&bad).unwrap_err();
    assert!(
        matches!(&err, ModelError::MissingTensor(n) if n == "blk.1.ffn_sub_norm.weight"),
        "{err}"
    );
}

#[test]
fn mis_shaped_tensor_is_named_with_both_shapes() {
    let file = base();
    // attn_q given attn_k's [256, 128] data.
    let bad = variant(&file, &[], |n| {
        if n == "blk.0.attn_q.weight" {
            Some((
                n.to_string(),
                vec![256, 128],
                "blk.0.attn_k.weight".to_string(),
            ))
        } else {
            keep(n, &file)
        }
    });
    let err = Model::load(&bad).unwrap_err();
    match &err {
        ModelError::TensorShape {
            name,
            found,
            expected,
        } => {
            assert_eq!(name, "blk.0.attn_q.weight");
            assert_eq!(found, &vec![256, 128]);
            assert_eq!(expected, &vec![256, 256]);
        }
        other => panic!("unexpected error {other}"),
    }
}

#[test]
fn tensor_outside_the_graph_is_refused() {
    let file = base();
    let mut w = GgufWriter::from_file(&file);
    let norm = file.tensor("output_norm.weight").unwrap();
    w.add_tensor(
        "blk.0.attn_q.bias",
        &norm.dims,
        norm.ggml_type,
        file.tensor_data(norm),
    );
    let bad = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
    let err = Model::load(&bad).unwrap_err().to_string();
    assert!(err.contains("blk.0.attn_q.bias"), "{err}");
}

#[test]
fn token_outside_the_vocabulary_is_an_error() {
    let model = Model::open(bitnet_testdata::oracle("tiny-b158/gguf/tiny-b158-f32.gguf")).unwrap();
    let pool = bitnet_kernels::ThreadPool::new(1);
    let mut cache = model.new_cache(4);
    let err = model.forward(&[1, 512], &mut cache, 0, &pool).unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::TokenOutOfRange {
                id: 512,
                vocab: 512
            }
        ),
        "{err}"
    );
    let err = model.forward(&[1; 5], &mut cache, 0, &pool).unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::ContextFull {
                needed: 5,
                capacity: 4
            }
        ),
        "{err}"
    );
}

#[test]
fn inconsistent_head_counts_are_named() {
    let file = base();
    // 4 query heads cannot share 3 KV heads.
    let bad = variant(
        &file,
        &[(
            "bitnet-b1.58.attention.head_count_kv",
            MetadataValue::U32(3),
        )],
        |n| keep(n, &file),
    );
    let err = Model::load(&bad).unwrap_err();
    assert!(matches!(err, ModelError::InvalidConfig(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("head"), "{msg}");
}
