//! ls / find / diff / dump / snapshot selection on a small repository built by the test.

use cairn_engine::EngineError;
use cairn_engine::diff::{self, Change, DiffOptions};
use cairn_engine::dump::{self, ArchiveFormat, DumpTarget};
use cairn_engine::find::{self, FindOptions, ObjectKind};
use cairn_engine::ls::{self, JsonStyle, LsOptions};
use cairn_engine::select;
use cairn_repo::gotime::GoTime;
use cairn_repo::node::{ExtendedAttribute, MODE_DIR, MODE_NAMED_PIPE, MODE_SYMLINK, Node, NodeType};
use cairn_repo::repository::{InitOptions, Repository};
use cairn_repo::snapshot::{Snapshot, SnapshotFilter};
use cairn_repo::tree::Tree;
use cairn_repo::{BlobType, Id};
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

fn t(secs: i64, nanos: u32) -> GoTime {
    GoTime::from_unix_with_offset(secs, nanos, 3600)
}

const T0: i64 = 1_614_834_367;

struct Built {
    _dir: tempfile::TempDir,
    repo: Repository,
    /// Plaintext size of every blob written (for diff byte counts).
    sizes: BTreeMap<(bool, Id), u64>,
}

impl Built {
    fn new() -> Built {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(
            Arc::new(cairn_backend::LocalBackend::new(dir.path().join("repo"))),
            b"pw",
            InitOptions {
                kdf: cairn_repo::key::KdfParams::testing(),
                ..Default::default()
            },
        )
        .unwrap();
        Built {
            _dir: dir,
            repo,
            sizes: BTreeMap::new(),
        }
    }

    fn data(&mut self, bytes: &[u8]) -> Id {
        let (id, _) = self.repo.save_blob(BlobType::Data, bytes).unwrap();
        self.sizes.insert((false, id), bytes.len() as u64);
        id
    }

    fn file(&mut self, name: &[u8], chunks: &[&[u8]], mtime: GoTime) -> Node {
        let mut n = Node::new(name.to_vec(), NodeType::File);
        n.mode = 0o644;
        n.mtime = mtime;
        n.atime = mtime;
        n.ctime = mtime;
        n.uid = 1000;
        n.gid = 100;
        n.user = "alice".into();
        n.group = "users".into();
        n.links = 1;
        n.size = chunks.iter().map(|c| c.len() as u64).sum();
        n.content = Some(chunks.iter().map(|c| self.data(c)).collect());
        n
    }

    fn tree(&mut self, nodes: Vec<Node>) -> Id {
        let mut tree = Tree::new();
        for n in nodes {
            tree.insert(n).unwrap();
        }
        let bytes = tree.encode().unwrap();
        let (id, _) = self.repo.save_blob(BlobType::Tree, &bytes).unwrap();
        self.sizes.insert((true, id), bytes.len() as u64);
        id
    }

    fn snapshot(&self, tree: Id, secs: i64, host: &str) -> Id {
        self.repo.flush().unwrap();
        let mut s = Snapshot::new(t(secs, 0), tree, vec!["/src".into()]);
        s.hostname = host.into();
        self.repo.save_snapshot(&s).unwrap()
    }
}

fn dir(name: &str, subtree: Id) -> Node {
    let mut n = Node::new(name, NodeType::Dir);
    n.mode = MODE_DIR | 0o755;
    n.mtime = t(T0, 0);
    n.atime = n.mtime;
    n.ctime = n.mtime;
    n.subtree = Some(subtree);
    n
}

fn symlink(name: &str, target: &str) -> Node {
    let mut n = Node::new(name, NodeType::Symlink);
    n.mode = MODE_SYMLINK | 0o777;
    n.mtime = t(T0, 0);
    n.linktarget = target.as_bytes().to_vec();
    n
}

fn fifo(name: &str) -> Node {
    let mut n = Node::new(name, NodeType::Fifo);
    n.mode = MODE_NAMED_PIPE | 0o644;
    n.mtime = t(T0, 0);
    n
}

struct Fixture {
    b: Built,
    snap1: Id,
    snap2: Id,
    snap3: Id,
    sub_tree: Id,
    docs1: Id,
    a1_blob: Id,
    big: Vec<u8>,
}

/// Snapshot 1:
/// ```text
/// /big.bin (3 blobs)  /docs/{a.txt, b.md, sub/c.txt}  /fifo  /link -> docs/a.txt  /same/s.txt
/// ```
/// Snapshot 2: big.bin newer mtime; docs/a.txt new content (same metadata); docs/b.md
/// removed; link is a regular file; new/n.txt added; sub and same unchanged.
/// Snapshot 3 (host "other"): odd names for the archive writers.
fn build() -> Fixture {
    let mut b = Built::new();
    let chunks: [&[u8]; 3] = [&[b'A'; 3000], &[b'B'; 2000], &[b'C'; 1000]];
    let big: Vec<u8> = chunks.concat();
    let big1 = b.file(b"big.bin", &chunks, t(T0, 0));
    let a1 = b.file(b"a.txt", &[b"hello\n"], t(T0, 250_000_000));
    let a1_blob = a1.content.as_ref().unwrap()[0];
    let bmd = b.file(b"b.md", &[b"# b\n"], t(T0, 0));
    let c = b.file(b"c.txt", &[b"c\n"], t(T0 - 86_400 * 400, 0));
    let sub_tree = b.tree(vec![c]);
    let docs1 = b.tree(vec![a1.clone(), bmd, dir("sub", sub_tree)]);
    let s = b.file(b"s.txt", &[b"same\n"], t(T0, 0));
    let same = b.tree(vec![s]);
    let root1 = b.tree(vec![
        big1.clone(),
        dir("docs", docs1),
        fifo("fifo"),
        symlink("link", "docs/a.txt"),
        dir("same", same),
    ]);
    let snap1 = b.snapshot(root1, T0 + 100, "host");

    let mut big2 = big1.clone();
    big2.mtime = t(T0 + 5, 0);
    let mut a2 = b.file(b"a.txt", &[b"HELLO\n"], t(T0, 250_000_000));
    a2.size = a1.size;
    let docs2 = b.tree(vec![a2, dir("sub", sub_tree)]);
    let link_file = b.file(b"link", &[b"plain file now"], t(T0, 0));
    let n = b.file(b"n.txt", &[b"new\n"], t(T0 + 50, 0));
    let new_tree = b.tree(vec![n]);
    let root2 = b.tree(vec![
        big2,
        dir("docs", docs2),
        fifo("fifo"),
        link_file,
        dir("new", new_tree),
        dir("same", same),
    ]);
    let snap2 = b.snapshot(root2, T0 + 200, "host");

    let long_name = format!("{}.txt", "L".repeat(120));
    let mut odd = b.file(long_name.as_bytes(), &[b"long\n"], t(-1000, 0));
    odd.user = "u".repeat(40);
    let mut raw = b.file(b"caf\xe9.txt", &[b"latin1\n"], t(T0, 0));
    raw.extended_attributes = vec![ExtendedAttribute {
        name: "user.k".into(),
        value: b"v\x00\xff".to_vec(),
    }];
    raw.uid = 3_000_000;
    let mut suid = b.file(b"suid", &[b"#!/bin/sh\n"], t(T0, 0));
    suid.mode = cairn_repo::node::MODE_SETUID | 0o755;
    let odd_dir = b.tree(vec![odd, raw, suid, symlink("ln", &"t".repeat(150))]);
    let root3 = b.tree(vec![dir("odd", odd_dir)]);
    let snap3 = b.snapshot(root3, T0 + 300, "other");
    Fixture {
        b,
        snap1,
        snap2,
        snap3,
        sub_tree,
        docs1,
        a1_blob,
        big,
    }
}

fn snaps(f: &Fixture) -> Vec<(Id, Snapshot)> {
    f.b.repo.load_snapshots().unwrap()
}

fn tree_of(f: &Fixture, id: Id) -> Id {
    f.b.repo.load_snapshot(&id).unwrap().tree
}

fn ls_paths(f: &Fixture, snap: Id, dirs: &[&str], recursive: bool) -> Vec<String> {
    let opts = LsOptions {
        dirs: dirs.iter().map(|d| d.to_string()).collect(),
        recursive,
    };
    let mut out = Vec::new();
    ls::ls(&f.b.repo, tree_of(f, snap), &opts, &mut |p, _| {
        out.push(p.to_string());
        Ok(())
    })
    .unwrap();
    out
}

#[test]
fn ls_dirs_and_recursion() {
    let f = build();
    assert_eq!(
        ls_paths(&f, f.snap1, &[], false),
        [
            "/big.bin",
            "/docs",
            "/docs/a.txt",
            "/docs/b.md",
            "/docs/sub",
            "/docs/sub/c.txt",
            "/fifo",
            "/link",
            "/same",
            "/same/s.txt"
        ]
    );
    assert_eq!(
        ls_paths(&f, f.snap1, &["/docs"], false),
        ["/docs", "/docs/a.txt", "/docs/b.md", "/docs/sub"]
    );
    assert_eq!(
        ls_paths(&f, f.snap1, &["/docs/"], true),
        ["/docs", "/docs/a.txt", "/docs/b.md", "/docs/sub", "/docs/sub/c.txt"]
    );
    assert_eq!(
        ls_paths(&f, f.snap1, &["/docs/sub", "/same"], false),
        ["/docs/sub", "/docs/sub/c.txt", "/same", "/same/s.txt"]
    );
    assert!(ls_paths(&f, f.snap1, &["/nope"], true).is_empty());
    let err = ls::ls(
        &f.b.repo,
        tree_of(&f, f.snap1),
        &LsOptions {
            dirs: vec!["docs".into()],
            recursive: false,
        },
        &mut |_, _| Ok(()),
    )
    .unwrap_err();
    assert!(matches!(err, EngineError::Invalid(_)), "{err}");
    // JSON of a fifo: no size, Go mode string.
    let snap = f.b.repo.load_snapshot(&f.snap1).unwrap();
    let mut lines = vec![serde_json::to_value(ls::LsSnapshotJson::new(f.snap1, &snap, JsonStyle::Modern)).unwrap()];
    ls::ls(&f.b.repo, snap.tree, &LsOptions::default(), &mut |p, n| {
        lines.push(serde_json::to_value(ls::LsNodeJson::new(p, n, JsonStyle::Restic014)).unwrap());
        Ok(())
    })
    .unwrap();
    assert_eq!(lines[0]["message_type"], "snapshot");
    assert_eq!(lines[0]["short_id"], f.snap1.short());
    assert_eq!(lines[0]["hostname"], "host");
    let fifo = lines.iter().find(|l| l["path"] == "/fifo").unwrap();
    assert_eq!(fifo["permissions"], "prw-r--r--");
    assert!(fifo.get("size").is_none());
    let big = lines.iter().find(|l| l["path"] == "/big.bin").unwrap();
    assert_eq!(big["size"], 6000);
}

#[test]
fn snapshot_selection() {
    let f = build();
    let all = snaps(&f);
    let none = SnapshotFilter::default();
    let (id, _, sub) = select::find_snapshot(&f.b.repo, &all, "latest", &none).unwrap();
    assert_eq!((id, sub), (f.snap3, None));
    let host = SnapshotFilter {
        hosts: vec!["host".into()],
        ..Default::default()
    };
    let (id, _, _) = select::find_snapshot(&f.b.repo, &all, "latest", &host).unwrap();
    assert_eq!(id, f.snap2);
    let nohost = SnapshotFilter {
        hosts: vec!["nobody".into()],
        ..Default::default()
    };
    let err = select::find_snapshot(&f.b.repo, &all, "latest", &nohost).unwrap_err();
    assert!(matches!(err, EngineError::NoSnapshot(_)), "{err}");
    // Prefix (the filter is ignored for explicit ids) and ID:subfolder.
    let spec = format!("{}:docs/sub", &f.snap1.to_hex()[..10]);
    let (id, snap, sub) = select::find_snapshot(&f.b.repo, &all, &spec, &nohost).unwrap();
    assert_eq!(id, f.snap1);
    assert_eq!(sub.as_deref(), Some("docs/sub"));
    assert_eq!(
        select::resolve_subtree(&f.b.repo, snap.tree, "docs/sub").unwrap(),
        f.sub_tree
    );
    assert_eq!(
        select::resolve_subtree(&f.b.repo, snap.tree, "/docs/./sub/").unwrap(),
        f.sub_tree
    );
    assert_eq!(select::resolve_subtree(&f.b.repo, snap.tree, "").unwrap(), snap.tree);
    let e = select::resolve_subtree(&f.b.repo, snap.tree, "docs/a.txt").unwrap_err();
    assert!(e.to_string().contains("not a directory"), "{e}");
    let e = select::resolve_subtree(&f.b.repo, snap.tree, "docs/nope").unwrap_err();
    assert!(e.to_string().contains("docs/nope: not found"), "{e}");
    // Full id given uppercase; not-found prefix.
    let (id, _, _) =
        select::find_snapshot(&f.b.repo, &all, &f.snap2.to_hex().to_uppercase(), &none).unwrap();
    assert_eq!(id, f.snap2);
    let missing = (0..16u8)
        .map(|d| format!("{d:x}{d:x}{d:x}{d:x}{d:x}{d:x}"))
        .find(|p| !all.iter().any(|(i, _)| i.has_prefix(p)))
        .unwrap();
    let e = select::find_snapshot(&f.b.repo, &all, &missing, &none).unwrap_err();
    assert!(matches!(e, EngineError::NoSnapshot(_)), "{e}");
    // FindAll: latest once, duplicates dropped, subfolder syntax refused.
    let specs = vec!["latest".to_string(), f.snap1.short(), "latest".into(), f.snap1.to_hex()];
    let sel = select::select_snapshots(&f.b.repo, &all, &specs, &host).unwrap();
    let ids: Vec<Id> = sel.iter().map(|(i, _)| *i).collect();
    assert_eq!(ids, [f.snap2, f.snap1]);
    assert!(select::select_snapshots(&f.b.repo, &all, &["latest:x".into()], &none).is_err());
    let sel = select::select_snapshots(&f.b.repo, &all, &[], &host).unwrap();
    assert_eq!(sel.len(), 2);
}

#[test]
fn ambiguous_prefix() {
    let b = Built::new();
    let tree = Tree::new().encode().unwrap();
    let (tid, _) = b.repo.save_blob(BlobType::Tree, &tree).unwrap();
    for i in 0..17 {
        b.snapshot(tid, T0 + i, "h");
    }
    let all = b.repo.load_snapshots().unwrap();
    assert_eq!(all.len(), 17);
    // 17 ids, 16 hex digits: two share their first digit.
    let digit = (0..16u8)
        .map(|d| format!("{d:x}"))
        .find(|p| all.iter().filter(|(i, _)| i.has_prefix(p)).count() > 1)
        .unwrap();
    let e = select::find_snapshot(&b.repo, &all, &digit, &SnapshotFilter::default()).unwrap_err();
    assert!(e.to_string().contains("multiple"), "{e}");
}

fn changes(f: &Fixture, metadata: bool) -> (Vec<(String, String)>, diff::DiffStats) {
    let mut out = Vec::new();
    let stats = diff::diff(
        &f.b.repo,
        tree_of(f, f.snap1),
        tree_of(f, f.snap2),
        DiffOptions { metadata },
        &mut |c: &Change| {
            out.push((c.modifier.clone(), c.path.clone()));
            Ok(())
        },
    )
    .unwrap();
    (out, stats)
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn diff_changes_and_stats() {
    let f = build();
    let (got, stats) = changes(&f, false);
    assert_eq!(
        got,
        pairs(&[
            ("M?", "/docs/a.txt"),
            ("-", "/docs/b.md"),
            ("T", "/link"),
            ("+", "/new/"),
            ("+", "/new/n.txt"),
        ])
    );
    assert_eq!(stats.changed_files, 1);
    assert_eq!((stats.added.files, stats.added.dirs, stats.added.others), (1, 1, 0));
    assert_eq!((stats.removed.files, stats.removed.dirs, stats.removed.others), (1, 0, 0));
    // Removed: root1, docs1 trees; a.txt v1 and b.md blobs.
    assert_eq!((stats.removed.data_blobs, stats.removed.tree_blobs), (2, 2));
    // Added: root2, docs2, new trees; a.txt v2, link file, n.txt blobs.
    assert_eq!((stats.added.data_blobs, stats.added.tree_blobs), (3, 3));
    let size = |tree: bool, id: Id| f.b.sizes[&(tree, id)];
    let root1 = tree_of(&f, f.snap1);
    let removed_bytes = size(true, root1) + size(true, f.docs1) + size(false, f.a1_blob) + 4;
    assert_eq!(stats.removed.bytes, removed_bytes);
    let root2 = tree_of(&f, f.snap2);
    let docs2 = select::resolve_subtree(&f.b.repo, root2, "docs").unwrap();
    let new = select::resolve_subtree(&f.b.repo, root2, "new").unwrap();
    let added_bytes =
        size(true, root2) + size(true, docs2) + size(true, new) + 6 + 14 + 4;
    assert_eq!(stats.added.bytes, added_bytes);
    assert!(stats.warnings.is_empty(), "{:?}", stats.warnings);

    let (got, _) = changes(&f, true);
    assert_eq!(
        got,
        pairs(&[
            ("U", "/big.bin"),
            ("U", "/docs/"),
            ("M?", "/docs/a.txt"),
            ("-", "/docs/b.md"),
            ("TU", "/link"),
            ("+", "/new/"),
            ("+", "/new/n.txt"),
        ])
    );
    // Identical trees: nothing.
    let mut n = 0;
    let s = diff::diff(&f.b.repo, root1, root1, DiffOptions { metadata: true }, &mut |_| {
        n += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(n, 0);
    assert_eq!(s.added, diff::DiffStat::default());
    // An error from the callback ends the diff.
    let e = diff::diff(&f.b.repo, root1, root2, DiffOptions::default(), &mut |_| {
        Err(EngineError::Interrupted)
    })
    .unwrap_err();
    assert!(matches!(e, EngineError::Interrupted));
    let json = serde_json::to_value(diff::DiffStatsJson::new("a", "b", &stats)).unwrap();
    assert_eq!(json["added"]["tree_blobs"], 3);
    assert_eq!(json["source_snapshot"], "a");
}

fn find_paths(f: &Fixture, opts: &FindOptions) -> Vec<(Id, Vec<String>)> {
    find::find_collect(&f.b.repo, &snaps(f), opts)
        .unwrap()
        .into_iter()
        .map(|r| (r.snapshot_id, r.matches.into_iter().map(|m| m.path).collect()))
        .collect()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn find_patterns() {
    let f = build();
    let opts = FindOptions {
        patterns: vec!["*.txt".into()],
        ..Default::default()
    };
    let got = find_paths(&f, &opts);
    assert_eq!(
        got,
        vec![
            (f.snap3, strs(&[&format!("/odd/{}.txt", "L".repeat(120)), "/odd/caf\u{fffd}.txt"])),
            (f.snap2, strs(&["/docs/a.txt", "/docs/sub/c.txt", "/new/n.txt", "/same/s.txt"])),
            (f.snap1, strs(&["/docs/a.txt", "/docs/sub/c.txt", "/same/s.txt"])),
        ]
    );
    // Case-insensitive, reversed, host filter.
    let opts = FindOptions {
        patterns: vec!["A.TXT".into()],
        ignore_case: true,
        reverse: true,
        filter: SnapshotFilter {
            hosts: vec!["host".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(
        find_paths(&f, &opts),
        vec![(f.snap1, strs(&["/docs/a.txt"])), (f.snap2, strs(&["/docs/a.txt"]))]
    );
    // Anchored pattern, explicit snapshot; a matching directory matches its contents too.
    let opts = FindOptions {
        patterns: vec!["/docs/sub".into(), "/nope".into()],
        snapshots: vec![f.snap1.short()],
        ..Default::default()
    };
    assert_eq!(
        find_paths(&f, &opts),
        vec![(f.snap1, strs(&["/docs/sub", "/docs/sub/c.txt"]))]
    );
    // mtime window: c.txt is 400 days older than everything else.
    let opts = FindOptions {
        patterns: vec!["*".into()],
        newest: Some(t(T0 - 86_400, 0)),
        snapshots: vec!["latest".into()],
        filter: SnapshotFilter {
            hosts: vec!["host".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(find_paths(&f, &opts), vec![(f.snap2, strs(&["/docs/sub/c.txt"]))]);
    let opts = FindOptions {
        patterns: vec!["*".into()],
        oldest: Some(t(T0 + 1, 0)),
        snapshots: vec![f.snap2.to_hex()],
        ..Default::default()
    };
    assert_eq!(
        find_paths(&f, &opts),
        vec![(f.snap2, strs(&["/big.bin", "/new/n.txt"]))]
    );
    let bad = FindOptions {
        patterns: vec!["*".into()],
        oldest: Some(t(T0 + 1, 0)),
        newest: Some(t(T0, 0)),
        ..Default::default()
    };
    assert!(find::find_collect(&f.b.repo, &snaps(&f), &bad).is_err());
    // JSON shape.
    let opts = FindOptions {
        patterns: vec!["s.txt".into()],
        snapshots: vec![f.snap1.to_hex()],
        ..Default::default()
    };
    let res = find::find_collect(&f.b.repo, &snaps(&f), &opts).unwrap();
    let json = serde_json::to_value(
        res.iter().map(|r| r.to_json(JsonStyle::Restic014)).collect::<Vec<_>>(),
    )
    .unwrap();
    let expected = serde_json::json!([{
        "matches": [{
            "path": "/same/s.txt", "permissions": "-rw-r--r--", "type": "file", "mode": 420,
            "mtime": "2021-03-04T06:06:07+01:00", "atime": "2021-03-04T06:06:07+01:00",
            "ctime": "2021-03-04T06:06:07+01:00", "uid": 1000, "gid": 100,
            "user": "alice", "group": "users", "size": 5, "links": 1
        }],
        "hits": 1,
        "snapshot": f.snap1.to_hex(),
    }]);
    assert_eq!(json, expected);
}

#[test]
fn find_ids() {
    let f = build();
    let all = snaps(&f);
    let mut found = Vec::new();
    let opts = FindOptions {
        patterns: vec![f.a1_blob.short()],
        ..Default::default()
    };
    find::find_objects(&f.b.repo, &all, &opts, ObjectKind::Blob, &mut |o| {
        found.push(o.clone());
        Ok(())
    })
    .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].path, "/docs/a.txt");
    assert_eq!(found[0].parent_tree, Some(f.docs1));
    assert_eq!(found[0].snapshot_id, f.snap1);
    let v = serde_json::to_value(&found[0]).unwrap();
    assert_eq!(v["object_type"], "blob");
    assert_eq!(v["snapshot"], f.snap1.to_hex());

    found.clear();
    let opts = FindOptions {
        patterns: vec![f.sub_tree.to_hex(), tree_of(&f, f.snap1).to_hex()],
        ..Default::default()
    };
    find::find_objects(&f.b.repo, &all, &opts, ObjectKind::Tree, &mut |o| {
        found.push(o.clone());
        Ok(())
    })
    .unwrap();
    let got: Vec<(Id, String)> = found.iter().map(|o| (o.snapshot_id, o.path.clone())).collect();
    assert_eq!(
        got,
        vec![
            (f.snap2, "/docs/sub".to_string()),
            (f.snap1, "/".to_string()),
            (f.snap1, "/docs/sub".to_string()),
        ]
    );
    // Pack: every blob of the pack holding the big file's first chunk.
    let pack = f.b.repo.locate(BlobType::Data, &f.a1_blob).unwrap().pack_id;
    let opts = FindOptions {
        patterns: vec![pack.short()],
        snapshots: vec![f.snap1.to_hex()],
        ..Default::default()
    };
    let n = find::find_objects(&f.b.repo, &all, &opts, ObjectKind::Pack, &mut |o| {
        assert_eq!(o.object_type, "blob");
        Ok(())
    })
    .unwrap();
    assert!(n >= 1);
    let opts = FindOptions {
        patterns: vec!["00000000".into()],
        ..Default::default()
    };
    let e = find::find_objects(&f.b.repo, &all, &opts, ObjectKind::Pack, &mut |_| Ok(())).unwrap_err();
    assert!(e.to_string().contains("unable to find pack"), "{e}");
}

fn dump_bytes(f: &Fixture, snap: Id, path: &str, format: ArchiveFormat) -> (DumpTarget, Vec<u8>) {
    let mut out = Vec::new();
    let target = dump::dump(&f.b.repo, tree_of(f, snap), path, format, &mut out).unwrap();
    (target, out)
}

#[test]
fn dump_files_and_errors() {
    let f = build();
    let (target, out) = dump_bytes(&f, f.snap1, "/docs/a.txt", ArchiveFormat::Tar);
    assert!(!target.is_archive());
    assert_eq!(out, b"hello\n");
    let (_, out) = dump_bytes(&f, f.snap1, "big.bin", ArchiveFormat::Tar);
    assert_eq!(out, f.big);
    let tree = tree_of(&f, f.snap1);
    for (path, msg) in [
        ("/docs/nope", "not found"),
        ("/link", "should be a file, but is a \"symlink\""),
        ("/fifo", "should be a file"),
        ("/link/x", "should be a dir"),
    ] {
        let e = dump::dump(&f.b.repo, tree, path, ArchiveFormat::Tar, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains(msg), "{path}: {e}");
    }
    assert!(dump::resolve_dump_path(&f.b.repo, tree, "/").unwrap().is_archive());
}

struct TarEntry {
    name: Vec<u8>,
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    mtime: u64,
    uname: Vec<u8>,
    link: Option<Vec<u8>>,
    data: Vec<u8>,
    pax: Vec<(String, Vec<u8>)>,
}

fn read_tar(bytes: &[u8]) -> Vec<TarEntry> {
    let mut ar = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let pax: Vec<(String, Vec<u8>)> = match e.pax_extensions().unwrap() {
            Some(it) => it
                .map(|x| {
                    let x = x.unwrap();
                    (x.key().unwrap().to_string(), x.value_bytes().to_vec())
                })
                .collect(),
            None => Vec::new(),
        };
        let h = e.header().clone();
        let name = e.path_bytes().into_owned();
        let link = e.link_name_bytes().map(|l| l.into_owned());
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.push(TarEntry {
            name,
            kind: h.entry_type(),
            mode: h.mode().unwrap(),
            uid: h.uid().unwrap(),
            mtime: h.mtime().unwrap(),
            uname: h.username_bytes().unwrap_or_default().to_vec(),
            link,
            data,
            pax,
        });
    }
    out
}

#[test]
fn dump_tar_archives() {
    let f = build();
    let (target, out) = dump_bytes(&f, f.snap1, "/", ArchiveFormat::Tar);
    assert!(target.is_archive());
    assert_eq!(out.len() % 512, 0);
    let entries = read_tar(&out);
    let names: Vec<String> = entries
        .iter()
        .map(|e| String::from_utf8_lossy(&e.name).into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "big.bin",
            "docs/",
            "docs/a.txt",
            "docs/b.md",
            "docs/sub/",
            "docs/sub/c.txt",
            "fifo",
            "link",
            "same/",
            "same/s.txt"
        ]
    );
    let by = |n: &str| entries.iter().find(|e| e.name == n.as_bytes()).unwrap();
    assert_eq!(by("big.bin").data, f.big);
    assert_eq!(by("big.bin").kind, tar::EntryType::Regular);
    assert_eq!(by("big.bin").mode, 0o644);
    assert_eq!(by("big.bin").uid, 1000);
    assert_eq!(by("big.bin").uname, b"alice");
    assert_eq!(by("big.bin").mtime, T0 as u64);
    // a.txt has mtime …07.25 → rounded down; the archive carries no PAX header for it.
    assert_eq!(by("docs/a.txt").mtime, T0 as u64);
    assert!(by("docs/a.txt").pax.is_empty());
    assert_eq!(by("docs/").kind, tar::EntryType::Directory);
    assert_eq!(by("docs/").mode, 0o755);
    assert_eq!(by("fifo").kind, tar::EntryType::Regular);
    assert!(by("fifo").data.is_empty());
    assert_eq!(by("link").kind, tar::EntryType::Symlink);
    assert_eq!(by("link").link.as_deref(), Some(&b"docs/a.txt"[..]));

    // A subdirectory: names stay relative to the snapshot root; the dir itself is no entry.
    let (_, out) = dump_bytes(&f, f.snap1, "/docs", ArchiveFormat::Tar);
    let names: Vec<Vec<u8>> = read_tar(&out).into_iter().map(|e| e.name).collect();
    assert_eq!(
        names,
        [&b"docs/a.txt"[..], b"docs/b.md", b"docs/sub/", b"docs/sub/c.txt"]
    );

    // Odd names and metadata need PAX records.
    let (_, out) = dump_bytes(&f, f.snap3, "/odd", ArchiveFormat::Tar);
    let entries = read_tar(&out);
    let long = format!("odd/{}.txt", "L".repeat(120));
    let names: Vec<Vec<u8>> = entries.iter().map(|e| e.name.clone()).collect();
    assert_eq!(
        names,
        [long.as_bytes(), b"odd/caf\xe9.txt", b"odd/ln", b"odd/suid"]
    );
    let by = |n: &[u8]| entries.iter().find(|e| e.name == n).unwrap();
    let e = by(long.as_bytes());
    assert_eq!(e.data, b"long\n");
    let pax: BTreeMap<_, _> = e.pax.iter().cloned().collect();
    assert_eq!(pax["mtime"], b"-1000");
    assert_eq!(pax["uname"], "u".repeat(40).as_bytes());
    let e = by(b"odd/caf\xe9.txt");
    let pax: BTreeMap<_, _> = e.pax.iter().cloned().collect();
    assert_eq!(pax["SCHILY.xattr.user.k"], b"v\x00\xff");
    assert_eq!(pax["uid"], b"3000000");
    assert_eq!(pax["path"], b"odd/caf\xe9.txt");
    let e = by(b"odd/ln");
    assert_eq!(e.link.as_deref(), Some("t".repeat(150).as_bytes()));
    assert_eq!(by(b"odd/suid").mode, 0o4755);
}

#[test]
fn dump_zip_archives() {
    let f = build();
    let (_, out) = dump_bytes(&f, f.snap1, "/", ArchiveFormat::Zip);
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(out)).unwrap();
    let mut names = Vec::new();
    for i in 0..z.len() {
        let mut e = z.by_index(i).unwrap();
        let name = e.name().to_string();
        let mode = e.unix_mode().unwrap();
        let is_dir = e.is_dir();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        match name.as_str() {
            "big.bin" => {
                assert_eq!(data, f.big);
                assert_eq!(mode, 0o100_644);
                assert_eq!(e.compression(), zip::CompressionMethod::Deflated);
                assert!(e.compressed_size() < 6000);
            }
            "docs/a.txt" => assert_eq!(data, b"hello\n"),
            "docs/" => {
                assert!(is_dir);
                assert_eq!(mode, 0o040_755);
            }
            "link" => {
                assert_eq!(mode, 0o120_777);
                assert_eq!(data, b"docs/a.txt");
            }
            "fifo" => {
                assert_eq!(mode, 0o010_644);
                assert!(data.is_empty());
            }
            _ => {}
        }
        names.push(name);
    }
    assert_eq!(
        names,
        [
            "big.bin",
            "docs/",
            "docs/a.txt",
            "docs/b.md",
            "docs/sub/",
            "docs/sub/c.txt",
            "fifo",
            "link",
            "same/",
            "same/s.txt"
        ]
    );
    // Non-ASCII and long names survive; the setuid bit is kept.
    let (_, out) = dump_bytes(&f, f.snap3, "/odd", ArchiveFormat::Zip);
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(out)).unwrap();
    assert_eq!(z.len(), 4);
    let long = format!("odd/{}.txt", "L".repeat(120));
    let mut e = z.by_name(&long).unwrap();
    let mut data = Vec::new();
    e.read_to_end(&mut data).unwrap();
    assert_eq!(data, b"long\n");
    drop(e);
    assert_eq!(z.by_name("odd/suid").unwrap().unix_mode(), Some(0o104_755));
    assert_eq!(z.by_index(1).unwrap().name_raw(), b"odd/caf\xe9.txt");
}
