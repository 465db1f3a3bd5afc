//! Comparing files on disk with the snapshot: the overwrite check for existing files and
//! `verify` after the restore. Both hash the file blob by blob (the blob id is the SHA-256 of
//! its plaintext), like restic's `verifyFile`.

use super::files::{Action, Existing, FileJob};
use super::plan::Plan;
use super::{Overwrite, Reporter, RestoreOptions, RestoreProgress, run_parallel};
use cairn_repo::repository::Repository;
use cairn_repo::{BlobType, Id};
use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// How an existing file compares with a node.
#[derive(Debug, Default)]
pub(crate) struct FileState {
    /// Per content blob: the bytes at its offset already hash to its id.
    pub matches: Vec<bool>,
    /// The file has the node's size.
    pub size_matches: bool,
    /// Hard links of the existing file.
    pub nlink: u64,
}

impl FileState {
    /// restic's `NeedsRestore`.
    pub fn needs_restore(&self) -> bool {
        !self.size_matches || self.matches.iter().any(|m| !m)
    }
}

/// Open for reading without following symlinks; `O_NOATIME` (owner or root only) keeps the
/// restored access times intact.
fn open_read(path: &Path) -> io::Result<File> {
    let open = |extra: i32| {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | extra)
            .open(path)
    };
    match open(libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(0),
        r => r,
    }
}

/// Compare the file at `path` with `node`. `trust_mtime`: size and mtime equal ⇒ matching
/// without reading. `fail_fast`: the first difference is an error (for `verify`).
pub(crate) fn compare_file(
    repo: &Repository,
    path: &Path,
    job: &FileJob,
    trust_mtime: bool,
    fail_fast: bool,
    buf: &mut Vec<u8>,
) -> Result<FileState, String> {
    let f = open_read(path).map_err(|e| e.to_string())?;
    let m = f.metadata().map_err(|e| e.to_string())?;
    if !m.is_file() {
        return Err("expected a regular file".into());
    }
    let mut state = FileState {
        matches: Vec::new(),
        size_matches: m.len() == job.size,
        nlink: m.nlink(),
    };
    if !state.size_matches && fail_fast {
        return Err(format!(
            "invalid file size: expected {}, got {}",
            job.size,
            m.len()
        ));
    }
    let content: &[Id] = &job.content;
    let mtime_ns = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
    if trust_mtime && state.size_matches && mtime_ns == job.meta.mtime_ns() {
        state.matches = vec![true; content.len()];
        return Ok(state);
    }
    state.matches = vec![false; content.len()];
    let mut off = 0u64;
    for (i, id) in content.iter().enumerate() {
        let Some(loc) = repo.locate(BlobType::Data, id) else {
            return Err(format!("blob {} not found in index", id.short()));
        };
        let len = loc.to_pack_blob(BlobType::Data, *id).plaintext_length();
        let len = usize::try_from(len).map_err(|_| "blob too large".to_string())?;
        buf.resize(len, 0);
        match f.read_exact_at(buf, off) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !fail_fast => {
                state.size_matches = false;
                break;
            }
            Err(e) => return Err(format!("read at offset {off}: {e}")),
        }
        let ok = Id::hash(buf.as_slice()) == *id;
        if fail_fast && !ok {
            return Err(format!("unexpected content starting at offset {off}"));
        }
        if let Some(slot) = state.matches.get_mut(i) {
            *slot = ok;
        }
        off += len as u64;
    }
    Ok(state)
}

/// The overwrite check for files that exist as regular files: decide between metadata only,
/// an in-place update of the differing blobs, or a full restore. Runs on `threads` threads.
pub(crate) fn classify_existing(
    repo: &Repository,
    plan: &mut Plan,
    opts: &RestoreOptions,
    threads: usize,
    rep: &Reporter<'_>,
) {
    let candidates: Vec<usize> = plan
        .files
        .iter()
        .enumerate()
        .filter(|(_, f)| matches!(f.existing, Existing::Present { regular: true, .. }))
        .map(|(i, _)| i)
        .collect();
    let trust_mtime = opts.overwrite == Overwrite::IfChanged;
    let results: Mutex<Vec<(usize, Option<FileState>)>> = Mutex::new(Vec::new());
    {
        let files = &plan.files;
        let plan_parents = &plan.parents;
        run_parallel(threads, candidates.len(), |k| {
            let Some(job) = candidates.get(k).and_then(|&i| files.get(i)) else {
                return;
            };
            let mut buf = Vec::new();
            // A file that cannot be compared is restored from scratch (like restic).
            let path = job.path(plan_parents);
            let state = compare_file(repo, &path, job, trust_mtime, false, &mut buf).ok();
            if let Some(&i) = candidates.get(k) {
                results.lock().push((i, state));
            }
        });
    }
    let progress = rep.progress();
    for (i, state) in results.into_inner() {
        let Some(job) = plan.files.get_mut(i) else {
            continue;
        };
        let Some(state) = state else {
            continue;
        };
        if !state.needs_restore() {
            job.action = Action::MetadataOnly;
            progress.files_skipped.fetch_add(1, Ordering::Relaxed);
            progress.files_done.fetch_add(1, Ordering::Relaxed);
            progress.bytes_done.fetch_add(job.size, Ordering::Relaxed);
        } else if state.nlink <= 1 {
            job.reuse = Some(state.matches.into_boxed_slice());
        }
    }
    for job in &mut plan.files {
        // Holes cannot be punched into reused files (restic disables sparse there too).
        job.sparse = opts.sparse && job.reuse.is_none();
    }
}

/// `verify`: re-read every file whose content was written and compare it with the snapshot.
/// Returns the number of files checked and the mismatches found.
pub(crate) fn verify_restored(
    repo: &Repository,
    plan: &Plan,
    threads: usize,
    progress: &RestoreProgress,
) -> (u64, Vec<String>) {
    let todo: Vec<usize> = plan
        .files
        .iter()
        .enumerate()
        .filter(|(_, f)| f.action == Action::Write && !f.failed.load(Ordering::Relaxed))
        .map(|(i, _)| i)
        .collect();
    let errors = Mutex::new(Vec::new());
    let checked = AtomicU64::new(0);
    run_parallel(threads, todo.len(), |k| {
        let Some(job) = todo.get(k).and_then(|&i| plan.files.get(i)) else {
            return;
        };
        let mut buf = Vec::new();
        let path = plan.file_path(job);
        if let Err(e) = compare_file(repo, &path, job, false, true, &mut buf) {
            errors.lock().push(format!("{}: {e}", path.display()));
        }
        checked.fetch_add(1, Ordering::Relaxed);
        progress.files_verified.fetch_add(1, Ordering::Relaxed);
    });
    let mut errors = errors.into_inner();
    errors.sort();
    (checked.into_inner(), errors)
}
