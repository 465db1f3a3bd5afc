//! `--max-size`: a byte quota over the whole data directory (all repositories), like
//! rest-server's. Space is reserved before (declared `Content-Length`) and while (streamed
//! bytes) an upload is written, and given back when an upload fails or a file is deleted.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// The quota state.
#[derive(Debug)]
pub struct Quota {
    max: u64,
    used: AtomicU64,
}

impl Quota {
    /// A quota of `max` bytes with `used` bytes already taken.
    pub fn new(max: u64, used: u64) -> Self {
        Self {
            max,
            used: AtomicU64::new(used),
        }
    }

    /// Tally the regular files below `dir` (blocking; a missing directory counts 0).
    pub fn tally(dir: &Path) -> std::io::Result<u64> {
        let mut total = 0u64;
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let rd = match std::fs::read_dir(&d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for e in rd {
                let e = e?;
                let ft = e.file_type()?;
                if ft.is_dir() {
                    stack.push(e.path());
                } else if ft.is_file() {
                    total = total.saturating_add(e.metadata()?.len());
                }
            }
        }
        Ok(total)
    }

    /// The limit in bytes.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Bytes in use (including reservations of uploads in progress).
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Reserve `n` bytes; false (nothing reserved) if that would exceed the limit.
    pub fn reserve(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|t| *t <= self.max)
            })
            .is_ok()
    }

    /// Give back `n` bytes.
    pub fn release(&self, n: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_and_release() {
        let q = Quota::new(100, 10);
        assert!(q.reserve(90));
        assert!(!q.reserve(1));
        q.release(50);
        assert_eq!(q.used(), 50);
        assert!(q.reserve(50));
        assert!(!q.reserve(u64::MAX));
        q.release(1000);
        assert_eq!(q.used(), 0);
    }

    #[test]
    fn tally_counts_files_only() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::fs::write(d.path().join("a/b/f"), [0u8; 100]).unwrap();
        std::fs::write(d.path().join("g"), [0u8; 23]).unwrap();
        assert_eq!(Quota::tally(d.path()).unwrap(), 123);
        assert_eq!(Quota::tally(&d.path().join("missing")).unwrap(), 0);
    }
}
