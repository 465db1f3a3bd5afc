//! Typed errors of engine operations.

use cairn_repo::RepoError;

/// Errors from engine operations.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The repository layer failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// A local file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Bad input from the caller (paths, patterns, selectors).
    #[error("{0}")]
    Invalid(String),
    /// No snapshot matched a selector.
    #[error("{0}")]
    NoSnapshot(String),
    /// The operation was interrupted.
    #[error("interrupted")]
    Interrupted,
}

impl EngineError {
    /// Wrap an I/O error with its path.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> EngineError {
        EngineError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

impl From<cairn_repo::backend::BackendError> for EngineError {
    fn from(e: cairn_repo::backend::BackendError) -> Self {
        EngineError::Repo(e.into())
    }
}

/// Result alias of this crate.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
