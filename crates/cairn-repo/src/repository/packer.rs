//! Blob writing: deduplication against the index and in-flight blobs, one open pack per blob
//! type, pack upload, and index files written after their packs.

use super::Repository;
use crate::backend::{Backend, FileType, PackUpload};
use crate::compress::{self, CompressionMode};
use crate::crypto::MasterKey;
use crate::index::{Index, IndexBlob, IndexFile, IndexPack};
use crate::pack::{PackBlob, PackWriter};
use crate::{BlobType, Id, RepoError, Result};
use parking_lot::{Condvar, Mutex, RwLock};
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};

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

/// Counters shared with the upload threads.
#[derive(Default)]
struct Stats {
    data_blobs: AtomicU64,
    tree_blobs: AtomicU64,
    data_added: AtomicU64,
    data_added_packed: AtomicU64,
    packs: AtomicU64,
}

type InFlight = Arc<Mutex<HashSet<(BlobType, Id)>>>;
type BufferPool = Arc<Mutex<Vec<Vec<u8>>>>;

thread_local! {
    /// A thread's scratch buffers for one blob's compressed and sealed bytes, reused from
    /// blob to blob (two allocations per blob less on trees of small files).
    static SCRATCH: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Scratch buffers larger than this are freed after use rather than kept per thread.
const SCRATCH_KEEP: usize = 256 << 10;

/// Pack buffers kept for reuse at most.
const POOLED_BUFFERS: usize = 1;

/// On a backend that streams packs, blob bytes are handed on once this much is buffered, so
/// a pack being filled, waiting or being stored holds about this much memory instead of its
/// whole size.
const STREAM_CHUNK: usize = 1 << 20;

/// A pack being filled: the writer and, when the backend streams packs, where its bytes go.
struct OpenPack {
    w: PackWriter,
    upload: Option<Box<dyn PackUpload>>,
}

impl OpenPack {
    /// Hand the buffered bytes to the upload once there are enough of them.
    fn stream(&mut self) -> Result<()> {
        match &mut self.upload {
            Some(up) if self.w.buffered() >= STREAM_CHUNK => {
                Ok(self.w.drain(|bytes| up.append(bytes))?)
            }
            _ => Ok(()),
        }
    }
}

#[derive(Default)]
pub(super) struct Packers {
    data: Mutex<Option<OpenPack>>,
    tree: Mutex<Option<OpenPack>>,
    /// Blobs accepted but not yet in the index (in an open or uploading pack).
    in_flight: InFlight,
    stats: Arc<Stats>,
    /// Pack buffers returned by the uploaders, reused for new packs (no fresh page faults).
    buffers: BufferPool,
    /// Started on the first full pack; uploads run beside the workers that fill packs.
    uploader: Mutex<Option<Uploader>>,
}

/// Full packs are handed to upload threads through a small bounded queue, so encryption and
/// compression go on while a pack is written and fsynced; the queue bound limits memory.
struct Uploader {
    tx: Option<SyncSender<OpenPack>>,
    shared: Arc<UploadShared>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for Uploader {
    fn drop(&mut self) {
        self.tx.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Upload threads at once (uploads are I/O bound: write + fsync).
const UPLOAD_THREADS: usize = 2;

struct UploadShared {
    backend: Arc<dyn Backend>,
    key: MasterKey,
    version: u32,
    flush_packs: usize,
    flush_interval: std::time::Duration,
    index: Arc<RwLock<Index>>,
    in_flight: InFlight,
    stats: Arc<Stats>,
    buffers: BufferPool,
    /// Index entries of stored packs not yet written to an index file.
    pending_index: Mutex<PendingIndex>,
    /// Packs submitted and not yet stored.
    busy: Mutex<usize>,
    idle: Condvar,
    /// The first upload error; reported by the next submit or flush.
    error: Mutex<Option<RepoError>>,
}

impl UploadShared {
    fn upload(&self, pack: OpenPack) -> Result<()> {
        let (pack_id, bytes, blobs) = pack.w.finish(&self.key);
        match pack.upload {
            Some(mut up) => {
                up.append(&bytes)?;
                up.commit(&pack_id.to_hex())?;
            }
            None => {
                self.backend
                    .write(FileType::Pack, &pack_id.to_hex(), &bytes)?;
                let mut pool = self.buffers.lock();
                if pool.len() < POOLED_BUFFERS {
                    pool.push(bytes);
                }
            }
        }
        self.stats.packs.fetch_add(1, Ordering::Relaxed);
        self.index.write().add_pack(pack_id, &blobs);
        {
            let mut inflight = self.in_flight.lock();
            for b in &blobs {
                inflight.remove(&(b.blob_type, b.id));
            }
        }
        let flush = {
            let mut p = self.pending_index.lock();
            p.file.packs.push(index_pack(pack_id, &blobs));
            p.blobs += blobs.len();
            p.packs += 1;
            // Written during long backups too, so an interrupted backup resumes without
            // uploading again what is already stored.
            if p.blobs >= INDEX_FILE_MAX_BLOBS
                || p.packs >= self.flush_packs
                || p.since.elapsed() >= self.flush_interval
            {
                Some(std::mem::take(&mut *p).file)
            } else {
                None
            }
        };
        if let Some(f) = flush {
            save_unpacked_to(
                &*self.backend,
                &self.key,
                self.version,
                FileType::Index,
                &f.to_json(),
            )?;
        }
        Ok(())
    }

    fn run(self: Arc<Self>, rx: Arc<Mutex<Receiver<OpenPack>>>) {
        loop {
            let next = rx.lock().recv();
            let Ok(w) = next else { return };
            if let Err(e) = self.upload(w) {
                self.error.lock().get_or_insert(e);
            }
            let mut busy = self.busy.lock();
            *busy -= 1;
            if *busy == 0 {
                self.idle.notify_all();
            }
        }
    }

    fn take_error(&self) -> Result<()> {
        match self.error.lock().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn wait_idle(&self) {
        let mut busy = self.busy.lock();
        while *busy > 0 {
            self.idle.wait(&mut busy);
        }
    }
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

/// Encode, encrypt and store an unpacked file; returns its id.
pub(super) fn save_unpacked_to(
    backend: &dyn Backend,
    key: &MasterKey,
    version: u32,
    t: FileType,
    json: &[u8],
) -> Result<Id> {
    let payload = compress::encode_unpacked(version, json);
    let sealed = key.seal(&payload);
    let id = Id::hash(&sealed);
    backend.write(t, &id.to_hex(), &sealed)?;
    Ok(id)
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
        self.save_blob_again(t, id, data)
    }

    /// Store a blob even if the index already knows it (repacking in prune, salvaging in
    /// `repair packs`); only blobs being stored right now are not stored twice. Returns whether
    /// it was stored. `id` must be SHA-256 of `data`.
    pub fn save_blob_again(&self, t: BlobType, id: Id, data: &[u8]) -> Result<bool> {
        if !self.packers.in_flight.lock().insert((t, id)) {
            return Ok(false);
        }
        let compress_it = self.config.version >= 2
            && !data.is_empty()
            && (t == BlobType::Tree || self.opts.compression != CompressionMode::Off);
        let (mut zbuf, mut sealed) = SCRATCH.with(|s| s.take());
        zbuf.clear();
        sealed.clear();
        let uncompressed_length = if compress_it {
            let level = match self.opts.compression {
                CompressionMode::Off => CompressionMode::Auto.level(),
                m => m.level(),
            };
            compress::compress_blob_into(data, t, level, &mut zbuf);
            if t == BlobType::Data && zbuf.len() >= data.len() {
                // Incompressible data: stored as is (a plain blob entry, valid in format v2
                // packs) saves the frame overhead and 4 header bytes, and decompression later.
                self.key.seal_into(data, &mut sealed);
                None
            } else {
                self.key.seal_into(&zbuf, &mut sealed);
                Some(
                    u32::try_from(data.len())
                        .map_err(|_| crate::RepoError::Invalid("blob larger than 4 GiB".into()))?,
                )
            }
        } else {
            self.key.seal_into(data, &mut sealed);
            None
        };
        let stored = self.add_sealed(t, id, &sealed, uncompressed_length);
        let packed = sealed.len() as u64;
        let keep = |v: Vec<u8>| {
            if v.capacity() <= SCRATCH_KEEP {
                v
            } else {
                Vec::new()
            }
        };
        SCRATCH.with(|s| s.replace((keep(zbuf), keep(sealed))));
        stored?;
        let st = &self.packers.stats;
        match t {
            BlobType::Data => &st.data_blobs,
            BlobType::Tree => &st.tree_blobs,
        }
        .fetch_add(1, Ordering::Relaxed);
        st.data_added
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        st.data_added_packed.fetch_add(packed, Ordering::Relaxed);
        Ok(true)
    }

    fn slot(&self, t: BlobType) -> &Mutex<Option<OpenPack>> {
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
            let pack = match &mut *slot {
                Some(pack) => pack,
                empty => empty.insert(self.open_pack(t)?),
            };
            pack.w.add_sealed(id, sealed, uncompressed_length)?;
            if let Err(e) = pack.stream() {
                // The pack cannot be completed; dropping it discards what was streamed.
                slot.take();
                return Err(e);
            }
            if pack.w.len() >= self.opts.pack_size || pack.w.header_would_overflow(true) {
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

    /// A new pack for blobs of type `t`, streamed if the backend can.
    fn open_pack(&self, t: BlobType) -> Result<OpenPack> {
        let upload = self.backend.start_pack()?;
        let w = if upload.is_some() {
            PackWriter::with_capacity(t, 2 * STREAM_CHUNK)
        } else {
            match self.packers.buffers.lock().pop() {
                Some(buf) => PackWriter::with_buffer(t, buf),
                None => PackWriter::new(t),
            }
        };
        Ok(OpenPack { w, upload })
    }

    fn upload_pack(&self, w: OpenPack) -> Result<()> {
        let mut up = self.packers.uploader.lock();
        let up = up.get_or_insert_with(|| self.start_uploader());
        up.shared.take_error()?;
        *up.shared.busy.lock() += 1;
        let sent = up.tx.as_ref().is_some_and(|tx| tx.send(w).is_ok());
        if !sent {
            *up.shared.busy.lock() -= 1;
            return Err(RepoError::Invalid("pack upload threads are gone".into()));
        }
        Ok(())
    }

    fn start_uploader(&self) -> Uploader {
        let shared = Arc::new(UploadShared {
            backend: Arc::clone(&self.backend),
            key: self.key.clone(),
            version: self.config.version,
            flush_packs: self.opts.index_flush_packs,
            flush_interval: self.opts.index_flush_interval,
            index: Arc::clone(&self.index),
            in_flight: Arc::clone(&self.packers.in_flight),
            stats: Arc::clone(&self.packers.stats),
            buffers: Arc::clone(&self.packers.buffers),
            pending_index: Mutex::new(PendingIndex::default()),
            busy: Mutex::new(0),
            idle: Condvar::new(),
            error: Mutex::new(None),
        });
        let (tx, rx) = std::sync::mpsc::sync_channel::<OpenPack>(0);
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..UPLOAD_THREADS)
            .filter_map(|i| {
                let (shared, rx) = (Arc::clone(&shared), Arc::clone(&rx));
                std::thread::Builder::new()
                    .name(format!("upload-{i}"))
                    .spawn(move || shared.run(rx))
                    .ok()
            })
            .collect();
        Uploader {
            tx: Some(tx),
            shared,
            workers,
        }
    }

    /// Finish open packs, upload them, and write the pending index file.
    /// After `flush` returns, every saved blob is durably stored and indexed.
    pub fn flush(&self) -> Result<()> {
        for t in [BlobType::Data, BlobType::Tree] {
            let w = self.slot(t).lock().take();
            if let Some(w) = w.filter(|p| !p.w.is_empty()) {
                self.upload_pack(w)?;
            }
        }
        let shared = match &*self.packers.uploader.lock() {
            Some(up) => Arc::clone(&up.shared),
            None => return Ok(()),
        };
        shared.wait_idle();
        shared.take_error()?;
        let f = std::mem::take(&mut *shared.pending_index.lock()).file;
        if !f.packs.is_empty() {
            self.save_unpacked(FileType::Index, &f.to_json())?;
        }
        Ok(())
    }

    /// Counters of blobs written so far through this handle.
    pub fn save_stats(&self) -> SaveStats {
        let p = &self.packers.stats;
        SaveStats {
            data_blobs: p.data_blobs.load(Ordering::Relaxed),
            tree_blobs: p.tree_blobs.load(Ordering::Relaxed),
            data_added: p.data_added.load(Ordering::Relaxed),
            data_added_packed: p.data_added_packed.load(Ordering::Relaxed),
            packs: p.packs.load(Ordering::Relaxed),
        }
    }
}

pub(super) fn index_pack(pack_id: Id, blobs: &[PackBlob]) -> IndexPack {
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
