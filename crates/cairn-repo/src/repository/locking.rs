//! Repository locks compatible with restic's (`locks/<id>`): acquire with the
//! write / wait 200 ms / re-check protocol, refresh every 5 minutes, remove on drop.

use super::Repository;
use crate::backend::FileType;
use crate::error::LockConflict;
use crate::lock::LockInfo;
use crate::{Id, RepoError, Result};
use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::time::Duration;

/// Shared (backup, restore, read-only commands) or exclusive (prune, forget, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Many holders at once; conflicts only with exclusive locks.
    Shared,
    /// A single holder; conflicts with every other lock.
    Exclusive,
}

/// How often a held lock is rewritten with a new time (restic: every 5 minutes), in ms.
static REFRESH_INTERVAL_MS: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(5 * 60 * 1000);

fn refresh_interval() -> Duration {
    Duration::from_millis(REFRESH_INTERVAL_MS.load(std::sync::atomic::Ordering::Relaxed))
}

type HeldLock = (Arc<dyn crate::backend::Backend>, Arc<Mutex<Id>>);

/// Locks held by this process, so a signal handler can remove them before exiting.
static HELD: Mutex<Vec<HeldLock>> = Mutex::new(Vec::new());

/// Remove every lock file this process holds (for an interrupted run, e.g. on SIGINT).
/// The guards stay valid; dropping them later only logs that the file is gone.
pub fn release_all_locks() {
    for (backend, id) in HELD.lock().drain(..) {
        let id = *id.lock();
        let _ = backend.remove(FileType::Lock, &id.to_hex());
    }
}

/// A held lock; refreshed in the background and removed when dropped.
pub struct LockGuard {
    repo: Arc<Repository>,
    current: Arc<Mutex<Id>>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    refresher: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LockGuard({})", self.current.lock().short())
    }
}

impl Repository {
    fn conflicting_lock(&self, mode: LockMode, own: Option<&Id>) -> Result<Option<LockInfo>> {
        for id in self.list_ids(FileType::Lock)? {
            if Some(&id) == own {
                continue;
            }
            let info = match self
                .load_unpacked(FileType::Lock, &id)
                .and_then(|j| LockInfo::from_json(&j))
            {
                Ok(i) => i,
                Err(e) => {
                    // A lock removed meanwhile or an unreadable one: restic 0.14 ignores it.
                    tracing::debug!("ignoring lock {}: {e}", id.short());
                    continue;
                }
            };
            if mode == LockMode::Exclusive || info.exclusive {
                return Ok(Some(info));
            }
        }
        Ok(None)
    }

    fn write_lock(&self, mode: LockMode) -> Result<Id> {
        let info = LockInfo::new(mode == LockMode::Exclusive);
        self.save_unpacked(FileType::Lock, &info.to_json())
    }

    /// Take a lock, retrying conflicts until `retry` has passed (restic's `--retry-lock`).
    pub fn lock(self: &Arc<Self>, mode: LockMode, retry: Duration) -> Result<LockGuard> {
        let start = std::time::Instant::now();
        let mut delay = Duration::from_secs(5);
        loop {
            match self.try_lock(mode) {
                Err(RepoError::Locked(c)) if start.elapsed() + delay <= retry => {
                    tracing::info!("{c}; retrying in {}s", delay.as_secs());
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(60));
                }
                r => return r,
            }
        }
    }

    fn try_lock(self: &Arc<Self>, mode: LockMode) -> Result<LockGuard> {
        let to_conflict = |i: LockInfo| {
            RepoError::Locked(Box::new(LockConflict {
                how: if i.exclusive { "exclusively " } else { "" },
                pid: i.pid,
                host: i.hostname,
                user: i.username,
                time: i.time,
            }))
        };
        if let Some(i) = self.conflicting_lock(mode, None)? {
            return Err(to_conflict(i));
        }
        let id = self.write_lock(mode)?;
        std::thread::sleep(self.backend.lock_settle_time());
        if let Some(i) = self.conflicting_lock(mode, Some(&id))? {
            let _ = self.backend.remove(FileType::Lock, &id.to_hex());
            return Err(to_conflict(i));
        }
        let current = Arc::new(Mutex::new(id));
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let refresher = {
            let repo = Arc::clone(self);
            let current = Arc::clone(&current);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("lock-refresh".into())
                .spawn(move || {
                    loop {
                        {
                            let mut stopped = stop.0.lock();
                            if !*stopped {
                                stop.1.wait_for(&mut stopped, refresh_interval());
                            }
                            if *stopped {
                                return;
                            }
                        }
                        match repo.write_lock(mode) {
                            Ok(new) => {
                                let old = std::mem::replace(&mut *current.lock(), new);
                                let _ = repo.backend.remove(FileType::Lock, &old.to_hex());
                            }
                            Err(e) => tracing::warn!("refreshing lock failed: {e}"),
                        }
                    }
                })
                .ok()
        };
        HELD.lock()
            .push((Arc::clone(&self.backend), Arc::clone(&current)));
        Ok(LockGuard {
            repo: Arc::clone(self),
            current,
            stop,
            refresher,
        })
    }

    /// Remove stale locks (or all with `all`); returns how many were removed.
    pub fn unlock(&self, all: bool) -> Result<usize> {
        let now = chrono::Local::now().fixed_offset();
        let mut removed = 0;
        for id in self.list_ids(FileType::Lock)? {
            let stale = match self
                .load_unpacked(FileType::Lock, &id)
                .and_then(|j| LockInfo::from_json(&j))
            {
                Ok(i) => i.is_stale(now),
                Err(_) => true,
            };
            if all || stale {
                self.backend.remove(FileType::Lock, &id.to_hex())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        if let Some(h) = self.refresher.take() {
            let _ = h.join();
        }
        HELD.lock().retain(|(_, c)| !Arc::ptr_eq(c, &self.current));
        let id = *self.current.lock();
        if let Err(e) = self.repo.backend.remove(FileType::Lock, &id.to_hex()) {
            tracing::warn!("removing lock {}: {e}", id.short());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_locks_are_refreshed_and_removed_on_drop() {
        REFRESH_INTERVAL_MS.store(100, std::sync::atomic::Ordering::Relaxed);
        let repo = Arc::new(super::super::test_support::test_repo());
        let guard = repo.lock(LockMode::Shared, Duration::ZERO).unwrap();
        let first = *guard.current.lock();
        let first_info =
            LockInfo::from_json(&repo.load_unpacked(FileType::Lock, &first).unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(450));
        let ids = repo.list_ids(FileType::Lock).unwrap();
        assert_eq!(ids.len(), 1, "the old lock file is removed after a refresh");
        assert_ne!(ids[0], first, "the lock was rewritten");
        let info =
            LockInfo::from_json(&repo.load_unpacked(FileType::Lock, &ids[0]).unwrap()).unwrap();
        assert!(info.parsed_time() > first_info.parsed_time());
        // A shared lock lets another shared lock in, but not an exclusive one.
        let other = repo.lock(LockMode::Shared, Duration::ZERO).unwrap();
        assert!(matches!(
            repo.lock(LockMode::Exclusive, Duration::ZERO),
            Err(RepoError::Locked(_))
        ));
        drop(other);
        drop(guard);
        assert!(repo.list_ids(FileType::Lock).unwrap().is_empty());
        let ex = repo.lock(LockMode::Exclusive, Duration::ZERO).unwrap();
        assert!(matches!(
            repo.lock(LockMode::Shared, Duration::ZERO),
            Err(RepoError::Locked(_))
        ));
        drop(ex);
    }
}
