//! Chat templates: the SmolLM2 GGUF's own Jinja template renders exactly as Python jinja2 does
//! (tests/data/smollm2-chat.json, written by tools/gen_tokenizer_refs.py); built-in formats give
//! the strings their models document, and the prompts they produce tokenize to llama.cpp's ids.

use bitnet_tokenizer::chat::{detect_builtin, ChatTemplate, Message, BUILTIN_TEMPLATES};
use bitnet_tokenizer::{Tokenizer, TokenizerError, VocabSpec};

fn smollm2() -> Tokenizer {
    Tokenizer::from_gguf_path(bitnet_testdata::smollm2()).unwrap()
}

fn llamacpp_chat_prompt(model: &str) -> (String, Vec<u32>) {
    let path = bitnet_testdata::oracle(&format!("{model}/llamacpp-reference.json"));
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let chat = reference["tokenization"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "chat")
        .unwrap();
    let ids = chat["ids_default"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    (chat["text"].as_str().unwrap().to_string(), ids)
}

#[test]
fn smollm2_file_template_renders_like_jinja2() {
    let tok = smollm2();
    let template = ChatTemplate::for_model(&tok).unwrap();
    assert_eq!(template.name(), "tokenizer.chat_template");
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/smollm2-chat.json");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(reference["template"].as_str(), tok.chat_template());
    let cases = reference["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let messages: Vec<Message> = serde_json::from_value(case["messages"].clone()).unwrap();
        let add = case["add_generation_prompt"].as_bool().unwrap();
        let rendered = template.render(&messages, add).unwrap();
        assert_eq!(rendered, case["rendered"].as_str().unwrap());
    }
    // The two-turn conversation, spelled out: ChatML with SmolLM2's default system prompt.
    let two_turns = [
        Message::user("What is the capital of France?"),
        Message::assistant("The capital of France is Paris."),
    ];
    assert_eq!(
        template.render(&two_turns, false).unwrap(),
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nWhat is the capital of France?<|im_end|>\n\
         <|im_start|>assistant\nThe capital of France is Paris.<|im_end|>\n"
    );
    // Generation stops at <|im_end|> (id 2) and <|endoftext|> (id 0).
    let stops = template.stop_token_ids(&tok);
    assert!(stops.contains(&2) && stops.contains(&0), "{stops:?}");
}

#[test]
fn builtin_chatml_prompt_tokenizes_like_llama_cpp() {
    let tok = smollm2();
    let (text, ids) = llamacpp_chat_prompt("smollm2");
    let template = ChatTemplate::builtin("chatml")
        .unwrap()
        .with_special_tokens_of(&tok);
    let messages = [Message::user("What is the capital of France?")];
    assert_eq!(template.render(&messages, true).unwrap(), text);
    assert_eq!(template.encode(&tok, &messages, true).unwrap(), ids);
}

#[test]
fn builtin_gemma_prompt_tokenizes_like_llama_cpp() {
    let tok = Tokenizer::from_gguf_path(bitnet_testdata::gemma3()).unwrap();
    assert!(tok.chat_template().is_none());
    assert_eq!(detect_builtin(&tok), "gemma");
    let template = ChatTemplate::for_model(&tok).unwrap();
    let (text, ids) = llamacpp_chat_prompt("gemma3");
    let messages = [Message::user("What is the capital of France?")];
    // The template writes <bos> itself; encoding must not add a second one.
    assert_eq!(
        template.render(&messages, true).unwrap(),
        format!("<bos>{text}")
    );
    assert_eq!(template.encode(&tok, &messages, true).unwrap(), ids);
    let stops = template.stop_token_ids(&tok);
    assert!(stops.contains(&106) && stops.contains(&1), "{stops:?}"); // <end_of_turn>, <eos>
}

/// The LLaMA-3 vocabulary under BitNet 2B-4T's architecture name.
fn bitnet_2b4t_vocab() -> Tokenizer {
    let file = bitnet_gguf::GgufFile::open(bitnet_testdata::oracle(
        "tokenizer/ggml-vocab-llama-bpe.gguf",
    ))
    .unwrap();
    let mut spec = VocabSpec::from_gguf(&file).unwrap();
    spec.architecture = Some("bitnet-b1.58".into());
    Tokenizer::from_spec(spec).unwrap()
}

#[test]
fn bitnet_builtin_gives_the_documented_string() {
    let tok = bitnet_2b4t_vocab();
    assert_eq!(detect_builtin(&tok), "bitnet");
    let template = ChatTemplate::for_model(&tok).unwrap();
    assert_eq!(template.name(), "bitnet");
    let messages = [
        Message::system("You are a helpful assistant."),
        Message::user("What is 1-bit quantization?"),
    ];
    // FORMATS.md §1: <|begin_of_text|>System: {sys}<|eot_id|>User: {msg}<|eot_id|>Assistant:
    let expected = "<|begin_of_text|>System: You are a helpful assistant.<|eot_id|>User: What is 1-bit quantization?<|eot_id|>Assistant: ";
    assert_eq!(template.render(&messages, true).unwrap(), expected);
    let ids = template.encode(&tok, &messages, true).unwrap();
    assert_eq!(ids[0], 128000);
    assert_ne!(ids[1], 128000, "double BOS");
    assert_eq!(ids.iter().filter(|&&id| id == 128009).count(), 2);
    assert_eq!(tok.decode(&ids, true).unwrap(), expected);
    // Generation stops at <|eot_id|> (128009) and <|end_of_text|> (128001).
    let stops = template.stop_token_ids(&tok);
    assert!(
        stops.contains(&128009) && stops.contains(&128001),
        "{stops:?}"
    );
}

#[test]
fn every_builtin_compiles_and_renders() {
    let messages = [
        Message::system("S"),
        Message::user("U1"),
        Message::assistant("A1"),
        Message::user("U2"),
    ];
    for t in BUILTIN_TEMPLATES {
        let template = ChatTemplate::builtin(t.name)
            .unwrap()
            .with_special_tokens("<BOS>", "<EOS>");
        let text = template.render(&messages, true).unwrap();
        for part in ["U1", "A1", "U2"] {
            assert!(text.contains(part), "{}: {text:?} lacks {part}", t.name);
        }
        for alias in t.aliases {
            assert_eq!(ChatTemplate::builtin(alias).unwrap().name(), t.name);
        }
    }
    assert!(matches!(
        ChatTemplate::builtin("no-such-format"),
        Err(TokenizerError::UnknownTemplate(_))
    ));
}

#[test]
fn llama3_builtin_matches_the_published_format() {
    let template = ChatTemplate::builtin("llama3")
        .unwrap()
        .with_special_tokens("<|begin_of_text|>", "<|end_of_text|>");
    let text = template
        .render(&[Message::system("Be brief."), Message::user("Hi")], true)
        .unwrap();
    assert_eq!(
        text,
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>\
         <|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\n"
    );
}

#[test]
fn raise_exception_becomes_a_template_error() {
    let template = ChatTemplate::from_jinja(
        "strict",
        "{% if messages[0].role != 'user' %}{{ raise_exception('first message must be from the user') }}{% endif %}ok",
        vec![],
    )
    .unwrap();
    assert_eq!(template.render(&[Message::user("x")], false).unwrap(), "ok");
    let err = template
        .render(&[Message::assistant("x")], false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("first message must be from the user"), "{err}");
    assert!(matches!(
        ChatTemplate::from_jinja("broken", "{% for %}", vec![]),
        Err(TokenizerError::Template { .. })
    ));
}
