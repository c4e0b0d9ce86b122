//! The thread pool: every chunk runs exactly once per call (mutable chunks of a slice too),
//! nested and repeated calls work, and a panic in a job reaches the caller.

use bitnet_kernels::ThreadPool;
use std::sync::atomic::{AtomicUsize, Ordering};

#[test]
fn each_chunk_runs_once_per_call() {
    for threads in 1..=4 {
        let pool = ThreadPool::new(threads);
        assert_eq!(pool.threads(), threads);
        for chunks in [0usize, 1, 2, 7, 64] {
            let counts: Vec<AtomicUsize> = (0..chunks).map(|_| AtomicUsize::new(0)).collect();
            for _ in 0..300 {
                pool.run(chunks, &|i| {
                    counts[i].fetch_add(1, Ordering::Relaxed);
                });
            }
            for c in &counts {
                assert_eq!(
                    c.load(Ordering::Relaxed),
                    300,
                    "threads {threads} chunks {chunks}"
                );
            }
        }
    }
}

#[test]
fn mutable_chunks_are_each_handed_out_once() {
    for threads in 1..=3 {
        let pool = ThreadPool::new(threads);
        for (len, chunk_len) in [(0usize, 4usize), (1, 4), (8, 4), (10, 4), (2560 * 8, 2560)] {
            // Element k holds k while the chunks are checked, so a chunk cut at the wrong place
            // shows; each chunk's visits are counted.
            let mut data: Vec<usize> = (0..len).collect();
            let chunks = len.div_ceil(chunk_len);
            let visits: Vec<AtomicUsize> = (0..chunks).map(|_| AtomicUsize::new(0)).collect();
            for _ in 0..50 {
                pool.run_chunks_mut(&mut data, chunk_len, &|i, chunk| {
                    visits[i].fetch_add(1, Ordering::Relaxed);
                    let want: Vec<usize> = (i * chunk_len..len.min((i + 1) * chunk_len)).collect();
                    assert_eq!(chunk, &want[..], "chunk {i}");
                });
            }
            assert!(visits.iter().all(|v| v.load(Ordering::Relaxed) == 50));
            // The chunks are writable, each by the thread that holds it.
            pool.run_chunks_mut(&mut data, chunk_len, &|_, chunk| {
                chunk.iter_mut().for_each(|v| *v *= 2)
            });
            assert!(
                data.iter().enumerate().all(|(k, &v)| v == 2 * k),
                "threads {threads} len {len}"
            );
        }
    }
}

#[test]
fn chunks_are_shared_between_threads() {
    // Each chunk waits at a rendezvous until every thread of the pool holds a chunk of the same
    // call: a call can only finish if its chunks really run on `threads` distinct threads at once
    // (a pool that ran them all on one thread would never pass the rendezvous, and fails at the
    // deadline instead of hanging). Repeated many times with more chunks than threads, every chunk
    // runs exactly once per call. A worker the OS has not scheduled yet is waited for here, so the
    // deadline is generous: it bounds a hang, it measures nothing.
    use std::collections::HashSet;
    use std::sync::{Condvar, Mutex};
    use std::thread::ThreadId;
    use std::time::{Duration, Instant};

    const CALLS: usize = 200;
    for threads in 2..=4 {
        let pool = ThreadPool::new(threads);
        for chunks in [threads, 2 * threads + 1, 8 * threads] {
            let counts: Vec<AtomicUsize> = (0..chunks).map(|_| AtomicUsize::new(0)).collect();
            for call in 0..CALLS {
                let holders: Mutex<HashSet<ThreadId>> = Mutex::new(HashSet::new());
                let all_here = Condvar::new();
                let deadline = Instant::now() + Duration::from_secs(60);
                pool.run(chunks, &|i| {
                    counts[i].fetch_add(1, Ordering::Relaxed);
                    let mut seen = holders.lock().unwrap();
                    seen.insert(std::thread::current().id());
                    all_here.notify_all();
                    while seen.len() < threads {
                        let left = deadline.saturating_duration_since(Instant::now());
                        assert!(
                            !left.is_zero(),
                            "threads {threads} chunks {chunks} call {call}: only {} of {threads} \
                             threads took a chunk",
                            seen.len()
                        );
                        seen = all_here.wait_timeout(seen, left).unwrap().0;
                    }
                });
                assert_eq!(holders.lock().unwrap().len(), threads);
            }
            for (i, c) in counts.iter().enumerate() {
                assert_eq!(
                    c.load(Ordering::Relaxed),
                    CALLS,
                    "threads {threads} chunks {chunks}: chunk {i}"
                );
            }
        }
    }
}

#[test]
fn nested_calls_run_inline() {
    let pool = ThreadPool::new(2);
    let total = AtomicUsize::new(0);
    pool.run(3, &|_| {
        pool.run(5, &|_| {
            total.fetch_add(1, Ordering::Relaxed);
        });
    });
    assert_eq!(total.load(Ordering::Relaxed), 15);
}

#[test]
fn sleeping_workers_wake_up() {
    let pool = ThreadPool::new(3);
    let total = AtomicUsize::new(0);
    pool.run(3, &|_| {
        total.fetch_add(1, Ordering::Relaxed);
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    pool.run(3, &|_| {
        total.fetch_add(1, Ordering::Relaxed);
    });
    assert_eq!(total.load(Ordering::Relaxed), 6);
}

#[test]
fn worker_panic_reaches_the_caller() {
    let pool = ThreadPool::new(2);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.run(4, &|i| {
            if i == 1 {
                panic!("boom");
            }
        })
    }));
    assert!(result.is_err());
    // The pool still works afterwards.
    let total = AtomicUsize::new(0);
    pool.run(2, &|_| {
        total.fetch_add(1, Ordering::Relaxed);
    });
    assert_eq!(total.load(Ordering::Relaxed), 2);
}
