//! Decoding llama.cpp's own token ids (from the oracle fixtures) gives the original text back,
//! whole or token by token, with special tokens shown or hidden on request; streaming never
//! emits half a UTF-8 character.

use bitnet_tokenizer::Tokenizer;

fn prompts(model: &str) -> Vec<(String, String, serde_json::Value)> {
    let path = bitnet_testdata::oracle(&format!("{model}/llamacpp-reference.json"));
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    reference["tokenization"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["text"].as_str().unwrap().to_string(),
                p.clone(),
            )
        })
        .collect()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// Streams `ids`, checking that no chunk contains U+FFFD; returns the concatenation.
fn stream(tok: &Tokenizer, ids: &[u32], show_special: bool) -> String {
    let mut decoder = tok.stream_decoder(show_special);
    let mut text = String::new();
    for &id in ids {
        let chunk = decoder.push(id).unwrap();
        assert!(!chunk.contains('\u{FFFD}'), "partial character emitted");
        text.push_str(&chunk);
    }
    let rest = decoder.finish();
    assert!(rest.is_empty(), "bytes left over: {rest:?}");
    text
}

fn check_model(model: &str, tok: &Tokenizer, special_texts: &[&str]) {
    for (name, text, p) in prompts(model) {
        let no_bos = ids(&p["ids_no_bos"]);
        // The chat prompt holds control tokens: shown, it is the text; hidden, they are gone.
        assert_eq!(tok.decode(&no_bos, true).unwrap(), text, "{model} {name}");
        assert_eq!(
            stream(tok, &no_bos, true),
            text,
            "{model} {name} (streamed)"
        );
        let mut hidden = text.clone();
        for s in special_texts {
            hidden = hidden.replace(s, "");
        }
        assert_eq!(
            tok.decode(&no_bos, false).unwrap(),
            hidden,
            "{model} {name}"
        );
        // With BOS first and special tokens hidden, the text is the same.
        let default = ids(&p["ids_default"]);
        assert_eq!(
            tok.decode(&default, false).unwrap(),
            hidden,
            "{model} {name} (BOS)"
        );
    }
}

#[test]
fn smollm2_ids_decode_to_the_prompts() {
    let tok = Tokenizer::from_gguf_path(bitnet_testdata::smollm2()).unwrap();
    check_model("smollm2", &tok, &["<|im_start|>", "<|im_end|>"]);
}

#[test]
fn gemma3_ids_decode_to_the_prompts() {
    let tok = Tokenizer::from_gguf_path(bitnet_testdata::gemma3()).unwrap();
    check_model("gemma3", &tok, &["<start_of_turn>", "<end_of_turn>"]);
}

#[test]
fn split_characters_are_held_back_until_complete() {
    // llama.cpp's LLaMA SPM ids for "🚀" are the four byte-fallback tokens <0xF0><0x9F><0x9A><0x80>.
    let tok = Tokenizer::from_gguf_path(bitnet_testdata::oracle(
        "tokenizer/ggml-vocab-llama-spm.gguf",
    ))
    .unwrap();
    let ids: Vec<u32> = ["<0xF0>", "<0x9F>", "<0x9A>", "<0x80>"]
        .iter()
        .map(|t| tok.token_id(t).unwrap())
        .collect();
    let mut decoder = tok.stream_decoder(false);
    for (i, &id) in ids.iter().enumerate() {
        let chunk = decoder.push(id).unwrap();
        if i < 3 {
            assert_eq!(chunk, "");
            assert_eq!(decoder.pending_bytes().len(), i + 1);
        } else {
            assert_eq!(chunk, "🚀");
        }
    }
    // An interrupted character becomes U+FFFD at the end of the stream.
    let mut decoder = tok.stream_decoder(false);
    assert_eq!(decoder.push(ids[0]).unwrap(), "");
    assert_eq!(decoder.finish(), "\u{FFFD}");
    // A byte that cannot start a character is replaced at once.
    let lone = tok.token_id("<0x80>").unwrap();
    let a = tok.token_id("▁a").unwrap();
    let mut decoder = tok.stream_decoder(false);
    assert_eq!(decoder.push(lone).unwrap(), "\u{FFFD}");
    assert_eq!(decoder.push(a).unwrap(), " a");
}

#[test]
fn out_of_range_ids_are_errors() {
    let tok = Tokenizer::from_gguf_path(bitnet_testdata::oracle("tokenizer/ggml-vocab-gpt-2.gguf"))
        .unwrap();
    assert!(tok.decode(&[50257], false).is_err());
    assert!(tok.decode(&[50256], true).is_ok());
}
