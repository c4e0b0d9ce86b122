//! Constrained decoding: a grammar decides, before each sampling step, which tokens may come
//! next, so the output is guaranteed to match a JSON Schema, a regular expression or a
//! context-free grammar (Lark, or GBNF converted to Lark by [`gbnf_to_lark`]).
//!
//! The grammar machinery is `llguidance` (an Earley parser over lexemes, with a token trie to
//! turn the parser state into a token mask). Its token trie is built from our own vocabulary:
//! the bytes of every token id as [`Tokenizer::token_bytes`] gives them, control tokens marked
//! with llguidance's special-token byte (0xFF) so a grammar can name them (`<|im_end|>`) but
//! never produce them as text.
//!
//! - [`ConstraintCompiler`]: one per tokenizer (building the trie and the lexer slices takes a
//!   while); compiles a [`ConstraintSpec`] into a fresh [`Constraint`] or a typed error naming
//!   what cannot be enforced.
//! - [`Constraint`]: one per sequence; gives the allowed-token mask for the next step and follows
//!   the sampled tokens. Each sequence of a batch carries its own.

use std::fmt;
use std::sync::Arc;

use bitnet_tokenizer::{TokenType, Tokenizer};
use llguidance::api::{GrammarWithLexer, TopLevelGrammar};
use llguidance::toktrie::{ApproximateTokEnv, SimpleVob, TokEnv, TokRxInfo, TokTrie};
use llguidance::{Matcher, ParserFactory};

/// What the output must match.
#[derive(Debug, Clone, PartialEq)]
pub enum ConstraintSpec {
    /// Any JSON object (OpenAI's `{"type": "json_object"}`).
    JsonObject,
    /// A JSON value valid against this JSON Schema.
    JsonSchema(serde_json::Value),
    /// Text matching this regular expression (Rust `regex` syntax) in full.
    Regex(String),
    /// A context-free grammar in llguidance's Lark dialect (`start` is the top rule).
    Lark(String),
    /// A grammar in llama.cpp's GBNF (`root` is the top rule), converted by [`gbnf_to_lark`].
    Gbnf(String),
}

impl ConstraintSpec {
    /// A short name of the kind of constraint (for messages).
    pub fn kind(&self) -> &'static str {
        match self {
            ConstraintSpec::JsonObject => "JSON object",
            ConstraintSpec::JsonSchema(_) => "JSON schema",
            ConstraintSpec::Regex(_) => "regular expression",
            ConstraintSpec::Lark(_) => "Lark grammar",
            ConstraintSpec::Gbnf(_) => "GBNF grammar",
        }
    }
}

/// Why a constraint cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintError {
    /// The vocabulary cannot carry a grammar (no end-of-generation token to finish on).
    #[error("constrained decoding needs an end-of-generation token and this vocabulary has none")]
    NoEndToken,
    /// The grammar machinery refused the vocabulary.
    #[error("building the token trie for constrained decoding: {0}")]
    Vocabulary(String),
    /// A GBNF grammar outside the supported subset, or malformed.
    #[error("GBNF grammar: {0}")]
    Gbnf(String),
    /// The schema or grammar cannot be compiled or enforced (the message names the part).
    #[error("the {kind} cannot be enforced: {message}")]
    Unsupported { kind: &'static str, message: String },
    /// The sampled token is not allowed by the grammar (a broken invariant: the mask forbids it).
    #[error("token {token} violates the grammar: {message}")]
    Rejected { token: u32, message: String },
}

/// Compiles constraints for one tokenizer (see the module docs).
pub struct ConstraintCompiler {
    factory: ParserFactory,
}

impl fmt::Debug for ConstraintCompiler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConstraintCompiler")
            .field(
                "vocab_size",
                &self.factory.tok_env().tok_trie().vocab_size(),
            )
            .finish()
    }
}

/// The byte string llguidance's trie gets for each token: the token's bytes for text tokens,
/// 0xFF followed by the token's text for control tokens (so grammars can name them), nothing
/// for unused slots.
pub fn trie_words(tokenizer: &Tokenizer) -> Vec<Vec<u8>> {
    (0..tokenizer.vocab_size() as u32)
        .map(|id| match tokenizer.token_type(id) {
            Some(TokenType::Control | TokenType::Unknown) => {
                let mut word = vec![TokTrie::SPECIAL_TOKEN_MARKER];
                word.extend_from_slice(tokenizer.token_text(id).unwrap_or_default().as_bytes());
                word
            }
            _ => tokenizer.token_bytes(id, false).unwrap_or_default(),
        })
        .collect()
}

impl ConstraintCompiler {
    /// Builds the token trie from `tokenizer`'s vocabulary; its end-of-generation tokens are the
    /// tokens a grammar finishes on.
    pub fn new(tokenizer: &Tokenizer) -> Result<Self, ConstraintError> {
        let end = tokenizer.end_of_generation();
        let first_end = *end.first().ok_or(ConstraintError::NoEndToken)?;
        let words = trie_words(tokenizer);
        let mut info = TokRxInfo::new(words.len() as u32, first_end);
        info.tok_bos = tokenizer.bos();
        let trie = TokTrie::from(&info, &words).with_eos_tokens(end);
        let env: TokEnv = Arc::new(ApproximateTokEnv::new(trie));
        let mut factory = ParserFactory::new_simple(&env)
            .map_err(|e| ConstraintError::Vocabulary(e.to_string()))?;
        factory.quiet();
        Ok(ConstraintCompiler { factory })
    }

    /// Compiles `spec` into a constraint at the start of the output.
    pub fn compile(&self, spec: &ConstraintSpec) -> Result<Constraint, ConstraintError> {
        let kind = spec.kind();
        let grammar = match spec {
            ConstraintSpec::JsonObject => json_grammar(serde_json::json!({"type": "object"})),
            ConstraintSpec::JsonSchema(schema) => {
                if !schema.is_object() && !schema.is_boolean() {
                    return Err(ConstraintError::Unsupported {
                        kind,
                        message: "a JSON schema must be an object (or a boolean)".into(),
                    });
                }
                json_grammar(schema.clone())
            }
            ConstraintSpec::Regex(rx) => TopLevelGrammar::from_regex(rx),
            ConstraintSpec::Lark(lark) => TopLevelGrammar::from_lark(lark.clone()),
            ConstraintSpec::Gbnf(gbnf) => TopLevelGrammar::from_lark(gbnf_to_lark(gbnf)?),
        };
        let matcher = Matcher::new(self.factory.create_parser(grammar));
        if let Some(message) = matcher.get_error() {
            return Err(ConstraintError::Unsupported {
                kind,
                message: tidy_error(&message),
            });
        }
        Ok(Constraint { matcher })
    }
}

/// A JSON-schema grammar with compact separators (`,` and `:` without spaces) unless the schema
/// sets its own `x-guidance` options: free whitespace lets a small model pad forever.
fn json_grammar(mut schema: serde_json::Value) -> TopLevelGrammar {
    if let Some(object) = schema.as_object_mut() {
        object
            .entry("x-guidance")
            .or_insert_with(|| serde_json::json!({"whitespace_flexible": false}));
    }
    TopLevelGrammar::from_grammar(GrammarWithLexer::from_json_schema(schema))
}

/// llguidance prefixes errors with its internal context; keep the message readable.
fn tidy_error(message: &str) -> String {
    message.trim().trim_start_matches("Error: ").to_string()
}

/// One sequence's grammar state (see the module docs).
#[derive(Clone)]
pub struct Constraint {
    matcher: Matcher,
}

impl fmt::Debug for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Constraint")
            .field("stopped", &self.matcher.is_stopped())
            .finish()
    }
}

/// The tokens allowed at one step.
pub struct TokenMask(SimpleVob);

impl TokenMask {
    /// Whether `token` may come next.
    pub fn allows(&self, token: u32) -> bool {
        (token as usize) < self.0.len() && self.0.is_allowed(token)
    }

    /// How many tokens may come next.
    pub fn count(&self) -> usize {
        self.0.num_set()
    }
}

impl Constraint {
    /// The tokens allowed next (end-of-generation tokens when the grammar may end here).
    pub fn mask(&mut self) -> Result<TokenMask, ConstraintError> {
        self.matcher
            .compute_mask()
            .map(TokenMask)
            .map_err(|e| ConstraintError::Unsupported {
                kind: "grammar",
                message: tidy_error(&e.to_string()),
            })
    }

    /// Advances past the sampled `token`.
    pub fn consume(&mut self, token: u32) -> Result<(), ConstraintError> {
        self.matcher
            .consume_token(token)
            .map_err(|e| ConstraintError::Rejected {
                token,
                message: tidy_error(&e.to_string()),
            })
    }

    /// The grammar is complete and allows nothing more (only ending).
    pub fn is_stopped(&self) -> bool {
        self.matcher.is_stopped()
    }

    /// The output so far is a complete match (the grammar may end here).
    pub fn is_accepting(&mut self) -> bool {
        self.matcher.is_accepting().unwrap_or(false)
    }

    /// Whether `tokens`, fed from the start, are all allowed (on a fresh copy; `self` is not
    /// advanced). Returns how many of them the grammar accepts.
    pub fn accepted_prefix(&self, tokens: &[u32]) -> usize {
        let mut copy = self.matcher.deep_clone();
        copy.validate_tokens(tokens).unwrap_or(0)
    }
}

/// Converts a GBNF grammar (llama.cpp's format) to llguidance's Lark dialect.
///
/// The supported subset is GBNF as llama.cpp documents it: rules `name ::= expression` (names
/// of letters, digits, `-` and `_`; `root` is the start), string literals `"..."` with the
/// escapes `\n \r \t \\ \" \xHH \uHHHH \UHHHHHHHH`, character classes `[...]` / `[^...]` with
/// ranges and the same escapes, `.` (any character), grouping `( )`, alternatives `|`,
/// repetition `* + ?` and `{m}` `{m,}` `{m,n}` `{,n}`, and `#` comments. A rule ends where the
/// next `name ::=` begins (newlines do not matter). Anything else is an error naming it.
pub fn gbnf_to_lark(gbnf: &str) -> Result<String, ConstraintError> {
    let tokens = gbnf_tokens(gbnf)?;
    let mut rules: Vec<(String, Vec<String>)> = Vec::new();
    let mut names: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut i = 0;
    while i < tokens.len() {
        let starts_rule = matches!(&tokens[i], GbnfToken::Name(_))
            && matches!(tokens.get(i + 1), Some(GbnfToken::Defines));
        if starts_rule {
            let GbnfToken::Name(name) = &tokens[i] else {
                unreachable!()
            };
            let lark_name = lark_rule_name(name);
            if let Some(other) = names.insert(lark_name.clone(), name.clone()) {
                if &other != name {
                    return Err(ConstraintError::Gbnf(format!(
                        "the rule names {other:?} and {name:?} are too alike (both become {lark_name:?})"
                    )));
                }
            }
            rules.push((lark_name, Vec::new()));
            i += 2;
            continue;
        }
        let Some((_, body)) = rules.last_mut() else {
            return Err(ConstraintError::Gbnf(
                "the grammar must start with a rule `name ::= ...`".into(),
            ));
        };
        body.push(match &tokens[i] {
            GbnfToken::Name(name) => lark_rule_name(name),
            GbnfToken::Defines => {
                return Err(ConstraintError::Gbnf(
                    "`::=` must follow a rule name".into(),
                ))
            }
            GbnfToken::Lark(text) => text.clone(),
        });
        i += 1;
    }
    if rules.is_empty() {
        return Err(ConstraintError::Gbnf("the grammar has no rules".into()));
    }
    for (name, body) in &rules {
        if body.is_empty() {
            return Err(ConstraintError::Gbnf(format!("the rule {name:?} is empty")));
        }
    }
    if !names.contains_key(&lark_rule_name("root")) {
        return Err(ConstraintError::Gbnf(
            "the grammar has no `root` rule".into(),
        ));
    }
    let mut lark = format!("start: {}\n", lark_rule_name("root"));
    for (name, body) in rules {
        lark.push_str(&format!("{name}: {}\n", body.join(" ")));
    }
    Ok(lark)
}

/// A GBNF rule name as a Lark rule name (lower case, `_` for `-`, prefixed so it cannot clash
/// with `start` or Lark's keywords).
fn lark_rule_name(name: &str) -> String {
    format!("g_{}", name.to_ascii_lowercase().replace('-', "_"))
}

/// A lexical element of GBNF.
enum GbnfToken {
    Name(String),
    Defines,
    /// Text copied into the Lark rule as is (literals, classes, operators, repetition).
    Lark(String),
}

fn gbnf_tokens(src: &str) -> Result<Vec<GbnfToken>, ConstraintError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let at = |i: usize| -> String {
        let before: String = chars[..i.min(chars.len())].iter().collect();
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |p| p + 1) + 1;
        format!("line {line}, column {column}")
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            ':' if chars[i..].starts_with(&[':', ':', '=']) => {
                out.push(GbnfToken::Defines);
                i += 3;
            }
            c if c.is_ascii_alphanumeric() || c == '-' || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '-' || chars[i] == '_')
                {
                    i += 1;
                }
                out.push(GbnfToken::Name(chars[start..i].iter().collect()));
            }
            '"' => {
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(ConstraintError::Gbnf(format!(
                                "unterminated string at {}",
                                at(i)
                            )))
                        }
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => {
                            let (ch, next) = gbnf_escape(&chars, i)
                                .map_err(|e| ConstraintError::Gbnf(format!("{e} at {}", at(i))))?;
                            text.push(ch);
                            i = next;
                        }
                        Some(&ch) => {
                            text.push(ch);
                            i += 1;
                        }
                    }
                }
                if text.is_empty() {
                    // An empty literal matches nothing: an empty group.
                    out.push(GbnfToken::Lark("\"\"".into()));
                } else {
                    out.push(GbnfToken::Lark(
                        serde_json::to_string(&text).expect("a string serializes"),
                    ));
                }
            }
            '[' => {
                let mut class = String::from("[");
                i += 1;
                if chars.get(i) == Some(&'^') {
                    class.push('^');
                    i += 1;
                }
                let mut members = 0;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(ConstraintError::Gbnf(format!(
                                "unterminated character class at {}",
                                at(i)
                            )))
                        }
                        Some(']') => {
                            i += 1;
                            break;
                        }
                        Some('-') if members > 0 && chars.get(i + 1) != Some(&']') => {
                            class.push('-');
                            i += 1;
                        }
                        Some('\\') => {
                            let (ch, next) = gbnf_escape(&chars, i)
                                .map_err(|e| ConstraintError::Gbnf(format!("{e} at {}", at(i))))?;
                            class.push_str(&regex_char(ch));
                            members += 1;
                            i = next;
                        }
                        Some(&ch) => {
                            class.push_str(&regex_char(ch));
                            members += 1;
                            i += 1;
                        }
                    }
                }
                class.push(']');
                out.push(GbnfToken::Lark(format!("/{class}/")));
            }
            '.' => {
                out.push(GbnfToken::Lark("/(?s:.)/".into()));
                i += 1;
            }
            '(' | ')' | '|' | '*' | '+' | '?' => {
                out.push(GbnfToken::Lark(c.to_string()));
                i += 1;
            }
            '{' => {
                let start = i;
                while i < chars.len() && chars[i] != '}' {
                    i += 1;
                }
                let inner: String = chars[start + 1..i.min(chars.len())].iter().collect();
                let valid = i < chars.len()
                    && !inner.is_empty()
                    && inner
                        .chars()
                        .all(|c| c.is_ascii_digit() || c == ',' || c == ' ')
                    && inner.matches(',').count() <= 1
                    && inner.chars().any(|c| c.is_ascii_digit());
                if !valid {
                    return Err(ConstraintError::Gbnf(format!(
                        "a repetition must be {{m}}, {{m,}}, {{m,n}} or {{,n}} at {}",
                        at(start)
                    )));
                }
                i += 1;
                out.push(GbnfToken::Lark(format!("{{{}}}", inner.replace(' ', ""))));
            }
            other => {
                return Err(ConstraintError::Gbnf(format!(
                    "unexpected {other:?} at {} (outside the supported GBNF subset)",
                    at(i)
                )))
            }
        }
    }
    Ok(out)
}

/// Decodes the escape starting at `chars[i] == '\\'`; returns the character and the index after.
fn gbnf_escape(chars: &[char], i: usize) -> Result<(char, usize), String> {
    let hex = |len: usize| -> Result<(char, usize), String> {
        let digits: String = chars
            .get(i + 2..i + 2 + len)
            .unwrap_or(&[])
            .iter()
            .collect();
        let value = u32::from_str_radix(&digits, 16)
            .ok()
            .filter(|_| digits.len() == len)
            .ok_or_else(|| format!("bad \\{} escape", chars[i + 1]))?;
        let ch = char::from_u32(value).ok_or_else(|| format!("U+{value:X} is not a character"))?;
        Ok((ch, i + 2 + len))
    };
    match chars.get(i + 1) {
        Some('n') => Ok(('\n', i + 2)),
        Some('r') => Ok(('\r', i + 2)),
        Some('t') => Ok(('\t', i + 2)),
        Some('x') => hex(2),
        Some('u') => hex(4),
        Some('U') => hex(8),
        Some(&c @ ('\\' | '"' | '[' | ']' | '-' | '^')) => Ok((c, i + 2)),
        Some(other) => Err(format!("unknown escape \\{other}")),
        None => Err("a lone backslash".into()),
    }
}

/// One character inside a regex character class, escaped when it is not alphanumeric.
fn regex_char(ch: char) -> String {
    if ch.is_ascii_alphanumeric() {
        ch.to_string()
    } else {
        format!("\\x{{{:X}}}", ch as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gbnf_converts_to_lark() {
        let gbnf = r#"
            # a list of yes/no answers
            root ::= answer ("," ws answer)*
            answer ::= "yes" | "no" | [0-9]{1,3}
            ws ::= [ \t\n]*
        "#;
        let lark = gbnf_to_lark(gbnf).unwrap();
        assert_eq!(
            lark,
            "start: g_root\n\
             g_root: g_answer ( \",\" g_ws g_answer ) *\n\
             g_answer: \"yes\" | \"no\" | /[0-9]/ {1,3}\n\
             g_ws: /[\\x{20}\\x{9}\\x{A}]/ *\n"
        );
    }

    #[test]
    fn gbnf_errors_name_the_problem() {
        let e = gbnf_to_lark("root ::= \"a\" @").unwrap_err();
        assert!(e.to_string().contains("'@'"), "{e}");
        assert!(e.to_string().contains("line 1, column 14"), "{e}");
        let e = gbnf_to_lark("start ::= \"a\"").unwrap_err();
        assert!(e.to_string().contains("no `root` rule"), "{e}");
        let e = gbnf_to_lark("root ::= [a-").unwrap_err();
        assert!(
            e.to_string().contains("unterminated character class"),
            "{e}"
        );
    }
}
