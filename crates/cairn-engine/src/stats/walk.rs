//! Loading every tree reachable from a set of roots exactly once, on several threads.

use crate::{EngineError, Result};
use cairn_repo::node::NodeType;
use cairn_repo::repository::Repository;
use cairn_repo::tree::Tree;
use cairn_repo::{Id, RepoError};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Threads used to load trees: tree loading waits on storage as much as on the CPU, so a
/// few more than the cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(4, 16)
}

/// Shared state of one [`for_each_tree`] run.
struct Walk<'a, F> {
    repo: &'a Repository,
    visit: F,
    seen: Mutex<HashSet<Id>>,
    error: Mutex<Option<EngineError>>,
    abort: AtomicBool,
    loaded: Option<&'a AtomicU64>,
}

impl<'a, F> Walk<'a, F>
where
    F: Fn(Id, Tree) -> Result<()> + Sync,
{
    fn fail(&self, e: EngineError) {
        self.abort.store(true, Ordering::Relaxed);
        let mut slot = self.error.lock();
        if slot.is_none() {
            *slot = Some(e);
        }
    }

    /// Load tree `id`, queue its unseen subtrees, then hand it to the visitor.
    fn process<'s>(&'s self, scope: &rayon::Scope<'s>, id: Id) {
        if self.abort.load(Ordering::Relaxed) {
            return;
        }
        let tree = match self.repo.load_tree(&id) {
            Ok(t) => t,
            Err(e) => return self.fail(e.into()),
        };
        if let Some(c) = self.loaded {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let mut new = Vec::new();
        {
            let mut seen = self.seen.lock();
            for node in &tree.nodes {
                if node.node_type != NodeType::Dir {
                    continue;
                }
                match node.subtree {
                    Some(sub) => {
                        if seen.insert(sub) {
                            new.push(sub);
                        }
                    }
                    None => {
                        drop(seen);
                        return self.fail(EngineError::Repo(RepoError::corrupt(
                            format!("tree {}", id.to_hex()),
                            format!(
                                "subtree for node {:?} is missing",
                                String::from_utf8_lossy(&node.name)
                            ),
                        )));
                    }
                }
            }
        }
        for sub in new {
            scope.spawn(move |s| self.process(s, sub));
        }
        if let Err(e) = (self.visit)(id, tree) {
            self.fail(e);
        }
    }
}

/// Load every tree reachable from `roots` once (shared subtrees are loaded once however
/// often they are referenced) on `threads` threads, calling `visit(id, tree)` for each, in
/// no particular order and possibly concurrently. `loaded` counts the trees loaded so far
/// (for progress). The first error stops the walk and is returned.
pub fn for_each_tree<F>(
    repo: &Repository,
    roots: &[Id],
    threads: usize,
    loaded: Option<&AtomicU64>,
    visit: F,
) -> Result<()>
where
    F: Fn(Id, Tree) -> Result<()> + Sync,
{
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("tree-loader-{i}"))
        .build()
        .map_err(|e| EngineError::Invalid(format!("starting tree loader threads: {e}")))?;
    let walk = Walk {
        repo,
        visit,
        seen: Mutex::new(HashSet::new()),
        error: Mutex::new(None),
        abort: AtomicBool::new(false),
        loaded,
    };
    let mut start = Vec::new();
    {
        let mut seen = walk.seen.lock();
        for r in roots {
            if seen.insert(*r) {
                start.push(*r);
            }
        }
    }
    let w = &walk;
    pool.scope(|s| {
        for id in start {
            s.spawn(move |s| w.process(s, id));
        }
    });
    match walk.error.into_inner() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
