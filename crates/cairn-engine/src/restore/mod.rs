//! `restore`: write a tree of a snapshot into a local directory.
//!
//! The data path follows restic's restorer:
//! 1. walk the tree (include/exclude filters on the snapshot path of every node), create the
//!    directories, and collect files, links and special nodes in a compact plan ([`plan`];
//!    helper threads load the trees ahead of the walk, [`trees`]);
//! 2. compare files that already exist in the target with the snapshot (overwrite policy);
//! 3. group the data blobs still needed by pack, read each pack's needed byte ranges (at most
//!    a few MiB each) on one worker per core, decode every blob once, in place, and `pwrite` it
//!    to each (file, offset) that uses it ([`fetch`], [`files`]); a file's metadata is set as
//!    soon as its last blob is written, and the write-out of large files to disk is started
//!    while the restore goes on;
//! 4. create symlinks, fifos, devices and hard links, delete unexpected entries (`delete`),
//!    then set directory metadata deepest first so the times stick ([`meta`]);
//! 5. optionally re-read every restored file and compare it with the snapshot ([`check`]).
//!
//! Errors that concern one file (missing or damaged blobs, I/O errors) are reported through the
//! warning callback and counted in [`RestoreResult::errors`]; the restore continues.

mod check;
mod fetch;
mod files;
mod meta;
mod plan;
mod select;
mod trees;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_update;
#[cfg(test)]
mod tests_walk;

use crate::error::{EngineError, Result};
use cairn_repo::Id;
use cairn_repo::repository::Repository;
use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What to do with files that already exist in the target (`--overwrite`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overwrite {
    /// Always make the file match the snapshot. The existing content is compared blob by blob
    /// and only differing parts are written (restic's default).
    #[default]
    Always,
    /// Like [`Overwrite::Always`], but a file whose size and mtime match the snapshot is assumed
    /// to be up to date without reading it.
    IfChanged,
    /// Only replace an existing file when the snapshot's mtime is newer.
    IfNewer,
    /// Never touch existing files.
    Never,
}

impl Overwrite {
    /// The name restic uses on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Overwrite::Always => "always",
            Overwrite::IfChanged => "if-changed",
            Overwrite::IfNewer => "if-newer",
            Overwrite::Never => "never",
        }
    }
}

impl std::str::FromStr for Overwrite {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Overwrite> {
        Ok(match s {
            "always" => Overwrite::Always,
            "if-changed" => Overwrite::IfChanged,
            "if-newer" => Overwrite::IfNewer,
            "never" => Overwrite::Never,
            _ => {
                return Err(EngineError::Invalid(format!(
                    "invalid overwrite behavior {s:?}, must be one of (always|if-changed|if-newer|never)"
                )));
            }
        })
    }
}

impl std::fmt::Display for Overwrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Options of a restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Directory the tree is restored into (created if missing).
    pub target: PathBuf,
    /// `--include` patterns, matched against the path inside the restored tree (`/a/b`).
    pub includes: Vec<String>,
    /// `--iinclude`: case-insensitive include patterns.
    pub iincludes: Vec<String>,
    /// `--exclude` patterns (mutually exclusive with includes, like restic).
    pub excludes: Vec<String>,
    /// `--iexclude`: case-insensitive exclude patterns.
    pub iexcludes: Vec<String>,
    /// Leave holes for runs of zero bytes in newly written files.
    pub sparse: bool,
    /// Re-read every restored file afterwards and compare it with the snapshot.
    pub verify: bool,
    /// Compute and report what would happen; write nothing.
    pub dry_run: bool,
    /// Policy for files that already exist in the target.
    pub overwrite: Overwrite,
    /// Remove entries of restored directories that are not in the snapshot (only entries the
    /// filters select).
    pub delete: bool,
    /// Worker threads for reading packs and writing files; 0 = automatic.
    pub threads: usize,
    /// Restore ownership from the user/group names instead of the numeric ids
    /// (restic's `--ownership-by-name`; the numeric id is used when a name is unknown here).
    pub ownership_by_name: bool,
}

/// Live counters of a running restore (read them from another thread).
#[derive(Debug, Default)]
pub struct RestoreProgress {
    /// Files, links and special nodes selected (directories not included).
    pub total_files: AtomicU64,
    /// Bytes of file content selected.
    pub total_bytes: AtomicU64,
    /// Files, links and special nodes finished (restored, or left as they are).
    pub files_done: AtomicU64,
    /// Content bytes finished (written, or found already correct).
    pub bytes_done: AtomicU64,
    /// Files left as they were (unchanged content or the overwrite policy).
    pub files_skipped: AtomicU64,
    /// Directories whose metadata has been restored.
    pub dirs_done: AtomicU64,
    /// Errors so far (each also reported as a warning).
    pub errors: AtomicU64,
    /// Set once the tree walk is complete (the totals are final).
    pub planned: AtomicBool,
    /// Files re-read by `verify`.
    pub files_verified: AtomicU64,
    /// Set from another thread (e.g. on Ctrl-C) to stop the restore early; `restore` then
    /// returns [`EngineError::Interrupted`].
    pub cancel: AtomicBool,
}

/// A plain copy of [`RestoreProgress`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgressSnapshot {
    /// See [`RestoreProgress::total_files`].
    pub total_files: u64,
    /// See [`RestoreProgress::total_bytes`].
    pub total_bytes: u64,
    /// See [`RestoreProgress::files_done`].
    pub files_done: u64,
    /// See [`RestoreProgress::bytes_done`].
    pub bytes_done: u64,
    /// See [`RestoreProgress::files_skipped`].
    pub files_skipped: u64,
    /// See [`RestoreProgress::dirs_done`].
    pub dirs_done: u64,
    /// See [`RestoreProgress::errors`].
    pub errors: u64,
    /// See [`RestoreProgress::planned`].
    pub planned: bool,
    /// See [`RestoreProgress::files_verified`].
    pub files_verified: u64,
}

impl RestoreProgress {
    /// New zeroed counters.
    pub fn new() -> RestoreProgress {
        RestoreProgress::default()
    }

    /// Ask the running restore to stop.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Whether [`RestoreProgress::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Read all counters.
    pub fn snapshot(&self) -> ProgressSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ProgressSnapshot {
            total_files: g(&self.total_files),
            total_bytes: g(&self.total_bytes),
            files_done: g(&self.files_done),
            bytes_done: g(&self.bytes_done),
            files_skipped: g(&self.files_skipped),
            dirs_done: g(&self.dirs_done),
            errors: g(&self.errors),
            planned: self.planned.load(Ordering::Relaxed),
            files_verified: g(&self.files_verified),
        }
    }
}

/// Outcome of a restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreResult {
    /// Files whose content was written (new or updated), plus links and special nodes created.
    /// In a dry run: what would be.
    pub files_restored: u64,
    /// Directories restored (metadata set).
    pub dirs: u64,
    /// Content bytes written (logical bytes, holes included).
    pub bytes_written: u64,
    /// Existing files left as they were (content already correct, or the overwrite policy).
    pub files_skipped: u64,
    /// Entries removed by `delete` (each removed tree counts once).
    pub files_deleted: u64,
    /// Number of errors (failed files, nodes or directories); non-zero means the restore is
    /// incomplete and the caller should exit non-zero.
    pub errors: u64,
    /// Every warning and error message, in the order reported (capped at 100 000).
    pub warnings: Vec<String>,
    /// Files re-read by `verify`.
    pub files_verified: u64,
    /// Mismatches found by `verify`.
    pub verify_errors: Vec<String>,
}

/// Most messages kept in [`RestoreResult::warnings`].
const MAX_KEPT_WARNINGS: usize = 100_000;

/// Collects warnings and errors from all threads.
pub(crate) struct Reporter<'a> {
    cb: &'a (dyn Fn(&str) + Sync),
    progress: &'a RestoreProgress,
    warnings: Mutex<Vec<String>>,
    errors: AtomicU64,
}

impl<'a> Reporter<'a> {
    fn new(cb: &'a (dyn Fn(&str) + Sync), progress: &'a RestoreProgress) -> Reporter<'a> {
        Reporter {
            cb,
            progress,
            warnings: Mutex::new(Vec::new()),
            errors: AtomicU64::new(0),
        }
    }

    /// A problem that does not make the restore fail (e.g. xattrs unsupported).
    pub(crate) fn warn(&self, msg: String) {
        (self.cb)(&msg);
        let mut w = self.warnings.lock();
        if w.len() < MAX_KEPT_WARNINGS {
            w.push(msg);
        }
    }

    /// A failure: reported like a warning and counted as an error.
    pub(crate) fn error(&self, msg: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.progress.errors.fetch_add(1, Ordering::Relaxed);
        self.warn(msg);
    }

    pub(crate) fn progress(&self) -> &RestoreProgress {
        self.progress
    }
}

/// Human-readable snapshot path (`/a/b`) for messages.
pub(crate) fn show(location: &[u8]) -> String {
    if location.is_empty() {
        "/".to_string()
    } else {
        String::from_utf8_lossy(location).into_owned()
    }
}

/// Number of worker threads for `opts.threads`: by default one per core (the work is CPU
/// bound: decrypting, decompressing, hashing and copying into the page cache), at least two.
fn worker_count(threads: usize) -> usize {
    if threads > 0 {
        return threads.min(256);
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    cores.clamp(2, 16)
}

/// Restore the tree `root_tree` into `opts.target`.
///
/// The repository index must be loaded. Returns an error only for problems that stop the whole
/// restore (bad options, the target cannot be created, the root tree cannot be loaded); failures
/// of single files are reported through `on_warning`, counted in [`RestoreResult::errors`] and
/// the restore continues.
pub fn restore(
    repo: &Repository,
    root_tree: Id,
    opts: &RestoreOptions,
    progress: &RestoreProgress,
    on_warning: &(dyn Fn(&str) + Sync),
) -> Result<RestoreResult> {
    if opts.dry_run && opts.verify {
        return Err(EngineError::Invalid(
            "--dry-run and --verify are mutually exclusive".into(),
        ));
    }
    if opts.target.as_os_str().is_empty() {
        return Err(EngineError::Invalid(
            "please specify a directory to restore to (--target)".into(),
        ));
    }
    let selector = select::Selector::new(opts)?;
    if opts.delete && !selector.has_filters() && is_root_dir(&opts.target) {
        return Err(EngineError::Invalid(
            "'--target / --delete' must be combined with an include or exclude filter".into(),
        ));
    }
    let target = absolute(&opts.target)?;
    let reporter = Reporter::new(on_warning, progress);
    let threads = worker_count(opts.threads);
    let ctx = meta::MetaCtx::new(opts.ownership_by_name);

    // 1. Walk and plan (creates directories unless dry run).
    let mut planned = plan::build(
        repo, root_tree, &target, opts, &selector, &reporter, threads,
    )?;
    progress.planned.store(true, Ordering::Relaxed);

    let mut result = RestoreResult::default();

    let stop = || {
        if progress.is_cancelled() {
            Err(EngineError::Interrupted)
        } else {
            Ok(())
        }
    };
    stop()?;

    // 2. Compare existing files with the snapshot.
    check::classify_existing(repo, &mut planned, opts, threads, &reporter);

    stop()?;

    // 3. Contents.
    let fetch_stats = fetch::restore_contents(repo, &mut planned, opts, threads, &ctx, &reporter);
    result.bytes_written = fetch_stats.bytes_written;

    stop()?;

    // 4. Special nodes, hard links, metadata-only files, deletion, directory metadata.
    let finish = meta::finish(&planned, opts, threads, &ctx, &reporter);
    result.files_deleted = finish.deleted;
    result.dirs = finish.dirs;

    result.files_restored = fetch_stats.files_restored + finish.nodes_created;
    result.files_skipped = progress.files_skipped.load(Ordering::Relaxed);

    stop()?;

    // 5. Verify.
    if opts.verify {
        let (verified, errors) = check::verify_restored(repo, &planned, threads, progress);
        result.files_verified = verified;
        for e in &errors {
            reporter.error(format!("verify: {e}"));
        }
        result.verify_errors = errors;
    }

    stop()?;
    result.errors = reporter.errors.load(Ordering::Relaxed);
    result.warnings = std::mem::take(&mut *reporter.warnings.lock());
    Ok(result)
}

fn is_root_dir(p: &std::path::Path) -> bool {
    let mut comps = p.components();
    matches!(comps.next(), Some(std::path::Component::RootDir)) && comps.next().is_none()
}

fn absolute(p: &std::path::Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| EngineError::io(p, e))
}

/// Run `f(0..count)` on up to `threads` threads (items handed out one at a time).
pub(crate) fn run_parallel(threads: usize, count: usize, f: impl Fn(usize) + Sync) {
    let threads = threads.min(count);
    if threads <= 1 {
        (0..count).for_each(&f);
        return;
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= count {
                break;
            }
            f(i);
        }
    };
    std::thread::scope(|s| {
        for _ in 1..threads {
            // If a thread cannot be started, the others (and this one) do the work.
            let _ = std::thread::Builder::new().spawn_scoped(s, work);
        }
        work();
    });
}
