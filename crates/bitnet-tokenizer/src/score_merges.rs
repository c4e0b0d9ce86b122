//! SentencePiece-style encoding (`tokenizer.ggml.model = llama`) with llama.cpp's semantics:
//! spaces become `▁`, the text is split into UTF-8 characters, and the adjacent pair whose
//! concatenation is the highest-scoring vocabulary entry is merged first (ties: leftmost), until no
//! pair forms a token. Characters left without a token fall back to `<0xXX>` byte tokens.

use crate::{Result, TokenizerError};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

/// The SentencePiece whitespace marker.
pub(crate) const SPACE_MARK: &str = "\u{2581}";

pub(crate) struct ScoreMergeEncoder {
    token_to_id: HashMap<String, u32>,
    scores: Vec<f32>,
    byte_tokens: [Option<u32>; 256],
    unk: Option<u32>,
}

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Max-heap order: higher score first, then the leftmost pair.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl ScoreMergeEncoder {
    pub(crate) fn new(tokens: &[String], scores: &[f32], unk: Option<u32>) -> Self {
        let mut token_to_id = HashMap::with_capacity(tokens.len());
        for (id, text) in tokens.iter().enumerate() {
            // A repeated text maps to its last id, as in llama.cpp.
            token_to_id.insert(text.clone(), id as u32);
        }
        let mut byte_tokens = [None; 256];
        for (b, slot) in byte_tokens.iter_mut().enumerate() {
            *slot = token_to_id
                .get(&format!("<0x{b:02X}>"))
                .copied()
                .or_else(|| {
                    // A vocabulary without byte tokens may still hold the single byte as text.
                    std::str::from_utf8(&[b as u8])
                        .ok()
                        .and_then(|s| token_to_id.get(s).copied())
                });
        }
        ScoreMergeEncoder {
            token_to_id,
            scores: scores.to_vec(),
            byte_tokens,
            unk,
        }
    }

    fn score(&self, id: u32) -> f32 {
        self.scores.get(id as usize).copied().unwrap_or(0.0)
    }

    /// Appends the ids of `text`, which must already have its spaces replaced by `▁`.
    pub(crate) fn encode(&self, text: &str, out: &mut Vec<u32>) -> Result<()> {
        let mut symbols: Vec<Symbol> = text
            .char_indices()
            .enumerate()
            .map(|(i, (start, c))| Symbol {
                start,
                len: c.len_utf8(),
                prev: i.checked_sub(1),
                next: Some(i + 1),
            })
            .collect();
        if let Some(last) = symbols.last_mut() {
            last.next = None;
        }
        let mut queue = BinaryHeap::new();
        let try_pair = |symbols: &[Symbol],
                        queue: &mut BinaryHeap<Bigram>,
                        left: Option<usize>,
                        right: Option<usize>| {
            let (Some(left), Some(right)) = (left, right) else {
                return;
            };
            let (l, r) = (symbols[left], symbols[right]);
            let size = l.len + r.len;
            if let Some(&id) = self.token_to_id.get(&text[l.start..l.start + size]) {
                queue.push(Bigram {
                    score: self.score(id),
                    left,
                    right,
                    size,
                });
            }
        };
        for i in 1..symbols.len() {
            try_pair(&symbols, &mut queue, Some(i - 1), Some(i));
        }
        while let Some(bigram) = queue.pop() {
            let (l, r) = (symbols[bigram.left], symbols[bigram.right]);
            // Skip pairs made stale by an earlier merge of either side.
            if l.len == 0 || r.len == 0 || l.len + r.len != bigram.size {
                continue;
            }
            symbols[bigram.left].len += r.len;
            symbols[bigram.left].next = r.next;
            symbols[bigram.right].len = 0;
            if let Some(next) = r.next {
                symbols[next].prev = Some(bigram.left);
            }
            try_pair(&symbols, &mut queue, l.prev, Some(bigram.left));
            try_pair(&symbols, &mut queue, Some(bigram.left), r.next);
        }
        let mut cursor = if symbols.is_empty() { None } else { Some(0) };
        while let Some(i) = cursor {
            let s = symbols[i];
            let piece = &text[s.start..s.start + s.len];
            match self.token_to_id.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    for &b in piece.as_bytes() {
                        let id = self.byte_tokens[b as usize]
                            .or(self.unk)
                            .ok_or(TokenizerError::UnrepresentableByte(b))?;
                        out.push(id);
                    }
                }
            }
            cursor = s.next;
        }
        Ok(())
    }
}

/// The byte a `<0xXX>` token stands for.
pub(crate) fn byte_token_value(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}
