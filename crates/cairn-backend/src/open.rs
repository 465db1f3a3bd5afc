//! Open a backend from a restic-style location string.

use crate::options::BackendOptions;
use crate::{LocalBackend, layers, rclone, rest, s3, sftp};
use cairn_repo::backend::{Backend, BackendError};
use std::sync::Arc;

/// Location prefixes of remote backends.
pub const REMOTE_SCHEMES: [&str; 4] = ["sftp:", "s3:", "rest:", "rclone:"];

/// Schemes restic knows that Cairn does not support (yet).
const UNSUPPORTED_SCHEMES: [&str; 5] = ["b2:", "azure:", "gs:", "swift:", "smb:"];

/// True for locations served by a remote backend (they get the metadata cache).
pub fn is_remote(location: &str) -> bool {
    REMOTE_SCHEMES.iter().any(|s| location.starts_with(s))
}

/// Open the backend for `location`: `/path`, `local:/path`, `sftp:...`, `s3:...`,
/// `rest:...`, `rclone:...`. Remote backends are wrapped in the retry and limit layers.
pub fn open_backend(
    location: &str,
    opts: &BackendOptions,
) -> Result<Arc<dyn Backend>, BackendError> {
    if let Some(p) = location.strip_prefix("local:") {
        return Ok(Arc::new(LocalBackend::new(p)));
    }
    let remote = if let Some(l) = location.strip_prefix("sftp:") {
        sftp::open(l, opts)?
    } else if let Some(l) = location.strip_prefix("s3:") {
        s3::open(l, opts)?
    } else if let Some(l) = location.strip_prefix("rest:") {
        rest::open(l, opts)?
    } else if let Some(l) = location.strip_prefix("rclone:") {
        rclone::open(l, opts)?
    } else {
        if let Some(s) = UNSUPPORTED_SCHEMES
            .iter()
            .find(|s| location.starts_with(*s))
        {
            return Err(BackendError::Other(format!(
                "repository {location:?}: the {} backend is not supported; use rclone: to reach it",
                s.trim_end_matches(':')
            )));
        }
        return Ok(Arc::new(LocalBackend::new(location)));
    };
    Ok(layers::wrap(remote, opts))
}
