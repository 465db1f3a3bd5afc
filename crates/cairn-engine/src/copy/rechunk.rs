//! The re-chunking copy: trees are rewritten bottom-up; large files are read from the source
//! as one stream, cut with the destination's chunker and stored; everything that does not
//! change (small files, trees without re-chunked files) is copied as it is.

use super::{Copier, CopyProgress};
use crate::{EngineError, Result};
use cairn_repo::chunker::{Chunker, MIN_SIZE};
use cairn_repo::node::NodeType;
use cairn_repo::repository::Repository;
use cairn_repo::tree::Tree;
use cairn_repo::{BlobType, Id};
use rayon::prelude::*;
use std::collections::HashSet;

/// Source blobs read ahead of the chunker for one file.
const READ_AHEAD: usize = 2;

impl Copier<'_> {
    /// Rewrites source tree `id` (at `path`) for the destination and returns the destination
    /// tree id. Blobs to copy unchanged are added to `want`.
    pub(super) fn rechunk_tree(
        &mut self,
        path: &[u8],
        id: &Id,
        want: &mut HashSet<(BlobType, Id)>,
    ) -> Result<Id> {
        if let Some(done) = self.tree_map.get(id) {
            return Ok(*done);
        }
        let tree = self.src.load_tree(id)?;
        CopyProgress::add(&self.progress.trees, 1);
        let mut nodes = tree.nodes.clone();
        let mut changed = false;
        let mut large = Vec::new();
        for (i, node) in nodes.iter_mut().enumerate() {
            let child = crate::rewrite::join_path(path, &node.name);
            match node.node_type {
                NodeType::Dir => {
                    let sub = node.subtree.ok_or_else(|| {
                        EngineError::Invalid(format!(
                            "directory {:?} has no subtree",
                            String::from_utf8_lossy(&child)
                        ))
                    })?;
                    let new = self.rechunk_tree(&child, &sub, want)?;
                    if new != sub {
                        node.subtree = Some(new);
                        changed = true;
                    }
                }
                _ => {
                    let content = node.content.as_deref().unwrap_or_default();
                    if self.single_chunk(content) {
                        for b in content {
                            self.want(BlobType::Data, b, want);
                        }
                    } else {
                        large.push(i);
                    }
                }
            }
        }
        let results: Vec<Result<(usize, Vec<Id>)>> = large
            .par_iter()
            .map(|&i| {
                let content = nodes
                    .get(i)
                    .and_then(|n| n.content.as_deref())
                    .unwrap_or_default();
                self.rechunk_content(content).map(|c| (i, c))
            })
            .collect();
        for r in results {
            let (i, content) = r?;
            if let Some(node) = nodes.get_mut(i)
                && node.content.as_ref() != Some(&content)
            {
                node.content = Some(content);
                changed = true;
            }
        }
        let new = if changed {
            // Only rewrite trees that encode back to their own bytes (nothing unknown lost).
            let (_, same) = tree.encode_with_id()?;
            if same != *id {
                return Err(EngineError::Invalid(format!(
                    "cannot re-encode tree at {:?} without losing information; copy with --no-rechunk",
                    String::from_utf8_lossy(path)
                )));
            }
            let (bytes, new) = Tree { nodes }.encode_with_id()?;
            self.dst.save_blob_with_id(BlobType::Tree, new, &bytes)?;
            new
        } else {
            self.want(BlobType::Tree, id, want);
            *id
        };
        self.tree_map.insert(*id, new);
        Ok(new)
    }

    /// True if `content` is a single chunk under any polynomial (at most one blob shorter than
    /// the minimum chunk size), so it can be copied as it is.
    fn single_chunk(&self, content: &[Id]) -> bool {
        match content {
            [] => true,
            [one] => self.src.locate(BlobType::Data, one).is_some_and(|loc| {
                let len = loc.uncompressed_length.unwrap_or_else(|| {
                    loc.length
                        .saturating_sub(cairn_repo::crypto::OVERHEAD as u32)
                });
                (len as usize) < MIN_SIZE
            }),
            _ => false,
        }
    }

    /// The destination content list of a file with source content `content` (memoized).
    fn rechunk_content(&self, content: &[Id]) -> Result<Vec<Id>> {
        let key = {
            let mut all = Vec::with_capacity(content.len() * 32);
            for id in content {
                all.extend_from_slice(&id.0);
            }
            Id::hash(&all)
        };
        if let Some(done) = self.content_map.lock().get(&key) {
            return Ok(done.clone());
        }
        let new = rechunk_stream(self.src, self.dst, content, self.progress)?;
        CopyProgress::add(&self.progress.files_rechunked, 1);
        self.content_map.lock().insert(key, new.clone());
        Ok(new)
    }
}

/// Reads the data blobs `content` from `src` in order (a loader thread keeps a few ahead),
/// cuts the stream with `dst`'s chunker and stores the chunks in `dst`. Returns their ids.
pub(super) fn rechunk_stream(
    src: &Repository,
    dst: &Repository,
    content: &[Id],
    progress: &CopyProgress,
) -> Result<Vec<Id>> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<u8>>>(READ_AHEAD);
    std::thread::scope(|s| {
        s.spawn(move || {
            for id in content {
                let r = src.load_blob(BlobType::Data, id).map_err(EngineError::from);
                let stop = r.is_err();
                if tx.send(r).is_err() || stop {
                    return;
                }
            }
        });
        let mut chunker = Chunker::new(dst.chunker_tables().clone());
        let mut out = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        // Bytes of `buf` already fed to the chunker.
        let mut scanned = 0usize;
        for data in rx {
            let data = data?;
            CopyProgress::add(&progress.bytes_read, data.len() as u64);
            buf.extend_from_slice(&data);
            while let Some(n) = chunker.next_boundary(buf.get(scanned..).unwrap_or_default()) {
                let end = scanned + n;
                let rest = buf.split_off(end.min(buf.len()));
                out.push(dst.save_blob(BlobType::Data, &buf)?.0);
                buf = rest;
                scanned = 0;
            }
            scanned = buf.len();
        }
        if !buf.is_empty() {
            out.push(dst.save_blob(BlobType::Data, &buf)?.0);
        }
        Ok(out)
    })
}
