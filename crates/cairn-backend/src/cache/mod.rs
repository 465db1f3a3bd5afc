//! The local metadata cache: a [`Backend`] wrapper that keeps copies of snapshot files, index
//! files and packs holding tree blobs on local disk, in restic's cache layout (repository format
//! §13), so a remote repository's metadata is downloaded once.
//!
//! ```text
//! <base>/CACHEDIR.TAG
//! <base>/<repository config id>/version            "1"
//! <base>/<repository config id>/snapshots/<xx>/<id>
//! <base>/<repository config id>/index/<xx>/<id>
//! <base>/<repository config id>/data/<xx>/<id>     packs with tree blobs only
//! ```
//!
//! Every cached file is a verbatim copy of the repository file, so its SHA-256 equals its name;
//! a cached file is verified when it is read and a damaged one is dropped and fetched again.
//! The cache never makes an operation fail: when it cannot be written or read, a warning is
//! logged and the operation goes to the wrapped backend.

use cairn_repo::Id;
use cairn_repo::backend::{Backend, BackendError, FileType, PackUpload};
use std::collections::{HashMap, HashSet};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

#[cfg(test)]
mod tests;

/// Content of the `CACHEDIR.TAG` file written into the cache base directory (the signature
/// line is the one every cache-directory-aware tool, restic included, looks for).
pub const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by cairn.\n\
# For information about cache directory tags, see:\n\
#\thttps://bford.info/cachedir/\n";

/// The cache layout version written to `<base>/<id>/version`.
pub const CACHE_VERSION: u32 = 1;

/// Mode of the cache directories.
const DIR_MODE: u32 = 0o700;
/// Mode of cached repository files.
const FILE_MODE: u32 = 0o600;
/// Mode of `version` and `CACHEDIR.TAG` (restic's, see the format spec §13).
const META_MODE: u32 = 0o644;

/// The file types kept in the cache.
const CACHED_TYPES: [FileType; 3] = [FileType::Snapshot, FileType::Index, FileType::Pack];

/// A [`Backend`] that serves snapshots, index files and tree packs from a local cache
/// directory and passes everything else to the wrapped backend.
#[derive(Debug)]
pub struct CachedBackend {
    inner: Arc<dyn Backend>,
    /// `<base>/<repository config id>`.
    dir: PathBuf,
    /// Packs known to contain tree blobs (`None` until [`CachedBackend::set_tree_packs`]).
    tree_packs: RwLock<Option<HashSet<String>>>,
    /// Packs whose cached copy has been verified by this process.
    cached_packs: Mutex<HashSet<String>>,
    /// One lock per pack being downloaded into the cache, so concurrent readers of the same
    /// pack download it once.
    fetching: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Set after the first warning about a cache write failure (later ones go to debug).
    warned: AtomicBool,
}

/// The outcome of filling the cache with a whole pack.
enum Fill {
    /// The pack is in the cache (verified).
    Cached(PathBuf),
    /// The pack could not be stored; here are its bytes.
    Uncached(Vec<u8>),
}

/// Lock a mutex, ignoring poisoning (the protected sets stay consistent on panic).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// True for a lowercase 64-hex name (the only names the cache stores).
fn is_cache_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// True when `data` hashes to `name`.
fn matches_name(name: &str, data: &[u8]) -> bool {
    Id::hash(data).to_hex() == name
}

/// A repository id usable as a single directory name.
fn valid_repo_id(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && !id.bytes().any(|b| b == b'/' || b == 0)
        && id.len() <= 255
}

/// Create a directory (and missing parents) with mode 0700; an existing one is left alone.
fn mkdir(p: &Path) -> io::Result<()> {
    if p.is_dir() {
        return Ok(());
    }
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(p)?;
    fs::set_permissions(p, fs::Permissions::from_mode(DIR_MODE))
}

/// Create `path` with `content` unless it exists.
fn create_if_missing(path: &Path, content: &[u8], mode: u32) -> io::Result<()> {
    let mut f = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    };
    f.write_all(content)?;
    drop(f);
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// Set a path's modification time to now.
fn touch(p: &Path) -> io::Result<()> {
    let f = File::open(p)?;
    f.set_times(fs::FileTimes::new().set_modified(std::time::SystemTime::now()))
}

impl CachedBackend {
    /// Wrap `inner` with the cache of repository `repo_id` (the config id) under `base`.
    ///
    /// Creates `<base>/CACHEDIR.TAG`, `<base>/<repo_id>/version` and the type directories
    /// when missing and touches the repository directory's modification time. A cache
    /// directory that cannot be created only logs a warning (reads then go to `inner`); the
    /// error cases are a `repo_id` that is not a plain directory name and a cache written by
    /// a newer cache layout version.
    pub fn new(
        inner: Arc<dyn Backend>,
        base: &Path,
        repo_id: &str,
    ) -> Result<CachedBackend, BackendError> {
        if !valid_repo_id(repo_id) {
            return Err(BackendError::Other(format!(
                "repository id {repo_id:?} cannot name a cache directory"
            )));
        }
        let dir = base.join(repo_id);
        let version_file = dir.join("version");
        match fs::read_to_string(&version_file) {
            Ok(s) => match s.trim().parse::<u32>() {
                Ok(v) if v <= CACHE_VERSION => {}
                Ok(v) => {
                    return Err(BackendError::Other(format!(
                        "cache {}: layout version {v} is newer than this program supports ({CACHE_VERSION})",
                        dir.display()
                    )));
                }
                Err(_) => tracing::warn!(
                    "cache {}: unreadable version file {:?}",
                    dir.display(),
                    s.trim()
                ),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("cache {}: {e}", version_file.display()),
        }
        let c = CachedBackend {
            inner,
            dir,
            tree_packs: RwLock::new(None),
            cached_packs: Mutex::new(HashSet::new()),
            fetching: Mutex::new(HashMap::new()),
            warned: AtomicBool::new(false),
        };
        if let Err(e) = c.setup(base) {
            tracing::warn!(
                "cache {}: {e}; reading from the repository directly",
                c.dir.display()
            );
            c.warned.store(true, Ordering::Relaxed);
        }
        Ok(c)
    }

    /// Create the directory layout, tag and version file; touch the repository directory.
    fn setup(&self, base: &Path) -> io::Result<()> {
        mkdir(base)?;
        create_if_missing(
            &base.join("CACHEDIR.TAG"),
            CACHEDIR_TAG.as_bytes(),
            META_MODE,
        )?;
        mkdir(&self.dir)?;
        create_if_missing(
            &self.dir.join("version"),
            CACHE_VERSION.to_string().as_bytes(),
            META_MODE,
        )?;
        for t in CACHED_TYPES {
            mkdir(&self.dir.join(t.dir()))?;
        }
        touch(&self.dir)
    }

    /// The per-repository cache directory, `<base>/<repo id>`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &Arc<dyn Backend> {
        &self.inner
    }

    /// Where the cached copy of a file lives (`None` for types or names that are never
    /// cached).
    pub fn cache_path(&self, t: FileType, name: &str) -> Option<PathBuf> {
        if !CACHED_TYPES.contains(&t) || !is_cache_name(name) {
            return None;
        }
        let sub = name.get(..2)?;
        Some(self.dir.join(t.dir()).join(sub).join(name))
    }

    /// True when the cache holds a copy of the file (not verified).
    pub fn is_cached(&self, t: FileType, name: &str) -> bool {
        self.cache_path(t, name).is_some_and(|p| p.is_file())
    }

    /// Declare which packs contain tree blobs: reading any part of one of them fetches the
    /// whole pack into the cache. `names` must be the complete set (from the full index):
    /// cached packs not in it are removed, like restic does when it loads the index.
    pub fn set_tree_packs(&self, names: impl IntoIterator<Item = String>) {
        let set: HashSet<String> = names.into_iter().collect();
        for (name, path) in self.cached_entries(FileType::Pack) {
            if !set.contains(&name) {
                self.drop_path(FileType::Pack, &name, &path);
            }
        }
        let mut guard = self.tree_packs.write().unwrap_or_else(|e| e.into_inner());
        *guard = Some(set);
    }

    /// Fetch a whole pack into the cache (no download when a verified copy is there already).
    /// Returns whether the pack is now cached; an error only when `inner` cannot read it.
    pub fn cache_pack(&self, name: &str) -> Result<bool, BackendError> {
        Ok(matches!(self.fill_pack(name)?, Fill::Cached(_)))
    }

    fn is_tree_pack(&self, name: &str) -> bool {
        let guard = self.tree_packs.read().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().is_some_and(|s| s.contains(name))
    }

    /// Log a failure to write the cache: the first as a warning, later ones at debug level.
    fn warn_store(&self, what: &Path, e: &dyn std::fmt::Display) {
        if self.warned.swap(true, Ordering::Relaxed) {
            tracing::debug!("cache {}: {e}", what.display());
        } else {
            tracing::warn!("cache {}: {e}; continuing without caching", what.display());
        }
    }

    /// Remove a cache entry (a missing file is fine).
    fn drop_path(&self, t: FileType, name: &str, path: &Path) {
        if t == FileType::Pack {
            lock(&self.cached_packs).remove(name);
        }
        match fs::remove_file(path) {
            Ok(()) => tracing::debug!("cache: dropped {} {name}", t.name()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("cache {}: cannot remove: {e}", path.display()),
        }
    }

    /// Remove the cache entry of a file, if any.
    fn drop_entry(&self, t: FileType, name: &str) {
        if let Some(p) = self.cache_path(t, name) {
            self.drop_path(t, name, &p);
        }
    }

    /// The cached files of a type as (name, path).
    fn cached_entries(&self, t: FileType) -> Vec<(String, PathBuf)> {
        let mut out = Vec::new();
        let Ok(subs) = fs::read_dir(self.dir.join(t.dir())) else {
            return out;
        };
        for sub in subs.flatten() {
            let Ok(files) = fs::read_dir(sub.path()) else {
                continue;
            };
            for f in files.flatten() {
                if let Some(name) = f.file_name().to_str()
                    && is_cache_name(name)
                {
                    out.push((name.to_string(), f.path()));
                }
            }
        }
        out
    }

    /// Read and verify a cached file; a damaged one is dropped. `None` when not usable.
    fn load_cached(&self, t: FileType, name: &str) -> Option<Vec<u8>> {
        let path = self.cache_path(t, name)?;
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!("cache {}: {e}", path.display());
                return None;
            }
        };
        if matches_name(name, &data) {
            Some(data)
        } else {
            tracing::warn!(
                "cache: cached {} {name} is damaged; fetching it again",
                t.name()
            );
            self.drop_path(t, name, &path);
            None
        }
    }

    /// Store a verbatim copy atomically (temporary file, rename). Data that does not hash to
    /// its name is not cached. Returns whether the file is now in the cache.
    fn store(&self, t: FileType, name: &str, data: &[u8]) -> bool {
        let Some(path) = self.cache_path(t, name) else {
            return false;
        };
        if !matches_name(name, data) {
            tracing::debug!(
                "cache: not caching {} {name}: content does not match",
                t.name()
            );
            return false;
        }
        let Some(parent) = path.parent() else {
            return false;
        };
        let tmp = parent.join(format!("{name}-cairn-temp-{:016x}", rand::random::<u64>()));
        let result = (|| -> io::Result<()> {
            mkdir(parent)?;
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .open(&tmp)?;
            f.write_all(data)?;
            drop(f);
            fs::set_permissions(&tmp, fs::Permissions::from_mode(FILE_MODE))?;
            fs::rename(&tmp, &path)
        })();
        match result {
            Ok(()) => true,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                self.warn_store(&path, &e);
                false
            }
        }
    }

    /// The path of a verified cached copy of a pack, or `None` (a damaged copy is dropped).
    fn verified_pack(&self, name: &str) -> Option<PathBuf> {
        let path = self.cache_path(FileType::Pack, name)?;
        if lock(&self.cached_packs).contains(name) {
            return Some(path);
        }
        if !path.is_file() {
            return None;
        }
        self.load_cached(FileType::Pack, name)?;
        lock(&self.cached_packs).insert(name.to_string());
        Some(path)
    }

    /// Make sure a whole pack is in the cache, downloading it at most once at a time.
    fn fill_pack(&self, name: &str) -> Result<Fill, BackendError> {
        if self.cache_path(FileType::Pack, name).is_none() {
            return self.inner.read(FileType::Pack, name).map(Fill::Uncached);
        }
        let slot = {
            let mut map = lock(&self.fetching);
            Arc::clone(map.entry(name.to_string()).or_default())
        };
        let result = {
            let _one_download = lock(&slot);
            match self.verified_pack(name) {
                Some(p) => Ok(Fill::Cached(p)),
                None => self.inner.read(FileType::Pack, name).map(|data| {
                    if self.store(FileType::Pack, name, &data) {
                        lock(&self.cached_packs).insert(name.to_string());
                        match self.cache_path(FileType::Pack, name) {
                            Some(p) => Fill::Cached(p),
                            None => Fill::Uncached(data),
                        }
                    } else {
                        Fill::Uncached(data)
                    }
                }),
            }
        };
        lock(&self.fetching).remove(name);
        result
    }

    /// Read a byte range of a cached file; `None` on any failure (the caller reads through).
    fn read_cached_range(&self, path: &Path, offset: u64, len: u64) -> Option<Vec<u8>> {
        let len = usize::try_from(len).ok()?;
        let f = File::open(path).ok()?;
        let mut buf = vec![0u8; len];
        match f.read_exact_at(&mut buf, offset) {
            Ok(()) => Some(buf),
            Err(e) => {
                tracing::debug!("cache {}: {e}", path.display());
                None
            }
        }
    }
}

/// `len` bytes at `offset` of `data`, or the short-read error a backend reports.
fn slice_range(data: &[u8], name: &str, offset: u64, len: u64) -> Result<Vec<u8>, BackendError> {
    let start = usize::try_from(offset).ok();
    let end = start
        .zip(usize::try_from(len).ok())
        .and_then(|(s, l)| s.checked_add(l));
    match start.zip(end).and_then(|(s, e)| data.get(s..e)) {
        Some(b) => Ok(b.to_vec()),
        None => Err(BackendError::Other(format!(
            "{name}: short read: wanted {len} bytes at offset {offset} of {}",
            data.len()
        ))),
    }
}

impl Backend for CachedBackend {
    fn wants_tree_packs(&self) -> bool {
        true
    }

    fn hint_tree_packs(&self, packs: &[String]) {
        self.set_tree_packs(packs.iter().cloned());
    }

    fn lock_settle_time(&self) -> std::time::Duration {
        self.inner.lock_settle_time()
    }

    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self) -> Result<(), BackendError> {
        self.inner.create()
    }

    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>, BackendError> {
        let files = self.inner.list(t)?;
        if CACHED_TYPES.contains(&t) {
            let present: HashSet<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
            for (name, path) in self.cached_entries(t) {
                if !present.contains(name.as_str()) {
                    self.drop_path(t, &name, &path);
                }
            }
        }
        Ok(files)
    }

    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>, BackendError> {
        if self.cache_path(t, name).is_none() {
            return self.inner.read(t, name);
        }
        if let Some(data) = self.load_cached(t, name) {
            if t == FileType::Pack {
                lock(&self.cached_packs).insert(name.to_string());
            }
            return Ok(data);
        }
        let data = self.inner.read(t, name)?;
        let wanted = t != FileType::Pack || self.is_tree_pack(name);
        if wanted && self.store(t, name, &data) && t == FileType::Pack {
            lock(&self.cached_packs).insert(name.to_string());
        }
        Ok(data)
    }

    fn read_range(
        &self,
        t: FileType,
        name: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, BackendError> {
        if self.cache_path(t, name).is_none() {
            return self.inner.read_range(t, name, offset, len);
        }
        if t != FileType::Pack {
            // Snapshots and index files are small: cache them whole.
            let data = self.read(t, name)?;
            return slice_range(&data, name, offset, len);
        }
        let path = if self.is_tree_pack(name) {
            match self.fill_pack(name)? {
                Fill::Cached(p) => Some(p),
                Fill::Uncached(data) => return slice_range(&data, name, offset, len),
            }
        } else {
            self.verified_pack(name)
        };
        if let Some(p) = path {
            if let Some(buf) = self.read_cached_range(&p, offset, len) {
                return Ok(buf);
            }
            lock(&self.cached_packs).remove(name);
        }
        self.inner.read_range(t, name, offset, len)
    }

    fn stat(&self, t: FileType, name: &str) -> Result<u64, BackendError> {
        let r = self.inner.stat(t, name);
        if let Err(e) = &r
            && e.is_not_found()
        {
            self.drop_entry(t, name);
        }
        r
    }

    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<(), BackendError> {
        self.inner.write(t, name, data)?;
        if matches!(t, FileType::Snapshot | FileType::Index) {
            self.store(t, name, data);
        }
        Ok(())
    }

    /// Packs are not cached when written, so streaming them bypasses the cache.
    fn start_pack(&self) -> Result<Option<Box<dyn PackUpload>>, BackendError> {
        self.inner.start_pack()
    }

    fn remove(&self, t: FileType, name: &str) -> Result<(), BackendError> {
        let r = self.inner.remove(t, name);
        match &r {
            Ok(()) => self.drop_entry(t, name),
            Err(e) if e.is_not_found() => self.drop_entry(t, name),
            Err(_) => {}
        }
        r
    }
}
