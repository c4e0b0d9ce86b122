//! The thread pool: every chunk runs exactly once per call, nested and repeated calls work, and a
//! panic in a job reaches the caller.

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
fn chunks_are_shared_between_threads() {
    // With slow chunks, a 2-thread pool finishes 8 chunks in well under 8 chunk-times unless the
    // machine is saturated; at the least every chunk must run and the thread ids must be valid.
    let pool = ThreadPool::new(2);
    let seen = std::sync::Mutex::new(std::collections::BTreeSet::new());
    pool.run(8, &|_| {
        seen.lock()
            .unwrap()
            .insert(format!("{:?}", std::thread::current().id()));
        std::thread::sleep(std::time::Duration::from_millis(20));
    });
    let threads = seen.lock().unwrap().len();
    assert!((1..=2).contains(&threads));
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
