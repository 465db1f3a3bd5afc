//! Rewriting snapshot trees (restic's `walker.TreeRewriter`): `rewrite` (exclude files, change
//! host or time) and `repair snapshots` (drop unreadable trees and missing file contents).
//!
//! A [`TreeRewriter`] walks a snapshot's tree depth first, asks its [`NodeRules`] what to do with
//! every node, and stores the trees that changed. The result is the new root tree id; a snapshot
//! whose trees are all unchanged keeps its id and is not rewritten. [`replace_snapshot`] then
//! writes the new snapshot (with `original` set) and removes the old one when asked, in that
//! order. The engine never prints: what happens is reported as [`RewriteEvent`]s.

mod repair;
mod snapshot;
#[cfg(test)]
mod tests;

pub use repair::RepairRules;
pub use snapshot::{ReplaceOptions, Replaced, replace_snapshot};

use crate::filter::Excluder;
use crate::{EngineError, Result};
use cairn_repo::node::{Node, NodeType};
use cairn_repo::repository::Repository;
use cairn_repo::tree::Tree;
use cairn_repo::{BlobType, Id};
use std::collections::HashMap;

/// Something the rewriter did, for the caller to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RewriteEvent {
    /// A node was excluded by a pattern.
    Excluded {
        /// Absolute path in the snapshot.
        path: Vec<u8>,
    },
    /// A file lost the parts of its content whose blobs are missing.
    RemovedMissingContent {
        /// Absolute path in the snapshot.
        path: Vec<u8>,
    },
    /// A file's recorded size did not match its content and was corrected.
    FixedSize {
        /// Absolute path in the snapshot.
        path: Vec<u8>,
    },
    /// A node with an invalid type (`irregular` or empty) was removed.
    RemovedInvalidNode {
        /// Absolute path in the snapshot.
        path: Vec<u8>,
        /// The node's type string.
        node_type: String,
    },
    /// A directory whose tree could not be loaded was replaced by an empty one.
    ReplacedWithEmptyDir {
        /// Absolute path in the snapshot.
        path: Vec<u8>,
    },
    /// The snapshot's root tree could not be loaded.
    RootUnreadable,
}

/// The rules of one kind of rewrite.
pub trait NodeRules {
    /// Rewrites one node found at `path` (absolute, `/`-separated); `None` removes it.
    /// Directories returned here are then descended into.
    fn node(&mut self, node: Node, path: &[u8], ev: &mut dyn FnMut(RewriteEvent)) -> Option<Node>;

    /// Decides about a tree that could not be loaded: `Ok(Some(tree))` stores `tree` in its
    /// place, `Ok(None)` removes the directory (at the root: the whole snapshot), `Err` fails.
    fn failed_tree(
        &mut self,
        id: &Id,
        path: &[u8],
        err: EngineError,
        ev: &mut dyn FnMut(RewriteEvent),
    ) -> Result<Option<Tree>>;
}

/// Number and total size of the file nodes a rewrite kept (restic's `SnapshotSize`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotSize {
    /// File nodes kept.
    pub files: u64,
    /// Sum of their sizes.
    pub bytes: u64,
}

/// Walks and rewrites trees with a set of [`NodeRules`].
pub struct TreeRewriter<'r, R> {
    repo: &'r Repository,
    rules: R,
    /// Already rewritten trees (old id → new id or removed), when results do not depend on
    /// the path (repair); `None` for path-dependent rules (excludes).
    cache: Option<HashMap<Id, Option<Id>>>,
    allow_unstable: bool,
    write: bool,
    size: SnapshotSize,
}

impl<'r, R: NodeRules> TreeRewriter<'r, R> {
    /// A rewriter over `repo`. With `write == false` (dry run) new trees are only hashed, not
    /// stored. `cache` remembers rewritten trees across calls (only for path-independent rules).
    /// Without `allow_unstable`, a tree that does not encode back to its own id is an error
    /// (rewriting it could lose information), as in restic.
    pub fn new(
        repo: &'r Repository,
        rules: R,
        write: bool,
        cache: bool,
        allow_unstable: bool,
    ) -> Self {
        TreeRewriter {
            repo,
            rules,
            cache: cache.then(HashMap::new),
            allow_unstable,
            write,
            size: SnapshotSize::default(),
        }
    }

    /// Files and bytes kept since the last [`TreeRewriter::reset_size`].
    pub fn size(&self) -> SnapshotSize {
        self.size
    }

    /// Starts counting [`SnapshotSize`] afresh (call before each snapshot).
    pub fn reset_size(&mut self) {
        self.size = SnapshotSize::default();
    }

    /// The rules (to read what they collected).
    pub fn rules(&self) -> &R {
        &self.rules
    }

    /// Rewrites the tree `id` found at `path` (`/` for a snapshot root). Returns the new tree
    /// id, or `None` when the rules removed it. Call `Repository::flush` before referencing the
    /// result from a snapshot.
    pub fn rewrite(
        &mut self,
        path: &[u8],
        id: &Id,
        ev: &mut dyn FnMut(RewriteEvent),
    ) -> Result<Option<Id>> {
        if let Some(done) = self.cache.as_ref().and_then(|c| c.get(id)) {
            return Ok(*done);
        }
        let tree = match self.repo.load_tree(id) {
            Ok(t) => t,
            Err(e) => {
                let new = match self.rules.failed_tree(id, path, e.into(), ev)? {
                    Some(replacement) => Some(self.store(&replacement)?),
                    None => None,
                };
                if let Some(c) = &mut self.cache {
                    c.insert(*id, new);
                }
                return Ok(new);
            }
        };
        if !self.allow_unstable {
            let (_, again) = tree.encode_with_id()?;
            if again != *id {
                return Err(EngineError::Invalid(format!(
                    "cannot encode tree at {:?} without losing information",
                    String::from_utf8_lossy(path)
                )));
            }
        }
        let mut out = Tree {
            nodes: Vec::with_capacity(tree.nodes.len()),
        };
        for node in tree.nodes {
            let child = join_path(path, &node.name);
            let Some(mut node) = self.rules.node(node, &child, ev) else {
                continue;
            };
            if node.node_type == NodeType::Dir {
                // A directory without a subtree fails to load like a missing tree.
                let sub = node.subtree.unwrap_or_default();
                match self.rewrite(&child, &sub, ev)? {
                    Some(new) => node.subtree = Some(new),
                    None => continue,
                }
            } else if node.node_type == NodeType::File {
                self.size.files += 1;
                self.size.bytes += node.size;
            }
            out.nodes.push(node);
        }
        let new = self.store(&out)?;
        if let Some(c) = &mut self.cache {
            c.insert(*id, Some(new));
        }
        Ok(Some(new))
    }

    fn store(&self, tree: &Tree) -> Result<Id> {
        let (bytes, id) = tree.encode_with_id()?;
        if self.write {
            self.repo.save_blob_with_id(BlobType::Tree, id, &bytes)?;
        }
        Ok(id)
    }
}

/// `path` joined with a node name, like Go's `path.Join` for the names restic stores.
pub fn join_path(path: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(path.len() + 1 + name.len());
    p.extend_from_slice(path);
    if !p.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// `rewrite --exclude…`: drops every node whose path an [`Excluder`] matches.
pub struct ExcludeRules<'a> {
    excluder: &'a Excluder,
}

impl<'a> ExcludeRules<'a> {
    /// Rules excluding what `excluder` matches.
    pub fn new(excluder: &'a Excluder) -> Self {
        ExcludeRules { excluder }
    }
}

impl NodeRules for ExcludeRules<'_> {
    fn node(&mut self, node: Node, path: &[u8], ev: &mut dyn FnMut(RewriteEvent)) -> Option<Node> {
        if self.excluder.is_excluded(path) {
            ev(RewriteEvent::Excluded {
                path: path.to_vec(),
            });
            return None;
        }
        Some(node)
    }

    fn failed_tree(
        &mut self,
        _id: &Id,
        _path: &[u8],
        err: EngineError,
        _ev: &mut dyn FnMut(RewriteEvent),
    ) -> Result<Option<Tree>> {
        Err(err)
    }
}

/// Rewrites one snapshot tree without the nodes `excluder` matches (`rewrite --exclude`).
/// Returns the new root id (equal to `root` when nothing was excluded) and the size of what
/// was kept. With `write == false` nothing is stored.
pub fn exclude_from_tree(
    repo: &Repository,
    root: &Id,
    excluder: &Excluder,
    write: bool,
    ev: &mut dyn FnMut(RewriteEvent),
) -> Result<(Id, SnapshotSize)> {
    let mut rw = TreeRewriter::new(repo, ExcludeRules::new(excluder), write, false, false);
    let new = rw.rewrite(b"/", root, ev)?;
    let new = new.ok_or_else(|| EngineError::Invalid("snapshot tree was removed".into()))?;
    Ok((new, rw.size()))
}
