//! Real models against llama.cpp (oracle README §3, §6.8): SmolLM2-135M-Instruct (arch `llama`,
//! Q4_1/Q8_0) and Gemma-3-270M (arch `gemma3`, Q4_K/Q5_0/Q6_K/Q8_0, sliding window, QK-norm).
//! - top-20: on the fixture's 24 ids, top-1 equal wherever llama.cpp's top-1 − top-2 gap ≥ 0.5;
//!   our logits at llama.cpp's top-20 ids within 1.0 max and 0.3 mean;
//! - greedy continuations (§6.7): free-running until the first mismatch, which must fall at a
//!   reference margin < 0.5; teacher-forced, our argmax equals llama.cpp's generated token at
//!   every step whose reference margin is ≥ 0.5;
//! - perplexity on alice29.txt, `-c 512`, 20 chunks: within 1% of llama.cpp's final figure.

mod common;

use std::time::Instant;

use bitnet_gguf::GgufFile;
use bitnet_model::{perplexity, Model, PerplexityParams};
use bitnet_tokenizer::{EncodeOptions, Tokenizer};
use common::{argmax, ids, pool, run_batch};

fn reference(model: &str) -> serde_json::Value {
    let path = bitnet_testdata::oracle(&format!("{model}/llamacpp-reference.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn top20(model: &Model, reference: &serde_json::Value) {
    let pool = pool();
    let top = &reference["top20"];
    let ids = ids(&top["ids"]);
    assert_eq!(ids.len(), 24);
    let logits = run_batch(model, &ids, &pool);
    let vocab = model.n_vocab();
    let (mut max_abs, mut sum_abs, mut n) = (0.0f64, 0.0f64, 0usize);
    let (mut confident, mut top1_equal) = (0, 0);
    for (p, entries) in top["top20_per_position"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let row = &logits[p * vocab..(p + 1) * vocab];
        let entries: Vec<(usize, f64)> = entries
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e[0].as_u64().unwrap() as usize, e[1].as_f64().unwrap()))
            .collect();
        for &(id, l) in &entries {
            let d = (f64::from(row[id]) - l).abs();
            max_abs = max_abs.max(d);
            sum_abs += d;
            n += 1;
        }
        let ours = argmax(row);
        if ours == entries[0].0 {
            top1_equal += 1;
        }
        if entries[0].1 - entries[1].1 >= 0.5 {
            confident += 1;
            assert_eq!(
                ours, entries[0].0,
                "position {p}: top-1 differs at a clear gap"
            );
        }
    }
    let mean = sum_abs / n as f64;
    eprintln!(
        "top20: max |Δ| {max_abs:.4}, mean {mean:.4}, top-1 {top1_equal}/24, confident positions {confident}"
    );
    assert!(max_abs <= 1.0, "max |Δ| {max_abs}");
    assert!(mean <= 0.3, "mean |Δ| {mean}");
}

fn alice_perplexity(path: std::path::PathBuf, reference: &serde_json::Value) {
    let file = GgufFile::open(&path).unwrap();
    let model = Model::load(&file).unwrap();
    let tokenizer = Tokenizer::from_gguf(&file).unwrap();
    let text = std::fs::read_to_string(bitnet_testdata::data("alice29.txt")).unwrap();
    let add_bos = tokenizer.adds_bos();
    let tokens = tokenizer
        .encode_with(
            &text,
            EncodeOptions {
                add_special: true,
                parse_special: false,
            },
        )
        .unwrap();
    let reference = &reference["perplexity"]["alice29.txt"];
    let want = reference["final_ppl"].as_f64().unwrap();
    let chunks = reference["chunks"].as_u64().unwrap() as usize;
    let params = PerplexityParams {
        n_ctx: 512,
        max_chunks: chunks,
        bos: if add_bos { tokenizer.bos() } else { None },
    };
    let pool = pool();
    let start = Instant::now();
    let report = perplexity(&model, &tokens, params, &pool, |i, p| {
        eprintln!("[{}] {p:.4}", i + 1)
    })
    .unwrap();
    eprintln!(
        "{}: PPL {:.4} ± {:.5} (llama.cpp {want}), {} tokens scored, {:.1}s",
        path.display(),
        report.ppl,
        report.stderr,
        report.n_scored,
        start.elapsed().as_secs_f64()
    );
    assert_eq!(report.n_scored, chunks * 255);
    let rel = (report.ppl - want).abs() / want;
    assert!(
        rel <= 0.01,
        "PPL {} vs {want}: {:.2}% off",
        report.ppl,
        rel * 100.0
    );
}

fn greedy_continuations(model: &Model, reference: &serde_json::Value) {
    let pool = pool();
    let mut checked = 0;
    for g in reference["greedy"].as_array().unwrap() {
        let prompt = ids(&g["prompt_ids"]);
        let generated = ids(&g["generated_ids"]);
        let margins: Vec<f64> = g["teacher_forced_top1_minus_top2"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_f64().unwrap())
            .collect();
        let matched = common::free_running_greedy(model, &prompt, &generated, &margins, &pool);
        eprintln!(
            "{}: free-running {matched} of {} tokens match",
            g["name"],
            generated.len()
        );
        let mut seq = prompt.clone();
        seq.extend_from_slice(&generated[..generated.len() - 1]);
        let mut cache = model.new_cache(seq.len());
        let logits = model
            .forward(&seq, &mut cache, prompt.len() - 1, &pool)
            .unwrap();
        let vocab = model.n_vocab();
        for (k, &want) in generated.iter().enumerate() {
            if margins[k] >= 0.5 {
                let got = argmax(&logits[k * vocab..(k + 1) * vocab]) as u32;
                assert_eq!(got, want, "{}: step {k} (margin {})", g["name"], margins[k]);
                checked += 1;
            }
        }
    }
    eprintln!("teacher-forced steps checked: {checked}");
    assert!(checked > 0);
}

#[test]
fn smollm2_greedy_continuations() {
    let model = Model::open(bitnet_testdata::smollm2()).unwrap();
    greedy_continuations(&model, &reference("smollm2"));
}

#[test]
fn gemma3_greedy_continuations() {
    let model = Model::open(bitnet_testdata::gemma3()).unwrap();
    greedy_continuations(&model, &reference("gemma3"));
}

#[test]
fn smollm2_top20_matches_llama_cpp() {
    let model = Model::open(bitnet_testdata::smollm2()).unwrap();
    assert_eq!(model.config().arch.name, "llama");
    top20(&model, &reference("smollm2"));
}

#[test]
fn gemma3_top20_matches_llama_cpp() {
    let model = Model::open(bitnet_testdata::gemma3()).unwrap();
    assert_eq!(model.config().arch.name, "gemma3");
    top20(&model, &reference("gemma3"));
}

#[test]
fn smollm2_perplexity_on_alice_within_1_percent() {
    alice_perplexity(bitnet_testdata::smollm2(), &reference("smollm2"));
}

#[test]
fn gemma3_perplexity_on_alice_within_1_percent() {
    alice_perplexity(bitnet_testdata::gemma3(), &reference("gemma3"));
}
