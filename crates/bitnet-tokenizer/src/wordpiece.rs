//! WordPiece (`tokenizer.ggml.model = bert`, llama.cpp's WPM vocabulary type): BERT's normalizer
//! (control characters dropped, CJK characters isolated, optional lower-casing and accent
//! stripping), the split on whitespace and punctuation, and the greedy longest-match search of
//! each word's pieces (a word with no complete segmentation, or longer than 100 characters, is one
//! unknown token).
//!
//! GGUF files store the vocabulary in llama.cpp's "phantom space" form: a word-initial piece is
//! `▁word`, a continuation is `ing` (Hugging Face's `##ing`), and bracketed specials (`[CLS]`) as
//! they are. The pieces are mapped back to Hugging Face's form and the encoding is done by the
//! `tokenizers` crate's own BERT normalizer, pre-tokenizer and WordPiece model, so that a GGUF file
//! and its `tokenizer.json` encode alike.

use crate::score_merges::SPACE_MARK;
use crate::{Result, TokenType, TokenizerError};
use std::collections::BTreeMap;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;

/// Hugging Face's prefix of a word-continuing piece.
const CONTINUATION: &str = "##";

/// The longest word (in characters) that is segmented; longer ones are one unknown token
/// (Hugging Face's `max_input_chars_per_word` default, what BERT checkpoints use).
const MAX_WORD_CHARS: usize = 100;

/// How text is normalized before it is split into words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WordPieceOptions {
    /// Lower-case the text (`tokenizer.ggml.normalizer.lowercase`; llama.cpp's default: on).
    pub lowercase: bool,
    /// Decompose and drop combining marks (`tokenizer.ggml.normalizer.strip_accents`; default: as
    /// `lowercase`, BERT's rule).
    pub strip_accents: bool,
}

/// Encodes plain text (no special tokens) to WordPiece ids.
pub(crate) struct WordPieceEncoder {
    inner: tokenizers::Tokenizer,
}

/// A GGUF piece in Hugging Face's form: `▁word` → `word`, `ing` → `##ing`; control, unknown and
/// unused tokens (`[CLS]`, `[unused0]`) unchanged.
fn hf_piece(text: &str, ty: TokenType) -> String {
    match ty {
        TokenType::Normal | TokenType::UserDefined | TokenType::Byte => {
            match text.strip_prefix(SPACE_MARK) {
                Some(word) => word.to_string(),
                None => format!("{CONTINUATION}{text}"),
            }
        }
        TokenType::Control | TokenType::Unknown | TokenType::Unused => text.to_string(),
    }
}

impl WordPieceEncoder {
    /// Builds the encoder over a GGUF vocabulary (phantom-space form), `unknown` being the id that
    /// words without a segmentation become.
    pub(crate) fn new(
        tokens: &[String],
        types: &[TokenType],
        unknown: u32,
        options: WordPieceOptions,
    ) -> Result<Self> {
        let mut vocab = BTreeMap::new();
        for (id, (text, &ty)) in tokens.iter().zip(types).enumerate() {
            // The first id wins where two GGUF pieces map to one form (as a lookup by text would).
            vocab.entry(hf_piece(text, ty)).or_insert(id as u32);
        }
        let unk_text = tokens[unknown as usize].clone();
        if vocab.get(&unk_text) != Some(&unknown) {
            return Err(TokenizerError::Hf(format!(
                "WordPiece unknown token {unk_text:?} (id {unknown}) is not unique in the vocabulary"
            )));
        }
        // (from a string: the model's deserializer borrows its `type` tag)
        let json = serde_json::json!({
            "type": "WordPiece",
            "unk_token": unk_text,
            "continuing_subword_prefix": CONTINUATION,
            "max_input_chars_per_word": MAX_WORD_CHARS,
            "vocab": vocab,
        })
        .to_string();
        let model: WordPiece = serde_json::from_str(&json)
            .map_err(|e| TokenizerError::Hf(format!("WordPiece vocabulary: {e}")))?;
        let mut inner = tokenizers::Tokenizer::new(model);
        inner.with_normalizer(Some(BertNormalizer::new(
            true,
            true,
            Some(options.strip_accents),
            options.lowercase,
        )));
        inner.with_pre_tokenizer(Some(BertPreTokenizer));
        Ok(WordPieceEncoder { inner })
    }

    /// Appends the ids of `text` (no `[CLS]`/`[SEP]`) to `out`.
    pub(crate) fn encode(&self, text: &str, out: &mut Vec<u32>) -> Result<()> {
        out.extend_from_slice(self.inner.encode_fast(text, false)?.get_ids());
        Ok(())
    }
}

/// llama.cpp's clean-up of decoded WordPiece text (its `clean_spaces`, what HF calls
/// `clean_up_tokenization_spaces`): no space before `?`, `!`, `.` or `,`; a lone `'` between two
/// spaces joins both neighbours; no space before the contractions `'s`, `'m`, `'re`, `'ve`.
pub(crate) fn clean_up_spaces(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    // 1: no space before ? ! . ,
    let mut pass: Vec<char> = Vec::with_capacity(chars.len());
    for (i, &c) in chars.iter().enumerate() {
        if i > 0 && chars[i - 1] == ' ' && matches!(c, '?' | '!' | '.' | ',') {
            pass.pop();
        }
        pass.push(c);
    }
    // 2: " ' " becomes "'" (the space dropped after the apostrophe is no neighbour of what follows)
    let chars = pass;
    let mut pass: Vec<char> = Vec::with_capacity(chars.len());
    let mut i = 0;
    let mut prev_dropped = false;
    while i < chars.len() {
        let c = chars[i];
        let space_before = i > 0 && chars[i - 1] == ' ' && !prev_dropped;
        prev_dropped = false;
        if c == '\'' && space_before && chars.get(i + 1) == Some(&' ') {
            pass.pop();
            pass.push(c);
            i += 2;
            prev_dropped = true;
            continue;
        }
        pass.push(c);
        i += 1;
    }
    // 3: no space before 's 'm 're 've
    let chars = pass;
    let mut pass: Vec<char> = Vec::with_capacity(chars.len());
    for (i, &c) in chars.iter().enumerate() {
        if i > 0 && chars[i - 1] == ' ' && c == '\'' {
            let next = (chars.get(i + 1).copied(), chars.get(i + 2).copied());
            if matches!(next, (Some('s' | 'm'), _) | (Some('r' | 'v'), Some('e'))) {
                pass.pop();
            }
        }
        pass.push(c);
    }
    pass.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoder(words: &[&str], options: WordPieceOptions) -> WordPieceEncoder {
        let mut tokens: Vec<String> = vec!["[PAD]".into(), "[UNK]".into()];
        tokens.extend(words.iter().map(|w| w.to_string()));
        let mut types = vec![TokenType::Control; 2];
        types.extend(std::iter::repeat_n(TokenType::Normal, words.len()));
        WordPieceEncoder::new(&tokens, &types, 1, options).unwrap()
    }

    const UNCASED: WordPieceOptions = WordPieceOptions {
        lowercase: true,
        strip_accents: true,
    };

    fn ids(enc: &WordPieceEncoder, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        enc.encode(text, &mut out).unwrap();
        out
    }

    #[test]
    fn longest_match_then_continuations() {
        // ids: ▁un 2, ▁unaff 3, able 4, ▁the 5, aff 6, ▁! 7
        let enc = encoder(&["▁un", "▁unaff", "able", "▁the", "aff", "▁!"], UNCASED);
        assert_eq!(ids(&enc, "unaffable"), [3, 4]);
        assert_eq!(ids(&enc, "The unaffable!"), [5, 3, 4, 7]);
        // no complete segmentation: the whole word is unknown, the others are not
        assert_eq!(ids(&enc, "the unaffablex"), [5, 1]);
    }

    #[test]
    fn accents_and_case_follow_the_options() {
        let enc = encoder(&["▁cafe", "▁Café"], UNCASED);
        assert_eq!(ids(&enc, "CAFÉ Café"), [2, 2]);
        let cased = encoder(
            &["▁cafe", "▁Café"],
            WordPieceOptions {
                lowercase: false,
                strip_accents: false,
            },
        );
        assert_eq!(ids(&cased, "Café cafe CAFE"), [3, 2, 1]);
    }

    #[test]
    fn overlong_words_are_one_unknown_token() {
        let enc = encoder(&["▁a", "a"], UNCASED);
        assert_eq!(ids(&enc, &"a".repeat(100)).len(), 100);
        assert_eq!(ids(&enc, &"a".repeat(101)), [1]);
    }

    #[test]
    fn decoded_spaces_are_cleaned_as_llama_cpp_does() {
        assert_eq!(clean_up_spaces(" this is . cpp"), " this is. cpp");
        assert_eq!(clean_up_spaces(" hello , world !"), " hello, world!");
        assert_eq!(clean_up_spaces(" rock ' n ' roll"), " rock'n'roll");
        assert_eq!(clean_up_spaces(" it ' s and i ' m"), " it's and i'm");
        assert_eq!(clean_up_spaces(" don ' t"), " don't");
        assert_eq!(clean_up_spaces("we 're here 'til"), "we're here 'til");
    }

    #[test]
    fn a_unknown_token_that_is_not_unique_is_an_error() {
        let tokens: Vec<String> = vec!["[UNK]".into(), "[UNK]".into()];
        let types = vec![TokenType::Control; 2];
        assert!(WordPieceEncoder::new(&tokens, &types, 1, UNCASED).is_err());
    }
}
