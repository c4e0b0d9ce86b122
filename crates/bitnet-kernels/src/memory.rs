//! Where buffers live.
//!
//! [`CacheAligned`]: the kernels' scratch for activations, starting on a cache line so that
//! their 64-byte loads never split one (a split load takes two load slots; the few-token F16
//! kernel ran 60% faster from aligned activations).
//!
//! [`HugePageAllocator`], the global allocator of the `bitnet` binary, puts every allocation of
//! 2 MiB or more (weights, KV caches, logits) on a 2 MiB boundary and asks Linux to back it with
//! transparent huge pages (`MADV_HUGEPAGE`).
//!
//! Decode streams every weight once per token. With 4 KiB pages that is ~290,000 TLB misses per
//! token of a 2B model, and the hardware prefetchers stop at each 4 KiB page boundary; with
//! 2 MiB pages neither happens. Most distributions ship THP in `madvise` mode, so the advice is
//! what turns it on for us. It is advice: where the OS refuses it (other systems, THP disabled,
//! no free huge pages) the memory is ordinary memory and everything works the same, only slower.

use std::alloc::{GlobalAlloc, Layout, System};
use std::marker::PhantomData;

/// Numbers for which every bit pattern of their size is a value (so a zeroed cache line is a
/// line of zeros of them). Implemented for the kernels' activation and weight-code types only.
pub trait PlainNumber: Copy + sealed::Sealed {}
impl PlainNumber for i8 {}
impl PlainNumber for u8 {}
impl PlainNumber for i32 {}
impl PlainNumber for f32 {}
mod sealed {
    pub trait Sealed {}
    impl Sealed for i8 {}
    impl Sealed for u8 {}
    impl Sealed for i32 {}
    impl Sealed for f32 {}
}

/// 64 bytes on a cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct CacheLine([u8; 64]);

/// A reusable buffer of `T` whose first element starts on a cache line. It keeps its capacity
/// between uses, so a kernel called once per token allocates only while it grows.
pub struct CacheAligned<T: PlainNumber> {
    lines: Vec<CacheLine>,
    len: usize,
    _of: PhantomData<T>,
}

impl<T: PlainNumber> Default for CacheAligned<T> {
    fn default() -> Self {
        CacheAligned {
            lines: Vec::new(),
            len: 0,
            _of: PhantomData,
        }
    }
}

impl<T: PlainNumber> Clone for CacheAligned<T> {
    fn clone(&self) -> Self {
        CacheAligned {
            lines: self.lines.clone(),
            len: self.len,
            _of: PhantomData,
        }
    }
}

impl<T: PlainNumber + std::fmt::Debug> std::fmt::Debug for CacheAligned<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl<T: PlainNumber> CacheAligned<T> {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// `len` elements (their values: whatever the buffer held, zero where it grew), to be
    /// overwritten by the caller. The storage only grows: a buffer shared by calls of different
    /// sizes is not zero-filled again each time it goes back to the larger one.
    pub fn resize(&mut self, len: usize) -> &mut [T] {
        let lines = (len * size_of::<T>()).div_ceil(64);
        if self.lines.len() < lines {
            self.lines.resize(lines, CacheLine([0; 64]));
        }
        self.len = len;
        self.as_mut_slice()
    }

    /// The buffer holding a copy of `src`.
    pub fn copy_from(&mut self, src: &[T]) -> &[T] {
        self.resize(src.len()).copy_from_slice(src);
        self.as_slice()
    }

    /// The elements.
    #[allow(unsafe_code)]
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: `lines` holds at least `len · size_of::<T>()` initialised bytes (see `resize`),
        // aligned to 64 ≥ align_of::<T>(), and any bit pattern is a `T` (`PlainNumber`); the
        // borrow has `self`'s lifetime.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<T>(), self.len) }
    }

    /// The elements, mutably.
    #[allow(unsafe_code)]
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as in `as_slice`, borrowed mutably through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<T>(), self.len) }
    }
}

/// Asks the CPU to start loading every cache line of `bytes` into cache (x86-64: `prefetcht0`
/// per 64-byte line; elsewhere nothing). A kernel about to stream a region calls this for its
/// first few KiB, so the first lines arrive together instead of one miss after another.
#[allow(unsafe_code)]
pub fn prefetch_lines(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        // SAFETY: SSE is part of x86-64; a prefetch never faults and the address is inside
        // `bytes` anyway.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr().cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Size and alignment of an x86-64 / aarch64 Linux transparent huge page.
pub const HUGE_PAGE: usize = 2 << 20;

/// The system allocator, except that allocations of at least [`HUGE_PAGE`] bytes are aligned
/// to [`HUGE_PAGE`] and advised into huge pages before their first touch (see the module doc).
pub struct HugePageAllocator;

impl HugePageAllocator {
    /// The layout this allocator really requests for `layout`: the same one for small
    /// allocations, a huge-page-aligned one for large ones. A pure function of `layout`, so
    /// `dealloc` reconstructs what `alloc` used.
    fn system_layout(layout: Layout) -> Layout {
        if layout.size() >= HUGE_PAGE && layout.align() < HUGE_PAGE {
            // A size ≥ 2 MiB with a power-of-two alignment of 2 MiB is always a valid layout
            // (the size cannot overflow isize: it already fitted `layout`).
            Layout::from_size_align(layout.size(), HUGE_PAGE).unwrap_or(layout)
        } else {
            layout
        }
    }
}

#[allow(unsafe_code)]
// SAFETY: every method forwards to `System` with the layout `system_layout` derives from the
// caller's layout; that layout has the caller's size and an alignment at least the caller's, so
// the block satisfies the caller's request, and `dealloc` passes `System` the same layout
// `alloc` used (it is recomputed from the same input).
unsafe impl GlobalAlloc for HugePageAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let system = Self::system_layout(layout);
        // SAFETY: `system` has a non-zero size (the caller's layout has one, per the
        // `GlobalAlloc` contract) and a valid alignment.
        let ptr = unsafe { System.alloc(system) };
        if !ptr.is_null() && system.align() == HUGE_PAGE {
            advise_huge_pages(ptr, system.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let system = Self::system_layout(layout);
        // SAFETY: as in `alloc`.
        let ptr = unsafe { System.alloc_zeroed(system) };
        if !ptr.is_null() && system.align() == HUGE_PAGE {
            advise_huge_pages(ptr, system.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc`/`alloc_zeroed` of this allocator with this `layout`,
        // hence from `System` with `system_layout(layout)`.
        unsafe { System.dealloc(ptr, Self::system_layout(layout)) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = match Layout::from_size_align(new_size, layout.align()) {
            Ok(l) => l,
            Err(_) => return std::ptr::null_mut(),
        };
        if Self::system_layout(layout) == layout && Self::system_layout(new_layout) == new_layout {
            // Small before and after: the system's own (possibly in-place) realloc.
            // SAFETY: `ptr` was allocated by `System` with `layout` (small layouts pass through
            // unchanged) and `new_size` is non-zero per the `GlobalAlloc` contract.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // Crossing or above the huge-page threshold: allocate, copy, free.
        // SAFETY: `new_layout` is valid and non-zero-sized; the copy reads `min(old, new)` bytes
        // that both blocks own, and they do not overlap (the new block is fresh).
        unsafe {
            let new_ptr = self.alloc(new_layout);
            if !new_ptr.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new_ptr
        }
    }
}

/// Asks the OS to back `[ptr, ptr + len)` with transparent huge pages. Failures are ignored:
/// this is advice, and the memory is usable either way.
#[allow(unsafe_code)]
fn advise_huge_pages(ptr: *mut u8, len: usize) {
    #[cfg(target_os = "linux")]
    // SAFETY: `ptr` is the start of a block of `len` bytes this process just allocated, aligned
    // to a page; MADV_HUGEPAGE changes how the kernel backs the range, never its contents.
    unsafe {
        let _ = libc::madvise(ptr.cast(), len, libc::MADV_HUGEPAGE);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_aligned_buffers_start_on_a_line_and_hold_what_was_copied() {
        let mut b = CacheAligned::<f32>::new();
        for len in [1usize, 15, 16, 17, 1000, 3] {
            let src: Vec<f32> = (0..len).map(|i| i as f32 * 0.5).collect();
            assert_eq!(b.copy_from(&src), &src[..]);
            assert_eq!(b.as_slice().as_ptr().align_offset(64), 0);
        }
        let mut c = CacheAligned::<i8>::new();
        assert_eq!(c.resize(130), &[0i8; 130][..]);
        assert_eq!(c.as_mut_slice().as_ptr().align_offset(64), 0);
    }

    #[test]
    fn large_layouts_get_huge_page_alignment_small_ones_do_not() {
        let small = Layout::from_size_align(HUGE_PAGE - 1, 64).unwrap();
        assert_eq!(HugePageAllocator::system_layout(small), small);
        let large = Layout::from_size_align(HUGE_PAGE, 8).unwrap();
        assert_eq!(HugePageAllocator::system_layout(large).align(), HUGE_PAGE);
        assert_eq!(HugePageAllocator::system_layout(large).size(), HUGE_PAGE);
    }

    #[test]
    fn blocks_hold_their_bytes_through_growth_across_the_threshold() {
        let a = HugePageAllocator;
        let small = Layout::from_size_align(4096, 8).unwrap();
        // SAFETY (test): layouts are non-zero; each pointer is used within its block and freed
        // once with the layout it has at that moment.
        unsafe {
            let p = a.alloc(small);
            assert!(!p.is_null());
            for i in 0..4096 {
                *p.add(i) = (i % 251) as u8;
            }
            let big = a.realloc(p, small, 3 * HUGE_PAGE);
            assert!(!big.is_null());
            assert_eq!(big as usize % HUGE_PAGE, 0);
            for i in 0..4096 {
                assert_eq!(*big.add(i), (i % 251) as u8);
            }
            *big.add(3 * HUGE_PAGE - 1) = 7;
            let big_layout = Layout::from_size_align(3 * HUGE_PAGE, 8).unwrap();
            let back = a.realloc(big, big_layout, 100);
            assert!(!back.is_null());
            assert_eq!(*back.add(99), 99);
            a.dealloc(back, Layout::from_size_align(100, 8).unwrap());
            let z = a.alloc_zeroed(big_layout);
            assert!(!z.is_null() && (0..3 * HUGE_PAGE).step_by(4093).all(|i| *z.add(i) == 0));
            a.dealloc(z, big_layout);
        }
    }

    /// On Linux with THP in `madvise` or `always` mode, a large block is backed by huge pages
    /// once touched (read back from `/proc/self/smaps`). x86-64 only: there a huge page is always
    /// 2 MiB, while aarch64 kernels with 16/64 KiB pages have larger ones (and the aarch64 build
    /// is tested under qemu-user, which does not pass the advice on).
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[test]
    fn large_blocks_are_backed_by_huge_pages_where_the_os_offers_them() {
        let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        if mode.contains("[never]") || mode.is_empty() {
            eprintln!(
                "transparent huge pages are off on this machine ({mode:?}): nothing to check"
            );
            return;
        }
        let a = HugePageAllocator;
        let layout = Layout::from_size_align(8 * HUGE_PAGE, 8).unwrap();
        // SAFETY (test): non-zero layout; written within the block, freed once.
        let p = unsafe { a.alloc(layout) };
        assert!(!p.is_null());
        // SAFETY (test): the block is 8 huge pages long.
        unsafe { std::ptr::write_bytes(p, 1, 8 * HUGE_PAGE) };
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let start = p as usize;
        let mut in_block = false;
        let mut huge_kib = 0u64;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((lo, hi)) = range.split_once('-') {
                    if let (Ok(lo), Ok(hi)) =
                        (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                    {
                        in_block = lo <= start && start < hi;
                        continue;
                    }
                }
            }
            if in_block {
                if let Some(v) = line.strip_prefix("AnonHugePages:") {
                    huge_kib = v.trim().trim_end_matches("kB").trim().parse().unwrap();
                }
            }
        }
        // SAFETY (test): allocated above with this layout.
        unsafe { a.dealloc(p, layout) };
        assert!(
            huge_kib >= 2048,
            "THP is on ({mode:?}) but the 16 MiB block has {huge_kib} KiB in huge pages"
        );
    }
}
