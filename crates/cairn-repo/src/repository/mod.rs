//! `Repository`: a restic repository opened with a password over a [`Backend`]: init, open,
//! typed file access, the in-memory index, blob reads, and blob writes through packers.

mod blobs;
mod keys;
mod locking;
mod maintenance;
mod packer;
#[cfg(test)]
mod test_support;

pub use crate::error::LockConflict;
pub use keys::KeyListing;
pub use locking::{LockGuard, LockMode, release_all_locks};
pub use packer::SaveStats;

use crate::backend::{Backend, FileType};
use crate::chunker::{ChunkerTables, Pol};
use crate::compress::{self, CompressionMode};
use crate::config::Config;
use crate::crypto::MasterKey;
use crate::index::{Index, IndexFile};
use crate::key::{KdfParams, KeyFile};
use crate::snapshot::Snapshot;
use crate::{Id, RepoError, Result};
use parking_lot::RwLock;
use std::sync::Arc;

/// The most key files tried before giving up (restic's limit).
pub const MAX_KEYS_TRIED: usize = 20;
/// Default pack size target in bytes (restic: 16 MiB).
pub const DEFAULT_PACK_SIZE: usize = 16 * 1024 * 1024;

/// Options for creating a repository.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Repository format version (1 or 2).
    pub version: u32,
    /// Chunker polynomial to use (`init --copy-chunker-params`); random when `None`.
    pub chunker_polynomial: Option<Pol>,
    /// scrypt parameters for the first key.
    pub kdf: KdfParams,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            version: 2,
            chunker_polynomial: None,
            kdf: KdfParams::default_params(),
        }
    }
}

/// Options for writing to an opened repository.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Compression of data blobs (v2 only).
    pub compression: CompressionMode,
    /// Target pack size in bytes.
    pub pack_size: usize,
    /// Write an index file after this many packs (so interrupted backups resume).
    pub index_flush_packs: usize,
    /// Write an index file when the oldest unindexed pack is this old.
    pub index_flush_interval: std::time::Duration,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            compression: CompressionMode::Auto,
            pack_size: DEFAULT_PACK_SIZE,
            index_flush_packs: 64,
            index_flush_interval: std::time::Duration::from_secs(60),
        }
    }
}

/// An opened repository. Cheap to share between threads (`Arc<Repository>`).
pub struct Repository {
    backend: Arc<dyn Backend>,
    key: MasterKey,
    key_id: Id,
    config: Config,
    chunker: Arc<ChunkerTables>,
    index: Arc<RwLock<Index>>,
    opts: WriteOptions,
    packers: packer::Packers,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("location", &self.backend.location())
            .field("version", &self.config.version)
            .finish()
    }
}

fn host_and_user() -> (String, String) {
    let host = crate::lock::hostname();
    let user = crate::lock::username();
    (host, user)
}

impl Repository {
    /// Create a new repository: key file first, then config (restic's order).
    pub fn init(
        backend: Arc<dyn Backend>,
        password: &[u8],
        opts: InitOptions,
    ) -> Result<Repository> {
        if !(1..=2).contains(&opts.version) {
            return Err(RepoError::Invalid(format!(
                "repository version {} is not supported (use 1 or 2)",
                opts.version
            )));
        }
        match backend.stat(FileType::Config, "config") {
            Ok(_) => return Err(RepoError::AlreadyExists(backend.location())),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        backend.create().map_err(|e| match e {
            crate::backend::BackendError::AlreadyExists(_) => {
                RepoError::AlreadyExists(backend.location())
            }
            e => e.into(),
        })?;
        let pol = match opts.chunker_polynomial {
            Some(p) => p,
            None => Pol::random().map_err(|e| RepoError::Invalid(e.to_string()))?,
        };
        let master = MasterKey::random();
        let (host, user) = host_and_user();
        let (_kf, key_bytes) = KeyFile::create(&master, password, opts.kdf, &user, &host)?;
        let key_id = Id::hash(&key_bytes);
        backend.write(FileType::Key, &key_id.to_hex(), &key_bytes)?;
        let config = Config::new(opts.version, pol.0);
        let sealed = master.seal(&config.to_json());
        backend.write(FileType::Config, "config", &sealed)?;
        Ok(Self::assemble(
            backend,
            master,
            key_id,
            config,
            WriteOptions::default(),
        ))
    }

    /// Open an existing repository, trying key files until one accepts the password.
    pub fn open(
        backend: Arc<dyn Backend>,
        password: &[u8],
        opts: WriteOptions,
    ) -> Result<Repository> {
        let config_bytes = match backend.read(FileType::Config, "config") {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Err(RepoError::NoRepository(backend.location())),
            Err(e) => return Err(e.into()),
        };
        let mut keys = backend.list(FileType::Key)?;
        keys.retain(|(n, _)| Id::from_name(n).is_some());
        keys.sort();
        let mut found = None;
        for (name, _) in keys.iter().take(MAX_KEYS_TRIED) {
            let bytes = backend.read(FileType::Key, name)?;
            let kf = match KeyFile::parse(&bytes) {
                Ok(k) => k,
                Err(e) => {
                    tracing::warn!("skipping key {name}: {e}");
                    continue;
                }
            };
            match kf.open(password) {
                Ok(master) => {
                    found = Some((master, Id::from_name(name).unwrap_or_default()));
                    break;
                }
                Err(RepoError::WrongPassword) => continue,
                Err(e) => {
                    tracing::warn!("skipping key {name}: {e}");
                    continue;
                }
            }
        }
        let (master, key_id) = found.ok_or(RepoError::WrongPassword)?;
        let plain = master
            .open(&config_bytes)
            .map_err(|e| RepoError::corrupt("config", format!("{e} (damaged key or config)")))?;
        let config = Config::from_json(&plain)?;
        let pol = Pol(config.chunker_polynomial);
        if !pol.is_irreducible() {
            return Err(RepoError::corrupt(
                "config",
                format!("chunker polynomial {} is not irreducible", pol.to_hex()),
            ));
        }
        Ok(Self::assemble(backend, master, key_id, config, opts))
    }

    fn assemble(
        backend: Arc<dyn Backend>,
        key: MasterKey,
        key_id: Id,
        config: Config,
        opts: WriteOptions,
    ) -> Repository {
        let chunker = ChunkerTables::new(Pol(config.chunker_polynomial));
        Repository {
            backend,
            key,
            key_id,
            config,
            chunker,
            index: Arc::new(RwLock::new(Index::new())),
            opts,
            packers: packer::Packers::default(),
        }
    }

    /// Change the write options (compression, pack size) of an opened repository.
    pub fn set_write_options(&mut self, opts: WriteOptions) {
        self.opts = opts;
    }

    /// Swap the storage backend of a freshly opened repository for one that serves the same
    /// files (a cache wrapper that needs the config id, known only after opening).
    pub fn with_backend(mut self, backend: Arc<dyn Backend>) -> Repository {
        self.backend = backend;
        self
    }

    /// The storage backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The repository config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Format version (1 or 2).
    pub fn version(&self) -> u32 {
        self.config.version
    }

    /// The master key.
    pub fn master_key(&self) -> &MasterKey {
        &self.key
    }

    /// Id of the key file that opened the repository.
    pub fn key_id(&self) -> Id {
        self.key_id
    }

    /// The chunker tables for this repository's polynomial (built once).
    pub fn chunker_tables(&self) -> &Arc<ChunkerTables> {
        &self.chunker
    }

    /// Read access to the in-memory index.
    pub fn index(&self) -> parking_lot::RwLockReadGuard<'_, Index> {
        self.index.read()
    }

    /// List the ids of all files of a type (non-id names skipped), sorted.
    pub fn list_ids(&self, t: FileType) -> Result<Vec<Id>> {
        let mut ids: Vec<Id> = self
            .backend
            .list(t)?
            .into_iter()
            .filter_map(|(n, _)| Id::from_name(&n))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Resolve a (possibly abbreviated) id of a file type; errors when ambiguous or missing.
    pub fn find_id(&self, t: FileType, prefix: &str) -> Result<Id> {
        if let Some(id) = Id::from_name(prefix) {
            return Ok(id);
        }
        let matches: Vec<Id> = self
            .list_ids(t)?
            .into_iter()
            .filter(|id| id.has_prefix(prefix))
            .collect();
        match matches.len() {
            0 => Err(RepoError::Invalid(format!(
                "no {} matching ID {prefix:?} found",
                t.name()
            ))),
            1 => Ok(matches[0]),
            _ => Err(RepoError::Invalid(format!(
                "multiple {}s match ID {prefix:?}; give more digits",
                t.name()
            ))),
        }
    }

    /// Read a file and check that its name is the hash of its bytes.
    pub fn read_verified(&self, t: FileType, id: &Id) -> Result<Vec<u8>> {
        let name = id.to_hex();
        let bytes = self.backend.read(t, &name)?;
        if Id::hash(&bytes) != *id {
            return Err(RepoError::corrupt(
                format!("{} {name}", t.name()),
                "content does not match its name (file damaged)",
            ));
        }
        Ok(bytes)
    }

    /// Load, decrypt and decode an "unpacked" file (snapshot, index, lock).
    pub fn load_unpacked(&self, t: FileType, id: &Id) -> Result<Vec<u8>> {
        let bytes = self.read_verified(t, id)?;
        self.decode_unpacked(t, id, bytes)
    }

    /// Decrypt and decode raw bytes of an unpacked file.
    pub fn decode_unpacked(&self, t: FileType, id: &Id, mut bytes: Vec<u8>) -> Result<Vec<u8>> {
        let what = || format!("{} {}", t.name(), id.to_hex());
        self.key
            .open_in_place(&mut bytes)
            .map_err(|e| RepoError::corrupt(what(), e))?;
        compress::decode_unpacked(self.config.version, bytes)
            .map_err(|e| RepoError::corrupt(what(), e))
    }

    /// Encode, encrypt and store an unpacked file; returns its id.
    pub fn save_unpacked(&self, t: FileType, json: &[u8]) -> Result<Id> {
        packer::save_unpacked_to(&*self.backend, &self.key, self.config.version, t, json)
    }

    /// Load one snapshot.
    pub fn load_snapshot(&self, id: &Id) -> Result<Snapshot> {
        let json = self.load_unpacked(FileType::Snapshot, id)?;
        Snapshot::from_json(&json)
            .map_err(|e| RepoError::corrupt(format!("snapshot {}", id.to_hex()), e))
    }

    /// Load all snapshots (in parallel), sorted by time, oldest first.
    pub fn load_snapshots(&self) -> Result<Vec<(Id, Snapshot)>> {
        let ids = self.list_ids(FileType::Snapshot)?;
        let mut out = parallel_map(&ids, |id| self.load_snapshot(id).map(|s| (*id, s)))?;
        out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Store a snapshot (call only after `flush`).
    pub fn save_snapshot(&self, s: &Snapshot) -> Result<Id> {
        self.save_unpacked(FileType::Snapshot, &s.to_json())
    }

    /// Load every index file into the in-memory index (in parallel).
    pub fn load_index(&self) -> Result<()> {
        let ids = self.list_ids(FileType::Index)?;
        let files = parallel_map(&ids, |id| {
            let json = self.load_unpacked(FileType::Index, id)?;
            IndexFile::from_json(&json)
                .map_err(|e| RepoError::corrupt(format!("index {}", id.to_hex()), e))
        })?;
        let mut idx = self.index.write();
        for f in &files {
            if self.config.version < 2
                && f.packs
                    .iter()
                    .any(|p| p.blobs.iter().any(|b| b.uncompressed_length.is_some()))
            {
                return Err(RepoError::Unsupported(
                    "index uses feature not supported by repository version 1".into(),
                ));
            }
            idx.add_index_file(f);
        }
        if self.backend.wants_tree_packs() {
            let tree_packs: std::collections::HashSet<Id> = idx
                .iter()
                .filter(|(t, _, _)| *t == crate::BlobType::Tree)
                .map(|(_, _, loc)| loc.pack_id)
                .collect();
            drop(idx);
            let names: Vec<String> = tree_packs.iter().map(Id::to_hex).collect();
            self.backend.hint_tree_packs(&names);
        }
        Ok(())
    }
}

/// Run `f` over `items` on a few threads, keeping order; the first error wins.
pub fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8)
        .min(items.len().max(1));
    if threads <= 1 || items.len() < 4 {
        return items.iter().map(&f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<parking_lot::Mutex<Option<Result<R>>>> = items
        .iter()
        .map(|_| parking_lot::Mutex::new(None))
        .collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    *results[i].lock() = Some(f(item));
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|| Err(RepoError::Invalid("worker did not run".into())))
        })
        .collect()
}
