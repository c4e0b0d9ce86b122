//! Token sampling with llama.cpp's samplers and order: logit bias, repetition / frequency / presence
//! penalties over a window, top-k, typical-p, top-p, min-p, temperature, then a seeded draw.
//! Temperature 0 (or below) is greedy: the highest logit wins, ties to the lowest id.

use std::collections::{HashMap, VecDeque};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Sampling settings; names and defaults follow llama.cpp's command line.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// `--temp`: 0 or below means greedy.
    pub temperature: f32,
    /// `--top-k`: 0 disables.
    pub top_k: usize,
    /// `--top-p`: 1.0 disables.
    pub top_p: f32,
    /// `--min-p`: 0.0 disables.
    pub min_p: f32,
    /// `--typical`: 1.0 disables.
    pub typical_p: f32,
    /// `--repeat-penalty`: 1.0 disables.
    pub repeat_penalty: f32,
    /// `--repeat-last-n`: window of previous tokens the penalties look at (0 disables them).
    pub repeat_last_n: usize,
    /// `--frequency-penalty`: subtracted once per previous occurrence.
    pub frequency_penalty: f32,
    /// `--presence-penalty`: subtracted once if the token occurred at all.
    pub presence_penalty: f32,
    /// Added to the logit of each listed token before anything else (`f32::NEG_INFINITY` bans it).
    pub logit_bias: Vec<(u32, f32)>,
    /// `--seed`.
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            typical_p: 1.0,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            logit_bias: Vec::new(),
            seed: 0xB17_4E7,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding: always the highest logit.
    pub fn greedy() -> Self {
        SamplingParams {
            temperature: 0.0,
            ..Self::default()
        }
    }

    /// A draw from the model's own distribution, seeded with `seed`: temperature 1, no top-k,
    /// top-p or min-p (penalties as by default).
    pub fn unfiltered(seed: u64) -> Self {
        SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed,
            ..Self::default()
        }
    }
}

/// A candidate token and its (adjusted) logit.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Candidate {
    id: u32,
    logit: f32,
}

/// A stateful sampler: remembers the recent tokens for the penalties and owns the seeded RNG, so the
/// same seed and logits give the same tokens whatever the thread count.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: ChaCha8Rng,
    recent: VecDeque<u32>,
    candidates: Vec<Candidate>,
}

impl Sampler {
    /// A sampler with these settings, seeded from `params.seed`.
    pub fn new(params: SamplingParams) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(params.seed);
        Sampler {
            params,
            rng,
            recent: VecDeque::new(),
            candidates: Vec::new(),
        }
    }

    /// The settings.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Records a token of the context (prompt or generated) for the penalties.
    pub fn accept(&mut self, token: u32) {
        if self.params.repeat_last_n == 0 {
            return;
        }
        if self.recent.len() == self.params.repeat_last_n {
            self.recent.pop_front();
        }
        self.recent.push_back(token);
    }

    /// Forgets the recorded context (a new conversation); the RNG continues.
    pub fn reset_context(&mut self) {
        self.recent.clear();
    }

    /// Picks the next token from one row of logits. Does not call [`Sampler::accept`].
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        self.sample_where(logits, |_| true)
    }

    /// Picks the next token among those `allowed` accepts (a grammar's mask): the others are
    /// dropped after the logit bias and penalties, before the samplers, so top-k / top-p / min-p
    /// see only allowed tokens. At least one token must be allowed.
    pub fn sample_where(&mut self, logits: &[f32], allowed: impl Fn(u32) -> bool) -> u32 {
        let p = &self.params;
        self.candidates.clear();
        self.candidates
            .extend(logits.iter().enumerate().map(|(i, &logit)| Candidate {
                id: i as u32,
                logit,
            }));
        let cands = &mut self.candidates;
        for &(id, bias) in &p.logit_bias {
            if let Some(c) = cands.get_mut(id as usize) {
                c.logit += bias;
            }
        }
        apply_penalties(cands, &self.recent, p);
        let before = cands.len();
        cands.retain(|c| allowed(c.id));
        if cands.is_empty() {
            // Nothing allowed: a caller's broken invariant; the argmax of all keeps it visible.
            cands.extend(logits.iter().enumerate().map(|(i, &logit)| Candidate {
                id: i as u32,
                logit,
            }));
        }
        // Every allowed token banned (e.g. `ignore_eos` where only ending is allowed): the
        // distribution is empty, so the highest (the first allowed) is taken.
        if p.temperature <= 0.0
            || (cands.len() < before && cands.iter().all(|c| c.logit == f32::NEG_INFINITY))
        {
            return argmax(cands);
        }
        top_k(cands, p.top_k);
        typical(cands, p.typical_p);
        top_p(cands, p.top_p);
        min_p(cands, p.min_p);
        for c in cands.iter_mut() {
            c.logit /= p.temperature;
        }
        draw(cands, &mut self.rng)
    }
}

/// llama.cpp's penalties: a positive logit is divided by the repeat penalty and a negative one
/// multiplied; then `count · frequency + presence` is subtracted.
fn apply_penalties(cands: &mut [Candidate], recent: &VecDeque<u32>, p: &SamplingParams) {
    if recent.is_empty()
        || (p.repeat_penalty == 1.0 && p.frequency_penalty == 0.0 && p.presence_penalty == 0.0)
    {
        return;
    }
    let mut counts: HashMap<u32, u32> = HashMap::new();
    for &t in recent {
        *counts.entry(t).or_default() += 1;
    }
    for (&id, &count) in &counts {
        let Some(c) = cands.get_mut(id as usize) else {
            continue;
        };
        if c.logit <= 0.0 {
            c.logit *= p.repeat_penalty;
        } else {
            c.logit /= p.repeat_penalty;
        }
        c.logit -= count as f32 * p.frequency_penalty + p.presence_penalty;
    }
}

/// The highest logit, ties to the lowest id.
fn argmax(cands: &[Candidate]) -> u32 {
    let mut best = cands[0];
    for &c in &cands[1..] {
        if c.logit > best.logit {
            best = c;
        }
    }
    best.id
}

/// The sampling order: higher logit first, ties to the lower id (so every order is deterministic).
fn rank(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
}

/// Sorts by [`rank`].
fn sort_desc(cands: &mut [Candidate]) {
    cands.sort_unstable_by(rank);
}

/// Keeps the `k` first candidates in [`rank`] order, sorted (all of them, sorted, when `k` is 0
/// or covers them all). One pass over the vocabulary: a candidate is compared with the current
/// k-th best and, in the rare case it beats it, inserted into the sorted short list — a few
/// dozen microseconds for a 50k vocabulary, where a selection over all of it took ~10× longer
/// (it ran once per sequence per step on the batch engine's thread).
fn top_k(cands: &mut Vec<Candidate>, k: usize) {
    if k == 0 || k >= cands.len() {
        sort_desc(cands);
        return;
    }
    let mut best: Vec<Candidate> = Vec::with_capacity(k + 1);
    for &c in cands.iter() {
        if best.len() == k && rank(&c, &best[k - 1]).is_ge() {
            continue;
        }
        let at = best.partition_point(|b| rank(b, &c).is_lt());
        best.insert(at, c);
        best.truncate(k);
    }
    cands.clear();
    cands.extend_from_slice(&best);
}

/// Softmax probabilities of sorted candidates.
fn probabilities(cands: &[Candidate]) -> Vec<f64> {
    let max = cands[0].logit as f64;
    let mut probs: Vec<f64> = cands.iter().map(|c| (c.logit as f64 - max).exp()).collect();
    let sum: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= sum);
    probs
}

/// Keeps the smallest prefix (of candidates sorted descending) whose probability reaches `p`.
fn top_p(cands: &mut Vec<Candidate>, p: f32) {
    if p >= 1.0 || cands.len() <= 1 {
        return;
    }
    let probs = probabilities(cands);
    let mut cum = 0.0;
    let mut keep = cands.len();
    for (i, q) in probs.iter().enumerate() {
        cum += q;
        if cum >= p as f64 {
            keep = i + 1;
            break;
        }
    }
    cands.truncate(keep.max(1));
}

/// Keeps tokens whose probability is at least `p` times the most likely one's.
fn min_p(cands: &mut Vec<Candidate>, p: f32) {
    if p <= 0.0 || cands.len() <= 1 {
        return;
    }
    let threshold = cands[0].logit + p.ln();
    cands.retain(|c| c.logit >= threshold);
}

/// Locally typical sampling: keeps the tokens whose surprisal is closest to the entropy, until their
/// probability reaches `p`.
fn typical(cands: &mut Vec<Candidate>, p: f32) {
    if p >= 1.0 || cands.len() <= 1 {
        return;
    }
    let probs = probabilities(cands);
    let entropy: f64 = probs
        .iter()
        .filter(|&&q| q > 0.0)
        .map(|&q| -q * q.ln())
        .sum();
    let mut order: Vec<(f64, usize)> = probs
        .iter()
        .enumerate()
        .map(|(i, &q)| ((-q.ln() - entropy).abs(), i))
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut cum = 0.0;
    let mut keep = order.len();
    for (n, &(_, i)) in order.iter().enumerate() {
        cum += probs[i];
        if cum >= p as f64 {
            keep = n + 1;
            break;
        }
    }
    let mut kept: Vec<Candidate> = order[..keep].iter().map(|&(_, i)| cands[i]).collect();
    sort_desc(&mut kept);
    *cands = kept;
}

/// Draws one candidate in proportion to its softmax probability.
fn draw(cands: &[Candidate], rng: &mut ChaCha8Rng) -> u32 {
    let probs = probabilities(cands);
    let r: f64 = rng.gen();
    let mut cum = 0.0;
    for (c, q) in cands.iter().zip(&probs) {
        cum += q;
        if r < cum {
            return c.id;
        }
    }
    cands[cands.len() - 1].id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        vec![1.0, 3.0, 2.0, -1.0, 2.5, 0.0]
    }

    proptest::proptest! {
        /// The one-pass top-k keeps exactly the first k of the full sort (ties included).
        #[test]
        fn top_k_is_the_first_k_of_the_full_sort(
            logits in proptest::collection::vec(-4i8..4, 1..300),
            k in 0usize..40,
        ) {
            let cands: Vec<Candidate> = logits
                .iter()
                .enumerate()
                .map(|(i, &l)| Candidate { id: i as u32, logit: l as f32 * 0.5 })
                .collect();
            let mut sorted = cands.clone();
            sorted.sort_by(|a, b| b.logit.partial_cmp(&a.logit).unwrap().then(a.id.cmp(&b.id)));
            if k > 0 {
                sorted.truncate(k);
            }
            let mut kept = cands;
            top_k(&mut kept, k);
            let ids = |c: &[Candidate]| c.iter().map(|c| c.id).collect::<Vec<_>>();
            proptest::prop_assert_eq!(ids(&kept), ids(&sorted));
        }
    }

    #[test]
    fn greedy_takes_the_highest_logit() {
        let mut s = Sampler::new(SamplingParams::greedy());
        assert_eq!(s.sample(&logits()), 1);
    }

    #[test]
    fn logit_bias_can_ban_a_token() {
        let params = SamplingParams {
            logit_bias: vec![(1, f32::NEG_INFINITY)],
            ..SamplingParams::greedy()
        };
        assert_eq!(Sampler::new(params).sample(&logits()), 4);
    }

    #[test]
    fn repeat_penalty_follows_llama_cpp_sign_rule() {
        let mut cands: Vec<Candidate> = [2.0f32, -2.0]
            .iter()
            .enumerate()
            .map(|(i, &l)| Candidate {
                id: i as u32,
                logit: l,
            })
            .collect();
        let p = SamplingParams {
            repeat_penalty: 2.0,
            presence_penalty: 0.5,
            frequency_penalty: 0.25,
            ..Default::default()
        };
        let recent: VecDeque<u32> = [0, 0, 1].into_iter().collect();
        apply_penalties(&mut cands, &recent, &p);
        assert_eq!(cands[0].logit, 2.0 / 2.0 - (2.0 * 0.25 + 0.5));
        assert_eq!(cands[1].logit, -2.0 * 2.0 - (0.25 + 0.5));
    }

    #[test]
    fn top_k_one_is_greedy_for_any_seed() {
        for seed in 0..20 {
            let params = SamplingParams {
                temperature: 1.5,
                top_k: 1,
                seed,
                ..Default::default()
            };
            assert_eq!(Sampler::new(params).sample(&logits()), 1);
        }
    }

    #[test]
    fn top_p_keeps_the_smallest_covering_prefix() {
        let mut c: Vec<Candidate> = [(0u32, 0.0f32), (1, -10.0), (2, -10.0)]
            .iter()
            .map(|&(id, logit)| Candidate { id, logit })
            .collect();
        sort_desc(&mut c);
        top_p(&mut c, 0.9);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn min_p_drops_unlikely_tokens() {
        let mut c: Vec<Candidate> = [(0u32, 0.0f32), (1, -1.0), (2, -5.0)]
            .iter()
            .map(|&(id, logit)| Candidate { id, logit })
            .collect();
        min_p(&mut c, 0.1); // exp(-1) = 0.37 >= 0.1; exp(-5) = 0.007 < 0.1
        assert_eq!(c.iter().map(|c| c.id).collect::<Vec<_>>(), vec![0, 1]);
    }

    #[test]
    fn same_seed_same_tokens() {
        let params = SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: 7,
            ..Default::default()
        };
        let run = |params: SamplingParams| {
            let mut s = Sampler::new(params);
            (0..50).map(|_| s.sample(&logits())).collect::<Vec<_>>()
        };
        let a = run(params.clone());
        assert_eq!(a, run(params.clone()));
        assert!(
            a.iter().collect::<std::collections::HashSet<_>>().len() > 1,
            "sampling never varied: {a:?}"
        );
        assert_ne!(a, run(SamplingParams { seed: 8, ..params }));
    }

    #[test]
    fn draws_follow_the_distribution() {
        // Two tokens with probabilities 0.75 / 0.25 (logit gap ln 3).
        let l = [0.0f32, -(3.0f32).ln()];
        let params = SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: 1,
            ..Default::default()
        };
        let mut s = Sampler::new(params);
        let n = 20_000;
        let zeros = (0..n).filter(|_| s.sample(&l) == 0).count() as f64 / n as f64;
        assert!((zeros - 0.75).abs() < 0.015, "share of token 0: {zeros}");
    }

    #[test]
    fn typical_keeps_the_typical_set() {
        // Entropy-closest tokens first: with one dominant token, p=0.5 keeps just it.
        let mut c: Vec<Candidate> = [(0u32, 5.0f32), (1, 0.0), (2, 0.0)]
            .iter()
            .map(|&(id, logit)| Candidate { id, logit })
            .collect();
        sort_desc(&mut c);
        typical(&mut c, 0.5);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].id, 0);
    }
}
