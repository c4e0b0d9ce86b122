//! Reading a [`VocabSpec`] from GGUF metadata (`tokenizer.ggml.*`, `tokenizer.chat_template`,
//! `general.architecture`, `general.name`). Works on vocab-only files as well as full models.

use crate::{Result, TokenType, TokenizerError, VocabSpec};
use bitnet_gguf::{GgufFile, MetadataValue};

fn array<'a>(file: &'a GgufFile, key: &'static str) -> Result<Option<&'a [MetadataValue]>> {
    match file.get(key) {
        None => Ok(None),
        Some(v) => v.as_array().map(Some).ok_or(TokenizerError::WrongType {
            key,
            expected: "an array",
        }),
    }
}

fn strings(file: &GgufFile, key: &'static str) -> Result<Vec<String>> {
    array(file, key)?
        .unwrap_or(&[])
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or(TokenizerError::WrongType {
                    key,
                    expected: "an array of strings",
                })
        })
        .collect()
}

fn id(file: &GgufFile, key: &'static str) -> Result<Option<u32>> {
    match file.get(key) {
        None => Ok(None),
        Some(v) => match v.as_i64() {
            // llama.cpp writes -1 (as a signed type) for "no such token".
            Some(n) if n < 0 => Ok(None),
            Some(n) => u32::try_from(n)
                .map(Some)
                .map_err(|_| TokenizerError::WrongType {
                    key,
                    expected: "a token id below 2^32",
                }),
            None => Err(TokenizerError::WrongType {
                key,
                expected: "an integer token id",
            }),
        },
    }
}

/// An array of u8 or i8 (the charsmap), as bytes; empty when absent.
fn bytes(file: &GgufFile, key: &'static str) -> Result<Vec<u8>> {
    array(file, key)?
        .unwrap_or(&[])
        .iter()
        .map(|v| match v {
            MetadataValue::U8(b) => Ok(*b),
            MetadataValue::I8(b) => Ok(*b as u8),
            _ => Err(TokenizerError::WrongType {
                key,
                expected: "an array of bytes",
            }),
        })
        .collect()
}

fn flag(file: &GgufFile, key: &'static str) -> Result<Option<bool>> {
    match file.get(key) {
        None => Ok(None),
        Some(v) => v.as_bool().map(Some).ok_or(TokenizerError::WrongType {
            key,
            expected: "a boolean",
        }),
    }
}

fn string(file: &GgufFile, key: &'static str) -> Result<Option<String>> {
    match file.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .map(|s| Some(s.to_string()))
            .ok_or(TokenizerError::WrongType {
                key,
                expected: "a string",
            }),
    }
}

impl VocabSpec {
    /// Reads the tokenizer description from an open GGUF file.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let model = string(file, "tokenizer.ggml.model")?
            .ok_or(TokenizerError::MissingKey("tokenizer.ggml.model"))?;
        let tokens = strings(file, "tokenizer.ggml.tokens")?;
        if tokens.is_empty() {
            return Err(TokenizerError::MissingKey("tokenizer.ggml.tokens"));
        }
        let scores = array(file, "tokenizer.ggml.scores")?
            .unwrap_or(&[])
            .iter()
            .map(|v| {
                v.as_f32().ok_or(TokenizerError::WrongType {
                    key: "tokenizer.ggml.scores",
                    expected: "an array of f32",
                })
            })
            .collect::<Result<Vec<f32>>>()?;
        let token_types = array(file, "tokenizer.ggml.token_type")?
            .unwrap_or(&[])
            .iter()
            .map(|v| {
                v.as_i64()
                    .map(TokenType::from_gguf)
                    .ok_or(TokenizerError::WrongType {
                        key: "tokenizer.ggml.token_type",
                        expected: "an array of integers",
                    })
            })
            .collect::<Result<Vec<TokenType>>>()?;
        Ok(VocabSpec {
            model,
            pre: string(file, "tokenizer.ggml.pre")?,
            tokens,
            scores,
            token_types,
            merges: strings(file, "tokenizer.ggml.merges")?,
            bos: id(file, "tokenizer.ggml.bos_token_id")?,
            eos: id(file, "tokenizer.ggml.eos_token_id")?,
            eot: id(file, "tokenizer.ggml.eot_token_id")?,
            eom: id(file, "tokenizer.ggml.eom_token_id")?,
            unk: id(file, "tokenizer.ggml.unknown_token_id")?,
            pad: id(file, "tokenizer.ggml.padding_token_id")?,
            cls: id(file, "tokenizer.ggml.cls_token_id")?,
            sep: id(file, "tokenizer.ggml.seperator_token_id")?,
            add_bos: flag(file, "tokenizer.ggml.add_bos_token")?,
            add_eos: flag(file, "tokenizer.ggml.add_eos_token")?,
            add_space_prefix: flag(file, "tokenizer.ggml.add_space_prefix")?,
            add_sep: flag(file, "tokenizer.ggml.add_sep_token")?,
            remove_extra_whitespaces: flag(file, "tokenizer.ggml.remove_extra_whitespaces")?,
            lowercase: flag(file, "tokenizer.ggml.normalizer.lowercase")?,
            strip_accents: flag(file, "tokenizer.ggml.normalizer.strip_accents")?,
            precompiled_charsmap: bytes(file, "tokenizer.ggml.precompiled_charsmap")?,
            architecture: string(file, "general.architecture")?,
            name: string(file, "general.name")?,
            chat_template: string(file, "tokenizer.chat_template")?,
        })
    }
}
