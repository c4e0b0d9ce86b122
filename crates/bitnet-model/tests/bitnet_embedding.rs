//! BitNet embedding models (microsoft/BitNet's bitnet-embedding layout: the Qwen3 and Gemma 3
//! graphs with ternary I2_S linears, an RMSNorm before each projection, no LM head, last-token
//! pooling and L2 normalisation) on the tiny random-weight files of
//! `tools/embeddings/make_bitnet_embed_ref.py`, against that script's NumPy float64 vectors of the
//! documented graph (HF-style W1.58A8 BitLinear).
//!
//! The bound is the one for BitNet logits under W1.58A8 (oracle README §6.4, `tiny_b158_logits`):
//! cosine ≥ 0.997 per vector. Two W1.58A8 implementations may round an activation to a
//! different int8 step (f32 vs f64 before `round`), which moves a vector by float noise but not by
//! less than that; the mean and max |Δ| bounds of §6.4 are on the logits' scale and say nothing
//! about unit vectors, so only the cosine is a pass/fail bound (the measured values are printed).

use bitnet_gguf::{GgufFile, GgufWriter};
use bitnet_kernels::ThreadPool;
use bitnet_model::{Encoder, Graph, Model, ModelError, Pooling};
use bitnet_tokenizer::Tokenizer;
use serde_json::Value;

/// One model of the reference file: its architecture and, per text, the ids and vector.
struct Reference {
    arch: String,
    dim: usize,
    texts: Vec<(String, Vec<u32>, Vec<f64>)>,
}

fn references() -> Vec<Reference> {
    let path = bitnet_testdata::tiny_bitnet_embed_refs();
    let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| Reference {
            arch: m["arch"].as_str().unwrap().to_string(),
            dim: m["dim"].as_u64().unwrap() as usize,
            texts: m["texts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    let ids = t["ids"].as_array().unwrap();
                    let e = t["embedding"].as_array().unwrap();
                    (
                        t["text"].as_str().unwrap().to_string(),
                        ids.iter().map(|i| i.as_u64().unwrap() as u32).collect(),
                        e.iter().map(|x| x.as_f64().unwrap()).collect(),
                    )
                })
                .collect(),
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, y)| f64::from(x) * y).sum();
    let na = a.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn tiny_models_match_the_numpy_w158a8_reference() {
    let refs = references();
    assert_eq!(refs.len(), 2, "a qwen3 and a gemma3 model");
    let pool = ThreadPool::new(2);
    for r in &refs {
        let path = bitnet_testdata::tiny_bitnet_embed(&r.arch);
        let file = GgufFile::open(&path).unwrap();
        let encoder = Encoder::load(&file).unwrap();
        let expected_graph = match r.arch.as_str() {
            "qwen3" => Graph::Qwen3BitnetEmbed,
            _ => Graph::Gemma3BitnetEmbed,
        };
        assert_eq!(encoder.config().arch.graph, expected_graph);
        assert_eq!(encoder.pooling(), Some(Pooling::Last));
        assert_eq!(encoder.dim(), r.dim);
        // The file's tokenizer gives the reference's ids (EOS appended, BOS for gemma3).
        let tokenizer = Tokenizer::from_gguf(&file).unwrap();
        for (text, ids, _) in &r.texts {
            assert_eq!(
                &tokenizer.encode(text).unwrap(),
                ids,
                "{}: {text:?}",
                r.arch
            );
        }
        let inputs: Vec<&[u32]> = r.texts.iter().map(|(_, ids, _)| ids.as_slice()).collect();
        let batch = encoder.embed(&inputs, Pooling::Last, true, &pool).unwrap();
        let (mut min_cos, mut max_abs) = (1.0f64, 0.0f64);
        for ((text, ids, want), got) in r.texts.iter().zip(&batch) {
            assert_eq!(got.len(), r.dim);
            let c = cosine(got, want);
            min_cos = min_cos.min(c);
            for (&g, w) in got.iter().zip(want) {
                max_abs = max_abs.max((f64::from(g) - w).abs());
            }
            assert!(c >= 0.997, "{} {text:?}: cosine {c}", r.arch);
            // Each input's vector is the one it gets alone.
            let alone = encoder.embed(&[ids], Pooling::Last, true, &pool).unwrap();
            assert_eq!(&alone[0], got, "{} {text:?}: batch vs alone", r.arch);
        }
        eprintln!(
            "{}: {} vectors, lowest cosine {min_cos:.7}, max |Δ| {max_abs:.2e}",
            r.arch,
            batch.len()
        );
    }
}

/// The file with one tensor left out.
fn without(file: &GgufFile, dropped: &str) -> GgufFile {
    let mut w = GgufWriter::new();
    for (k, v) in file.metadata() {
        w.add_metadata(k.clone(), v.clone());
    }
    for t in file.tensors() {
        if t.name != dropped {
            w.add_tensor(t.name.clone(), &t.dims, t.ggml_type, file.tensor_data(t));
        }
    }
    GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap()
}

#[test]
fn a_missing_projection_input_norm_is_named() {
    for arch in ["qwen3", "gemma3"] {
        let file = GgufFile::open(bitnet_testdata::tiny_bitnet_embed(arch)).unwrap();
        for dropped in [
            "blk.1.ffn_down_norm_in.weight",
            "blk.0.attn_q_norm_in.weight",
        ] {
            let err = Encoder::load(&without(&file, dropped)).unwrap_err();
            assert!(
                matches!(&err, ModelError::MissingTensor(name) if name == dropped),
                "{arch} without {dropped}: {err:?}"
            );
            assert!(err.to_string().contains(dropped), "{err}");
        }
    }
}

#[test]
fn an_embedding_model_is_not_a_generator() {
    let file = GgufFile::open(bitnet_testdata::tiny_bitnet_embed("qwen3")).unwrap();
    let err = Model::load(&file).unwrap_err();
    assert!(matches!(err, ModelError::Encoder("qwen3")), "{err:?}");
    assert!(err.to_string().contains("bitnet embed"), "{err}");
}
