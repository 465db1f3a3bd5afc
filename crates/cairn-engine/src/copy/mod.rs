//! Copying snapshots between repositories (restic's `copy`).
//!
//! * Snapshots already in the destination are skipped: a destination snapshot whose
//!   `original` (or own id) is the source snapshot's `original` (or id) and whose metadata and
//!   tree match ([`similar_snapshots`]; restic's rule).
//! * With equal chunker polynomials blobs are copied as they are: the source trees are walked,
//!   the tree and data blobs the destination lacks are read pack by pack (several packs at
//!   once, a few MiB per read) and stored again under the destination's key. Tree ids stay
//!   the same, so deduplication with the destination's other snapshots is kept.
//! * With different polynomials (and `rechunk`), file contents are re-chunked with the
//!   destination's chunker: each file's data blobs are read in order as one stream, cut again
//!   and stored; the trees holding such files are rewritten (so their ids and the snapshot's
//!   tree id differ from the source's). Files smaller than the minimum chunk size are one
//!   chunk under any polynomial and are copied as they are. restic never re-chunks (its copies
//!   do not deduplicate against backups made directly into the destination); Cairn does.
//! * The new snapshot keeps every field except `parent` (dropped) and sets `original` to the
//!   source snapshot's `original` or id. Blobs are flushed before the snapshot is written.

mod blobs;
mod rechunk;
#[cfg(test)]
mod tests;

use crate::{EngineError, Result};
use cairn_repo::node::NodeType;
use cairn_repo::repository::{Repository, parallel_map};
use cairn_repo::snapshot::Snapshot;
use cairn_repo::tree::Tree;
use cairn_repo::{BlobType, Id};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

/// Trees loaded at once while walking a snapshot (bounds memory on wide levels).
const TREE_BATCH: usize = 256;

/// Counters updated while copying (read them from another thread for progress display).
#[derive(Debug, Default)]
pub struct CopyProgress {
    /// Blobs to copy as they are for the current snapshot (known after its tree walk).
    pub blobs_total: AtomicU64,
    /// Of those, copied so far.
    pub blobs_done: AtomicU64,
    /// Plaintext bytes read from the source so far (copied and re-chunked).
    pub bytes_read: AtomicU64,
    /// Files re-chunked so far.
    pub files_rechunked: AtomicU64,
    /// Trees processed so far.
    pub trees: AtomicU64,
}

impl CopyProgress {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// restic's `similarSnapshots`: everything but `parent` and `original` is equal (paths and
/// tags as sets of equal size, excludes in order).
pub fn similar_snapshots(a: &Snapshot, b: &Snapshot) -> bool {
    a.tree == b.tree && similar_metadata(a, b)
}

/// [`similar_snapshots`] without comparing the tree.
pub fn similar_metadata(a: &Snapshot, b: &Snapshot) -> bool {
    a.time == b.time
        && a.hostname == b.hostname
        && a.username == b.username
        && a.uid == b.uid
        && a.gid == b.gid
        && a.paths.len() == b.paths.len()
        && a.excludes == b.excludes
        && a.tags.len() == b.tags.len()
        && a.contains_paths(&b.paths)
        && a.has_tags(&b.tags)
}

/// Destination snapshots indexed by the persistent id restic matches copies with: their
/// `original` and their own id.
pub fn index_by_original(dst: &[(Id, Snapshot)]) -> HashMap<Id, Vec<(Id, Snapshot)>> {
    let mut map: HashMap<Id, Vec<(Id, Snapshot)>> = HashMap::new();
    for (id, s) in dst {
        if let Some(o) = s.original.filter(|o| *o != Id::default()) {
            map.entry(o).or_default().push((*id, s.clone()));
        }
        map.entry(*id).or_default().push((*id, s.clone()));
    }
    map
}

/// Copies snapshots from `src` to `dst`. Both repositories must have their index loaded.
pub struct Copier<'a> {
    src: &'a Repository,
    dst: &'a Repository,
    rechunk: bool,
    progress: &'a CopyProgress,
    /// Source trees already walked (plain copy).
    visited: HashSet<Id>,
    /// Source tree id → destination tree id (re-chunking copy).
    tree_map: HashMap<Id, Id>,
    /// Hash of a source content list → re-chunked content (re-chunking copy).
    content_map: parking_lot::Mutex<HashMap<Id, Vec<Id>>>,
}

impl<'a> Copier<'a> {
    /// A copier; with `rechunk` (meaningful only when the chunker polynomials differ, see
    /// [`Copier::polynomials_differ`]) file contents are re-chunked for `dst`.
    pub fn new(
        src: &'a Repository,
        dst: &'a Repository,
        rechunk: bool,
        progress: &'a CopyProgress,
    ) -> Self {
        Copier {
            src,
            dst,
            rechunk: rechunk && Self::polynomials_differ(src, dst),
            progress,
            visited: HashSet::new(),
            tree_map: HashMap::new(),
            content_map: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// Whether the two repositories cut files differently.
    pub fn polynomials_differ(src: &Repository, dst: &Repository) -> bool {
        src.config().chunker_polynomial != dst.config().chunker_polynomial
    }

    /// Whether this copier re-chunks file contents.
    pub fn rechunks(&self) -> bool {
        self.rechunk
    }

    /// The destination snapshot `snap` (source id `id`) was already copied to, if any:
    /// looked up in `by_original` (see [`index_by_original`]). When re-chunking, a candidate
    /// whose tree differs counts if its trees match the source's except for re-chunked file
    /// contents.
    pub fn existing_copy(
        &self,
        by_original: &HashMap<Id, Vec<(Id, Snapshot)>>,
        id: &Id,
        snap: &Snapshot,
    ) -> Option<Id> {
        let key = snap.original.unwrap_or(*id);
        let candidates = by_original.get(&key)?;
        for (cid, c) in candidates {
            if similar_snapshots(c, snap) {
                return Some(*cid);
            }
        }
        if self.rechunk {
            for (cid, c) in candidates {
                if similar_metadata(c, snap) && self.equivalent_trees(&snap.tree, &c.tree) {
                    return Some(*cid);
                }
            }
        }
        None
    }

    /// Whether source tree `a` and destination tree `b` describe the same files, allowing
    /// different content lists (same size) for files and different subtree ids that are
    /// themselves equivalent.
    fn equivalent_trees(&self, a: &Id, b: &Id) -> bool {
        if a == b {
            return true;
        }
        let (Ok(ta), Ok(tb)) = (self.src.load_tree(a), self.dst.load_tree(b)) else {
            return false;
        };
        if ta.nodes.len() != tb.nodes.len() {
            return false;
        }
        for (mut x, mut y) in ta.nodes.into_iter().zip(tb.nodes) {
            if x.node_type == NodeType::File && x.content != y.content {
                if x.size != y.size {
                    return false;
                }
                x.content = None;
                y.content = None;
            }
            if x.node_type == NodeType::Dir && x.subtree != y.subtree {
                match (x.subtree, y.subtree) {
                    (Some(sa), Some(sb)) if self.equivalent_trees(&sa, &sb) => {}
                    _ => return false,
                }
                x.subtree = None;
                y.subtree = None;
            }
            if x != y {
                return false;
            }
        }
        true
    }

    /// Copies the blobs of snapshot `snap` (source id `id`) and saves the new snapshot in the
    /// destination. Returns the new snapshot's id and the snapshot.
    pub fn copy_snapshot(&mut self, id: &Id, snap: &Snapshot) -> Result<(Id, Snapshot)> {
        self.progress.blobs_total.store(0, Ordering::Relaxed);
        self.progress.blobs_done.store(0, Ordering::Relaxed);
        let mut want = HashSet::new();
        let tree = if self.rechunk {
            self.rechunk_tree(b"/", &snap.tree, &mut want)?
        } else {
            self.walk(&snap.tree, &mut want)?;
            snap.tree
        };
        let want: Vec<(BlobType, Id)> = want.into_iter().collect();
        blobs::copy_blobs(self.src, self.dst, &want, self.progress)?;
        self.dst.flush()?;
        let mut new = snap.clone();
        new.parent = None;
        new.tree = tree;
        if new.original.is_none() {
            new.original = Some(*id);
        }
        let new_id = self.dst.save_snapshot(&new)?;
        Ok((new_id, new))
    }

    /// Walks the source trees below `root` (skipping trees walked before) and collects the
    /// tree and data blobs the destination lacks.
    fn walk(&mut self, root: &Id, want: &mut HashSet<(BlobType, Id)>) -> Result<()> {
        let mut level = vec![*root];
        while !level.is_empty() {
            let mut next = Vec::new();
            for batch in level.chunks(TREE_BATCH) {
                let fresh: Vec<Id> = batch
                    .iter()
                    .filter(|id| self.visited.insert(**id))
                    .copied()
                    .collect();
                let trees = parallel_map(&fresh, |id| self.src.load_tree(id))?;
                for (id, tree) in fresh.iter().zip(trees) {
                    CopyProgress::add(&self.progress.trees, 1);
                    self.want(BlobType::Tree, id, want);
                    self.collect_nodes(&tree, want, &mut next)?;
                }
            }
            level = next;
        }
        Ok(())
    }

    fn collect_nodes(
        &self,
        tree: &Tree,
        want: &mut HashSet<(BlobType, Id)>,
        subtrees: &mut Vec<Id>,
    ) -> Result<()> {
        for node in &tree.nodes {
            for b in node.content.iter().flatten() {
                self.want(BlobType::Data, b, want);
            }
            if node.node_type == NodeType::Dir {
                let sub = node.subtree.ok_or_else(|| {
                    EngineError::Invalid(format!(
                        "directory {:?} has no subtree",
                        node.name_lossy()
                    ))
                })?;
                subtrees.push(sub);
            }
        }
        Ok(())
    }

    fn want(&self, t: BlobType, id: &Id, want: &mut HashSet<(BlobType, Id)>) {
        if !self.dst.has_blob(t, id) {
            want.insert((t, *id));
        }
    }
}
