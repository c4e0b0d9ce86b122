//! Encoding agrees exactly with llama.cpp and Hugging Face `tokenizers` on their own fixtures:
//! llama.cpp's `test-tokenizer-0` vocabularies (oracle README §4), the SmolLM2 / Gemma-3 prompts
//! tokenized by llama.cpp (§3), and the LLaMA-3 `tokenizer.json` from npm.

use bitnet_tokenizer::{EncodeOptions, Tokenizer, TokenizerError, VocabSpec};
use std::fmt::Write;
use std::path::Path;

const LITERAL: EncodeOptions = EncodeOptions {
    add_special: false,
    parse_special: false,
};

/// (input string, expected ids) pairs of `<dir>/ggml-vocab-<name>.gguf.{inp,out}`: the `.inp`
/// strings are separated by `\n__ggml_vocab_test__\n`, line i of `.out`
/// holds the ids of string i (no BOS, special tokens not parsed).
fn vocab_cases_in(dir: &Path, name: &str) -> Vec<(String, Vec<u32>)> {
    let inp = std::fs::read_to_string(dir.join(format!("ggml-vocab-{name}.gguf.inp"))).unwrap();
    let out = std::fs::read_to_string(dir.join(format!("ggml-vocab-{name}.gguf.out"))).unwrap();
    let mut strings: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    // As llama.cpp's test-tokenizer-0 reads it: a separator at the very end starts no string.
    if strings.last() == Some(&"") {
        strings.pop();
    }
    let ids: Vec<Vec<u32>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect();
    assert_eq!(strings.len(), ids.len(), "{name}: .inp and .out disagree");
    strings.into_iter().map(str::to_string).zip(ids).collect()
}

fn vocab_cases(name: &str) -> Vec<(String, Vec<u32>)> {
    vocab_cases_in(&bitnet_testdata::oracle("tokenizer"), name)
}

/// Encodes every case; returns a report of mismatches (empty when all agree), also checking that
/// decoding gives the input back.
fn check_cases(tok: &Tokenizer, cases: &[(String, Vec<u32>)]) -> String {
    check_cases_decoding_to(tok, cases, None)
}

/// As [`check_cases`]; with `decoded`, decoding must give those texts (llama.cpp's detokenization,
/// for a vocabulary whose normalizer loses information) instead of the inputs.
fn check_cases_decoding_to(
    tok: &Tokenizer,
    cases: &[(String, Vec<u32>)],
    decoded: Option<&[String]>,
) -> String {
    let mut report = String::new();
    for (i, (text, expected)) in cases.iter().enumerate() {
        let got = tok.encode_with(text, LITERAL).unwrap();
        if &got != expected {
            writeln!(
                report,
                "{text:?}\n  expected {expected:?}\n  got      {got:?}"
            )
            .unwrap();
        }
        let back = tok.decode(&got, false).unwrap();
        let wanted = decoded.map_or(text, |d| &d[i]);
        if &back != wanted {
            writeln!(report, "decoding {text:?} gave {back:?}, not {wanted:?}").unwrap();
        }
    }
    report
}

/// llama.cpp's detokenization of each expected id list, where `testdata/tokenizer` records it
/// (`ggml-vocab-<name>.gguf.detok.jsonl`, one JSON string a line).
fn llama_cpp_decodings(name: &str) -> Option<Vec<String>> {
    let path = bitnet_testdata::testdata_dir()
        .join(format!("tokenizer/ggml-vocab-{name}.gguf.detok.jsonl"));
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    )
}

/// The vocab fixtures of llama.cpp this crate does not build a tokenizer for, each with the reason.
/// Loading one must be a typed `UnsupportedModel` error naming its `tokenizer.ggml.model`.
const VOCABS_NOT_BUILT: &[(&str, &str, &str)] = &[];

/// Vocab files the sdist ships without `.inp`/`.out`: their expected ids were made with llama.cpp
/// itself (llama-cpp-python 0.3.36, `tools/gen_llamacpp_vocab_refs.py`) into `testdata/tokenizer/`.
const VOCABS_WITH_IDS_MADE_HERE: &[&str] = &["aquila", "baichuan", "gpt-neox", "nomic-bert-moe"];

/// Checks one vocab fixture of `dir`; returns its report (empty when it passes).
fn check_vocab_fixture(dir: &Path, name: &str) -> String {
    let path = dir.join(format!("ggml-vocab-{name}.gguf"));
    if let Some((_, model, _)) = VOCABS_NOT_BUILT.iter().find(|(n, ..)| *n == name) {
        return match Tokenizer::from_gguf_path(&path) {
            Err(TokenizerError::UnsupportedModel(m)) if m == *model => String::new(),
            Err(e) => format!("listed as not built, but loading gave another error: {e}\n"),
            Ok(_) => "listed as not built, but it loads: compare it instead\n".to_string(),
        };
    }
    let tok = match Tokenizer::from_gguf_path(&path) {
        Ok(tok) => tok,
        Err(e) => return format!("does not load: {e}\n"),
    };
    let cases = if VOCABS_WITH_IDS_MADE_HERE.contains(&name) {
        vocab_cases_in(&bitnet_testdata::testdata("tokenizer"), name)
    } else {
        vocab_cases_in(dir, name)
    };
    let decoded = llama_cpp_decodings(name);
    if let Some(d) = &decoded {
        assert_eq!(
            d.len(),
            cases.len(),
            "{name}: .detok.jsonl and .out disagree"
        );
    }
    check_cases_decoding_to(&tok, &cases, decoded.as_deref())
}

/// Every `ggml-vocab-<name>.gguf` in `dir`, by name.
fn vocab_fixture_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|f| {
            f.strip_prefix("ggml-vocab-")?
                .strip_suffix(".gguf")
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

/// Checks every fixture of `dir`; panics with one section per failing fixture.
fn check_vocab_fixtures(dir: &Path) -> Vec<String> {
    let names = vocab_fixture_names(dir);
    let mut failures = String::new();
    for name in &names {
        let has_expected = dir.join(format!("ggml-vocab-{name}.gguf.out")).exists();
        let ids_made_here = VOCABS_WITH_IDS_MADE_HERE.contains(&name.as_str());
        let report = if has_expected == ids_made_here {
            format!("has .out: {has_expected}, expected ids made here: {ids_made_here}\n")
        } else {
            check_vocab_fixture(dir, name)
        };
        if !report.is_empty() {
            writeln!(failures, "== ggml-vocab-{name}.gguf\n{report}").unwrap();
        }
    }
    assert!(failures.is_empty(), "{failures}");
    names
}

/// The three fixtures committed under `testdata/oracle/tokenizer` (no download needed).
#[test]
fn committed_vocab_fixtures_match_llama_cpp() {
    let names = check_vocab_fixtures(&bitnet_testdata::oracle("tokenizer"));
    assert_eq!(names, ["gpt-2", "llama-bpe", "llama-spm"]);
    assert_eq!(vocab_cases("llama-bpe").len(), 46);
}

/// Every vocab fixture of llama.cpp 0c1e570 (the PyPI sdist llama-cpp-python 0.3.36), fetched by
/// `scripts/fetch-test-data.sh`: the ids equal llama.cpp's and decoding gives the text back, except
/// the fixtures named in [`VOCABS_NOT_BUILT`].
#[test]
fn every_llama_cpp_vocab_fixture_matches() {
    let names = check_vocab_fixtures(&bitnet_testdata::llamacpp_vocab_dir());
    // The sdist's set: a fixture added or removed is noticed here.
    assert_eq!(
        names,
        [
            "aquila",
            "baichuan",
            "bert-bge",
            "command-r",
            "deepseek-coder",
            "deepseek-llm",
            "falcon",
            "gemma-4",
            "gpt-2",
            "gpt-neox",
            "llama-bpe",
            "llama-spm",
            "mpt",
            "nomic-bert-moe",
            "phi-3",
            "qwen2",
            "qwen35",
            "refact",
            "starcoder",
        ]
    );
}

/// Every `tokenizer.ggml.pre` value llama.cpp's `llama-vocab.cpp` (0c1e570, from the same sdist)
/// compares against is accepted, and this crate accepts no name llama.cpp does not know.
#[test]
fn every_llama_cpp_pre_tokenizer_name_is_known() {
    let source =
        std::fs::read_to_string(bitnet_testdata::llamacpp_vocab_dir().join("llama-vocab.cpp"))
            .unwrap();
    let needle = "tokenizer_pre == \"";
    let mut llama_cpp: Vec<&str> = source
        .match_indices(needle)
        .filter_map(|(i, _)| {
            let rest = &source[i + needle.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect();
    llama_cpp.sort_unstable();
    llama_cpp.dedup();
    assert!(llama_cpp.len() > 80, "parsed only {llama_cpp:?}");
    let mut ours = bitnet_tokenizer::known_pre_tokenizers();
    ours.sort_unstable();
    let missing: Vec<_> = llama_cpp.iter().filter(|n| !ours.contains(n)).collect();
    let extra: Vec<_> = ours.iter().filter(|n| !llama_cpp.contains(n)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "not accepted here: {missing:?}; unknown to llama.cpp: {extra:?}"
    );
}

/// Pre-tokenizer names llama.cpp 0c1e570 itself cannot run on the fixture strings with the relabelled
/// vocabulary (see `llama_cpp_failed` in the reference file): not compared. `whitespace` aborts
/// (SIGABRT) under `tokenizer.ggml.model = gpt2`; llama.cpp meant it for its own `whitespace`
/// tokenizer model (jina-embeddings-v2-base-zh), which is not built here.
const PRE_TOKENIZERS_LLAMA_CPP_FAILS_ON: &[&str] = &["whitespace"];

/// Every pre-tokenizer name on the fixture strings, against llama.cpp: the ids llama.cpp gives
/// when a fixture vocabulary is relabelled with that `tokenizer.ggml.pre`
/// (`testdata/tokenizer/pre-tokenizers.json`, made by `tools/gen_llamacpp_pre_refs.py`).
#[test]
fn every_pre_tokenizer_matches_llama_cpp() {
    let path = bitnet_testdata::testdata("tokenizer/pre-tokenizers.json");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let strings: Vec<String> = serde_json::from_value(reference["strings"].clone()).unwrap();
    let ids: std::collections::BTreeMap<String, Vec<Vec<u32>>> =
        serde_json::from_value(reference["ids"].clone()).unwrap();
    // Names on which llama.cpp itself failed when the generator ran them: no reference ids.
    let failed: std::collections::BTreeMap<String, String> =
        serde_json::from_value(reference["llama_cpp_failed"].clone()).unwrap();
    let failed_names: Vec<&str> = failed.keys().map(String::as_str).collect();
    assert_eq!(
        failed_names, PRE_TOKENIZERS_LLAMA_CPP_FAILS_ON,
        "llama.cpp's failures changed: {failed:?}"
    );
    let mut names: Vec<&str> = ids
        .keys()
        .chain(failed.keys())
        .map(String::as_str)
        .collect();
    let mut ours = bitnet_tokenizer::known_pre_tokenizers();
    names.sort_unstable();
    ours.sort_unstable();
    assert_eq!(
        names, ours,
        "the reference covers exactly the names this crate accepts"
    );
    let dir = bitnet_testdata::llamacpp_vocab_dir();
    let mut bases = std::collections::HashMap::new();
    let mut failures = String::new();
    for (name, expected) in &ids {
        let base = reference["base"][name].as_str().unwrap();
        let spec = bases.entry(base).or_insert_with(|| {
            let file = bitnet_gguf::GgufFile::open(dir.join(base)).unwrap();
            VocabSpec::from_gguf(&file).unwrap()
        });
        let mut spec = spec.clone();
        spec.model = "gpt2".to_string();
        spec.pre = Some(name.clone());
        let tok = Tokenizer::from_spec(spec).unwrap();
        let cases: Vec<(String, Vec<u32>)> =
            strings.iter().cloned().zip(expected.clone()).collect();
        let report = check_cases(&tok, &cases);
        if !report.is_empty() {
            writeln!(failures, "== pre {name} (on {base})\n{report}").unwrap();
        }
    }
    assert!(failures.is_empty(), "{failures}");
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
