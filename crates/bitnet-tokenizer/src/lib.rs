//! bitnet-tokenizer: text to token ids and back, and chat prompts.
//!
//! - [`Tokenizer`] built from GGUF metadata ([`Tokenizer::from_gguf`]: BPE with the pre-tokenizer
//!   `tokenizer.ggml.pre` names, SentencePiece with scores and byte fallback, Unigram, or WordPiece) or
//!   from a Hugging Face `tokenizer.json` ([`Tokenizer::from_tokenizer_json`]), with llama.cpp's
//!   rules for special tokens, BOS/EOS and the SentencePiece space prefix.
//! - Encoder inputs: [`Tokenizer::encode_truncated`] (cut to a context, special tokens kept) and
//!   [`Tokenizer::encode_pair`] (`[CLS] a [SEP] b [SEP]` with segments, for rerankers).
//! - [`StreamDecoder`]: token-by-token text that never splits a UTF-8 character.
//! - [`chat`]: chat templates (the file's Jinja template, or a built-in one) and their stop tokens.

#![forbid(unsafe_code)]

mod bpe;
pub mod chat;
mod encoder_inputs;
mod error;
mod gguf;
mod score_merges;
mod sentencepiece_model;
mod special;
mod stream;
mod tokenizer;
mod ugm;
mod vocab;
mod wordpiece;

pub use bpe::known_pre_tokenizers;
pub use encoder_inputs::EncodedPair;
pub use error::{Result, TokenizerError};
pub use stream::StreamDecoder;
pub use tokenizer::{EncodeOptions, Tokenizer};
pub use vocab::{ResolvedFlags, TokenType, VocabKind, VocabSpec};
