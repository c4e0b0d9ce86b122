//! Prompt caching in the batch engine on tiny-b158: a request sharing a prefix with an idle
//! slot's cache (or, with `cache_ram`, a RAM snapshot) evaluates only the rest of its prompt, and
//! its tokens and log-probabilities are bit for bit those of the same request evaluated in full
//! (`cache_prompt: false`); a slot reused for a different prefix is truncated, not mixed.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use bitnet_engine::{
    BatchEngine, BatchOptions, GenerateRequest, SamplingParams, SequenceEvent, SequenceRequest,
    SequenceSummary, TokenEvent,
};
use bitnet_gguf::GgufFile;
use bitnet_kernels::ThreadPool;
use bitnet_model::Model;
use bitnet_tokenizer::Tokenizer;

fn engine(slots: usize, prefill_chunk: usize, cache_ram: usize) -> BatchEngine {
    let path = bitnet_testdata::oracle("tiny-b158/gguf/tiny-b158-i2_s.gguf");
    let file = GgufFile::open(path).unwrap();
    let model = Arc::new(Model::load(&file).unwrap());
    let tokenizer = Arc::new(Tokenizer::from_gguf(&file).unwrap());
    let options = BatchOptions {
        slots,
        context: 256,
        queue: 16,
        prefill_chunk,
        cache_ram,
    };
    BatchEngine::start(model, tokenizer, ThreadPool::new(2), options)
}

/// The tiny model's token ids of the start of Alice in Wonderland (a real text in its
/// vocabulary).
fn text_ids() -> Vec<u32> {
    let path = bitnet_testdata::oracle("tiny-b158/gguf/tiny-b158-i2_s.gguf");
    let tokenizer = Tokenizer::from_gguf_path(&path).unwrap();
    let text = std::fs::read_to_string(bitnet_testdata::data("alice29.txt")).unwrap();
    let start = text.find("Alice was beginning").unwrap();
    tokenizer.encode(&text[start..start + 1500]).unwrap()
}

fn greedy(prompt: Vec<u32>, cache_prompt: bool) -> SequenceRequest {
    SequenceRequest {
        generate: GenerateRequest {
            prompt,
            max_tokens: 12,
            sampling: SamplingParams::greedy(),
            stop: Vec::new(),
            stop_tokens: Vec::new(),
            show_special: false,
            constraint: None,
        },
        logprobs: Some(3),
        cache_prompt,
    }
}

fn submit(engine: &BatchEngine, request: SequenceRequest) -> mpsc::Receiver<SequenceEvent> {
    let (tx, rx) = mpsc::channel();
    engine
        .submit(request, Box::new(move |e| tx.send(e).is_ok()))
        .unwrap();
    rx
}

/// A finished sequence's tokens (with logprobs) and summary.
fn finish(rx: &mpsc::Receiver<SequenceEvent>) -> (Vec<TokenEvent>, SequenceSummary) {
    let mut tokens = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(60)).expect("event") {
            SequenceEvent::Token(t) => tokens.push(t),
            SequenceEvent::Finished(s) => return (tokens, s),
            SequenceEvent::Failed(e) => panic!("failed: {e}"),
            SequenceEvent::Started { .. } => {}
        }
    }
}

fn run(engine: &BatchEngine, prompt: &[u32], cache_prompt: bool) -> (Vec<TokenEvent>, usize) {
    let (tokens, summary) = finish(&submit(engine, greedy(prompt.to_vec(), cache_prompt)));
    assert_eq!(summary.prompt_tokens, prompt.len());
    (tokens, summary.cached_tokens)
}

#[test]
fn a_shared_prefix_is_reused_and_gives_the_uncached_bits() {
    let text = text_ids();
    assert!(text.len() > 100, "{}", text.len());
    // A 7-token prefill budget: both the first request and the cached suffixes run in several
    // chunks, some joined by the other sequence's decode steps.
    let engine = engine(1, 7, 0);
    let first = &text[..40];
    let (_, cached) = run(&engine, first, true);
    assert_eq!(cached, 0);

    // The prompt extended: its first 40 tokens come from the cache.
    let extended = &text[..61];
    let (with_cache, cached) = run(&engine, extended, true);
    assert_eq!(cached, 40);
    let (without, cached) = run(&engine, extended, false);
    assert_eq!(cached, 0);
    assert_eq!(with_cache, without);

    // The same prompt again: all but the last two tokens reused.
    let (again, cached) = run(&engine, extended, true);
    assert_eq!(cached, 59);
    assert_eq!(again, without);

    // A prompt that leaves the cached one after 25 tokens: the slot is truncated to them.
    let mut branch = text[..25].to_vec();
    branch.extend(text[45..60].iter().rev());
    let (branched, cached) = run(&engine, &branch, true);
    assert_eq!(cached, 25);
    let (fresh, _) = run(&engine, &branch, false);
    assert_eq!(branched, fresh);

    // Nothing in common: nothing reused.
    let (_, cached) = run(&engine, &text[30..50], true);
    assert_eq!(cached, 0);
    let stats = engine.stats();
    assert_eq!(stats.cached_tokens, 40 + 59 + 25);
}

#[test]
fn concurrent_shared_and_different_prefixes_do_not_mix() {
    let text = text_ids();
    let engine = engine(4, 16, 0);
    let prompts: Vec<Vec<u32>> = vec![
        text[..30].to_vec(),
        text[..45].to_vec(),
        text[10..40].to_vec(),
        text[..38].iter().rev().copied().collect(),
        text[..52].to_vec(),
        text[10..55].to_vec(),
        text[..30].to_vec(),
        text[5..35].to_vec(),
    ];
    let solo: Vec<Vec<TokenEvent>> = prompts.iter().map(|p| run(&engine, p, false).0).collect();
    // Twice: the first round starts from the solo runs' idle caches, the second from the first
    // round's; eight requests over four slots, so slots are taken over for other prefixes.
    let mut reused = 0;
    for _ in 0..2 {
        let waiting: Vec<_> = prompts
            .iter()
            .map(|p| submit(&engine, greedy(p.clone(), true)))
            .collect();
        for (rx, expected) in waiting.iter().zip(&solo) {
            let (tokens, summary) = finish(rx);
            assert_eq!(&tokens, expected);
            reused += summary.cached_tokens;
        }
    }
    assert!(reused > 0);
}

#[test]
fn the_ram_store_brings_back_a_prefix_whose_slot_was_taken() {
    let text = text_ids();
    let first = &text[..40];
    let other = &text[41..60];
    let extended = &text[..50];
    for (cache_ram, expected_cached) in [(0, 0), (64 << 20, 40)] {
        let engine = engine(1, 64, cache_ram);
        run(&engine, first, true);
        // The only slot is taken for an unrelated prompt...
        let (_, cached) = run(&engine, other, true);
        assert_eq!(cached, 0);
        // ...so the first prefix is found only in the RAM store.
        let (tokens, cached) = run(&engine, extended, true);
        assert_eq!(cached, expected_cached, "cache_ram {cache_ram}");
        assert_eq!(tokens, run(&engine, extended, false).0);
        assert_eq!(engine.stats().cache_ram_bytes > 0, cache_ram > 0);
    }
}

#[test]
fn a_request_copies_the_prompt_prefix_of_a_sequence_in_flight() {
    let text = text_ids();
    let first = text[..40].to_vec();
    let extended = text[..50].to_vec();
    // Two slots, and a prefill budget that evaluates the first prompt in several chunks.
    let (expected, _) = run(&engine(1, 16, 0), &extended, false);
    let engine = engine(2, 16, 0);
    // The first request's sink holds the engine thread at its `Started` event until the second
    // request is queued, so the second is admitted while the first is in flight, its 40 prompt
    // positions evaluated and nothing of it in an idle slot or the RAM store.
    let (tx, rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let mut long = greedy(first, false);
    long.generate.max_tokens = 150;
    engine
        .submit(
            long,
            Box::new(move |e| {
                let started = matches!(e, SequenceEvent::Started { .. });
                let listening = tx.send(e).is_ok();
                if started {
                    go_rx.recv().expect("the test lets the engine go on");
                }
                listening
            }),
        )
        .unwrap();
    match rx.recv_timeout(Duration::from_secs(60)).expect("event") {
        SequenceEvent::Started { cached_tokens, .. } => assert_eq!(cached_tokens, 0),
        other => panic!("before Started: {other:?}"),
    }
    let second = submit(&engine, greedy(extended.clone(), true));
    go_tx.send(()).unwrap();
    let (tokens, summary) = finish(&second);
    assert_eq!(summary.cached_tokens, 40);
    assert_eq!(tokens, expected);
    let (_, first_summary) = finish(&rx);
    assert_eq!(first_summary.completion_tokens, 150);
}
