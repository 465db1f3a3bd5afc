//! The rules of `repair snapshots` (restic's `cmd_repair_snapshots.go`):
//!
//! * a directory whose tree cannot be loaded becomes an empty directory; if the snapshot's
//!   root cannot be loaded the snapshot is removed;
//! * a file keeps only the content blobs the index knows, and its size becomes the sum of
//!   their plaintext sizes ("removed missing content" / "fixed incorrect size");
//! * nodes of type `irregular` or without a type are removed (restic ≥ 0.18).

use super::{NodeRules, RewriteEvent};
use crate::{EngineError, Result};
use cairn_repo::node::{Node, NodeType};
use cairn_repo::repository::Repository;
use cairn_repo::tree::Tree;
use cairn_repo::{BlobType, Id};

/// [`NodeRules`] of `repair snapshots`, checking file contents against `repo`'s index.
pub struct RepairRules<'r> {
    repo: &'r Repository,
}

impl<'r> RepairRules<'r> {
    /// Rules checking blobs against `repo`'s loaded index.
    pub fn new(repo: &'r Repository) -> Self {
        RepairRules { repo }
    }
}

/// Plaintext size of a blob from its index entry.
fn plaintext_len(loc: &cairn_repo::index::BlobLocation) -> u64 {
    match loc.uncompressed_length {
        Some(n) => u64::from(n),
        None => u64::from(loc.length).saturating_sub(cairn_repo::crypto::OVERHEAD as u64),
    }
}

impl NodeRules for RepairRules<'_> {
    fn node(
        &mut self,
        mut node: Node,
        path: &[u8],
        ev: &mut dyn FnMut(RewriteEvent),
    ) -> Option<Node> {
        match &node.node_type {
            NodeType::Irregular => {
                ev(RewriteEvent::RemovedInvalidNode {
                    path: path.to_vec(),
                    node_type: node.node_type.as_str().to_string(),
                });
                return None;
            }
            NodeType::Other(t) if t.is_empty() => {
                ev(RewriteEvent::RemovedInvalidNode {
                    path: path.to_vec(),
                    node_type: String::new(),
                });
                return None;
            }
            NodeType::File => {}
            _ => return Some(node),
        }
        let content = node.content.take().unwrap_or_default();
        let mut kept = Vec::with_capacity(content.len());
        let mut size = 0u64;
        let mut complete = true;
        for id in content {
            match self.repo.locate(BlobType::Data, &id) {
                Some(loc) => {
                    size += plaintext_len(&loc);
                    kept.push(id);
                }
                None => complete = false,
            }
        }
        if !complete {
            ev(RewriteEvent::RemovedMissingContent {
                path: path.to_vec(),
            });
        } else if size != node.size {
            ev(RewriteEvent::FixedSize {
                path: path.to_vec(),
            });
        }
        node.content = Some(kept);
        node.size = size;
        Some(node)
    }

    fn failed_tree(
        &mut self,
        _id: &Id,
        path: &[u8],
        _err: EngineError,
        ev: &mut dyn FnMut(RewriteEvent),
    ) -> Result<Option<Tree>> {
        if path == b"/" {
            ev(RewriteEvent::RootUnreadable);
            return Ok(None);
        }
        ev(RewriteEvent::ReplacedWithEmptyDir {
            path: path.to_vec(),
        });
        Ok(Some(Tree::new()))
    }
}
