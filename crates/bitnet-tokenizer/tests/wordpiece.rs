//! WordPiece (`bert`) encoding is exact against Hugging Face's BERT tokenizer on the 54 reference
//! sentences of `testdata/embeddings/all-minilm-l6-v2.json` (accents, casing, punctuation, CJK,
//! control characters, long inputs; made by `tools/embeddings/make_refs.py`), both from the
//! checkpoint's `tokenizer.json` and from a GGUF vocabulary in llama.cpp's phantom-space form
//! (llama.cpp's `ggml-vocab-bert-bge.gguf`, the same bert-base-uncased vocabulary).

use bitnet_tokenizer::{EncodeOptions, Tokenizer, VocabKind};

fn reference() -> Vec<(String, Vec<u32>)> {
    let text = std::fs::read_to_string(bitnet_testdata::all_minilm_l6_v2_refs()).unwrap();
    let refs: serde_json::Value = serde_json::from_str(&text).unwrap();
    refs["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let ids = s["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_u64().unwrap() as u32)
                .collect();
            (s["text"].as_str().unwrap().to_string(), ids)
        })
        .collect()
}

fn mismatches(tok: &Tokenizer) -> Vec<String> {
    let cases = reference();
    assert!(cases.len() >= 50, "{} reference sentences", cases.len());
    cases
        .iter()
        .filter_map(|(text, expected)| {
            let got = tok.encode_with(text, EncodeOptions::default()).unwrap();
            (&got != expected).then(|| format!("{text:?}\n  expected {expected:?}\n  got {got:?}"))
        })
        .collect()
}

#[test]
fn tokenizer_json_wordpiece_matches_hugging_face() {
    let path = bitnet_testdata::all_minilm_l6_v2().join("tokenizer.json");
    let tok = Tokenizer::from_tokenizer_json(path).unwrap();
    assert_eq!(tok.kind(), VocabKind::WordPiece);
    let bad = mismatches(&tok);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn gguf_wordpiece_matches_hugging_face() {
    let gguf = bitnet_testdata::llamacpp_vocab_dir().join("ggml-vocab-bert-bge.gguf");
    let tok = Tokenizer::from_gguf_path(gguf).unwrap();
    assert_eq!(tok.kind(), VocabKind::WordPiece);
    assert_eq!((tok.bos(), tok.sep()), (Some(101), Some(102)));
    // the same vocabulary as the checkpoint's vocab.txt, in phantom-space form
    let vocab_txt =
        std::fs::read_to_string(bitnet_testdata::all_minilm_l6_v2().join("vocab.txt")).unwrap();
    let words: Vec<&str> = vocab_txt.lines().collect();
    assert_eq!(words.len(), tok.vocab_size());
    for (id, word) in words.iter().enumerate() {
        let stored = tok.token_text(id as u32).unwrap();
        let expected = if word.starts_with('[') && word.ends_with(']') {
            word.to_string()
        } else if let Some(rest) = word.strip_prefix("##") {
            rest.to_string()
        } else {
            format!("\u{2581}{word}")
        };
        assert_eq!(stored, expected, "token {id}");
    }
    let bad = mismatches(&tok);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn gguf_wordpiece_adds_cls_and_sep_and_parses_specials() {
    let gguf = bitnet_testdata::llamacpp_vocab_dir().join("ggml-vocab-bert-bge.gguf");
    let tok = Tokenizer::from_gguf_path(gguf).unwrap();
    assert_eq!(tok.encode("Hello world").unwrap(), [101, 7592, 2088, 102]);
    assert_eq!(tok.encode("").unwrap(), [101, 102]);
    // a control token written in the text is one token when special tokens are parsed
    assert_eq!(
        tok.encode("a [SEP] b").unwrap(),
        [101, 1037, 102, 1038, 102]
    );
    let literal = EncodeOptions {
        add_special: false,
        parse_special: false,
    };
    assert_eq!(
        tok.encode_with("a [SEP] b", literal).unwrap(),
        [1037, 1031, 19802, 1033, 1038]
    );
    assert_eq!(
        tok.decode(&[101, 7592, 1010, 2088, 999, 102], false)
            .unwrap(),
        " hello, world!"
    );
}
