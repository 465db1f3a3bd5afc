use super::*;
use cairn_backend::LocalBackend;
use cairn_repo::backend::FileType;
use cairn_repo::gotime::GoTime;
use cairn_repo::index::{IndexFile, IndexPack};
use cairn_repo::key::KdfParams;
use cairn_repo::node::{Node, NodeType};
use cairn_repo::repository::{InitOptions, WriteOptions};
use cairn_repo::snapshot::Snapshot;
use cairn_repo::tree::Tree;
use cairn_repo::{BlobType, Id};
use std::path::PathBuf;
use std::sync::Arc;

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    repo: Repository,
    /// Data blob ids in file order.
    data: Vec<Id>,
    root_tree: Id,
    sub_tree: Id,
    snapshot: Id,
}

fn opts() -> WriteOptions {
    WriteOptions {
        pack_size: 4096,
        ..Default::default()
    }
}

/// A repository whose snapshot has `/f` (12 data blobs over several packs) and `/sub/g`.
fn fixture(version: u32) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let be = Arc::new(LocalBackend::new(&root));
    Repository::init(
        be.clone(),
        b"pw",
        InitOptions {
            version,
            kdf: KdfParams::testing(),
            ..Default::default()
        },
    )
    .unwrap();
    let repo = Repository::open(be, b"pw", opts()).unwrap();
    let mut data = Vec::new();
    for i in 0..12u32 {
        // Incompressible content: a hash chain.
        let d: Vec<u8> = (0..47u32)
            .flat_map(|j| Id::hash(&(i * 1000 + j).to_le_bytes()).0)
            .collect();
        data.push(repo.save_blob(BlobType::Data, &d).unwrap().0);
    }
    let mut g = Node::new("g", NodeType::File);
    g.content = Some(data[10..].to_vec());
    let sub = Tree { nodes: vec![g] };
    let sub_tree = repo
        .save_blob(BlobType::Tree, &sub.encode().unwrap())
        .unwrap()
        .0;
    let mut f = Node::new("f", NodeType::File);
    f.content = Some(data[..10].to_vec());
    let mut d = Node::new("sub", NodeType::Dir);
    d.subtree = Some(sub_tree);
    let top = Tree { nodes: vec![f, d] };
    let root_tree = repo
        .save_blob(BlobType::Tree, &top.encode().unwrap())
        .unwrap()
        .0;
    repo.flush().unwrap();
    let snapshot = repo
        .save_snapshot(&Snapshot::new(
            GoTime::from_unix(1_700_000_000, 0),
            root_tree,
            vec!["/x".into()],
        ))
        .unwrap();
    assert!(repo.list_ids(FileType::Pack).unwrap().len() >= 4);
    Fixture {
        _dir: dir,
        root,
        repo,
        data,
        root_tree,
        sub_tree,
        snapshot,
    }
}

fn run(
    repo: &Repository,
    read: Option<ReadDataSubset>,
) -> (CheckSummary, Vec<Problem>, Vec<Phase>) {
    let found = parking_lot::Mutex::new(Vec::new());
    let phases = parking_lot::Mutex::new(Vec::new());
    let progress = CheckProgress::new();
    let opts = CheckOptions {
        read_data: read,
        threads: 3,
    };
    let s = check(repo, &opts, &progress, &|e| match e {
        CheckEvent::Problem(p) => found.lock().push(p),
        CheckEvent::Phase(p) => phases.lock().push(p),
    })
    .unwrap();
    assert_eq!(progress.snapshot().phase, 5);
    (s, found.into_inner(), phases.into_inner())
}

fn pack_of(repo: &Repository, t: BlobType, id: &Id) -> Id {
    let fresh = Repository::open(Arc::clone(repo.backend()), b"pw", opts()).unwrap();
    fresh.load_index().unwrap();
    fresh.locate(t, id).unwrap().pack_id
}

fn pack_path(f: &Fixture, id: &Id) -> PathBuf {
    let hex = id.to_hex();
    f.root.join("data").join(&hex[..2]).join(hex)
}

fn flip(path: &std::path::Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x20;
    std::fs::write(path, b).unwrap();
}

fn kinds(p: &[Problem]) -> Vec<ProblemKind> {
    let mut k: Vec<ProblemKind> = p.iter().map(|p| p.kind).collect();
    k.dedup();
    k
}

#[test]
fn clean_repositories_pass_with_all_data_read() {
    for v in [1, 2] {
        let f = fixture(v);
        let (s, problems, phases) = run(&f.repo, Some(ReadDataSubset::All));
        assert!(problems.is_empty(), "{problems:?}");
        assert!(s.is_ok());
        assert_eq!(s.snapshots, 1);
        assert_eq!(s.trees, 2);
        assert_eq!(s.packs_read as usize, s.packs);
        let on_disk: u64 = f
            .repo
            .backend()
            .list(FileType::Pack)
            .unwrap()
            .iter()
            .map(|x| x.1)
            .sum();
        assert_eq!(s.bytes_read, on_disk);
        assert_eq!(phases.len(), 4);
        assert_eq!(phases[0], Phase::LoadIndex);
        assert!(
            matches!(phases[3], Phase::ReadData { selected, total, bytes, total_bytes }
            if selected == total && bytes == on_disk && total_bytes == on_disk)
        );
    }
}

#[test]
fn flipped_blob_byte_is_found_only_when_reading_data() {
    let f = fixture(2);
    let pack = pack_of(&f.repo, BlobType::Data, &f.data[3]);
    flip(&pack_path(&f, &pack), 40);
    let (s, problems, _) = run(&f.repo, None);
    assert!(s.is_ok() && problems.is_empty(), "{problems:?}");
    let (s, problems, _) = run(&f.repo, Some(ReadDataSubset::All));
    assert!(!s.is_ok());
    assert_eq!(kinds(&problems), vec![ProblemKind::PackData]);
    assert_eq!(problems[0].subject, Some(Subject::Pack(pack)));
    assert!(problems[0].salvage);
    let all = problems[0].details.join("\n");
    assert!(
        all.contains("decrypting") && all.contains("unexpected pack id"),
        "{all}"
    );
    assert_eq!(s.broken_packs, vec![pack]);
}

#[test]
fn damaged_header_and_truncation_are_found() {
    let f = fixture(2);
    let pack = pack_of(&f.repo, BlobType::Data, &f.data[0]);
    let path = pack_path(&f, &pack);
    let len = std::fs::metadata(&path).unwrap().len() as usize;
    flip(&path, len - 10);
    let (s, problems, _) = run(&f.repo, Some(ReadDataSubset::All));
    assert_eq!(kinds(&problems), vec![ProblemKind::PackData]);
    assert!(
        problems[0].details.iter().any(|d| d.contains("header")),
        "{problems:?}"
    );
    assert_eq!(s.broken_packs, vec![pack]);

    // Truncation: found without reading data (size), and by reading.
    let g = fixture(2);
    let pack = pack_of(&g.repo, BlobType::Data, &g.data[5]);
    let path = pack_path(&g, &pack);
    let b = std::fs::read(&path).unwrap();
    std::fs::write(&path, &b[..b.len() / 2]).unwrap();
    let (s, problems, _) = run(&g.repo, None);
    assert_eq!(kinds(&problems), vec![ProblemKind::PackSize]);
    assert!(problems[0].message.contains("unexpected file size"));
    assert_eq!(s.broken_packs, vec![pack]);
    let (_, problems, _) = run(&g.repo, Some(ReadDataSubset::All));
    assert_eq!(
        kinds(&problems),
        vec![ProblemKind::PackSize, ProblemKind::PackData]
    );
    assert!(
        problems[1].details.iter().any(|d| d.contains("truncated")),
        "{problems:?}"
    );
}

#[test]
fn missing_pack_is_found_without_reading_data() {
    let f = fixture(2);
    let pack = pack_of(&f.repo, BlobType::Data, &f.data[11]);
    std::fs::remove_file(pack_path(&f, &pack)).unwrap();
    let (s, problems, _) = run(&f.repo, Some(ReadDataSubset::All));
    assert_eq!(kinds(&problems), vec![ProblemKind::PackMissing]);
    assert!(problems[0].message.ends_with("does not exist"));
    assert_eq!(s.broken_packs, vec![pack]);
    // The missing pack is not read again.
    assert_eq!(s.packs_read as usize, s.packs - 1);
}

#[test]
fn damaged_tree_pack_names_snapshot_and_path() {
    let f = fixture(2);
    let pack = pack_of(&f.repo, BlobType::Tree, &f.sub_tree);
    let blob = Repository::open(Arc::clone(f.repo.backend()), b"pw", opts()).unwrap();
    blob.load_index().unwrap();
    let loc = blob.locate(BlobType::Tree, &f.sub_tree).unwrap();
    flip(&pack_path(&f, &pack), loc.offset as usize + 20);
    let (_, problems, _) = run(&f.repo, None);
    assert_eq!(kinds(&problems), vec![ProblemKind::Tree]);
    let p = &problems[0];
    assert_eq!(p.subject, Some(Subject::Tree(f.sub_tree)));
    assert_eq!(
        p.context,
        Some(TreeContext {
            snapshot: f.snapshot,
            path: "/sub".into()
        })
    );
    assert!(p.message.contains(&f.snapshot.short()), "{}", p.message);
    assert!(p.details[0].contains(&pack.to_hex()), "{:?}", p.details);
}

#[test]
fn index_problems() {
    // A removed index file: its packs become orphans (hints), their blobs are missing.
    let f = fixture(2);
    let idx = f.repo.list_ids(FileType::Index).unwrap();
    assert_eq!(idx.len(), 1);
    let file =
        IndexFile::from_json(&f.repo.load_unpacked(FileType::Index, &idx[0]).unwrap()).unwrap();
    let tree_pack = pack_of(&f.repo, BlobType::Tree, &f.root_tree);
    let dropped = pack_of(&f.repo, BlobType::Data, &f.data[0]);
    let keep: Vec<IndexPack> = file
        .packs
        .iter()
        .filter(|p| p.id != dropped)
        .cloned()
        .collect();
    let new = f
        .repo
        .save_unpacked(
            FileType::Index,
            &IndexFile {
                supersedes: vec![],
                packs: keep,
            }
            .to_json(),
        )
        .unwrap();
    f.repo.remove_files(FileType::Index, &idx).unwrap();
    let (s, problems, _) = run(&f.repo, None);
    assert_eq!(
        kinds(&problems),
        vec![ProblemKind::PackOrphaned, ProblemKind::Tree]
    );
    assert_eq!(problems[0].subject, Some(Subject::Pack(dropped)));
    assert!(problems[1].details[0].contains(&f.data[0].to_hex()));
    assert!(s.suggest_prune && !s.is_ok());
    assert_eq!(s.orphaned_packs, 1);

    // The same pack in a second index file: a duplicate (hint only).
    let dup = file
        .packs
        .iter()
        .find(|p| p.id == dropped)
        .cloned()
        .unwrap();
    let tree_entry = file
        .packs
        .iter()
        .find(|p| p.id == tree_pack)
        .cloned()
        .unwrap();
    f.repo
        .save_unpacked(
            FileType::Index,
            &IndexFile {
                supersedes: vec![],
                packs: vec![dup.clone(), tree_entry.clone()],
            }
            .to_json(),
        )
        .unwrap();
    let (s, problems, _) = run(&f.repo, Some(ReadDataSubset::All));
    assert_eq!(kinds(&problems), vec![ProblemKind::DuplicatePack]);
    assert!(s.is_ok() && s.suggest_repair_index);
    assert_eq!(problems[0].subject, Some(Subject::Pack(tree_pack)));

    // A third file listing a pack with different blobs: incomplete (error).
    let mut partial = dup.clone();
    partial.blobs.truncate(1);
    partial.blobs[0].length += 1;
    f.repo
        .save_unpacked(
            FileType::Index,
            &IndexFile {
                supersedes: vec![],
                packs: vec![partial],
            }
            .to_json(),
        )
        .unwrap();
    let (s, problems, _) = run(&f.repo, None);
    assert!(
        kinds(&problems).contains(&ProblemKind::IncompletePack),
        "{problems:?}"
    );
    assert!(!s.is_ok() && s.broken_packs.contains(&dropped));

    // An undecryptable index file stops the check after loading.
    let path = f.root.join("index").join(new.to_hex());
    flip(&path, 30);
    let (s, problems, phases) = run(&f.repo, Some(ReadDataSubset::All));
    assert!(
        problems
            .iter()
            .any(|p| p.kind == ProblemKind::IndexUnreadable
                && p.subject == Some(Subject::Index(new)))
    );
    assert!(s.index_damaged && !s.is_ok() && s.suggest_repair_index);
    assert_eq!(phases, vec![Phase::LoadIndex]);
}

#[test]
fn mixed_packs_are_a_hint() {
    let f = fixture(2);
    let idx = f.repo.list_ids(FileType::Index).unwrap();
    let mut file =
        IndexFile::from_json(&f.repo.load_unpacked(FileType::Index, &idx[0]).unwrap()).unwrap();
    // Claim one data pack also holds a (nonexistent) tree blob at its end: mixed, and the
    // size no longer matches.
    let p = &mut file.packs[0];
    let mut extra = p.blobs[0];
    extra.blob_type = if extra.blob_type == BlobType::Tree {
        BlobType::Data
    } else {
        BlobType::Tree
    };
    extra.id = Id::hash(b"fake");
    p.blobs.push(extra);
    let pid = p.id;
    f.repo
        .save_unpacked(FileType::Index, &file.to_json())
        .unwrap();
    f.repo.remove_files(FileType::Index, &idx).unwrap();
    let (_, problems, _) = run(&f.repo, None);
    let mixed: Vec<_> = problems
        .iter()
        .filter(|p| p.kind == ProblemKind::MixedPack)
        .collect();
    assert_eq!(mixed.len(), 1);
    assert!(mixed[0].message.contains(&pid.short()));
    assert_eq!(mixed[0].severity(), Severity::Hint);
    assert!(problems.iter().any(|p| p.kind == ProblemKind::PackSize));
}

#[test]
fn damaged_snapshot_is_an_error() {
    let f = fixture(1);
    let path = f.root.join("snapshots").join(f.snapshot.to_hex());
    flip(&path, 20);
    let (s, problems, _) = run(&f.repo, None);
    assert_eq!(kinds(&problems), vec![ProblemKind::SnapshotUnreadable]);
    assert_eq!(s.broken_snapshots, vec![f.snapshot]);
    assert_eq!(s.snapshots, 0);
}

#[test]
fn subsets_read_only_their_bucket() {
    let f = fixture(2);
    let all = f.repo.list_ids(FileType::Pack).unwrap();
    for total in [2u32, 3] {
        let mut read = 0;
        for n in 1..=total {
            let (s, problems, phases) = run(&f.repo, Some(ReadDataSubset::Bucket { n, total }));
            assert!(problems.is_empty());
            let want = all.iter().filter(|id| in_bucket(id, n, total)).count();
            assert_eq!(s.packs_read as usize, want);
            assert!(matches!(phases[3], Phase::ReadData { selected, .. } if selected == want));
            read += want;
        }
        assert_eq!(read, all.len());
    }
    // Damage in one pack is seen by exactly the group holding it.
    let pack = pack_of(&f.repo, BlobType::Data, &f.data[7]);
    flip(&pack_path(&f, &pack), 33);
    for n in 1..=4 {
        let (s, _, _) = run(&f.repo, Some(ReadDataSubset::Bucket { n, total: 4 }));
        assert_eq!(s.is_ok(), !in_bucket(&pack, n, 4));
    }
}

#[test]
fn wrong_index_offsets_are_found_by_reading() {
    let f = fixture(2);
    let idx = f.repo.list_ids(FileType::Index).unwrap();
    let mut file =
        IndexFile::from_json(&f.repo.load_unpacked(FileType::Index, &idx[0]).unwrap()).unwrap();
    // Swap the ids of two blobs in one pack: every size still matches.
    let p = file
        .packs
        .iter_mut()
        .find(|p| p.blobs.len() >= 2 && p.blobs[0].blob_type == BlobType::Data)
        .unwrap();
    let pid = p.id;
    let (a, b) = (p.blobs[0].id, p.blobs[1].id);
    p.blobs[0].id = b;
    p.blobs[1].id = a;
    f.repo
        .save_unpacked(FileType::Index, &file.to_json())
        .unwrap();
    f.repo.remove_files(FileType::Index, &idx).unwrap();
    let (s, problems, _) = run(&f.repo, None);
    assert!(s.is_ok(), "{problems:?}");
    let (s, problems, _) = run(&f.repo, Some(ReadDataSubset::All));
    assert_eq!(kinds(&problems), vec![ProblemKind::PackData]);
    assert_eq!(s.broken_packs, vec![pid]);
    let d = problems[0].details.join("\n");
    assert!(
        d.contains("wrong data") && d.contains("not contained in index"),
        "{d}"
    );
}
