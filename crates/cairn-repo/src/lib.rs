//! The restic repository format (v1 and v2): ids, crypto, key files, config, chunker,
//! compression, packs, index, trees, snapshots, locks, and the `Repository` that ties them
//! together over a [`backend::Backend`].
//!
//! This crate knows nothing about where files are stored beyond the `Backend` trait.

pub mod backend;
pub mod chunker;
pub mod compress;
pub mod config;
pub mod crypto;
pub mod error;
pub mod gojson;
pub mod gotime;
pub mod id;
pub mod index;
pub mod key;
pub mod lock;
pub mod node;
pub mod pack;
pub mod repository;
pub mod snapshot;
pub mod tree;

pub use error::{RepoError, Result};
pub use id::Id;

/// The type of a blob stored inside a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlobType {
    /// File content chunk.
    Data,
    /// Serialized directory listing (a tree).
    Tree,
}

impl BlobType {
    /// The name restic uses in index JSON (`"data"` / `"tree"`).
    pub fn as_str(self) -> &'static str {
        match self {
            BlobType::Data => "data",
            BlobType::Tree => "tree",
        }
    }
}
