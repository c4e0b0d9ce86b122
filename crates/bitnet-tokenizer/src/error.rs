//! The crate's error type: every way building a tokenizer, encoding, decoding or rendering a chat
//! template can fail, with the offending name, id or key in the message.

use thiserror::Error;

/// Errors from this crate.
#[derive(Debug, Error)]
pub enum TokenizerError {
    /// A required GGUF metadata key is absent.
    #[error(
        "GGUF metadata key `{0}` is missing (the file has no tokenizer, or an incomplete one)"
    )]
    MissingKey(&'static str),
    /// A GGUF metadata key holds a value of the wrong type.
    #[error("GGUF metadata key `{key}` has the wrong type: expected {expected}")]
    WrongType {
        /// The key.
        key: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// `tokenizer.ggml.model` names a tokenizer this crate does not implement.
    #[error("unsupported tokenizer model `{0}` (supported: gpt2 = byte-level BPE, gemma4 = UTF-8 BPE, llama = SentencePiece, t5 = Unigram, bert = WordPiece)")]
    UnsupportedModel(String),
    /// `tokenizer.ggml.precompiled_charsmap` (a Unigram normalizer) is malformed.
    #[error("malformed tokenizer.ggml.precompiled_charsmap: {0}")]
    BadCharsMap(&'static str),
    /// `tokenizer.ggml.pre` names a pre-tokenizer this crate does not know.
    #[error("unknown BPE pre-tokenizer `{0}`; known: {known}", known = crate::bpe::known_pre_tokenizers().join(", "))]
    UnknownPreTokenizer(String),
    /// Parallel vocabulary arrays disagree in length.
    #[error("vocabulary arrays disagree: {what} has {got} entries, tokens has {expected}")]
    LengthMismatch {
        /// Which array.
        what: &'static str,
        /// Its length.
        got: usize,
        /// The number of tokens.
        expected: usize,
    },
    /// A BPE merge line is not two tokens separated by a space.
    #[error("malformed BPE merge #{index}: {merge:?}")]
    BadMerge {
        /// Its index in `tokenizer.ggml.merges`.
        index: usize,
        /// The text.
        merge: String,
    },
    /// A token id is outside the vocabulary.
    #[error("token id {id} is out of range (vocabulary size {vocab_size})")]
    IdOutOfRange {
        /// The id.
        id: u32,
        /// The vocabulary size.
        vocab_size: usize,
    },
    /// A byte cannot be represented by any token (no `<0xXX>` token, no single-byte token, no unknown token).
    #[error(
        "byte 0x{0:02X} has no token in this vocabulary (no byte fallback and no unknown token)"
    )]
    UnrepresentableByte(u8),
    /// The special-token configuration refers to a missing token.
    #[error("{what} token id {id} is not in the vocabulary (size {vocab_size})")]
    BadSpecialId {
        /// Which special token.
        what: &'static str,
        /// The id.
        id: u32,
        /// The vocabulary size.
        vocab_size: usize,
    },
    /// `add_bos` is set but the vocabulary has no BOS token.
    #[error("the vocabulary asks for a BOS token but defines none")]
    NoBos,

    #[error("the WordPiece vocabulary asks for a separator token but defines none")]
    NoSeparator,
    /// An input cannot be cut to the requested length (see `Tokenizer::encode_truncated`).
    #[error("cannot truncate the input: {0}")]
    Truncation(String),
    /// Text pairs need BERT's `[CLS]` and `[SEP]` tokens.
    #[error("this vocabulary has no [CLS]/[SEP] pair form (text pairs need a BERT WordPiece vocabulary)")]
    NoPairForm,
    /// An error from the Hugging Face `tokenizers` crate.
    #[error("tokenizers: {0}")]
    Hf(String),
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// An error from the GGUF reader.
    #[error("GGUF: {0}")]
    Gguf(String),
    /// A chat template failed to compile or render.
    #[error("chat template `{name}`: {message}")]
    Template {
        /// The template's name.
        name: String,
        /// What went wrong (line numbers included where known).
        message: String,
    },
    /// A chat template name that is not built in.
    #[error("unknown chat template `{0}`; `bitnet templates` lists the built-in ones")]
    UnknownTemplate(String),
    /// A SentencePiece `tokenizer.model` that cannot be read.
    #[error("SentencePiece model: {0}")]
    SentencePiece(String),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, TokenizerError>;

impl From<tokenizers::Error> for TokenizerError {
    fn from(e: tokenizers::Error) -> Self {
        TokenizerError::Hf(e.to_string())
    }
}
