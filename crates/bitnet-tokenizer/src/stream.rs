//! Streaming detokenization: one token in, the text that is now complete out. Bytes of a UTF-8
//! character split across tokens are held back until the character is whole; bytes that can never
//! form a character are emitted as U+FFFD.

use crate::{Result, Tokenizer};

/// Incremental decoder made by [`Tokenizer::stream_decoder`].
#[derive(Debug)]
pub struct StreamDecoder<'a> {
    tokenizer: &'a Tokenizer,
    show_special: bool,
    pending: Vec<u8>,
    /// No text-producing token has been seen yet (for the SentencePiece leading-space rule).
    at_start: bool,
}

impl<'a> StreamDecoder<'a> {
    pub(crate) fn new(tokenizer: &'a Tokenizer, show_special: bool) -> Self {
        StreamDecoder {
            tokenizer,
            show_special,
            pending: Vec::new(),
            at_start: true,
        }
    }

    /// For text that continues a prompt (generation): the SentencePiece rule that drops the
    /// leading space of a sequence's first piece does not apply, as in llama.cpp's output.
    pub fn continuation(mut self) -> Self {
        self.at_start = false;
        self
    }

    /// Adds one token; returns the text completed by it (possibly empty).
    pub fn push(&mut self, id: u32) -> Result<String> {
        let bytes = self.tokenizer.token_bytes(id, self.show_special)?;
        if self.at_start && Some(id) != self.tokenizer.bos() {
            self.at_start = false;
            let is_text = matches!(
                self.tokenizer.token_type(id),
                Some(crate::TokenType::Normal | crate::TokenType::Byte)
            );
            if is_text && self.tokenizer.strips_leading_space() && bytes.first() == Some(&b' ') {
                self.pending.extend_from_slice(&bytes[1..]);
                return Ok(self.take_complete());
            }
        }
        self.pending.extend_from_slice(&bytes);
        Ok(self.take_complete())
    }

    /// Returns whatever is still held back (an incomplete character becomes U+FFFD) and resets.
    pub fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        self.at_start = true;
        rest
    }

    /// Bytes held back waiting for the rest of a character.
    pub fn pending_bytes(&self) -> &[u8] {
        &self.pending
    }

    fn take_complete(&mut self) -> String {
        let mut text = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    text.push_str(s);
                    self.pending.clear();
                    return text;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    text.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        // Incomplete character at the end: keep it for the next token.
                        None => {
                            self.pending.drain(..valid);
                            return text;
                        }
                        Some(bad) => {
                            text.push('\u{FFFD}');
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }
}
