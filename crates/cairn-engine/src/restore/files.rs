//! Regular files being restored: creating or reusing the target file, positional writes
//! (sparse-aware), and finishing a file (metadata via its open descriptor) once its last blob
//! has been written.

use super::meta::{self, Meta, MetaCtx, MetaTarget};
use super::plan::Parent;
use super::{Reporter, show};
use cairn_repo::Id;
use parking_lot::Mutex;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Block size used to find holes for sparse files.
const SPARSE_BLOCK: u64 = 4096;
/// Above this many open target files, handles are closed between writes.
const MAX_OPEN_FILES: usize = 256;
/// Files at least this large and made of several blobs are preallocated (non-sparse).
const PREALLOCATE_MIN: u64 = 1 << 20;
/// Once this much of a file has been written since its last write-out, its dirty pages are
/// sent on to the disk (see [`start_writeback`]) …
const WRITEBACK_CHUNK: u64 = 8 << 20;
/// … and so is the rest of a finished file at least this large. Smaller files are left to the
/// kernel's (or the user's) later write-out: one call per tiny file costs more CPU than the
/// batched write-out does.
const WRITEBACK_FILE: u64 = 64 << 10;

/// What was at a target path when the tree was walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Existing {
    /// Nothing.
    Absent,
    /// Something; `regular` when it is a regular file.
    Present {
        /// A regular file (its content may be reused).
        regular: bool,
        /// Its mtime in nanoseconds since the epoch.
        mtime_ns: i128,
    },
}

/// What happens to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Write (some of) its content, then set metadata.
    Write,
    /// Content already correct: only set metadata.
    MetadataOnly,
}

/// State of the open target file.
enum Slot {
    Unopened,
    Open(Arc<File>),
    /// Created, handle closed to limit open files; reopened on the next write.
    Closed,
    Done,
}

/// One regular file to restore. Kept compact (the plan holds one per file): the path is
/// the parent's path (see [`Parent`]) joined with the name.
pub(crate) struct FileJob {
    /// Index of the parent directory in the plan's parent list.
    pub parent: u32,
    /// File name.
    pub name: Box<[u8]>,
    /// Size in the snapshot.
    pub size: u64,
    /// Content blob ids.
    pub content: Box<[Id]>,
    /// Metadata to restore.
    pub meta: Meta,
    /// What was at the path during the walk.
    pub existing: Existing,
    /// Decided by the overwrite check.
    pub action: Action,
    /// For an in-place update: which blobs of the existing file already match.
    pub reuse: Option<Box<[bool]>>,
    /// Leave holes for zero runs.
    pub sparse: bool,
    /// Blob writes still to do.
    pub pending: AtomicU32,
    /// Something went wrong (already reported); remaining writes are skipped.
    pub failed: AtomicBool,
    /// Bytes written since the file's dirty pages were last sent to the disk.
    unflushed: AtomicU64,
    slot: Mutex<Slot>,
}

/// Shared state of the writer threads.
pub(crate) struct WriteEnv<'a> {
    /// Parent directories of the files.
    pub parents: &'a [Parent],
    /// Remove whole directories that are in the way of a file (`delete`).
    pub allow_recursive_delete: bool,
    /// Ownership lookups and privileges.
    pub meta: &'a MetaCtx,
    /// Warnings and errors.
    pub rep: &'a Reporter<'a>,
    /// Currently open target files.
    pub open_files: AtomicUsize,
    /// Bytes written so far.
    pub bytes_written: AtomicU64,
    /// Files whose dirty pages are to be sent to the disk, by [`flusher`] (so the workers
    /// never wait for the block layer).
    pub flush: Option<crossbeam_channel::Sender<Arc<File>>>,
}

impl WriteEnv<'_> {
    /// Ask for `f`'s written data to be sent to the disk soon (a hint: dropped when the
    /// flusher is busy).
    fn request_writeback(&self, f: &Arc<File>) {
        if let Some(tx) = &self.flush {
            let _ = tx.try_send(f.clone());
        }
    }
}

/// Start the write-out of each file received, until the senders are gone.
pub(crate) fn flusher(files: crossbeam_channel::Receiver<Arc<File>>) {
    for f in files {
        start_writeback(&f);
    }
}

fn io_other(msg: &str) -> io::Error {
    io::Error::other(msg.to_string())
}

impl FileJob {
    /// A file to write, as found by the walk.
    pub(crate) fn new(
        parent: u32,
        name: Box<[u8]>,
        size: u64,
        content: Box<[Id]>,
        meta: Meta,
        existing: Existing,
    ) -> FileJob {
        FileJob {
            parent,
            name,
            size,
            content,
            meta,
            existing,
            action: Action::Write,
            reuse: None,
            sparse: false,
            pending: AtomicU32::new(0),
            failed: AtomicBool::new(false),
            unflushed: AtomicU64::new(0),
            slot: Mutex::new(Slot::Unopened),
        }
    }

    /// Target path.
    pub(crate) fn path(&self, parents: &[Parent]) -> PathBuf {
        let name = OsStr::from_bytes(&self.name);
        match parents.get(self.parent as usize) {
            Some(p) => p.path.join(name),
            None => PathBuf::from(name),
        }
    }

    /// Path inside the snapshot tree, for messages.
    pub(crate) fn location(&self, parents: &[Parent]) -> Vec<u8> {
        let parent = parents
            .get(self.parent as usize)
            .map_or(&[][..], |p| &p.location);
        super::plan::child_location(parent, &self.name)
    }

    /// Mark failed and report (once per file).
    pub(crate) fn fail(&self, env: &WriteEnv<'_>, msg: impl std::fmt::Display) {
        if !self.failed.swap(true, Ordering::AcqRel) {
            let loc = self.location(env.parents);
            env.rep.error(format!("{}: {msg}", show(&loc)));
        }
    }

    /// Create or open the target for writing (restic's `createFile`): an existing regular file
    /// with one link is reused; anything else in the way is removed first.
    fn open_target(&self, path: &Path, env: &WriteEnv<'_>) -> io::Result<File> {
        if self.existing == Existing::Absent {
            match create_new(path) {
                Ok(f) => return self.prepare(f, true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        let mut reused = None;
        if let Ok(m) = std::fs::symlink_metadata(path)
            && m.is_file()
        {
            let f = match open_existing(path) {
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    // A read-only file: make it writable; the mode is restored afterwards.
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
                    open_existing(path)?
                }
                r => r?,
            };
            let fm = f.metadata()?;
            if fm.is_file() && std::os::unix::fs::MetadataExt::nlink(&fm) <= 1 {
                reused = Some(f);
            }
        }
        match reused {
            Some(f) => self.prepare(f, false),
            None => {
                remove_in_the_way(path, env.allow_recursive_delete)?;
                let f = create_new(path)?;
                self.prepare(f, true)
            }
        }
    }

    /// Size a freshly opened target: an in-place update keeps the content and fixes the
    /// length; a full restore drops old content; sparse files get their length up front.
    fn prepare(&self, f: File, new: bool) -> io::Result<File> {
        let size = self.size;
        if self.reuse.is_some() {
            if new {
                return Err(io_other(
                    "existing file changed during restore (cannot update it in place)",
                ));
            }
            f.set_len(size)?;
            return Ok(f);
        }
        if !new {
            f.set_len(0)?;
        }
        if self.sparse {
            if size > 0 {
                f.set_len(size)?;
            }
        } else if size >= PREALLOCATE_MIN && self.content.len() > 1 {
            preallocate(&f, size);
        }
        Ok(f)
    }

    /// A handle for writing, opening or creating the file on first use.
    fn handle(&self, env: &WriteEnv<'_>) -> io::Result<Arc<File>> {
        let mut slot = self.slot.lock();
        match &*slot {
            Slot::Open(f) => Ok(f.clone()),
            Slot::Unopened => {
                let f = Arc::new(self.open_target(&self.path(env.parents), env)?);
                env.open_files.fetch_add(1, Ordering::Relaxed);
                *slot = Slot::Open(f.clone());
                Ok(f)
            }
            Slot::Closed => {
                let f = Arc::new(open_existing(&self.path(env.parents))?);
                env.open_files.fetch_add(1, Ordering::Relaxed);
                *slot = Slot::Open(f.clone());
                Ok(f)
            }
            Slot::Done => Err(io_other("file already finished")),
        }
    }

    /// Write one blob's plaintext at `off`; the writer of the last pending blob finishes the
    /// file (metadata, close).
    pub(crate) fn deliver(&self, data: &[u8], off: u64, env: &WriteEnv<'_>) {
        if !self.failed.load(Ordering::Acquire) {
            match self.handle(env) {
                Ok(f) => match write_at(&f, data, off, self.sparse) {
                    Ok(()) => {
                        let n = data.len() as u64;
                        let unflushed = self.unflushed.fetch_add(n, Ordering::Relaxed) + n;
                        if unflushed >= WRITEBACK_CHUNK
                            && self.unflushed.swap(0, Ordering::Relaxed) >= WRITEBACK_CHUNK
                        {
                            env.request_writeback(&f);
                        }
                        env.bytes_written.fetch_add(n, Ordering::Relaxed);
                        env.rep
                            .progress()
                            .bytes_done
                            .fetch_add(n, Ordering::Relaxed);
                    }
                    Err(e) => self.fail(env, format!("write at offset {off}: {e}")),
                },
                Err(e) => self.fail(env, e),
            }
        }
        self.release(env);
    }

    /// One pending write is done (written, skipped or failed).
    pub(crate) fn release(&self, env: &WriteEnv<'_>) {
        let before = self.pending.fetch_sub(1, Ordering::AcqRel);
        if before == 1 {
            self.finish(env);
        } else if env.open_files.load(Ordering::Relaxed) > MAX_OPEN_FILES {
            let mut slot = self.slot.lock();
            if matches!(&*slot, Slot::Open(_)) {
                *slot = Slot::Closed;
                env.open_files.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// All blobs are written: set metadata and close. Also used for files without blobs to
    /// write (empty files, or only the length changes).
    pub(crate) fn finish(&self, env: &WriteEnv<'_>) {
        let file = if self.failed.load(Ordering::Acquire) {
            None
        } else {
            match self.handle(env) {
                Ok(f) => Some(f),
                Err(e) => {
                    self.fail(env, e);
                    None
                }
            }
        };
        {
            let mut slot = self.slot.lock();
            if matches!(&*slot, Slot::Open(_)) {
                env.open_files.fetch_sub(1, Ordering::Relaxed);
            }
            *slot = Slot::Done;
        }
        if let Some(f) = file {
            let existed = self.existing != Existing::Absent;
            meta::apply(
                MetaTarget::File(&f),
                Path::new(""),
                &self.meta,
                existed,
                env.meta,
                env.rep,
                &|| self.location(env.parents),
            );
            if self.size >= WRITEBACK_FILE {
                env.request_writeback(&f);
            }
        }
        env.rep
            .progress()
            .files_done
            .fetch_add(1, Ordering::Relaxed);
    }
}

fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

fn open_existing(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io_other("not a regular file"));
    }
    Ok(f)
}

/// Remove whatever is at `path` so a file can be created there. Directories are only
/// removed recursively when allowed (`delete`), otherwise only when empty.
pub(crate) fn remove_in_the_way(path: &Path, recursive: bool) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            if recursive {
                std::fs::remove_dir_all(path)
            } else {
                std::fs::remove_dir(path)
            }
        }
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(target_os = "linux")]
fn preallocate(f: &File, size: u64) {
    use std::os::fd::AsRawFd;
    let Ok(len) = i64::try_from(size) else {
        return;
    };
    // Failure (unsupported file system) is harmless.
    let _ = nix::fcntl::fallocate(f.as_raw_fd(), nix::fcntl::FallocateFlags::empty(), 0, len);
}

#[cfg(not(target_os = "linux"))]
fn preallocate(_f: &File, _size: u64) {}

/// Ask the kernel to start writing the file's dirty pages to disk without waiting, so the
/// data is on its way (overlapping the rest of the restore) instead of all waiting for the
/// final write-out.
#[cfg(target_os = "linux")]
fn start_writeback(f: &File) {
    use std::os::fd::AsRawFd;
    // Only a hint: errors surface (if at all) on the final write-out.
    // SAFETY: a plain system call on a descriptor that `f` keeps open; no memory is passed.
    unsafe {
        libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_f: &File) {}

/// True if every byte is zero.
pub(crate) fn is_zero(data: &[u8]) -> bool {
    let mut chunks = data.chunks_exact(16);
    let all = chunks.by_ref().all(|c| {
        let mut w = [0u8; 16];
        w.copy_from_slice(c);
        u128::from_ne_bytes(w) == 0
    });
    all && chunks.remainder().iter().all(|&b| b == 0)
}

/// The parts of `data` (placed at file offset `off`) that must be written to a sparse file:
/// runs of blocks (aligned to [`SPARSE_BLOCK`] in the file) that are not all zero. Ranges are
/// relative to `data`.
pub(crate) fn nonzero_runs(data: &[u8], off: u64) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let file_pos = off + pos as u64;
        let to_boundary = (SPARSE_BLOCK - file_pos % SPARSE_BLOCK) as usize;
        let end = (pos + to_boundary).min(data.len());
        let piece = data.get(pos..end).unwrap_or_default();
        if !is_zero(piece) {
            match runs.last_mut() {
                Some(last) if last.1 == pos => last.1 = end,
                _ => runs.push((pos, end)),
            }
        }
        pos = end;
    }
    runs
}

/// Positional write; sparse files skip zero blocks (the file already has its length, so the
/// skipped ranges read back as zeros).
pub(crate) fn write_at(f: &File, data: &[u8], off: u64, sparse: bool) -> io::Result<()> {
    if !sparse {
        return f.write_all_at(data, off);
    }
    for (a, b) in nonzero_runs(data, off) {
        if let Some(part) = data.get(a..b) {
            f.write_all_at(part, off + a as u64)?;
        }
    }
    Ok(())
}
