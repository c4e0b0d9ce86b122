//! Inputs of encoder models (embedders and rerankers):
//!
//! - [`Tokenizer::encode_truncated`] / [`Tokenizer::truncate_ids`]: an input cut to a model's
//!   context on request. Text tokens are dropped from the end; the special tokens the
//!   vocabulary adds around a text (`[CLS]` … `[SEP]`, BOS … EOS) stay, so the result is what
//!   Hugging Face tokenizers give with `truncation=True, max_length=max`.
//! - [`Tokenizer::encode_pair`]: two texts in BERT's pair form, `[CLS] a [SEP] b [SEP]`, with the
//!   segment (token type) of each token: 0 up to and including the first `[SEP]`, 1 after
//!   (a cross-encoder's query and document).

use crate::error::{Result, TokenizerError};
use crate::tokenizer::{EncodeOptions, Tokenizer};
use crate::vocab::{TokenType, VocabKind};

/// A text pair's tokens and the segment (0 or 1) of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPair {
    /// `[CLS] a [SEP] b [SEP]`.
    pub ids: Vec<u32>,
    /// 0 for `[CLS] a [SEP]`, 1 for `b [SEP]`.
    pub segments: Vec<u32>,
}

impl Tokenizer {
    /// `text` encoded with special tokens (as [`Tokenizer::encode`]), cut to at most `max` ids
    /// when longer: the last text tokens are dropped, the special tokens the vocabulary adds
    /// before and after the text are kept. Returns the ids and whether any were dropped.
    pub fn encode_truncated(&self, text: &str, max: usize) -> Result<(Vec<u32>, bool)> {
        let full = self.encode(text)?;
        if full.len() <= max {
            return Ok((full, false));
        }
        let bare = self.encode_with(
            text,
            EncodeOptions {
                add_special: false,
                parse_special: true,
            },
        )?;
        // The added tokens surround the text's own: find where the text starts.
        let added = full.len().checked_sub(bare.len()).ok_or_else(|| {
            TokenizerError::Truncation(
                "the text encodes to more ids without special tokens than with them".into(),
            )
        })?;
        let start = (0..=added)
            .find(|&p| full[p..p + bare.len()] == bare[..])
            .ok_or_else(|| {
                TokenizerError::Truncation(
                    "the special tokens are not around the text's own ids".into(),
                )
            })?;
        if max <= added {
            return Err(TokenizerError::Truncation(format!(
                "a limit of {max} tokens leaves no room for text beside the {added} special tokens"
            )));
        }
        let keep = max - added;
        let mut ids = Vec::with_capacity(max);
        ids.extend_from_slice(&full[..start]);
        ids.extend_from_slice(&bare[..keep]);
        ids.extend_from_slice(&full[start + bare.len()..]);
        Ok((ids, true))
    }

    /// Token ids cut to at most `max` (`max ≥ 1`): the first `max` ids, except that a final
    /// special (control) token such as `[SEP]` or EOS stays last. Returns whether any were
    /// dropped.
    pub fn truncate_ids(&self, ids: &mut Vec<u32>, max: usize) -> bool {
        if ids.len() <= max || max == 0 {
            return false;
        }
        let last = ids[ids.len() - 1];
        let keep_last = max >= 2 && self.token_type(last) == Some(TokenType::Control);
        if keep_last {
            ids.truncate(max - 1);
            ids.push(last);
        } else {
            ids.truncate(max);
        }
        true
    }

    /// `first` and `second` in BERT's pair form `[CLS] first [SEP] second [SEP]` with their
    /// segments. Needs a vocabulary that adds a BOS (`[CLS]`) and has a separator (`[SEP]`):
    /// WordPiece vocabularies read from GGUF.
    pub fn encode_pair(&self, first: &str, second: &str) -> Result<EncodedPair> {
        let (Some(cls), Some(sep), VocabKind::WordPiece) = (self.bos(), self.sep(), self.kind())
        else {
            return Err(TokenizerError::NoPairForm);
        };
        let bare = EncodeOptions {
            add_special: false,
            parse_special: true,
        };
        let a = self.encode_with(first, bare)?;
        let b = self.encode_with(second, bare)?;
        let mut ids = Vec::with_capacity(a.len() + b.len() + 3);
        ids.push(cls);
        ids.extend_from_slice(&a);
        ids.push(sep);
        let first_len = ids.len();
        ids.extend_from_slice(&b);
        ids.push(sep);
        let mut segments = vec![0u32; first_len];
        segments.resize(ids.len(), 1);
        Ok(EncodedPair { ids, segments })
    }
}
