use super::*;
use cairn_backend::LocalBackend;
use cairn_repo::backend::FileType;
use cairn_repo::index::{IndexFile, IndexPack};
use cairn_repo::key::KdfParams;
use cairn_repo::repository::{InitOptions, Repository, WriteOptions};
use cairn_repo::{BlobType, Id};
use std::collections::HashMap;
use std::sync::Arc;

fn small_packs() -> WriteOptions {
    WriteOptions {
        pack_size: 4096,
        ..Default::default()
    }
}

/// A repository with several small data packs and one tree pack; returns the tempdir, the
/// repository and the plaintexts stored.
fn repo_with_packs() -> (tempfile::TempDir, Repository, Vec<(BlobType, Vec<u8>)>) {
    let dir = tempfile::tempdir().unwrap();
    let be = Arc::new(LocalBackend::new(dir.path().join("repo")));
    Repository::init(
        be.clone(),
        b"pw",
        InitOptions {
            kdf: KdfParams::testing(),
            ..Default::default()
        },
    )
    .unwrap();
    let repo = Repository::open(be, b"pw", small_packs()).unwrap();
    let mut blobs = Vec::new();
    for i in 0..24u32 {
        // Incompressible-ish content so packs fill up.
        let data: Vec<u8> = (0..1000u32)
            .map(|j| (j.wrapping_mul(2654435761).wrapping_add(i * 7919) >> 13) as u8)
            .collect();
        blobs.push((BlobType::Data, data));
    }
    blobs.push((BlobType::Tree, b"{\"nodes\":[]}\n".to_vec()));
    for (t, d) in &blobs {
        repo.save_blob(*t, d).unwrap();
    }
    repo.flush().unwrap();
    assert!(repo.list_ids(FileType::Pack).unwrap().len() >= 3);
    (dir, repo, blobs)
}

/// Open the repository again and load its index from disk.
fn reopen(repo: &Repository) -> Repository {
    let r = Repository::open(Arc::clone(repo.backend()), b"pw", small_packs()).unwrap();
    r.load_index().unwrap();
    r
}

fn packs_on_disk(repo: &Repository) -> HashMap<Id, Vec<cairn_repo::pack::PackBlob>> {
    let fresh = reopen(repo);
    let mut p = fresh.index().packs();
    for v in p.values_mut() {
        v.sort_by_key(|b| b.offset);
    }
    p
}

fn remove_all(repo: &Repository, t: FileType) {
    for id in repo.list_ids(t).unwrap() {
        repo.backend().remove(t, &id.to_hex()).unwrap();
    }
}

/// Replace a pack file with other bytes (the backend keeps existing files on write).
fn overwrite(repo: &Repository, pack: &Id, data: &[u8]) {
    repo.backend()
        .remove(FileType::Pack, &pack.to_hex())
        .unwrap();
    repo.backend()
        .write(FileType::Pack, &pack.to_hex(), data)
        .unwrap();
}

fn no_events(_: IndexRepairEvent) {}

#[test]
fn index_is_rebuilt_from_pack_headers() {
    let (_d, repo, blobs) = repo_with_packs();
    let before = packs_on_disk(&repo);
    remove_all(&repo, FileType::Index);
    let s = repair_index(&repo, RepairIndexOptions::default(), &no_events).unwrap();
    assert_eq!(s.index_files_loaded, 0);
    assert_eq!(s.packs_not_indexed.len(), before.len());
    assert_eq!(s.packs_read, before.len());
    assert_eq!(s.blobs_indexed, blobs.len());
    assert_eq!(packs_on_disk(&repo), before);
    let fresh = reopen(&repo);
    for (t, d) in &blobs {
        assert_eq!(&fresh.load_blob(*t, &Id::hash(d)).unwrap(), d);
    }
}

#[test]
fn intact_index_is_rewritten_without_reading_packs() {
    let (_d, repo, _) = repo_with_packs();
    let before = packs_on_disk(&repo);
    let old = repo.list_ids(FileType::Index).unwrap();
    let events = parking_lot::Mutex::new(Vec::new());
    let s = repair_index(&repo, RepairIndexOptions::default(), &|e| {
        events.lock().push(e)
    })
    .unwrap();
    assert_eq!(s.packs_read, 0);
    assert_eq!(s.index_files_loaded, old.len());
    assert_eq!(s.index_files_removed, old.len());
    let now = repo.list_ids(FileType::Index).unwrap();
    assert_eq!(now.len(), s.index_files_written.len());
    assert!(now.iter().all(|id| !old.contains(id)));
    // The new index supersedes the old files.
    let f = IndexFile::from_json(&repo.load_unpacked(FileType::Index, &now[0]).unwrap()).unwrap();
    assert_eq!(f.supersedes, old);
    assert_eq!(packs_on_disk(&repo), before);
    assert_eq!(
        *events.lock(),
        vec![
            IndexRepairEvent::LoadingIndexes,
            IndexRepairEvent::ListingPacks,
            IndexRepairEvent::RebuildingIndex {
                packs: before.len()
            },
            IndexRepairEvent::RemovingOldIndexes { count: old.len() },
        ]
    );
}

#[test]
fn read_all_packs_ignores_the_old_index() {
    let (_d, repo, _) = repo_with_packs();
    let before = packs_on_disk(&repo);
    // A wrong (but decodable) index: every pack claims one bogus blob.
    remove_all(&repo, FileType::Index);
    let bogus = IndexFile {
        supersedes: vec![],
        packs: before
            .keys()
            .map(|p| {
                IndexPack::from_blobs(
                    *p,
                    &[cairn_repo::pack::PackBlob {
                        blob_type: BlobType::Data,
                        id: Id([7; 32]),
                        offset: 0,
                        length: 40,
                        uncompressed_length: None,
                    }],
                )
            })
            .collect(),
    };
    repo.save_unpacked(FileType::Index, &bogus.to_json())
        .unwrap();
    let s = repair_index(
        &repo,
        RepairIndexOptions {
            read_all_packs: true,
        },
        &no_events,
    )
    .unwrap();
    assert_eq!(s.index_files_loaded, 0);
    assert!(s.packs_not_indexed.is_empty());
    assert_eq!(s.packs_read, before.len());
    assert_eq!(s.index_files_removed, 1);
    assert_eq!(packs_on_disk(&repo), before);
}

#[test]
fn missing_unindexed_mismatched_and_unreadable_packs() {
    let (_d, repo, _) = repo_with_packs();
    let before = packs_on_disk(&repo);
    let mut ids: Vec<Id> = before.keys().copied().collect();
    ids.sort();
    let (gone, unindexed, short, broken) = (ids[0], ids[1], ids[2], ids[3]);
    // One index file without `unindexed` and `broken`, with one blob of `short` missing
    // (size mismatch).
    let mut packs: Vec<IndexPack> = Vec::new();
    for (id, blobs) in &before {
        if *id == unindexed || *id == broken {
            continue;
        }
        let mut b = blobs.clone();
        if *id == short {
            b.pop();
        }
        packs.push(IndexPack::from_blobs(*id, &b));
    }
    remove_all(&repo, FileType::Index);
    let good_index = repo
        .save_unpacked(
            FileType::Index,
            &IndexFile {
                supersedes: vec![],
                packs,
            }
            .to_json(),
        )
        .unwrap();
    // An undecodable index file (valid name, garbage content).
    let garbage = b"not an index file at all, just some bytes".to_vec();
    let garbage_id = Id::hash(&garbage);
    repo.backend()
        .write(FileType::Index, &garbage_id.to_hex(), &garbage)
        .unwrap();
    // `gone` disappears; `broken` gets a damaged header (a byte before the trailer).
    repo.backend()
        .remove(FileType::Pack, &gone.to_hex())
        .unwrap();
    let mut raw = repo
        .backend()
        .read(FileType::Pack, &broken.to_hex())
        .unwrap();
    let n = raw.len();
    raw[n - 10] ^= 0xff;
    overwrite(&repo, &broken, &raw);

    let events = parking_lot::Mutex::new(Vec::new());
    let s = repair_index(&repo, RepairIndexOptions::default(), &|e| {
        events.lock().push(e)
    })
    .unwrap();
    assert_eq!(s.invalid_index_files, vec![garbage_id]);
    assert_eq!(s.index_files_loaded, 1);
    assert_eq!(s.packs_missing, vec![gone]);
    assert!(!s.index_files_written.contains(&good_index));
    let mut not_indexed = vec![unindexed, broken];
    not_indexed.sort();
    assert_eq!(s.packs_not_indexed, not_indexed);
    assert_eq!(s.packs_size_mismatch, vec![short]);
    assert_eq!(s.packs_read, 3);
    assert_eq!(s.packs_unreadable.len(), 1);
    assert_eq!(s.packs_unreadable[0].id, broken);
    assert_eq!(s.index_files_removed, 2);
    let ev = events.lock();
    assert!(ev.contains(&IndexRepairEvent::PackMissing { id: gone }));
    assert!(ev.contains(&IndexRepairEvent::ReadingPacks { count: 3 }));
    assert_eq!(
        ev.iter()
            .filter(|e| **e == IndexRepairEvent::PackRead)
            .count(),
        3
    );
    let mut expected = before.clone();
    expected.remove(&gone);
    expected.remove(&broken);
    assert_eq!(packs_on_disk(&repo), expected);
    assert_eq!(
        repo.list_ids(FileType::Index).unwrap(),
        s.index_files_written
    );
}

#[test]
fn empty_repository_has_nothing_to_repair() {
    let dir = tempfile::tempdir().unwrap();
    let be = Arc::new(LocalBackend::new(dir.path().join("repo")));
    let repo = Repository::init(
        be,
        b"pw",
        InitOptions {
            kdf: KdfParams::testing(),
            ..Default::default()
        },
    )
    .unwrap();
    let s = repair_index(&repo, RepairIndexOptions::default(), &no_events).unwrap();
    assert_eq!(s, RepairIndexSummary::default());
    assert!(repo.list_ids(FileType::Index).unwrap().is_empty());
}

#[test]
fn pack_size_matches_written_packs() {
    let (_d, repo, _) = repo_with_packs();
    let sizes: HashMap<String, u64> = repo
        .backend()
        .list(FileType::Pack)
        .unwrap()
        .into_iter()
        .collect();
    for (id, blobs) in packs_on_disk(&repo) {
        assert_eq!(pack_size_from_index(&blobs), sizes[&id.to_hex()]);
    }
}

/// Flip one byte inside the first data blob of a data pack; returns the pack and that blob.
fn damage_a_data_blob(repo: &Repository) -> (Id, cairn_repo::pack::PackBlob) {
    let packs = packs_on_disk(repo);
    let (pack, blobs) = packs
        .iter()
        .filter(|(_, b)| b.len() >= 2 && b.iter().all(|x| x.blob_type == BlobType::Data))
        .min_by_key(|(id, _)| **id)
        .unwrap();
    let victim = blobs[0];
    let mut raw = repo.backend().read(FileType::Pack, &pack.to_hex()).unwrap();
    raw[victim.offset as usize + 20] ^= 0x01;
    overwrite(repo, pack, &raw);
    (*pack, victim)
}

#[test]
fn repair_packs_salvages_intact_blobs_and_removes_the_pack() {
    let (d, repo, blobs) = repo_with_packs();
    let (pack, victim) = damage_a_data_blob(&repo);
    let original_pack_blobs = packs_on_disk(&repo)[&pack].clone();
    let damaged_bytes = repo.backend().read(FileType::Pack, &pack.to_hex()).unwrap();
    let repo = reopen(&repo);
    let backups = d.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let opts = RepairPacksOptions {
        backup_dir: Some(backups.clone()),
    };
    let events = parking_lot::Mutex::new(Vec::new());
    let s = repair_packs(&repo, &[pack], &opts, &|e| events.lock().push(e)).unwrap();
    assert_eq!(s.blobs_salvaged, original_pack_blobs.len() - 1);
    assert_eq!(s.blobs_damaged.len(), 1);
    assert_eq!(s.blobs_damaged[0].id, victim.id);
    assert_eq!(
        s.blobs_lost,
        vec![BlobRef {
            blob_type: BlobType::Data,
            id: victim.id
        }]
    );
    assert!(s.packs_written >= 1);
    assert_eq!(s.packs_removed, 1);
    // The backup copy holds the pack as it was.
    let copy = backups.join(format!("pack-{}", pack.to_hex()));
    assert_eq!(s.backups, vec![copy.clone()]);
    assert_eq!(std::fs::read(&copy).unwrap(), damaged_bytes);
    assert!(matches!(
        events.lock().first(),
        Some(PacksRepairEvent::SavingBackups)
    ));
    // The pack is gone, from the repository and the index; every other blob loads.
    assert!(!repo.list_ids(FileType::Pack).unwrap().contains(&pack));
    let fresh = reopen(&repo);
    assert!(!fresh.index().has_pack(&pack));
    for (t, data) in &blobs {
        let id = Id::hash(data);
        if id == victim.id {
            assert!(!fresh.index().contains(*t, &id));
        } else {
            assert_eq!(&fresh.load_blob(*t, &id).unwrap(), data);
        }
    }
    // An existing backup copy is never overwritten: the repair stops before changing anything.
    let other = *repo.list_ids(FileType::Pack).unwrap().first().unwrap();
    std::fs::write(backups.join(format!("pack-{}", other.to_hex())), b"keep").unwrap();
    let idx = repo.list_ids(FileType::Index).unwrap();
    assert!(repair_packs(&repo, &[other], &opts, &|_| {}).is_err());
    assert!(repo.list_ids(FileType::Pack).unwrap().contains(&other));
    assert_eq!(repo.list_ids(FileType::Index).unwrap(), idx);
    assert_eq!(
        std::fs::read(backups.join(format!("pack-{}", other.to_hex()))).unwrap(),
        b"keep"
    );
}

#[test]
fn repair_packs_finds_blobs_stored_elsewhere_and_unindexed_packs() {
    let (_d, repo, blobs) = repo_with_packs();
    let (pack, victim) = damage_a_data_blob(&repo);
    // Store the damaged blob again in another pack: nothing is lost then.
    let plain = blobs
        .iter()
        .find(|(_, d)| Id::hash(d) == victim.id)
        .unwrap()
        .1
        .clone();
    let repo = reopen(&repo);
    repo.save_blob_again(BlobType::Data, victim.id, &plain)
        .unwrap();
    repo.flush().unwrap();
    // Drop the pack from the index: its blobs come from its header.
    let fresh = reopen(&repo);
    let mut packs = fresh.index().packs();
    packs.remove(&pack);
    let old = fresh.list_ids(FileType::Index).unwrap();
    fresh
        .write_index_files(super::sorted_packs(packs), &old)
        .unwrap();
    fresh.remove_files(FileType::Index, &old).unwrap();
    let repo = reopen(&repo);
    let events = parking_lot::Mutex::new(Vec::new());
    let s = repair_packs(&repo, &[pack], &RepairPacksOptions::default(), &|e| {
        events.lock().push(e)
    })
    .unwrap();
    assert!(
        events
            .lock()
            .contains(&PacksRepairEvent::UsingPackHeader { id: pack })
    );
    assert_eq!(s.blobs_damaged.len(), 1);
    assert!(s.blobs_lost.is_empty());
    assert!(s.backups.is_empty());
    let fresh = reopen(&repo);
    for (t, data) in &blobs {
        assert_eq!(&fresh.load_blob(*t, &Id::hash(data)).unwrap(), data);
    }
}

#[test]
fn repair_packs_of_a_missing_pack_changes_nothing() {
    let (_d, repo, _) = repo_with_packs();
    let repo = reopen(&repo);
    let idx = repo.list_ids(FileType::Index).unwrap();
    assert!(
        repair_packs(
            &repo,
            &[Id([5; 32])],
            &RepairPacksOptions::default(),
            &|_| {}
        )
        .is_err()
    );
    assert!(repair_packs(&repo, &[], &RepairPacksOptions::default(), &|_| {}).is_err());
    assert_eq!(repo.list_ids(FileType::Index).unwrap(), idx);
}

#[test]
fn repair_packs_removes_a_pack_nothing_describes() {
    let (_d, repo, _) = repo_with_packs();
    let before = packs_on_disk(&repo);
    let pack = *before.keys().min().unwrap();
    // Not in the index, and its header is damaged.
    let mut packs = before.clone();
    packs.remove(&pack);
    let old = repo.list_ids(FileType::Index).unwrap();
    repo.write_index_files(super::sorted_packs(packs), &old)
        .unwrap();
    repo.remove_files(FileType::Index, &old).unwrap();
    let mut raw = repo.backend().read(FileType::Pack, &pack.to_hex()).unwrap();
    let n = raw.len();
    raw[n - 10] ^= 0xff;
    overwrite(&repo, &pack, &raw);
    let repo = reopen(&repo);
    let events = parking_lot::Mutex::new(Vec::new());
    let s = repair_packs(&repo, &[pack], &RepairPacksOptions::default(), &|e| {
        events.lock().push(e)
    })
    .unwrap();
    assert_eq!(s.packs_without_blobs, vec![pack]);
    assert_eq!(s.blobs_salvaged, 0);
    assert_eq!(s.packs_written, 0);
    assert_eq!(s.packs_removed, 1);
    assert!(
        events
            .lock()
            .iter()
            .any(|e| matches!(e, PacksRepairEvent::NoBlobs { id, .. } if *id == pack))
    );
    let mut expected = before;
    expected.remove(&pack);
    assert_eq!(packs_on_disk(&repo), expected);
    assert!(!repo.list_ids(FileType::Pack).unwrap().contains(&pack));
}
