//! Copy tests between temporary local repositories.

use super::*;
use cairn_repo::chunker::{ChunkerTables, Pol, chunk_lengths};
use cairn_repo::gotime::GoTime;
use cairn_repo::key::KdfParams;
use cairn_repo::node::Node;
use cairn_repo::repository::InitOptions;
use std::sync::Arc;

fn new_repo(dir: &std::path::Path, name: &str, pol: Option<Pol>) -> Repository {
    let be = Arc::new(cairn_backend::LocalBackend::new(dir.join(name)));
    Repository::init(
        be,
        b"pw",
        InitOptions {
            kdf: KdfParams::testing(),
            chunker_polynomial: pol,
            ..Default::default()
        },
    )
    .unwrap()
}

/// Reopen a repository (fresh index loaded from disk).
fn reopen(dir: &std::path::Path, name: &str) -> Repository {
    let be = Arc::new(cairn_backend::LocalBackend::new(dir.join(name)));
    let r = Repository::open(be, b"pw", Default::default()).unwrap();
    r.load_index().unwrap();
    r
}

fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.extend_from_slice(&seed.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A file node whose data is chunked with `repo`'s chunker, like a backup does.
fn file(repo: &Repository, name: &str, data: &[u8]) -> Node {
    let mut n = Node::new(name.as_bytes().to_vec(), NodeType::File);
    let mut content = Vec::new();
    let mut off = 0;
    for len in chunk_lengths(repo.chunker_tables(), data) {
        content.push(
            repo.save_blob(BlobType::Data, &data[off..off + len])
                .unwrap()
                .0,
        );
        off += len;
    }
    n.content = Some(content);
    n.size = data.len() as u64;
    n.mode = 0o644;
    n
}

fn save_tree(repo: &Repository, mut nodes: Vec<Node>) -> Id {
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    repo.save_blob(BlobType::Tree, &Tree { nodes }.encode().unwrap())
        .unwrap()
        .0
}

fn dir_node(name: &str, subtree: Id) -> Node {
    let mut n = Node::new(name.as_bytes().to_vec(), NodeType::Dir);
    n.subtree = Some(subtree);
    n.mode = 0o20000000755;
    n
}

/// A source snapshot: /data/{big (3 MiB), small, empty}, /data/sub/{big copy}.
fn source(repo: &Repository, big: &[u8]) -> (Id, Snapshot) {
    let sub = save_tree(repo, vec![file(repo, "again", big)]);
    let data = save_tree(
        repo,
        vec![
            file(repo, "big", big),
            file(repo, "small", b"hello world"),
            file(repo, "empty", b""),
            dir_node("sub", sub),
        ],
    );
    let root = save_tree(repo, vec![dir_node("data", data)]);
    repo.flush().unwrap();
    let mut s = Snapshot::new(
        GoTime::from_unix(1_700_000_000, 5),
        root,
        vec!["/data".into()],
    );
    s.hostname = "h".into();
    s.tags = vec!["a".into(), "b".into()];
    s.parent = Some(Id::hash(b"parent"));
    let id = repo.save_snapshot(&s).unwrap();
    (id, s)
}

/// The bytes of a file node read back from `repo`.
fn read_file(repo: &Repository, n: &Node) -> Vec<u8> {
    let mut out = Vec::new();
    for id in n.content.iter().flatten() {
        out.extend(repo.load_blob(BlobType::Data, id).unwrap());
    }
    out
}

fn find(repo: &Repository, root: &Id, path: &[&str]) -> Node {
    let mut tree = repo.load_tree(root).unwrap();
    let (last, dirs) = path.split_last().unwrap();
    for d in dirs {
        let sub = tree.find(d.as_bytes()).unwrap().subtree.unwrap();
        tree = repo.load_tree(&sub).unwrap();
    }
    tree.find(last.as_bytes()).unwrap().clone()
}

#[test]
fn similar_snapshot_rules() {
    let mut a = Snapshot::new(
        GoTime::from_unix(1, 0),
        Id::hash(b"t"),
        vec!["/x".into(), "/y".into()],
    );
    a.tags = vec!["t1".into(), "t2".into()];
    a.excludes = vec!["*.o".into()];
    let mut b = a.clone();
    b.paths.reverse();
    b.tags.reverse();
    b.parent = Some(Id::hash(b"p"));
    b.original = Some(Id::hash(b"o"));
    assert!(
        similar_snapshots(&a, &b),
        "order of paths/tags, parent and original ignored"
    );
    for change in 0..7 {
        let mut c = b.clone();
        match change {
            0 => c.tree = Id::hash(b"other"),
            1 => c.time = GoTime::from_unix(2, 0),
            2 => c.hostname = "other".into(),
            3 => c.tags.push("t3".into()),
            4 => c.excludes.push("x".into()),
            5 => c.uid = 7,
            _ => c.paths.pop().map(|_| ()).unwrap(),
        }
        assert!(!similar_snapshots(&a, &c), "change {change}");
    }
    let mut d = b.clone();
    d.tree = Id::hash(b"other");
    assert!(similar_metadata(&a, &d));
    // Indexed under both their own id and their original.
    let dst = vec![(Id::hash(b"d1"), b.clone()), (Id::hash(b"d2"), a.clone())];
    let map = index_by_original(&dst);
    assert_eq!(map[&Id::hash(b"o")].len(), 1);
    assert_eq!(map[&Id::hash(b"d1")].len(), 1);
    assert_eq!(map.len(), 3);
}

#[test]
fn plain_copy_keeps_ids_and_skips_what_exists() {
    let dir = tempfile::tempdir().unwrap();
    let src = new_repo(dir.path(), "src", None);
    let pol = Pol(src.config().chunker_polynomial);
    let dst = new_repo(dir.path(), "dst", Some(pol));
    let big = noise(3 << 20, 7);
    let (sid, snap) = source(&src, &big);
    let progress = CopyProgress::default();
    let mut c = Copier::new(&src, &dst, true, &progress);
    assert!(!c.rechunks(), "equal polynomials never re-chunk");
    let (nid, new) = c.copy_snapshot(&sid, &snap).unwrap();
    assert_eq!(new.tree, snap.tree, "blobs copied as they are");
    assert_eq!(new.parent, None);
    assert_eq!(new.original, Some(sid));
    assert_eq!((new.tags.clone(), new.time), (snap.tags.clone(), snap.time));
    let data_blobs = src.index().count(BlobType::Data);
    drop(c);

    let dst = reopen(dir.path(), "dst");
    assert_eq!(dst.index().count(BlobType::Data), data_blobs);
    assert_eq!(
        dst.index().count(BlobType::Tree),
        src.index().count(BlobType::Tree)
    );
    assert_eq!(dst.load_snapshot(&nid).unwrap(), new);
    let n = find(&dst, &new.tree, &["data", "sub", "again"]);
    assert_eq!(read_file(&dst, &n), big);

    // Found as an existing copy; a snapshot with different metadata is not.
    let snaps = dst.load_snapshots().unwrap();
    let map = index_by_original(&snaps);
    let c = Copier::new(&src, &dst, true, &progress);
    assert_eq!(c.existing_copy(&map, &sid, &snap), Some(nid));
    let mut other = snap.clone();
    other.hostname = "x".into();
    assert_eq!(c.existing_copy(&map, &sid, &other), None);
    // A copy of the copy (original set) maps back to it too.
    assert_eq!(
        c.existing_copy(&map, &Id::hash(b"elsewhere"), &new),
        Some(nid)
    );
}

#[test]
fn rechunking_copy_cuts_like_the_destination() {
    let dir = tempfile::tempdir().unwrap();
    let big = noise(3 << 20, 11);
    // Two random polynomials can cut 3 MiB the same way (both finding no boundary happens in
    // about 1 of 150 pairs): take a destination polynomial that cuts it differently.
    let cuts = |p: Pol| chunk_lengths(&ChunkerTables::new(p), &big);
    let src_pol = Pol::random().unwrap();
    let dst_pol = std::iter::repeat_with(|| Pol::random().unwrap())
        .find(|p| cuts(*p) != cuts(src_pol))
        .unwrap();
    let src = new_repo(dir.path(), "src", Some(src_pol));
    let dst = new_repo(dir.path(), "dst", Some(dst_pol));
    assert!(Copier::polynomials_differ(&src, &dst));
    let (sid, snap) = source(&src, &big);
    let progress = CopyProgress::default();
    let mut c = Copier::new(&src, &dst, true, &progress);
    assert!(c.rechunks());
    let (nid, new) = c.copy_snapshot(&sid, &snap).unwrap();
    assert_ne!(new.tree, snap.tree, "trees holding re-chunked files change");
    assert_eq!(
        progress.files_rechunked.load(Ordering::Relaxed),
        1,
        "the second copy of the big file reuses the first result"
    );
    drop(c);
    let dst = reopen(dir.path(), "dst");
    // The content is what a backup into the destination would produce.
    let mut expect = Vec::new();
    let mut off = 0;
    for len in chunk_lengths(dst.chunker_tables(), &big) {
        expect.push(Id::hash(&big[off..off + len]));
        off += len;
    }
    let src_big = find(&src, &snap.tree, &["data", "big"]);
    assert_ne!(
        src_big.content.as_ref(),
        Some(&expect),
        "polynomials cut differently"
    );
    for path in [&["data", "big"][..], &["data", "sub", "again"]] {
        let n = find(&dst, &new.tree, path);
        assert_eq!(n.content.as_ref(), Some(&expect), "{path:?}");
        assert_eq!(n.size, big.len() as u64);
        assert_eq!(read_file(&dst, &n), big);
    }
    // Small files keep their blob.
    let small = find(&dst, &new.tree, &["data", "small"]);
    assert_eq!(
        small.content,
        find(&src, &snap.tree, &["data", "small"]).content
    );
    assert_eq!(read_file(&dst, &small), b"hello world");
    assert_eq!(
        find(&dst, &new.tree, &["data", "empty"]).content,
        Some(vec![])
    );

    // Recognised as already copied (equivalent trees); a changed source tree is not.
    let snaps = dst.load_snapshots().unwrap();
    let map = index_by_original(&snaps);
    let c = Copier::new(&src, &dst, true, &progress);
    assert_eq!(c.existing_copy(&map, &sid, &snap), Some(nid));
    let other_root = save_tree(&src, vec![dir_node("data", Id::hash(b"x"))]);
    src.flush().unwrap();
    let mut other = snap.clone();
    other.tree = other_root;
    assert_eq!(c.existing_copy(&map, &sid, &other), None);
    // Without re-chunking the trees stay as they are.
    let plain = Copier::new(&src, &dst, false, &progress);
    assert!(!plain.rechunks());
    assert_eq!(plain.existing_copy(&map, &sid, &snap), None);
}

#[test]
fn missing_source_blob_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let src = new_repo(dir.path(), "src", None);
    let dst = new_repo(
        dir.path(),
        "dst",
        Some(Pol(src.config().chunker_polynomial)),
    );
    let mut n = Node::new(b"f".to_vec(), NodeType::File);
    n.content = Some(vec![Id::hash(b"not stored")]);
    let root = save_tree(&src, vec![n]);
    src.flush().unwrap();
    let snap = Snapshot::new(GoTime::from_unix(1, 0), root, vec!["/".into()]);
    let progress = CopyProgress::default();
    let mut c = Copier::new(&src, &dst, true, &progress);
    let err = c.copy_snapshot(&Id::hash(b"s"), &snap).unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
    assert!(
        dst.list_ids(cairn_repo::backend::FileType::Snapshot)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn reads_are_grouped_per_pack() {
    let loc = |pack: u8, offset: u32, length: u32| BlobLocation {
        pack_id: Id([pack; 32]),
        offset,
        length,
        uncompressed_length: None,
    };
    let b = |n: u8, l: BlobLocation| (BlobType::Data, Id([n; 32]), l);
    let spans = blobs::plan_for_test(vec![
        b(1, loc(1, 100, 50)),
        b(2, loc(1, 0, 100)),
        b(3, loc(1, 5_000_000, 10)),
        b(4, loc(2, 0, 10)),
        b(5, loc(1, 150, 4 * 1024 * 1024)),
    ]);
    let shape: Vec<(u8, u64, u64, usize)> =
        spans.iter().map(|s| (s.0.0[0], s.1, s.2, s.3)).collect();
    assert_eq!(
        shape,
        vec![
            (1, 0, 150, 2),
            (1, 150, 150 + 4 * 1024 * 1024, 1),
            (1, 5_000_000, 5_000_010, 1),
            (2, 0, 10, 1)
        ]
    );
}

use cairn_repo::index::BlobLocation;
