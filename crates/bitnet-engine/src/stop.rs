//! Stop strings matched across token boundaries. Text that could be the start of a stop string is
//! held back until it is known not to be; a matched stop string and everything after it is removed.

/// Streams generated text through a set of stop strings.
#[derive(Debug, Clone, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
    stopped: bool,
}

/// What [`StopMatcher::push`] lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopOutput {
    /// Text that is safe to show now.
    pub text: String,
    /// Whether a stop string was matched (nothing more will be let through).
    pub stopped: bool,
}

impl StopMatcher {
    /// A matcher for these stop strings (empty strings are ignored).
    pub fn new<S: Into<String>>(stops: impl IntoIterator<Item = S>) -> Self {
        let stops = stops
            .into_iter()
            .map(Into::into)
            .filter(|s: &String| !s.is_empty())
            .collect();
        StopMatcher {
            stops,
            held: String::new(),
            stopped: false,
        }
    }

    /// Whether a stop string has been matched.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Feeds the next piece of generated text.
    pub fn push(&mut self, piece: &str) -> StopOutput {
        if self.stopped {
            return StopOutput {
                text: String::new(),
                stopped: true,
            };
        }
        self.held.push_str(piece);
        // The earliest complete match ends the text.
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min()
        {
            let text = self.held[..at].to_string();
            self.held.clear();
            self.stopped = true;
            return StopOutput {
                text,
                stopped: true,
            };
        }
        // Hold back the longest suffix that is a proper prefix of some stop string.
        let keep = self
            .stops
            .iter()
            .map(|s| longest_suffix_prefix(&self.held, s))
            .max()
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let text = self.held[..cut].to_string();
        self.held.drain(..cut);
        StopOutput {
            text,
            stopped: false,
        }
    }

    /// Ends the stream: whatever was held back is released (no stop string can complete now).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// Length in bytes of the longest suffix of `text` that is a proper prefix of `stop`, on char boundaries.
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    let max = (stop.len() - 1).min(text.len());
    (1..=max)
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n) && stop.starts_with(&text[text.len() - n..])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut m = StopMatcher::new(stops.iter().copied());
        let mut out = String::new();
        for p in pieces {
            let o = m.push(p);
            out.push_str(&o.text);
            if o.stopped {
                return (out, true);
            }
        }
        out.push_str(&m.finish());
        (out, false)
    }

    #[test]
    fn stop_split_over_tokens_is_removed() {
        assert_eq!(
            run(&["\nUser:"], &["Hello", " there\n", "Us", "er:", " more"]),
            ("Hello there".into(), true)
        );
    }

    #[test]
    fn near_miss_is_released() {
        assert_eq!(run(&["STOP"], &["ST", "OP"]), ("".into(), true));
        assert_eq!(run(&["STOP"], &["ST", "AR"]), ("STAR".into(), false));
        assert_eq!(run(&["STOP"], &["a", "STO"]), ("aSTO".into(), false));
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        assert_eq!(run(&["cd", "b"], &["abcd"]), ("a".into(), true));
    }

    #[test]
    fn held_text_is_not_shown_early() {
        let mut m = StopMatcher::new(["</s>"]);
        assert_eq!(m.push("hi </").text, "hi ");
        assert_eq!(m.push("x").text, "</x");
    }

    #[test]
    fn multibyte_text_is_safe() {
        assert_eq!(run(&["ééé"], &["aé", "é", "b"]), ("aééb".into(), false));
        assert_eq!(run(&["ü!"], &["grüß ü", "!"]), ("grüß ".into(), true));
    }
}
