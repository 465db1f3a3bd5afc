//! Finding the used blobs: every tree reachable from the snapshots' root trees and every data
//! blob in the content of a `file` node (restic's `FindUsedBlobs`). Trees are loaded by
//! several threads at once; each tree is loaded once.

use super::{IdHash, IdMap, Phase, PruneProgress};
use crate::{EngineError, Result};
use cairn_repo::node::NodeType;
use cairn_repo::repository::Repository;
use cairn_repo::{BlobType, Id};
use parking_lot::{Condvar, Mutex};

/// The used blobs, each with a counter the planner uses for duplicate copies (0 when found).
#[derive(Debug, Default, Clone)]
pub struct UsedBlobs {
    /// Used data blobs.
    pub data: IdMap<u8>,
    /// Used tree blobs.
    pub tree: IdMap<u8>,
}

impl UsedBlobs {
    /// No blobs.
    pub fn new() -> UsedBlobs {
        UsedBlobs::default()
    }

    /// Mark a blob as used.
    pub fn insert(&mut self, t: BlobType, id: Id) {
        self.map_mut(t).entry(id).or_insert(0);
    }

    /// True if the blob is used.
    pub fn contains(&self, t: BlobType, id: &Id) -> bool {
        self.map(t).contains_key(id)
    }

    /// Number of used blobs.
    pub fn len(&self) -> usize {
        self.data.len() + self.tree.len()
    }

    /// True if nothing is used.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn map(&self, t: BlobType) -> &IdMap<u8> {
        match t {
            BlobType::Data => &self.data,
            BlobType::Tree => &self.tree,
        }
    }

    pub(super) fn map_mut(&mut self, t: BlobType) -> &mut IdMap<u8> {
        match t {
            BlobType::Data => &mut self.data,
            BlobType::Tree => &mut self.tree,
        }
    }
}

/// Shards of the concurrent sets (by the first id byte).
const SHARDS: usize = 64;

fn shard(id: &Id) -> usize {
    usize::from(id.0[0]) % SHARDS
}

struct Sharded {
    shards: Vec<Mutex<IdMap<u8>>>,
}

impl Sharded {
    fn new() -> Sharded {
        Sharded {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(IdMap::with_hasher(IdHash)))
                .collect(),
        }
    }

    /// Insert; true if the id was new.
    fn insert(&self, id: Id) -> bool {
        match self.shards.get(shard(&id)) {
            Some(s) => s.lock().insert(id, 0).is_none(),
            None => false,
        }
    }

    fn into_map(self) -> IdMap<u8> {
        let total = self.shards.iter().map(|s| s.lock().len()).sum();
        let mut out = IdMap::with_capacity_and_hasher(total, IdHash);
        for s in self.shards {
            out.extend(s.into_inner());
        }
        out
    }
}

#[derive(Default)]
struct Queue {
    todo: Vec<Id>,
    active: usize,
    error: Option<EngineError>,
}

struct Walk<'a> {
    repo: &'a Repository,
    progress: &'a dyn PruneProgress,
    queue: Mutex<Queue>,
    wake: Condvar,
    trees: Sharded,
    data: Sharded,
}

impl Walk<'_> {
    fn worker(&self) {
        let mut found = Vec::new();
        loop {
            let id = {
                let mut q = self.queue.lock();
                loop {
                    if q.error.is_some() {
                        return;
                    }
                    if let Some(id) = q.todo.pop() {
                        q.active += 1;
                        break id;
                    }
                    if q.active == 0 {
                        self.wake.notify_all();
                        return;
                    }
                    self.wake.wait(&mut q);
                }
            };
            let r = self.visit(&id, &mut found);
            self.progress.advance(Phase::FindUsed, 1);
            let mut q = self.queue.lock();
            q.active -= 1;
            match r {
                Ok(()) => q.todo.append(&mut found),
                Err(e) => {
                    q.error.get_or_insert(e);
                }
            }
            self.wake.notify_all();
        }
    }

    /// Load one tree, mark its file contents and new subtrees; new subtrees go to `found`.
    fn visit(&self, id: &Id, found: &mut Vec<Id>) -> Result<()> {
        let tree = self.repo.load_tree(id).map_err(|e| {
            EngineError::Invalid(format!(
                "unable to load a tree from the repository: tree {}: {e}",
                id.short()
            ))
        })?;
        for node in &tree.nodes {
            match node.node_type {
                NodeType::File => {
                    for b in node.content.iter().flatten() {
                        self.data.insert(*b);
                    }
                }
                NodeType::Dir => {
                    if let Some(sub) = node.subtree
                        && self.trees.insert(sub)
                    {
                        found.push(sub);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Threads loading trees (decrypting, decompressing and parsing is CPU work; reads may wait).
fn walk_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 16)
        + 1
}

/// Walk every tree reachable from `roots` (in parallel) and collect the used blobs. Any tree
/// that cannot be loaded is an error (nothing may be pruned on an incomplete picture).
pub fn find_used_blobs(
    repo: &Repository,
    roots: &[Id],
    progress: &dyn PruneProgress,
) -> Result<UsedBlobs> {
    let walk = Walk {
        repo,
        progress,
        queue: Mutex::new(Queue::default()),
        wake: Condvar::new(),
        trees: Sharded::new(),
        data: Sharded::new(),
    };
    {
        let mut q = walk.queue.lock();
        for r in roots {
            if walk.trees.insert(*r) {
                q.todo.push(*r);
            }
        }
    }
    std::thread::scope(|s| {
        for _ in 0..walk_threads() {
            s.spawn(|| walk.worker());
        }
    });
    let Walk {
        queue, trees, data, ..
    } = walk;
    if let Some(e) = queue.into_inner().error {
        return Err(e);
    }
    Ok(UsedBlobs {
        data: data.into_map(),
        tree: trees.into_map(),
    })
}
