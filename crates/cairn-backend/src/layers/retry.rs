//! Retries with exponential backoff for transient backend errors.
//!
//! Transient errors (I/O errors, timeouts, connection resets, HTTP 5xx/408/429, short reads)
//! are retried; permanent ones (not found, already exists, permission denied / HTTP 401/403,
//! invalid requests, a full disk) fail at once. Backends mark HTTP failures with
//! [`status_error`] so that this layer can tell them apart.
//!
//! Every operation is idempotent from the caller's view: a retried write whose first attempt
//! reached the server although its answer was lost is accepted when the file is there with the
//! same content, and a retried remove accepts "not found".

use cairn_repo::Id;
use cairn_repo::backend::{Backend, BackendError, FileType};
use rand::Rng;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// How often and how long to retry.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total (1 = no retries).
    pub attempts: u32,
    /// Delay before the first retry; doubles for every further one.
    pub initial: Duration,
    /// Upper bound of a single delay.
    pub max_delay: Duration,
    /// Randomise delays by ±25 % so that parallel callers do not retry in lockstep.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    /// 10 attempts, 0.5 s doubling up to 15 s (about 75 s in total), with jitter.
    fn default() -> Self {
        RetryPolicy {
            attempts: 10,
            initial: Duration::from_millis(500),
            max_delay: Duration::from_secs(15),
            jitter: true,
        }
    }
}

/// Name of the test-only environment variable overriding the retry policy.
pub const TEST_RETRY_ENV: &str = "CAIRN_TEST_RETRY";

impl RetryPolicy {
    /// The delay before retry number `retry` (1 = the first retry), without jitter.
    pub fn base_delay(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(30);
        let d = self.initial.saturating_mul(1u32 << exp);
        d.min(self.max_delay)
    }

    /// The delay before retry number `retry`, with jitter when enabled.
    pub fn delay(&self, retry: u32) -> Duration {
        let d = self.base_delay(retry);
        if !self.jitter || d.is_zero() {
            return d;
        }
        let f = rand::thread_rng().gen_range(0.75..1.25);
        d.mul_f64(f).min(self.max_delay)
    }

    /// Parse `attempts=N,initial_ms=N,max_ms=N,jitter=0|1` (every key optional; the rest
    /// keeps its default). Used for the test-only [`TEST_RETRY_ENV`] variable.
    pub fn parse(s: &str) -> Result<RetryPolicy, String> {
        let mut p = RetryPolicy::default();
        for part in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: want key=value"))?;
            let n: u64 = v
                .trim()
                .parse()
                .map_err(|_| format!("{part:?}: {v:?} is not a number"))?;
            match k.trim() {
                "attempts" => p.attempts = u32::try_from(n.max(1)).unwrap_or(u32::MAX),
                "initial_ms" => p.initial = Duration::from_millis(n),
                "max_ms" => p.max_delay = Duration::from_millis(n),
                "jitter" => p.jitter = n != 0,
                other => return Err(format!("unknown retry setting {other:?}")),
            }
        }
        Ok(p)
    }

    /// The policy from [`TEST_RETRY_ENV`] if set (test-only), else the default. An invalid
    /// value is reported and ignored.
    pub fn from_env() -> RetryPolicy {
        match std::env::var(TEST_RETRY_ENV) {
            Ok(v) if !v.trim().is_empty() => RetryPolicy::parse(&v).unwrap_or_else(|e| {
                tracing::warn!("ignoring {TEST_RETRY_ENV}: {e}");
                RetryPolicy::default()
            }),
            _ => RetryPolicy::default(),
        }
    }
}

/// The error for an HTTP response with an unexpected status, classified for the retry layer:
/// 404 becomes [`BackendError::NotFound`]; 401/403 `PermissionDenied`, 507 `StorageFull`,
/// 405/411/413/416/501 `InvalidInput` (all permanent); 408, 429, 5xx and anything else are
/// transient. `what` names the request (method and URL), `detail` is the status text.
pub fn status_error(what: &str, status: u16, detail: &str) -> BackendError {
    use io::ErrorKind as K;
    let kind = match status {
        404 => return BackendError::NotFound(what.to_string()),
        401 | 403 => K::PermissionDenied,
        507 => K::StorageFull,
        405 | 411 | 413 | 416 | 501 => K::InvalidInput,
        408 => K::TimedOut,
        _ => K::Other,
    };
    BackendError::Io {
        path: what.to_string(),
        source: io::Error::new(kind, format!("server response {detail}")),
    }
}

/// I/O error kinds that retrying cannot fix.
fn permanent_kind(kind: io::ErrorKind) -> bool {
    use io::ErrorKind as K;
    matches!(
        kind,
        K::NotFound
            | K::PermissionDenied
            | K::AlreadyExists
            | K::InvalidInput
            | K::Unsupported
            | K::StorageFull
            | K::QuotaExceeded
            | K::ReadOnlyFilesystem
            | K::IsADirectory
            | K::NotADirectory
            | K::FileTooLarge
            | K::OutOfMemory
    )
}

/// True if `e` may go away when the operation is repeated. Unclassified errors
/// ([`BackendError::Other`]) count as transient but get at most [`UNCLASSIFIED_ATTEMPTS`]
/// attempts; backends should report transport failures as [`BackendError::Io`] with a fitting
/// kind (and HTTP statuses through [`status_error`]) to get the full policy.
pub fn is_transient(e: &BackendError) -> bool {
    match e {
        BackendError::NotFound(_) | BackendError::AlreadyExists(_) => false,
        BackendError::Io { source, .. } => !permanent_kind(source.kind()),
        BackendError::Other(_) => true,
    }
}

/// Attempts in total for an unclassified ([`BackendError::Other`]) error: a couple of quick
/// retries, so that a permanent failure reported that way does not take the full backoff.
pub const UNCLASSIFIED_ATTEMPTS: u32 = 3;

/// The number of attempts `policy` allows for error `e`.
fn attempts_for(policy: &RetryPolicy, e: &BackendError) -> u32 {
    let all = policy.attempts.max(1);
    match e {
        BackendError::Other(_) => all.min(UNCLASSIFIED_ATTEMPTS),
        _ => all,
    }
}

/// The error after the last attempt: the original one with the number of attempts added.
fn exhausted(e: BackendError, what: &str, attempts: u32) -> BackendError {
    if attempts <= 1 || !is_transient(&e) {
        return e;
    }
    match e {
        BackendError::Io { path, source } => BackendError::Io {
            path,
            source: io::Error::new(
                source.kind(),
                format!("{source} (gave up on {what} after {attempts} attempts)"),
            ),
        },
        other => BackendError::Other(format!(
            "{other} (gave up on {what} after {attempts} attempts)"
        )),
    }
}

/// A transient error for data that did not arrive whole.
fn incomplete(what: &str, msg: String) -> BackendError {
    BackendError::Io {
        path: what.to_string(),
        source: io::Error::new(io::ErrorKind::UnexpectedEof, msg),
    }
}

/// A [`Backend`] that retries the calls of another one, see the module documentation.
#[derive(Debug)]
pub struct RetryBackend {
    inner: Arc<dyn Backend>,
    policy: RetryPolicy,
}

fn describe(t: FileType, name: &str) -> String {
    match t {
        FileType::Config => "config".to_string(),
        _ => format!("{}/{name}", t.dir()),
    }
}

impl RetryBackend {
    /// Wrap `inner`, retrying with `policy`.
    pub fn new(inner: Arc<dyn Backend>, policy: RetryPolicy) -> RetryBackend {
        RetryBackend { inner, policy }
    }

    /// Run `f(attempt)` until it succeeds, fails permanently or the attempts are used up.
    fn run<T>(
        &self,
        what: &str,
        mut f: impl FnMut(u32) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let mut attempt = 1;
        loop {
            match f(attempt) {
                Ok(v) => {
                    if attempt > 1 {
                        tracing::info!("{what} succeeded after {attempt} attempts");
                    }
                    return Ok(v);
                }
                Err(e) if attempt < attempts_for(&self.policy, &e) && is_transient(&e) => {
                    let attempts = attempts_for(&self.policy, &e);
                    let d = self.policy.delay(attempt);
                    tracing::warn!(
                        "{what} failed (attempt {attempt}/{attempts}), retrying in {:.1?}: {e}",
                        d
                    );
                    std::thread::sleep(d);
                    attempt += 1;
                }
                Err(e) => return Err(exhausted(e, what, attempt)),
            }
        }
    }

    /// After a write attempt failed with a permanent error on a retry: whether the file is
    /// there with the content written (the earlier attempt reached the server).
    fn already_written(&self, t: FileType, name: &str, data: &[u8]) -> bool {
        if t == FileType::Config {
            return self
                .inner
                .read(t, name)
                .is_ok_and(|back| back.as_slice() == data);
        }
        // Other files are named by the SHA-256 of their content: the size suffices.
        Id::from_name(name).is_some_and(|id| id == Id::hash(data))
            && self
                .inner
                .stat(t, name)
                .is_ok_and(|n| n == data.len() as u64)
    }
}

impl Backend for RetryBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self) -> Result<(), BackendError> {
        self.run("create repository", |_| self.inner.create())
    }

    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>, BackendError> {
        self.run(&format!("list {}", t.dir()), |_| self.inner.list(t))
    }

    /// Whole files are checked for completeness: files named by their SHA-256 by the hash (and,
    /// only when it does not match, by their size: a stored file that is damaged or not named
    /// by its hash is returned as it is for the caller's checks), the config file by its size.
    /// An incomplete transfer is retried.
    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>, BackendError> {
        let what = format!("read {}", describe(t, name));
        let id = Id::from_name(name).filter(|_| t != FileType::Config);
        self.run(&what, |_| {
            let data = self.inner.read(t, name)?;
            if id.is_some_and(|id| Id::hash(&data) == id) {
                return Ok(data);
            }
            let size = self.inner.stat(t, name)?;
            if size != data.len() as u64 {
                return Err(incomplete(
                    &what,
                    format!("got {} of {size} bytes", data.len()),
                ));
            }
            Ok(data)
        })
    }

    fn read_range(
        &self,
        t: FileType,
        name: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, BackendError> {
        let what = format!("read {} at {offset} (+{len})", describe(t, name));
        self.run(&what, |_| {
            let data = self.inner.read_range(t, name, offset, len)?;
            if data.len() as u64 != len {
                return Err(incomplete(
                    &what,
                    format!("short read: got {} of {len} bytes", data.len()),
                ));
            }
            Ok(data)
        })
    }

    fn stat(&self, t: FileType, name: &str) -> Result<u64, BackendError> {
        self.run(&format!("stat {}", describe(t, name)), |_| {
            self.inner.stat(t, name)
        })
    }

    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<(), BackendError> {
        self.run(&format!("write {}", describe(t, name)), |attempt| {
            match self.inner.write(t, name, data) {
                Ok(()) => Ok(()),
                // A server that refuses overwrites answers a retry of a write that did reach
                // it with "exists"/"forbidden"; accept it when the stored copy is ours.
                Err(e) if attempt > 1 && !is_transient(&e) => {
                    if self.already_written(t, name, data) {
                        Ok(())
                    } else {
                        Err(e)
                    }
                }
                Err(e) => Err(e),
            }
        })
    }

    fn remove(&self, t: FileType, name: &str) -> Result<(), BackendError> {
        self.run(&format!("remove {}", describe(t, name)), |attempt| {
            match self.inner.remove(t, name) {
                // An earlier attempt removed it but its answer was lost.
                Err(e) if attempt > 1 && e.is_not_found() => Ok(()),
                r => r,
            }
        })
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
mod tests;
