//! Rewrite and repair tests on temporary local repositories.

use super::*;
use crate::filter::PatternOptions;
use cairn_repo::backend::FileType;
use cairn_repo::gotime::GoTime;
use cairn_repo::key::KdfParams;
use cairn_repo::repository::InitOptions;
use cairn_repo::snapshot::{Snapshot, SnapshotSummary};
use std::sync::Arc;

fn new_repo(dir: &std::path::Path) -> Repository {
    let be = Arc::new(cairn_backend::LocalBackend::new(dir.join("repo")));
    Repository::init(
        be,
        b"pw",
        InitOptions {
            kdf: KdfParams::testing(),
            ..Default::default()
        },
    )
    .unwrap()
}

fn file(repo: &Repository, name: &str, data: &[u8]) -> Node {
    let mut n = Node::new(name.as_bytes().to_vec(), NodeType::File);
    n.content = Some(vec![repo.save_blob(BlobType::Data, data).unwrap().0]);
    n.size = data.len() as u64;
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
    n
}

/// `/src/{a.txt, b.log, sub/{c.log, d.txt}}`.
fn sample(repo: &Repository) -> Id {
    let sub = save_tree(
        repo,
        vec![file(repo, "c.log", b"ccc"), file(repo, "d.txt", b"dddd")],
    );
    let src = save_tree(
        repo,
        vec![
            file(repo, "a.txt", b"a"),
            file(repo, "b.log", b"bb"),
            dir_node("sub", sub),
        ],
    );
    let root = save_tree(repo, vec![dir_node("src", src)]);
    repo.flush().unwrap();
    root
}

fn names(repo: &Repository, tree: &Id, prefix: &str, out: &mut Vec<String>) {
    for n in repo.load_tree(tree).unwrap().nodes {
        let p = format!("{prefix}/{}", n.name_lossy());
        if let Some(sub) = n.subtree {
            names(repo, &sub, &p, out);
        }
        out.push(p);
    }
}

fn excluder(patterns: &[&str]) -> Excluder {
    Excluder::new(&PatternOptions {
        patterns: patterns.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn exclude_removes_matching_nodes_and_counts_the_rest() {
    let d = tempfile::tempdir().unwrap();
    let repo = new_repo(d.path());
    let root = sample(&repo);
    let mut events = Vec::new();
    let (new, size) = exclude_from_tree(&repo, &root, &excluder(&["*.log"]), true, &mut |e| {
        events.push(e)
    })
    .unwrap();
    assert_ne!(new, root);
    assert_eq!(size, SnapshotSize { files: 2, bytes: 5 });
    assert_eq!(
        events,
        vec![
            RewriteEvent::Excluded {
                path: b"/src/b.log".to_vec()
            },
            RewriteEvent::Excluded {
                path: b"/src/sub/c.log".to_vec()
            },
        ]
    );
    repo.flush().unwrap();
    let mut got = Vec::new();
    names(&repo, &new, "", &mut got);
    got.sort();
    assert_eq!(got, ["/src", "/src/a.txt", "/src/sub", "/src/sub/d.txt"]);

    // Nothing matches: the same tree comes back and nothing is reported.
    let (same, size) = exclude_from_tree(
        &repo,
        &root,
        &excluder(&["*.nothing"]),
        true,
        &mut |_| panic!(),
    )
    .unwrap();
    assert_eq!(same, root);
    assert_eq!(size.files, 4);
    // Excluding a directory drops it whole; a dry run computes the id without storing.
    let before = repo.save_stats().tree_blobs;
    let (dry, _) =
        exclude_from_tree(&repo, &root, &excluder(&["/src/sub"]), false, &mut |_| {}).unwrap();
    assert_eq!(repo.save_stats().tree_blobs, before);
    assert!(repo.locate(BlobType::Tree, &dry).is_none());
    let (wet, size) =
        exclude_from_tree(&repo, &root, &excluder(&["/src/sub"]), true, &mut |_| {}).unwrap();
    assert_eq!((dry, size.files), (wet, 2));
}

#[test]
fn unstable_trees_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let repo = new_repo(d.path());
    // A tree with an unknown field does not encode back to its bytes.
    let raw = b"{\"nodes\":[{\"name\":\"x\",\"type\":\"file\",\"mode\":420,\"mtime\":\"2020-01-01T00:00:00Z\",\"atime\":\"2020-01-01T00:00:00Z\",\"ctime\":\"2020-01-01T00:00:00Z\",\"uid\":0,\"gid\":0,\"future\":1,\"content\":[]}]}\n";
    let (id, _) = repo.save_blob(BlobType::Tree, raw).unwrap();
    repo.flush().unwrap();
    let err = exclude_from_tree(&repo, &id, &excluder(&["y"]), true, &mut |_| {}).unwrap_err();
    assert!(
        err.to_string().contains("without losing information"),
        "{err}"
    );
}

#[test]
fn repair_drops_missing_content_and_unreadable_trees() {
    let d = tempfile::tempdir().unwrap();
    let repo = new_repo(d.path());
    let ok_blob = repo.save_blob(BlobType::Data, b"12345").unwrap().0;
    let mut damaged = Node::new(b"damaged".to_vec(), NodeType::File);
    damaged.content = Some(vec![ok_blob, Id::hash(b"gone"), ok_blob]);
    damaged.size = 99;
    let mut wrong_size = Node::new(b"wrong-size".to_vec(), NodeType::File);
    wrong_size.content = Some(vec![ok_blob]);
    wrong_size.size = 3;
    let fine = file(&repo, "fine", b"fine");
    let irregular = Node::new(b"weird".to_vec(), NodeType::Irregular);
    let link = {
        let mut n = Node::new(b"link".to_vec(), NodeType::Symlink);
        n.linktarget = b"fine".to_vec();
        n
    };
    let root = save_tree(
        &repo,
        vec![
            damaged,
            wrong_size,
            fine.clone(),
            irregular,
            link.clone(),
            dir_node("lost", Id::hash(b"no such tree")),
        ],
    );
    repo.flush().unwrap();
    let mut rw = TreeRewriter::new(&repo, RepairRules::new(&repo), true, true, true);
    let mut events = Vec::new();
    let new = rw
        .rewrite(b"/", &root, &mut |e| events.push(e))
        .unwrap()
        .unwrap();
    assert_eq!(
        events,
        vec![
            RewriteEvent::RemovedMissingContent {
                path: b"/damaged".to_vec()
            },
            RewriteEvent::ReplacedWithEmptyDir {
                path: b"/lost".to_vec()
            },
            RewriteEvent::RemovedInvalidNode {
                path: b"/weird".to_vec(),
                node_type: "irregular".into()
            },
            RewriteEvent::FixedSize {
                path: b"/wrong-size".to_vec()
            },
        ]
    );
    repo.flush().unwrap();
    let tree = repo.load_tree(&new).unwrap();
    let by = |n: &str| tree.find(n.as_bytes()).unwrap().clone();
    assert_eq!(by("damaged").content, Some(vec![ok_blob, ok_blob]));
    assert_eq!(by("damaged").size, 10);
    assert_eq!(by("wrong-size").size, 5);
    assert_eq!(by("fine"), fine);
    assert_eq!(by("link"), link);
    assert!(tree.find(b"weird").is_none());
    let lost = by("lost").subtree.unwrap();
    assert_eq!(repo.load_tree(&lost).unwrap(), Tree::new());

    // An intact tree is left as it is; a repaired tree is repaired again from the cache.
    let intact = save_tree(&repo, vec![file(&repo, "x", b"x")]);
    repo.flush().unwrap();
    assert_eq!(
        rw.rewrite(b"/", &intact, &mut |_| panic!()).unwrap(),
        Some(intact)
    );
    assert_eq!(
        rw.rewrite(b"/", &root, &mut |_| panic!()).unwrap(),
        Some(new)
    );
    // An unreadable root removes the snapshot.
    let mut ev = Vec::new();
    assert_eq!(
        rw.rewrite(b"/", &Id::hash(b"nothing"), &mut |e| ev.push(e))
            .unwrap(),
        None
    );
    assert_eq!(ev, vec![RewriteEvent::RootUnreadable]);
}

#[test]
fn replace_snapshot_order_tags_and_metadata() {
    let d = tempfile::tempdir().unwrap();
    let repo = new_repo(d.path());
    let root = sample(&repo);
    let mut snap = Snapshot::new(
        GoTime::from_unix(1_600_000_000, 0),
        root,
        vec!["/src".into()],
    );
    snap.hostname = "old".into();
    snap.tags = vec!["x".into()];
    snap.summary = Some(SnapshotSummary {
        total_files_processed: 4,
        total_bytes_processed: 10,
        data_blobs: 3,
        ..Default::default()
    });
    let id = repo.save_snapshot(&snap).unwrap();
    let (new_tree, size) =
        exclude_from_tree(&repo, &root, &excluder(&["*.log"]), true, &mut |_| {}).unwrap();
    let mut opts = ReplaceOptions {
        add_tag: "rewrite".into(),
        size: Some(size),
        ..Default::default()
    };
    // Unchanged tree and no new metadata: nothing to do.
    assert_eq!(
        replace_snapshot(&repo, &id, &snap, Some(root), &opts).unwrap(),
        Replaced::Unchanged
    );
    // Dry run: nothing written.
    opts.dry_run = true;
    let r = replace_snapshot(&repo, &id, &snap, Some(new_tree), &opts).unwrap();
    assert_eq!(
        r,
        Replaced::Saved {
            new_id: None,
            removed_old: false
        }
    );
    assert_eq!(repo.list_ids(FileType::Snapshot).unwrap(), vec![id]);
    opts.dry_run = false;
    let Replaced::Saved {
        new_id: Some(n1),
        removed_old: false,
    } = replace_snapshot(&repo, &id, &snap, Some(new_tree), &opts).unwrap()
    else {
        panic!()
    };
    let s1 = repo.load_snapshot(&n1).unwrap();
    assert_eq!(s1.tags, ["x", "rewrite"]);
    assert_eq!((s1.original, s1.tree), (Some(id), new_tree));
    let sum = s1.summary.clone().unwrap();
    assert_eq!(
        (
            sum.total_files_processed,
            sum.total_bytes_processed,
            sum.data_blobs
        ),
        (2, 5, 3)
    );
    assert_eq!(repo.list_ids(FileType::Snapshot).unwrap().len(), 2);
    // Metadata only, with forget: new host and time, no tag, old one removed.
    let opts = ReplaceOptions {
        forget: true,
        add_tag: "rewrite".into(),
        new_host: Some("new".into()),
        new_time: Some(GoTime::from_unix(1_700_000_000, 0)),
        ..Default::default()
    };
    let Replaced::Saved {
        new_id: Some(n2),
        removed_old: true,
    } = replace_snapshot(&repo, &n1, &s1, Some(s1.tree), &opts).unwrap()
    else {
        panic!()
    };
    let s2 = repo.load_snapshot(&n2).unwrap();
    assert_eq!(
        (s2.hostname.as_str(), s2.time),
        ("new", GoTime::from_unix(1_700_000_000, 0))
    );
    assert_eq!(
        s2.original,
        Some(n1),
        "original is the id of the snapshot replaced"
    );
    assert_eq!(s2.tags, s1.tags);
    let mut left = repo.list_ids(FileType::Snapshot).unwrap();
    left.sort();
    let mut expect = vec![id, n2];
    expect.sort();
    assert_eq!(left, expect);
    // An emptied snapshot is removed.
    assert_eq!(
        replace_snapshot(&repo, &n2, &s2, None, &ReplaceOptions::default()).unwrap(),
        Replaced::EmptyRemoved
    );
    assert_eq!(repo.list_ids(FileType::Snapshot).unwrap(), vec![id]);
}
