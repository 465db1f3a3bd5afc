//! Shared builder for the `query_*` tests: a small repository with three snapshots.

#![allow(dead_code)]

use cairn_repo::gotime::GoTime;
use cairn_repo::node::{
    ExtendedAttribute, MODE_DIR, MODE_NAMED_PIPE, MODE_SYMLINK, Node, NodeType,
};
use cairn_repo::repository::{InitOptions, Repository};
use cairn_repo::snapshot::Snapshot;
use cairn_repo::tree::Tree;
use cairn_repo::{BlobType, Id};
use std::collections::BTreeMap;
use std::sync::Arc;

pub fn t(secs: i64, nanos: u32) -> GoTime {
    GoTime::from_unix_with_offset(secs, nanos, 3600)
}

pub const T0: i64 = 1_614_834_367;

pub struct Built {
    pub _dir: tempfile::TempDir,
    pub repo: Repository,
    /// Plaintext size of every blob written (for diff byte counts).
    pub sizes: BTreeMap<(bool, Id), u64>,
}

impl Built {
    pub fn new() -> Built {
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

    pub fn data(&mut self, bytes: &[u8]) -> Id {
        let (id, _) = self.repo.save_blob(BlobType::Data, bytes).unwrap();
        self.sizes.insert((false, id), bytes.len() as u64);
        id
    }

    pub fn file(&mut self, name: &[u8], chunks: &[&[u8]], mtime: GoTime) -> Node {
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

    pub fn tree(&mut self, nodes: Vec<Node>) -> Id {
        let mut tree = Tree::new();
        for n in nodes {
            tree.insert(n).unwrap();
        }
        let bytes = tree.encode().unwrap();
        let (id, _) = self.repo.save_blob(BlobType::Tree, &bytes).unwrap();
        self.sizes.insert((true, id), bytes.len() as u64);
        id
    }

    pub fn snapshot(&self, tree: Id, secs: i64, host: &str) -> Id {
        self.repo.flush().unwrap();
        let mut s = Snapshot::new(t(secs, 0), tree, vec!["/src".into()]);
        s.hostname = host.into();
        self.repo.save_snapshot(&s).unwrap()
    }
}

pub fn dir(name: &str, subtree: Id) -> Node {
    let mut n = Node::new(name, NodeType::Dir);
    n.mode = MODE_DIR | 0o755;
    n.mtime = t(T0, 0);
    n.atime = n.mtime;
    n.ctime = n.mtime;
    n.subtree = Some(subtree);
    n
}

pub fn symlink(name: &str, target: &str) -> Node {
    let mut n = Node::new(name, NodeType::Symlink);
    n.mode = MODE_SYMLINK | 0o777;
    n.mtime = t(T0, 0);
    n.linktarget = target.as_bytes().to_vec();
    n
}

pub fn fifo(name: &str) -> Node {
    let mut n = Node::new(name, NodeType::Fifo);
    n.mode = MODE_NAMED_PIPE | 0o644;
    n.mtime = t(T0, 0);
    n
}

pub struct Fixture {
    pub b: Built,
    pub snap1: Id,
    pub snap2: Id,
    pub snap3: Id,
    pub sub_tree: Id,
    pub docs1: Id,
    pub a1_blob: Id,
    pub big: Vec<u8>,
}

/// Snapshot 1:
/// ```text
/// /big.bin (3 blobs)  /docs/{a.txt, b.md, sub/c.txt}  /fifo  /link -> docs/a.txt  /same/s.txt
/// ```
/// Snapshot 2: big.bin newer mtime; docs/a.txt new content (same metadata); docs/b.md
/// removed; link is a regular file; new/n.txt added; sub and same unchanged.
/// Snapshot 3 (host "other"): odd names for the archive writers.
pub fn build() -> Fixture {
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

pub fn snaps(f: &Fixture) -> Vec<(Id, Snapshot)> {
    f.b.repo.load_snapshots().unwrap()
}

pub fn tree_of(f: &Fixture, id: Id) -> Id {
    f.b.repo.load_snapshot(&id).unwrap().tree
}
