//! Repacking: copy the blobs that must survive out of the packs to repack into new packs.
//! Workers read each pack once (the needed ranges, merged when close), verify every blob
//! (MAC, decompression, SHA-256 of the plaintext against its id) and append it to the open
//! pack of its type: the sealed bytes as they are, or compressed when an uncompressed blob of
//! a v2 repository is to be compressed. The worker that fills a pack finishes and uploads it
//! while the others go on, so at most one open and one uploading pack per type are in memory.
//!
//! New packs are not indexed here: the caller writes them into the new complete index. A
//! crash before that leaves them unreferenced (removed by the next prune).

use super::plan::RepackPack;
use super::{IdHash, Phase, PruneProgress};
use crate::{EngineError, Result};
use cairn_repo::backend::FileType;
use cairn_repo::compress::{self, CompressionMode};
use cairn_repo::pack::{PackBlob, PackWriter};
use cairn_repo::repository::Repository;
use cairn_repo::{BlobType, Id};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Neighbouring blobs closer than this are read in one request (the gap is read and dropped).
const MAX_GAP: u64 = 256 * 1024;
/// A merged read is not extended beyond this (bounds the memory of one worker).
const MAX_READ: u64 = 4 * 1024 * 1024;

/// The byte ranges to read for `blobs` (sorted by offset): `(start, end, blobs in it)`.
pub(super) fn read_ranges(blobs: &[PackBlob]) -> Vec<(u64, u64, Vec<PackBlob>)> {
    let mut out: Vec<(u64, u64, Vec<PackBlob>)> = Vec::new();
    for b in blobs {
        let (start, end) = (u64::from(b.offset), b.end());
        if let Some(last) = out.last_mut()
            && start >= last.1
            && start - last.1 <= MAX_GAP
            && end - last.0 <= MAX_READ
        {
            last.1 = end;
            last.2.push(*b);
            continue;
        }
        out.push((start, end, vec![*b]));
    }
    out
}

/// How blobs are stored again.
#[derive(Debug, Clone, Copy)]
pub(super) struct StoreMode {
    /// Target pack size.
    pub pack_size: usize,
    /// Compress uncompressed blobs with this zstd level (`None`: copy them as they are).
    pub compress_data: Option<i32>,
    /// Compress uncompressed tree blobs with this level (v2).
    pub compress_trees: Option<i32>,
    /// Compress uncompressed data blobs even when that does not make them smaller
    /// (`--repack-uncompressed`: restic's "everything compressed" result). Otherwise an
    /// incompressible data blob stays plain, as backup stores it.
    pub compress_all: bool,
}

impl StoreMode {
    /// restic's rules: in v2, blobs are stored compressed (data blobs unless compression is
    /// off); v1 stores everything as it is.
    pub(super) fn new(version: u32, compression: CompressionMode, pack_size: usize) -> StoreMode {
        let level = match compression {
            CompressionMode::Off => CompressionMode::Auto.level(),
            m => m.level(),
        };
        StoreMode {
            pack_size,
            compress_data: (version >= 2 && compression != CompressionMode::Off).then_some(level),
            compress_trees: (version >= 2).then_some(level),
            compress_all: false,
        }
    }
}

/// The open packs and the packs written so far.
struct Output<'a> {
    repo: &'a Repository,
    mode: StoreMode,
    data: Mutex<Option<PackWriter>>,
    tree: Mutex<Option<PackWriter>>,
    written: Mutex<Vec<(Id, Vec<PackBlob>)>>,
}

impl Output<'_> {
    fn slot(&self, t: BlobType) -> &Mutex<Option<PackWriter>> {
        match t {
            BlobType::Data => &self.data,
            BlobType::Tree => &self.tree,
        }
    }

    /// Append a sealed blob; uploads the pack when it is full.
    fn add(&self, t: BlobType, id: Id, sealed: &[u8], ulen: Option<u32>) -> Result<()> {
        let full = {
            let mut slot = self.slot(t).lock();
            let w = slot.get_or_insert_with(|| {
                PackWriter::with_capacity(t, self.mode.pack_size + (8 << 20) + (64 << 10))
            });
            if w.header_would_overflow(ulen.is_some()) {
                let done = slot.take();
                drop(slot);
                if let Some(done) = done {
                    self.upload(done)?;
                }
                return self.add(t, id, sealed, ulen);
            }
            w.add_sealed(id, sealed, ulen)?;
            if w.len() >= self.mode.pack_size {
                slot.take()
            } else {
                None
            }
        };
        match full {
            Some(w) => self.upload(w),
            None => Ok(()),
        }
    }

    fn upload(&self, w: PackWriter) -> Result<()> {
        let (id, bytes, blobs) = w.finish(self.repo.master_key());
        self.repo
            .backend()
            .write(FileType::Pack, &id.to_hex(), &bytes)?;
        drop(bytes);
        self.written.lock().push((id, blobs));
        Ok(())
    }

    fn finish(&self) -> Result<Vec<(Id, Vec<PackBlob>)>> {
        for t in [BlobType::Data, BlobType::Tree] {
            let w = self.slot(t).lock().take();
            if let Some(w) = w.filter(|w| !w.is_empty()) {
                self.upload(w)?;
            }
        }
        Ok(std::mem::take(&mut *self.written.lock()))
    }
}

/// What the workers share.
struct Shared<'a> {
    repo: &'a Repository,
    out: Output<'a>,
    keep: Mutex<HashSet<(BlobType, Id), IdHash>>,
    progress: &'a dyn PruneProgress,
    next: AtomicUsize,
    /// The first fatal error (stops all workers).
    fatal: Mutex<Option<EngineError>>,
    /// Blobs that failed verification (another copy may still be repacked).
    damaged: Mutex<Vec<String>>,
}

impl Shared<'_> {
    fn wanted(&self, b: &PackBlob) -> bool {
        self.keep.lock().contains(&(b.blob_type, b.id))
    }

    fn claim(&self, b: &PackBlob) -> bool {
        self.keep.lock().remove(&(b.blob_type, b.id))
    }

    fn worker(&self, packs: &[RepackPack]) {
        loop {
            if self.fatal.lock().is_some() {
                return;
            }
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(p) = packs.get(i) else { return };
            if let Err(e) = self.repack_one(p) {
                self.fatal.lock().get_or_insert(e);
                return;
            }
            self.progress.advance(Phase::Repack, 1);
        }
    }

    fn repack_one(&self, p: &RepackPack) -> Result<()> {
        let name = p.id.to_hex();
        let wanted: Vec<PackBlob> = p.blobs.iter().filter(|b| self.wanted(b)).copied().collect();
        for (start, end, blobs) in read_ranges(&wanted) {
            let buf = self
                .repo
                .backend()
                .read_range(FileType::Pack, &name, start, end - start)?;
            for b in &blobs {
                let from = usize::try_from(u64::from(b.offset) - start).unwrap_or(usize::MAX);
                let raw = from
                    .checked_add(b.length as usize)
                    .and_then(|to| buf.get(from..to))
                    .ok_or_else(|| {
                        EngineError::Invalid(format!("pack {}: short read", p.id.short()))
                    })?;
                let plain = match self.repo.decode_blob(raw, b) {
                    Ok(plain) => plain,
                    Err(e) => {
                        self.damaged
                            .lock()
                            .push(format!("pack {}: {e}", p.id.short()));
                        continue;
                    }
                };
                if !self.claim(b) {
                    continue; // another copy was stored meanwhile
                }
                self.store(b, raw, &plain)?;
            }
        }
        Ok(())
    }

    /// Store a verified blob: compressed if it is uncompressed and should not be (unless it
    /// is data that does not compress), else the sealed bytes as they are.
    fn store(&self, b: &PackBlob, raw: &[u8], plain: &[u8]) -> Result<()> {
        let level = match b.blob_type {
            BlobType::Data => self.out.mode.compress_data,
            BlobType::Tree => self.out.mode.compress_trees,
        };
        match level {
            Some(level) if !b.is_compressed() && !plain.is_empty() => {
                let ulen = u32::try_from(plain.len())
                    .map_err(|_| EngineError::Invalid("blob larger than 4 GiB".into()))?;
                let mut c = Vec::new();
                compress::compress_blob_into(plain, b.blob_type, level, &mut c);
                if b.blob_type == BlobType::Data
                    && !self.out.mode.compress_all
                    && c.len() >= plain.len()
                {
                    // Incompressible: kept plain, as backup stores it.
                    return self.out.add(b.blob_type, b.id, raw, b.uncompressed_length);
                }
                let sealed = self.repo.master_key().seal(&c);
                self.out.add(b.blob_type, b.id, &sealed, Some(ulen))
            }
            _ => self.out.add(b.blob_type, b.id, raw, b.uncompressed_length),
        }
    }
}

/// Copy the `keep` blobs out of `packs` into new packs and upload them. Returns the new packs
/// and their blobs (not yet in any index). Fails if a blob could not be copied.
pub(super) fn repack(
    repo: &Repository,
    packs: &[RepackPack],
    keep: HashSet<(BlobType, Id), IdHash>,
    mode: StoreMode,
    progress: &dyn PruneProgress,
) -> Result<Vec<(Id, Vec<PackBlob>)>> {
    let shared = Shared {
        repo,
        out: Output {
            repo,
            mode,
            data: Mutex::new(None),
            tree: Mutex::new(None),
            written: Mutex::new(Vec::new()),
        },
        keep: Mutex::new(keep),
        progress,
        next: AtomicUsize::new(0),
        fatal: Mutex::new(None),
        damaged: Mutex::new(Vec::new()),
    };
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8)
        .min(packs.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| shared.worker(packs));
        }
    });
    if let Some(e) = shared.fatal.into_inner() {
        return Err(e);
    }
    let written = shared.out.finish()?;
    let left = shared.keep.into_inner();
    if !left.is_empty() {
        let mut ids: Vec<String> = left
            .iter()
            .take(10)
            .map(|(t, id)| format!("{}/{}", t.as_str(), id.short()))
            .collect();
        ids.sort();
        let damaged = shared.damaged.into_inner();
        return Err(EngineError::Invalid(format!(
            "{} blob(s) could not be repacked ({}){}\nnothing was removed; run `cairn check --read-data` and `cairn repair packs`",
            left.len(),
            ids.join(", "),
            if damaged.is_empty() {
                String::new()
            } else {
                format!("\n{}", damaged.join("\n"))
            }
        )));
    }
    Ok(written)
}
