//! `backup`: the archiver. Walks the sources in parallel, reuses unchanged files from a parent
//! snapshot, stores new data through the repository's packers and writes the snapshot last.

mod chunkbuf;
mod file;
mod progress;
mod walk;

pub use progress::{BackupProgress, ProgressSnapshot};

use crate::filter::Excluder;
use crate::{EngineError, Result};
use cairn_repo::gotime::GoTime;
use cairn_repo::node::{Node, NodeType};
use cairn_repo::repository::Repository;
use cairn_repo::snapshot::{Snapshot, SnapshotSummary};
use cairn_repo::tree::Tree;
use cairn_repo::{BlobType, Id};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use walk::{Ctx, Target};

/// How the parent snapshot is chosen.
#[derive(Debug, Clone, Default)]
pub enum ParentChoice {
    /// Newest snapshot with the same host and paths (restic's default).
    #[default]
    Auto,
    /// This snapshot.
    Id(Id),
    /// No parent: read every file (`--force`).
    None,
}

/// Where the data comes from when not from files.
#[derive(Debug, Clone)]
pub struct StdinSource {
    /// File name recorded in the snapshot (`--stdin-filename`).
    pub filename: String,
}

/// Options of a backup run.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// Source paths (files or directories).
    pub paths: Vec<PathBuf>,
    /// Patterns recorded in the snapshot's `excludes`.
    pub exclude_patterns: Vec<String>,
    /// `--exclude-caches` and `--exclude-if-present FILE[:HEADER]` rules: the contents of a
    /// directory holding the tag file are skipped (the directory and the tag file are kept).
    pub tag_rules: Vec<crate::filter::TagFileRule>,
    /// `--exclude-larger-than`.
    pub exclude_larger_than: Option<u64>,
    /// `--one-file-system`.
    pub one_file_system: bool,
    /// Tags of the new snapshot.
    pub tags: Vec<String>,
    /// Host name recorded (`--host`).
    pub host: String,
    /// Snapshot time (`--time`); now when `None`.
    pub time: Option<GoTime>,
    /// Parent selection.
    pub parent: ParentChoice,
    /// `--ignore-inode`.
    pub ignore_inode: bool,
    /// `--ignore-ctime`.
    pub ignore_ctime: bool,
    /// `--with-atime`.
    pub with_atime: bool,
    /// `--dry-run`: read and hash, write nothing.
    pub dry_run: bool,
    /// `--skip-if-unchanged`: no snapshot when nothing changed since the parent.
    pub skip_if_unchanged: bool,
    /// Worker threads (0 = number of cores).
    pub threads: usize,
    /// `--stdin`: back up standard input as one file.
    pub stdin: Option<StdinSource>,
    /// Count the files to back up first (in parallel) so progress can show totals and an ETA.
    /// Costs a second metadata walk; callers that show no progress leave it off.
    pub scan_totals: bool,
}

/// What a backup did.
#[derive(Debug, Clone)]
pub struct BackupResult {
    /// The new snapshot's id (`None` for a dry run or a skipped unchanged backup).
    pub snapshot_id: Option<Id>,
    /// The snapshot (also for dry runs).
    pub snapshot: Snapshot,
    /// Parent used for change detection.
    pub parent: Option<Id>,
    /// Statistics (also stored in the snapshot).
    pub summary: SnapshotSummary,
    /// Files and directories that could not be read.
    pub warnings: Vec<String>,
}

/// Per-run counters for the snapshot summary.
#[derive(Default)]
pub(crate) struct Counters {
    files_new: AtomicU64,
    files_changed: AtomicU64,
    files_unmodified: AtomicU64,
    dirs_new: AtomicU64,
    dirs_changed: AtomicU64,
    dirs_unmodified: AtomicU64,
    bytes_processed: AtomicU64,
    dry_data_blobs: AtomicU64,
    dry_tree_blobs: AtomicU64,
    dry_bytes: AtomicU64,
}

impl Counters {
    fn dir(&self, parent: Option<Id>, new: Id) {
        let c = match parent {
            None => &self.dirs_new,
            Some(p) if p == new => &self.dirs_unmodified,
            Some(_) => &self.dirs_changed,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn dry_blob(&self, t: BlobType, len: u64) {
        match t {
            BlobType::Data => &self.dry_data_blobs,
            BlobType::Tree => &self.dry_tree_blobs,
        }
        .fetch_add(1, Ordering::Relaxed);
        self.dry_bytes.fetch_add(len, Ordering::Relaxed);
    }
}

/// Make a path absolute and remove `.`/`..` lexically (like Go's `filepath.Abs`).
pub fn absolute_clean(p: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(p).map_err(|e| EngineError::io(p, e))?;
    let mut out = PathBuf::from("/");
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(s) => out.push(s),
            _ => {}
        }
    }
    Ok(out)
}

/// Find the parent snapshot: newest with the same host and the same set of paths, not newer
/// than `time`.
pub fn find_parent(
    snapshots: &[(Id, Snapshot)],
    host: &str,
    paths: &[String],
    time: &GoTime,
) -> Option<Id> {
    let mut want: Vec<&String> = paths.iter().collect();
    want.sort();
    want.dedup();
    snapshots
        .iter()
        .filter(|(_, s)| {
            let mut have: Vec<&String> = s.paths.iter().collect();
            have.sort();
            have.dedup();
            s.hostname == host && have == want && s.time <= *time
        })
        .max_by(|a, b| a.1.time.cmp(&b.1.time))
        .map(|(id, _)| *id)
}

/// Run a backup. The repository index must be loaded. `on_warning` is called for each file
/// that cannot be read (the backup goes on; the caller exits 3 if `warnings` is not empty).
pub fn backup(
    repo: &Repository,
    opts: &BackupOptions,
    excluder: Option<&Excluder>,
    progress: &BackupProgress,
    on_warning: &(dyn Fn(&str) + Sync),
) -> Result<BackupResult> {
    let start = GoTime::now();
    let time = opts.time.unwrap_or(start);
    let paths: Vec<PathBuf> = match &opts.stdin {
        Some(s) => vec![PathBuf::from("/").join(&s.filename)],
        None => opts
            .paths
            .iter()
            .map(|p| absolute_clean(p))
            .collect::<Result<_>>()?,
    };
    if paths.is_empty() {
        return Err(EngineError::Invalid(
            "nothing to back up: give at least one path".into(),
        ));
    }
    let path_strings: Vec<String> = paths
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if opts.stdin.is_none() && paths.iter().all(|p| p.symlink_metadata().is_err()) {
        return Err(EngineError::Invalid(format!(
            "none of the source paths exist: {}",
            path_strings.join(", ")
        )));
    }
    let parent_snap: Option<(Id, Snapshot)> = match &opts.parent {
        ParentChoice::None => None,
        ParentChoice::Id(id) => Some((*id, repo.load_snapshot(id)?)),
        ParentChoice::Auto if opts.stdin.is_some() => None,
        ParentChoice::Auto => {
            let mut snaps = repo.load_snapshots()?;
            find_parent(&snaps, &opts.host, &path_strings, &time)
                .and_then(|id| snaps.iter().position(|(i, _)| *i == id))
                .map(|i| snaps.swap_remove(i))
        }
    };
    let parent = parent_snap.as_ref().map(|(id, _)| *id);
    let parent_snap = parent_snap.map(|(_, s)| s);
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    } else {
        opts.threads
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .stack_size(16 << 20)
        .thread_name(|i| format!("backup-{i}"))
        .build()
        .map_err(|e| EngineError::Invalid(format!("starting worker threads: {e}")))?;
    let before = repo.save_stats();
    let ctx = Ctx {
        repo,
        opts,
        excluder,
        progress,
        names: Default::default(),
        warnings: Mutex::new(Vec::new()),
        on_warning,
        counters: Counters::default(),
        max_chunks_in_flight: threads * 4,
        chunks_in_flight: Default::default(),
        dry_seen: Mutex::new(HashSet::new()),
        chunk_pool: Default::default(),
    };
    let tree = if let Some(stdin) = &opts.stdin {
        progress.scan_done();
        save_stdin(&ctx, &stdin.filename)?
    } else {
        let target = Target::from_paths(&paths);
        std::thread::scope(|s| {
            if opts.scan_totals {
                s.spawn(|| scan(&paths, excluder, opts, progress));
            }
            pool.install(|| match &target {
                Target::Full => {
                    let meta = Path::new("/")
                        .symlink_metadata()
                        .map_err(|e| EngineError::io("/", e))?;
                    // Backing up `/` itself: the parent snapshot's root tree is the parent of "/".
                    let parent_root = parent_snap.as_ref().map(|p| Node {
                        node_type: NodeType::Dir,
                        subtree: Some(p.tree),
                        ..Node::default()
                    });
                    let node = walk::save_entry(
                        &ctx,
                        walk::Entry {
                            path: Path::new("/"),
                            name: "/".as_ref(),
                            dir: None,
                            meta: &meta,
                        },
                        parent_root.as_ref(),
                        meta_dev(&meta),
                        true,
                    )?;
                    node.and_then(|n| n.subtree)
                        .ok_or_else(|| EngineError::Invalid("cannot read /".into()))
                }
                Target::Partial(children) => walk::save_partial(
                    &ctx,
                    Path::new("/"),
                    children,
                    parent_snap.as_ref().map(|p| p.tree),
                ),
            })
        })?
    };
    if !opts.dry_run {
        repo.flush()?;
    }
    let after = repo.save_stats();
    let c = &ctx.counters;
    let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let summary = SnapshotSummary {
        backup_start: start,
        backup_end: GoTime::now(),
        files_new: ld(&c.files_new),
        files_changed: ld(&c.files_changed),
        files_unmodified: ld(&c.files_unmodified),
        dirs_new: ld(&c.dirs_new),
        dirs_changed: ld(&c.dirs_changed),
        dirs_unmodified: ld(&c.dirs_unmodified),
        data_blobs: if opts.dry_run {
            ld(&c.dry_data_blobs)
        } else {
            after.data_blobs - before.data_blobs
        },
        tree_blobs: if opts.dry_run {
            ld(&c.dry_tree_blobs)
        } else {
            after.tree_blobs - before.tree_blobs
        },
        data_added: if opts.dry_run {
            ld(&c.dry_bytes)
        } else {
            after.data_added - before.data_added
        },
        data_added_packed: if opts.dry_run {
            0
        } else {
            after.data_added_packed - before.data_added_packed
        },
        total_files_processed: ld(&c.files_new) + ld(&c.files_changed) + ld(&c.files_unmodified),
        total_bytes_processed: ld(&c.bytes_processed),
    };
    let (user, uid, gid) = current_user();
    let snapshot = Snapshot {
        time,
        parent,
        tree,
        paths: path_strings,
        hostname: opts.host.clone(),
        username: user,
        uid,
        gid,
        excludes: opts.exclude_patterns.clone(),
        tags: opts.tags.clone(),
        original: None,
        program_version: format!("cairn {}", env!("CARGO_PKG_VERSION")),
        summary: Some(summary.clone()),
    };
    let unchanged = parent_snap.as_ref().is_some_and(|p| p.tree == tree);
    let snapshot_id = if opts.dry_run || (opts.skip_if_unchanged && unchanged) {
        None
    } else {
        Some(repo.save_snapshot(&snapshot)?)
    };
    Ok(BackupResult {
        snapshot_id,
        snapshot,
        parent,
        summary,
        warnings: ctx.warnings.into_inner(),
    })
}

fn meta_dev(m: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::dev(m)
}

fn current_user() -> (String, u32, u32) {
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    let name = nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_default();
    (name, uid, gid)
}

fn save_stdin(ctx: &Ctx<'_>, filename: &str) -> Result<Id> {
    let stdin = std::io::stdin();
    let (ids, size) = match file::save_stream(ctx, stdin.lock(), Vec::new()) {
        Ok(r) => r,
        Err(file::SaveError::Read(e)) => return Err(EngineError::io("stdin", e)),
        Err(file::SaveError::Store(e)) => return Err(e),
    };
    let now = GoTime::now();
    let (_, uid, gid) = current_user();
    let node = Node {
        name: filename.trim_start_matches('/').as_bytes().to_vec(),
        node_type: NodeType::File,
        mode: 0o644,
        mtime: now,
        atime: now,
        ctime: now,
        uid,
        gid,
        size,
        content: Some(ids),
        ..Node::default()
    };
    ctx.counters.files_new.fetch_add(1, Ordering::Relaxed);
    ctx.counters
        .bytes_processed
        .fetch_add(size, Ordering::Relaxed);
    ctx.progress.file_done(0);
    let bytes = Tree { nodes: vec![node] }
        .encode()
        .map_err(EngineError::Repo)?;
    ctx.store(BlobType::Tree, &bytes)
}

/// Count files and bytes below the targets (for the progress ETA).
fn scan(
    paths: &[PathBuf],
    excluder: Option<&Excluder>,
    opts: &BackupOptions,
    progress: &BackupProgress,
) {
    let mut stack: Vec<PathBuf> = paths.to_vec();
    let (mut files, mut bytes) = (0u64, 0u64);
    while let Some(p) = stack.pop() {
        let Ok(meta) = p.symlink_metadata() else {
            continue;
        };
        if excluder
            .is_some_and(|e| e.is_excluded(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str())))
            && !paths.contains(&p)
        {
            continue;
        }
        if meta.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        } else if meta.is_file() {
            if opts.exclude_larger_than.is_some_and(|l| meta.len() > l) {
                continue;
            }
            files += 1;
            bytes += meta.len();
            if files % 1000 == 0 {
                progress.scanned(files, bytes);
                files = 0;
                bytes = 0;
            }
        }
    }
    progress.scanned(files, bytes);
    progress.scan_done();
}
