//! Loading the trees of a restore ahead of the walk: helper threads load subtrees in roughly
//! the order the walk needs them (depth first: the subdirectories of the tree loaded last are
//! loaded next), with a bound on how many loaded trees wait in memory.

use super::plan::{MAX_DEPTH, child_location, valid_name};
use super::select::Selector;
use cairn_repo::Id;
use cairn_repo::node::NodeType;
use cairn_repo::repository::Repository;
use cairn_repo::tree::Tree;
use parking_lot::{Condvar, Mutex};
use std::collections::{HashMap, HashSet};

/// Loaded trees waiting for the walk: at most this many nodes in all …
const AHEAD_NODES: usize = 16_384;
/// … and at most this many trees.
const AHEAD_TREES: usize = 1024;

/// A tree to load ahead: its id, the directory's snapshot path and depth.
struct Want {
    id: Id,
    location: Vec<u8>,
    depth: usize,
}

#[derive(Default)]
struct LoadState {
    /// Trees to load; the most urgent last.
    todo: Vec<Want>,
    /// Locations being loaded.
    loading: HashSet<Vec<u8>>,
    /// Loaded trees by location, with their node counts.
    done: HashMap<Vec<u8>, (cairn_repo::Result<Tree>, usize)>,
    /// Nodes in `done`.
    done_nodes: usize,
    /// Locations the walk loaded itself (the helpers skip them).
    claimed: HashSet<Vec<u8>>,
    /// Directories the walk skips: nothing at or below them is loaded any more.
    skipped: Vec<Vec<u8>>,
    /// The walk is over.
    stop: bool,
}

impl LoadState {
    fn is_skipped(&self, location: &[u8]) -> bool {
        self.skipped.iter().any(|s| is_below(location, s))
    }
}

/// Whether `location` is `dir` or inside it.
fn is_below(location: &[u8], dir: &[u8]) -> bool {
    location
        .strip_prefix(dir)
        .is_some_and(|rest| rest.is_empty() || rest.first() == Some(&b'/'))
}

/// Loads trees for the walk on helper threads. Each directory location is asked for once;
/// a tree the helpers have not started yet is loaded by the walk itself.
pub(super) struct Loader<'a> {
    repo: &'a Repository,
    sel: &'a Selector,
    state: Mutex<LoadState>,
    /// Helpers wait here for work or room.
    work: Condvar,
    /// The walk waits here for a tree being loaded.
    loaded: Condvar,
}

impl<'a> Loader<'a> {
    /// A loader for the trees of `repo` below directories `sel` may select.
    pub(super) fn new(repo: &'a Repository, sel: &'a Selector) -> Loader<'a> {
        Loader {
            repo,
            sel,
            state: Mutex::new(LoadState::default()),
            work: Condvar::new(),
            loaded: Condvar::new(),
        }
    }

    /// Start loading the subtrees of the root tree.
    pub(super) fn start(&self, root: &Tree) {
        self.push(self.subdirs(root, &[], 0));
    }

    /// Subdirectories of `tree` (at `location`, `depth`) the walk will descend into.
    fn subdirs(&self, tree: &Tree, location: &[u8], depth: usize) -> Vec<Want> {
        if depth >= MAX_DEPTH {
            return Vec::new();
        }
        tree.nodes
            .iter()
            .filter(|n| n.node_type == NodeType::Dir && valid_name(&n.name))
            .filter_map(|n| {
                let id = n.subtree?;
                let loc = child_location(location, &n.name);
                self.sel.select(&loc, true).1.then_some(Want {
                    id,
                    location: loc,
                    depth: depth + 1,
                })
            })
            .collect()
    }

    /// Queue `wants` as most urgent, first one on top.
    fn push(&self, wants: Vec<Want>) {
        if wants.is_empty() {
            return;
        }
        let mut st = self.state.lock();
        st.todo.extend(wants.into_iter().rev());
        drop(st);
        self.work.notify_all();
    }

    /// A helper thread: load queued trees until the walk is over.
    pub(super) fn helper(&self) {
        loop {
            let want = {
                let mut st = self.state.lock();
                loop {
                    if st.stop {
                        return;
                    }
                    if st.done_nodes < AHEAD_NODES
                        && st.done.len() < AHEAD_TREES
                        && let Some(w) = st.todo.pop()
                    {
                        if st.claimed.remove(&w.location)
                            || st.loading.contains(&w.location)
                            || st.done.contains_key(&w.location)
                            || st.is_skipped(&w.location)
                        {
                            continue;
                        }
                        st.loading.insert(w.location.clone());
                        break w;
                    }
                    self.work.wait(&mut st);
                }
            };
            let tree = self.repo.load_tree(&want.id);
            let (children, nodes) = match &tree {
                Ok(t) => (self.subdirs(t, &want.location, want.depth), t.nodes.len()),
                Err(_) => (Vec::new(), 0),
            };
            let mut st = self.state.lock();
            st.loading.remove(&want.location);
            if !st.is_skipped(&want.location) {
                st.done_nodes += nodes;
                st.done.insert(want.location, (tree, nodes));
                st.todo.extend(children.into_iter().rev());
            }
            drop(st);
            self.loaded.notify_all();
            self.work.notify_all();
        }
    }

    /// The tree of the directory at `location` (loading it here unless a helper has it).
    pub(super) fn take(&self, id: Id, location: &[u8], depth: usize) -> cairn_repo::Result<Tree> {
        {
            let mut st = self.state.lock();
            loop {
                if let Some((tree, nodes)) = st.done.remove(location) {
                    st.done_nodes -= nodes;
                    drop(st);
                    self.work.notify_all();
                    return tree;
                }
                if !st.loading.contains(location) {
                    break;
                }
                self.loaded.wait(&mut st);
            }
            st.claimed.insert(location.to_vec());
        }
        let tree = self.repo.load_tree(&id);
        if let Ok(t) = &tree {
            self.push(self.subdirs(t, location, depth));
        }
        tree
    }

    /// The walk will not descend into `location` (its directory is skipped): drop what was
    /// loaded for it and below, and load nothing more there.
    pub(super) fn forget(&self, location: &[u8]) {
        let mut st = self.state.lock();
        st.todo.retain(|w| !is_below(&w.location, location));
        let mut freed = 0;
        st.done.retain(|loc, (_, nodes)| {
            let keep = !is_below(loc, location);
            if !keep {
                freed += *nodes;
            }
            keep
        });
        st.done_nodes -= freed;
        st.skipped.push(location.to_vec());
        drop(st);
        self.work.notify_all();
    }

    pub(super) fn stop(&self) {
        self.state.lock().stop = true;
        self.work.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::RestoreOptions;
    use crate::restore::tests::{dir, file, new_repo, tree};

    #[test]
    fn below_means_inside_or_equal() {
        assert!(is_below(b"/a/b", b"/a"));
        assert!(is_below(b"/a", b"/a"));
        assert!(!is_below(b"/ab", b"/a"));
        assert!(!is_below(b"/a", b"/a/b"));
        assert!(is_below(b"/a/b/c", b"/a/b"));
    }

    /// Let the helper threads load everything they may, then look at the state.
    fn settle(l: &Loader<'_>) {
        for _ in 0..500 {
            {
                let st = l.state.lock();
                if st.loading.is_empty()
                    && (st.todo.is_empty()
                        || st.done_nodes >= AHEAD_NODES
                        || st.done.len() >= AHEAD_TREES)
                {
                    return;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        panic!("helpers did not settle");
    }

    #[test]
    fn helpers_load_ahead_and_forget_skipped_directories() {
        let (_tmp, repo) = new_repo();
        let leaf = |n: &[u8]| dir(&repo, n, vec![file(&repo, b"f", &[n])]);
        let a = dir(&repo, b"a", vec![leaf(b"a1"), leaf(b"a2")]);
        let b = dir(&repo, b"b", vec![leaf(b"b1")]);
        let root_id = tree(&repo, vec![a, b]);
        repo.flush().unwrap();
        let root = repo.load_tree(&root_id).unwrap();
        let opts = RestoreOptions::default();
        let sel = Selector::new(&opts).unwrap();
        let l = Loader::new(&repo, &sel);
        std::thread::scope(|s| {
            s.spawn(|| l.helper());
            l.start(&root);
            settle(&l);
            {
                let st = l.state.lock();
                let mut locs: Vec<&[u8]> = st.done.keys().map(|k| k.as_slice()).collect();
                locs.sort();
                assert_eq!(locs, [&b"/a"[..], b"/a/a1", b"/a/a2", b"/b", b"/b/b1"]);
                assert_eq!(st.done_nodes, 2 + 1 + 1 + 1 + 1);
            }
            // The walk skips /a: it and everything below are dropped.
            l.forget(b"/a");
            let b_id = root.nodes[1].subtree.unwrap();
            let bt = l.take(b_id, b"/b", 1).unwrap();
            assert_eq!(bt.nodes.len(), 1);
            {
                let st = l.state.lock();
                let locs: Vec<&[u8]> = st.done.keys().map(|k| k.as_slice()).collect();
                assert_eq!(locs, [&b"/b/b1"[..]]);
                assert_eq!(st.done_nodes, 1);
            }
            // A tree nobody loaded yet is loaded by the caller.
            let a_id = root.nodes[0].subtree.unwrap();
            assert_eq!(l.take(a_id, b"/elsewhere", 1).unwrap().nodes.len(), 2);
            l.stop();
        });
    }
}
