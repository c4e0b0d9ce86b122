//! Splitting input text around special tokens before the model-specific encoder runs.
//!
//! llama.cpp's rule: candidate tokens (user-defined always; control and unknown only when special
//! tokens are parsed) are tried longest text first; each one splits every remaining text fragment
//! at all of its occurrences, left to right. A longer token therefore wins over a shorter one
//! anywhere in the text, not only where it starts first.

/// A piece of input after partitioning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fragment<'a> {
    /// Text for the model's encoder.
    Text(&'a str),
    /// A special token matched verbatim.
    Token(u32),
}

/// Special-token candidates, longest text first (ties by id, for a deterministic order).
#[derive(Debug, Clone, Default)]
pub(crate) struct SpecialTokens {
    /// (text, id, always): `always` is true for user-defined tokens, which are matched even when
    /// special tokens are not parsed.
    entries: Vec<(String, u32, bool)>,
}

impl SpecialTokens {
    /// Collects candidates from `(id, text, type)` triples.
    pub(crate) fn new<'a>(tokens: impl Iterator<Item = (u32, &'a str, crate::TokenType)>) -> Self {
        let mut entries: Vec<(String, u32, bool)> = tokens
            .filter(|(_, text, ty)| !text.is_empty() && ty.is_partitioned(true))
            .map(|(id, text, ty)| (text.to_string(), id, ty.is_partitioned(false)))
            .collect();
        entries.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        SpecialTokens { entries }
    }

    /// Splits `text` into fragments.
    pub(crate) fn partition<'a>(&self, text: &'a str, parse_special: bool) -> Vec<Fragment<'a>> {
        let mut fragments = vec![Fragment::Text(text)];
        for (needle, id, always) in &self.entries {
            if !(parse_special || *always) || !text.contains(needle.as_str()) {
                continue;
            }
            let mut next = Vec::with_capacity(fragments.len() + 2);
            for fragment in fragments {
                match fragment {
                    Fragment::Text(mut rest) => {
                        while let Some(pos) = rest.find(needle.as_str()) {
                            if pos > 0 {
                                next.push(Fragment::Text(&rest[..pos]));
                            }
                            next.push(Fragment::Token(*id));
                            rest = &rest[pos + needle.len()..];
                        }
                        if !rest.is_empty() {
                            next.push(Fragment::Text(rest));
                        }
                    }
                    token => next.push(token),
                }
            }
            fragments = next;
        }
        fragments.retain(|f| !matches!(f, Fragment::Text("")));
        fragments
    }
}
