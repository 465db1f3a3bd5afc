//! Blob writing: deduplication against the index and in-flight blobs, one open pack per blob
//! type, pack upload, and index files written after their packs.

use super::Repository;
use crate::backend::FileType;
use crate::compress::{self, CompressionMode};
use crate::index::{IndexBlob, IndexFile, IndexPack};
use crate::pack::{PackBlob, PackWriter};
use crate::{BlobType, Id, Result};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

/// Blobs per index file before a new one is started (restic: 50 000).
const INDEX_FILE_MAX_BLOBS: usize = 50_000;

/// Counters of what blob saving wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct SaveStats {
    /// New data blobs stored.
    pub data_blobs: u64,
    /// New tree blobs stored.
    pub tree_blobs: u64,
    /// Plaintext bytes of new blobs.
    pub data_added: u64,
    /// Bytes of new blobs as stored (compressed + encrypted).
    pub data_added_packed: u64,
    /// Pack files written.
    pub packs: u64,
}

#[derive(Default)]
pub(super) struct Packers {
    data: Mutex<Option<PackWriter>>,
    tree: Mutex<Option<PackWriter>>,
    /// Blobs accepted but not yet in the index (in an open or uploading pack).
    in_flight: Mutex<HashSet<(BlobType, Id)>>,
    /// Index entries of stored packs not yet written to an index file.
    pending_index: Mutex<PendingIndex>,
    data_blobs: AtomicU64,
    tree_blobs: AtomicU64,
    data_added: AtomicU64,
    data_added_packed: AtomicU64,
    packs: AtomicU64,
}

struct PendingIndex {
    file: IndexFile,
    blobs: usize,
    packs: usize,
    since: std::time::Instant,
}

impl Default for PendingIndex {
    fn default() -> Self {
        PendingIndex {
            file: IndexFile::default(),
            blobs: 0,
            packs: 0,
            since: std::time::Instant::now(),
        }
    }
}

impl Repository {
    /// True if the blob is stored or being stored.
    pub fn has_blob(&self, t: BlobType, id: &Id) -> bool {
        self.index.read().contains(t, id) || self.packers.in_flight.lock().contains(&(t, *id))
    }

    /// Store a blob unless it exists; returns `(id, true)` when it was new.
    /// Safe to call from many threads: hashing, compression and encryption run in the caller.
    pub fn save_blob(&self, t: BlobType, data: &[u8]) -> Result<(Id, bool)> {
        let id = Id::hash(data);
        let new = self.save_blob_with_id(t, id, data)?;
        Ok((id, new))
    }

    /// Like [`Repository::save_blob`] with a precomputed id (must be SHA-256 of `data`).
    pub fn save_blob_with_id(&self, t: BlobType, id: Id, data: &[u8]) -> Result<bool> {
        if self.index.read().contains(t, &id) {
            return Ok(false);
        }
        if !self.packers.in_flight.lock().insert((t, id)) {
            return Ok(false);
        }
        let compress_it = self.config.version >= 2
            && !data.is_empty()
            && (t == BlobType::Tree || self.opts.compression != CompressionMode::Off);
        let mut sealed = Vec::with_capacity(data.len() + 64);
        let uncompressed_length = if compress_it {
            let level = match self.opts.compression {
                CompressionMode::Off => CompressionMode::Auto.level(),
                m => m.level(),
            };
            let c = compress::compress(data, level);
            self.key.seal_into(&c, &mut sealed);
            Some(
                u32::try_from(data.len())
                    .map_err(|_| crate::RepoError::Invalid("blob larger than 4 GiB".into()))?,
            )
        } else {
            self.key.seal_into(data, &mut sealed);
            None
        };
        self.add_sealed(t, id, &sealed, uncompressed_length)?;
        let (cnt, _) = match t {
            BlobType::Data => (&self.packers.data_blobs, ()),
            BlobType::Tree => (&self.packers.tree_blobs, ()),
        };
        cnt.fetch_add(1, Ordering::Relaxed);
        self.packers
            .data_added
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.packers
            .data_added_packed
            .fetch_add(sealed.len() as u64, Ordering::Relaxed);
        Ok(true)
    }

    fn slot(&self, t: BlobType) -> &Mutex<Option<PackWriter>> {
        match t {
            BlobType::Data => &self.packers.data,
            BlobType::Tree => &self.packers.tree,
        }
    }

    fn add_sealed(
        &self,
        t: BlobType,
        id: Id,
        sealed: &[u8],
        uncompressed_length: Option<u32>,
    ) -> Result<()> {
        let full = {
            let mut slot = self.slot(t).lock();
            let w = slot.get_or_insert_with(|| PackWriter::new(t));
            w.add_sealed(id, sealed, uncompressed_length)?;
            if w.len() >= self.opts.pack_size || w.header_would_overflow(true) {
                slot.take()
            } else {
                None
            }
        };
        if let Some(w) = full {
            self.upload_pack(w)?;
        }
        Ok(())
    }

    fn upload_pack(&self, w: PackWriter) -> Result<()> {
        let (pack_id, bytes, blobs) = w.finish(&self.key);
        self.backend
            .write(FileType::Pack, &pack_id.to_hex(), &bytes)?;
        self.packers.packs.fetch_add(1, Ordering::Relaxed);
        self.index.write().add_pack(pack_id, &blobs);
        {
            let mut inflight = self.packers.in_flight.lock();
            for b in &blobs {
                inflight.remove(&(b.blob_type, b.id));
            }
        }
        let flush = {
            let mut p = self.packers.pending_index.lock();
            p.file.packs.push(index_pack(pack_id, &blobs));
            p.blobs += blobs.len();
            p.packs += 1;
            // Written during long backups too, so an interrupted backup resumes without
            // uploading again what is already stored.
            if p.blobs >= INDEX_FILE_MAX_BLOBS
                || p.packs >= self.opts.index_flush_packs
                || p.since.elapsed() >= self.opts.index_flush_interval
            {
                Some(std::mem::take(&mut *p).file)
            } else {
                None
            }
        };
        if let Some(f) = flush {
            self.save_unpacked(FileType::Index, &f.to_json())?;
        }
        Ok(())
    }

    /// Finish open packs, upload them, and write the pending index file.
    /// After `flush` returns, every saved blob is durably stored and indexed.
    pub fn flush(&self) -> Result<()> {
        for t in [BlobType::Data, BlobType::Tree] {
            let w = self.slot(t).lock().take();
            if let Some(w) = w.filter(|w| !w.is_empty()) {
                self.upload_pack(w)?;
            }
        }
        let f = std::mem::take(&mut *self.packers.pending_index.lock()).file;
        if !f.packs.is_empty() {
            self.save_unpacked(FileType::Index, &f.to_json())?;
        }
        Ok(())
    }

    /// Counters of blobs written so far through this handle.
    pub fn save_stats(&self) -> SaveStats {
        let p = &self.packers;
        SaveStats {
            data_blobs: p.data_blobs.load(Ordering::Relaxed),
            tree_blobs: p.tree_blobs.load(Ordering::Relaxed),
            data_added: p.data_added.load(Ordering::Relaxed),
            data_added_packed: p.data_added_packed.load(Ordering::Relaxed),
            packs: p.packs.load(Ordering::Relaxed),
        }
    }
}

fn index_pack(pack_id: Id, blobs: &[PackBlob]) -> IndexPack {
    IndexPack {
        id: pack_id,
        blobs: blobs
            .iter()
            .map(|b| IndexBlob {
                id: b.id,
                blob_type: b.blob_type,
                offset: b.offset,
                length: b.length,
                uncompressed_length: b.uncompressed_length,
            })
            .collect(),
    }
}
