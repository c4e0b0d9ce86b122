//! One sequence's decoding state: its sampler, stop matcher and streaming text decoder, and
//! the rule that turns a row of logits into the next token, the text it completes and whether
//! the sequence is finished. The single-sequence loop ([`crate::generate`]) and the batch
//! engine ([`crate::batch`]) both step sequences through this one state machine.

use bitnet_tokenizer::{StreamDecoder, Tokenizer};

use crate::constraint::Constraint;
use crate::generate::{EngineError, FinishReason, GenerateRequest};
use crate::sampling::Sampler;
use crate::stop::StopMatcher;

/// What one step produced.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Step {
    /// The sampled token (`None` only when no token may be generated at all).
    pub token: Option<u32>,
    /// Text completed by this step (may be empty: incomplete UTF-8 or a possible stop string
    /// is held back until it resolves).
    pub text: String,
    /// Set when the sequence ended with this step.
    pub finish: Option<FinishReason>,
}

/// Decoding state of one sequence (see the module docs).
pub(crate) struct SequenceState<'t> {
    tokenizer: &'t Tokenizer,
    sampler: Sampler,
    stops: StopMatcher,
    decoder: StreamDecoder<'t>,
    max_tokens: usize,
    stop_tokens: Vec<u32>,
    tokens: Vec<u32>,
    /// The grammar the output must match, if any.
    constraint: Option<Constraint>,
}

impl<'t> SequenceState<'t> {
    /// A sequence about to generate after `request.prompt` (which the sampler's penalty window
    /// already sees).
    pub fn new(tokenizer: &'t Tokenizer, request: &GenerateRequest) -> Self {
        let mut sampler = Sampler::new(request.sampling.clone());
        request.prompt.iter().for_each(|&t| sampler.accept(t));
        SequenceState {
            tokenizer,
            sampler,
            stops: StopMatcher::new(request.stop.iter().cloned()),
            decoder: tokenizer
                .stream_decoder(request.show_special)
                .continuation(),
            max_tokens: request.max_tokens,
            stop_tokens: request.stop_tokens.clone(),
            tokens: Vec::new(),
            constraint: request.constraint.clone(),
        }
    }

    /// Tokens generated so far (a final end-of-generation token included).
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Samples the next token from `logits` (the row after the last token fed to the model).
    /// `cache_full` says the KV cache has no room for the sampled token, which then ends the
    /// sequence.
    pub fn step(&mut self, logits: &[f32], cache_full: bool) -> Result<Step, EngineError> {
        if self.tokens.len() >= self.max_tokens {
            return Ok(Step {
                token: None,
                text: self.flush(),
                finish: Some(FinishReason::Length),
            });
        }
        let next = match &mut self.constraint {
            None => self.sampler.sample(logits),
            Some(constraint) if constraint.is_stopped() => {
                return Ok(Step {
                    token: None,
                    text: self.flush(),
                    finish: Some(FinishReason::EndOfGeneration),
                })
            }
            Some(constraint) => {
                let mask = constraint.mask()?;
                // Where the grammar may end, the request's own end tokens (a chat template's
                // end of turn) end it as well as the vocabulary's.
                let may_end = self
                    .tokenizer
                    .end_of_generation()
                    .iter()
                    .any(|&t| mask.allows(t));
                let stop_tokens = &self.stop_tokens;
                let next = self.sampler.sample_where(logits, |t| {
                    mask.allows(t) || (may_end && stop_tokens.contains(&t))
                });
                if mask.allows(next) {
                    constraint.consume(next)?;
                }
                next
            }
        };
        self.tokens.push(next);
        if self.tokenizer.is_end_of_generation(next) || self.stop_tokens.contains(&next) {
            return Ok(Step {
                token: Some(next),
                text: self.flush(),
                finish: Some(FinishReason::EndOfGeneration),
            });
        }
        self.sampler.accept(next);
        let piece = self.decoder.push(next)?;
        let out = self.stops.push(&piece);
        let mut text = out.text;
        let finish = if out.stopped {
            Some(FinishReason::StopString)
        } else if self.tokens.len() == self.max_tokens {
            Some(FinishReason::Length)
        } else if cache_full {
            Some(FinishReason::ContextFull)
        } else {
            None
        };
        if matches!(
            finish,
            Some(FinishReason::Length | FinishReason::ContextFull)
        ) {
            text.push_str(&self.flush());
        }
        Ok(Step {
            token: Some(next),
            text,
            finish,
        })
    }

    /// The text still held back when the sequence ends without a stop string.
    fn flush(&mut self) -> String {
        let rest = self.decoder.finish();
        let out = self.stops.push(&rest);
        let mut text = out.text;
        if !out.stopped {
            text.push_str(&self.stops.finish());
        }
        text
    }
}

/// The log-probability of one generated token under the model (log-softmax of the raw logits,
/// before any sampler), with the `top` most likely tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    pub token: u32,
    pub logprob: f32,
    /// The most likely tokens and their log-probabilities, most likely first.
    pub top: Vec<(u32, f32)>,
}

/// Log-softmax of `logits` read at `token`, plus the `top_n` most likely entries.
pub fn token_logprob(logits: &[f32], token: u32, top_n: usize) -> TokenLogprob {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let log_z = max + sum.ln() as f32;
    let mut top: Vec<(u32, f32)> = Vec::new();
    if top_n > 0 {
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        let n = top_n.min(order.len());
        let by_logit_desc = |a: &u32, b: &u32| logits[*b as usize].total_cmp(&logits[*a as usize]);
        order.select_nth_unstable_by(n - 1, by_logit_desc);
        order.truncate(n);
        order.sort_by(by_logit_desc);
        top = order
            .into_iter()
            .map(|id| (id, logits[id as usize] - log_z))
            .collect();
    }
    TokenLogprob {
        token,
        logprob: logits[token as usize] - log_z,
        top,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logprobs_are_a_normalised_log_softmax() {
        let logits = [1.0f32, 3.0, 2.0, -1.0];
        let lp = token_logprob(&logits, 2, 2);
        let z: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
        assert!((f64::from(lp.logprob) - (2.0 - z.ln())).abs() < 1e-6);
        assert_eq!(lp.top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 2]);
        let total: f64 = logits
            .iter()
            .map(|&l| f64::from(token_logprob(&logits, 0, 0).logprob - logits[0] + l).exp())
            .sum();
        assert!((total - 1.0).abs() < 1e-6);
    }
}
