//! llama.cpp's `bitnet` architecture (SiLU FFN, sub-norms) on tiny-bitnet-silu: the F32 file
//! against llama.cpp's F32 logits (oracle README §6.6) and the TQ2_0/TQ1_0 files against
//! llama.cpp's TQ2_0 logits (§6.5), in batch and one token at a time.

mod common;

use bitnet_model::{Activation, Model};
use common::{pool, read_tensor, run_batch, run_incremental, sequences, Agreement};

fn oracle(rel: &str) -> std::path::PathBuf {
    bitnet_testdata::oracle(&format!("tiny-bitnet-silu/{rel}"))
}

fn agreement(file: &str, reference: &str, incremental: bool) -> Agreement {
    let model = Model::open(oracle(&format!("gguf/{file}"))).unwrap();
    assert_eq!(model.config().arch.name, "bitnet");
    assert_eq!(model.config().activation, Activation::Silu);
    let pool = pool();
    let mut agg = Agreement::new();
    for (i, ids) in sequences(&oracle("reference/sequences.json"))
        .iter()
        .enumerate()
    {
        let ours = if incremental {
            run_incremental(&model, ids, &pool)
        } else {
            run_batch(&model, ids, &pool)
        };
        let r = read_tensor(
            &oracle(&format!("reference/{reference}")),
            &format!("seq{i}"),
        );
        agg.add(&ours, &r.data, model.n_vocab());
    }
    eprintln!("{file} vs {reference}: {agg:?} mean {:.5}", agg.mean_abs());
    agg
}

#[test]
fn f32_file_matches_llama_cpp_f32() {
    for (reference, incremental) in [
        ("llamacpp-f32.safetensors", false),
        ("llamacpp-f32-incremental.safetensors", true),
    ] {
        let a = agreement("tiny-bitnet-llamacpp-f32.gguf", reference, incremental);
        assert_eq!(a.positions, 104);
        assert!(a.max_abs <= 0.005, "{reference}: max |Δ| {}", a.max_abs);
        assert_eq!(a.argmax_equal, 104, "{reference}: argmax");
    }
}

#[test]
fn ternary_files_match_llama_cpp_tq2_0() {
    for (file, reference, incremental) in [
        (
            "tiny-bitnet-llamacpp-tq2_0.gguf",
            "llamacpp-tq2_0.safetensors",
            false,
        ),
        (
            "tiny-bitnet-llamacpp-tq1_0.gguf",
            "llamacpp-tq1_0.safetensors",
            false,
        ),
        (
            "tiny-bitnet-llamacpp-tq2_0.gguf",
            "llamacpp-tq2_0-incremental.safetensors",
            true,
        ),
    ] {
        let a = agreement(file, reference, incremental);
        assert!(a.max_abs <= 0.06, "{file}: max |Δ| {}", a.max_abs);
        assert!(a.mean_abs() <= 0.01, "{file}: mean |Δ| {}", a.mean_abs());
        assert!(a.min_cosine >= 0.999, "{file}: min cosine {}", a.min_cosine);
    }
}
