//! The [`Tokenizer`]: one type over four encoders (BPE, SentencePiece and Unigram from GGUF
//! metadata, or any Hugging Face `tokenizer.json`), with llama.cpp's special-token, BOS/EOS and
//! space-prefix rules, and per-token decoding to bytes.

use crate::bpe::{BpeEncoder, ByteLevelDecoder, SymbolEncoding};
use crate::score_merges::{byte_token_value, ScoreMergeEncoder, SPACE_MARK};
use crate::special::{Fragment, SpecialTokens};
use crate::ugm::{UgmEncoder, UgmOptions};
use crate::vocab::ResolvedFlags;
use crate::wordpiece::{WordPieceEncoder, WordPieceOptions};
use crate::{Result, TokenType, TokenizerError, VocabKind, VocabSpec};
use std::path::Path;

/// Texts of end-of-turn tokens across model families (llama.cpp detects the same way when the file
/// has no `eot_token_id`).
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<EOT>",
    "_<EOT>",
    "<｜end▁of▁sentence｜>",
];

/// Further texts that end generation when present in the vocabulary.
const EXTRA_EOG_TEXTS: &[&str] = &["<|eom_id|>", "<|end_of_text|>", "<end_of_utterance>"];

/// How to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Add BOS/EOS as the vocabulary asks (`add_bos_token` / `add_eos_token`).
    pub add_special: bool,
    /// Recognise control tokens written in the text (e.g. `<|eot_id|>`) as single tokens.
    /// User-defined tokens are always recognised.
    pub parse_special: bool,
}

impl Default for EncodeOptions {
    /// `llama-tokenize`'s defaults: special tokens added and parsed.
    fn default() -> Self {
        EncodeOptions {
            add_special: true,
            parse_special: true,
        }
    }
}

enum Encoder {
    Bpe(Box<BpeEncoder>),
    ScoreMerges(Box<ScoreMergeEncoder>),
    Ugm(Box<UgmEncoder>),
    WordPiece(Box<WordPieceEncoder>),
    /// A `tokenizer.json`: `parsing` splits out added tokens, `literal` treats special ones as text.
    Json {
        parsing: Box<tokenizers::Tokenizer>,
        literal: Box<tokenizers::Tokenizer>,
    },
}

enum PieceStyle {
    /// GPT-2 byte alphabet.
    ByteLevel(ByteLevelDecoder),
    /// `▁` for space, `<0xXX>` for raw bytes.
    SentencePiece,
    /// The token's UTF-8 text as is, `<0xXX>` for raw bytes.
    Utf8,
    /// Whatever the `tokenizer.json` decoder does with a single token.
    JsonDecoder,
}

/// A tokenizer: text to token ids and back.
pub struct Tokenizer {
    encoder: Encoder,
    pieces: PieceStyle,
    kind: VocabKind,
    pre: Option<String>,
    tokens: Vec<String>,
    types: Vec<TokenType>,
    specials: SpecialTokens,
    flags: ResolvedFlags,
    bos: Option<u32>,
    eos: Option<u32>,
    /// WordPiece's separator (`[SEP]`), appended when special tokens are added.
    sep: Option<u32>,
    eot: Option<u32>,
    eog: Vec<u32>,
    architecture: Option<String>,
    name: Option<String>,
    chat_template: Option<String>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("kind", &self.kind)
            .field("pre", &self.pre)
            .field("vocab_size", &self.tokens.len())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("eot", &self.eot)
            .field("flags", &self.flags)
            .finish_non_exhaustive()
    }
}

fn check_id(what: &'static str, id: Option<u32>, vocab_size: usize) -> Result<Option<u32>> {
    match id {
        Some(id) if id as usize >= vocab_size => Err(TokenizerError::BadSpecialId {
            what,
            id,
            vocab_size,
        }),
        other => Ok(other),
    }
}

/// Finds end-of-turn and end-of-generation tokens by text; returns (eot, all end tokens).
fn end_tokens(
    tokens: &[String],
    eos: Option<u32>,
    eot: Option<u32>,
    eom: Option<u32>,
) -> (Option<u32>, Vec<u32>) {
    let find = |text: &str| tokens.iter().position(|t| t == text).map(|i| i as u32);
    let eot = eot.or_else(|| EOT_TEXTS.iter().find_map(|t| find(t)));
    let mut eog: Vec<u32> = [eos, eot, eom].into_iter().flatten().collect();
    eog.extend(
        EOT_TEXTS
            .iter()
            .chain(EXTRA_EOG_TEXTS)
            .filter_map(|t| find(t)),
    );
    eog.sort_unstable();
    eog.dedup();
    (eot, eog)
}

impl Tokenizer {
    /// Builds a tokenizer from a vocabulary description (GGUF semantics).
    pub fn from_spec(spec: VocabSpec) -> Result<Self> {
        let kind = VocabKind::from_gguf_name(&spec.model)?;
        let n = spec.tokens.len();
        if !spec.scores.is_empty() && spec.scores.len() != n {
            return Err(TokenizerError::LengthMismatch {
                what: "tokenizer.ggml.scores",
                got: spec.scores.len(),
                expected: n,
            });
        }
        let mut types = spec.token_types.clone();
        if types.is_empty() {
            types = vec![TokenType::Normal; n];
        } else if types.len() != n {
            return Err(TokenizerError::LengthMismatch {
                what: "tokenizer.ggml.token_type",
                got: types.len(),
                expected: n,
            });
        }
        // llama.cpp's WordPiece defaults: BOS = [CLS] = 101, separator 102, unknown 100.
        let wordpiece = kind == VocabKind::WordPiece;
        let bos = match (wordpiece, spec.bos) {
            (true, None) => spec.cls.or(Some(101)),
            (_, bos) => bos,
        };
        let bos = check_id("BOS", bos, n)?;
        let sep = check_id("separator", spec.sep.or(wordpiece.then_some(102)), n)?;
        let eos = check_id("EOS", spec.eos, n)?;
        let unk = check_id("unknown", spec.unk.or(wordpiece.then_some(100)), n)?;
        let eot = check_id("EOT", spec.eot, n)?;
        let eom = check_id("EOM", spec.eom, n)?;
        let (eot, eog) = end_tokens(&spec.tokens, eos, eot, eom);
        // End tokens are control tokens even where the converter marked them normal (llama.cpp).
        for &id in &eog {
            if types[id as usize] == TokenType::Normal {
                types[id as usize] = TokenType::Control;
            }
        }
        let flags = spec.resolved_flags(kind);
        if flags.add_bos && bos.is_none() {
            return Err(TokenizerError::NoBos);
        }
        let (encoder, pieces) = match kind {
            VocabKind::Bpe => {
                let pre = spec.effective_pre();
                let encoder =
                    BpeEncoder::new(&spec.tokens, &spec.merges, pre, flags.ignore_merges)?;
                let pieces = match encoder.symbols() {
                    SymbolEncoding::ByteLevel => PieceStyle::ByteLevel(ByteLevelDecoder::new()),
                    SymbolEncoding::Utf8 {
                        escape_spaces: true,
                    } => PieceStyle::SentencePiece,
                    SymbolEncoding::Utf8 {
                        escape_spaces: false,
                    } => PieceStyle::Utf8,
                };
                (Encoder::Bpe(Box::new(encoder)), pieces)
            }
            VocabKind::Spm => (
                Encoder::ScoreMerges(Box::new(ScoreMergeEncoder::new(
                    &spec.tokens,
                    &spec.scores,
                    unk,
                ))),
                PieceStyle::SentencePiece,
            ),
            VocabKind::Ugm => {
                // llama.cpp's default unknown token for `t5` vocabularies is id 2.
                let unknown = check_id("unknown", unk.or(Some(2)), n)?.unwrap_or(2);
                let options = UgmOptions {
                    add_space_prefix: flags.add_space_prefix,
                    remove_extra_whitespaces: spec.remove_extra_whitespaces.unwrap_or(false),
                };
                let encoder = UgmEncoder::new(
                    &spec.tokens,
                    &spec.scores,
                    &types,
                    unknown,
                    &spec.precompiled_charsmap,
                    options,
                )?;
                (Encoder::Ugm(Box::new(encoder)), PieceStyle::SentencePiece)
            }
            VocabKind::WordPiece => {
                let lowercase = spec.lowercase.unwrap_or(true);
                let options = WordPieceOptions {
                    lowercase,
                    strip_accents: spec.strip_accents.unwrap_or(lowercase),
                };
                let unknown = unk.unwrap_or(100);
                let encoder = WordPieceEncoder::new(&spec.tokens, &types, unknown, options)?;
                if flags.add_sep && sep.is_none() {
                    return Err(TokenizerError::NoSeparator);
                }
                (
                    Encoder::WordPiece(Box::new(encoder)),
                    PieceStyle::SentencePiece,
                )
            }
        };
        let specials = SpecialTokens::new(
            spec.tokens
                .iter()
                .zip(&types)
                .enumerate()
                .map(|(id, (text, &ty))| (id as u32, text.as_str(), ty)),
        );
        Ok(Tokenizer {
            encoder,
            pieces,
            kind,
            pre: spec.effective_pre().map(str::to_string),
            tokens: spec.tokens,
            types,
            specials,
            flags,
            bos,
            eos,
            sep,
            eot,
            eog,
            architecture: spec.architecture,
            name: spec.name,
            chat_template: spec.chat_template,
        })
    }

    /// Builds the tokenizer that a GGUF file describes.
    pub fn from_gguf(file: &bitnet_gguf::GgufFile) -> Result<Self> {
        Self::from_spec(VocabSpec::from_gguf(file)?)
    }

    /// Opens a GGUF file (a full model or a vocab-only file) and builds its tokenizer.
    pub fn from_gguf_path(path: impl AsRef<Path>) -> Result<Self> {
        let file = bitnet_gguf::GgufFile::open(path.as_ref())
            .map_err(|e| TokenizerError::Gguf(e.to_string()))?;
        Self::from_gguf(&file)
    }

    /// Loads a Hugging Face `tokenizer.json`. Encoding follows the file exactly (normalizer,
    /// pre-tokenizer, model, post-processor); BOS is whatever its post-processor adds.
    pub fn from_tokenizer_json(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut parsing = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| TokenizerError::Hf(format!("{}: {e}", path.display())))?;
        // A file's padding and truncation are batch settings of Python callers (all-MiniLM's pads
        // to 128 ids and cuts there): the text's own ids are wanted, and the model checks length.
        parsing.with_padding(None);
        parsing
            .with_truncation(None)
            .map_err(|e| TokenizerError::Hf(format!("{}: {e}", path.display())))?;
        let mut literal = parsing.clone();
        literal.set_encode_special_tokens(true);
        let vocab = parsing.get_vocab(true);
        let n = vocab.values().map(|&id| id as usize + 1).max().unwrap_or(0);
        let mut tokens = vec![String::new(); n];
        for (text, id) in vocab {
            tokens[id as usize] = text;
        }
        let mut types = vec![TokenType::Normal; n];
        for (id, added) in parsing.get_added_tokens_decoder() {
            types[id as usize] = if added.special {
                TokenType::Control
            } else {
                TokenType::UserDefined
            };
        }
        // The post-processor decides whether BOS is added: it is what it puts before empty text.
        let added_bos = parsing
            .encode("", true)?
            .get_ids()
            .first()
            .copied()
            .filter(|&id| types.get(id as usize) == Some(&TokenType::Control));
        let find = |text: &str| tokens.iter().position(|t| t == text).map(|i| i as u32);
        let bos = added_bos.or_else(|| {
            ["<|begin_of_text|>", "<s>", "<bos>", "<|startoftext|>"]
                .iter()
                .find_map(|t| find(t))
        });
        let eos = ["<|end_of_text|>", "</s>", "<|endoftext|>", "<eos>"]
            .iter()
            .find_map(|t| find(t));
        let (eot, eog) = end_tokens(&tokens, eos, None, None);
        use tokenizers::DecoderWrapper;
        let pieces = match parsing.get_decoder() {
            Some(DecoderWrapper::ByteLevel(_)) => PieceStyle::ByteLevel(ByteLevelDecoder::new()),
            Some(DecoderWrapper::Metaspace(_)) | Some(DecoderWrapper::Sequence(_)) => {
                PieceStyle::SentencePiece
            }
            _ => PieceStyle::JsonDecoder,
        };
        let kind = match (parsing.get_decoder(), &pieces) {
            (Some(DecoderWrapper::WordPiece(_)), _) => VocabKind::WordPiece,
            (_, PieceStyle::SentencePiece) => VocabKind::Spm,
            _ => VocabKind::Bpe,
        };
        let flags = ResolvedFlags {
            add_bos: added_bos.is_some(),
            add_eos: false,
            add_space_prefix: kind == VocabKind::Spm,
            ignore_merges: false,
            // the post-processor adds [SEP] itself
            add_sep: false,
        };
        Ok(Tokenizer {
            encoder: Encoder::Json {
                parsing: Box::new(parsing),
                literal: Box::new(literal),
            },
            pieces,
            kind,
            pre: None,
            tokens,
            types,
            specials: SpecialTokens::default(),
            flags,
            bos,
            eos,
            sep: None,
            eot,
            eog,
            architecture: None,
            name: None,
            chat_template: None,
        })
    }

    /// Encodes with llama-tokenize's defaults (special tokens added and parsed).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_with(text, EncodeOptions::default())
    }

    /// Encodes `text` to token ids.
    pub fn encode_with(&self, text: &str, options: EncodeOptions) -> Result<Vec<u32>> {
        if let Encoder::Json { parsing, literal } = &self.encoder {
            let tk = if options.parse_special {
                parsing
            } else {
                literal
            };
            return Ok(tk
                .encode_fast(text, options.add_special)?
                .get_ids()
                .to_vec());
        }
        let mut out = Vec::new();
        if options.add_special && self.flags.add_bos {
            out.extend(self.bos);
        }
        let mut after_special = true;
        for fragment in self.specials.partition(text, options.parse_special) {
            match fragment {
                Fragment::Token(id) => {
                    out.push(id);
                    after_special = true;
                }
                Fragment::Text(text) => {
                    match &self.encoder {
                        Encoder::Bpe(bpe) => bpe.encode(text, &mut out)?,
                        Encoder::ScoreMerges(spm) => {
                            let mut escaped = String::with_capacity(text.len() + 4);
                            if self.flags.add_space_prefix && after_special {
                                escaped.push_str(SPACE_MARK);
                            }
                            escaped.push_str(&text.replace(' ', SPACE_MARK));
                            spm.encode(&escaped, &mut out)?;
                        }
                        Encoder::Ugm(ugm) => ugm.encode(text, &mut out)?,
                        Encoder::WordPiece(wordpiece) => wordpiece.encode(text, &mut out)?,
                        Encoder::Json { .. } => unreachable!("handled above"),
                    }
                    after_special = false;
                }
            }
        }
        if options.add_special && self.flags.add_eos {
            out.extend(self.eos);
        }
        if options.add_special && self.flags.add_sep {
            out.extend(self.sep);
        }
        Ok(out)
    }

    fn check(&self, id: u32) -> Result<usize> {
        let i = id as usize;
        if i < self.tokens.len() {
            Ok(i)
        } else {
            Err(TokenizerError::IdOutOfRange {
                id,
                vocab_size: self.tokens.len(),
            })
        }
    }

    /// The bytes one token stands for. Control and unknown tokens give their text only when
    /// `show_special`; unused slots give nothing.
    pub fn token_bytes(&self, id: u32, show_special: bool) -> Result<Vec<u8>> {
        let i = self.check(id)?;
        let text = &self.tokens[i];
        let mut out = Vec::new();
        match self.types[i] {
            TokenType::Control | TokenType::Unknown => {
                if show_special {
                    out.extend_from_slice(text.as_bytes());
                }
            }
            TokenType::UserDefined => out.extend_from_slice(text.as_bytes()),
            TokenType::Unused => {}
            TokenType::Byte | TokenType::Normal => match &self.pieces {
                PieceStyle::ByteLevel(table) => table.bytes(text, &mut out),
                PieceStyle::SentencePiece => match byte_token_value(text) {
                    Some(b) => out.push(b),
                    None => out.extend_from_slice(text.replace(SPACE_MARK, " ").as_bytes()),
                },
                PieceStyle::Utf8 => match byte_token_value(text) {
                    Some(b) => out.push(b),
                    None => out.extend_from_slice(text.as_bytes()),
                },
                PieceStyle::JsonDecoder => {
                    if let Encoder::Json { parsing, .. } = &self.encoder {
                        out.extend_from_slice(parsing.decode(&[id], false)?.as_bytes());
                    }
                }
            },
        }
        Ok(out)
    }

    /// Whether decoding should drop one leading space from the first text token (SentencePiece
    /// vocabularies that add a space prefix when encoding).
    pub(crate) fn strips_leading_space(&self) -> bool {
        self.flags.add_space_prefix && matches!(self.pieces, PieceStyle::SentencePiece)
    }

    /// Decodes ids to text. Invalid UTF-8 (an incomplete character at the end) becomes U+FFFD.
    /// With a space-prefixing SentencePiece vocabulary the first text token loses its leading
    /// space, so `decode(encode(s)) == s` without BOS. A WordPiece vocabulary's text has
    /// llama.cpp's clean-up of spaces before punctuation and contractions.
    pub fn decode(&self, ids: &[u32], show_special: bool) -> Result<String> {
        let mut stream = self.stream_decoder(show_special);
        let mut text = String::new();
        for &id in ids {
            text.push_str(&stream.push(id)?);
        }
        text.push_str(&stream.finish());
        if self.kind == VocabKind::WordPiece && !matches!(self.encoder, Encoder::Json { .. }) {
            text = crate::wordpiece::clean_up_spaces(&text);
        }
        Ok(text)
    }

    /// A decoder for one token at a time (see [`crate::StreamDecoder`]).
    pub fn stream_decoder(&self, show_special: bool) -> crate::StreamDecoder<'_> {
        crate::StreamDecoder::new(self, show_special)
    }

    /// Number of tokens.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }
    /// The stored text of a token (GGUF/`tokenizer.json` form, e.g. `Ġthe`, `▁the`).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }
    /// The id of a token with exactly this stored text.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.tokens.iter().position(|t| t == text).map(|i| i as u32)
    }
    /// A token's type.
    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.types.get(id as usize).copied()
    }
    /// The algorithm family.
    pub fn kind(&self) -> VocabKind {
        self.kind
    }
    /// `tokenizer.ggml.pre`, for GGUF BPE vocabularies.
    pub fn pre_tokenizer(&self) -> Option<&str> {
        self.pre.as_deref()
    }
    /// Begin-of-sequence token.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }
    /// End-of-sequence token.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }
    /// WordPiece's separator (`[SEP]`) that closes an encoded text, if any.
    pub fn sep(&self) -> Option<u32> {
        self.sep
    }
    /// End-of-turn token (`<|eot_id|>`, `<|im_end|>`, `<end_of_turn>`, ...).
    pub fn eot(&self) -> Option<u32> {
        self.eot
    }
    /// Every token that ends generation (EOS, EOT, EOM and their known aliases), sorted.
    pub fn end_of_generation(&self) -> &[u32] {
        &self.eog
    }
    /// Whether `id` ends generation.
    pub fn is_end_of_generation(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }
    /// Whether encoding with `add_special` prepends BOS.
    pub fn adds_bos(&self) -> bool {
        self.flags.add_bos
    }
    /// Whether encoding with `add_special` appends EOS.
    pub fn adds_eos(&self) -> bool {
        self.flags.add_eos
    }
    /// `general.architecture` of the GGUF file.
    pub fn architecture(&self) -> Option<&str> {
        self.architecture.as_deref()
    }
    /// `general.name` of the GGUF file.
    pub fn model_name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    /// `tokenizer.chat_template` of the GGUF file.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(model: &str, pre: Option<&str>) -> VocabSpec {
        VocabSpec {
            model: model.into(),
            pre: pre.map(str::to_string),
            tokens: vec!["a".into(), "b".into(), "ab".into()],
            merges: vec!["a b".into()],
            ..VocabSpec::default()
        }
    }

    #[test]
    fn tokenizer_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Tokenizer>();
    }

    #[test]
    fn bad_vocabularies_are_typed_errors() {
        assert!(matches!(
            Tokenizer::from_spec(spec("rwkv", None)),
            Err(TokenizerError::UnsupportedModel(m)) if m == "rwkv"
        ));
        // WordPiece's default [CLS] id 101 outside a 3-token vocabulary
        assert!(matches!(
            Tokenizer::from_spec(spec("bert", None)),
            Err(TokenizerError::BadSpecialId {
                what: "BOS",
                id: 101,
                ..
            })
        ));
        assert!(matches!(
            Tokenizer::from_spec(spec("gpt2", Some("no-such-pre"))),
            Err(TokenizerError::UnknownPreTokenizer(p)) if p == "no-such-pre"
        ));
        let mut s = spec("gpt2", Some("gpt-2"));
        s.merges = vec!["ab".into()];
        assert!(matches!(
            Tokenizer::from_spec(s),
            Err(TokenizerError::BadMerge { index: 0, .. })
        ));
        let mut s = spec("llama", None);
        s.scores = vec![0.0];
        assert!(matches!(
            Tokenizer::from_spec(s),
            Err(TokenizerError::LengthMismatch { .. })
        ));
        let mut s = spec("llama", None);
        s.bos = Some(7);
        assert!(matches!(
            Tokenizer::from_spec(s),
            Err(TokenizerError::BadSpecialId { id: 7, .. })
        ));
        // SentencePiece adds BOS by default, so a vocabulary without one is refused.
        assert!(matches!(
            Tokenizer::from_spec(spec("llama", None)),
            Err(TokenizerError::NoBos)
        ));
    }

    #[test]
    fn unrepresentable_bytes_are_errors_not_panics() {
        let mut s = spec("llama", None);
        s.add_bos = Some(false);
        s.add_space_prefix = Some(false);
        let tok = Tokenizer::from_spec(s).unwrap();
        assert!(matches!(
            tok.encode("z"),
            Err(TokenizerError::UnrepresentableByte(b'z'))
        ));
    }
}
