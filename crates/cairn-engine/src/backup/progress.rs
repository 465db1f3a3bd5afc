//! Live progress counters of a backup, polled by the caller (the CLI draws bars from them),
//! and the scanner that counts what is to be backed up so an ETA can be computed.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Counters updated by the archiver and the scanner; read with [`BackupProgress::snapshot`].
#[derive(Debug, Default)]
pub struct BackupProgress {
    files_done: AtomicU64,
    dirs_done: AtomicU64,
    bytes_done: AtomicU64,
    total_files: AtomicU64,
    total_bytes: AtomicU64,
    errors: AtomicU64,
    scan_finished: AtomicBool,
    current: Mutex<Vec<String>>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Default, Clone)]
pub struct ProgressSnapshot {
    /// Files processed so far.
    pub files_done: u64,
    /// Directories processed so far.
    pub dirs_done: u64,
    /// Bytes of files processed so far (read or unchanged).
    pub bytes_done: u64,
    /// Files found by the scanner.
    pub total_files: u64,
    /// Bytes found by the scanner.
    pub total_bytes: u64,
    /// Errors (warnings) so far.
    pub errors: u64,
    /// True once the scanner finished (totals are final).
    pub scan_finished: bool,
    /// Files being read right now.
    pub current: Vec<String>,
}

impl BackupProgress {
    /// Read all counters.
    pub fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            files_done: self.files_done.load(Ordering::Relaxed),
            dirs_done: self.dirs_done.load(Ordering::Relaxed),
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
            total_files: self.total_files.load(Ordering::Relaxed),
            total_bytes: self.total_bytes.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            scan_finished: self.scan_finished.load(Ordering::Relaxed),
            current: self.current.lock().clone(),
        }
    }

    pub(crate) fn file_done(&self, bytes: u64) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn bytes(&self, bytes: u64) {
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn file_finished(&self) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dir_done(&self) {
        self.dirs_done.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn scanned(&self, files: u64, bytes: u64) {
        self.total_files.fetch_add(files, Ordering::Relaxed);
        self.total_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn scan_done(&self) {
        self.scan_finished.store(true, Ordering::Relaxed);
    }

    pub(crate) fn start_file(&self, name: &str) {
        let mut c = self.current.lock();
        if c.len() < 8 {
            c.push(name.to_string());
        }
    }

    pub(crate) fn end_file(&self, name: &str) {
        let mut c = self.current.lock();
        if let Some(i) = c.iter().position(|n| n == name) {
            c.swap_remove(i);
        }
    }
}
