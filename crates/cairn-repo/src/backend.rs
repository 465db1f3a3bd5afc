//! The storage abstraction: a flat namespace of immutable files grouped by type.
//! Implementations live in `cairn-backend`.

use std::fmt;

/// The kind of repository file; selects the directory it lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileType {
    /// The `config` file (name is always `config`).
    Config,
    /// `keys/<id>`.
    Key,
    /// `locks/<id>`.
    Lock,
    /// `snapshots/<id>`.
    Snapshot,
    /// `index/<id>`.
    Index,
    /// `data/<xx>/<id>`.
    Pack,
}

impl FileType {
    /// Directory name in the repository layout (`""` for config).
    pub fn dir(self) -> &'static str {
        match self {
            FileType::Config => "",
            FileType::Key => "keys",
            FileType::Lock => "locks",
            FileType::Snapshot => "snapshots",
            FileType::Index => "index",
            FileType::Pack => "data",
        }
    }

    /// Singular name for messages (`snapshot`, `pack`, ...).
    pub fn name(self) -> &'static str {
        match self {
            FileType::Config => "config",
            FileType::Key => "key",
            FileType::Lock => "lock",
            FileType::Snapshot => "snapshot",
            FileType::Index => "index",
            FileType::Pack => "pack",
        }
    }

    /// All types that are listed by id.
    pub const LISTABLE: [FileType; 5] = [
        FileType::Key,
        FileType::Lock,
        FileType::Snapshot,
        FileType::Index,
        FileType::Pack,
    ];
}

/// Errors a backend returns.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The named file does not exist.
    #[error("{0} does not exist")]
    NotFound(String),
    /// An I/O error on a named path.
    #[error("{path}: {source}")]
    Io {
        /// File or directory involved.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file that must not be overwritten already exists.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// Anything else, with a message.
    #[error("{0}")]
    Other(String),
}

impl BackendError {
    /// True for `NotFound`.
    pub fn is_not_found(&self) -> bool {
        matches!(self, BackendError::NotFound(_))
    }
}

/// A pack file being written piece by piece, started by [`Backend::start_pack`]: its name (the
/// hash of its bytes) is known only when it is complete. Dropping it without
/// [`PackUpload::commit`] discards what was appended.
pub trait PackUpload: Send {
    /// Append bytes to the pack.
    fn append(&mut self, data: &[u8]) -> Result<(), BackendError>;
    /// Store the appended bytes under `name`, atomically and durably like [`Backend::write`].
    fn commit(self: Box<Self>, name: &str) -> Result<(), BackendError>;
}

/// Where repository files are stored. Names are `config` or 64-hex ids.
/// Implementations must write atomically (never expose a partial file under its final name)
/// and durably (data is on stable storage when `write` returns).
pub trait Backend: Send + Sync + fmt::Debug {
    /// Human-readable location (for messages).
    fn location(&self) -> String;
    /// Create the repository layout (directories); fails if a config already exists.
    fn create(&self) -> Result<(), BackendError>;
    /// List files of a type as (name, size); names that are not ids are skipped by callers.
    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>, BackendError>;
    /// Read a whole file.
    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>, BackendError>;
    /// Read `len` bytes at `offset`; a short file is an error.
    fn read_range(
        &self,
        t: FileType,
        name: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, BackendError>;
    /// Size of a file.
    fn stat(&self, t: FileType, name: &str) -> Result<u64, BackendError>;
    /// Store a file atomically and durably.
    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<(), BackendError>;
    /// Delete a file.
    fn remove(&self, t: FileType, name: &str) -> Result<(), BackendError>;
    /// Start a pack that is streamed to storage while it is filled, so its bytes need not be
    /// held in memory (local disk: a temporary file renamed on commit). `None`, the default:
    /// the caller keeps the pack in memory and stores it with [`Backend::write`].
    fn start_pack(&self) -> Result<Option<Box<dyn PackUpload>>, BackendError> {
        Ok(None)
    }
    /// Whether this backend wants [`Backend::hint_tree_packs`] (only a caching layer does;
    /// the repository skips computing the list otherwise).
    fn wants_tree_packs(&self) -> bool {
        false
    }
    /// Hint given after the index is loaded: the packs holding tree blobs (a caching layer
    /// keeps those on local disk). Ignored by default.
    fn hint_tree_packs(&self, _packs: &[String]) {}
    /// How long a new lock file must settle before the re-check for conflicting locks
    /// (restic's protocol waits 200 ms, for stores whose listings lag behind writes). A store
    /// whose listing shows every completed write at once may return zero: whichever of two
    /// racing lockers writes second then sees the first in its re-check.
    fn lock_settle_time(&self) -> std::time::Duration {
        std::time::Duration::from_millis(200)
    }
}
