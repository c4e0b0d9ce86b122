//! A persistent thread pool for the kernels: `threads − 1` parked workers plus the calling thread.
//!
//! [`ThreadPool::run`] executes `job(i)` for every chunk index `i` of a call, each exactly once, on
//! whichever participating thread takes it next (an atomic counter), and returns when all are done.
//! No allocation and no thread spawn per call: a decode step issues hundreds of small matvecs, so
//! workers spin briefly after each job before sleeping on a condition variable.
//!
//! Robust to oversubscribed machines: a worker must *claim* a job before touching it, and the caller
//! closes the job once every chunk has been taken. A worker the OS has not scheduled in time simply
//! misses the job (the caller did its share), so the caller never waits for a descheduled thread,
//! only for chunks already running. A call made while the pool is busy (from inside a job, or from
//! a second thread) runs all chunks inline on the calling thread instead of deadlocking.

use std::cell::UnsafeCell;
use std::ops::Range;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, TryLockError};
use std::thread::JoinHandle;

/// A job as the workers see it: called once per chunk index.
type Job = dyn Fn(usize) + Sync;

/// Spin iterations a worker waits for new work before yielding, then sleeping.
const SPIN_ITERATIONS: u32 = 1 << 15;

/// `gate` layout: job tag (low 32 bits of the epoch) << 32 | CLOSED | number of claimants.
const CLOSED: u64 = 1 << 31;
const CLAIMS: u64 = CLOSED - 1;

struct Shared {
    /// Bumped once per job (and once at shutdown); workers wait for it to change.
    epoch: AtomicU64,
    /// Claim gate of the current job (see `CLOSED`).
    gate: AtomicU64,
    /// The current job and its chunk count. Written only by the caller holding `call_lock` while no
    /// worker holds a claim; read only by workers holding a claim on the current job.
    job: UnsafeCell<Option<(*const Job, usize)>>,
    /// Next chunk index to hand out.
    next_chunk: AtomicUsize,
    /// Set when a worker's chunk panicked; the caller re-raises it.
    worker_panicked: AtomicBool,
    shutdown: AtomicBool,
    sleepers: AtomicUsize,
    sleep_lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is written only while the gate shows no claimants and is closed (or before the
// gate of a new job is published with Release); workers read it only after claiming the open gate of
// that job (Acquire), and the caller keeps the closure alive until the claim count returns to zero.
// The pointee is `Sync`, so calling it from several threads is sound.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw pointer is only dereferenced under the same protocol.
unsafe impl Send for Shared {}

/// A fixed-size pool of kernel threads.
pub struct ThreadPool {
    threads: usize,
    shared: Arc<Shared>,
    call_lock: Mutex<()>,
    workers: Vec<JoinHandle<()>>,
}

impl ThreadPool {
    /// A pool running jobs on `threads` threads (the caller counts as one; 0 is taken as 1).
    pub fn new(threads: usize) -> ThreadPool {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            gate: AtomicU64::new(CLOSED),
            job: UnsafeCell::new(None),
            next_chunk: AtomicUsize::new(0),
            worker_panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            sleep_lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let workers = (1..threads)
            .filter_map(|index| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("bitnet-kernel-{index}"))
                    .spawn(move || worker_loop(&shared))
                    .ok()
            })
            .collect::<Vec<_>>();
        // If the OS refused some threads, run with the ones we got.
        let threads = workers.len() + 1;
        ThreadPool {
            threads,
            shared,
            call_lock: Mutex::new(()),
            workers,
        }
    }

    /// A pool sized by `BITNET_THREADS` if set, else by the number of physical cores.
    pub fn with_default_threads() -> ThreadPool {
        ThreadPool::new(default_threads())
    }

    /// The process-wide pool (created on first use with [`ThreadPool::with_default_threads`]).
    pub fn global() -> &'static ThreadPool {
        static GLOBAL: OnceLock<ThreadPool> = OnceLock::new();
        GLOBAL.get_or_init(ThreadPool::with_default_threads)
    }

    /// Number of threads that may work on a job, the caller included.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// How many chunks to cut `items` units of work into: a few per thread, so a thread the OS
    /// delays leaves its share to the others, yet few enough that handing chunks out stays cheap.
    pub fn chunk_count(&self, items: usize) -> usize {
        self.chunk_count_per_thread(items, 4)
    }

    /// [`ThreadPool::chunk_count`] with `per_thread` chunks per thread (at most `items`, at
    /// least 1), for jobs whose chunks carry a fixed cost worth measuring against the balance.
    pub fn chunk_count_per_thread(&self, items: usize, per_thread: usize) -> usize {
        items.min(self.threads * per_thread).max(1)
    }

    /// Runs `job(first, count)` for every group of `group` consecutive rows of `0..rows` (the
    /// last group may be shorter), each group once, spread over the threads in contiguous runs
    /// of groups ([`ThreadPool::chunk_count`] of them): how the row-parallel products split
    /// their output rows.
    pub fn run_row_groups(&self, rows: usize, group: usize, job: &(dyn Fn(usize, usize) + Sync)) {
        let group = group.max(1);
        let groups = rows.div_ceil(group);
        let chunks = self.chunk_count(groups);
        self.run(chunks, &|chunk| {
            for g in split_range(groups, chunks, chunk) {
                let first = g * group;
                job(first, group.min(rows - first));
            }
        });
    }

    /// Runs `job(i, chunk)` for every `chunk_len`-long chunk `i` of `data` (the last may be
    /// shorter), each exactly once, spread over the pool's threads as [`ThreadPool::run`] does.
    pub fn run_chunks_mut<T: Send>(
        &self,
        data: &mut [T],
        chunk_len: usize,
        job: &(dyn Fn(usize, &mut [T]) + Sync),
    ) {
        let chunk_len = chunk_len.max(1);
        let (len, start) = (data.len(), SharedMutPtr(data.as_mut_ptr()));
        self.run(len.div_ceil(chunk_len), &|i| {
            let first = i * chunk_len;
            let end = len.min(first + chunk_len);
            // SAFETY: `run` hands out each index once, so the chunks `first..end` of different
            // calls are disjoint parts of `data`, which stays exclusively borrowed until `run`
            // has returned (after every call has finished).
            let chunk = unsafe { std::slice::from_raw_parts_mut(start.at(first), end - first) };
            job(i, chunk)
        });
    }

    /// Runs `job(i)` exactly once for every `i` in `0..chunks`, spread over the pool's threads, and
    /// returns when all have finished. A panic in any chunk is re-raised here after the others
    /// have finished.
    pub fn run(&self, chunks: usize, job: &(dyn Fn(usize) + Sync)) {
        if self.threads == 1 || chunks <= 1 {
            (0..chunks).for_each(job);
            return;
        }
        let _guard = match self.call_lock.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => {
                // Busy (nested call or a concurrent caller): do the work here, serially.
                (0..chunks).for_each(job);
                return;
            }
        };
        let shared = &*self.shared;
        // SAFETY: only the lifetime is erased. The pointer is only used by workers holding a claim,
        // and this function does not return (or unwind) before the claim count is zero with the
        // gate closed, after which no new claim on this job can succeed.
        let erased: *const Job =
            unsafe { std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), *const Job>(job) };
        let epoch = shared.epoch.load(Ordering::Relaxed) + 1;
        // SAFETY: we hold `call_lock` and the previous job's gate is closed with no claimants, so no
        // thread reads `job` concurrently with this write.
        unsafe { *shared.job.get() = Some((erased, chunks)) };
        shared.next_chunk.store(0, Ordering::Relaxed);
        shared
            .gate
            .store((epoch & 0xffff_ffff) << 32, Ordering::Release);
        shared.epoch.store(epoch, Ordering::SeqCst);
        if shared.sleepers.load(Ordering::SeqCst) > 0 {
            let _lock = shared
                .sleep_lock
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            shared.wake.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| take_chunks(shared, job, chunks)));
        // Every chunk has been handed out: close the gate, then wait for claimants to finish.
        shared.gate.fetch_or(CLOSED, Ordering::AcqRel);
        let mut spins = 0u32;
        while shared.gate.load(Ordering::Acquire) & CLAIMS != 0 {
            spins = spins.saturating_add(1);
            if spins < SPIN_ITERATIONS {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        // SAFETY: the gate is closed and unclaimed (Acquire): nobody reads `job` any more.
        unsafe { *shared.job.get() = None };
        if let Err(payload) = mine {
            resume_unwind(payload);
        }
        if shared.worker_panicked.swap(false, Ordering::Relaxed) {
            panic!("a bitnet-kernels pool worker panicked while running a job");
        }
    }
}

/// Takes chunk indices until none are left, running `job` on each.
fn take_chunks(shared: &Shared, job: &(dyn Fn(usize) + Sync + '_), chunks: usize) {
    loop {
        let i = shared.next_chunk.fetch_add(1, Ordering::Relaxed);
        if i >= chunks {
            return;
        }
        job(i);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        let shared = &*self.shared;
        shared.shutdown.store(true, Ordering::SeqCst);
        shared.epoch.fetch_add(1, Ordering::SeqCst);
        {
            let _lock = shared
                .sleep_lock
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            shared.wake.notify_all();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("threads", &self.threads)
            .finish()
    }
}

fn worker_loop(shared: &Shared) {
    let mut seen = 0u64;
    loop {
        seen = wait_for_new_epoch(shared, seen);
        if shared.shutdown.load(Ordering::SeqCst) {
            return;
        }
        if !claim(shared, seen) {
            continue; // Missed it: the caller already handed out every chunk.
        }
        // SAFETY: we hold a claim on the open gate of job `seen`, so `job` holds that job's closure
        // (written before the gate was published with Release, read after our Acquire claim) and
        // the caller keeps it alive until our claim is released below.
        if let Some((job, chunks)) = unsafe { *shared.job.get() } {
            // SAFETY: see above.
            let job = unsafe { &*job };
            if catch_unwind(AssertUnwindSafe(|| take_chunks(shared, job, chunks))).is_err() {
                shared.worker_panicked.store(true, Ordering::Relaxed);
            }
        }
        shared.gate.fetch_sub(1, Ordering::Release);
    }
}

/// Registers this worker on the job tagged `epoch` if its gate is still open.
fn claim(shared: &Shared, epoch: u64) -> bool {
    let tag = (epoch & 0xffff_ffff) << 32;
    let mut gate = shared.gate.load(Ordering::Acquire);
    loop {
        if gate & !(CLOSED | CLAIMS) != tag || gate & CLOSED != 0 {
            return false;
        }
        match shared
            .gate
            .compare_exchange_weak(gate, gate + 1, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => return true,
            Err(current) => gate = current,
        }
    }
}

fn wait_for_new_epoch(shared: &Shared, seen: u64) -> u64 {
    for spin in 0..SPIN_ITERATIONS {
        let epoch = shared.epoch.load(Ordering::Acquire);
        if epoch != seen {
            return epoch;
        }
        if spin < SPIN_ITERATIONS / 2 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    let mut lock = shared
        .sleep_lock
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    shared.sleepers.fetch_add(1, Ordering::SeqCst);
    loop {
        let epoch = shared.epoch.load(Ordering::SeqCst);
        if epoch != seen {
            shared.sleepers.fetch_sub(1, Ordering::SeqCst);
            return epoch;
        }
        lock = shared
            .wake
            .wait(lock)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
    }
}

/// `BITNET_THREADS` if it is a positive integer, else the number of physical cores.
pub fn default_threads() -> usize {
    std::env::var("BITNET_THREADS")
        .ok()
        .and_then(|value| value.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(physical_cores)
}

/// Physical cores (distinct package/core id pairs in sysfs), else the logical CPU count.
pub fn physical_cores() -> usize {
    let logical = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut cores = std::collections::BTreeSet::new();
    for cpu in 0..logical.max(1) {
        let base = format!("/sys/devices/system/cpu/cpu{cpu}/topology");
        let read = |name: &str| std::fs::read_to_string(format!("{base}/{name}")).ok();
        match (read("physical_package_id"), read("core_id")) {
            (Some(package), Some(core)) => {
                cores.insert((package.trim().to_string(), core.trim().to_string()));
            }
            _ => return logical,
        }
    }
    cores.len().clamp(1, logical)
}

/// A slice's start shared with the pool's threads, each of which takes its own chunk of it
/// ([`ThreadPool::run_chunks_mut`]).
struct SharedMutPtr<T>(*mut T);

// SAFETY: the pointer is only turned into disjoint chunks, one per thread at a time, of a slice
// whose elements may be sent between threads (`T: Send`).
unsafe impl<T: Send> Sync for SharedMutPtr<T> {}

impl<T> SharedMutPtr<T> {
    /// The element pointer `offset` elements from the start (no dereference here).
    fn at(&self, offset: usize) -> *mut T {
        self.0.wrapping_add(offset)
    }
}

/// The `part`-th of `parts` near-equal contiguous pieces of `0..total` (earlier parts get the
/// remainder). Used to split output rows between pool threads.
pub fn split_range(total: usize, parts: usize, part: usize) -> Range<usize> {
    let parts = parts.max(1);
    let base = total / parts;
    let extra = total % parts;
    let start = part * base + part.min(extra);
    let len = base + usize::from(part < extra);
    start.min(total)..(start + len).min(total)
}

/// Views an output slice as atomics so pool threads can each store their own disjoint elements
/// through a shared reference (relaxed stores compile to plain stores).
pub(crate) fn atomic_i32_view(out: &mut [i32]) -> &[std::sync::atomic::AtomicI32] {
    // SAFETY: AtomicI32 has the same size and alignment as i32, and the exclusive borrow of `out`
    // guarantees no non-atomic access for the lifetime of the returned view.
    unsafe {
        std::slice::from_raw_parts(
            out.as_mut_ptr().cast::<std::sync::atomic::AtomicI32>(),
            out.len(),
        )
    }
}

/// Writes `values` into `out[at..at + N]`, a view from [`atomic_f32_view`], with plain stores
/// (a run of them is a few vector moves, where relaxed atomic stores go one element at a time).
///
/// # Safety
/// No other thread reads or writes these elements while this runs: a pool job gives each
/// output element to one chunk, and [`ThreadPool::run`]'s return orders the write before the
/// caller's reads.
///
/// # Panics
/// If the run lies outside `out`.
#[inline(always)]
pub(crate) unsafe fn store_f32_run<const N: usize>(
    out: &[std::sync::atomic::AtomicU32],
    at: usize,
    values: &[f32; N],
) {
    let dst = &out[at..at + N];
    // SAFETY: `dst` is in bounds (indexed above) and holds N elements; AtomicU32 is an
    // UnsafeCell<u32>, so writing through a pointer derived from a shared reference is allowed,
    // and the caller guarantees no concurrent access.
    unsafe {
        std::ptr::copy_nonoverlapping(
            values.as_ptr().cast::<u32>(),
            dst.as_ptr().cast::<u32>().cast_mut(),
            N,
        );
    }
}

/// [`atomic_i32_view`] for f32 outputs (stored as bit patterns).
pub(crate) fn atomic_f32_view(out: &mut [f32]) -> &[std::sync::atomic::AtomicU32] {
    // SAFETY: AtomicU32 has the same size and alignment as f32 (both 4 bytes), and the exclusive
    // borrow of `out` guarantees no non-atomic access for the lifetime of the returned view.
    unsafe {
        std::slice::from_raw_parts(
            out.as_mut_ptr().cast::<std::sync::atomic::AtomicU32>(),
            out.len(),
        )
    }
}
