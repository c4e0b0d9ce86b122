//! Every architecture against llama.cpp: tiny random-weight GGUF files with llama.cpp's tensor
//! names and metadata (testdata/arch/<arch>/, made by tools/gen_arch_refs.py) and the logits
//! llama.cpp (PyPI llama-cpp-python 0.3.36) computes for three fixed sequences. Each file runs
//! as one batch and one token at a time.
//!
//! - `<arch>-f32.gguf` (every weight F32): the logits agree within `F32_MAX_ABS_BATCH`, or
//!   `F32_MAX_REL_BATCH` of the reference's largest |logit| where that is more (one token at a
//!   time: `F32_MAX_ABS_ONE_TOKEN`, `F32_MAX_REL_ONE_TOKEN`; that path rounds the attention
//!   probabilities and the head input to F16 as bitnet.cpp's decode path does, llama.cpp's batch
//!   reference does not); the cosine of every position's logits with the reference is at least
//!   `F32_MIN_COSINE`; the argmax is the reference's wherever its top-1 − top-2 margin is ≥ 0.5
//!   (the |Δ| bound already pins it wherever the margin exceeds twice the bound; a near-tie may
//!   flip). Both engines keep K/V in F16, hence no tighter bound.
//! - `<arch>-mixed.gguf` (F16 embeddings and attention, Q8_0 FFN and head): the model-fidelity
//!   rules (cosine ≥ 0.997 at every position; argmax equal wherever the reference's top-1 −
//!   top-2 margin is ≥ 0.5). llama.cpp rounds activations to F16/Q8_0 for these products and
//!   this engine does not, hence the looser bound.

mod common;

use bitnet_model::Model;
use common::{pool, read_tensor, run_batch, run_incremental, sequences, Agreement};

const F32_MAX_ABS_BATCH: f64 = 5e-3;
const F32_MAX_REL_BATCH: f64 = 2.5e-4;
const F32_MAX_ABS_ONE_TOKEN: f64 = 1e-2;
const F32_MAX_REL_ONE_TOKEN: f64 = 5e-4;
const F32_MIN_COSINE: f64 = 0.99999;
const MIXED_MIN_COSINE: f64 = 0.997;

fn fixture(arch: &str, rel: &str) -> std::path::PathBuf {
    bitnet_testdata::testdata(&format!("arch/{arch}/{rel}"))
}

/// The agreement over the three sequences, and the reference's largest |logit|.
fn agreement(arch: &str, kind: &str, incremental: bool) -> (Agreement, f64) {
    let model = Model::open(fixture(arch, &format!("{arch}-{kind}.gguf")))
        .unwrap_or_else(|e| panic!("{arch}-{kind}: {e}"));
    // A folder is named after its architecture, or `<arch>-<variant>`.
    assert!(arch.starts_with(model.config().arch.name), "{arch}");
    let pool = pool();
    let mut agg = Agreement::new();
    let mut reference_max = 0.0f64;
    for (i, ids) in sequences(&fixture(arch, "sequences.json"))
        .iter()
        .enumerate()
    {
        let ours = if incremental {
            run_incremental(&model, ids, &pool)
        } else {
            run_batch(&model, ids, &pool)
        };
        let reference = read_tensor(
            &fixture(arch, &format!("logits-{kind}.safetensors")),
            &format!("seq{i}"),
        );
        agg.add(&ours, &reference.data, model.n_vocab());
        reference_max = reference
            .data
            .iter()
            .fold(reference_max, |m, v| m.max(f64::from(v.abs())));
    }
    eprintln!(
        "{arch}-{kind} ({}): {agg:?} mean {:.6}",
        if incremental {
            "one token at a time"
        } else {
            "batch"
        },
        agg.mean_abs()
    );
    (agg, reference_max)
}

fn check(arch: &str) {
    for incremental in [false, true] {
        let (f32, reference_max) = agreement(arch, "f32", incremental);
        let bound = if incremental {
            F32_MAX_ABS_ONE_TOKEN.max(F32_MAX_REL_ONE_TOKEN * reference_max)
        } else {
            F32_MAX_ABS_BATCH.max(F32_MAX_REL_BATCH * reference_max)
        };
        assert!(f32.max_abs <= bound, "{arch} f32: max |Δ| {}", f32.max_abs);
        assert!(
            f32.min_cosine >= F32_MIN_COSINE,
            "{arch} f32: cosine {}",
            f32.min_cosine
        );
        assert_eq!(f32.confident_mismatches, 0, "{arch} f32: argmax");
        let (mixed, _) = agreement(arch, "mixed", incremental);
        assert!(
            mixed.min_cosine >= MIXED_MIN_COSINE,
            "{arch} mixed: cosine {}",
            mixed.min_cosine
        );
        assert_eq!(mixed.confident_mismatches, 0, "{arch} mixed: argmax");
    }
}

#[test]
fn llama_matches_llama_cpp() {
    check("llama");
}

#[test]
fn qwen2_matches_llama_cpp() {
    check("qwen2");
}

#[test]
fn qwen3_matches_llama_cpp() {
    check("qwen3");
}

#[test]
fn phi3_matches_llama_cpp() {
    check("phi3");
}

#[test]
fn gemma_matches_llama_cpp() {
    check("gemma");
}

#[test]
fn gemma2_matches_llama_cpp() {
    check("gemma2");
}

#[test]
fn internlm2_matches_llama_cpp() {
    check("internlm2");
}

#[test]
fn command_r_matches_llama_cpp() {
    check("command-r");
}

#[test]
fn glm4_matches_llama_cpp() {
    check("glm4");
}

#[test]
fn chatglm_matches_llama_cpp() {
    check("chatglm");
}

#[test]
fn baichuan_matches_llama_cpp() {
    check("baichuan");
}

#[test]
fn starcoder2_matches_llama_cpp() {
    check("starcoder2");
}

#[test]
fn gpt2_matches_llama_cpp() {
    check("gpt2");
}

#[test]
fn starcoder_matches_llama_cpp() {
    check("starcoder");
}

#[test]
fn falcon_matches_llama_cpp() {
    check("falcon");
}

#[test]
fn falcon_40b_matches_llama_cpp() {
    check("falcon-40b");
}

#[test]
fn mpt_matches_llama_cpp() {
    check("mpt");
}

#[test]
fn deepseek_matches_llama_cpp() {
    check("deepseek");
}

#[test]
fn qwen2moe_matches_llama_cpp() {
    check("qwen2moe");
}

#[test]
fn positions_beyond_the_learned_table_are_an_error() {
    let model = Model::open(fixture("gpt2", "gpt2-f32.gguf")).unwrap();
    let mut cache = model.new_cache(70);
    let ids = vec![1u32; 65];
    let err = model.forward(&ids, &mut cache, 64, &pool()).unwrap_err();
    assert!(
        matches!(
            err,
            bitnet_model::ModelError::PositionOutOfRange { pos: 64, max: 64 }
        ),
        "{err}"
    );
    assert!(cache.is_empty(), "nothing is cached by a refused batch");
}

#[test]
fn glm4_with_multi_section_rope_is_refused() {
    use bitnet_gguf::{GgufFile, GgufWriter, MetadataValue};
    let file = GgufFile::open(fixture("glm4", "glm4-f32.gguf")).unwrap();
    let mut w = GgufWriter::from_file(&file);
    w.add_metadata(
        "glm4.rope.dimension_sections",
        MetadataValue::Array([8u32, 8, 0, 0].map(MetadataValue::U32).to_vec()),
    );
    let bad = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
    let err = Model::load(&bad).unwrap_err();
    assert!(
        matches!(&err, bitnet_model::ModelError::InvalidConfig(m) if m.contains("dimension_sections")),
        "{err}"
    );
}
