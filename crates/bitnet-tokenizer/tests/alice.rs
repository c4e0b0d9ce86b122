//! The whole of alice29.txt (152,089 bytes, CRLF line ends) encodes with the LLaMA-3 vocabulary
//! (BitNet 2B-4T's) to exactly the ids PyPI `tokenizers` gives, both through llama.cpp's GGUF of
//! that vocabulary and through the `tokenizer.json`. Expected ids: tests/data/alice29-llama3.ids,
//! written by tools/gen_tokenizer_refs.py.

use bitnet_tokenizer::{EncodeOptions, Tokenizer};

const LITERAL: EncodeOptions = EncodeOptions {
    add_special: false,
    parse_special: false,
};

fn reference() -> (String, Vec<u32>) {
    let text = std::fs::read_to_string(bitnet_testdata::data("alice29.txt")).unwrap();
    let file = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/alice29-llama3.ids"),
    )
    .unwrap();
    let mut lines = file.lines();
    let header = lines.next().unwrap();
    assert!(
        header.contains(&format!("bytes={}", text.len())),
        "reference made from another text: {header}"
    );
    let ids: Vec<u32> = lines
        .flat_map(|l| l.split_whitespace().map(|t| t.parse::<u32>().unwrap()))
        .collect();
    assert!(header.contains(&format!("ids={}", ids.len())), "{header}");
    (text, ids)
}

fn first_difference(got: &[u32], expected: &[u32]) -> String {
    let i = got
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(expected.len()));
    let window = |v: &[u32]| v[i.saturating_sub(3)..(i + 5).min(v.len())].to_vec();
    format!(
        "lengths {} vs {}; first difference at {i}: got {:?} expected {:?}",
        got.len(),
        expected.len(),
        window(got),
        window(expected)
    )
}

#[test]
fn alice_through_gguf_vocab_equals_hf_tokenizers() {
    let (text, expected) = reference();
    assert_eq!(expected.len(), 38969);
    let tok = Tokenizer::from_gguf_path(bitnet_testdata::oracle(
        "tokenizer/ggml-vocab-llama-bpe.gguf",
    ))
    .unwrap();
    let got = tok.encode_with(&text, LITERAL).unwrap();
    assert!(got == expected, "{}", first_difference(&got, &expected));
    assert!(tok.decode(&got, false).unwrap() == text);
}

#[test]
fn alice_through_tokenizer_json_equals_hf_tokenizers() {
    let (text, expected) = reference();
    let tok = Tokenizer::from_tokenizer_json(bitnet_testdata::llama3_tokenizer_json()).unwrap();
    let got = tok.encode_with(&text, LITERAL).unwrap();
    assert!(got == expected, "{}", first_difference(&got, &expected));
    assert!(tok.decode(&got, false).unwrap() == text);
}
