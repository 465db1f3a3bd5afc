//! Fault injection for tests: a [`Backend`] that fails a share of calls, returns short reads
//! or stalls, driven by a seeded random generator.
//!
//! Failures are transient I/O errors (`ConnectionReset`); half of them happen before the call
//! reaches the wrapped backend and half after it (the operation took effect but its answer was
//! "lost"), which is what the retry layer has to cope with. The CLI enables this layer only
//! through the test-only environment variable [`TEST_FAULTS_ENV`].

use cairn_repo::backend::{Backend, BackendError, FileType};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Test-only environment variable enabling fault injection for remote backends, e.g.
/// `CAIRN_TEST_FAULTS="fail=0.2,short=0.1,stall_ms=50,seed=1"`.
pub const TEST_FAULTS_ENV: &str = "CAIRN_TEST_FAULTS";

/// What to inject.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// Share of calls (0..=1) that fail with a transient error.
    pub fail: f64,
    /// Share of successful reads (0..=1) that return fewer bytes than asked for.
    pub short: f64,
    /// Share of calls (0..=1) that stall for [`FaultConfig::stall_time`] first.
    pub stall: f64,
    /// How long a stall lasts.
    pub stall_time: Duration,
    /// Seed of the random generator.
    pub seed: u64,
}

impl Default for FaultConfig {
    /// No faults.
    fn default() -> Self {
        FaultConfig {
            fail: 0.0,
            short: 0.0,
            stall: 0.0,
            stall_time: Duration::from_millis(50),
            seed: 0,
        }
    }
}

fn share(k: &str, v: &str) -> Result<f64, String> {
    let x: f64 = v.parse().map_err(|_| format!("{k}={v:?}: not a number"))?;
    if !(0.0..=1.0).contains(&x) {
        return Err(format!("{k}={v}: must be between 0 and 1"));
    }
    Ok(x)
}

impl FaultConfig {
    /// Parse `fail=P,short=P,stall=P,stall_ms=N,seed=N` (every key optional). Giving
    /// `stall_ms` without `stall` stalls 10 % of the calls.
    pub fn parse(s: &str) -> Result<FaultConfig, String> {
        let mut c = FaultConfig::default();
        let mut stall_given = false;
        let mut stall_ms_given = false;
        for part in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: want key=value"))?;
            let (k, v) = (k.trim(), v.trim());
            let num = || {
                v.parse::<u64>()
                    .map_err(|_| format!("{k}={v:?}: not a number"))
            };
            match k {
                "fail" => c.fail = share(k, v)?,
                "short" => c.short = share(k, v)?,
                "stall" => {
                    c.stall = share(k, v)?;
                    stall_given = true;
                }
                "stall_ms" => {
                    c.stall_time = Duration::from_millis(num()?);
                    stall_ms_given = true;
                }
                "seed" => c.seed = num()?,
                other => return Err(format!("unknown fault setting {other:?}")),
            }
        }
        if stall_ms_given && !stall_given {
            c.stall = 0.1;
        }
        Ok(c)
    }

    /// The configuration from [`TEST_FAULTS_ENV`], if set.
    pub fn from_env() -> Option<Result<FaultConfig, String>> {
        std::env::var(TEST_FAULTS_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| FaultConfig::parse(&v))
    }
}

/// Counts of injected faults.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FaultCounts {
    /// Calls that failed.
    pub failed: u64,
    /// Reads that returned fewer bytes.
    pub short: u64,
    /// Calls that stalled.
    pub stalled: u64,
}

/// A [`Backend`] injecting faults into the calls of another one.
#[derive(Debug)]
pub struct FaultyBackend {
    inner: Arc<dyn Backend>,
    config: FaultConfig,
    rng: Mutex<StdRng>,
    failed: AtomicU64,
    short: AtomicU64,
    stalled: AtomicU64,
}

/// Where an injected failure happens.
enum Failure {
    /// Before the call reaches the wrapped backend.
    Before,
    /// After the call took effect (its answer is lost).
    After,
}

impl FaultyBackend {
    /// Wrap `inner`, injecting faults as configured.
    pub fn new(inner: Arc<dyn Backend>, config: FaultConfig) -> FaultyBackend {
        FaultyBackend {
            inner,
            rng: Mutex::new(StdRng::seed_from_u64(config.seed)),
            config,
            failed: AtomicU64::new(0),
            short: AtomicU64::new(0),
            stalled: AtomicU64::new(0),
        }
    }

    /// How many faults were injected so far.
    pub fn counts(&self) -> FaultCounts {
        FaultCounts {
            failed: self.failed.load(Ordering::Relaxed),
            short: self.short.load(Ordering::Relaxed),
            stalled: self.stalled.load(Ordering::Relaxed),
        }
    }

    fn chance(&self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        rng.gen_bool(p.min(1.0))
    }

    /// Stall maybe, then decide whether and where this call fails.
    fn before_call(&self) -> Option<Failure> {
        if self.chance(self.config.stall) {
            self.stalled.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(self.config.stall_time);
        }
        if !self.chance(self.config.fail) {
            return None;
        }
        self.failed.fetch_add(1, Ordering::Relaxed);
        Some(if self.chance(0.5) {
            Failure::Before
        } else {
            Failure::After
        })
    }

    fn fault(what: String) -> BackendError {
        BackendError::Io {
            path: what,
            source: io::Error::new(io::ErrorKind::ConnectionReset, "injected fault"),
        }
    }

    /// Run `f` with injected failures.
    fn call<T>(
        &self,
        what: impl FnOnce() -> String,
        f: impl FnOnce() -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        match self.before_call() {
            None => f(),
            Some(Failure::Before) => Err(Self::fault(what())),
            Some(Failure::After) => {
                let _ = f();
                Err(Self::fault(what()))
            }
        }
    }

    /// Maybe cut a successful read short (by at least one byte).
    fn maybe_short(&self, data: Vec<u8>) -> Vec<u8> {
        let mut data = data;
        if !data.is_empty() && self.chance(self.config.short) {
            let keep = {
                let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
                rng.gen_range(0..data.len())
            };
            data.truncate(keep);
            self.short.fetch_add(1, Ordering::Relaxed);
        }
        data
    }
}

fn name_of(t: FileType, name: &str) -> String {
    format!("{}/{name} (fault injection)", t.dir())
}

impl Backend for FaultyBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self) -> Result<(), BackendError> {
        self.inner.create()
    }

    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>, BackendError> {
        self.call(|| name_of(t, ""), || self.inner.list(t))
    }

    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>, BackendError> {
        let data = self.call(|| name_of(t, name), || self.inner.read(t, name))?;
        Ok(self.maybe_short(data))
    }

    fn read_range(
        &self,
        t: FileType,
        name: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, BackendError> {
        let data = self.call(
            || name_of(t, name),
            || self.inner.read_range(t, name, offset, len),
        )?;
        Ok(self.maybe_short(data))
    }

    fn stat(&self, t: FileType, name: &str) -> Result<u64, BackendError> {
        self.call(|| name_of(t, name), || self.inner.stat(t, name))
    }

    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<(), BackendError> {
        self.call(|| name_of(t, name), || self.inner.write(t, name, data))
    }

    fn remove(&self, t: FileType, name: &str) -> Result<(), BackendError> {
        self.call(|| name_of(t, name), || self.inner.remove(t, name))
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

    #[test]
    fn parse_settings() {
        let c = FaultConfig::parse("fail=0.2,short=0.1,stall_ms=50,seed=1").unwrap();
        assert_eq!(c.fail, 0.2);
        assert_eq!(c.short, 0.1);
        assert_eq!(c.stall, 0.1);
        assert_eq!(c.stall_time, Duration::from_millis(50));
        assert_eq!(c.seed, 1);
        let c = FaultConfig::parse("stall=0.5").unwrap();
        assert_eq!((c.stall, c.fail), (0.5, 0.0));
        assert_eq!(FaultConfig::parse("").unwrap(), FaultConfig::default());
        assert!(FaultConfig::parse("fail=2").is_err());
        assert!(FaultConfig::parse("fail").is_err());
        assert!(FaultConfig::parse("boom=1").is_err());
        assert!(FaultConfig::parse("seed=x").is_err());
    }

    #[test]
    fn injects_about_the_configured_share() {
        let dir = tempfile::tempdir().unwrap();
        let local = Arc::new(crate::LocalBackend::new(dir.path()));
        local.create().unwrap();
        let name = "ab".repeat(32);
        local.write(FileType::Pack, &name, &[7u8; 1000]).unwrap();
        let f = FaultyBackend::new(
            local,
            FaultConfig {
                fail: 0.3,
                short: 0.2,
                seed: 42,
                ..Default::default()
            },
        );
        let (mut errors, mut short) = (0, 0);
        for _ in 0..1000 {
            match f.read_range(FileType::Pack, &name, 0, 1000) {
                Err(e) => {
                    assert!(crate::layers::retry::is_transient(&e), "{e}");
                    errors += 1;
                }
                Ok(d) if d.len() < 1000 => short += 1,
                Ok(d) => assert_eq!(d, vec![7u8; 1000]),
            }
        }
        assert!((200..400).contains(&errors), "{errors} failures");
        assert!((80..220).contains(&short), "{short} short reads");
        let c = f.counts();
        assert_eq!((c.failed, c.short), (errors, short));
    }
}
