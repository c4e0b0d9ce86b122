//! BPE (`tokenizer.ggml.model = gpt2`, and `gemma4`) built on the Hugging Face `tokenizers` crate:
//! the pre-tokenizer that `tokenizer.ggml.pre` names (a sequence of regex splits, each keeping both
//! matches and the text between them), the GPT-2 byte-to-character map (or, for the SentencePiece-style
//! BPE of Gemma-4 and Sarvam, raw UTF-8 with `▁` for spaces and `<0xXX>` byte fallback), and a BPE
//! model over the file's vocabulary and ranked merges. The regexes are llama.cpp's (`llama-vocab.cpp`
//! of llama.cpp 0c1e570), which for some families differ from the `tokenizer.json` originals.

use crate::{Result, TokenizerError};
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{SplitDelimiterBehavior, Tokenizer};

const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN35: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const TEKKEN: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const GPT4O: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const SEED_CODER: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+";
const BAILINGMOE: &str = r"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";
const BLOOM: &str = r" ?[^(\s|.,!?…。，、।۔،)]+";
const DEEPSEEK_V3: &str = r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##;
/// `spark2_5`: the DeepSeek-V3 split with single line breaks.
const SPARK2_5: &str = r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+|[\r\n]|\s+(?!\S)|\s+"##;
/// The CJK runs split off first by the DeepSeek-V3 family.
const CJK_KANA: &str = r"[一-龥぀-ゟ゠-ヿ]+";
/// `deepseek-llm`: letters of the cased scripts, as llama.cpp lists them.
const DEEPSEEK_LLM_LETTERS: &str = r"\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+";
/// `youtu`: Korean, CJK punctuation, bopomofo and CJK/kana runs first.
const YOUTU_CJK: &str = r"[\x{AC00}-\x{D7A3}\x{3131}-\x{318E}]+|[\x{FF01}\x{2026}\x{201C}\x{201D}\x{2018}\x{2019}\x{2014}\x{FF1A}\x{FF1B}\x{FF0C}\x{3001}-\x{303F}\x{FE30}-\x{FE4F}]+|[\x{3105}-\x{312F}]+|[\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+";
const YOUTU: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// `jais-2`: LLaMA-3 with whitespace runs cut in powers of two.
const JAIS2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s{512}(?!\S)|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)|\s{16}(?!\S)|\s{8}(?!\S)|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1}";
/// Runs of non-newlines and runs of newlines (the only split of SentencePiece-style BPE).
const NEWLINE_RUNS: &str = r"[^\n]+|[\n]+";
/// `chameleon`: sentinel and image tokens, tabs/newlines/indents, digits, single punctuation, GPT-2.
const CHAMELEON: &[&str] = &[
    r"<sentinel:[0-9]+>",
    r"(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",
    r"([\t\n]|    |  )",
    r"\p{N}",
    r"[\p{P}!-/:-@\[-`{-~]",
    GPT2,
];
const EXAONE_MOE: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+";
/// `granite-embed-multi-97m`: GPT-4o's split with combining marks kept on their letters.
const GRANITE_EMB_MULTI: &str = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))*((?=[\p{L}\p{M}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))+((?=[\p{L}\p{M}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Digit runs cut into groups of three from the right (`tiny_aya`, `afmoe`; llama.cpp splits
/// both with the same routine).
const DIGITS_BY_THOUSANDS: &str = r"\p{N}{1,3}(?=(?:\p{N}{3})*(?!\p{N}))";
const TINY_AYA: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// `kimi-k2`: llama.cpp's K2 splitter (Han runs; letter runs without Han; digits by three; ...)
/// written as one regex, with Han as llama.cpp's `unicode_cpt_is_han` ranges.
const KIMI_K2: &str = r"[\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}\x{2B740}-\x{2B81F}\x{2B820}-\x{2CEAF}\x{2CEB0}-\x{2EBEF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}]+|[^\r\n\p{L}\p{N}]?(?:(?![\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}\x{2B740}-\x{2B81F}\x{2B820}-\x{2CEAF}\x{2CEB0}-\x{2EBEF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}])\p{L})+(?:'[sS]|'[tT]|'[mM]|'[dD]|'[rR][eE]|'[vV][eE]|'[lL][lL])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// `ufakzeka`: Qwen2's split without the English contractions.
const UFAKZEKA: &str =
    r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// `afmoe`: CJK and other Asian scripts split off after the digits.
const AFMOE_ASIAN: &str = r"[\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{8C48}-\x{FAFF}\x{3040}-\x{309F}\x{30A0}-\x{30FF}\x{FF65}-\x{FF9F}\x{2F00}-\x{2FDF}\x{E40}-\x{E7F}\x{E80}-\x{EFF}\x{1780}-\x{17FF}\x{1000}-\x{109F}\x{AA60}-\x{AA7F}\x{A9E0}-\x{A9FF}\x{AC00}-\x{D7AF}\x{1100}-\x{11FF}]+";
const MINICPM5: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How the text of a pre-tokenized word is turned into the symbols that BPE merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SymbolEncoding {
    /// GPT-2's byte-to-character map (byte-level BPE).
    ByteLevel,
    /// Raw UTF-8 characters, `<0xXX>` tokens for bytes of characters outside the vocabulary;
    /// `escape_spaces`: spaces are written `▁` first (SentencePiece-style BPE).
    Utf8 { escape_spaces: bool },
}

/// A pre-tokenizer family: the `tokenizer.ggml.pre` names that select it, the regex splits
/// applied in order, and llama.cpp's flags for it.
struct PreTokenizer {
    names: &'static [&'static str],
    regexes: &'static [&'static str],
    /// Whole pre-tokenized words found in the vocabulary skip merging.
    ignore_merges: bool,
    /// BOS is added by default (when `add_bos_token` is absent).
    add_bos: bool,
    /// BOS is added even when the file says `add_bos_token = false` (llama.cpp's Gemma-4 rule).
    forces_bos: bool,
    symbols: SymbolEncoding,
    /// A word made only of newlines that is itself a token is that token (Gemma-4).
    whole_newline_runs: bool,
}

const fn family(names: &'static [&'static str], regexes: &'static [&'static str]) -> PreTokenizer {
    PreTokenizer {
        names,
        regexes,
        ignore_merges: false,
        add_bos: false,
        forces_bos: false,
        symbols: SymbolEncoding::ByteLevel,
        whole_newline_runs: false,
    }
}

/// A family whose whole pre-tokenized words found in the vocabulary skip merging.
const fn ignoring_merges(
    names: &'static [&'static str],
    regexes: &'static [&'static str],
) -> PreTokenizer {
    PreTokenizer {
        ignore_merges: true,
        ..family(names, regexes)
    }
}

/// Every pre-tokenizer this crate knows, as llama.cpp defines them.
const PRE_TOKENIZERS: &[PreTokenizer] = &[
    PreTokenizer {
        add_bos: true,
        ..ignoring_merges(
            &[
                "llama-bpe",
                "llama3",
                "llama-v3",
                "falcon3",
                "falcon-h1",
                "pixtral",
                "midm-2.0",
                "lfm2",
                "jina-v5-nano",
            ],
            &[LLAMA3],
        )
    },
    family(&["dbrx", "smaug-bpe", "chatglm-bpe"], &[LLAMA3]),
    ignoring_merges(&["glm4", "glm5"], &[LLAMA3]),
    family(&["jais-2"], &[JAIS2]),
    ignoring_merges(&["minicpm5"], &[r"\p{N}{1,3}", MINICPM5]),
    family(
        &[
            "gpt-2",
            "phi-2",
            "jina-es",
            "jina-de",
            "jina-v1-en",
            "jina-v2-es",
            "jina-v2-de",
            "jina-v2-code",
            "roberta-bpe",
            "gigachat",
            "a.x-4.0",
            "mellum",
            "modern-bert",
            "mpt",
            "olmo",
            "jais",
            "trillion",
            "exaone4",
            "granite-docling",
        ],
        &[GPT2],
    ),
    family(
        &[
            "smollm",
            "starcoder",
            "refact",
            "command-r",
            "codeshell",
            "exaone",
            "minerva-7b",
            "mellum2",
        ],
        &[r"\p{N}", GPT2],
    ),
    family(
        &[
            "qwen2",
            "deepseek-r1-qwen",
            "kormo",
            "f2llmv2",
            "megrez",
            "stablelm2",
            "hunyuan",
            "solar-open",
            "grok-2",
        ],
        &[QWEN2],
    ),
    family(&["laguna"], &[NEWLINE_RUNS, QWEN2]),
    family(&["ufakzeka"], &[UFAKZEKA]),
    family(&["exaone-moe"], &[EXAONE_MOE]),
    family(&["qwen35"], &[QWEN35]),
    family(
        &["falcon"],
        &[r"[\p{P}\$\+<=>\^~\|`]+", GPT2, r"[0-9][0-9][0-9]"],
    ),
    PreTokenizer {
        add_bos: true,
        ..ignoring_merges(&["tekken"], &[TEKKEN])
    },
    PreTokenizer {
        add_bos: true,
        ..family(&["chameleon"], CHAMELEON)
    },
    family(
        &["gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"],
        &[GPT4O],
    ),
    ignoring_merges(&["granite-embed-multi-97m"], &[GRANITE_EMB_MULTI]),
    family(
        &["tiny_aya", "cohere2moe"],
        &[DIGITS_BY_THOUSANDS, TINY_AYA],
    ),
    family(&["kimi-k2"], &[KIMI_K2]),
    family(&["superbpe"], &[r"\p{N}+", r"(?=(\d{3})+(?!\d))"]),
    family(&["seed-coder"], &[SEED_CODER]),
    family(&["bailingmoe", "bailingmoe2", "llada-moe"], &[BAILINGMOE]),
    family(&["poro-chat", "bloom", "gpt3-finnish"], &[BLOOM]),
    family(&["viking"], &[BLOOM, r"\p{N}"]),
    family(
        &["deepseek-coder"],
        &[
            r"[\r\n]",
            r"\s?\p{L}+",
            r"\s?\p{P}+",
            r"[一-龥ࠀ-一가-퟿]+",
            r"\p{N}",
        ],
    ),
    family(
        &["deepseek-llm"],
        &[
            r"[\r\n]",
            DEEPSEEK_LLM_LETTERS,
            r"\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+",
            r"\s+$",
            r"[一-龥ࠀ-一가-퟿]+",
            r"\p{N}+",
        ],
    ),
    family(
        &["deepseek-v3", "hunyuan-dense", "joyai-llm", "hy_v4"],
        &[r"\p{N}{1,3}", CJK_KANA, DEEPSEEK_V3],
    ),
    family(
        &["spark2_5"],
        &[r"\p{N}{1,3}", CJK_KANA, SPARK2_5, r"\p{N}"],
    ),
    ignoring_merges(&["youtu"], &[YOUTU_CJK, YOUTU]),
    family(&["afmoe"], &[DIGITS_BY_THOUSANDS, AFMOE_ASIAN, DEEPSEEK_V3]),
    PreTokenizer {
        add_bos: true,
        forces_bos: true,
        symbols: SymbolEncoding::Utf8 {
            escape_spaces: true,
        },
        whole_newline_runs: true,
        ..family(&["gemma4", "granite-embed-multi-311m"], &[NEWLINE_RUNS])
    },
    PreTokenizer {
        symbols: SymbolEncoding::Utf8 {
            escape_spaces: true,
        },
        ..family(&["sarvam-moe"], &[NEWLINE_RUNS])
    },
    PreTokenizer {
        symbols: SymbolEncoding::Utf8 {
            escape_spaces: false,
        },
        ..family(&["whitespace"], &[r"\S+"])
    },
    family(
        &["default"],
        &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
    ),
];

/// Every `tokenizer.ggml.pre` value this crate accepts for BPE vocabularies.
pub fn known_pre_tokenizers() -> Vec<&'static str> {
    PRE_TOKENIZERS
        .iter()
        .flat_map(|p| p.names.iter().copied())
        .collect()
}

impl PreTokenizer {
    /// The `tokenizers` pre-tokenizer: each regex split in order (matches and the text between
    /// them both kept, as llama.cpp does), then GPT-2's byte map for byte-level families.
    fn steps(&self) -> Result<Sequence> {
        let mut steps: Vec<PreTokenizerWrapper> = Vec::new();
        for regex in self.regexes {
            let split = Split::new(
                SplitPattern::Regex((*regex).to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )?;
            steps.push(split.into());
        }
        if self.symbols == SymbolEncoding::ByteLevel {
            steps.push(ByteLevel::new(false, false, false).into());
        }
        Ok(Sequence::new(steps))
    }
}

/// The family `pre` names (absent: `default`).
fn pre_tokenizer(pre: Option<&str>) -> Result<&'static PreTokenizer> {
    let name = pre.unwrap_or("default");
    PRE_TOKENIZERS
        .iter()
        .find(|p| p.names.contains(&name))
        .ok_or_else(|| TokenizerError::UnknownPreTokenizer(name.to_string()))
}

/// llama.cpp's defaults for a BPE pre-tokenizer name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PreTokenizerFlags {
    pub(crate) ignore_merges: bool,
    pub(crate) add_bos: bool,
    pub(crate) forces_bos: bool,
    pub(crate) symbols: SymbolEncoding,
}

/// The flags of a BPE pre-tokenizer name; unknown names give GPT-2's defaults here and an error
/// when the encoder is built.
pub(crate) fn pre_tokenizer_flags(pre: Option<&str>) -> PreTokenizerFlags {
    match pre_tokenizer(pre) {
        Ok(p) => PreTokenizerFlags {
            ignore_merges: p.ignore_merges,
            add_bos: p.add_bos,
            forces_bos: p.forces_bos,
            symbols: p.symbols,
        },
        Err(_) => PreTokenizerFlags {
            ignore_merges: false,
            add_bos: false,
            forces_bos: false,
            symbols: SymbolEncoding::ByteLevel,
        },
    }
}

/// A BPE encoder for raw-text fragments (special tokens are handled by the caller).
pub(crate) struct BpeEncoder {
    inner: Tokenizer,
    symbols: SymbolEncoding,
    /// Newline-only words that are tokens themselves, by text (Gemma-4's rule).
    newline_tokens: Option<std::collections::HashMap<String, u32>>,
}

impl BpeEncoder {
    /// Builds the encoder from the vocabulary, the `"left right"` merges and the pre-tokenizer name.
    pub(crate) fn new(
        tokens: &[String],
        merges: &[String],
        pre: Option<&str>,
        ignore_merges: bool,
    ) -> Result<Self> {
        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(id, text)| (text.clone(), id as u32))
            .collect();
        let merges = merges
            .iter()
            .enumerate()
            .map(|(index, merge)| {
                // The left part is never empty, so the separator is the first space after byte 0.
                let first = merge.chars().next().map_or(0, char::len_utf8);
                merge[first..]
                    .find(' ')
                    .map(|p| first + p)
                    .map(|p| (merge[..p].to_string(), merge[p + 1..].to_string()))
                    .ok_or_else(|| TokenizerError::BadMerge {
                        index,
                        merge: merge.clone(),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let family = pre_tokenizer(pre)?;
        let newline_tokens = family.whole_newline_runs.then(|| {
            vocab
                .iter()
                .filter(|(text, _)| !text.is_empty() && text.bytes().all(|b| b == b'\n'))
                .map(|(text, &id)| (text.clone(), id))
                .collect()
        });
        let model = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .ignore_merges(ignore_merges)
            // `<0xXX>` tokens for characters outside the vocabulary (unused by byte-level BPE,
            // whose alphabet covers every byte).
            .byte_fallback(family.symbols != SymbolEncoding::ByteLevel)
            .build()?;
        let mut inner = Tokenizer::new(model);
        inner.with_pre_tokenizer(Some(family.steps()?));
        Ok(BpeEncoder {
            inner,
            symbols: family.symbols,
            newline_tokens,
        })
    }

    /// Appends the ids of one text fragment.
    pub(crate) fn encode(&self, text: &str, out: &mut Vec<u32>) -> Result<()> {
        let escaped;
        let text = match self.symbols {
            SymbolEncoding::Utf8 {
                escape_spaces: true,
            } => {
                escaped = text.replace(' ', crate::score_merges::SPACE_MARK);
                escaped.as_str()
            }
            _ => text,
        };
        let Some(newline_tokens) = &self.newline_tokens else {
            return self.encode_words(text, out);
        };
        // Runs of newlines that are tokens skip merging; the text between them is encoded as usual.
        let mut rest = text;
        while !rest.is_empty() {
            let newlines = rest.len() - rest.trim_start_matches('\n').len();
            let run = if newlines > 0 {
                newlines
            } else {
                rest.find('\n').unwrap_or(rest.len())
            };
            let (piece, tail) = rest.split_at(run);
            match newline_tokens.get(piece) {
                Some(&id) => out.push(id),
                None => self.encode_words(piece, out)?,
            }
            rest = tail;
        }
        Ok(())
    }

    /// How word texts become BPE symbols (and so how token texts decode).
    pub(crate) fn symbols(&self) -> SymbolEncoding {
        self.symbols
    }

    fn encode_words(&self, text: &str, out: &mut Vec<u32>) -> Result<()> {
        let encoding = self.inner.encode_fast(text, false)?;
        out.extend_from_slice(encoding.get_ids());
        Ok(())
    }
}

/// The GPT-2 byte-level alphabet: the character that stands for each byte.
fn byte_to_char() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next_unprintable = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        table[b as usize] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(next_unprintable).unwrap_or('\u{FFFD}');
            next_unprintable += 1;
            c
        };
    }
    table
}

/// Maps a byte-level token text back to its bytes; characters outside the alphabet (which a
/// well-formed vocabulary does not have) are kept as their UTF-8 encoding.
pub(crate) struct ByteLevelDecoder {
    char_to_byte: std::collections::HashMap<char, u8>,
}

impl ByteLevelDecoder {
    pub(crate) fn new() -> Self {
        let char_to_byte = byte_to_char()
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        ByteLevelDecoder { char_to_byte }
    }

    pub(crate) fn bytes(&self, text: &str, out: &mut Vec<u8>) {
        for c in text.chars() {
            match self.char_to_byte.get(&c) {
                Some(&b) => out.push(b),
                None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_alphabet_is_gpt2s() {
        // Published GPT-2 facts: space is "Ġ" (U+0120), newline "Ċ" (U+010A), tab "ĉ" (U+0109),
        // byte 0xAD "Ń" (U+0143), printable ASCII maps to itself.
        let t = byte_to_char();
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'\t' as usize], 'ĉ');
        assert_eq!(t[0xAD], 'Ń');
        assert_eq!(t[b'a' as usize], 'a');
        let distinct: std::collections::HashSet<char> = t.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
    }

    #[test]
    fn every_pre_tokenizer_regex_compiles() {
        for family in PRE_TOKENIZERS {
            assert!(
                family.steps().is_ok(),
                "{:?} does not compile",
                family.names
            );
        }
    }

    /// The words `pre` cuts `text` into, GPT-2's byte map undone.
    fn words(pre: &str, text: &str) -> Vec<String> {
        use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer as _};
        let mut pretokenized = PreTokenizedString::from(text);
        pre_tokenizer(Some(pre))
            .unwrap()
            .steps()
            .unwrap()
            .pre_tokenize(&mut pretokenized)
            .unwrap();
        pretokenized
            .get_splits(OffsetReferential::Original, OffsetType::Byte)
            .into_iter()
            .map(|(_, (start, end), _)| text[start..end].to_string())
            .collect()
    }

    /// Families no vocab fixture covers, checked against the splits llama.cpp documents for them
    /// (`llama-vocab.cpp` / `unicode.cpp` comments of 0c1e570).
    #[test]
    fn pre_tokenizers_without_fixtures_split_as_llama_cpp_documents() {
        // tiny_aya and afmoe: digit runs in groups of three from the right ("1234567 -> 1, 234, 567").
        for pre in ["tiny_aya", "afmoe"] {
            assert_eq!(words(pre, "1234567"), ["1", "234", "567"], "{pre}");
            assert_eq!(words(pre, "12 345"), ["12", " ", "345"], "{pre}");
        }
        // superbpe: the same grouping by a zero-width split before each trailing group of three.
        assert_eq!(words("superbpe", "1234567"), ["1", "234", "567"]);
        // kimi-k2: Han runs are words of their own, apart from the letters around them.
        assert_eq!(words("kimi-k2", "abc中文def"), ["abc", "中文", "def"]);
        // jais-2: runs of spaces before a word are cut in powers of two, the last space joining
        // the word.
        assert_eq!(words("jais-2", "a         b"), ["a", "        ", " b"]);
        // laguna, gemma4: lines and runs of newlines first.
        assert_eq!(words("gemma4", "a b\n\nc"), ["a b", "\n\n", "c"]);
        // whitespace: runs of non-space characters.
        assert_eq!(words("whitespace", "ab  cd"), ["ab", "  ", "cd"]);
    }
}
