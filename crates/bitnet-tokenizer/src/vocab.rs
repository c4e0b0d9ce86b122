//! The vocabulary as a plain description (`VocabSpec`): what a GGUF file's `tokenizer.ggml.*` keys
//! say, independent of how it was read, plus the llama.cpp rules that turn absent keys into defaults
//! and token types into the attributes the encoder and decoder act on.

/// Which tokenizer algorithm the vocabulary is for (`tokenizer.ggml.model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VocabKind {
    /// `gpt2`: byte-level BPE with ranked merges and a regex pre-tokenizer.
    Bpe,
    /// `llama`: SentencePiece-style merges by piece score, `▁` for spaces, `<0xXX>` byte fallback.
    Spm,
    /// `t5`: Unigram (best-scoring segmentation) after SentencePiece's precompiled normalizer.
    Ugm,
    /// `bert`: WordPiece (greedy longest match per word) after BERT's normalizer, `[CLS]` … `[SEP]`.
    WordPiece,
}

impl VocabKind {
    /// Parses `tokenizer.ggml.model`.
    pub fn from_gguf_name(name: &str) -> crate::Result<Self> {
        match name {
            // Gemma-4's vocabulary is BPE over raw UTF-8 (pre-tokenizer `gemma4`, see `bpe`).
            "gpt2" | "gemma4" => Ok(VocabKind::Bpe),
            "llama" => Ok(VocabKind::Spm),
            "t5" => Ok(VocabKind::Ugm),
            "bert" => Ok(VocabKind::WordPiece),
            other => Err(crate::TokenizerError::UnsupportedModel(other.to_string())),
        }
    }

    /// The GGUF name.
    pub fn gguf_name(self) -> &'static str {
        match self {
            VocabKind::Bpe => "gpt2",
            VocabKind::Spm => "llama",
            VocabKind::Ugm => "t5",
            VocabKind::WordPiece => "bert",
        }
    }
}

/// A token's type (`tokenizer.ggml.token_type`, the values llama.cpp and gguf-py use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenType {
    /// Ordinary text piece (1; also any value this crate does not know).
    Normal,
    /// The unknown token (2).
    Unknown,
    /// Control token such as BOS/EOS or `<|eot_id|>` (3): matched in text only when special
    /// tokens are parsed, hidden when decoding unless asked for.
    Control,
    /// User-defined token (4): always matched in text, always shown, never split.
    UserDefined,
    /// Unused slot (5): never produced by the encoder, decodes to nothing.
    Unused,
    /// A `<0xXX>` byte-fallback token (6).
    Byte,
}

impl TokenType {
    /// From the GGUF integer.
    pub fn from_gguf(v: i64) -> Self {
        match v {
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Normal,
        }
    }

    /// Whether the text partitioner looks for this token in input text (before the model sees it).
    pub(crate) fn is_partitioned(self, parse_special: bool) -> bool {
        match self {
            TokenType::UserDefined => true,
            TokenType::Control | TokenType::Unknown => parse_special,
            _ => false,
        }
    }
}

/// Everything needed to build a tokenizer from GGUF-style metadata.
///
/// Optional flags are `None` when the file does not set them; [`VocabSpec::resolved_flags`] applies
/// llama.cpp's defaults.
#[derive(Debug, Clone, Default)]
pub struct VocabSpec {
    /// `tokenizer.ggml.model` (`gpt2`, `gemma4`, `llama`, `t5` or `bert`).
    pub model: String,
    /// `tokenizer.ggml.pre` (BPE pre-tokenizer name), if present.
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.scores` (empty when absent).
    pub scores: Vec<f32>,
    /// `tokenizer.ggml.token_type` (empty when absent: all normal).
    pub token_types: Vec<TokenType>,
    /// `tokenizer.ggml.merges` (`"left right"`), BPE only.
    pub merges: Vec<String>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos: Option<u32>,
    /// `tokenizer.ggml.eot_token_id`.
    pub eot: Option<u32>,
    /// `tokenizer.ggml.eom_token_id`.
    pub eom: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unk: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub pad: Option<u32>,
    /// `tokenizer.ggml.cls_token_id` (WordPiece's BOS when `bos_token_id` is absent).
    pub cls: Option<u32>,
    /// `tokenizer.ggml.seperator_token_id` (llama.cpp's spelling; WordPiece's closing `[SEP]`).
    pub sep: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`.
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`.
    pub add_space_prefix: Option<bool>,
    /// `tokenizer.ggml.add_sep_token` (WordPiece: append `[SEP]`).
    pub add_sep: Option<bool>,
    /// `tokenizer.ggml.remove_extra_whitespaces` (Unigram).
    pub remove_extra_whitespaces: Option<bool>,
    /// `tokenizer.ggml.normalizer.lowercase` (WordPiece; llama.cpp's default: on).
    pub lowercase: Option<bool>,
    /// `tokenizer.ggml.normalizer.strip_accents` (WordPiece; default: as `lowercase`).
    pub strip_accents: Option<bool>,
    /// `tokenizer.ggml.precompiled_charsmap` (Unigram's normalizer; empty when absent).
    pub precompiled_charsmap: Vec<u8>,
    /// `general.architecture`, used for chat-template detection.
    pub architecture: Option<String>,
    /// `general.name`, used for chat-template detection.
    pub name: Option<String>,
    /// `tokenizer.chat_template`.
    pub chat_template: Option<String>,
}

/// The encoder flags after llama.cpp's defaults are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedFlags {
    /// Prepend BOS when special tokens are added.
    pub add_bos: bool,
    /// Append EOS when special tokens are added.
    pub add_eos: bool,
    /// SPM: prepend a space to text that starts the input or follows a special token.
    pub add_space_prefix: bool,
    /// BPE: look whole pre-tokenized words up in the vocabulary before merging.
    pub ignore_merges: bool,
    /// WordPiece: append the separator (`[SEP]`) when special tokens are added.
    pub add_sep: bool,
}

impl VocabSpec {
    /// The BPE pre-tokenizer name in effect: `tokenizer.ggml.model = gemma4` implies `gemma4`
    /// whatever `tokenizer.ggml.pre` says (as in llama.cpp).
    pub fn effective_pre(&self) -> Option<&str> {
        if self.model == "gemma4" {
            Some("gemma4")
        } else {
            self.pre.as_deref()
        }
    }

    /// Applies llama.cpp's defaults: SPM adds BOS and a space prefix; BPE adds neither, except
    /// that the LLaMA-3 family (`llama-bpe` and its aliases) and `tekken` add BOS and skip merges
    /// for words already in the vocabulary. Keys present in the file override the defaults.
    pub fn resolved_flags(&self, kind: VocabKind) -> ResolvedFlags {
        let (add_bos, add_space_prefix, ignore_merges, forces_bos) = match kind {
            VocabKind::Spm => (true, true, false, false),
            // llama.cpp: Unigram adds EOS, not BOS, and no space prefix unless the file says so.
            VocabKind::Ugm => (false, false, false, false),
            // llama.cpp: WordPiece adds BOS (`[CLS]`) and the separator, never EOS.
            VocabKind::WordPiece => (true, false, false, false),
            VocabKind::Bpe => {
                let f = crate::bpe::pre_tokenizer_flags(self.effective_pre());
                (f.add_bos, false, f.ignore_merges, f.forces_bos)
            }
        };
        ResolvedFlags {
            add_bos: forces_bos || self.add_bos.unwrap_or(add_bos),
            add_eos: self.add_eos.unwrap_or(kind == VocabKind::Ugm),
            add_space_prefix: self.add_space_prefix.unwrap_or(add_space_prefix),
            ignore_merges,
            add_sep: kind == VocabKind::WordPiece && self.add_sep.unwrap_or(true),
        }
    }
}
