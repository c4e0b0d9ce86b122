//! The tokenizer of a checkpoint as GGUF `tokenizer.ggml.*` metadata. The vocabulary itself
//! (tokens, scores, token types, merges) is read by `bitnet-tokenizer` from `tokenizer.model`
//! (SentencePiece) or `tokenizer.json`; this module adds what the HF side files say about it
//! (`tokenizer_config.json`: BOS/EOS flags and tokens, the chat template; `config.json`: special
//! ids) and lays the keys out in the order llama.cpp's converter writes them.

use std::path::Path;

use bitnet_gguf::MetadataValue;
use bitnet_tokenizer::{TokenType, VocabSpec};
use serde_json::Value;

use crate::config::{read_json, ModelConfig};
use crate::error::{ConvertError, Result};

/// Reads the vocabulary of `dir`: `tokenizer.model` if present (SentencePiece, as llama.cpp's
/// converter prefers it), else `tokenizer.json`; then applies `tokenizer_config.json` and the
/// special ids of `config.json`.
pub fn load_vocab(dir: &Path, cfg: &ModelConfig) -> Result<VocabSpec> {
    let spm = dir.join("tokenizer.model");
    let json = dir.join("tokenizer.json");
    let mut spec = if spm.is_file() {
        VocabSpec::from_sentencepiece_model(&spm)
            .map_err(|e| ConvertError::Tokenizer(format!("{}: {e}", spm.display())))?
    } else if json.is_file() {
        spec_from_tokenizer_json(&json)?
    } else {
        return Err(ConvertError::Tokenizer(format!(
            "{}: neither tokenizer.model nor tokenizer.json found",
            dir.display()
        )));
    };
    let tok_config = dir.join("tokenizer_config.json");
    if tok_config.is_file() {
        apply_tokenizer_config(&mut spec, &read_json(&tok_config)?, &tok_config)?;
    }
    if spec.model == "llama" {
        // Written out explicitly: llama.cpp's defaults for SentencePiece vocabularies.
        spec.add_bos.get_or_insert(true);
        spec.add_eos.get_or_insert(false);
    }
    // The model's own config names its special ids; they win over the tokenizer's guesses.
    spec.bos = cfg.bos_token_id.or(spec.bos);
    spec.eos = cfg.eos_token_id.or(spec.eos);
    spec.pad = cfg.pad_token_id.or(spec.pad);
    check_vocab(&spec, cfg)?;
    Ok(spec)
}

/// The LLaMA-3 pre-tokenizer split, as `tokenizer.json` spells it.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Which llama.cpp pre-tokenizer (`tokenizer.ggml.pre`) a byte-level `tokenizer.json` uses:
/// `llama-bpe` for the LLaMA-3 split followed by a regex-free ByteLevel step, `gpt-2` for a
/// plain ByteLevel pre-tokenizer with its built-in regex.
fn pre_tokenizer_name(pre: &Value) -> Option<&'static str> {
    let kind = pre.get("type").and_then(Value::as_str)?;
    match kind {
        "ByteLevel" if pre.get("use_regex").and_then(Value::as_bool) != Some(false) => {
            Some("gpt-2")
        }
        "Sequence" => {
            let steps = pre.get("pretokenizers")?.as_array()?;
            match steps.as_slice() {
                [split, byte_level]
                    if split.get("type").and_then(Value::as_str) == Some("Split")
                        && split.pointer("/pattern/Regex").and_then(Value::as_str)
                            == Some(LLAMA3_SPLIT)
                        && byte_level.get("type").and_then(Value::as_str) == Some("ByteLevel") =>
                {
                    Some("llama-bpe")
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// A byte-level BPE `tokenizer.json` as a GGUF vocabulary (llama.cpp's `gpt2` model): the
/// model's vocabulary and merges, added tokens as control (special) or user-defined tokens,
/// holes in the id range as unused `[PAD<id>]` tokens.
fn spec_from_tokenizer_json(path: &Path) -> Result<VocabSpec> {
    let json = read_json(path)?;
    let bad = |reason: String| ConvertError::Tokenizer(format!("{}: {reason}", path.display()));
    let model = json
        .get("model")
        .ok_or_else(|| bad("no \"model\"".into()))?;
    let model_type = model.get("type").and_then(Value::as_str);
    if model_type != Some("BPE") {
        return Err(bad(format!(
            "model type {model_type:?} (only byte-level BPE tokenizer.json files are supported; a SentencePiece model needs its tokenizer.model)"
        )));
    }
    let pre_json = json.get("pre_tokenizer").unwrap_or(&Value::Null);
    let pre = pre_tokenizer_name(pre_json).ok_or_else(|| {
        bad(format!(
            "pre-tokenizer {pre_json} is not one this converter recognises (LLaMA-3 or GPT-2 byte-level)"
        ))
    })?;
    let vocab = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("model.vocab is not an object".into()))?;
    let mut entries: Vec<(u32, String, TokenType)> = Vec::with_capacity(vocab.len());
    for (text, id) in vocab {
        let id = id
            .as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| bad(format!("vocab[{text:?}] is not a token id")))?;
        entries.push((id, text.clone(), TokenType::Normal));
    }
    for added in json
        .get("added_tokens")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let id = added
            .get("id")
            .and_then(Value::as_u64)
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| bad(format!("added token {added} has no id")))?;
        let text = added
            .get("content")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("added token {id} has no content")))?;
        let special = added
            .get("special")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let ty = if special {
            TokenType::Control
        } else {
            TokenType::UserDefined
        };
        entries.push((id, text.to_string(), ty));
    }
    let n = entries.iter().map(|e| e.0 as usize + 1).max().unwrap_or(0);
    let mut tokens: Vec<Option<String>> = vec![None; n];
    let mut token_types = vec![TokenType::Unused; n];
    // Added tokens come last, so they win where they redefine a vocabulary id.
    for (id, text, ty) in entries {
        tokens[id as usize] = Some(text);
        token_types[id as usize] = ty;
    }
    let tokens = tokens
        .into_iter()
        .enumerate()
        .map(|(id, t)| t.unwrap_or_else(|| format!("[PAD{id}]")))
        .collect();
    let merges = model
        .get("merges")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, m)| match m {
            Value::String(s) => Ok(s.clone()),
            Value::Array(pair) => match pair.as_slice() {
                [Value::String(a), Value::String(b)] => Ok(format!("{a} {b}")),
                _ => Err(bad(format!("merge #{i} is not a pair of strings"))),
            },
            _ => Err(bad(format!("merge #{i} is not a string or a pair"))),
        })
        .collect::<Result<Vec<String>>>()?;
    Ok(VocabSpec {
        model: "gpt2".to_string(),
        pre: Some(pre.to_string()),
        tokens,
        token_types,
        merges,
        ..VocabSpec::default()
    })
}

/// `add_bos_token`, `add_eos_token`, `bos_token` / `eos_token` / `unk_token` / `pad_token`
/// (a string or an `{"content": ...}` object) and `chat_template` (a string, or a list of named
/// templates of which `default` is taken).
fn apply_tokenizer_config(spec: &mut VocabSpec, tc: &Value, path: &Path) -> Result<()> {
    if let Some(v) = tc.get("add_bos_token").and_then(Value::as_bool) {
        spec.add_bos = Some(v);
    }
    if let Some(v) = tc.get("add_eos_token").and_then(Value::as_bool) {
        spec.add_eos = Some(v);
    }
    let token_id = |key: &str| -> Option<u32> {
        let text = match tc.get(key)? {
            Value::String(s) => s.as_str(),
            Value::Object(o) => o.get("content")?.as_str()?,
            _ => return None,
        };
        spec.tokens.iter().position(|t| t == text).map(|i| i as u32)
    };
    let (bos, eos, unk, pad) = (
        token_id("bos_token"),
        token_id("eos_token"),
        token_id("unk_token"),
        token_id("pad_token"),
    );
    spec.bos = bos.or(spec.bos);
    spec.eos = eos.or(spec.eos);
    spec.unk = unk.or(spec.unk);
    spec.pad = pad.or(spec.pad);
    match tc.get("chat_template") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) => spec.chat_template = Some(t.clone()),
        Some(Value::Array(named)) => {
            spec.chat_template = named
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                .and_then(|t| t.get("template"))
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        Some(other) => {
            return Err(ConvertError::Json {
                path: path.to_path_buf(),
                reason: format!("chat_template must be a string or a list, got {other}"),
            })
        }
    }
    Ok(())
}

/// The vocabulary must fit the embedding: no more tokens than rows, ids in range.
fn check_vocab(spec: &VocabSpec, cfg: &ModelConfig) -> Result<()> {
    let n = spec.tokens.len();
    if n > cfg.vocab_size {
        return Err(ConvertError::Tokenizer(format!(
            "{n} tokens, but the model has only {} embedding rows",
            cfg.vocab_size
        )));
    }
    for (what, id) in [("BOS", spec.bos), ("EOS", spec.eos), ("unknown", spec.unk)] {
        if let Some(id) = id.filter(|&id| id as usize >= n) {
            return Err(ConvertError::Tokenizer(format!(
                "{what} id {id} is outside the {n}-token vocabulary"
            )));
        }
    }
    Ok(())
}

/// The GGUF value of a token type (`tokenizer.ggml.token_type`).
fn token_type_id(t: TokenType) -> i32 {
    match t {
        TokenType::Normal => 1,
        TokenType::Unknown => 2,
        TokenType::Control => 3,
        TokenType::UserDefined => 4,
        TokenType::Unused => 5,
        TokenType::Byte => 6,
    }
}

/// The `tokenizer.*` keys for `spec`, in llama.cpp's order. A vocabulary shorter than the
/// embedding is padded with `[PAD<id>]` unused tokens, as llama.cpp's converter does.
pub fn vocab_metadata(spec: &VocabSpec, vocab_size: usize) -> Vec<(String, MetadataValue)> {
    use MetadataValue as M;
    let mut tokens = spec.tokens.clone();
    let mut scores = spec.scores.clone();
    let mut types: Vec<i32> = spec.token_types.iter().map(|&t| token_type_id(t)).collect();
    if types.is_empty() {
        types = vec![1; tokens.len()];
    }
    let has_scores = !scores.is_empty();
    for id in tokens.len()..vocab_size {
        tokens.push(format!("[PAD{id}]"));
        if has_scores {
            scores.push(-1000.0);
        }
        types.push(token_type_id(TokenType::Unused));
    }
    let mut kv: Vec<(String, MetadataValue)> = Vec::new();
    let mut put = |k: &str, v: MetadataValue| kv.push((format!("tokenizer.{k}"), v));
    put("ggml.model", M::String(spec.model.clone()));
    put(
        "ggml.pre",
        M::String(spec.pre.clone().unwrap_or_else(|| "default".to_string())),
    );
    put(
        "ggml.tokens",
        M::Array(tokens.into_iter().map(M::String).collect()),
    );
    if has_scores {
        put(
            "ggml.scores",
            M::Array(scores.into_iter().map(M::F32).collect()),
        );
    }
    put(
        "ggml.token_type",
        M::Array(types.into_iter().map(M::I32).collect()),
    );
    if !spec.merges.is_empty() {
        put(
            "ggml.merges",
            M::Array(spec.merges.iter().cloned().map(M::String).collect()),
        );
    }
    for (key, id) in [
        ("ggml.bos_token_id", spec.bos),
        ("ggml.eos_token_id", spec.eos),
        ("ggml.unknown_token_id", spec.unk),
        ("ggml.padding_token_id", spec.pad),
        ("ggml.cls_token_id", spec.cls),
        ("ggml.seperator_token_id", spec.sep),
    ] {
        if let Some(id) = id {
            put(key, M::U32(id));
        }
    }
    for (key, flag) in [
        ("ggml.add_bos_token", spec.add_bos),
        ("ggml.add_eos_token", spec.add_eos),
        ("ggml.add_space_prefix", spec.add_space_prefix),
        ("ggml.normalizer.lowercase", spec.lowercase),
        ("ggml.normalizer.strip_accents", spec.strip_accents),
    ] {
        if let Some(flag) = flag {
            put(key, M::Bool(flag));
        }
    }
    if let Some(t) = &spec.chat_template {
        put("chat_template", M::String(t.clone()));
    }
    kv
}
