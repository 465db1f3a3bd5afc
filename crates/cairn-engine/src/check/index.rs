//! Phases 1 and 2: load every index file (reporting damaged ones, duplicate, incomplete and
//! mixed packs), then compare the packs the index lists with the packs stored.

use super::{CheckProgress, Problem, ProblemKind, Reporter, Subject};
use crate::Result;
use cairn_repo::backend::FileType;
use cairn_repo::index::{Index, IndexFile};
use cairn_repo::pack::{HEADER_ENTRY_COMPRESSED, HEADER_ENTRY_PLAIN, TRAILER_SIZE};
use cairn_repo::repository::Repository;
use cairn_repo::{BlobType, Id};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Sealing overhead of the pack header (IV + MAC).
const HEADER_OVERHEAD: u64 = 32;

/// The result of loading the index files.
pub(super) struct Loaded {
    /// Union of all readable index files.
    pub index: Index,
    /// Pack id → size computed from its index entries (header + trailer + sealed blobs).
    pub sizes: HashMap<Id, u64>,
    /// Pack id → number of index entries.
    pub counts: HashMap<Id, usize>,
    /// Index files read successfully.
    pub files: usize,
    /// Some index file could not be used: later phases must not run.
    pub damaged: bool,
}

/// What the index files say about one pack.
#[derive(Default)]
struct PackInfo {
    /// Index files listing the pack.
    indexes: Vec<Id>,
    /// Distinct hashes of the pack's blob list, one per differing index file.
    hashes: Vec<Id>,
}

/// Hash of a pack's entries in one index file (order-independent), to find index files that
/// disagree about a pack.
fn entries_hash(p: &cairn_repo::index::IndexPack) -> Id {
    let mut v: Vec<_> = p
        .blobs
        .iter()
        .map(|b| {
            (
                b.blob_type == BlobType::Tree,
                b.id,
                b.offset,
                b.length,
                b.uncompressed_length.unwrap_or(0),
            )
        })
        .collect();
    v.sort();
    v.dedup();
    let mut buf = Vec::with_capacity(v.len() * 45);
    for (t, id, off, len, ul) in v {
        buf.push(u8::from(t));
        buf.extend_from_slice(&id.0);
        buf.extend_from_slice(&off.to_le_bytes());
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(&ul.to_le_bytes());
    }
    Id::hash(&buf)
}

fn ids_list(ids: &[Id]) -> String {
    let v: Vec<String> = ids.iter().map(Id::to_hex).collect();
    format!("{{{}}}", v.join(" "))
}

/// Load and parse one index file, refusing compressed entries in a version 1 repository.
fn load_one(repo: &Repository, id: &Id) -> std::result::Result<IndexFile, String> {
    let json = repo
        .load_unpacked(FileType::Index, id)
        .map_err(|e| e.to_string())?;
    let f = IndexFile::from_json(&json).map_err(|e| e.to_string())?;
    if repo.version() < 2 && f.has_compressed() {
        return Err("index uses feature not supported by repository version 1".into());
    }
    Ok(f)
}

/// Phase 1: load all index files in parallel into a fresh [`Index`].
pub(super) fn load(
    repo: &Repository,
    threads: usize,
    progress: &CheckProgress,
    rep: &Reporter<'_>,
) -> Result<Loaded> {
    let ids = repo.list_ids(FileType::Index)?;
    progress.add_total(ids.len() as u64);
    struct Acc {
        index: Index,
        packs: HashMap<Id, PackInfo>,
        files: usize,
        damaged: bool,
    }
    let acc = parking_lot::Mutex::new(Acc {
        index: Index::new(),
        packs: HashMap::new(),
        files: 0,
        damaged: false,
    });
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads.min(ids.len()).max(1) {
            s.spawn(|| {
                while let Some(id) = ids.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let loaded = load_one(repo, id);
                    progress.add_done(1);
                    let f = match loaded {
                        Ok(f) => f,
                        Err(e) => {
                            acc.lock().damaged = true;
                            rep.report(Problem::new(
                                ProblemKind::IndexUnreadable,
                                Some(Subject::Index(*id)),
                                format!("error loading index {id}: {e}"),
                            ));
                            continue;
                        }
                    };
                    let hashes: Vec<(Id, Id)> =
                        f.packs.iter().map(|p| (p.id, entries_hash(p))).collect();
                    let mut a = acc.lock();
                    for (pack, h) in hashes {
                        let info = a.packs.entry(pack).or_default();
                        if !info.indexes.contains(id) {
                            info.indexes.push(*id);
                        }
                        if !info.hashes.contains(&h) {
                            info.hashes.push(h);
                        }
                    }
                    a.index.add_index_file(&f);
                    a.files += 1;
                }
            });
        }
    });
    let Acc {
        mut index,
        packs,
        files,
        damaged,
    } = acc.into_inner();
    index.compact();

    // Sizes and blob types per pack, from the merged index (duplicate entries count once).
    let mut sizes: HashMap<Id, u64> = HashMap::new();
    let mut types: HashMap<Id, (bool, bool)> = HashMap::new();
    let mut counts: HashMap<Id, usize> = HashMap::new();
    for (t, _, loc) in index.iter() {
        let entry = if loc.uncompressed_length.is_some() {
            HEADER_ENTRY_COMPRESSED
        } else {
            HEADER_ENTRY_PLAIN
        } as u64;
        *sizes
            .entry(loc.pack_id)
            .or_insert(HEADER_OVERHEAD + TRAILER_SIZE as u64) += entry + u64::from(loc.length);
        *counts.entry(loc.pack_id).or_default() += 1;
        let ty = types.entry(loc.pack_id).or_default();
        match t {
            BlobType::Data => ty.0 = true,
            BlobType::Tree => ty.1 = true,
        }
    }

    let mut pack_ids: Vec<&Id> = sizes.keys().collect();
    pack_ids.sort();
    for pack in pack_ids {
        if let Some(info) = packs.get(pack) {
            let mut idx = info.indexes.clone();
            idx.sort();
            if info.hashes.len() > 1 {
                let mut p = Problem::new(
                    ProblemKind::IncompletePack,
                    Some(Subject::Pack(*pack)),
                    format!(
                        "pack {pack} has different data in indexes: {}",
                        ids_list(&idx)
                    ),
                );
                p.salvage = true;
                rep.report(p);
            } else if idx.len() > 1 {
                rep.report(Problem::new(
                    ProblemKind::DuplicatePack,
                    Some(Subject::Pack(*pack)),
                    format!(
                        "pack {pack} contained in several indexes: {}",
                        ids_list(&idx)
                    ),
                ));
            }
        }
        if types.get(pack) == Some(&(true, true)) {
            rep.report(Problem::new(
                ProblemKind::MixedPack,
                Some(Subject::Pack(*pack)),
                format!(
                    "pack {} contains a mix of tree and data blobs",
                    pack.short()
                ),
            ));
        }
    }
    Ok(Loaded {
        index,
        sizes,
        counts,
        files,
        damaged,
    })
}

/// Phase 2: every indexed pack must exist with the computed size; stored packs not in the
/// index are reported as hints. Returns the stored size of every indexed pack that exists.
pub(super) fn check_packs(
    repo: &Repository,
    sizes: &HashMap<Id, u64>,
    rep: &Reporter<'_>,
) -> Result<HashMap<Id, u64>> {
    let mut stored: HashMap<Id, u64> = HashMap::new();
    match repo.backend().list(FileType::Pack) {
        Ok(list) => {
            for (name, size) in list {
                if let Some(id) = Id::from_name(&name) {
                    stored.insert(id, size);
                }
            }
        }
        Err(e) => rep.report(Problem::new(
            ProblemKind::ListFailed,
            None,
            format!("listing packs failed: {e}"),
        )),
    }
    let mut indexed: Vec<(&Id, &u64)> = sizes.iter().collect();
    indexed.sort();
    let mut present = HashMap::with_capacity(indexed.len());
    for (id, &want) in indexed {
        let got = stored.remove(id);
        if let Some(got) = got {
            present.insert(*id, got);
        }
        match got {
            None => {
                let mut p = Problem::new(
                    ProblemKind::PackMissing,
                    Some(Subject::Pack(*id)),
                    format!("pack {id}: does not exist"),
                );
                p.salvage = true;
                rep.report(p);
            }
            Some(got) if got != want => {
                let mut p = Problem::new(
                    ProblemKind::PackSize,
                    Some(Subject::Pack(*id)),
                    format!("pack {id}: unexpected file size: got {got}, expected {want}"),
                );
                p.salvage = true;
                rep.report(p);
            }
            Some(_) => {}
        }
    }
    let mut orphans: Vec<Id> = stored.into_keys().collect();
    orphans.sort();
    for id in orphans {
        rep.report(Problem::new(
            ProblemKind::PackOrphaned,
            Some(Subject::Pack(id)),
            format!("pack {id}: not referenced in any index"),
        ));
    }
    Ok(present)
}
