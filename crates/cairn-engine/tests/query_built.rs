//! ls / find / diff / snapshot selection on a small repository built by the test.

mod query_common;

use cairn_engine::EngineError;
use cairn_engine::diff::{self, Change, DiffOptions};
use cairn_engine::find::{self, FindOptions, ObjectKind};
use cairn_engine::ls::{self, JsonStyle, LsOptions};
use cairn_engine::select;
use cairn_repo::snapshot::SnapshotFilter;
use cairn_repo::tree::Tree;
use cairn_repo::{BlobType, Id};
use query_common::*;

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
        [
            "/docs",
            "/docs/a.txt",
            "/docs/b.md",
            "/docs/sub",
            "/docs/sub/c.txt"
        ]
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
    let mut lines = vec![
        serde_json::to_value(ls::LsSnapshotJson::new(f.snap1, &snap, JsonStyle::Modern)).unwrap(),
    ];
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
    assert_eq!(
        select::resolve_subtree(&f.b.repo, snap.tree, "").unwrap(),
        snap.tree
    );
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
    let specs = vec![
        "latest".to_string(),
        f.snap1.short(),
        "latest".into(),
        f.snap1.to_hex(),
    ];
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
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
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
    assert_eq!(
        (stats.added.files, stats.added.dirs, stats.added.others),
        (1, 1, 0)
    );
    assert_eq!(
        (
            stats.removed.files,
            stats.removed.dirs,
            stats.removed.others
        ),
        (1, 0, 0)
    );
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
    let added_bytes = size(true, root2) + size(true, docs2) + size(true, new) + 6 + 14 + 4;
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
    let s = diff::diff(
        &f.b.repo,
        root1,
        root1,
        DiffOptions { metadata: true },
        &mut |_| {
            n += 1;
            Ok(())
        },
    )
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
        .map(|r| {
            (
                r.snapshot_id,
                r.matches.into_iter().map(|m| m.path).collect(),
            )
        })
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
            (
                f.snap3,
                strs(&[
                    &format!("/odd/{}.txt", "L".repeat(120)),
                    "/odd/caf\u{fffd}.txt"
                ])
            ),
            (
                f.snap2,
                strs(&[
                    "/docs/a.txt",
                    "/docs/sub/c.txt",
                    "/new/n.txt",
                    "/same/s.txt"
                ])
            ),
            (
                f.snap1,
                strs(&["/docs/a.txt", "/docs/sub/c.txt", "/same/s.txt"])
            ),
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
        vec![
            (f.snap1, strs(&["/docs/a.txt"])),
            (f.snap2, strs(&["/docs/a.txt"]))
        ]
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
    assert_eq!(
        find_paths(&f, &opts),
        vec![(f.snap2, strs(&["/docs/sub/c.txt"]))]
    );
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
        res.iter()
            .map(|r| r.to_json(JsonStyle::Restic014))
            .collect::<Vec<_>>(),
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
    let got: Vec<(Id, String)> = found
        .iter()
        .map(|o| (o.snapshot_id, o.path.clone()))
        .collect();
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
    let e =
        find::find_objects(&f.b.repo, &all, &opts, ObjectKind::Pack, &mut |_| Ok(())).unwrap_err();
    assert!(e.to_string().contains("unable to find pack"), "{e}");
}
