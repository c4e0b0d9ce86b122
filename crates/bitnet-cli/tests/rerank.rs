//! Rank pooling: the tiny random-weight BERT cross-encoder (`testdata/embeddings/tiny-bert-reranker`,
//! made by `tools/embeddings/make_tiny_reranker.py`) converted by `bitnet convert` and scored by
//! `bitnet rerank` against transformers' `BertForSequenceClassification` logits of 48
//! query–document pairs: pair ids and segments as the reference tokenizer gives them, scores
//! within 1e-4 (F32) and 0.1 (F16 matrices, the head kept F32: the random weights are large,
//! initializer_range 0.5, so rounding them moves the scores, which span -2.06 … 0.87; Q8_0 is
//! refused, its 32-value blocks do not fit rows of 16); errors for a model that is not a
//! reranker and for an over-long pair.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn bitnet(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bitnet"))
        .args(args)
        .output()
        .expect("run bitnet")
}

fn converted(ty: &str) -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("tiny-bert-reranker-{ty}.gguf"));
    let dir = bitnet_testdata::tiny_bert_reranker();
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

fn reference() -> Vec<Value> {
    let path = bitnet_testdata::tiny_bert_reranker().join("reference.json");
    let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let pairs = v["pairs"].as_array().unwrap().clone();
    assert!(pairs.len() >= 40);
    pairs
}

/// Scores every reference pair with `bitnet rerank --json` (one run per query); checks the pair
/// ids and returns the largest score difference.
fn largest_difference(model: &Path) -> f64 {
    let mut by_query: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for p in reference() {
        by_query
            .entry(p["query"].as_str().unwrap().to_string())
            .or_default()
            .push(p);
    }
    let mut worst = 0.0f64;
    for (query, pairs) in by_query {
        let mut args = vec![
            "rerank",
            "-m",
            model.to_str().unwrap(),
            "--json",
            "-q",
            &query,
        ];
        args.push("--");
        args.extend(pairs.iter().map(|p| p["document"].as_str().unwrap()));
        let o = bitnet(&args);
        assert!(
            o.status.success(),
            "rerank: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
        let results = doc["results"].as_array().unwrap();
        assert_eq!(results.len(), pairs.len());
        for (p, r) in pairs.iter().zip(results) {
            assert_eq!(
                r["tokens"], p["ids"],
                "ids of {query:?} / {}",
                p["document"]
            );
            let diff = (r["score"].as_f64().unwrap() - p["score"].as_f64().unwrap()).abs();
            worst = worst.max(diff);
        }
    }
    worst
}

#[test]
fn f32_scores_match_transformers() {
    let model = converted("f32");
    let worst = largest_difference(&model);
    eprintln!("f32: largest score difference {worst:e}");
    assert!(worst <= 1e-4, "largest score difference {worst}");
    // the plain text output: one score per document, in order
    let o = bitnet(&[
        "rerank",
        "-m",
        model.to_str().unwrap(),
        "-q",
        "how do pandas live",
        "The giant panda is a bear species endemic to China.",
        "hello",
    ]);
    assert!(o.status.success());
    let lines: Vec<f64> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    // an over-long pair is refused, naming the context
    let long = "word ".repeat(600);
    let o = bitnet(&["rerank", "-m", model.to_str().unwrap(), "-q", "q", &long]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("context of 512"), "{err}");
    std::fs::remove_file(model).unwrap();
}

#[test]
fn f16_scores_match_transformers() {
    let model = converted("f16");
    let worst = largest_difference(&model);
    eprintln!("f16: largest score difference {worst:e}");
    assert!(worst <= 0.1, "f16: largest score difference {worst}");
    std::fs::remove_file(model).unwrap();
    // Q8_0 blocks are 32 values: rows of 16 are refused with the reason
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tiny-bert-reranker-q8_0.gguf");
    let dir = bitnet_testdata::tiny_bert_reranker();
    let o = bitnet(&[
        "convert",
        dir.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--type",
        "q8_0",
        "--no-progress",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not a multiple of the block size 32"), "{err}");
}

#[test]
fn an_embedding_model_is_not_a_reranker() {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rerank-minilm-f16.gguf");
    let dir = bitnet_testdata::all_minilm_l6_v2();
    let o = bitnet(&[
        "convert",
        dir.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--type",
        "f16",
        "--no-progress",
    ]);
    assert!(o.status.success());
    let o = bitnet(&["rerank", "-m", out.to_str().unwrap(), "-q", "q", "d"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is not a reranker"), "{err}");
    std::fs::remove_file(out).unwrap();
}
