//! Encoding agrees exactly with llama.cpp and Hugging Face `tokenizers` on their own fixtures:
//! llama.cpp's `test-tokenizer-0` vocabularies (oracle README §4), the SmolLM2 / Gemma-3 prompts
//! tokenized by llama.cpp (§3), and the LLaMA-3 `tokenizer.json` from npm.

use bitnet_tokenizer::{EncodeOptions, Tokenizer};
use std::fmt::Write;

const LITERAL: EncodeOptions = EncodeOptions {
    add_special: false,
    parse_special: false,
};

/// (input string, expected ids) pairs of `ggml-vocab-<name>.gguf.{inp,out}`.
fn vocab_cases(name: &str) -> Vec<(String, Vec<u32>)> {
    let dir = bitnet_testdata::oracle("tokenizer");
    let inp = std::fs::read_to_string(dir.join(format!("ggml-vocab-{name}.gguf.inp"))).unwrap();
    let out = std::fs::read_to_string(dir.join(format!("ggml-vocab-{name}.gguf.out"))).unwrap();
    let mut strings: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    assert_eq!(
        strings.pop(),
        Some(""),
        "the .inp file ends with a separator"
    );
    let ids: Vec<Vec<u32>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect();
    assert_eq!(strings.len(), ids.len(), "{name}: .inp and .out disagree");
    strings.into_iter().map(str::to_string).zip(ids).collect()
}

/// Encodes every case; returns a report of mismatches (empty when all agree), also checking that
/// decoding gives the input back.
fn check_cases(tok: &Tokenizer, cases: &[(String, Vec<u32>)]) -> String {
    let mut report = String::new();
    for (text, expected) in cases {
        let got = tok.encode_with(text, LITERAL).unwrap();
        if &got != expected {
            writeln!(
                report,
                "{text:?}\n  expected {expected:?}\n  got      {got:?}"
            )
            .unwrap();
        }
        let back = tok.decode(&got, false).unwrap();
        if &back != text {
            writeln!(report, "round trip of {text:?} gave {back:?}").unwrap();
        }
    }
    report
}

fn gguf_vocab(name: &str) -> Tokenizer {
    let path = bitnet_testdata::oracle(&format!("tokenizer/ggml-vocab-{name}.gguf"));
    Tokenizer::from_gguf_path(path).unwrap()
}

#[test]
fn llama_bpe_vocab_matches_llama_cpp() {
    let cases = vocab_cases("llama-bpe");
    assert_eq!(cases.len(), 46);
    let report = check_cases(&gguf_vocab("llama-bpe"), &cases);
    assert!(report.is_empty(), "{report}");
}

#[test]
fn llama_spm_vocab_matches_llama_cpp() {
    let cases = vocab_cases("llama-spm");
    assert_eq!(cases.len(), 46);
    let report = check_cases(&gguf_vocab("llama-spm"), &cases);
    assert!(report.is_empty(), "{report}");
}

#[test]
fn gpt2_vocab_matches_llama_cpp() {
    let cases = vocab_cases("gpt-2");
    assert_eq!(cases.len(), 46);
    let report = check_cases(&gguf_vocab("gpt-2"), &cases);
    assert!(report.is_empty(), "{report}");
}

#[test]
fn llama3_tokenizer_json_matches_llama_cpp_fixture() {
    let tok = Tokenizer::from_tokenizer_json(bitnet_testdata::llama3_tokenizer_json()).unwrap();
    let report = check_cases(&tok, &vocab_cases("llama-bpe"));
    assert!(report.is_empty(), "{report}");
    assert_eq!(tok.bos(), Some(128000));
    assert_eq!(tok.eot(), Some(128009));
    // This file's post-processor is plain ByteLevel: no BOS, as PyPI `tokenizers` also does.
    assert!(!tok.adds_bos());
    assert_eq!(tok.encode("<|eot_id|>").unwrap(), [128009]);
}

/// The six prompts of `llamacpp-reference.json`, each variant llama.cpp recorded.
fn check_model_reference(tok: &Tokenizer, model: &str) {
    let path = bitnet_testdata::oracle(&format!("{model}/llamacpp-reference.json"));
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    let prompts = reference["tokenization"].as_array().unwrap();
    assert_eq!(prompts.len(), 6);
    let mut report = String::new();
    let mut checked = 0;
    for p in prompts {
        let text = p["text"].as_str().unwrap();
        let variants = [
            ("ids_default", EncodeOptions::default()),
            (
                "ids_no_bos",
                EncodeOptions {
                    add_special: false,
                    parse_special: true,
                },
            ),
            (
                "ids_default_no_parse_special",
                EncodeOptions {
                    add_special: true,
                    parse_special: false,
                },
            ),
        ];
        for (key, options) in variants {
            if p.get(key).is_none() {
                continue;
            }
            checked += 1;
            let expected = ids(&p[key]);
            let got = tok.encode_with(text, options).unwrap();
            if got != expected {
                writeln!(
                    report,
                    "{} {key}: {text:?}\n  expected {expected:?}\n  got      {got:?}",
                    p["name"]
                )
                .unwrap();
            }
        }
    }
    assert_eq!(checked, 13);
    assert!(report.is_empty(), "{model}:\n{report}");
}

#[test]
fn smollm2_prompts_match_llama_cpp() {
    let tok = Tokenizer::from_gguf_path(bitnet_testdata::smollm2()).unwrap();
    assert!(!tok.adds_bos());
    check_model_reference(&tok, "smollm2");
}

#[test]
fn gemma3_prompts_match_llama_cpp() {
    let tok = Tokenizer::from_gguf_path(bitnet_testdata::gemma3()).unwrap();
    assert!(tok.adds_bos());
    check_model_reference(&tok, "gemma3");
}

/// The tiny test models' 512-piece SentencePiece vocabulary: the ids SentencePiece itself gave
/// (with BOS) for the three reference sequences, which llama.cpp also reproduces.
#[test]
fn tiny_model_vocabularies_match_sentencepiece() {
    for (model, files) in [
        (
            "tiny-b158",
            &["tiny-b158-i2_s.gguf", "tiny-b158-f32.gguf"][..],
        ),
        ("tiny-bitnet-silu", &["tiny-bitnet-llamacpp-f32.gguf"][..]),
    ] {
        let path = bitnet_testdata::oracle(&format!("{model}/reference/sequences.json"));
        let reference: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let sequences = reference["sequences"].as_array().unwrap();
        assert_eq!(sequences.len(), 3);
        for file in files {
            let tok =
                Tokenizer::from_gguf_path(bitnet_testdata::oracle(&format!("{model}/gguf/{file}")))
                    .unwrap();
            for s in sequences {
                let text = s["text"].as_str().unwrap();
                let expected: Vec<u32> = s["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as u32)
                    .collect();
                assert_eq!(tok.encode(text).unwrap(), expected, "{file}: {text:?}");
                assert_eq!(tok.decode(&expected, false).unwrap(), text, "{file}");
            }
        }
    }
}
