//! The batch engine on tiny-b158: many sequences decoded together, joining and leaving a running
//! batch with chunked prefill, still produce bitnet.cpp's greedy continuations (oracle README
//! §6.7) and report log-probabilities whose top-1/top-2 gap is bitnet.cpp's; a cancelled
//! sequence frees its slot; a full queue and an over-long prompt are refused; sampled sequences
//! (sampled side by side over the pool) pick the tokens they pick alone.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use bitnet_engine::{
    BatchEngine, BatchOptions, FinishReason, GenerateRequest, SamplingParams, SequenceEvent,
    SequenceRequest, SubmitError,
};
use bitnet_gguf::GgufFile;
use bitnet_kernels::ThreadPool;
use bitnet_model::Model;
use bitnet_tokenizer::Tokenizer;

fn engine(options: BatchOptions) -> BatchEngine {
    let path = bitnet_testdata::oracle("tiny-b158/gguf/tiny-b158-i2_s.gguf");
    let file = GgufFile::open(path).unwrap();
    let model = Arc::new(Model::load(&file).unwrap());
    let tokenizer = Arc::new(Tokenizer::from_gguf(&file).unwrap());
    BatchEngine::start(model, tokenizer, ThreadPool::new(2), options)
}

fn reference() -> Vec<serde_json::Value> {
    let path = bitnet_testdata::oracle("tiny-b158/reference/bitnetcpp-i2_s-greedy.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    json["generations"].as_array().unwrap().clone()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn greedy(prompt: Vec<u32>, max_tokens: usize, logprobs: Option<usize>) -> SequenceRequest {
    SequenceRequest {
        generate: GenerateRequest {
            prompt,
            max_tokens,
            sampling: SamplingParams::greedy(),
            stop: Vec::new(),
            stop_tokens: Vec::new(),
            show_special: false,
            constraint: None,
        },
        logprobs,
        cache_prompt: true,
    }
}

/// Submits a request whose events go to a channel.
fn submit(engine: &BatchEngine, request: SequenceRequest) -> mpsc::Receiver<SequenceEvent> {
    let (tx, rx) = mpsc::channel();
    engine
        .submit(request, Box::new(move |e| tx.send(e).is_ok()))
        .unwrap();
    rx
}

/// Every event of one sequence, up to its end.
fn collect(rx: &mpsc::Receiver<SequenceEvent>) -> Vec<SequenceEvent> {
    let mut events = Vec::new();
    loop {
        let e = rx.recv_timeout(Duration::from_secs(60)).expect("event");
        let end = matches!(e, SequenceEvent::Finished(_) | SequenceEvent::Failed(_));
        events.push(e);
        if end {
            return events;
        }
    }
}

#[test]
fn batched_sequences_follow_bitnet_cpp_greedy() {
    // Three slots for eight requests: sequences queue, join and leave a running batch; a
    // five-token prefill budget mixes prompt chunks with other sequences' decode steps.
    let engine = engine(BatchOptions {
        slots: 3,
        context: 256,
        queue: 16,
        prefill_chunk: 5,
        cache_ram: 0,
    });
    let gens = reference();
    let mut waiting = Vec::new();
    for round in 0..2 {
        for g in &gens {
            let expected = ids(&g["generated_ids"]);
            let rx = submit(
                &engine,
                greedy(ids(&g["prompt_ids"]), expected.len(), Some(2)),
            );
            waiting.push((round, g.clone(), rx));
        }
    }
    for (round, g, rx) in waiting {
        let expected = ids(&g["generated_ids"]);
        let margins: Vec<f64> = g["teacher_forced_top1_minus_top2"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_f64().unwrap())
            .collect();
        let events = collect(&rx);
        assert!(
            matches!(events[0], SequenceEvent::Started { prompt_tokens, .. } if prompt_tokens == ids(&g["prompt_ids"]).len())
        );
        let tokens: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                SequenceEvent::Token(t) => Some(t.clone()),
                _ => None,
            })
            .collect();
        let Some(SequenceEvent::Finished(summary)) = events.last() else {
            panic!("sequence did not finish: {events:?}");
        };
        assert_eq!(summary.finish, FinishReason::Length);
        assert_eq!(summary.completion_tokens, expected.len());
        let got: Vec<u32> = tokens.iter().map(|t| t.token).collect();
        match got.iter().zip(&expected).position(|(a, b)| a != b) {
            None => {
                let hex = g["generated_text_hex"].as_str().unwrap();
                let bytes: Vec<u8> = (0..hex.len() / 2)
                    .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                    .collect();
                let text: String =
                    tokens.iter().map(|t| t.text.as_str()).collect::<String>() + &summary.text;
                assert_eq!(text, String::from_utf8_lossy(&bytes), "round {round}");
            }
            Some(k) => assert!(
                margins[k] < 0.5,
                "step {k} differs at margin {}",
                margins[k]
            ),
        }
        // The reported top-1/top-2 gap is bitnet.cpp's teacher-forced margin (logits within
        // the §6.4 decode bound of 0.35 each) wherever the continuation is bitnet.cpp's.
        for (t, &margin) in tokens
            .iter()
            .zip(&margins)
            .take_while(|(t, _)| expected.contains(&t.token))
        {
            let lp = t.logprob.as_ref().unwrap();
            assert_eq!(lp.top[0].0, t.token);
            assert_eq!(lp.top[0].1, lp.logprob);
            let gap = f64::from(lp.top[0].1 - lp.top[1].1);
            assert!(
                (gap - margin).abs() < 0.7,
                "gap {gap} vs bitnet.cpp {margin}"
            );
        }
    }
    let stats = engine.stats();
    assert_eq!((stats.active, stats.queued), (0, 0));
    assert!(
        stats.batched_rows > stats.steps,
        "no step ran more than one row"
    );
}

/// The tokens and log-probabilities of one sequence's events.
fn tokens_of(events: &[SequenceEvent]) -> Vec<(u32, f32)> {
    events
        .iter()
        .filter_map(|e| match e {
            SequenceEvent::Token(t) => Some((t.token, t.logprob.as_ref().unwrap().logprob)),
            _ => None,
        })
        .collect()
}

#[test]
fn sampled_sequences_in_a_batch_pick_the_tokens_they_pick_alone() {
    // Sampling at temperature 1 with no top-k: every token is a draw over the whole vocabulary,
    // so a sequence whose sampler saw another sequence's logits (or another draw order) diverges.
    let sampled = |seed: u64| {
        let mut request = greedy(ids(&reference()[0]["prompt_ids"]), 24, Some(1));
        request.generate.sampling = SamplingParams::unfiltered(seed);
        request.cache_prompt = false;
        request
    };
    let options = BatchOptions {
        slots: 6,
        context: 128,
        queue: 16,
        prefill_chunk: 64,
        cache_ram: 0,
    };
    let alone = engine(options);
    let expected: Vec<_> = (0..6)
        .map(|seed| tokens_of(&collect(&submit(&alone, sampled(seed)))))
        .collect();
    let together = engine(options);
    let receivers: Vec<_> = (0..6)
        .map(|seed| submit(&together, sampled(seed)))
        .collect();
    for (seed, rx) in receivers.iter().enumerate() {
        let got = tokens_of(&collect(rx));
        assert_eq!(got.len(), 24);
        assert_eq!(got, expected[seed], "seed {seed}");
    }
    let stats = together.stats();
    assert!(
        stats.batched_rows > stats.steps,
        "no step ran more than one row"
    );
    assert_ne!(
        expected[0], expected[1],
        "the seeds should give different tokens"
    );
}

#[test]
fn a_cancelled_sequence_frees_its_slot() {
    let engine = engine(BatchOptions {
        slots: 1,
        context: 256,
        queue: 4,
        prefill_chunk: 64,
        cache_ram: 0,
    });
    let prompt = ids(&reference()[0]["prompt_ids"]);
    let (tx, rx) = mpsc::channel();
    let mut seen = 0;
    engine
        .submit(
            greedy(prompt.clone(), 200, None),
            Box::new(move |e| {
                seen += 1;
                // The listener goes away after three events.
                seen <= 3 && tx.send(e).is_ok()
            }),
        )
        .unwrap();
    let follow_up = submit(&engine, greedy(prompt, 4, None));
    let events = collect(&follow_up);
    assert!(matches!(events.last(), Some(SequenceEvent::Finished(s)) if s.completion_tokens == 4));
    // The cancelled sequence got no end event and stopped long before its 200 tokens.
    let first: Vec<_> = rx.try_iter().collect();
    assert_eq!(first.len(), 3);
    assert!(first
        .iter()
        .all(|e| !matches!(e, SequenceEvent::Finished(_))));
    assert!(engine.stats().completion_tokens < 20);
}

#[test]
fn a_full_queue_and_bad_prompts_are_refused() {
    let engine = engine(BatchOptions {
        slots: 1,
        context: 64,
        queue: 1,
        prefill_chunk: 64,
        cache_ram: 0,
    });
    let prompt = ids(&reference()[0]["prompt_ids"]);
    // The first sequence's listener holds the engine thread until released, so the queue's
    // state is known: one sequence in the slot, one waiting, the next refused.
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let mut release = Some(release_rx);
    engine
        .submit(
            greedy(prompt.clone(), 2, None),
            Box::new(move |_| {
                if let Some(r) = release.take() {
                    started_tx.send(()).unwrap();
                    r.recv().unwrap();
                }
                true
            }),
        )
        .unwrap();
    started_rx.recv().unwrap();
    let second = submit(&engine, greedy(prompt.clone(), 2, None));
    let third = engine.submit(greedy(prompt.clone(), 2, None), Box::new(|_| true));
    assert_eq!(third, Err(SubmitError::QueueFull { queue: 1 }));
    release_tx.send(()).unwrap();
    assert!(matches!(
        collect(&second).last(),
        Some(SequenceEvent::Finished(_))
    ));

    let long = vec![prompt[0]; 64];
    assert_eq!(
        engine.submit(greedy(long, 1, None), Box::new(|_| true)),
        Err(SubmitError::PromptTooLong {
            prompt: 64,
            capacity: 64
        })
    );
    assert_eq!(
        engine.submit(greedy(Vec::new(), 1, None), Box::new(|_| true)),
        Err(SubmitError::EmptyPrompt)
    );
}

#[test]
fn a_sequence_that_fills_its_context_ends_with_context_full() {
    let engine = engine(BatchOptions {
        slots: 2,
        context: 40,
        queue: 4,
        prefill_chunk: 64,
        cache_ram: 0,
    });
    let prompt = ids(&reference()[0]["prompt_ids"]);
    let events = collect(&submit(&engine, greedy(prompt.clone(), 100, None)));
    let Some(SequenceEvent::Finished(s)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(s.finish, FinishReason::ContextFull);
    assert_eq!(s.prompt_tokens + s.completion_tokens, 40 + 1);
}
