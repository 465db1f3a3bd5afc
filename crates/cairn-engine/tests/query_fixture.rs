//! Golden tests against the restic 0.14 fixture repositories: `ls --json` must equal
//! restic's output field for field; diff, find, dump and snapshot selection on real data.

use cairn_engine::diff::{self, DiffOptions};
use cairn_engine::dump::{self, ArchiveFormat};
use cairn_engine::find::{self, FindOptions};
use cairn_engine::ls::{self, JsonStyle, LsOptions};
use cairn_engine::select;
use cairn_repo::repository::Repository;
use cairn_repo::snapshot::{Snapshot, SnapshotFilter};
use cairn_repo::{BlobType, Id};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
}

struct Opened {
    _dir: tempfile::TempDir,
    repo: Repository,
    snaps: Vec<(Id, Snapshot)>,
}

fn open(name: &str) -> Opened {
    let dir = tempfile::tempdir().unwrap();
    let tgz = std::fs::File::open(fixtures().join(format!("restic-0.14.0-{name}.tar.gz"))).unwrap();
    tar::Archive::new(flate2::read::GzDecoder::new(tgz))
        .unpack(dir.path())
        .unwrap();
    let repo = Repository::open(
        Arc::new(cairn_backend::LocalBackend::new(dir.path().join(name))),
        b"fixture-password",
        Default::default(),
    )
    .unwrap();
    repo.load_index().unwrap();
    let snaps = repo.load_snapshots().unwrap();
    Opened {
        _dir: dir,
        repo,
        snaps,
    }
}

fn expected_ls(name: &str) -> Vec<(Id, Vec<String>)> {
    let dir = fixtures().join("expected").join(name).join("restic-output");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let file = p.file_name().unwrap().to_str().unwrap().to_string();
        if let Some(id) = file
            .strip_prefix("ls-")
            .and_then(|f| f.strip_suffix(".jsonl"))
        {
            let text = std::fs::read_to_string(&p).unwrap();
            out.push((
                id.parse().unwrap(),
                text.lines().map(str::to_string).collect(),
            ));
        }
    }
    out.sort();
    assert_eq!(out.len(), 2, "two ls outputs per fixture repository");
    out
}

/// Our `ls --json` lines for a snapshot (as JSON values).
fn our_ls(o: &Opened, id: Id) -> Vec<(serde_json::Value, Vec<u8>)> {
    let (id, snap, sub) =
        select::find_snapshot(&o.repo, &o.snaps, &id.to_hex(), &SnapshotFilter::default()).unwrap();
    assert!(sub.is_none());
    let head = ls::LsSnapshotJson::new(id, &snap, JsonStyle::Restic014);
    let mut lines = vec![(serde_json::to_value(&head).unwrap(), head.to_go_json())];
    ls::ls_raw(
        &o.repo,
        snap.tree,
        &LsOptions::default(),
        &mut |path, node| {
            let n = ls::LsNodeJson::new_raw(path, node, JsonStyle::Restic014);
            lines.push((serde_json::to_value(&n).unwrap(), n.to_go_json()));
            Ok(())
        },
    )
    .unwrap();
    lines
}

fn check_ls_golden(name: &str) {
    let o = open(name);
    for (id, expected) in expected_ls(name) {
        let ours = our_ls(&o, id);
        assert_eq!(ours.len(), expected.len(), "{name} {id}: line count");
        for (i, (line, (value, bytes))) in expected.iter().zip(&ours).enumerate() {
            let want: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(value, &want, "{name} {id} line {i}");
            // Go-escaped output is byte-identical to restic's.
            assert_eq!(
                String::from_utf8_lossy(bytes),
                line.as_str(),
                "{name} {id} line {i} bytes"
            );
            let reparsed: serde_json::Value = serde_json::from_slice(bytes).unwrap();
            assert_eq!(reparsed, want, "{name} {id} line {i} reparsed");
        }
    }
}

#[test]
fn ls_json_matches_restic_v2() {
    check_ls_golden("repo-v2");
}

#[test]
fn ls_json_matches_restic_v1() {
    check_ls_golden("repo-v1");
}

const SRC: &str = "/tmp/restic-fixture-src";

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

#[test]
fn select_diff_find_dump_v2() {
    let o = open("repo-v2");
    let none = SnapshotFilter::default();
    let s1: Id = "74bee6adb91355004e1ca59d1b742f95caeade2f48b2a74bf91967b431c0e364"
        .parse()
        .unwrap();
    let s2: Id = "606351138bc082c07f998bf4d06d2fd9dcb61a858dde770f4ac7d7cff8406e35"
        .parse()
        .unwrap();

    // latest, with tag filters.
    let (id, _, _) = select::find_snapshot(&o.repo, &o.snaps, "latest", &none).unwrap();
    assert_eq!(id, s2);
    let tagged = SnapshotFilter {
        tags: vec![vec!["fixture".into()]],
        hosts: vec!["fixture-host".into()],
        paths: vec![SRC.into()],
    };
    let (id, _, _) = select::find_snapshot(&o.repo, &o.snaps, "latest", &tagged).unwrap();
    assert_eq!(id, s2);
    let not_modified = SnapshotFilter {
        tags: vec![vec!["fixture".into(), "nope".into()]],
        ..Default::default()
    };
    assert!(select::find_snapshot(&o.repo, &o.snaps, "latest", &not_modified).is_err());

    // diff: only small/hello.txt changed.
    let t1 = o.repo.load_snapshot(&s1).unwrap().tree;
    let t2 = o.repo.load_snapshot(&s2).unwrap().tree;
    let mut changes = Vec::new();
    let stats = diff::diff(&o.repo, t1, t2, DiffOptions::default(), &mut |c| {
        changes.push(format!("{:<5}{}", c.modifier, c.path));
        Ok(())
    })
    .unwrap();
    assert_eq!(changes, [format!("M    {SRC}/small/hello.txt")]);
    assert_eq!(stats.changed_files, 1);
    assert_eq!((stats.added.data_blobs, stats.added.tree_blobs), (1, 4));
    assert_eq!((stats.removed.data_blobs, stats.removed.tree_blobs), (1, 4));
    // Bytes: the differing trees (root, tmp, src, small) plus the two hello.txt versions.
    let trees = |root: Id| {
        let mut set = BTreeSet::from([root]);
        select::walk_tree(&o.repo, root, "/", &mut |_, n| {
            if let Some(s) = n.subtree {
                set.insert(s);
            }
            Ok(select::WalkAction::Continue)
        })
        .unwrap();
        set
    };
    let (a, b) = (trees(t1), trees(t2));
    let size = |ids: Vec<&Id>| -> u64 {
        ids.into_iter()
            .map(|i| o.repo.load_blob(BlobType::Tree, i).unwrap().len() as u64)
            .sum()
    };
    assert_eq!(stats.added.bytes, size(b.difference(&a).collect()) + 38);
    assert_eq!(stats.removed.bytes, size(a.difference(&b).collect()) + 13);

    // With --metadata the changed directories show up as U too.
    let mut changes = Vec::new();
    diff::diff(&o.repo, t1, t2, DiffOptions { metadata: true }, &mut |c| {
        changes.push((c.modifier.clone(), c.path.clone()));
        Ok(())
    })
    .unwrap();
    assert!(changes.contains(&("M".into(), format!("{SRC}/small/hello.txt"))));
    assert!(
        changes.iter().all(|(m, _)| m == "U" || m == "M"),
        "{changes:?}"
    );

    // find *.txt: 16 text files per snapshot, newest snapshot first.
    let res = find::find_collect(
        &o.repo,
        &o.snaps,
        &FindOptions {
            patterns: vec!["*.txt".into()],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(res.len(), 2);
    assert_eq!(res[0].snapshot_id, s2);
    assert_eq!(res[1].snapshot_id, s1);
    assert_eq!(res[0].matches.len(), 16);
    assert!(
        res[0]
            .matches
            .iter()
            .any(|m| m.path == format!("{SRC}/names/latin1-caf\u{fffd}.txt"))
    );
    let hello = res[0]
        .matches
        .iter()
        .find(|m| m.path.ends_with("/small/hello.txt"))
        .unwrap();
    assert_eq!(hello.node.size, 38);

    // dump a file by full path and through ID:subfolder.
    let mut out = Vec::new();
    dump::dump(
        &o.repo,
        t1,
        &format!("{SRC}/random-3m.bin"),
        ArchiveFormat::Tar,
        &mut out,
    )
    .unwrap();
    assert_eq!(
        sha(&out),
        "d6c8accc326aad368426b87c415c44ba04d702c5a5f9ecd693c8f07786f9a21a"
    );
    let spec = format!("{}:tmp/restic-fixture-src", s2.short());
    let (_, snap, sub) = select::find_snapshot(&o.repo, &o.snaps, &spec, &none).unwrap();
    let sub_tree = select::resolve_subtree(&o.repo, snap.tree, &sub.unwrap()).unwrap();
    let mut out = Vec::new();
    dump::dump(
        &o.repo,
        sub_tree,
        "small/hello.txt",
        ArchiveFormat::Tar,
        &mut out,
    )
    .unwrap();
    assert_eq!(
        sha(&out),
        "b25f7a6bf015a24883b974bcae9522a547707425e7ee5fa7ed6c0938b660836b"
    );

    // The whole snapshot as tar: every file, dir and symlink below /tmp, contents intact.
    let mut expected = Vec::new();
    ls::ls(&o.repo, t1, &LsOptions::default(), &mut |p, n| {
        use cairn_repo::node::NodeType;
        if matches!(
            n.node_type,
            NodeType::File | NodeType::Dir | NodeType::Symlink
        ) {
            let mut name = p.trim_start_matches('/').to_string();
            if n.node_type == NodeType::Dir {
                name.push('/');
            }
            expected.push(name);
        }
        Ok(())
    })
    .unwrap();
    let mut out = Vec::new();
    dump::dump(&o.repo, t1, "/", ArchiveFormat::Tar, &mut out).unwrap();
    let mut ar = tar::Archive::new(out.as_slice());
    let mut names = Vec::new();
    let mut checked = 0;
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        let pax: Vec<(String, Vec<u8>)> = match e.pax_extensions().unwrap() {
            Some(it) => it
                .map(|x| {
                    let x = x.unwrap();
                    (x.key().unwrap().to_string(), x.value_bytes().to_vec())
                })
                .collect(),
            None => Vec::new(),
        };
        let h = e.header();
        if name.ends_with("/hardlink-a.txt") {
            checked += 1;
            assert_eq!(
                sha(&data),
                "a11811c6915856f3c46fd990c6669a5582d941df2739691915fa292b5f9c3395"
            );
        }
        if name.ends_with("/setuid-exec") {
            checked += 1;
            assert_eq!(h.mode().unwrap(), 0o4755);
        }
        if name.ends_with("/sticky-dir/") {
            checked += 1;
            assert_eq!(h.mode().unwrap(), 0o1777);
        }
        if name.ends_with("/foreign-owner.txt") {
            checked += 1;
            assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (12345, 54321));
            assert_eq!(h.username().unwrap(), Some(""));
        }
        if name.ends_with("/dangling-link") {
            checked += 1;
            assert_eq!(
                e.link_name_bytes().unwrap().as_ref(),
                b"/nonexistent/target"
            );
        }
        if name.ends_with("/with-xattr.txt") {
            checked += 1;
            assert_eq!(
                pax,
                [(
                    "SCHILY.xattr.user.fixture".to_string(),
                    b"xattr-value-\x00\xff".to_vec()
                )]
            );
        }
        if name.ends_with("/small/hello.txt") {
            checked += 1;
            assert_eq!(data, b"hello restic\n");
            // mtime 06:06:07.5 rounds up.
            assert_eq!(h.mtime().unwrap(), 1614834368);
        }
        names.push(name);
    }
    assert_eq!(checked, 7);
    assert_eq!(names, expected);
}
