//! Index files (spec §7) and the in-memory repository index.
//!
//! * [`IndexFile`] and friends are the JSON documents stored under `index/<id>`.
//! * [`Index`] is the union of all index files: a compact, read-mostly map from
//!   `(blob type, blob id)` to the blob's location in a pack.

mod file;
mod memory;
mod table;
#[cfg(test)]
mod tests;

pub use file::{IndexBlob, IndexFile, IndexPack};
pub use memory::{BlobLocation, Index};
