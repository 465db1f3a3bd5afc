//! A counting global allocator, so targets can assert that decoding allocates at most a
//! small multiple of its input (or a documented cap).
//!
//! Only allocations made through Rust's global allocator are seen (C code such as libzstd
//! allocates with `malloc` directly; libFuzzer's `-malloc_limit_mb` covers those).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The global allocator of every fuzz binary: `System`, with byte counters.
pub struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn add(n: usize) {
    let now = CURRENT.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn sub(n: usize) {
    CURRENT.fetch_sub(n, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to `System`; the counters are side bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            add(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        sub(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Count the new block before releasing the old one: a moving realloc briefly
            // holds both.
            add(new_size);
            sub(layout.size());
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns its result with the peak number of bytes it had allocated at once
/// on top of what was live before (fuzz targets are single-threaded).
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let r = f();
    let peak = PEAK.load(Ordering::Relaxed);
    (r, peak.saturating_sub(base))
}

/// Panics (a fuzz finding) if `f` allocated more than `factor × input_len + slack` bytes.
pub fn bounded<R>(
    what: &str,
    input_len: usize,
    factor: usize,
    slack: usize,
    f: impl FnOnce() -> R,
) -> R {
    let (r, peak) = measure(f);
    let limit = input_len.saturating_mul(factor).saturating_add(slack);
    assert!(
        peak <= limit,
        "{what}: allocated {peak} bytes for {input_len} input bytes (limit {factor}×input + {slack} = {limit})"
    );
    r
}
