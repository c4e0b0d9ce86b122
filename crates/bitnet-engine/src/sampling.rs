//! Token sampling with llama.cpp's samplers and order: logit bias, repetition / frequency / presence
//! penalties over a window, top-k, typical-p, top-p, min-p, temperature, then a seeded draw.
//! Temperature 0 (or below) is greedy: the highest logit wins, ties to the lowest id.

use std::collections::{BTreeMap, HashMap, VecDeque};

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
        let p = &self.params;
        if p.temperature > 0.0 && p.top_k > 0 && !logits.is_empty() {
            // Every token allowed: the candidate stage of `sample_where` reduces to the top k.
            let adjusted = adjusted_logits(logits, &self.recent, p);
            let buffer = std::mem::take(&mut self.candidates);
            self.candidates = top_k_unmasked(logits, &adjusted, p.top_k, buffer);
            return self.filter_and_draw();
        }
        self.sample_where(logits, |_| true)
    }

    /// Picks the next token among those `allowed` accepts (a grammar's mask): the others are
    /// dropped after the logit bias and penalties, before the samplers, so top-k / top-p / min-p
    /// see only allowed tokens. At least one token must be allowed.
    ///
    /// One pass over the vocabulary: the bias and penalties change a few logits (kept aside,
    /// [`adjusted_logits`]), and of the allowed tokens only the `top_k` best are collected
    /// (all of them when `top_k` is 0), so no candidate list of the whole vocabulary is built.
    pub fn sample_where(&mut self, logits: &[f32], allowed: impl Fn(u32) -> bool) -> u32 {
        let p = &self.params;
        let adjusted = adjusted_logits(logits, &self.recent, p);
        let mut keep = TopK::new(p.top_k, std::mem::take(&mut self.candidates));
        let (mut allowed_count, mut all_banned) = (0usize, true);
        // The highest allowed logit, ties to the lowest id (as `argmax`).
        let mut best: Option<Candidate> = None;
        for_each_adjusted(logits, &adjusted, |c| {
            if !allowed(c.id) {
                return;
            }
            allowed_count += 1;
            all_banned &= c.logit == f32::NEG_INFINITY;
            if best.is_none_or(|b| c.logit > b.logit) {
                best = Some(c);
            }
            keep.offer(c);
        });
        self.candidates = keep.into_sorted();
        let cands = &mut self.candidates;
        match best {
            None => {
                // Nothing allowed: a caller's broken invariant; the unadjusted logits keep it
                // visible.
                cands.clear();
                cands.extend(logits.iter().enumerate().map(|(i, &logit)| Candidate {
                    id: i as u32,
                    logit,
                }));
                if p.temperature <= 0.0 {
                    return argmax(cands);
                }
                top_k(cands, p.top_k);
            }
            // Every allowed token banned (e.g. `ignore_eos` where only ending is allowed): the
            // distribution is empty, so the highest (the first allowed) is taken.
            Some(best) if p.temperature <= 0.0 || (allowed_count < logits.len() && all_banned) => {
                return best.id;
            }
            Some(_) => {}
        }
        self.filter_and_draw()
    }

    /// The samplers after top-k (typical, top-p, min-p), the temperature and the draw, over
    /// the candidates kept (sorted by rank).
    fn filter_and_draw(&mut self) -> u32 {
        let (p, cands) = (&self.params, &mut self.candidates);
        typical(cands, p.typical_p);
        top_p(cands, p.top_p);
        min_p(cands, p.min_p);
        for c in cands.iter_mut() {
            c.logit /= p.temperature;
        }
        draw(cands, &mut self.rng)
    }
}

/// The logits the logit bias and the penalties change, as `(id, new logit)` in increasing id:
/// each bias added in its order, then llama.cpp's penalties on the result (a positive logit is
/// divided by the repeat penalty and a negative one multiplied; then `count · frequency +
/// presence` is subtracted). Ids outside the vocabulary are ignored.
fn adjusted_logits(logits: &[f32], recent: &VecDeque<u32>, p: &SamplingParams) -> Vec<(u32, f32)> {
    let mut changed: BTreeMap<u32, f32> = BTreeMap::new();
    for &(id, bias) in &p.logit_bias {
        if let Some(&logit) = logits.get(id as usize) {
            *changed.entry(id).or_insert(logit) += bias;
        }
    }
    let penalized =
        !(p.repeat_penalty == 1.0 && p.frequency_penalty == 0.0 && p.presence_penalty == 0.0);
    if penalized && !recent.is_empty() {
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for &t in recent {
            *counts.entry(t).or_default() += 1;
        }
        for (&id, &count) in &counts {
            let Some(&logit) = logits.get(id as usize) else {
                continue;
            };
            let c = changed.entry(id).or_insert(logit);
            if *c <= 0.0 {
                *c *= p.repeat_penalty;
            } else {
                *c /= p.repeat_penalty;
            }
            *c -= count as f32 * p.frequency_penalty + p.presence_penalty;
        }
    }
    changed.into_iter().collect()
}

/// Calls `f` with every token's candidate in id order, its logit taken from `adjusted` (sorted by
/// id, as [`adjusted_logits`] makes it) where listed, else from `logits`.
fn for_each_adjusted(logits: &[f32], adjusted: &[(u32, f32)], mut f: impl FnMut(Candidate)) {
    let mut changed = adjusted.iter().peekable();
    for (i, &logit) in logits.iter().enumerate() {
        let id = i as u32;
        let logit = match changed.next_if(|&&(at, _)| at == id) {
            Some(&(_, new)) => new,
            None => logit,
        };
        f(Candidate { id, logit });
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
    let mut keep = TopK::new(k, Vec::with_capacity(k.min(cands.len()) + 1));
    cands.iter().for_each(|&c| keep.offer(c));
    *cands = keep.into_sorted();
}

/// Logits compared with the k-th best at once before any is looked at alone (see
/// [`top_k_unmasked`]).
const SCAN_CHUNK: usize = 64;

/// The `k` (> 0) best candidates of all tokens in [`rank`] order, their logits taken from
/// `adjusted` where listed: what [`Sampler::sample_where`]'s one pass keeps when every token is
/// allowed. Once `k` are kept, a chunk of logits all below the k-th best is passed over whole (a
/// comparison the compiler vectorizes; none of them would be kept), so the pass over a large
/// vocabulary is mostly those comparisons.
fn top_k_unmasked(
    logits: &[f32],
    adjusted: &[(u32, f32)],
    k: usize,
    buffer: Vec<Candidate>,
) -> Vec<Candidate> {
    let mut keep = TopK::new(k, buffer);
    // The changed logits first: the set kept does not depend on the order of the offers.
    adjusted
        .iter()
        .for_each(|&(id, logit)| keep.offer(Candidate { id, logit }));
    let mut changed = adjusted.iter().map(|&(id, _)| id as usize).peekable();
    for (c, chunk) in logits.chunks(SCAN_CHUNK).enumerate() {
        let first = c * SCAN_CHUNK;
        // `<` is false for NaN and for a tie, which are then offered one by one.
        let below = keep
            .kth()
            .is_some_and(|kth| chunk.iter().fold(true, |all, &v| all & (v < kth)));
        if below {
            while changed.next_if(|&id| id < first + chunk.len()).is_some() {}
            continue;
        }
        for (j, &logit) in chunk.iter().enumerate() {
            let id = first + j;
            if changed.next_if_eq(&id).is_none() {
                keep.offer(Candidate {
                    id: id as u32,
                    logit,
                });
            }
        }
    }
    keep.into_sorted()
}

/// The `k` first of the candidates offered to it in [`rank`] order (all of them when `k` is 0).
struct TopK {
    k: usize,
    /// Sorted by rank while `k > 0`; in offer order when `k` is 0.
    best: Vec<Candidate>,
}

impl TopK {
    /// Collects into `buffer` (cleared), reusing its allocation.
    fn new(k: usize, mut buffer: Vec<Candidate>) -> Self {
        buffer.clear();
        TopK { k, best: buffer }
    }

    fn offer(&mut self, c: Candidate) {
        let k = self.k;
        if k == 0 {
            self.best.push(c);
            return;
        }
        if self.best.len() == k && rank(&c, &self.best[k - 1]).is_ge() {
            return;
        }
        let at = self.best.partition_point(|b| rank(b, &c).is_lt());
        self.best.insert(at, c);
        self.best.truncate(k);
    }

    /// The logit of the k-th best once `k` (> 0) are kept: a candidate below it is not kept.
    fn kth(&self) -> Option<f32> {
        (self.k > 0 && self.best.len() == self.k).then(|| self.best[self.k - 1].logit)
    }

    /// The candidates kept, in rank order.
    fn into_sorted(mut self) -> Vec<Candidate> {
        if self.k == 0 {
            sort_desc(&mut self.best);
        }
        self.best
    }
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
    use proptest::prelude::*;

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

    /// The sampler as it was before the one-pass candidate stage: every token a candidate, the
    /// bias and penalties applied to the list, the disallowed removed, a full sort for top-k.
    fn full_list_token(
        p: &SamplingParams,
        recent: &VecDeque<u32>,
        rng: &mut ChaCha8Rng,
        logits: &[f32],
        allowed: &dyn Fn(u32) -> bool,
    ) -> u32 {
        let all = |logits: &[f32]| -> Vec<Candidate> {
            let to = |(i, &logit): (usize, &f32)| Candidate {
                id: i as u32,
                logit,
            };
            logits.iter().enumerate().map(to).collect()
        };
        let mut cands = all(logits);
        for &(id, bias) in &p.logit_bias {
            if let Some(c) = cands.get_mut(id as usize) {
                c.logit += bias;
            }
        }
        if p.repeat_penalty != 1.0 || p.frequency_penalty != 0.0 || p.presence_penalty != 0.0 {
            let mut counts: HashMap<u32, u32> = HashMap::new();
            recent
                .iter()
                .for_each(|&t| *counts.entry(t).or_default() += 1);
            for (&id, &count) in &counts {
                if let Some(c) = cands.get_mut(id as usize) {
                    c.logit = if c.logit <= 0.0 {
                        c.logit * p.repeat_penalty
                    } else {
                        c.logit / p.repeat_penalty
                    };
                    c.logit -= count as f32 * p.frequency_penalty + p.presence_penalty;
                }
            }
        }
        let before = cands.len();
        cands.retain(|c| allowed(c.id));
        if cands.is_empty() {
            cands = all(logits);
        }
        if p.temperature <= 0.0
            || (cands.len() < before && cands.iter().all(|c| c.logit == f32::NEG_INFINITY))
        {
            return argmax(&cands);
        }
        cands.sort_by(rank);
        if p.top_k > 0 {
            cands.truncate(p.top_k);
        }
        typical(&mut cands, p.typical_p);
        top_p(&mut cands, p.top_p);
        min_p(&mut cands, p.min_p);
        cands.iter_mut().for_each(|c| c.logit /= p.temperature);
        draw(&cands, rng)
    }

    proptest::proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// The one-pass candidate stage picks the tokens the full candidate list picks: ties,
        /// banned (−inf) and out-of-vocabulary biases, penalties, grammar masks (none allowed
        /// included), greedy and every filter.
        #[test]
        fn one_pass_candidates_pick_what_the_full_list_picks(
            logits in proptest::collection::vec(
                prop_oneof![(-6i8..6).prop_map(|v| f32::from(v) * 0.5), Just(f32::NEG_INFINITY)],
                1..200,
            ),
            k in 0usize..12,
            temperature in proptest::sample::select(vec![0.0f32, 0.7, 1.3]),
            top_p in proptest::sample::select(vec![1.0f32, 0.9]),
            min_p in proptest::sample::select(vec![0.0f32, 0.05]),
            typical_p in proptest::sample::select(vec![1.0f32, 0.8]),
            bias in proptest::collection::vec(
                // Biases on the logits' half-integer grid, so biased logits tie with others.
                (0u32..220, prop_oneof![(-4i8..4).prop_map(|v| f32::from(v) * 0.5), Just(f32::NEG_INFINITY)]),
                0..4,
            ),
            recent in proptest::collection::vec(0u32..220, 0..8),
            penalties in (proptest::sample::select(vec![1.0f32, 1.3]), 0.0f32..0.5, 0.0f32..0.5),
            mask in proptest::collection::vec(any::<bool>(), 200),
            seed in any::<u64>(),
            // Short vocabularies often, where every token can be banned or masked at once.
            cut in prop_oneof![1usize..6, 1usize..200],
        ) {
            let logits = &logits[..cut.min(logits.len())];
            let params = SamplingParams {
                temperature, top_k: k, top_p, min_p, typical_p,
                repeat_penalty: penalties.0, frequency_penalty: penalties.1,
                presence_penalty: penalties.2, logit_bias: bias, seed,
                repeat_last_n: 64,
            };
            let allowed = |id: u32| mask[id as usize];
            let mut sampler = Sampler::new(params.clone());
            recent.iter().for_each(|&t| sampler.accept(t));
            let recent: VecDeque<u32> = recent.into_iter().collect();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            for draw in 0..4 {
                let want = full_list_token(&params, &recent, &mut rng, logits, &allowed);
                prop_assert_eq!(sampler.sample_where(logits, allowed), want, "draw {}", draw);
            }
            // No mask: `sample`'s top-k pass, which skips chunks below the k-th best.
            let mut sampler = Sampler::new(params.clone());
            recent.iter().for_each(|&t| sampler.accept(t));
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            for draw in 0..4 {
                let want = full_list_token(&params, &recent, &mut rng, logits, &|_| true);
                prop_assert_eq!(sampler.sample(logits), want, "unmasked draw {}", draw);
            }
        }
    }

    #[test]
    fn a_biased_token_ties_with_an_earlier_one_in_the_chunked_pass() {
        // Token 100 is biased up to the highest logit, which token 5 has: the tie goes to the
        // lower id, though token 100 is offered first and token 5's chunk is all ≤ it.
        let mut logits = vec![0.0f32; 130];
        logits[5] = 2.0;
        logits[100] = 1.0;
        let params = SamplingParams {
            temperature: 1.0,
            top_k: 1,
            logit_bias: vec![(100, 1.0)],
            ..Default::default()
        };
        assert_eq!(Sampler::new(params).sample(&logits), 5);
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
        let logits = [2.0f32, -2.0];
        let p = SamplingParams {
            repeat_penalty: 2.0,
            presence_penalty: 0.5,
            frequency_penalty: 0.25,
            ..Default::default()
        };
        let recent: VecDeque<u32> = [0, 0, 1].into_iter().collect();
        let adjusted = adjusted_logits(&logits, &recent, &p);
        assert_eq!(
            adjusted,
            [
                (0, 2.0 / 2.0 - (2.0 * 0.25 + 0.5)),
                (1, -2.0 * 2.0 - (0.25 + 0.5))
            ]
        );
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
