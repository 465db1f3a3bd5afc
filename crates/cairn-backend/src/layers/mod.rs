//! Layers around any backend: retries with backoff, connection and bandwidth limits, and
//! fault injection for tests.
//!
//! [`wrap`] stacks them as `retry → limit → (faults) → backend`: every attempt of the retry
//! layer takes a connection permit and bandwidth tokens; injected faults sit closest to the
//! backend so that the retry layer sees them like real network errors.

pub mod faulty;
pub mod limit;
pub mod retry;

use crate::open::REMOTE_SCHEMES;
use crate::options::BackendOptions;
use cairn_repo::backend::Backend;
use std::sync::Arc;

pub use faulty::{FaultConfig, FaultyBackend};
pub use limit::LimitBackend;
pub use retry::{RetryBackend, RetryPolicy, is_transient, status_error};

/// Default number of concurrent calls per backend (restic's `<backend>.connections`).
pub const DEFAULT_CONNECTIONS: usize = 5;

/// The `<scheme>.connections` option for `inner`: the scheme is taken from the start of its
/// location (`rest:`, `sftp:`, `s3:`, `rclone:`); if the location carries none, the only
/// `*.connections` option of a remote scheme that was given, else the default of 5.
pub fn connections(inner: &dyn Backend, opts: &BackendOptions) -> Result<usize, String> {
    let loc = inner.location();
    let key_of = |s: &str| format!("{}.connections", s.trim_end_matches(':'));
    let key = match REMOTE_SCHEMES.iter().find(|s| loc.starts_with(*s)) {
        Some(s) => Some(key_of(s)),
        None => {
            let given: Vec<String> = REMOTE_SCHEMES
                .iter()
                .map(|s| key_of(s))
                .filter(|k| opts.get(k).is_some())
                .collect();
            match given.as_slice() {
                [one] => Some(one.clone()),
                _ => None,
            }
        }
    };
    match key {
        Some(k) => match opts.get_u64(&k)? {
            Some(0) => Err(format!("option {k}: must be at least 1")),
            Some(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
            None => Ok(DEFAULT_CONNECTIONS),
        },
        None => Ok(DEFAULT_CONNECTIONS),
    }
}

/// Wrap a remote backend in the shared layers configured by `opts`: retries with
/// exponential backoff, at most `<scheme>.connections` concurrent calls (default 5), and the
/// `--limit-upload` / `--limit-download` rates.
///
/// Test-only: `CAIRN_TEST_FAULTS` (see [`faulty::TEST_FAULTS_ENV`]) puts a fault-injecting
/// layer in front of the backend and `CAIRN_TEST_RETRY` (see [`retry::TEST_RETRY_ENV`])
/// shortens the retry delays. Neither is meant for normal use.
pub fn wrap(inner: Arc<dyn Backend>, opts: &BackendOptions) -> Arc<dyn Backend> {
    let conns = connections(inner.as_ref(), opts).unwrap_or_else(|e| {
        tracing::warn!("{e}; using {DEFAULT_CONNECTIONS} connections");
        DEFAULT_CONNECTIONS
    });
    let mut b = inner;
    match FaultConfig::from_env() {
        Some(Ok(cfg)) => {
            tracing::warn!(
                "{}: injecting faults for testing ({cfg:?})",
                faulty::TEST_FAULTS_ENV
            );
            b = Arc::new(FaultyBackend::new(b, cfg));
        }
        Some(Err(e)) => tracing::warn!("ignoring {}: {e}", faulty::TEST_FAULTS_ENV),
        None => {}
    }
    let limited = LimitBackend::new(b, conns, opts.limit_upload_kib, opts.limit_download_kib);
    Arc::new(RetryBackend::new(
        Arc::new(limited),
        RetryPolicy::from_env(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[&str]) -> BackendOptions {
        BackendOptions {
            values: BackendOptions::parse_pairs(pairs.iter().copied()).unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn connections_option() {
        let dir = tempfile::tempdir().unwrap();
        let local = crate::LocalBackend::new(dir.path());
        assert_eq!(connections(&local, &opts(&[])).unwrap(), 5);
        // A location without a scheme: the one remote option given applies.
        assert_eq!(
            connections(&local, &opts(&["rest.connections=8"])).unwrap(),
            8
        );
        assert_eq!(
            connections(&local, &opts(&["rest.connections=8", "s3.connections=2"])).unwrap(),
            5
        );
        assert!(connections(&local, &opts(&["rest.connections=0"])).is_err());
        assert!(connections(&local, &opts(&["rest.connections=x"])).is_err());
    }
}
