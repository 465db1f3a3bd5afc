//! The first pass: walk the tree, apply the filters, create directories, and collect what has
//! to be restored. Unexpected entries are removed (`delete`) when a directory's walk completes.
//! Trees are loaded ahead of the walk by helper threads ([`Loader`]).

use super::files::{Existing, FileJob};
use super::meta::Meta;
use super::select::Selector;
use super::trees::Loader;
use super::{Overwrite, Reporter, RestoreOptions, show};
use crate::error::{EngineError, Result};
use cairn_repo::Id;
use cairn_repo::node::{Node, NodeType};
use cairn_repo::repository::Repository;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// Deepest directory nesting walked (paths that deep cannot be created anyway).
pub(super) const MAX_DEPTH: usize = 2048;
/// Stack size of the walking thread.
const WALK_STACK: usize = 256 << 20;

/// A directory that holds restored files (the files refer to it by index).
pub(crate) struct Parent {
    /// Target path.
    pub path: PathBuf,
    /// Path inside the snapshot tree, for messages.
    pub location: Vec<u8>,
}

/// A directory whose metadata is restored at the end.
pub(crate) struct DirJob {
    /// Target path.
    pub path: PathBuf,
    /// Path inside the snapshot tree, for messages.
    pub location: Vec<u8>,
    /// The directory's metadata.
    pub meta: Meta,
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
    /// Metadata to restore.
    pub meta: Meta,
    /// Node type.
    pub node_type: NodeType,
    /// Symlink target.
    pub linktarget: Box<[u8]>,
    /// `st_rdev` of a device.
    pub device: u64,
    /// What to create.
    pub kind: NodeKind,
    /// Something exists at the path (it is removed first).
    pub exists: bool,
}

/// Everything the later passes need.
#[derive(Default)]
pub(crate) struct Plan {
    /// Directories holding files; [`FileJob::parent`] indexes this.
    pub parents: Vec<Parent>,
    /// Regular files (first names of hard links included).
    pub files: Vec<FileJob>,
    /// Symlinks, special files, further hard-link names.
    pub nodes: Vec<NodeJob>,
    /// Directories, children before parents.
    pub dirs: Vec<DirJob>,
    /// Entries removed (or that would be, in a dry run) by `delete`.
    pub deleted: u64,
}

impl Plan {
    /// Target path of a file.
    pub(crate) fn file_path(&self, f: &FileJob) -> PathBuf {
        f.path(&self.parents)
    }

    /// Snapshot path of a file, for messages.
    pub(crate) fn file_location(&self, f: &FileJob) -> Vec<u8> {
        f.location(&self.parents)
    }
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
    /// Index in [`Plan::parents`] once a file below was added.
    parent: Option<u32>,
}

struct Walker<'a> {
    opts: &'a RestoreOptions,
    sel: &'a Selector,
    rep: &'a Reporter<'a>,
    loader: &'a Loader<'a>,
    plan: Plan,
    hardlinks: HashMap<(u64, u64), PathBuf>,
    frames: Vec<Frame>,
    delete: bool,
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
    let loader = Loader::new(repo, sel);
    loader.start(&root_tree);
    let mut w = Walker {
        opts,
        sel,
        rep,
        loader: &loader,
        plan: Plan::default(),
        hardlinks: HashMap::new(),
        frames: vec![Frame {
            path: target.to_path_buf(),
            location: Vec::new(),
            state: DirState::Ready { fresh },
            parent: None,
        }],
        delete: opts.delete,
    };
    let walk = move || {
        let (restored, names) = w.walk_nodes(root_tree.nodes, 0);
        if restored && let Some(names) = names {
            w.delete_unexpected(0, &names);
        }
        w.loader.stop();
        w.plan
    };
    // The walk recurses once per directory level: give it a large stack of its own (only the
    // pages used are committed), so deep trees work whatever thread calls `restore`.
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            // Without helpers the walk loads every tree itself.
            let _ = std::thread::Builder::new()
                .name("restore-trees".into())
                .spawn_scoped(s, || loader.helper());
        }
        let spawned = std::thread::Builder::new()
            .name("restore-walk".into())
            .stack_size(WALK_STACK)
            .spawn_scoped(s, walk);
        let r = match spawned {
            Ok(handle) => handle
                .join()
                .map_err(|_| EngineError::Invalid("restore: the tree walk panicked".into())),
            Err(e) => Err(EngineError::io(target, e)),
        };
        loader.stop();
        r
    })
}

/// `location/name`.
pub(crate) fn child_location(location: &[u8], name: &[u8]) -> Vec<u8> {
    let mut loc = Vec::with_capacity(location.len() + 1 + name.len());
    loc.extend_from_slice(location);
    loc.push(b'/');
    loc.extend_from_slice(name);
    loc
}

/// restic rejects names that would leave the directory (`filepath.Base(Join("/", name))`).
pub(super) fn valid_name(name: &[u8]) -> bool {
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
        let dir_loc = top.location.clone();
        for node in nodes {
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
            let is_dir = node.node_type == NodeType::Dir;
            let (selected, child_may) = self.sel.select(&loc, is_dir);
            restored |= selected;
            if is_dir {
                restored |= self.walk_dir(node, loc, (selected, child_may), depth);
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
                NodeType::File => self.add_file(node, loc, parent_fresh),
                NodeType::Symlink | NodeType::Fifo | NodeType::Dev | NodeType::CharDev => {
                    let path = self.child_path(&node.name);
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

    /// Target path of `name` in the current directory.
    fn child_path(&self, name: &[u8]) -> PathBuf {
        let name = OsStr::from_bytes(name);
        match self.top() {
            Some(top) => top.path.join(name),
            None => PathBuf::from(name),
        }
    }

    /// A directory node: create it if selected, walk below, remember its metadata.
    fn walk_dir(
        &mut self,
        mut node: Node,
        loc: Vec<u8>,
        (selected, child_may): (bool, bool),
        depth: usize,
    ) -> bool {
        let Some(subtree) = node.subtree else {
            self.rep
                .error(format!("{}: directory without subtree", show(&loc)));
            return false;
        };
        let path = self.child_path(&node.name);
        self.frames.push(Frame {
            path,
            location: loc,
            state: DirState::Pending,
            parent: None,
        });
        let idx = self.frames.len() - 1;
        let mut ok = true;
        if selected {
            ok = self.ensure(idx).is_some();
        }
        let mut child_restored = false;
        let mut names = None;
        let walk_below = child_may && depth < MAX_DEPTH;
        if ok && walk_below {
            let loc = &self.frames[idx].location;
            match self.loader.take(subtree, loc, depth + 1) {
                Ok(tree) => {
                    (child_restored, names) = self.walk_nodes(tree.nodes, depth + 1);
                }
                Err(e) => self.rep.error(format!(
                    "{}: cannot load tree {}: {e}",
                    show(&self.frames[idx].location),
                    subtree.short()
                )),
            }
        } else if walk_below {
            self.loader.forget(&self.frames[idx].location);
        } else if ok && child_may {
            self.rep.error(format!(
                "{}: directories nested too deeply",
                show(&self.frames[idx].location)
            ));
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
                    meta: Meta::from_node(&mut node, self.opts.ownership_by_name),
                });
            }
        } else {
            self.frames.pop();
        }
        selected || child_restored
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
    fn should_overwrite(&self, mtime_ns: i128, existing: &Existing) -> bool {
        match (self.opts.overwrite, existing) {
            (_, Existing::Absent) | (Overwrite::Always | Overwrite::IfChanged, _) => true,
            (Overwrite::Never, _) => false,
            (Overwrite::IfNewer, Existing::Present { mtime_ns: m, .. }) => mtime_ns > *m,
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

    /// Index in [`Plan::parents`] of the current directory (added on first use).
    fn parent_index(&mut self) -> Option<u32> {
        let top = self.frames.last_mut()?;
        if let Some(i) = top.parent {
            return Some(i);
        }
        let i = u32::try_from(self.plan.parents.len()).ok()?;
        self.plan.parents.push(Parent {
            path: top.path.clone(),
            location: top.location.clone(),
        });
        top.parent = Some(i);
        Some(i)
    }

    fn add_file(&mut self, mut node: Node, loc: Vec<u8>, parent_fresh: bool) {
        let mut path = None;
        if node.links > 1 {
            let key = (node.device_id, node.inode);
            let p = self.child_path(&node.name);
            if let Some(first) = self.hardlinks.get(&key) {
                let first = first.clone();
                self.add_node(node, p, loc, parent_fresh, NodeKind::Hardlink(first));
                return;
            }
            self.hardlinks.insert(key, p.clone());
            path = Some(p);
        }
        let existing = if parent_fresh {
            Existing::Absent
        } else {
            let path = path.unwrap_or_else(|| self.child_path(&node.name));
            let Some(existing) = self.existing(&path, &loc, parent_fresh) else {
                return;
            };
            existing
        };
        let meta = Meta::from_node(&mut node, self.opts.ownership_by_name);
        if !self.should_overwrite(meta.mtime_ns(), &existing) {
            self.skip();
            return;
        }
        let Some(parent) = self.parent_index() else {
            self.rep
                .error(format!("{}: too many directories", show(&loc)));
            return;
        };
        let p = self.rep.progress();
        p.total_files.fetch_add(1, Ordering::Relaxed);
        p.total_bytes.fetch_add(node.size, Ordering::Relaxed);
        let content = node.content.take().unwrap_or_default().into_boxed_slice();
        self.plan.files.push(FileJob::new(
            parent,
            std::mem::take(&mut node.name).into_boxed_slice(),
            node.size,
            content,
            meta,
            existing,
        ));
    }

    fn add_node(
        &mut self,
        mut node: Node,
        path: PathBuf,
        loc: Vec<u8>,
        fresh: bool,
        kind: NodeKind,
    ) {
        let Some(existing) = self.existing(&path, &loc, fresh) else {
            return;
        };
        let meta = Meta::from_node(&mut node, self.opts.ownership_by_name);
        if !self.should_overwrite(meta.mtime_ns(), &existing) {
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
            meta,
            node_type: node.node_type,
            linktarget: node.linktarget.into_boxed_slice(),
            device: node.device,
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
