//! Typed errors of the repository layer.

use crate::backend::BackendError;

/// Errors from reading or writing a repository.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The storage layer failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// No repository (no `config` file) at the location.
    #[error("repository does not exist at {0}: run `cairn init` to create it")]
    NoRepository(String),
    /// A repository already exists where `init` was asked to create one.
    #[error("repository already exists at {0}")]
    AlreadyExists(String),
    /// None of the key files opened with the given password.
    #[error("wrong password or no key found")]
    WrongPassword,
    /// A file or blob failed authentication, decoding or parsing.
    #[error("{what}: {msg}")]
    Corrupt {
        /// Which file or blob (type and id).
        what: String,
        /// What is wrong with it.
        msg: String,
    },
    /// A blob is referenced but not present in the index.
    #[error("blob {0} not found in index")]
    BlobNotFound(String),
    /// Unsupported feature or version.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The repository is locked by someone else.
    #[error(transparent)]
    Locked(Box<LockConflict>),
    /// Invalid argument passed by the caller.
    #[error("invalid argument: {0}")]
    Invalid(String),
}

impl RepoError {
    /// Shorthand for a [`RepoError::Corrupt`].
    pub fn corrupt(what: impl Into<String>, msg: impl std::fmt::Display) -> RepoError {
        RepoError::Corrupt {
            what: what.into(),
            msg: msg.to_string(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = RepoError> = std::result::Result<T, E>;

/// Error kind for lock conflicts (mapped to exit code 11 by the CLI).
#[derive(Debug, thiserror::Error)]
#[error(
    "repository is already locked {how}by PID {pid} on {host} by {user} (since {time}); if it is stale, remove it with `cairn unlock`"
)]
pub struct LockConflict {
    /// "exclusively " or "".
    pub how: &'static str,
    /// Holder process id.
    pub pid: u32,
    /// Holder host.
    pub host: String,
    /// Holder user.
    pub user: String,
    /// Lock time.
    pub time: String,
}
