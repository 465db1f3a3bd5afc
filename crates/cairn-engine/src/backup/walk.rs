//! The archiver's walk: targets merged into one tree mirroring their absolute paths,
//! directories processed in parallel (rayon), unchanged files taken from the parent
//! snapshot without reading, trees saved bottom-up.

use super::file::{SaveError, open_for_read, open_in_dir, save_file};
use super::progress::BackupProgress;
use super::{BackupOptions, Counters};
use crate::filter::Excluder;
use crate::fsmeta::{NameCache, node_from_metadata, read_file_xattrs, read_xattrs};
use crate::{EngineError, Result};
use cairn_repo::node::{Node, NodeType};
use cairn_repo::repository::Repository;
use cairn_repo::tree::Tree;
use cairn_repo::{BlobType, Id};
use parking_lot::Mutex;
use rayon::prelude::*;
use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// The selected paths as a tree of components: `Full` = back up everything below.
#[derive(Debug)]
pub(crate) enum Target {
    Full,
    Partial(BTreeMap<Vec<u8>, Target>),
}

impl Target {
    /// Merge absolute, cleaned paths into one target tree (an ancestor target wins).
    pub(crate) fn from_paths(paths: &[PathBuf]) -> Target {
        let mut root = Target::Partial(BTreeMap::new());
        for p in paths {
            let comps: Vec<Vec<u8>> = p
                .components()
                .filter_map(|c| match c {
                    std::path::Component::Normal(s) => Some(s.as_bytes().to_vec()),
                    _ => None,
                })
                .collect();
            let mut cur = &mut root;
            for c in comps {
                match cur {
                    Target::Full => break,
                    Target::Partial(m) => {
                        cur = m
                            .entry(c)
                            .or_insert_with(|| Target::Partial(BTreeMap::new()));
                    }
                }
            }
            *cur = Target::Full;
        }
        root
    }
}

/// Shared state of one backup run.
pub(crate) struct Ctx<'a> {
    pub repo: &'a Repository,
    pub opts: &'a BackupOptions,
    pub excluder: Option<&'a Excluder>,
    pub progress: &'a BackupProgress,
    pub names: NameCache,
    pub warnings: Mutex<Vec<String>>,
    pub on_warning: &'a (dyn Fn(&str) + Sync),
    pub counters: Counters,
    pub max_chunks_in_flight: usize,
    /// Chunks read but not yet stored, across all files.
    pub chunks_in_flight: std::sync::atomic::AtomicUsize,
    /// Blobs "stored" by a dry run.
    pub dry_seen: Mutex<HashSet<(BlobType, Id)>>,
    /// Buffers for the chunks of large files, reused across files.
    pub chunk_pool: super::chunkbuf::ChunkPool,
}

impl Ctx<'_> {
    pub(crate) fn warn(&self, msg: String) {
        (self.on_warning)(&msg);
        self.progress.error();
        self.warnings.lock().push(msg);
    }

    /// Store a blob (or, in a dry run, only account for it); returns its id.
    pub(crate) fn store(&self, t: BlobType, data: &[u8]) -> Result<Id> {
        let id = Id::hash(data);
        if self.opts.dry_run {
            if !self.repo.has_blob(t, &id) && self.dry_seen.lock().insert((t, id)) {
                self.counters.dry_blob(t, data.len() as u64);
            }
            return Ok(id);
        }
        self.repo.save_blob_with_id(t, id, data)?;
        Ok(id)
    }

    fn is_excluded(&self, path: &Path, meta: &std::fs::Metadata) -> bool {
        let bytes = path.as_os_str().as_bytes();
        if self.excluder.is_some_and(|ex| ex.is_excluded(bytes)) {
            return true;
        }
        if meta.is_file()
            && self
                .opts
                .exclude_larger_than
                .is_some_and(|limit| meta.size() > limit)
        {
            return true;
        }
        false
    }

    fn save_tree(&self, nodes: Vec<Node>) -> Result<Id> {
        let tree = Tree { nodes };
        let bytes = tree.encode().map_err(EngineError::Repo)?;
        self.store(BlobType::Tree, &bytes)
    }

    fn load_parent_tree(&self, id: Option<Id>) -> Option<Tree> {
        let id = id?;
        match self.repo.load_tree(&id) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!("parent tree {}: {e}; reading files again", id.short());
                None
            }
        }
    }
}

fn find_node<'t>(tree: &'t Option<Tree>, name: &[u8]) -> Option<&'t Node> {
    let t = tree.as_ref()?;
    t.nodes
        .binary_search_by(|n| n.name.as_slice().cmp(name))
        .ok()
        .and_then(|i| t.nodes.get(i))
}

/// Save the part of a directory that targets select; returns its tree id.
pub(crate) fn save_partial(
    ctx: &Ctx<'_>,
    path: &Path,
    children: &BTreeMap<Vec<u8>, Target>,
    parent: Option<Id>,
) -> Result<Id> {
    let parent_tree = ctx.load_parent_tree(parent);
    let nodes: Vec<Option<Node>> = children
        .par_iter()
        .map(|(name, sub)| -> Result<Option<Node>> {
            let child = path.join(OsStr::from_bytes(name));
            let meta = match child.symlink_metadata() {
                Ok(m) => m,
                Err(e) => {
                    ctx.warn(format!("{}: {e}", child.display()));
                    return Ok(None);
                }
            };
            let pnode = find_node(&parent_tree, name);
            match sub {
                Target::Full => save_entry(
                    ctx,
                    Entry {
                        path: &child,
                        name: OsStr::from_bytes(name),
                        dir: None,
                        meta: &meta,
                    },
                    pnode,
                    meta.dev(),
                    true,
                ),
                Target::Partial(grand) => {
                    let mut w = Vec::new();
                    let Some(mut node) = node_from_metadata(
                        &child,
                        OsStr::from_bytes(name),
                        &meta,
                        &ctx.names,
                        ctx.opts.with_atime,
                        &mut w,
                    ) else {
                        return Ok(None);
                    };
                    node.extended_attributes = read_xattrs(&child, &mut w);
                    for m in w {
                        ctx.warn(m);
                    }
                    if node.node_type != NodeType::Dir {
                        ctx.warn(format!("{}: not a directory", child.display()));
                        return Ok(None);
                    }
                    node.content = None;
                    let id = save_partial(ctx, &child, grand, pnode.and_then(|n| n.subtree))?;
                    ctx.counters.dir(pnode.and_then(|n| n.subtree), id);
                    node.subtree = Some(id);
                    Ok(Some(node))
                }
            }
        })
        .collect::<Result<Vec<_>>>()?;
    ctx.save_tree(nodes.into_iter().flatten().collect())
}

/// Files at least this large are shown among the files being read in the progress display.
const CURRENT_FILE_MIN_SIZE: u64 = 1 << 20;

/// A directory entry to save: its full path, its name, the open directory holding it (`None`
/// for a backup target: opened by path) and its `lstat` metadata.
pub(crate) struct Entry<'e> {
    pub path: &'e Path,
    pub name: &'e OsStr,
    pub dir: Option<&'e File>,
    pub meta: &'e std::fs::Metadata,
}

/// Save one entry (file, directory with everything below, symlink, device, ...).
pub(crate) fn save_entry(
    ctx: &Ctx<'_>,
    entry: Entry<'_>,
    pnode: Option<&Node>,
    dev: u64,
    is_target: bool,
) -> Result<Option<Node>> {
    let Entry {
        path,
        name,
        dir,
        meta,
    } = entry;
    if !is_target && ctx.is_excluded(path, meta) {
        return Ok(None);
    }
    let mut w = Vec::new();
    let Some(mut node) =
        node_from_metadata(path, name, meta, &ctx.names, ctx.opts.with_atime, &mut w)
    else {
        return Ok(None); // unreachable: every file type maps to a node type
    };
    let unchanged = if node.node_type == NodeType::File {
        pnode.filter(|p| file_unchanged(ctx, p, &node))
    } else {
        None
    };
    // A file to be read gets its attributes from the open descriptor (below); the rest here.
    let reads_content = node.node_type == NodeType::File && unchanged.is_none();
    if !reads_content && node.node_type != NodeType::Symlink {
        node.extended_attributes = read_xattrs(path, &mut w);
    }
    for m in w {
        ctx.warn(m);
    }
    match node.node_type {
        NodeType::File => {
            if let Some(p) = unchanged {
                // Unchanged since the parent snapshot: content taken from there, not read.
                node.content = p.content.clone();
                ctx.counters
                    .files_unmodified
                    .fetch_add(1, Ordering::Relaxed);
                ctx.counters
                    .bytes_processed
                    .fetch_add(node.size, Ordering::Relaxed);
                ctx.progress.file_done(node.size);
                return Ok(Some(node));
            }
            let opened = match dir {
                Some(d) => open_in_dir(d, name),
                None => open_for_read(path),
            };
            let file = match opened {
                Ok(f) => f,
                Err(e) => {
                    ctx.warn(format!("{}: {e}", path.display()));
                    return Ok(None);
                }
            };
            let mut w = Vec::new();
            node.extended_attributes = read_file_xattrs(&file, path, &mut w);
            for m in w {
                ctx.warn(m);
            }
            // Only files that take a while to read are listed as "current": for small files
            // the label, its allocation and the shared list cost more than the read.
            let label = (node.size >= CURRENT_FILE_MIN_SIZE).then(|| path.display().to_string());
            if let Some(l) = &label {
                ctx.progress.start_file(l);
            }
            let res = save_file(ctx, file, node.size);
            if let Some(l) = &label {
                ctx.progress.end_file(l);
            }
            ctx.progress.file_finished();
            match res {
                Ok((ids, size)) => {
                    node.size = size;
                    node.content = Some(ids);
                    ctx.counters
                        .bytes_processed
                        .fetch_add(size, Ordering::Relaxed);
                    if pnode.is_some() {
                        ctx.counters.files_changed.fetch_add(1, Ordering::Relaxed);
                    } else {
                        ctx.counters.files_new.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Some(node))
                }
                Err(SaveError::Read(e)) => {
                    ctx.warn(format!("{}: {e}", path.display()));
                    Ok(None)
                }
                Err(SaveError::Store(e)) => Err(e),
            }
        }
        NodeType::Dir => {
            node.content = None;
            let psub = pnode
                .filter(|p| p.node_type == NodeType::Dir)
                .and_then(|p| p.subtree);
            let id = if ctx.opts.one_file_system && meta.dev() != dev {
                ctx.save_tree(Vec::new())?
            } else {
                match save_dir(ctx, path, psub, dev)? {
                    Some(id) => id,
                    None => return Ok(None),
                }
            };
            ctx.counters.dir(psub, id);
            node.subtree = Some(id);
            Ok(Some(node))
        }
        _ => {
            node.content = None;
            Ok(Some(node))
        }
    }
}

fn file_unchanged(ctx: &Ctx<'_>, p: &Node, n: &Node) -> bool {
    let o = ctx.opts;
    let meta_same = p.node_type == NodeType::File
        && p.size == n.size
        && p.mtime == n.mtime
        && (o.ignore_inode || (p.inode == n.inode && (o.ignore_ctime || p.ctime == n.ctime)));
    if !meta_same {
        return false;
    }
    // Like restic, a file whose content blobs are not all indexed is read again.
    let Some(content) = &p.content else {
        return false;
    };
    let idx = ctx.repo.index();
    content.iter().all(|id| idx.contains(BlobType::Data, id))
}

/// Save a directory and everything below it; `None` when it cannot be read (a warning).
fn save_dir(ctx: &Ctx<'_>, path: &Path, parent: Option<Id>, dev: u64) -> Result<Option<Id>> {
    let rd = match std::fs::read_dir(path) {
        Ok(rd) => rd,
        Err(e) => {
            ctx.warn(format!("{}: {e}", path.display()));
            return Ok(None);
        }
    };
    // Entries keep the directory open: their `metadata()` is an `fstatat` relative to it
    // (no lstat of the full path, which walks every path component again).
    let mut entries = Vec::new();
    for e in rd {
        match e {
            Ok(e) => entries.push((e.file_name(), e)),
            Err(e) => ctx.warn(format!("{}: {e}", path.display())),
        }
    }
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    // --exclude-caches / --exclude-if-present: keep only the tag file of a tagged directory.
    for rule in &ctx.opts.tag_rules {
        match rule.dir_is_excluded(path) {
            Ok(true) => entries.retain(|(n, _)| rule.is_tag_file(n)),
            Ok(false) => {}
            Err(e) => ctx.warn(e.to_string()),
        }
    }
    // The directory's own descriptor: its files are opened relative to it. Without one (a
    // directory that can be listed but not opened this way), files are opened by path.
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .ok();
    let parent_tree = ctx.load_parent_tree(parent);
    let nodes: Vec<Option<Node>> = entries
        .par_iter()
        .with_min_len(8)
        .map(|(name, entry)| -> Result<Option<Node>> {
            let child = path.join(name);
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) => {
                    ctx.warn(format!("{}: {e}", child.display()));
                    return Ok(None);
                }
            };
            save_entry(
                ctx,
                Entry {
                    path: &child,
                    name,
                    dir: dir.as_ref(),
                    meta: &meta,
                },
                find_node(&parent_tree, name.as_bytes()),
                dev,
                false,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    ctx.progress.dir_done();
    Ok(Some(ctx.save_tree(nodes.into_iter().flatten().collect())?))
}
