//! The first pass: walk the tree, apply the filters, create directories, and collect what has
//! to be restored. Unexpected entries are removed (`delete`) when a directory's walk completes.

use super::files::{Existing, FileJob};
use super::select::Selector;
use super::{Overwrite, Reporter, RestoreOptions, run_parallel, show};
use crate::error::{EngineError, Result};
use cairn_repo::Id;
use cairn_repo::node::{Node, NodeType};
use cairn_repo::repository::Repository;
use cairn_repo::tree::Tree;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// Deepest directory nesting walked (paths that deep cannot be created anyway).
const MAX_DEPTH: usize = 2048;
/// Stack size of the walking thread.
const WALK_STACK: usize = 256 << 20;
/// Subtrees of one directory loaded ahead of the walk (in parallel); bounds memory to
/// this many trees per directory level.
const PREFETCH: usize = 32;

/// A directory whose metadata is restored at the end.
pub(crate) struct DirJob {
    /// Target path.
    pub path: PathBuf,
    /// Path inside the snapshot tree, for messages.
    pub location: Vec<u8>,
    /// The directory's node.
    pub node: Node,
    /// Created by this restore (so it has no stale extended attributes).
    pub fresh: bool,
}

/// How a non-regular node is created.
pub(crate) enum NodeKind {
    /// Symlink, fifo, block or character device.
    Special,
    /// A further name of a hard-linked file: link to this already restored path.
    Hardlink(PathBuf),
}

/// A symlink, special file or hard link, created after the file contents.
pub(crate) struct NodeJob {
    /// Target path.
    pub path: PathBuf,
    /// Path inside the snapshot tree, for messages.
    pub location: Vec<u8>,
    /// The node.
    pub node: Node,
    /// What to create.
    pub kind: NodeKind,
    /// Something exists at the path (it is removed first).
    pub exists: bool,
}

/// Everything the later passes need.
#[derive(Default)]
pub(crate) struct Plan {
    /// Regular files (first names of hard links included).
    pub files: Vec<FileJob>,
    /// Symlinks, special files, further hard-link names.
    pub nodes: Vec<NodeJob>,
    /// Directories, children before parents.
    pub dirs: Vec<DirJob>,
    /// Entries removed (or that would be, in a dry run) by `delete`.
    pub deleted: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DirState {
    /// Not created yet (only needed when something below is selected).
    Pending,
    /// Exists; `fresh` when it was just created (so nothing below it exists yet).
    Ready { fresh: bool },
    /// Could not be created (already reported).
    Failed,
}

struct Frame {
    path: PathBuf,
    location: Vec<u8>,
    state: DirState,
}

struct Walker<'a> {
    repo: &'a Repository,
    opts: &'a RestoreOptions,
    sel: &'a Selector,
    rep: &'a Reporter<'a>,
    plan: Plan,
    hardlinks: HashMap<(u64, u64), PathBuf>,
    frames: Vec<Frame>,
    delete: bool,
    threads: usize,
}

/// Walk `root` and build the plan; creates the target and the directories unless dry run.
pub(crate) fn build(
    repo: &Repository,
    root: Id,
    target: &Path,
    opts: &RestoreOptions,
    sel: &Selector,
    rep: &Reporter<'_>,
    threads: usize,
) -> Result<Plan> {
    let fresh = match std::fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => false,
        Ok(_) => {
            return Err(EngineError::io(
                target,
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "target exists and is not a directory",
                ),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => true,
        Err(e) => return Err(EngineError::io(target, e)),
    };
    if fresh && !opts.dry_run {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(target)
            .map_err(|e| EngineError::io(target, e))?;
    }
    // The root tree must load; later trees only fail their directory.
    let root_tree = repo.load_tree(&root)?;
    let mut w = Walker {
        repo,
        opts,
        sel,
        rep,
        plan: Plan::default(),
        hardlinks: HashMap::new(),
        frames: vec![Frame {
            path: target.to_path_buf(),
            location: Vec::new(),
            state: DirState::Ready { fresh },
        }],
        delete: opts.delete,
        threads,
    };
    let walk = move || {
        let (restored, names) = w.walk_nodes(root_tree.nodes, 0);
        if restored && let Some(names) = names {
            w.delete_unexpected(0, &names);
        }
        w.plan
    };
    // The walk recurses once per directory level: give it a large stack of its own (only the
    // pages used are committed), so deep trees work whatever thread calls `restore`.
    std::thread::scope(|s| {
        let spawned = std::thread::Builder::new()
            .name("restore-walk".into())
            .stack_size(WALK_STACK)
            .spawn_scoped(s, walk);
        match spawned {
            Ok(handle) => handle
                .join()
                .map_err(|_| EngineError::Invalid("restore: the tree walk panicked".into())),
            Err(e) => Err(EngineError::io(target, e)),
        }
    })
}

/// `location/name`.
fn child_location(location: &[u8], name: &[u8]) -> Vec<u8> {
    let mut loc = Vec::with_capacity(location.len() + 1 + name.len());
    loc.extend_from_slice(location);
    loc.push(b'/');
    loc.extend_from_slice(name);
    loc
}

/// restic rejects names that would leave the directory (`filepath.Base(Join("/", name))`).
fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

/// What is at a target path before the restore.
pub(crate) fn probe(path: &Path) -> io::Result<Existing> {
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(Existing::Present {
            regular: m.is_file(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Existing::Absent),
        Err(e) => Err(e),
    }
}

impl Walker<'_> {
    fn top(&self) -> Option<&Frame> {
        self.frames.last()
    }

    /// Walk the nodes of one directory (the top frame). Returns whether anything below was
    /// selected and, with `delete`, the names the snapshot has in this directory.
    fn walk_nodes(&mut self, nodes: Vec<Node>, depth: usize) -> (bool, Option<HashSet<Vec<u8>>>) {
        let mut restored = false;
        let mut names = self.opts.delete.then(HashSet::new);
        if self.rep.progress().is_cancelled() {
            // Nothing is deleted below an interrupted walk.
            self.delete = false;
            return (false, None);
        }
        let Some(top) = self.top() else {
            return (false, None);
        };
        let (dir_path, dir_loc) = (top.path.clone(), top.location.clone());
        // Subtrees that will be walked, loaded a batch at a time on several threads.
        let wanted: Vec<Option<Id>> = nodes
            .iter()
            .map(|n| {
                let walk = n.node_type == NodeType::Dir
                    && valid_name(&n.name)
                    && self.sel.select(&child_location(&dir_loc, &n.name), true).1;
                n.subtree.filter(|_| walk)
            })
            .collect();
        let mut ahead: HashMap<Id, cairn_repo::Result<Tree>> = HashMap::new();
        for (i, node) in nodes.into_iter().enumerate() {
            if let Some(n) = names.as_mut() {
                n.insert(node.name.clone());
            }
            if !valid_name(&node.name) {
                self.rep.error(format!(
                    "{}: invalid child node name {:?}",
                    show(&dir_loc),
                    String::from_utf8_lossy(&node.name)
                ));
                self.delete = false;
                continue;
            }
            if node.node_type == NodeType::Socket {
                continue;
            }
            let loc = child_location(&dir_loc, &node.name);
            let path = dir_path.join(OsStr::from_bytes(&node.name));
            let is_dir = node.node_type == NodeType::Dir;
            let (selected, child_may) = self.sel.select(&loc, is_dir);
            restored |= selected;
            if is_dir {
                let tree = match node.subtree {
                    Some(id) if child_may => {
                        if !ahead.contains_key(&id) {
                            self.prefetch(wanted.get(i..).unwrap_or_default(), &mut ahead);
                        }
                        ahead.remove(&id)
                    }
                    _ => None,
                };
                restored |= self.walk_dir(node, path, loc, (selected, child_may), depth, tree);
                continue;
            }
            if !selected {
                continue;
            }
            let top = self.frames.len() - 1;
            let Some(parent_fresh) = self.ensure(top) else {
                continue;
            };
            match node.node_type {
                NodeType::File => self.add_file(node, path, loc, parent_fresh),
                NodeType::Symlink | NodeType::Fifo | NodeType::Dev | NodeType::CharDev => {
                    self.add_node(node, path, loc, parent_fresh, NodeKind::Special)
                }
                ref t => self.rep.error(format!(
                    "{}: cannot restore node of type {:?}",
                    show(&loc),
                    t.as_str()
                )),
            }
        }
        (restored, names)
    }

    /// A directory node: create it if selected, walk below, remember its metadata.
    fn walk_dir(
        &mut self,
        node: Node,
        path: PathBuf,
        loc: Vec<u8>,
        (selected, child_may): (bool, bool),
        depth: usize,
        prefetched: Option<cairn_repo::Result<Tree>>,
    ) -> bool {
        let Some(subtree) = node.subtree else {
            self.rep
                .error(format!("{}: directory without subtree", show(&loc)));
            return false;
        };
        self.frames.push(Frame {
            path,
            location: loc,
            state: DirState::Pending,
        });
        let idx = self.frames.len() - 1;
        let mut ok = true;
        if selected {
            ok = self.ensure(idx).is_some();
        }
        let mut child_restored = false;
        let mut names = None;
        if ok && child_may {
            if depth >= MAX_DEPTH {
                self.rep.error(format!(
                    "{}: directories nested too deeply",
                    show(&self.frames[idx].location)
                ));
            } else {
                match prefetched.unwrap_or_else(|| self.repo.load_tree(&subtree)) {
                    Ok(tree) => {
                        (child_restored, names) = self.walk_nodes(tree.nodes, depth + 1);
                    }
                    Err(e) => self.rep.error(format!(
                        "{}: cannot load tree {}: {e}",
                        show(&self.frames[idx].location),
                        subtree.short()
                    )),
                }
            }
        }
        if (selected || child_restored) && matches!(self.frames[idx].state, DirState::Ready { .. })
        {
            if let Some(names) = names.as_ref() {
                self.delete_unexpected(idx, names);
            }
            let frame = self.frames.pop();
            if let Some(frame) = frame {
                self.plan.dirs.push(DirJob {
                    fresh: frame.state == (DirState::Ready { fresh: true }),
                    path: frame.path,
                    location: frame.location,
                    node,
                });
            }
        } else {
            self.frames.pop();
        }
        selected || child_restored
    }

    /// Load the next subtrees of `wanted` (up to [`PREFETCH`] not loaded yet) in parallel.
    fn prefetch(&self, wanted: &[Option<Id>], ahead: &mut HashMap<Id, cairn_repo::Result<Tree>>) {
        let mut batch: Vec<Id> = Vec::new();
        for id in wanted.iter().flatten() {
            if batch.len() >= PREFETCH {
                break;
            }
            if !ahead.contains_key(id) && !batch.contains(id) {
                batch.push(*id);
            }
        }
        let loaded = Mutex::new(Vec::with_capacity(batch.len()));
        run_parallel(self.threads, batch.len(), |k| {
            if let Some(id) = batch.get(k) {
                let tree = self.repo.load_tree(id);
                loaded.lock().push((*id, tree));
            }
        });
        ahead.extend(loaded.into_inner());
    }

    /// Make sure the directory of frame `idx` (and its parents) exists. Returns whether it
    /// was newly created, or `None` when it cannot be created (reported once).
    fn ensure(&mut self, idx: usize) -> Option<bool> {
        let state = self.frames.get(idx)?.state;
        match state {
            DirState::Ready { fresh } => return Some(fresh),
            DirState::Failed => return None,
            DirState::Pending => {}
        }
        let parent_fresh = if idx == 0 {
            false
        } else {
            self.ensure(idx - 1)?
        };
        let frame = self.frames.get_mut(idx)?;
        let res = ensure_dir(&frame.path, parent_fresh, self.opts.dry_run);
        match res {
            Ok(fresh) => {
                frame.state = DirState::Ready { fresh };
                Some(fresh)
            }
            Err(e) => {
                frame.state = DirState::Failed;
                let msg = format!("{}: cannot create directory: {e}", show(&frame.location));
                self.rep.error(msg);
                None
            }
        }
    }

    /// restic's overwrite decision for an existing path (`shouldOverwrite`).
    fn should_overwrite(&self, node: &Node, existing: &Existing) -> bool {
        match (self.opts.overwrite, existing) {
            (_, Existing::Absent) | (Overwrite::Always | Overwrite::IfChanged, _) => true,
            (Overwrite::Never, _) => false,
            (Overwrite::IfNewer, Existing::Present { mtime_ns, .. }) => {
                node.mtime.unix_nanos() > *mtime_ns
            }
        }
    }

    fn existing(&self, path: &Path, loc: &[u8], parent_fresh: bool) -> Option<Existing> {
        if parent_fresh {
            return Some(Existing::Absent);
        }
        match probe(path) {
            Ok(e) => Some(e),
            Err(e) => {
                self.rep.error(format!("{}: {e}", show(loc)));
                None
            }
        }
    }

    fn skip(&self) {
        let p = self.rep.progress();
        p.total_files.fetch_add(1, Ordering::Relaxed);
        p.files_done.fetch_add(1, Ordering::Relaxed);
        p.files_skipped.fetch_add(1, Ordering::Relaxed);
    }

    fn add_file(&mut self, node: Node, path: PathBuf, loc: Vec<u8>, parent_fresh: bool) {
        if node.links > 1 {
            let key = (node.device_id, node.inode);
            if let Some(first) = self.hardlinks.get(&key) {
                let first = first.clone();
                self.add_node(node, path, loc, parent_fresh, NodeKind::Hardlink(first));
                return;
            }
            self.hardlinks.insert(key, path.clone());
        }
        let Some(existing) = self.existing(&path, &loc, parent_fresh) else {
            return;
        };
        if !self.should_overwrite(&node, &existing) {
            self.skip();
            return;
        }
        let p = self.rep.progress();
        p.total_files.fetch_add(1, Ordering::Relaxed);
        p.total_bytes.fetch_add(node.size, Ordering::Relaxed);
        self.plan
            .files
            .push(FileJob::new(path, loc, node, existing));
    }

    fn add_node(&mut self, node: Node, path: PathBuf, loc: Vec<u8>, fresh: bool, kind: NodeKind) {
        let Some(existing) = self.existing(&path, &loc, fresh) else {
            return;
        };
        if !self.should_overwrite(&node, &existing) {
            self.skip();
            return;
        }
        self.rep
            .progress()
            .total_files
            .fetch_add(1, Ordering::Relaxed);
        self.plan.nodes.push(NodeJob {
            path,
            location: loc,
            node,
            kind,
            exists: matches!(existing, Existing::Present { .. }),
        });
    }

    /// `delete`: remove entries of frame `idx`'s directory that the snapshot does not have
    /// and that the filters select.
    fn delete_unexpected(&mut self, idx: usize, keep: &HashSet<Vec<u8>>) {
        if !self.delete {
            return;
        }
        let Some(frame) = self.frames.get(idx) else {
            return;
        };
        if frame.state == (DirState::Ready { fresh: true }) {
            return;
        }
        let entries = match std::fs::read_dir(&frame.path) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                self.rep.error(format!(
                    "{}: cannot list for --delete: {e}",
                    show(&frame.location)
                ));
                return;
            }
        };
        let mut removed = 0;
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    self.rep.error(format!(
                        "{}: cannot list for --delete: {e}",
                        show(&frame.location)
                    ));
                    break;
                }
            };
            let name = entry.file_name();
            let name = name.as_bytes();
            if keep.contains(name) || !valid_name(name) {
                continue;
            }
            let mut loc = frame.location.clone();
            loc.push(b'/');
            loc.extend_from_slice(name);
            if !self.sel.select(&loc, false).0 {
                continue;
            }
            let path = entry.path();
            if !path.starts_with(&frame.path) || path == frame.path {
                continue;
            }
            if !self.opts.dry_run
                && let Err(e) = remove_any(&path)
            {
                self.rep
                    .error(format!("{}: cannot delete: {e}", show(&loc)));
                continue;
            }
            removed += 1;
        }
        self.plan.deleted += removed;
    }
}

/// Remove a file, symlink or whole directory tree (symlinks are never followed).
pub(crate) fn remove_any(path: &Path) -> io::Result<()> {
    let m = std::fs::symlink_metadata(path)?;
    if m.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

/// Make sure `path` is a directory (restic's `ensureDir`): something else in the way is
/// removed, a missing directory is created with mode 0700 (the final mode is set at the end).
/// Returns whether the directory is new (nothing below it can exist).
fn ensure_dir(path: &Path, parent_fresh: bool, dry_run: bool) -> io::Result<bool> {
    if !parent_fresh {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => return Ok(false),
            Ok(_) => {
                if !dry_run {
                    std::fs::remove_file(path)?;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    if !dry_run {
        match std::fs::DirBuilder::new().mode(0o700).create(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if std::fs::symlink_metadata(path)?.is_dir() {
                    return Ok(false);
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
