//! Reading blobs and trees through the index.

use super::Repository;
use crate::backend::FileType;
use crate::index::BlobLocation;
use crate::pack::PackBlob;
use crate::tree::Tree;
use crate::{BlobType, Id, RepoError, Result};

impl Repository {
    /// Where a blob is stored, if indexed.
    pub fn locate(&self, t: BlobType, id: &Id) -> Option<BlobLocation> {
        self.index.read().get(t, id)
    }

    /// Load a blob's plaintext (decrypted, decompressed, verified). Tries every indexed copy.
    pub fn load_blob(&self, t: BlobType, id: &Id) -> Result<Vec<u8>> {
        let locs = self.index.read().get_all(t, id);
        if locs.is_empty() {
            return Err(RepoError::BlobNotFound(format!(
                "{} {}",
                t.as_str(),
                id.to_hex()
            )));
        }
        let mut last = None;
        for loc in locs {
            match self.load_blob_at(t, id, &loc) {
                Ok(b) => return Ok(b),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| RepoError::BlobNotFound(id.to_hex())))
    }

    /// Load a blob from a known location.
    pub fn load_blob_at(&self, t: BlobType, id: &Id, loc: &BlobLocation) -> Result<Vec<u8>> {
        let raw = self.backend.read_range(
            FileType::Pack,
            &loc.pack_id.to_hex(),
            u64::from(loc.offset),
            u64::from(loc.length),
        )?;
        self.decode_blob(
            &raw,
            &PackBlob {
                blob_type: t,
                id: *id,
                offset: loc.offset,
                length: loc.length,
                uncompressed_length: loc.uncompressed_length,
            },
        )
    }

    /// Decrypt, decompress and verify the raw bytes of one blob.
    pub fn decode_blob(&self, raw: &[u8], blob: &PackBlob) -> Result<Vec<u8>> {
        crate::pack::read_blob(&self.key, raw, blob)
    }

    /// Load and decode a tree blob.
    pub fn load_tree(&self, id: &Id) -> Result<Tree> {
        let bytes = self.load_blob(BlobType::Tree, id)?;
        Tree::decode(&bytes).map_err(|e| RepoError::corrupt(format!("tree {}", id.to_hex()), e))
    }
}
