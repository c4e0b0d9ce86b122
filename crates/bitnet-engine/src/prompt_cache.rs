//! Prompt caching across requests: the KV caches of the batch engine's idle slots remember which
//! prompt tokens they hold, and (with a RAM budget) an LRU store keeps snapshots of the KV of
//! finished sequences whose slot was taken for something else. A new request starts from the
//! cache with the longest usable common token prefix, truncated to it, so only the rest of its
//! prompt is evaluated. The caches of sequences still in flight count too: a request sharing a
//! prompt prefix (a system prompt, say) with one being answered copies the keys and values that
//! sequence has evaluated of it.
//!
//! Reuse is exact: a request gets the same logits, bit for bit, as without the cache. That holds
//! because the engine evaluates every prompt of two or more tokens in chunks of at least two
//! tokens (a one-token evaluation follows the decode path's F16 roundings, see
//! `bitnet_model::model`), and because a cache records only prompt positions evaluated that way
//! (never generated tokens, whose keys and values come from one-token decode steps). For the same
//! reason at least [`MIN_FRESH_TOKENS`] of every prompt are evaluated anew.

use bitnet_model::{KvCache, KvSnapshot};

/// Prompt tokens always evaluated by a request, however much of its prompt is cached: the last
/// token's logits come from a multi-token chunk, as without the cache.
pub const MIN_FRESH_TOKENS: usize = 2;

/// How many leading tokens of `prompt` may reuse a cache holding the keys and values of
/// `cached` (positions `0..cached.len()`): their common prefix, leaving at least
/// [`MIN_FRESH_TOKENS`] of the prompt to evaluate.
pub fn reusable_prefix(cached: &[u32], prompt: &[u32]) -> usize {
    let common = cached
        .iter()
        .zip(prompt)
        .take_while(|(a, b)| a == b)
        .count();
    common.min(prompt.len().saturating_sub(MIN_FRESH_TOKENS))
}

/// The prompt tokens a sequence leaves reusable in its cache: the first `evaluated` of its
/// `prompt` when the prompt was evaluated in multi-token chunks (two tokens or more), else
/// none.
pub fn reusable_tokens(prompt: &[u32], evaluated: usize) -> Vec<u32> {
    prompt[..reusable_len(prompt, evaluated)].to_vec()
}

/// How many of [`reusable_tokens`] there are.
pub fn reusable_len(prompt: &[u32], evaluated: usize) -> usize {
    if prompt.len() < MIN_FRESH_TOKENS {
        return 0;
    }
    evaluated.min(prompt.len())
}

/// A sequence in flight as a source of prompt reuse: its cache and the prompt tokens its first
/// positions hold ([`reusable_tokens`] of what it has evaluated so far).
pub struct InFlight<'a> {
    pub tokens: &'a [u32],
    pub cache: &'a KvCache,
}

/// A KV cache handed to a request, with how many of its prompt's tokens it already holds.
#[derive(Debug)]
pub struct AcquiredCache {
    pub cache: KvCache,
    /// Leading prompt tokens whose keys and values are in `cache` (its length).
    pub reused: usize,
}

/// An idle slot's cache and the prompt tokens its first positions hold.
struct IdleCache {
    cache: KvCache,
    tokens: Vec<u32>,
    last_used: u64,
}

/// A snapshot in the RAM store.
struct StoredSnapshot {
    tokens: Vec<u32>,
    kv: KvSnapshot,
    last_used: u64,
}

/// The caches of the batch engine's slots (allocated on demand, at most `slots`) and the
/// optional RAM store of snapshots (see the module docs).
pub struct PromptCache {
    slots: usize,
    allocated: usize,
    idle: Vec<IdleCache>,
    ram_budget: usize,
    ram_used: usize,
    snapshots: Vec<StoredSnapshot>,
    clock: u64,
}

impl PromptCache {
    /// Caches for `slots` sequences; `ram_budget` bytes of snapshots kept (0: no RAM store).
    pub fn new(slots: usize, ram_budget: usize) -> Self {
        PromptCache {
            slots,
            allocated: 0,
            idle: Vec::new(),
            ram_budget,
            ram_used: 0,
            snapshots: Vec::new(),
            clock: 0,
        }
    }

    /// Bytes the RAM store holds now.
    pub fn ram_used(&self) -> usize {
        self.ram_used
    }

    /// Snapshots in the RAM store now.
    pub fn snapshots(&self) -> usize {
        self.snapshots.len()
    }

    /// A cache for a request with `prompt`: with `reuse`, the one (an idle slot's, a restored
    /// snapshot or a copy of the prompt positions of a sequence `in_flight`) sharing the
    /// longest usable prefix with it, truncated to that prefix; else, or when nothing matches,
    /// an empty one (a new allocation while fewer than `slots` exist, else the least recently
    /// used idle cache, whose content goes to the RAM store first). Callers ask only while a
    /// slot is free: an idle cache or room to allocate exists.
    pub fn acquire(
        &mut self,
        prompt: &[u32],
        reuse: bool,
        in_flight: &[InFlight<'_>],
        allocate: impl FnOnce() -> KvCache,
    ) -> AcquiredCache {
        self.clock += 1;
        let idle = self.idle.iter().map(|c| (c.tokens.as_slice(), c.last_used));
        let best_idle = best_match(idle, prompt).filter(|_| reuse);
        let stored = self
            .snapshots
            .iter()
            .map(|s| (s.tokens.as_slice(), s.last_used));
        let best_snapshot = best_match(stored, prompt).filter(|_| reuse);
        let running = in_flight.iter().map(|f| (f.tokens, 0));
        let best_running = best_match(running, prompt).filter(|_| reuse);
        let idle_len = best_idle.map_or(0, |(len, _, _)| len);
        let snapshot_len = best_snapshot.map_or(0, |(len, _, _)| len);
        if let Some((len, _, i)) =
            best_running.filter(|&(len, _, _)| len > idle_len && len > snapshot_len)
        {
            let mut cache = self.empty_cache(allocate);
            // Every cache of one engine has the same shape and element type.
            let reused = match cache.copy_prefix(in_flight[i].cache, len) {
                Ok(()) => len,
                Err(_) => 0,
            };
            cache.truncate(reused);
            return AcquiredCache { cache, reused };
        }
        if let Some((len, _, i)) = best_snapshot.filter(|&(len, _, _)| len > idle_len) {
            // Out of the store while a cache is found (which may store another snapshot).
            let snapshot = self.snapshots.swap_remove(i);
            self.ram_used -= snapshot.kv.memory_bytes();
            let mut cache = self.empty_cache(allocate);
            // Every cache and snapshot of one engine has the same shape and element type.
            let reused = match cache.restore(&snapshot.kv) {
                Ok(()) => len,
                Err(_) => 0,
            };
            cache.truncate(reused);
            self.insert_snapshot(snapshot.tokens, snapshot.kv);
            return AcquiredCache { cache, reused };
        }
        if let Some((len, _, i)) = best_idle {
            let IdleCache {
                mut cache, tokens, ..
            } = self.idle.swap_remove(i);
            if tokens.len() > len {
                self.store_snapshot(&cache, tokens);
            }
            cache.truncate(len);
            return AcquiredCache { cache, reused: len };
        }
        AcquiredCache {
            cache: self.empty_cache(allocate),
            reused: 0,
        }
    }

    /// Gives back a finished sequence's cache, whose first `tokens.len()` positions hold the
    /// keys and values of `tokens` (see [`reusable_tokens`]; empty when nothing is reusable).
    pub fn release(&mut self, cache: KvCache, mut tokens: Vec<u32>) {
        self.clock += 1;
        tokens.truncate(cache.len());
        self.idle.push(IdleCache {
            cache,
            tokens,
            last_used: self.clock,
        });
    }

    /// A cleared cache: a new one while fewer than `slots` exist, else the least recently used
    /// idle one (its content saved to the RAM store first).
    fn empty_cache(&mut self, allocate: impl FnOnce() -> KvCache) -> KvCache {
        if self.allocated < self.slots || self.idle.is_empty() {
            self.allocated += 1;
            return allocate();
        }
        let lru = self
            .idle
            .iter()
            .enumerate()
            .min_by_key(|(_, c)| c.last_used)
            .map(|(i, _)| i)
            .unwrap_or(0);
        let IdleCache {
            mut cache, tokens, ..
        } = self.idle.swap_remove(lru);
        self.store_snapshot(&cache, tokens);
        cache.clear();
        cache
    }

    /// Copies the first `tokens.len()` positions of `cache` into the RAM store (when it has
    /// a budget the copy fits in), replacing snapshots of prefixes of `tokens` and evicting
    /// the least recently used ones beyond the budget. A snapshot of a prefix of one already
    /// stored is not taken.
    fn store_snapshot(&mut self, cache: &KvCache, tokens: Vec<u32>) {
        if self.ram_budget == 0 || tokens.is_empty() {
            return;
        }
        if self.snapshots.iter().any(|s| s.tokens.starts_with(&tokens)) {
            return;
        }
        let kv = cache.snapshot(tokens.len());
        self.insert_snapshot(tokens, kv);
    }

    /// Puts a snapshot in the RAM store as its most recently used one (see
    /// [`PromptCache::store_snapshot`]).
    fn insert_snapshot(&mut self, tokens: Vec<u32>, kv: KvSnapshot) {
        if kv.memory_bytes() > self.ram_budget {
            return;
        }
        let mut kept = Vec::with_capacity(self.snapshots.len() + 1);
        for s in self.snapshots.drain(..) {
            if tokens.starts_with(&s.tokens) {
                self.ram_used -= s.kv.memory_bytes();
            } else {
                kept.push(s);
            }
        }
        self.snapshots = kept;
        self.ram_used += kv.memory_bytes();
        self.clock += 1;
        self.snapshots.push(StoredSnapshot {
            tokens,
            kv,
            last_used: self.clock,
        });
        while self.ram_used > self.ram_budget {
            let lru = self
                .snapshots
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(i, _)| i)
                .unwrap_or(0);
            let evicted = self.snapshots.swap_remove(lru);
            self.ram_used -= evicted.kv.memory_bytes();
        }
    }
}

/// Among cached token sequences (with when each was last used), the one sharing the longest
/// usable prefix with `prompt` (the most recently used among equals): `(prefix, last used,
/// index)`, `None` when none shares any.
fn best_match<'a>(
    cached: impl Iterator<Item = (&'a [u32], u64)>,
    prompt: &[u32],
) -> Option<(usize, u64, usize)> {
    cached
        .enumerate()
        .map(|(i, (tokens, last_used))| (reusable_prefix(tokens, prompt), last_used, i))
        .max()
        .filter(|&(len, _, _)| len > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reusable_prefix_is_the_common_prefix_leaving_two_fresh_tokens() {
        assert_eq!(reusable_prefix(&[1, 2, 3, 4], &[1, 2, 3, 9, 9, 9]), 3);
        assert_eq!(reusable_prefix(&[1, 2, 3], &[1, 2, 3, 4, 5, 6]), 3);
        // The whole prompt cached: the last two tokens are evaluated again.
        assert_eq!(reusable_prefix(&[1, 2, 3, 4, 5], &[1, 2, 3, 4, 5]), 3);
        assert_eq!(reusable_prefix(&[1, 2, 3, 4, 5, 6, 7], &[1, 2, 3, 4]), 2);
        assert_eq!(reusable_prefix(&[7, 2, 3], &[1, 2, 3, 4]), 0);
        assert_eq!(reusable_prefix(&[], &[1, 2, 3]), 0);
        assert_eq!(reusable_prefix(&[1], &[1]), 0);
        assert_eq!(reusable_prefix(&[1, 2], &[1, 2]), 0);
    }

    #[test]
    fn one_token_prompts_leave_nothing_reusable() {
        assert!(reusable_tokens(&[5], 1).is_empty());
        assert_eq!(reusable_tokens(&[5, 6, 7], 2), vec![5, 6]);
        assert_eq!(reusable_tokens(&[5, 6, 7], 9), vec![5, 6, 7]);
    }
}
