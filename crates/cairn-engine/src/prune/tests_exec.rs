//! Prune end to end on temporary local repositories: plan, execute, reopen and read back.

use super::*;
use cairn_repo::gotime::GoTime;
use cairn_repo::key::KdfParams;
use cairn_repo::node::{Node, NodeType};
use cairn_repo::repository::{InitOptions, WriteOptions};
use cairn_repo::snapshot::Snapshot;
use cairn_repo::tree::Tree;
use cairn_repo::{BlobType, Id};
use std::sync::Arc;

const PW: &[u8] = b"pw";

fn backend(dir: &std::path::Path) -> Arc<dyn cairn_repo::backend::Backend> {
    Arc::new(cairn_backend::LocalBackend::new(dir.join("repo")))
}

fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn open(dir: &std::path::Path, compression: CompressionMode) -> Repository {
    let repo = Repository::open(
        backend(dir),
        PW,
        WriteOptions {
            compression,
            ..Default::default()
        },
    )
    .unwrap();
    repo.load_index().unwrap();
    repo
}

/// A snapshot of files `(name, seeds of its chunks)`; returns the snapshot id.
fn snapshot(repo: &Repository, files: &[(&str, &[u64])]) -> Id {
    let mut nodes = Vec::new();
    for (name, chunks) in files {
        let mut n = Node::new(name.as_bytes().to_vec(), NodeType::File);
        let mut content = Vec::new();
        for s in *chunks {
            let c = data(*s, 200_000);
            content.push(repo.save_blob(BlobType::Data, &c).unwrap().0);
            n.size += c.len() as u64;
        }
        n.content = Some(content);
        nodes.push(n);
    }
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let tree = Tree { nodes }.encode().unwrap();
    let root = repo.save_blob(BlobType::Tree, &tree).unwrap().0;
    repo.flush().unwrap();
    repo.save_snapshot(&Snapshot::new(GoTime::default(), root, vec!["/x".into()]))
        .unwrap()
}

/// A repository with two snapshots written in separate runs, the first one forgotten.
fn build(compression: CompressionMode) -> (tempfile::TempDir, Vec<Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(
        backend(dir.path()),
        PW,
        InitOptions {
            kdf: KdfParams::testing(),
            ..Default::default()
        },
    )
    .unwrap();
    drop(repo);
    let repo = open(dir.path(), compression);
    let first = snapshot(&repo, &[("a", &[1, 2, 3]), ("b", &[4, 5])]);
    drop(repo);
    let repo = open(dir.path(), compression);
    snapshot(&repo, &[("b", &[4, 5]), ("c", &[6, 7])]);
    repo.backend()
        .remove(FileType::Snapshot, &first.to_hex())
        .unwrap();
    let kept = [4u64, 5, 6, 7].iter().map(|s| data(*s, 200_000)).collect();
    (dir, kept)
}

/// Every indexed pack exists with the size the index implies, no pack is unindexed, and the
/// kept data reads back.
fn assert_consistent(dir: &std::path::Path, kept: &[Vec<u8>]) -> Repository {
    let repo = open(dir, CompressionMode::Auto);
    let listed: std::collections::HashMap<Id, u64> = repo
        .backend()
        .list(FileType::Pack)
        .unwrap()
        .into_iter()
        .map(|(n, s)| (Id::from_name(&n).unwrap(), s))
        .collect();
    let packs = repo.index().packs();
    assert_eq!(packs.len(), listed.len());
    for (id, blobs) in &packs {
        let size: u64 = 36
            + blobs
                .iter()
                .map(|b| u64::from(b.length) + b.header_entry_size() as u64)
                .sum::<u64>();
        assert_eq!(listed.get(id), Some(&size), "pack {id}");
    }
    for k in kept {
        assert_eq!(&repo.load_blob(BlobType::Data, &Id::hash(k)).unwrap(), k);
    }
    repo
}

#[test]
fn prune_removes_forgotten_data_and_keeps_the_rest() {
    let (dir, kept) = build(CompressionMode::Auto);
    let repo = open(dir.path(), CompressionMode::Auto);
    let o = PruneOptions {
        max_unused: MaxUnused::Percent(0.0),
        ..Default::default()
    };
    let p = plan(&repo, &o, &NoProgress).unwrap();
    // Blobs 1–3 and the first root tree are unused; the first run's data pack is partly used.
    assert_eq!(p.stats.blobs.unused, 4);
    assert_eq!(p.stats.blobs.used, 5);
    assert!(!p.repack.is_empty());
    let st = execute(&repo, p, &o, &NoProgress).unwrap();
    assert!(st.packs_written >= 1);
    assert!(st.index_files_written >= 1);
    drop(repo);
    let repo = assert_consistent(dir.path(), &kept);
    for s in [1u64, 2, 3] {
        assert!(
            !repo
                .index()
                .contains(BlobType::Data, &Id::hash(&data(s, 200_000)))
        );
    }
    // Nothing left to do.
    let p = plan(&repo, &o, &NoProgress).unwrap();
    assert!(p.is_noop(), "{:?}", p.stats);
    assert_eq!(p.stats.blobs.unused, 0);
}

#[test]
fn dry_plan_changes_nothing_and_unlimited_keeps_data_packs() {
    let (dir, kept) = build(CompressionMode::Auto);
    let repo = open(dir.path(), CompressionMode::Auto);
    let before = repo.backend().list(FileType::Pack).unwrap().len();
    let o = PruneOptions {
        max_unused: MaxUnused::Unlimited,
        ..Default::default()
    };
    let p = plan(&repo, &o, &NoProgress).unwrap();
    assert_eq!(repo.backend().list(FileType::Pack).unwrap().len(), before);
    // Only the tree pack of the first run goes (it has no used blob); data stays.
    assert!(
        p.repack
            .iter()
            .all(|r| r.blobs.iter().all(|b| b.blob_type == BlobType::Tree))
    );
    execute(&repo, p, &o, &NoProgress).unwrap();
    drop(repo);
    let repo = assert_consistent(dir.path(), &kept);
    let p = plan(&repo, &o, &NoProgress).unwrap();
    assert_eq!(p.stats.blobs.unused, 3);
}

#[test]
fn repacking_compresses_uncompressed_data() {
    let (dir, kept) = build(CompressionMode::Off);
    let repo = open(dir.path(), CompressionMode::Auto);
    let uncompressed = |r: &Repository| {
        r.index()
            .iter()
            .filter(|(t, _, l)| *t == BlobType::Data && l.uncompressed_length.is_none())
            .count()
    };
    assert_eq!(uncompressed(&repo), 7);
    let o = PruneOptions {
        max_unused: MaxUnused::Percent(0.0),
        repack_uncompressed: true,
        ..Default::default()
    };
    let p = plan(&repo, &o, &NoProgress).unwrap();
    execute(&repo, p, &o, &NoProgress).unwrap();
    drop(repo);
    let repo = assert_consistent(dir.path(), &kept);
    assert_eq!(uncompressed(&repo), 0);
    // With compression off, --repack-uncompressed is refused.
    let o = PruneOptions {
        compression: CompressionMode::Off,
        ..o
    };
    assert!(plan(&repo, &o, &NoProgress).is_err());
}

#[test]
fn a_needed_but_missing_tree_aborts() {
    let (dir, _) = build(CompressionMode::Auto);
    let repo = open(dir.path(), CompressionMode::Auto);
    // Remove every tree pack: the snapshot's root cannot be loaded.
    let tree_packs: std::collections::HashSet<Id> = repo
        .index()
        .iter()
        .filter(|(t, _, _)| *t == BlobType::Tree)
        .map(|(_, _, l)| l.pack_id)
        .collect();
    for p in tree_packs {
        repo.backend().remove(FileType::Pack, &p.to_hex()).unwrap();
    }
    let e = plan(&repo, &PruneOptions::default(), &NoProgress).unwrap_err();
    assert!(e.to_string().contains("unable to load a tree"), "{e}");
}
