//! The LLaMA-3 `tokenizer.json` (BitNet 2B-4T's vocabulary) as GGUF metadata, against
//! llama.cpp's own vocab-only GGUF of the same tokenizer (`oracle/tokenizer/ggml-vocab-llama-bpe.gguf`,
//! written by llama.cpp's `convert_hf_to_gguf.py`): tokens, token types, merges, pre-tokenizer
//! and special ids identical.

use bitnet_convert::config::ModelConfig;
use bitnet_convert::vocab::{load_vocab, vocab_metadata};
use bitnet_gguf::GgufFile;

#[test]
fn llama3_tokenizer_json_gives_llama_cpp_vocab() {
    let json = bitnet_testdata::llama3_tokenizer_json();
    let dir = json.parent().unwrap();
    // The ids 2B-4T's config.json names (FORMATS.md §1).
    let cfg = ModelConfig::from_json(&serde_json::json!({
        "model_type": "bitnet", "vocab_size": 128256, "hidden_size": 2560,
        "intermediate_size": 6912, "num_hidden_layers": 30, "num_attention_heads": 20,
        "num_key_value_heads": 5, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0, "tie_word_embeddings": true,
        "bos_token_id": 128000, "eos_token_id": 128001
    }))
    .unwrap();
    let spec = load_vocab(dir, &cfg).unwrap();
    let ours = vocab_metadata(&spec, cfg.vocab_size);
    let reference = GgufFile::open(bitnet_testdata::oracle(
        "tokenizer/ggml-vocab-llama-bpe.gguf",
    ))
    .unwrap();
    let mut compared = 0;
    for (key, value) in reference
        .metadata()
        .iter()
        .filter(|(k, _)| k.starts_with("tokenizer."))
    {
        let mine = ours.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        assert!(mine == Some(value), "{key} differs");
        compared += 1;
    }
    // model, pre, tokens, token_type, merges, bos, eos.
    assert_eq!(compared, 7);
}
