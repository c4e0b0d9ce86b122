//! Unigram (`tokenizer.ggml.model = t5`, llama.cpp's UGM vocabulary type): SentencePiece's
//! normalizer compiled into a "charsmap" (longest-prefix replacements, stored as an XOR-compressed
//! compact double array followed by NUL-terminated replacement strings), llama.cpp's whitespace
//! rules (`▁` for spaces, optional space prefix, optional merging of space runs), and the Viterbi
//! search for the segmentation with the highest sum of piece scores.

use crate::score_merges::SPACE_MARK;
use crate::{Result, TokenType, TokenizerError};
use std::collections::{HashMap, HashSet};

/// The score below the lowest normal piece's that a character without a piece costs.
const UNKNOWN_PENALTY: f32 = 10.0;

/// The precompiled normalizer (`tokenizer.ggml.precompiled_charsmap`).
struct CharsMap {
    /// Bit-packed double-array nodes: BASE in bits 10..31 (shifted by 8 more when bit 9 is set),
    /// LEAF in bit 8, LCHECK (the byte leading here) in bits 0..8 with bit 31; a leaf's child
    /// holds the offset of its replacement.
    nodes: Vec<u32>,
    replacements: Vec<u8>,
}

fn bad_charsmap(why: &'static str) -> TokenizerError {
    TokenizerError::BadCharsMap(why)
}

impl CharsMap {
    /// Splits the blob: a little-endian u32 byte size of the node array, the nodes, the strings.
    fn parse(bytes: &[u8]) -> Result<Self> {
        let header: [u8; 4] = bytes
            .get(..4)
            .and_then(|h| h.try_into().ok())
            .ok_or(bad_charsmap("shorter than its 4-byte header"))?;
        let size = u32::from_le_bytes(header) as usize;
        if !size.is_multiple_of(4) || size + 4 >= bytes.len() {
            return Err(bad_charsmap("node array size does not fit the blob"));
        }
        let nodes = bytes[4..4 + size]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(CharsMap {
            nodes,
            replacements: bytes[4 + size..].to_vec(),
        })
    }

    fn node(&self, index: usize) -> Result<u32> {
        self.nodes
            .get(index)
            .copied()
            .ok_or(bad_charsmap("node index out of range"))
    }

    fn base(packed: u32) -> usize {
        ((packed >> 10) << ((packed & (1 << 9)) >> 6)) as usize
    }

    /// The longest prefix of `input` that has a replacement: (bytes consumed, replacement).
    fn longest_prefix(&self, input: &[u8]) -> Result<Option<(usize, &[u8])>> {
        let mut node = Self::base(self.node(0)?);
        let mut found = None;
        for (i, &byte) in input.iter().enumerate() {
            if byte == 0 {
                break;
            }
            node ^= byte as usize;
            let packed = self.node(node)?;
            if packed & ((1 << 31) | 0xff) != u32::from(byte) {
                break;
            }
            let leaf = (packed >> 8) & 1 == 1;
            node ^= Self::base(packed);
            if leaf {
                found = Some((i + 1, (self.node(node)? & 0x7fff_ffff) as usize));
            }
        }
        let Some((consumed, offset)) = found else {
            return Ok(None);
        };
        let rest = self
            .replacements
            .get(offset..)
            .filter(|r| !r.is_empty())
            .ok_or(bad_charsmap("replacement offset out of range"))?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(bad_charsmap("unterminated replacement string"))?;
        Ok(Some((consumed, &rest[..end])))
    }
}

/// Length of the UTF-8 sequence a lead byte starts (1 for a stray continuation byte).
fn utf8_len(lead: u8) -> usize {
    match lead {
        0xF0..=0xF7 => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// The flags of a Unigram vocabulary.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UgmOptions {
    /// Prepend `▁` to the first word.
    pub(crate) add_space_prefix: bool,
    /// Drop leading, trailing and repeated spaces (each word gets one `▁` before it).
    pub(crate) remove_extra_whitespaces: bool,
}

/// A Unigram encoder for raw-text fragments (special tokens are handled by the caller).
pub(crate) struct UgmEncoder {
    /// Normal, user-defined and unused pieces by their bytes.
    pieces: HashMap<Vec<u8>, u32>,
    longest_piece: usize,
    user_defined: HashSet<Vec<u8>>,
    longest_user_defined: usize,
    /// Each piece's score (user-defined pieces score 0).
    scores: Vec<f64>,
    unknown: u32,
    unknown_score: f64,
    charsmap: Option<CharsMap>,
    options: UgmOptions,
}

impl UgmEncoder {
    pub(crate) fn new(
        tokens: &[String],
        scores: &[f32],
        types: &[TokenType],
        unknown: u32,
        charsmap: &[u8],
        options: UgmOptions,
    ) -> Result<Self> {
        let score = |id: usize| scores.get(id).copied().unwrap_or(0.0);
        let mut pieces = HashMap::new();
        let mut user_defined = HashSet::new();
        let mut lowest = f32::MAX;
        for (id, (text, &ty)) in tokens.iter().zip(types).enumerate() {
            if ty == TokenType::Normal {
                lowest = lowest.min(score(id));
            }
            if matches!(
                ty,
                TokenType::Normal | TokenType::UserDefined | TokenType::Unused
            ) {
                pieces.insert(text.as_bytes().to_vec(), id as u32);
            }
            if ty == TokenType::UserDefined {
                user_defined.insert(text.as_bytes().to_vec());
            }
        }
        let scores = (0..tokens.len())
            .map(|id| {
                if types[id] == TokenType::UserDefined {
                    0.0
                } else {
                    f64::from(score(id))
                }
            })
            .collect();
        Ok(UgmEncoder {
            longest_piece: pieces.keys().map(Vec::len).max().unwrap_or(0),
            pieces,
            longest_user_defined: user_defined.iter().map(Vec::len).max().unwrap_or(0),
            user_defined,
            scores,
            unknown,
            unknown_score: f64::from(lowest - UNKNOWN_PENALTY),
            charsmap: if charsmap.is_empty() {
                None
            } else {
                Some(CharsMap::parse(charsmap)?)
            },
            options,
        })
    }

    /// What the input at `offset` normalizes to, and how many input bytes that consumes: a
    /// user-defined piece as is, else the charsmap's longest replacement, else one character.
    fn normalize_prefix<'a>(&'a self, input: &'a [u8], offset: usize) -> Result<(&'a [u8], usize)> {
        let rest = &input[offset..];
        for len in (1..=self.longest_user_defined.min(rest.len())).rev() {
            if self.user_defined.contains(&rest[..len]) {
                return Ok((&rest[..len], len));
            }
        }
        if let Some(charsmap) = &self.charsmap {
            if let Some((consumed, replacement)) = charsmap.longest_prefix(rest)? {
                return Ok((replacement, consumed));
            }
        }
        let len = utf8_len(rest[0]).min(rest.len());
        if std::str::from_utf8(&rest[..len]).is_ok() {
            Ok((&rest[..len], len))
        } else {
            Ok(("\u{FFFD}".as_bytes(), 1))
        }
    }

    /// The normalized text, spaces written `▁`.
    fn normalize(&self, text: &str) -> Result<Vec<u8>> {
        let input = text.as_bytes();
        let mut out = Vec::with_capacity(input.len() * 3);
        let (mut prefixed, mut in_word) = (false, false);
        let mut offset = 0;
        while offset < input.len() {
            let (piece, consumed) = self.normalize_prefix(input, offset)?;
            for &byte in piece {
                if byte == b' ' {
                    in_word = false;
                    if !self.options.remove_extra_whitespaces {
                        out.extend_from_slice(SPACE_MARK.as_bytes());
                    }
                    continue;
                }
                if !in_word {
                    in_word = true;
                    if (self.options.add_space_prefix && !prefixed)
                        || self.options.remove_extra_whitespaces
                    {
                        out.extend_from_slice(SPACE_MARK.as_bytes());
                        prefixed = true;
                    }
                }
                out.push(byte);
            }
            offset += consumed;
        }
        Ok(out)
    }

    /// Appends the ids of one text fragment: the segmentation of the normalized text with the
    /// highest total score (a character no piece covers costs the unknown score), consecutive
    /// unknown pieces merged into one.
    pub(crate) fn encode(&self, text: &str, out: &mut Vec<u32>) -> Result<()> {
        let normalized = self.normalize(text)?;
        let n = normalized.len();
        if n == 0 {
            return Ok(());
        }
        // best[end] = (last piece, where it starts, total score) of the best segmentation of ..end.
        let mut best = vec![(self.unknown, 0usize, f64::MIN); n + 1];
        best[0].2 = 0.0;
        let mut start = 0;
        while start < n {
            let char_len = utf8_len(normalized[start]).min(n - start);
            let base = best[start].2;
            let mut covered = false;
            for end in start + 1..=n.min(start + self.longest_piece) {
                let Some(&id) = self.pieces.get(&normalized[start..end]) else {
                    continue;
                };
                covered |= end - start == char_len;
                let score = base + self.scores[id as usize];
                if score > best[end].2 {
                    best[end] = (id, start, score);
                }
            }
            if !covered {
                let end = start + char_len;
                let score = base + self.unknown_score;
                if score > best[end].2 {
                    best[end] = (self.unknown, start, score);
                }
            }
            start += char_len;
        }
        let first = out.len();
        let (mut end, mut previous_unknown) = (n, false);
        loop {
            let (id, start, _) = best[end];
            let unknown = id == self.unknown;
            if !(previous_unknown && unknown) {
                out.push(id);
            }
            if start == 0 {
                break;
            }
            previous_unknown = unknown;
            end = start;
        }
        out[first..].reverse();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoder(charsmap: &[u8]) -> Result<UgmEncoder> {
        let tokens: Vec<String> = ["<unk>", "\u{2581}a", "b"].map(String::from).to_vec();
        let types = [TokenType::Unknown, TokenType::Normal, TokenType::Normal];
        let options = UgmOptions {
            add_space_prefix: true,
            remove_extra_whitespaces: false,
        };
        UgmEncoder::new(&tokens, &[0.0, -1.0, -2.0], &types, 0, charsmap, options)
    }

    #[test]
    fn malformed_charsmaps_are_typed_errors() {
        for blob in [
            &[1u8, 0][..],
            &[8, 0, 0, 0, 1, 2, 3, 4][..],
            &[3, 0, 0, 0, 1, 2, 3, 4, 5][..],
        ] {
            assert!(
                matches!(encoder(blob), Err(TokenizerError::BadCharsMap(_))),
                "{blob:?}"
            );
        }
        // A well-sized blob whose root points outside the node array fails when used, not before.
        let mut blob = 4u32.to_le_bytes().to_vec();
        blob.extend_from_slice(&(0xFFu32 << 10).to_le_bytes());
        blob.push(0);
        let ugm = encoder(&blob).unwrap();
        assert!(matches!(
            ugm.encode("a", &mut Vec::new()),
            Err(TokenizerError::BadCharsMap(_))
        ));
    }

    #[test]
    fn best_segmentation_and_merged_unknowns() {
        let ugm = encoder(&[]).unwrap();
        let mut ids = Vec::new();
        // "▁a" + "b", then "c" and "d" have no piece: one unknown for both.
        ugm.encode("abcd", &mut ids).unwrap();
        assert_eq!(ids, [1, 2, 0]);
    }
}
