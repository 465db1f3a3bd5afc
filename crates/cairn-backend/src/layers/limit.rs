//! Connection and bandwidth limits: at most N calls in flight (restic's `<backend>.connections`)
//! and `--limit-upload` / `--limit-download` in KiB/s, shared by all threads.

use cairn_repo::backend::{Backend, BackendError, FileType};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Lock a mutex, ignoring poisoning (the protected counters stay consistent).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A counting semaphore: at most `permits` holders at once.
#[derive(Debug)]
pub struct Semaphore {
    free: Mutex<usize>,
    cv: Condvar,
}

/// A held permit; released on drop.
#[derive(Debug)]
pub struct Permit<'a>(&'a Semaphore);

impl Semaphore {
    /// A semaphore with `permits` permits (at least one).
    pub fn new(permits: usize) -> Semaphore {
        Semaphore {
            free: Mutex::new(permits.max(1)),
            cv: Condvar::new(),
        }
    }

    /// Permits free right now.
    pub fn available(&self) -> usize {
        *lock(&self.free)
    }

    /// Wait for a permit.
    pub fn acquire(&self) -> Permit<'_> {
        let mut free = lock(&self.free);
        while *free == 0 {
            free = self.cv.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *lock(&self.0.free) += 1;
        self.0.cv.notify_one();
    }
}

/// A token bucket for bytes: `rate` bytes per second with a burst of one second's worth.
/// Callers reserve their bytes and sleep off any debt, so the long-run rate over all threads
/// is `rate` however large single transfers are.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    /// Available tokens (negative: debt that callers are sleeping off) and their time.
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A full bucket for `bytes_per_sec` (at least 1).
    pub fn new(bytes_per_sec: u64) -> TokenBucket {
        Self::new_at(bytes_per_sec, Instant::now())
    }

    /// A full bucket whose clock starts at `now` (tests drive the clock by hand).
    pub fn new_at(bytes_per_sec: u64, now: Instant) -> TokenBucket {
        let rate = bytes_per_sec.max(1) as f64;
        TokenBucket {
            rate,
            burst: rate,
            state: Mutex::new((rate, now)),
        }
    }

    /// Take `n` bytes' worth of tokens at time `now`; returns how long the caller must wait
    /// before transferring them.
    pub fn reserve_at(&self, n: u64, now: Instant) -> Duration {
        let mut st = lock(&self.state);
        let elapsed = now.saturating_duration_since(st.1).as_secs_f64();
        let tokens = (st.0 + elapsed * self.rate).min(self.burst) - n as f64;
        *st = (tokens, now.max(st.1));
        if tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-tokens / self.rate)
        }
    }

    /// Take `n` bytes' worth of tokens, sleeping as long as needed.
    pub fn take(&self, n: u64) {
        let d = self.reserve_at(n, Instant::now());
        if !d.is_zero() {
            std::thread::sleep(d);
        }
    }
}

/// A [`Backend`] that limits concurrent calls and transfer rates of another one.
#[derive(Debug)]
pub struct LimitBackend {
    inner: Arc<dyn Backend>,
    connections: Semaphore,
    upload: Option<TokenBucket>,
    download: Option<TokenBucket>,
}

fn bucket(kib: Option<u64>) -> Option<TokenBucket> {
    kib.filter(|&k| k > 0)
        .map(|k| TokenBucket::new(k.saturating_mul(1024)))
}

impl LimitBackend {
    /// Wrap `inner`: at most `connections` calls at once, uploads and downloads limited to
    /// the given KiB/s (`None` or 0: unlimited).
    pub fn new(
        inner: Arc<dyn Backend>,
        connections: usize,
        upload_kib: Option<u64>,
        download_kib: Option<u64>,
    ) -> LimitBackend {
        LimitBackend {
            inner,
            connections: Semaphore::new(connections),
            upload: bucket(upload_kib),
            download: bucket(download_kib),
        }
    }

    fn downloaded(&self, r: Result<Vec<u8>, BackendError>) -> Result<Vec<u8>, BackendError> {
        if let (Ok(data), Some(b)) = (&r, &self.download) {
            b.take(data.len() as u64);
        }
        r
    }
}

impl Backend for LimitBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self) -> Result<(), BackendError> {
        let _p = self.connections.acquire();
        self.inner.create()
    }

    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>, BackendError> {
        let _p = self.connections.acquire();
        self.inner.list(t)
    }

    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>, BackendError> {
        let r = {
            let _p = self.connections.acquire();
            self.inner.read(t, name)
        };
        self.downloaded(r)
    }

    fn read_range(
        &self,
        t: FileType,
        name: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, BackendError> {
        let r = {
            let _p = self.connections.acquire();
            self.inner.read_range(t, name, offset, len)
        };
        self.downloaded(r)
    }

    fn stat(&self, t: FileType, name: &str) -> Result<u64, BackendError> {
        let _p = self.connections.acquire();
        self.inner.stat(t, name)
    }

    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<(), BackendError> {
        if let Some(b) = &self.upload {
            b.take(data.len() as u64);
        }
        let _p = self.connections.acquire();
        self.inner.write(t, name, data)
    }

    fn remove(&self, t: FileType, name: &str) -> Result<(), BackendError> {
        let _p = self.connections.acquire();
        self.inner.remove(t, name)
    }

    fn wants_tree_packs(&self) -> bool {
        self.inner.wants_tree_packs()
    }

    fn hint_tree_packs(&self, packs: &[String]) {
        self.inner.hint_tree_packs(packs)
    }

    fn lock_settle_time(&self) -> Duration {
        self.inner.lock_settle_time()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn bucket_allows_a_burst_then_paces() {
        let t0 = Instant::now();
        let b = TokenBucket::new_at(1000, t0);
        // A full bucket: one second's worth passes at once.
        assert_eq!(b.reserve_at(1000, t0), Duration::ZERO);
        // Then 500 bytes cost half a second.
        assert_eq!(b.reserve_at(500, t0), Duration::from_millis(500));
        // Another caller at the same instant queues behind the debt.
        assert_eq!(b.reserve_at(500, t0), Duration::from_secs(1));
        // Two seconds later the debt (1000) is paid off and 1000 tokens are back... but the
        // bucket holds at most one second's worth.
        let t2 = t0 + Duration::from_secs(2);
        assert_eq!(b.reserve_at(0, t2), Duration::ZERO);
        let t5 = t0 + Duration::from_secs(5);
        assert_eq!(b.reserve_at(1000, t5), Duration::ZERO);
        let d = b.reserve_at(1, t5);
        assert!(
            d > Duration::from_micros(990) && d < Duration::from_micros(1010),
            "{d:?}"
        );
    }

    #[test]
    fn bucket_handles_transfers_larger_than_the_burst() {
        let t0 = Instant::now();
        let b = TokenBucket::new_at(100, t0);
        // 1000 bytes at 100 B/s with 100 in the bucket: 9 s of debt.
        assert_eq!(b.reserve_at(1000, t0), Duration::from_secs(9));
        // The long-run rate holds: 9 s later the next byte still waits for refill.
        let t9 = t0 + Duration::from_secs(9);
        assert_eq!(b.reserve_at(100, t9), Duration::from_secs(1));
    }

    #[test]
    fn bucket_ignores_time_going_backwards() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let b = TokenBucket::new_at(10, t0);
        assert_eq!(b.reserve_at(10, t0), Duration::ZERO);
        // An earlier instant (another thread's stale clock reading) adds no tokens.
        assert_eq!(
            b.reserve_at(5, t0 - Duration::from_secs(5)),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn bucket_paces_real_time() {
        // 64 KiB/s, 96 KiB: the first 64 KiB pass, the rest waits ~0.5 s.
        let b = TokenBucket::new(64 * 1024);
        let start = Instant::now();
        b.take(64 * 1024);
        b.take(32 * 1024);
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(450), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }

    /// A backend counting calls in flight.
    #[derive(Debug, Default)]
    struct Counting {
        now: AtomicUsize,
        max: AtomicUsize,
    }

    impl Backend for Counting {
        fn location(&self) -> String {
            "counting".into()
        }
        fn create(&self) -> Result<(), BackendError> {
            Ok(())
        }
        fn list(&self, _t: FileType) -> Result<Vec<(String, u64)>, BackendError> {
            Ok(vec![])
        }
        fn read(&self, _t: FileType, _n: &str) -> Result<Vec<u8>, BackendError> {
            Ok(vec![])
        }
        fn read_range(
            &self,
            _t: FileType,
            _n: &str,
            _o: u64,
            _l: u64,
        ) -> Result<Vec<u8>, BackendError> {
            Ok(vec![])
        }
        fn stat(&self, _t: FileType, _n: &str) -> Result<u64, BackendError> {
            let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.max.fetch_max(n, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            self.now.fetch_sub(1, Ordering::SeqCst);
            Ok(0)
        }
        fn write(&self, _t: FileType, _n: &str, _d: &[u8]) -> Result<(), BackendError> {
            Ok(())
        }
        fn remove(&self, _t: FileType, _n: &str) -> Result<(), BackendError> {
            Ok(())
        }
    }

    #[test]
    fn connection_limit_holds() {
        let inner = Arc::new(Counting::default());
        let b = LimitBackend::new(inner.clone(), 3, None, None);
        std::thread::scope(|s| {
            for _ in 0..12 {
                s.spawn(|| {
                    for _ in 0..3 {
                        b.stat(FileType::Pack, "x").unwrap();
                    }
                });
            }
        });
        assert_eq!(inner.max.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn upload_limit_paces_writes() {
        let b = LimitBackend::new(Arc::new(Counting::default()), 5, Some(100), None);
        let start = Instant::now();
        // 100 KiB/s: 100 KiB pass at once, the next 50 KiB wait about half a second.
        b.write(FileType::Pack, "x", &vec![0; 100 * 1024]).unwrap();
        b.write(FileType::Pack, "y", &vec![0; 50 * 1024]).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(450));
    }
}
