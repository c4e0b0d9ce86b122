//! Reading a SentencePiece `tokenizer.model` (a serialized `sentencepiece.ModelProto`) into a
//! [`VocabSpec`], the way llama.cpp's converter does: every piece with its score and type
//! (normal, unknown, control, unused, byte; user-defined pieces count as normal), the unknown /
//! BOS / EOS / PAD ids of the trainer spec, and `add_space_prefix` from the normalizer's
//! `add_dummy_prefix`. Only the protobuf fields needed for that are decoded; the rest is skipped.
//!
//! Fields used (sentencepiece_model.proto): `ModelProto.pieces = 1` (`piece = 1` string,
//! `score = 2` float, `type = 3` enum), `ModelProto.trainer_spec = 2` (`model_type = 3`,
//! `unk_id = 40`, `bos_id = 41`, `eos_id = 42`, `pad_id = 43`), `ModelProto.normalizer_spec = 3`
//! (`add_dummy_prefix = 3`).

use std::path::Path;

use crate::{Result, TokenType, TokenizerError, VocabSpec};

/// A protobuf field value (wire types 0, 1, 2, 5; no field read here is a 64-bit fixed).
enum Value<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// Iterates over the `(field number, value)` pairs of one protobuf message.
struct Fields<'a> {
    data: &'a [u8],
    pos: usize,
}

fn malformed(reason: impl Into<String>) -> TokenizerError {
    TokenizerError::SentencePiece(reason.into())
}

impl<'a> Fields<'a> {
    fn new(data: &'a [u8]) -> Self {
        Fields { data, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .data
                .get(self.pos)
                .ok_or_else(|| malformed(format!("truncated varint at byte {}", self.pos)))?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(malformed(format!(
            "varint longer than 10 bytes before byte {}",
            self.pos
        )))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| {
                malformed(format!(
                    "field of {n} bytes at byte {} runs past the end",
                    self.pos
                ))
            })?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn next_field(&mut self) -> Result<Option<(u64, Value<'a>)>> {
        if self.pos >= self.data.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed64
            }
            2 => {
                let n = usize::try_from(self.varint()?)
                    .map_err(|_| malformed("length does not fit in memory"))?;
                Value::Bytes(self.take(n)?)
            }
            5 => {
                let b = self.take(4)?;
                Value::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            other => {
                return Err(malformed(format!(
                    "unsupported wire type {other} before byte {}",
                    self.pos
                )))
            }
        };
        Ok(Some((key >> 3, value)))
    }
}

/// One `SentencePiece` message.
fn parse_piece(bytes: &[u8]) -> Result<(String, f32, TokenType)> {
    let (mut text, mut score, mut ty) = (None, 0.0f32, TokenType::Normal);
    let mut fields = Fields::new(bytes);
    while let Some((field, value)) = fields.next_field()? {
        match (field, value) {
            (1, Value::Bytes(b)) => {
                text = Some(
                    String::from_utf8(b.to_vec()).map_err(|_| malformed("piece is not UTF-8"))?,
                )
            }
            (2, Value::Fixed32(bits)) => score = f32::from_bits(bits),
            // sentencepiece's enum: NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, BYTE 6, UNUSED 5.
            (3, Value::Varint(t)) => {
                ty = match t {
                    2 => TokenType::Unknown,
                    3 => TokenType::Control,
                    5 => TokenType::Unused,
                    6 => TokenType::Byte,
                    _ => TokenType::Normal,
                }
            }
            _ => {}
        }
    }
    Ok((
        text.ok_or_else(|| malformed("a piece without text"))?,
        score,
        ty,
    ))
}

fn id_field(value: Value<'_>) -> Option<u32> {
    match value {
        // int32 fields: -1 ("none") is encoded as a 10-byte varint of 2^64 - 1.
        Value::Varint(v) => u32::try_from(v as i64).ok(),
        _ => None,
    }
}

impl VocabSpec {
    /// Reads a SentencePiece `tokenizer.model` file.
    pub fn from_sentencepiece_model(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| TokenizerError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_sentencepiece_bytes(&bytes)
    }

    /// Parses the bytes of a serialized `ModelProto`.
    pub fn from_sentencepiece_bytes(bytes: &[u8]) -> Result<Self> {
        let mut spec = VocabSpec {
            model: "llama".to_string(),
            pre: Some("default".to_string()),
            ..VocabSpec::default()
        };
        // sentencepiece's defaults: unk 0, bos 1, eos 2, pad -1; add_dummy_prefix true.
        let (mut unk, mut bos, mut eos, mut pad) = (Some(0), Some(1), Some(2), None);
        let mut add_dummy_prefix = true;
        let mut model_type = 1u64;
        let mut fields = Fields::new(bytes);
        while let Some((field, value)) = fields.next_field()? {
            match (field, value) {
                (1, Value::Bytes(piece)) => {
                    let (text, score, ty) = parse_piece(piece)?;
                    spec.tokens.push(text);
                    spec.scores.push(score);
                    spec.token_types.push(ty);
                }
                (2, Value::Bytes(trainer)) => {
                    let mut t = Fields::new(trainer);
                    while let Some((f, v)) = t.next_field()? {
                        match f {
                            3 => {
                                if let Value::Varint(m) = v {
                                    model_type = m
                                }
                            }
                            40 => unk = id_field(v),
                            41 => bos = id_field(v),
                            42 => eos = id_field(v),
                            43 => pad = id_field(v),
                            _ => {}
                        }
                    }
                }
                (3, Value::Bytes(normalizer)) => {
                    let mut n = Fields::new(normalizer);
                    while let Some((f, v)) = n.next_field()? {
                        if let (3, Value::Varint(b)) = (f, v) {
                            add_dummy_prefix = b != 0;
                        }
                    }
                }
                _ => {}
            }
        }
        if spec.tokens.is_empty() {
            return Err(malformed("no pieces (not a SentencePiece model?)"));
        }
        // UNIGRAM = 1, BPE = 2: both are encoded by score-ordered merging in llama.cpp.
        if !matches!(model_type, 1 | 2) {
            return Err(malformed(format!(
                "model type {model_type} (only unigram and BPE SentencePiece models are supported)"
            )));
        }
        let n = spec.tokens.len();
        let in_range = |id: Option<u32>| id.filter(|&i| (i as usize) < n);
        spec.unk = in_range(unk);
        spec.bos = in_range(bos);
        spec.eos = in_range(eos);
        spec.pad = in_range(pad);
        spec.add_space_prefix = Some(add_dummy_prefix);
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-encoded ModelProto: pieces "<unk>" (UNKNOWN), "<s>" (CONTROL, score -1.5),
    /// "▁a" (NORMAL, score -2), trainer spec unk_id 0 / bos_id 1 / eos_id -1, normalizer
    /// add_dummy_prefix false.
    #[test]
    fn reads_pieces_ids_and_normalizer() {
        let mut bytes = Vec::new();
        let mut piece = |text: &str, score: f32, ty: u8| {
            let mut p = vec![0x0a, text.len() as u8];
            p.extend_from_slice(text.as_bytes());
            p.push(0x15);
            p.extend_from_slice(&score.to_le_bytes());
            p.extend_from_slice(&[0x18, ty]);
            bytes.extend_from_slice(&[0x0a, p.len() as u8]);
            bytes.extend_from_slice(&p);
        };
        piece("<unk>", 0.0, 2);
        piece("<s>", -1.5, 3);
        piece("\u{2581}a", -2.0, 1);
        // trainer_spec (field 2): unk_id = 40 -> key 0xc0 0x02; bos_id 41 -> 0xc8 0x02;
        // eos_id 42 -> 0xd0 0x02 with -1 as a 10-byte varint.
        let mut trainer = vec![0xc0, 0x02, 0x00, 0xc8, 0x02, 0x01, 0xd0, 0x02];
        trainer.extend_from_slice(&[0xff; 9]);
        trainer.push(0x01);
        bytes.extend_from_slice(&[0x12, trainer.len() as u8]);
        bytes.extend_from_slice(&trainer);
        bytes.extend_from_slice(&[0x1a, 0x02, 0x18, 0x00]);
        let spec = VocabSpec::from_sentencepiece_bytes(&bytes).unwrap();
        assert_eq!(spec.tokens, ["<unk>", "<s>", "\u{2581}a"]);
        assert_eq!(spec.scores, [0.0, -1.5, -2.0]);
        assert_eq!(
            spec.token_types,
            [TokenType::Unknown, TokenType::Control, TokenType::Normal]
        );
        assert_eq!((spec.unk, spec.bos, spec.eos), (Some(0), Some(1), None));
        assert_eq!(spec.add_space_prefix, Some(false));
    }

    #[test]
    fn truncated_or_foreign_bytes_are_errors() {
        assert!(VocabSpec::from_sentencepiece_bytes(&[0x0a, 0x05, 0x0a]).is_err());
        assert!(VocabSpec::from_sentencepiece_bytes(&[0x80]).is_err());
        assert!(VocabSpec::from_sentencepiece_bytes(b"GGUF\x03\x00").is_err());
        assert!(VocabSpec::from_sentencepiece_bytes(&[]).is_err());
    }
}
