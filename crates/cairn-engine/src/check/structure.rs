//! Phase 3: load every snapshot and walk its trees in parallel (each distinct tree once),
//! checking that trees load and decode and that every referenced blob is in the index.

use super::{CheckProgress, Problem, ProblemKind, Reporter, Subject, TreeContext};
use crate::Result;
use cairn_repo::backend::FileType;
use cairn_repo::index::Index;
use cairn_repo::node::{Node, NodeType};
use cairn_repo::repository::Repository;
use cairn_repo::tree::Tree;
use cairn_repo::{BlobType, Id};
use parking_lot::{Condvar, Mutex};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts of the structure phase.
pub(super) struct StructureStats {
    /// Snapshots loaded.
    pub snapshots: usize,
    /// Distinct trees checked.
    pub trees: u64,
}

/// A tree to check and where it was reached.
struct Job {
    tree: Id,
    snapshot: Id,
    path: Arc<str>,
}

struct Queue {
    stack: Vec<Job>,
    seen: HashSet<Id>,
    active: usize,
}

/// Load a tree blob from any of its indexed locations.
fn load_tree(repo: &Repository, index: &Index, id: &Id) -> std::result::Result<Tree, String> {
    let locs = index.get_all(BlobType::Tree, id);
    if locs.is_empty() {
        return Err(format!("tree {id} not found in index"));
    }
    let mut last = String::new();
    for loc in &locs {
        match repo.load_blob_at(BlobType::Tree, id, loc) {
            Ok(bytes) => {
                return Tree::decode(&bytes)
                    .map_err(|e| format!("failed to decode tree {id}: {e}"));
            }
            Err(e) => last = format!("loading tree {id} from pack {}: {e}", loc.pack_id),
        }
    }
    Err(last)
}

fn quoted(n: &Node) -> String {
    format!("{:?}", n.name_lossy())
}

/// restic's per-node checks; returns the findings.
fn check_nodes(tree: &Tree, index: &Index) -> Vec<String> {
    let mut errs = Vec::new();
    for n in &tree.nodes {
        match &n.node_type {
            NodeType::File => match &n.content {
                None => errs.push(format!("file {} has nil blob list", quoted(n))),
                Some(content) => {
                    for (i, b) in content.iter().enumerate() {
                        if *b == Id::default() {
                            errs.push(format!("file {} blob {i} has null ID", quoted(n)));
                        } else if !index.contains(BlobType::Data, b) {
                            errs.push(format!("file {} blob {b} not found in index", quoted(n)));
                        }
                    }
                }
            },
            NodeType::Dir => match n.subtree {
                None => errs.push(format!("dir node {} has no subtree", quoted(n))),
                Some(s) if s == Id::default() => {
                    errs.push(format!("dir node {} subtree id is null", quoted(n)))
                }
                Some(_) => {}
            },
            NodeType::Symlink
            | NodeType::Socket
            | NodeType::CharDev
            | NodeType::Dev
            | NodeType::Fifo => {}
            other => errs.push(format!(
                "node {} with invalid type {:?}",
                quoted(n),
                other.as_str()
            )),
        }
        if n.name.is_empty() {
            errs.push("node with empty name".into());
        }
    }
    errs
}

fn join_path(parent: &str, name: &[u8]) -> Arc<str> {
    let name = String::from_utf8_lossy(name);
    if parent.ends_with('/') {
        format!("{parent}{name}").into()
    } else {
        format!("{parent}/{name}").into()
    }
}

/// Check one tree; returns the subtrees to visit.
fn visit(repo: &Repository, index: &Index, job: &Job, rep: &Reporter<'_>) -> Vec<(Id, Arc<str>)> {
    let (errs, subtrees) = match load_tree(repo, index, &job.tree) {
        Err(e) => (vec![e], Vec::new()),
        Ok(tree) => {
            let subtrees = tree
                .nodes
                .iter()
                .filter(|n| n.node_type == NodeType::Dir)
                .filter_map(|n| {
                    let s = n.subtree?;
                    (s != Id::default()).then(|| (s, join_path(&job.path, &n.name)))
                })
                .collect();
            (check_nodes(&tree, index), subtrees)
        }
    };
    if !errs.is_empty() {
        let mut p = Problem::new(
            ProblemKind::Tree,
            Some(Subject::Tree(job.tree)),
            format!(
                "error for tree {} (snapshot {}, path {})",
                job.tree.short(),
                job.snapshot.short(),
                job.path
            ),
        );
        p.details = errs;
        p.context = Some(TreeContext {
            snapshot: job.snapshot,
            path: job.path.to_string(),
        });
        rep.report(p);
    }
    subtrees
}

/// Phase 3.
pub(super) fn check(
    repo: &Repository,
    index: &Index,
    threads: usize,
    progress: &CheckProgress,
    rep: &Reporter<'_>,
) -> Result<StructureStats> {
    let ids = repo.list_ids(FileType::Snapshot)?;
    // Load the snapshots in parallel; keep them in id order for a deterministic walk.
    let roots: Vec<Mutex<Option<Id>>> = ids.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads.min(ids.len()).max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let (Some(id), Some(slot)) = (ids.get(i), roots.get(i)) else {
                        break;
                    };
                    match repo.load_snapshot(id) {
                        Ok(sn) => *slot.lock() = Some(sn.tree),
                        Err(e) => {
                            rep.report(Problem::new(
                                ProblemKind::SnapshotUnreadable,
                                Some(Subject::Snapshot(*id)),
                                format!("snapshot {id}: {e}"),
                            ));
                        }
                    }
                }
            });
        }
    });
    let mut q = Queue {
        stack: Vec::new(),
        seen: HashSet::new(),
        active: 0,
    };
    let root: Arc<str> = "/".into();
    let mut snapshots = 0;
    // Reverse so the stack pops the first snapshot first.
    for (id, slot) in ids.iter().zip(&roots).rev() {
        if let Some(tree) = *slot.lock() {
            snapshots += 1;
            if q.seen.insert(tree) {
                q.stack.push(Job {
                    tree,
                    snapshot: *id,
                    path: Arc::clone(&root),
                });
            }
        }
    }
    progress.add_total(q.stack.len() as u64);
    let queue = Mutex::new(q);
    let wake = Condvar::new();
    let trees = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let job = {
                        let mut q = queue.lock();
                        loop {
                            if let Some(j) = q.stack.pop() {
                                q.active += 1;
                                break Some(j);
                            }
                            if q.active == 0 {
                                break None;
                            }
                            wake.wait(&mut q);
                        }
                    };
                    let Some(job) = job else {
                        wake.notify_all();
                        break;
                    };
                    let subtrees = visit(repo, index, &job, rep);
                    trees.fetch_add(1, Ordering::Relaxed);
                    progress.add_done(1);
                    let mut q = queue.lock();
                    let mut added = 0;
                    // Reverse so the first entry of a directory is visited first.
                    for (tree, path) in subtrees.into_iter().rev() {
                        if q.seen.insert(tree) {
                            q.stack.push(Job {
                                tree,
                                snapshot: job.snapshot,
                                path,
                            });
                            added += 1;
                        }
                    }
                    q.active -= 1;
                    drop(q);
                    progress.add_total(added);
                    if added > 0 {
                        wake.notify_all();
                    } else {
                        wake.notify_one();
                    }
                }
            });
        }
    });
    Ok(StructureStats {
        snapshots,
        trees: trees.into_inner(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, content: Option<Vec<Id>>) -> Node {
        let mut n = Node::new(name, NodeType::File);
        n.content = content;
        n
    }

    #[test]
    fn node_checks_follow_restic() {
        let mut index = Index::new();
        let known = Id::hash(b"known");
        index.add_pack(
            Id::hash(b"pack"),
            &[cairn_repo::pack::PackBlob {
                blob_type: BlobType::Data,
                id: known,
                offset: 0,
                length: 40,
                uncompressed_length: None,
            }],
        );
        let unknown = Id::hash(b"unknown");
        let mut dir_none = Node::new("d1", NodeType::Dir);
        dir_none.subtree = None;
        let mut dir_null = Node::new("d2", NodeType::Dir);
        dir_null.subtree = Some(Id::default());
        let tree = Tree {
            nodes: vec![
                file("ok", Some(vec![known])),
                file("nil", None),
                file("null", Some(vec![known, Id::default()])),
                file("missing", Some(vec![unknown])),
                dir_none,
                dir_null,
                Node::new("link", NodeType::Symlink),
                Node::new("fifo", NodeType::Fifo),
                Node::new("weird", NodeType::Other("blob".into())),
                Node::new("irr", NodeType::Irregular),
                file("", Some(vec![])),
            ],
        };
        let errs = check_nodes(&tree, &index);
        assert_eq!(
            errs,
            vec![
                "file \"nil\" has nil blob list".to_string(),
                "file \"null\" blob 1 has null ID".into(),
                format!("file \"missing\" blob {unknown} not found in index"),
                "dir node \"d1\" has no subtree".into(),
                "dir node \"d2\" subtree id is null".into(),
                "node \"weird\" with invalid type \"blob\"".into(),
                "node \"irr\" with invalid type \"irregular\"".into(),
                "node with empty name".into(),
            ]
        );
    }

    #[test]
    fn paths_join() {
        assert_eq!(&*join_path("/", b"a"), "/a");
        assert_eq!(&*join_path("/a", b"b"), "/a/b");
    }
}
