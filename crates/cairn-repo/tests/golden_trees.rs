//! Golden tests: every tree blob restic 0.14 wrote into the fixture repositories decodes and
//! re-encodes byte-identically, and decodes to the metadata documented in the fixtures README.

use cairn_repo::Id;
use cairn_repo::node::{MODE_SETGID, MODE_SETUID, MODE_STICKY, NodeType, unix_perm_from_go};
use cairn_repo::tree::Tree;
use std::path::PathBuf;

fn trees_dir(repo: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/expected")
        .join(repo)
        .join("trees")
}

/// All (file id, bytes) of a fixture repository's trees.
fn load_trees(repo: &str) -> Vec<(Id, Vec<u8>)> {
    let dir = trees_dir(repo);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fixture directory {} is missing: {e}", dir.display()));
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_str().unwrap().to_string();
        let hex = file
            .strip_suffix(".plain.json")
            .unwrap_or_else(|| panic!("unexpected file {file}"));
        let id = Id::from_name(hex).unwrap_or_else(|| panic!("bad id in file name {file}"));
        out.push((id, std::fs::read(&path).unwrap()));
    }
    out.sort_by_key(|(id, _)| *id);
    out
}

#[test]
fn every_fixture_tree_round_trips_byte_exact() {
    for repo in ["repo-v1", "repo-v2"] {
        let trees = load_trees(repo);
        assert_eq!(trees.len(), 15, "{repo}: expected 15 tree blobs");
        for (id, bytes) in &trees {
            assert_eq!(Id::hash(bytes), *id, "{repo}: file name is not the SHA-256");
            let tree = Tree::decode(bytes).unwrap_or_else(|e| panic!("{repo}/{id}: {e}"));
            tree.check_sorted().unwrap();
            let (again, again_id) = tree.encode_with_id().unwrap();
            assert_eq!(
                String::from_utf8_lossy(&again),
                String::from_utf8_lossy(bytes),
                "{repo}/{id}: re-encoding differs"
            );
            assert_eq!(again, *bytes);
            assert_eq!(again_id, *id);
            // Every subtree referenced is itself a fixture tree.
            for n in &tree.nodes {
                if let Some(sub) = n.subtree {
                    assert!(
                        trees.iter().any(|(i, _)| *i == sub),
                        "{repo}: missing {sub}"
                    );
                }
                assert_eq!(n.subtree.is_some(), n.node_type == NodeType::Dir);
                assert_eq!(n.content.is_some(), n.node_type == NodeType::File);
            }
        }
        let empty = "ac08ce34ba4f8123618661bef2425f7028ffb9ac740578a3ee88684d2523fee8";
        assert!(trees.iter().any(|(id, _)| id.to_hex() == empty), "{repo}");
    }
}

fn find_tree_with(repo: &str, name: &[u8]) -> Vec<Tree> {
    load_trees(repo)
        .iter()
        .map(|(_, b)| Tree::decode(b).unwrap())
        .filter(|t| t.find(name).is_some())
        .collect()
}

#[test]
fn names_directory_decodes_to_raw_bytes() {
    let expected: [&[u8]; 6] = [
        b"html<&>.txt",
        b"latin1-caf\xe9.txt",
        b"nbsp\xc2\xa0space.txt",
        b"quote\"and\\backslash.txt",
        b"tab\there.txt",
        b"unicode-Gr\xc3\xbc\xc3\x9fe-\xe6\x97\xa5\xe6\x9c\xac.txt",
    ];
    let sizes = [10u64, 14, 10, 11, 9, 10];
    for repo in ["repo-v1", "repo-v2"] {
        let trees = find_tree_with(repo, b"latin1-caf\xe9.txt");
        assert_eq!(
            trees.len(),
            1,
            "{repo}: the names tree is shared by both snapshots"
        );
        let names: Vec<&[u8]> = trees[0].nodes.iter().map(|n| n.name.as_slice()).collect();
        assert_eq!(names, expected, "{repo}");
        for (n, size) in trees[0].nodes.iter().zip(sizes) {
            assert_eq!(n.size, size);
            assert_eq!(n.mode, 0o644);
            assert_eq!(n.content.as_ref().map(Vec::len), Some(1));
        }
    }
}

#[test]
fn source_directory_metadata_matches_readme() {
    for (repo, offset) in [("repo-v1", "Z"), ("repo-v2", "+01:00")] {
        // Snapshot 1 and 2 versions of the source root (hello.txt differs in `small`).
        let roots = find_tree_with(repo, b"random-3m.bin");
        assert_eq!(roots.len(), 2, "{repo}");
        for root in &roots {
            let names: Vec<String> = root.nodes.iter().map(|n| n.name_lossy().into()).collect();
            assert_eq!(
                names,
                [
                    "blockdev-loop",
                    "chardev-null",
                    "dangling-link",
                    "dup",
                    "empty-dir",
                    "empty.txt",
                    "fifo",
                    "foreign-owner.txt",
                    "hardlink-a.txt",
                    "hardlink-b.txt",
                    "link-to-hello",
                    "medium-100k.txt",
                    "names",
                    "nested",
                    "one-byte.txt",
                    "random-3m.bin",
                    "setgid-dir",
                    "setuid-exec",
                    "small",
                    "sticky-dir",
                    "with-xattr.txt",
                ],
                "{repo}: socket is skipped"
            );
            let get = |n: &str| root.find(n.as_bytes()).unwrap();
            assert_eq!(get("blockdev-loop").device, 1992);
            assert_eq!(get("blockdev-loop").node_type, NodeType::Dev);
            assert_eq!(get("chardev-null").device, 259);
            assert_eq!(get("chardev-null").node_type, NodeType::CharDev);
            assert_eq!(get("dangling-link").linktarget, b"/nonexistent/target");
            assert_eq!(get("link-to-hello").linktarget, b"small/hello.txt");
            assert_eq!(get("empty.txt").content, Some(Vec::new()));
            assert_eq!(get("fifo").content, None);
            assert_eq!(get("fifo").node_type, NodeType::Fifo);
            let foreign = get("foreign-owner.txt");
            assert_eq!((foreign.uid, foreign.gid), (12345, 54321));
            assert_eq!((foreign.user.as_str(), foreign.group.as_str()), ("", ""));
            let (a, b) = (get("hardlink-a.txt"), get("hardlink-b.txt"));
            assert_eq!((a.inode, a.links, &a.content), (b.inode, 2, &b.content));
            assert_eq!(unix_perm_from_go(get("setuid-exec").mode), 0o4755);
            assert_ne!(get("setuid-exec").mode & MODE_SETUID, 0);
            assert_ne!(get("setgid-dir").mode & MODE_SETGID, 0);
            assert_ne!(get("sticky-dir").mode & MODE_STICKY, 0);
            assert_eq!(unix_perm_from_go(get("sticky-dir").mode), 0o1777);
            let x = get("with-xattr.txt");
            assert_eq!(x.extended_attributes.len(), 1);
            assert_eq!(x.extended_attributes[0].name, "user.fixture");
            assert_eq!(x.extended_attributes[0].value, b"xattr-value-\x00\xff");
            let one = get("one-byte.txt");
            assert_eq!(one.mtime.unix_nanos(), 1_614_834_367_000_000_000);
            assert_eq!(
                one.mtime.format(),
                format!(
                    "2021-03-04T0{}:06:07{offset}",
                    if offset == "Z" { 5 } else { 6 }
                )
            );
            assert_eq!(
                get("random-3m.bin").mtime.unix_nanos(),
                1_614_834_367_123_456_789
            );
            assert_eq!(get("dup").mtime.unix_nanos(), 1_609_459_200_000_000_001);
            assert_eq!(get("random-3m.bin").size, 3_145_728);
            assert_eq!(
                get("random-3m.bin").content.as_ref().map(Vec::len),
                Some(if repo == "repo-v1" { 2 } else { 3 })
            );
        }
    }
}
