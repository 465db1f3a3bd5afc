//! Stats tests: hand-checked numbers, and the parallel per-tree aggregation against a plain
//! sequential walk of every snapshot that follows restic's `stats` code step by step.

use super::*;
use crate::select::{WalkAction, walk_tree_ext};
use cairn_repo::gotime::GoTime;
use cairn_repo::key::KdfParams;
use cairn_repo::node::Node;
use cairn_repo::repository::InitOptions;
use std::sync::Arc;

fn new_repo(dir: &std::path::Path, version: u32) -> Repository {
    let be = Arc::new(cairn_backend::LocalBackend::new(dir.join("repo")));
    Repository::init(
        be,
        b"pw",
        InitOptions {
            kdf: KdfParams::testing(),
            version,
            ..Default::default()
        },
    )
    .unwrap()
}

fn reopen(dir: &std::path::Path) -> Repository {
    let be = Arc::new(cairn_backend::LocalBackend::new(dir.join("repo")));
    let r = Repository::open(be, b"pw", Default::default()).unwrap();
    r.load_index().unwrap();
    r
}

/// A file node with one data blob per chunk.
fn file(repo: &Repository, name: &str, chunks: &[&[u8]], inode: u64, links: u64) -> Node {
    let mut n = Node::new(name.as_bytes().to_vec(), NodeType::File);
    n.content = Some(
        chunks
            .iter()
            .map(|c| repo.save_blob(BlobType::Data, c).unwrap().0)
            .collect(),
    );
    n.size = chunks.iter().map(|c| c.len() as u64).sum();
    n.inode = inode;
    n.device_id = 7;
    n.links = links;
    n
}

fn other(name: &str, t: NodeType, inode: u64) -> Node {
    let mut n = Node::new(name.as_bytes().to_vec(), t);
    n.inode = inode;
    n.links = 1;
    n
}

fn tree(repo: &Repository, mut nodes: Vec<Node>) -> Id {
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    repo.save_blob(BlobType::Tree, &Tree { nodes }.encode().unwrap())
        .unwrap()
        .0
}

fn dir(name: &str, subtree: Id, inode: u64) -> Node {
    let mut n = Node::new(name.as_bytes().to_vec(), NodeType::Dir);
    n.subtree = Some(subtree);
    n.inode = inode;
    n.links = 2;
    n
}

fn snap(tree: Id) -> (Id, Snapshot) {
    (
        Id::hash(&tree.0),
        Snapshot::new(GoTime::default(), tree, vec!["/x".into()]),
    )
}

/// Compressible and incompressible chunks.
fn chunk(seed: u8, len: usize, compressible: bool) -> Vec<u8> {
    if compressible {
        return vec![seed; len];
    }
    let mut x = u64::from(seed) + 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Two snapshots sharing a subtree; duplicate contents at several paths, hard links, a
/// same tree referenced twice in one snapshot, special files and empty files.
fn build(repo: &Repository) -> Vec<(Id, Snapshot)> {
    let a = chunk(1, 3000, false);
    let b = chunk(2, 5000, true);
    let c = chunk(3, 700, false);
    let shared = tree(
        repo,
        vec![
            file(repo, "a", &[&a], 10, 1),
            file(repo, "ab", &[&a, &b], 11, 1),
            other("empty", NodeType::File, 12),
            other("link", NodeType::Symlink, 13),
        ],
    );
    let root1 = tree(
        repo,
        vec![
            dir("shared", shared, 20),
            dir("again", shared, 20),
            file(repo, "h1", &[&c], 30, 2),
            file(repo, "h2", &[&c], 30, 2),
            file(repo, "copy-of-a", &[&a], 31, 1),
            other("fifo", NodeType::Fifo, 32),
        ],
    );
    let sub2 = tree(
        repo,
        vec![
            file(repo, "b", &[&b], 40, 1),
            file(repo, "a", &[&c, &a], 41, 1),
        ],
    );
    let root2 = tree(
        repo,
        vec![
            dir("shared", shared, 20),
            dir("new", sub2, 50),
            file(repo, "h1", &[&c], 30, 3),
            file(repo, "copy-of-a", &[&b], 31, 1),
        ],
    );
    repo.flush().unwrap();
    vec![snap(root1), snap(root2)]
}

/// restic's `stats` for one mode, walking every snapshot node by node like restic does.
fn reference(repo: &Repository, snaps: &[(Id, Snapshot)], mode: CountMode) -> Stats {
    let index = repo.index();
    let mut st = Stats {
        snapshots_count: snaps.len(),
        ..Stats::default()
    };
    if mode == CountMode::RawData {
        let mut blobs = HashSet::new();
        for (_, s) in snaps {
            blobs.insert((BlobType::Tree, s.tree));
            walk_tree_ext(repo, s.tree, b"/", &mut |_, _, n| {
                if let Some(sub) = n.subtree {
                    blobs.insert((BlobType::Tree, sub));
                }
                if n.node_type == NodeType::File {
                    for b in n.content.iter().flatten() {
                        blobs.insert((BlobType::Data, *b));
                    }
                }
                Ok(WalkAction::Continue)
            })
            .unwrap();
        }
        let (mut cs, mut cu) = (0u64, 0u64);
        for (t, id) in &blobs {
            let loc = index.get(*t, id).unwrap();
            st.total_size += u64::from(loc.length);
            if repo.version() >= 2 {
                let dl = match loc.uncompressed_length {
                    Some(u) => u64::from(u),
                    None => u64::from(loc.length) - 32,
                };
                st.total_uncompressed_size += dl + 32;
                if loc.uncompressed_length.is_some() {
                    cs += u64::from(loc.length);
                    cu += dl + 32;
                }
            }
            st.total_blob_count += 1;
        }
        if cs > 0 {
            st.compression_ratio = cu as f64 / cs as f64;
        }
        if st.total_uncompressed_size > 0 {
            st.compression_progress = cu as f64 / st.total_uncompressed_size as f64 * 100.0;
            st.compression_space_saving =
                (1.0 - st.total_size as f64 / st.total_uncompressed_size as f64) * 100.0;
        }
        return st;
    }
    let mut unique_files = HashSet::new();
    let mut file_blobs: HashMap<Vec<u8>, HashSet<Id>> = HashMap::new();
    for (_, s) in snaps {
        let mut hardlinks = HashSet::new();
        walk_tree_ext(repo, s.tree, b"/", &mut |_, path, n| {
            if matches!(mode, CountMode::FilesByContents | CountMode::BlobsPerFile) {
                let fid = content_id(n.content.as_ref());
                if unique_files.insert(fid) {
                    if mode == CountMode::FilesByContents {
                        st.total_size += n.size;
                        st.total_file_count += 1;
                    } else {
                        for b in n.content.iter().flatten() {
                            let set = file_blobs.entry(path.to_vec()).or_insert_with(|| {
                                st.total_file_count += 1;
                                HashSet::new()
                            });
                            if set.insert(*b) {
                                let loc = index.get(BlobType::Data, b).unwrap();
                                st.total_size +=
                                    u64::from(loc.uncompressed_length.unwrap_or(loc.length - 32));
                                st.total_blob_count += 1;
                            }
                        }
                    }
                }
            }
            if mode == CountMode::RestoreSize {
                st.total_file_count += 1;
                // restic: count if links == 1 or a directory, else only the first node of
                // each (inode, device) — or every one with inode 0.
                if n.links == 1
                    || n.node_type == NodeType::Dir
                    || hardlinks.insert((n.inode, n.device_id))
                    || n.inode == 0
                {
                    st.total_size += n.size;
                }
            }
            Ok(WalkAction::Continue)
        })
        .unwrap();
    }
    st
}

const MODES: [CountMode; 4] = [
    CountMode::RestoreSize,
    CountMode::FilesByContents,
    CountMode::RawData,
    CountMode::BlobsPerFile,
];

#[test]
fn modes_match_a_sequential_walk_like_restic() {
    for version in [1, 2] {
        let d = tempfile::tempdir().unwrap();
        let snaps = build(&new_repo(d.path(), version));
        let repo = reopen(d.path());
        for mode in MODES {
            let want = reference(&repo, &snaps, mode);
            for threads in [1, 4] {
                let got = stats(&repo, &snaps, mode, threads, None).unwrap();
                assert_eq!(got, want, "v{version} {mode:?} threads {threads}");
            }
            // One snapshot, and the same snapshot twice.
            let one = &snaps[1..];
            assert_eq!(
                stats(&repo, one, mode, 2, None).unwrap(),
                reference(&repo, one, mode)
            );
            let twice = vec![snaps[0].clone(), snaps[0].clone()];
            assert_eq!(
                stats(&repo, &twice, mode, 2, None).unwrap(),
                reference(&repo, &twice, mode)
            );
        }
    }
}

#[test]
fn hand_checked_numbers() {
    let d = tempfile::tempdir().unwrap();
    let snaps = build(&new_repo(d.path(), 2));
    let repo = reopen(d.path());
    let one = &snaps[..1];
    // Snapshot 1: root has 6 nodes, `shared` (4 nodes) appears twice → 14 nodes. Sizes:
    // shared = 3000 + 8000 = 11000, twice; h1/h2 share an inode (700 once); copy-of-a 3000.
    let st = stats(&repo, one, CountMode::RestoreSize, 2, None).unwrap();
    assert_eq!(
        (st.total_file_count, st.total_size),
        (14, 22000 + 700 + 3000)
    );
    // Distinct contents in snapshot 1: [a], [a,b], [c], and "no content" (size 0).
    let st = stats(&repo, one, CountMode::FilesByContents, 2, None).unwrap();
    assert_eq!((st.total_file_count, st.total_size), (4, 3000 + 8000 + 700));
    // Blobs: 2 trees + a, b, c.
    let st = stats(&repo, one, CountMode::RawData, 2, None).unwrap();
    assert_eq!(st.total_blob_count, 5);
    assert!(st.total_uncompressed_size > st.total_size, "{st:?}");
    assert!(st.compression_ratio > 1.0 && st.compression_progress > 0.0);
    // First paths of [a] (/again/a), [a,b] (/again/ab), [c] (/h1): 3 files, 4 blob refs.
    let st = stats(&repo, one, CountMode::BlobsPerFile, 2, None).unwrap();
    assert_eq!(
        (st.total_file_count, st.total_blob_count, st.total_size),
        (3, 4, 3000 + 3000 + 5000 + 700)
    );
    assert_eq!(st.snapshots_count, 1);
}

#[test]
fn json_shape_like_restic() {
    let st = Stats {
        total_size: 5,
        total_file_count: 2,
        snapshots_count: 1,
        ..Stats::default()
    };
    assert_eq!(
        serde_json::to_string(&st).unwrap(),
        r#"{"total_size":5,"total_file_count":2,"snapshots_count":1}"#
    );
    let st = Stats {
        total_size: 5,
        total_uncompressed_size: 9,
        compression_ratio: 2.5,
        compression_progress: 50.0,
        compression_space_saving: 10.0,
        total_blob_count: 3,
        ..Stats::default()
    };
    assert_eq!(
        serde_json::to_string(&st).unwrap(),
        r#"{"total_size":5,"total_uncompressed_size":9,"compression_ratio":2.5,"compression_progress":50.0,"compression_space_saving":10.0,"total_blob_count":3,"snapshots_count":0}"#
    );
}

#[test]
fn modes_parse_and_missing_trees_fail() {
    for m in MODES {
        assert_eq!(m.as_str().parse::<CountMode>().unwrap(), m);
    }
    assert!("bogus".parse::<CountMode>().is_err());
    let d = tempfile::tempdir().unwrap();
    let repo = new_repo(d.path(), 2);
    let missing = vec![snap(Id([9; 32]))];
    for mode in MODES {
        assert!(stats(&repo, &missing, mode, 2, None).is_err(), "{mode:?}");
    }
    assert_eq!(
        stats(&repo, &[], CountMode::RestoreSize, 2, None).unwrap(),
        Stats::default()
    );
}

#[test]
fn used_blobs_and_progress() {
    let d = tempfile::tempdir().unwrap();
    let snaps = build(&new_repo(d.path(), 2));
    let repo = reopen(d.path());
    let roots: Vec<Id> = snaps.iter().map(|s| s.1.tree).collect();
    let counter = AtomicU64::new(0);
    let blobs = used_blobs(&repo, &roots, Some(&counter)).unwrap();
    // 4 distinct trees (root1, root2, shared, sub2) and 3 data blobs.
    assert_eq!(counter.load(std::sync::atomic::Ordering::Relaxed), 4);
    assert_eq!(
        blobs.iter().filter(|(t, _)| *t == BlobType::Tree).count(),
        4
    );
    assert_eq!(blobs.len(), 7);
}
