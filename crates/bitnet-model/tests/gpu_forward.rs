//! `--device gpu` against the CPU, on whatever adapter `gpu:0` is (in CI: Mesa lavapipe): the
//! BitLinears are bit-identical (bitnet-gpu's kernel tests), so the residual stream is too, and
//! the logits differ only by the F16 head's product rounding (an unfused `fma` on lavapipe). The
//! stated bound: every logit within 1e-5 of the CPU's, and the same greedy tokens for 64 steps
//! (prefill in one batch, then one token at a time). No adapter is a loud failure, not a skip.

mod common;

use std::sync::{Arc, OnceLock};

use bitnet_gguf::GgufFile;
use bitnet_gpu::GpuContext;
use bitnet_model::{LoadOptions, Model, ModelError};
use common::{pool, sequences};

/// Largest |GPU − CPU| accepted for any logit.
const LOGIT_BOUND: f32 = 1e-5;
const STEPS: usize = 64;

fn gpu() -> Arc<GpuContext> {
    static GPU: OnceLock<Arc<GpuContext>> = OnceLock::new();
    GPU.get_or_init(|| {
        GpuContext::open(0).unwrap_or_else(|e| {
            panic!(
                "the GPU tests need a GPU adapter (without a GPU: Mesa lavapipe, installed by \
                 scripts/install-test-tools.sh): {e}"
            )
        })
    })
    .clone()
}

fn load(path: &std::path::Path, gpu: Option<Arc<GpuContext>>) -> Model {
    let file = GgufFile::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Model::load_with(
        &file,
        LoadOptions {
            gpu,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Greedy decoding of `STEPS` tokens after `prompt`, returning the tokens and every step's
/// logits.
fn greedy(model: &Model, prompt: &[u32]) -> (Vec<u32>, Vec<Vec<f32>>) {
    let pool = pool();
    let mut cache = model.new_cache(prompt.len() + STEPS);
    let mut logits = model
        .forward(prompt, &mut cache, prompt.len() - 1, &pool)
        .unwrap();
    let (mut tokens, mut all) = (Vec::new(), Vec::new());
    for _ in 0..STEPS {
        let next = argmax(&logits);
        tokens.push(next);
        all.push(logits);
        logits = model.forward(&[next], &mut cache, 0, &pool).unwrap();
    }
    (tokens, all)
}

fn assert_gpu_matches_cpu(path: &std::path::Path, prompts: &[Vec<u32>]) {
    let cpu = load(path, None);
    let gpu_model = load(path, Some(gpu()));
    for prompt in prompts {
        let (cpu_tokens, cpu_logits) = greedy(&cpu, prompt);
        let (gpu_tokens, gpu_logits) = greedy(&gpu_model, prompt);
        assert_eq!(gpu_tokens, cpu_tokens, "{}: greedy tokens", path.display());
        let mut worst = 0.0f32;
        for (g, c) in gpu_logits.iter().zip(&cpu_logits) {
            for (a, b) in g.iter().zip(c) {
                worst = worst.max((a - b).abs());
            }
        }
        assert!(
            worst <= LOGIT_BOUND,
            "{}: max |Δlogit| {worst} > {LOGIT_BOUND}",
            path.display()
        );
        eprintln!(
            "{}: {STEPS} greedy tokens equal, max |Δlogit| {worst:e}",
            path.display()
        );
    }
}

#[test]
fn tiny_b158_i2_s_and_tq2_0_decode_as_on_the_cpu() {
    let seqs = sequences(&bitnet_testdata::oracle(
        "tiny-b158/reference/sequences.json",
    ));
    for file in ["tiny-b158-i2_s.gguf", "tiny-b158-tq2_0.gguf"] {
        let path = bitnet_testdata::oracle(&format!("tiny-b158/gguf/{file}"));
        assert_gpu_matches_cpu(&path, &seqs[..2]);
    }
}

#[test]
fn shipped_model_decodes_as_on_the_cpu() {
    let path = bitnet_testdata::repo_root().join("models/bitnet-b158-kjv-29m.gguf");
    // "In the beginning" territory of the KJV vocabulary: any ids will do for equality.
    let prompt: Vec<u32> = vec![1, 200, 300, 400, 500, 600];
    assert_gpu_matches_cpu(&path, &[prompt]);
}

#[test]
fn llama_family_and_float_linears_are_refused_on_the_gpu() {
    let smollm2 = bitnet_testdata::smollm2();
    let file = GgufFile::open(&smollm2).unwrap_or_else(|e| panic!("{}: {e}", smollm2.display()));
    let options = LoadOptions {
        gpu: Some(gpu()),
        ..Default::default()
    };
    let err = Model::load_with(&file, options).unwrap_err();
    assert!(matches!(err, ModelError::NotOnGpu(..)), "{err}");
    assert!(err.to_string().contains("--device cpu"), "{err}");

    let f32_file = bitnet_testdata::oracle("tiny-b158/gguf/tiny-b158-f32.gguf");
    let file = GgufFile::open(&f32_file).unwrap();
    let options = LoadOptions {
        gpu: Some(gpu()),
        ..Default::default()
    };
    let err = Model::load_with(&file, options).unwrap_err();
    assert!(matches!(err, ModelError::NotOnGpu(..)), "{err}");
}
