//! Continuous batching: one engine thread owns the model's compute pool and a fixed number of
//! sequence slots (each with its own KV cache). Every step it admits queued requests into free
//! slots, then runs ONE batched forward pass over all sequences in flight — one new token for each
//! decoding sequence, a chunk of the prompt for each sequence still in prefill — and samples each
//! sequence's next token (the sequences spread over the same pool; events leave from the engine
//! thread). Sequences finish, are cancelled (their event sink reports the receiver
//! gone) or are admitted between steps, so requests join and leave a running batch.
//!
//! Callers submit a [`SequenceRequest`] with an [`EventSink`]; the queue in front of the slots is
//! bounded, and a full queue is refused at once ([`SubmitError::QueueFull`]).
//!
//! A request starts from the idle slot cache, RAM snapshot or cache of a sequence in flight
//! sharing the longest prefix with its prompt, so only the rest is evaluated
//! ([`crate::prompt_cache`]); a prompt of two or more
//! tokens is always evaluated in chunks of at least two tokens, which keeps the reuse exact.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use bitnet_kernels::ThreadPool;
use bitnet_model::{BatchSegment, KvCache, Model, ModelError};
use bitnet_tokenizer::Tokenizer;

use crate::generate::{EngineError, FinishReason, GenerateRequest};
use crate::prompt_cache::{
    reusable_len, reusable_tokens, AcquiredCache, InFlight, PromptCache, MIN_FRESH_TOKENS,
};
use crate::sequence::{token_logprob, SequenceState, Step, TokenLogprob};

/// Sizes of the batch engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// Sequences decoded together (each holds a KV cache of `context` positions).
    pub slots: usize,
    /// Positions per sequence (prompt + generated tokens).
    pub context: usize,
    /// Requests that may wait for a slot; more are refused.
    pub queue: usize,
    /// Most prompt tokens evaluated in one step (all prefilling sequences together), so a long
    /// prompt does not stall the sequences already decoding (at least 2; a chunk may take one
    /// token more rather than leave a prompt's last token alone).
    pub prefill_chunk: usize,
    /// Bytes of KV snapshots of finished sequences kept in memory for prompt reuse once their
    /// slot is taken (0: only the idle slots' caches are reused).
    pub cache_ram: usize,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            slots: 4,
            context: 2048,
            queue: 64,
            prefill_chunk: 256,
            cache_ram: 0,
        }
    }
}

/// One request to the engine.
#[derive(Debug, Clone)]
pub struct SequenceRequest {
    pub generate: GenerateRequest,
    /// `Some(n)`: report each generated token's log-probability with the `n` most likely
    /// alternatives.
    pub logprobs: Option<usize>,
    /// Start from a cached prefix of the prompt when one is found (`false`: evaluate it all).
    pub cache_prompt: bool,
}

/// Something that happened to a sequence, in order: tokens, then exactly one `Finished` or
/// `Failed` (none after a cancellation).
#[derive(Debug, Clone, PartialEq)]
pub enum SequenceEvent {
    /// The first step of the sequence ran (its prompt is evaluated).
    Started {
        prompt_tokens: usize,
        /// Leading prompt tokens taken from the prompt cache, not evaluated.
        cached_tokens: usize,
    },
    Token(TokenEvent),
    Finished(SequenceSummary),
    Failed(String),
}

/// One generated token.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenEvent {
    pub token: u32,
    /// The text this token completes (may be empty while UTF-8 or a stop string is pending;
    /// an end-of-generation token has no text of its own but may release held-back text).
    pub text: String,
    pub logprob: Option<TokenLogprob>,
}

/// How a sequence ended.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceSummary {
    pub finish: FinishReason,
    /// Text released at the end (held back until then), possibly empty.
    pub text: String,
    pub prompt_tokens: usize,
    /// Leading prompt tokens taken from the prompt cache, not evaluated.
    pub cached_tokens: usize,
    /// Generated tokens, an end-of-generation token included.
    pub completion_tokens: usize,
    /// Waiting in the queue.
    pub queued_seconds: f64,
    /// From admission to the first generated token.
    pub prefill_seconds: f64,
    /// From the first generated token to the end.
    pub decode_seconds: f64,
}

/// Receives a sequence's events on the engine thread; returns `false` when nobody listens any
/// more, which cancels the sequence and frees its slot.
pub type EventSink = Box<dyn FnMut(SequenceEvent) -> bool + Send>;

/// Why a request was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("the prompt has {prompt} tokens but the context holds {capacity}: shorten the prompt or start the server with a larger --ctx")]
    PromptTooLong { prompt: usize, capacity: usize },
    #[error("the queue is full ({queue} requests waiting): retry later")]
    QueueFull { queue: usize },
    #[error("the engine has stopped")]
    Stopped,
}

/// Counters shared between the engine thread and its callers.
#[derive(Debug, Default)]
struct Counters {
    queued: AtomicUsize,
    active: AtomicUsize,
    steps: AtomicU64,
    batched_rows: AtomicU64,
    prompt_tokens: AtomicU64,
    cached_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    cache_ram_bytes: AtomicU64,
    kv_cache_bytes: AtomicU64,
}

/// A snapshot of the engine's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineStats {
    pub slots: usize,
    /// Requests waiting for a slot.
    pub queued: usize,
    /// Sequences in flight.
    pub active: usize,
    /// Forward passes run so far.
    pub steps: u64,
    /// Token rows evaluated over all steps (prompt and generated).
    pub batched_rows: u64,
    /// Prompt tokens evaluated.
    pub prompt_tokens: u64,
    /// Prompt tokens taken from the prompt cache instead.
    pub cached_tokens: u64,
    pub completion_tokens: u64,
    /// Bytes of KV snapshots held for prompt reuse (`cache_ram`).
    pub cache_ram_bytes: u64,
    /// Bytes of the slots' KV caches allocated so far (one per slot once used).
    pub kv_cache_bytes: u64,
}

struct Pending {
    request: SequenceRequest,
    sink: EventSink,
    queued_at: Instant,
}

/// The batch engine (see the module docs). Dropping it lets the sequences in flight finish,
/// then stops the thread.
pub struct BatchEngine {
    sender: Option<SyncSender<Pending>>,
    counters: Arc<Counters>,
    options: BatchOptions,
    thread: Option<JoinHandle<()>>,
}

impl BatchEngine {
    /// Starts the engine thread. `pool` runs every forward pass; `options.slots` and
    /// `options.context` size the KV caches (allocated on first use, then reused).
    pub fn start(
        model: Arc<Model>,
        tokenizer: Arc<Tokenizer>,
        pool: ThreadPool,
        options: BatchOptions,
    ) -> BatchEngine {
        let options = BatchOptions {
            slots: options.slots.max(1),
            context: options.context.max(2),
            queue: options.queue.max(1),
            prefill_chunk: options.prefill_chunk.max(2),
            cache_ram: options.cache_ram,
        };
        let (sender, receiver) = mpsc::sync_channel(options.queue);
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("bitnet-batch".into())
            .spawn(move || {
                run_engine(
                    &model,
                    &tokenizer,
                    &pool,
                    options,
                    &receiver,
                    &thread_counters,
                )
            })
            .expect("spawning the engine thread");
        BatchEngine {
            sender: Some(sender),
            counters,
            options,
            thread: Some(thread),
        }
    }

    /// The sizes the engine runs with.
    pub fn options(&self) -> BatchOptions {
        self.options
    }

    /// Queues a request; its events go to `sink` from the engine thread.
    pub fn submit(&self, request: SequenceRequest, sink: EventSink) -> Result<(), SubmitError> {
        let prompt = request.generate.prompt.len();
        if prompt == 0 {
            return Err(SubmitError::EmptyPrompt);
        }
        if prompt >= self.options.context {
            return Err(SubmitError::PromptTooLong {
                prompt,
                capacity: self.options.context,
            });
        }
        let sender = self.sender.as_ref().ok_or(SubmitError::Stopped)?;
        self.counters.queued.fetch_add(1, Ordering::SeqCst);
        let pending = Pending {
            request,
            sink,
            queued_at: Instant::now(),
        };
        sender.try_send(pending).map_err(|e| {
            self.counters.queued.fetch_sub(1, Ordering::SeqCst);
            match e {
                TrySendError::Full(_) => SubmitError::QueueFull {
                    queue: self.options.queue,
                },
                TrySendError::Disconnected(_) => SubmitError::Stopped,
            }
        })
    }

    /// The engine's counters now.
    pub fn stats(&self) -> EngineStats {
        let c = &self.counters;
        EngineStats {
            slots: self.options.slots,
            queued: c.queued.load(Ordering::SeqCst),
            active: c.active.load(Ordering::SeqCst),
            steps: c.steps.load(Ordering::Relaxed),
            batched_rows: c.batched_rows.load(Ordering::Relaxed),
            prompt_tokens: c.prompt_tokens.load(Ordering::Relaxed),
            cached_tokens: c.cached_tokens.load(Ordering::Relaxed),
            completion_tokens: c.completion_tokens.load(Ordering::Relaxed),
            cache_ram_bytes: c.cache_ram_bytes.load(Ordering::Relaxed),
            kv_cache_bytes: c.kv_cache_bytes.load(Ordering::Relaxed),
        }
    }
}

impl Drop for BatchEngine {
    fn drop(&mut self) {
        self.sender.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A sequence in a slot.
struct Active<'t> {
    state: SequenceState<'t>,
    sink: EventSink,
    cache: KvCache,
    prompt: Vec<u32>,
    /// Leading prompt tokens taken from the prompt cache.
    cached: usize,
    /// Prompt tokens in the cache (taken from the prompt cache or evaluated).
    prefilled: usize,
    /// The sampled token to feed next (decode phase).
    next: Option<u32>,
    logprobs: Option<usize>,
    queued_seconds: f64,
    admitted_at: Instant,
    first_token_at: Option<Instant>,
}

impl Active<'_> {
    fn send(&mut self, event: SequenceEvent) -> bool {
        (self.sink)(event)
    }

    fn summary(&self, finish: FinishReason, text: String) -> SequenceSummary {
        let now = Instant::now();
        let first = self.first_token_at.unwrap_or(now);
        SequenceSummary {
            finish,
            text,
            prompt_tokens: self.prompt.len(),
            cached_tokens: self.cached,
            completion_tokens: self.state.tokens().len(),
            queued_seconds: self.queued_seconds,
            prefill_seconds: (first - self.admitted_at).as_secs_f64(),
            decode_seconds: (now - first).as_secs_f64(),
        }
    }
}

fn run_engine(
    model: &Model,
    tokenizer: &Tokenizer,
    pool: &ThreadPool,
    options: BatchOptions,
    receiver: &Receiver<Pending>,
    counters: &Counters,
) {
    let mut caches = PromptCache::new(options.slots, options.cache_ram);
    let mut active: Vec<Active<'_>> = Vec::new();
    let mut closed = false;
    loop {
        // Admit waiting requests into free slots (block only when nothing is in flight).
        while active.len() < options.slots && !closed {
            let pending = if active.is_empty() {
                match receiver.recv() {
                    Ok(p) => p,
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            } else {
                match receiver.try_recv() {
                    Ok(p) => p,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            };
            counters.queued.fetch_sub(1, Ordering::SeqCst);
            let state = SequenceState::new(tokenizer, &pending.request.generate);
            let prompt = pending.request.generate.prompt;
            let in_flight: Vec<InFlight<'_>> = active
                .iter()
                .map(|seq| InFlight {
                    tokens: &seq.prompt[..reusable_len(&seq.prompt, seq.prefilled)],
                    cache: &seq.cache,
                })
                .collect();
            let reuse = pending.request.cache_prompt;
            let AcquiredCache { cache, reused } =
                caches.acquire(&prompt, reuse, &in_flight, || {
                    let cache = model.new_cache(options.context);
                    counters
                        .kv_cache_bytes
                        .fetch_add(cache.memory_bytes() as u64, Ordering::Relaxed);
                    cache
                });
            drop(in_flight);
            counters
                .cache_ram_bytes
                .store(caches.ram_used() as u64, Ordering::Relaxed);
            counters
                .cached_tokens
                .fetch_add(reused as u64, Ordering::Relaxed);
            counters.active.fetch_add(1, Ordering::SeqCst);
            active.push(Active {
                state,
                sink: pending.sink,
                cache,
                prompt,
                cached: reused,
                prefilled: reused,
                next: None,
                logprobs: pending.request.logprobs,
                queued_seconds: pending.queued_at.elapsed().as_secs_f64(),
                admitted_at: Instant::now(),
                first_token_at: None,
            });
        }
        if active.is_empty() {
            if closed {
                return;
            }
            continue;
        }

        // One forward pass over every sequence in flight.
        let mut budget = options.prefill_chunk;
        let mut inputs: Vec<Vec<u32>> = Vec::with_capacity(active.len());
        for seq in &active {
            inputs.push(match seq.next {
                Some(token) => vec![token],
                None if budget > 0 => {
                    let take = prefill_take(seq.prompt.len() - seq.prefilled, budget);
                    budget = budget.saturating_sub(take);
                    seq.prompt[seq.prefilled..seq.prefilled + take].to_vec()
                }
                None => Vec::new(),
            });
        }
        let mut segments: Vec<BatchSegment<'_>> = Vec::new();
        let mut in_batch = Vec::new();
        for (i, (seq, tokens)) in active.iter_mut().zip(&inputs).enumerate() {
            if tokens.is_empty() {
                continue;
            }
            // Only a chunk that completes the prompt (or a decode token) needs logits.
            let completes = seq.next.is_some() || seq.prefilled + tokens.len() == seq.prompt.len();
            segments.push(BatchSegment {
                tokens,
                cache: &mut seq.cache,
                logits_from: if completes {
                    tokens.len() - 1
                } else {
                    tokens.len()
                },
            });
            in_batch.push(i);
        }
        let rows: usize = segments.iter().map(|s| s.tokens.len()).sum();
        // A panic inside the forward pass (a broken internal invariant, never bad input: inputs
        // are checked before) fails the sequences of this step and leaves the engine serving
        // the next requests, instead of taking the engine thread and every request down with it.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            model.forward_batch(&mut segments, pool)
        }))
        .unwrap_or_else(|panic| Err(ModelError::Internal(panic_message(panic.as_ref()))));
        drop(segments);
        counters.steps.fetch_add(1, Ordering::Relaxed);
        counters
            .batched_rows
            .fetch_add(rows as u64, Ordering::Relaxed);

        // `done[i]`: the sequence leaves its slot, with this last event (none when cancelled),
        // sent once the slot is free so the counters already show it.
        let mut done: Vec<Option<Option<SequenceEvent>>> = vec![None; active.len()];
        match result {
            Err(e) => {
                for &i in &in_batch {
                    done[i] = Some(Some(SequenceEvent::Failed(e.to_string())));
                }
            }
            Ok(all_logits) => {
                // Sequences whose logits pick a token this step (decoding, or prompt done).
                let mut ready = Vec::with_capacity(in_batch.len());
                for (&i, logits) in in_batch.iter().zip(all_logits) {
                    let seq = &mut active[i];
                    let fed = inputs[i].len();
                    if seq.next.is_none() {
                        seq.prefilled += fed;
                        counters
                            .prompt_tokens
                            .fetch_add(fed as u64, Ordering::Relaxed);
                        if seq.prefilled < seq.prompt.len() {
                            continue;
                        }
                        let started = SequenceEvent::Started {
                            prompt_tokens: seq.prompt.len(),
                            cached_tokens: seq.cached,
                        };
                        if !seq.send(started) {
                            done[i] = Some(None);
                            continue;
                        }
                    }
                    ready.push((i, logits));
                }
                let sampled = sample_in_parallel(&mut active, &ready, pool);
                for ((i, _), sampled) in ready.iter().zip(sampled) {
                    done[*i] = finish_step(&mut active[*i], sampled, counters);
                }
            }
        }
        let mut kept = Vec::with_capacity(active.len());
        for (mut seq, leaving) in active.drain(..).zip(done) {
            if let Some(last_event) = leaving {
                counters.active.fetch_sub(1, Ordering::SeqCst);
                // After a failure nothing in the cache is trusted for reuse.
                let reusable = match last_event {
                    Some(SequenceEvent::Failed(_)) => Vec::new(),
                    _ => reusable_tokens(&seq.prompt, seq.prefilled),
                };
                if let Some(event) = last_event {
                    (seq.sink)(event);
                }
                caches.release(seq.cache, reusable);
            } else {
                kept.push(seq);
            }
        }
        active = kept;
    }
}

/// Prompt tokens a prefilling sequence with `remaining` tokens to evaluate takes from a step's
/// `budget`: never a one-token chunk of a longer prompt (it would follow the decode path's
/// roundings, see [`crate::prompt_cache`]): a chunk that would leave one token takes it too, and
/// a budget of one token waits for the next step.
fn prefill_take(remaining: usize, budget: usize) -> usize {
    let take = remaining.min(budget);
    if remaining < MIN_FRESH_TOKENS {
        take
    } else if remaining - take == 1 {
        remaining
    } else if take < MIN_FRESH_TOKENS {
        0
    } else {
        take
    }
}

/// The text of a caught panic.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic without a message".to_string())
}

/// What sampling one sequence's row of logits gave (see [`sample_in_parallel`]).
struct Sampled {
    step: Result<Step, EngineError>,
    logprob: Option<TokenLogprob>,
}

/// Steps the sequences `ready` names (index into `active`, their row of logits) over the
/// pool, one sequence per chunk: each has its own sampler, so the tokens are those a serial
/// loop picks. With a large vocabulary the per-sequence work (candidates, top-k, softmax,
/// log-probabilities) is a real share of a batched step; only the events stay on the engine
/// thread (in order, by [`finish_step`]).
fn sample_in_parallel(
    active: &mut [Active<'_>],
    ready: &[(usize, Vec<f32>)],
    pool: &ThreadPool,
) -> Vec<Sampled> {
    type Job<'a, 't> = (&'a mut SequenceState<'t>, bool, Option<usize>, &'a [f32]);
    let mut jobs: Vec<Mutex<(Job<'_, '_>, Option<Sampled>)>> = Vec::with_capacity(ready.len());
    let mut wanted = ready.iter().peekable();
    for (i, seq) in active.iter_mut().enumerate() {
        let Some((_, logits)) = wanted.next_if(|(at, _)| *at == i) else {
            continue;
        };
        let cache_full = seq.cache.len() == seq.cache.capacity();
        let job = (&mut seq.state, cache_full, seq.logprobs, logits.as_slice());
        jobs.push(Mutex::new((job, None)));
    }
    pool.run(jobs.len(), &|j| {
        let mut guard = jobs[j].lock().unwrap_or_else(|p| p.into_inner());
        let ((state, cache_full, logprobs, logits), out) = &mut *guard;
        let step = state.step(logits, *cache_full);
        let logprob = match (&step, *logprobs) {
            (Ok(Step { token: Some(t), .. }), Some(n)) => Some(token_logprob(logits, *t, n)),
            _ => None,
        };
        *out = Some(Sampled { step, logprob });
    });
    jobs.into_iter()
        .map(|job| {
            let (_, sampled) = job.into_inner().unwrap_or_else(|p| p.into_inner());
            sampled.expect("every chunk of a pool job runs")
        })
        .collect()
}

/// Reports what sampling gave `seq` (its token, or its end). Returns `None` while the sequence
/// goes on, else `Some(last event)` (`Some(None)`: cancelled, nothing more to send).
fn finish_step(
    seq: &mut Active<'_>,
    sampled: Sampled,
    counters: &Counters,
) -> Option<Option<SequenceEvent>> {
    let step = match sampled.step {
        Ok(step) => step,
        Err(e) => return Some(Some(SequenceEvent::Failed(e.to_string()))),
    };
    let (mut finish_text, mut text) = (String::new(), step.text);
    if let Some(token) = step.token {
        counters.completion_tokens.fetch_add(1, Ordering::Relaxed);
        seq.first_token_at.get_or_insert_with(Instant::now);
        let event = TokenEvent {
            token,
            text: std::mem::take(&mut text),
            logprob: sampled.logprob,
        };
        if !seq.send(SequenceEvent::Token(event)) {
            return Some(None);
        }
    } else {
        finish_text = text;
    }
    match step.finish {
        Some(finish) => Some(Some(SequenceEvent::Finished(
            seq.summary(finish, finish_text),
        ))),
        None => {
            seq.next = step.token;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::prefill_take;

    #[test]
    fn prefill_chunks_never_leave_or_take_one_token_of_a_longer_prompt() {
        assert_eq!(prefill_take(10, 4), 4);
        assert_eq!(prefill_take(5, 4), 5);
        assert_eq!(prefill_take(3, 2), 3);
        assert_eq!(prefill_take(4, 2), 2);
        assert_eq!(prefill_take(4, 1), 0);
        assert_eq!(prefill_take(2, 1), 2);
        assert_eq!(prefill_take(1, 1), 1);
        assert_eq!(prefill_take(1, 4), 1);
        for remaining in 2..40 {
            for budget in 2..12 {
                let mut left = remaining;
                while left > 0 {
                    let take = prefill_take(left, budget);
                    assert!(
                        take >= 2 && take <= budget + 1,
                        "{remaining} {budget} {take}"
                    );
                    left -= take;
                }
            }
        }
    }
}
