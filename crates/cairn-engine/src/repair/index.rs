//! `repair index`: build a complete new index from the index files that still decode and the
//! headers of the packs they do not describe correctly.

use super::{pack_size_from_index, sorted_packs};
use crate::Result;
use cairn_repo::backend::FileType;
use cairn_repo::index::{Index, IndexFile};
use cairn_repo::pack::{PackBlob, read_pack_header};
use cairn_repo::repository::{Repository, parallel_map};
use cairn_repo::{Id, RepoError};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// Index files loaded at once (bounds the memory of decoded JSON).
const INDEX_BATCH: usize = 64;

/// Options of [`repair_index`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RepairIndexOptions {
    /// Ignore the existing index and read the header of every pack (`--read-all-packs`).
    pub read_all_packs: bool,
}

/// What [`repair_index`] reports while it runs, in this order (the CLI prints them like
/// restic does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexRepairEvent {
    /// Loading the existing index files starts (not sent with `read_all_packs`).
    LoadingIndexes,
    /// An index file could not be read, decrypted or decoded; it is dropped and replaced.
    InvalidIndex {
        /// The index file.
        id: Id,
        /// Why it was rejected.
        error: String,
    },
    /// Listing the pack files starts.
    ListingPacks,
    /// A pack file no index describes; its header will be read.
    PackNotIndexed {
        /// The pack.
        id: Id,
    },
    /// A pack whose size differs from the size computed from the index; re-read.
    PackSizeMismatch {
        /// The pack.
        id: Id,
        /// Its real size.
        size: u64,
        /// The size its index entries imply.
        indexed_size: u64,
    },
    /// A pack listed in the index that does not exist; its entries are dropped.
    PackMissing {
        /// The pack.
        id: Id,
    },
    /// Reading pack headers starts.
    ReadingPacks {
        /// How many headers will be read.
        count: usize,
    },
    /// One pack header was read (or failed); sent from worker threads.
    PackRead,
    /// A pack header could not be read or is invalid; the pack is left out of the index.
    PackUnreadable {
        /// The pack.
        id: Id,
        /// What is wrong with it.
        error: String,
    },
    /// Writing the new index files starts.
    RebuildingIndex {
        /// Packs the new index describes.
        packs: usize,
    },
    /// Removing the replaced index files starts.
    RemovingOldIndexes {
        /// How many.
        count: usize,
    },
}

/// An unreadable pack and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnreadablePack {
    /// The pack.
    pub id: Id,
    /// What is wrong with it.
    pub error: String,
}

/// What [`repair_index`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RepairIndexSummary {
    /// Index files that loaded.
    pub index_files_loaded: usize,
    /// Index files that were dropped because they could not be read or decoded.
    pub invalid_index_files: Vec<Id>,
    /// Pack files in the repository.
    pub pack_files: usize,
    /// Packs no index described (their headers were read).
    pub packs_not_indexed: Vec<Id>,
    /// Packs whose size did not match their index entries (their headers were read).
    pub packs_size_mismatch: Vec<Id>,
    /// Packs in the index that do not exist (dropped from the index).
    pub packs_missing: Vec<Id>,
    /// Pack headers read.
    pub packs_read: usize,
    /// Packs whose header could not be read (left out of the index; the files remain).
    pub packs_unreadable: Vec<UnreadablePack>,
    /// Packs in the new index.
    pub packs_indexed: usize,
    /// Blob entries in the new index.
    pub blobs_indexed: usize,
    /// The new index files.
    pub index_files_written: Vec<Id>,
    /// Old index files removed.
    pub index_files_removed: usize,
}

/// Load and decode one index file (an index with compressed entries in a version 1
/// repository is invalid, as when loading the index normally).
fn load_index_file(repo: &Repository, id: &Id) -> Result<IndexFile, RepoError> {
    let json = repo.load_unpacked(FileType::Index, id)?;
    let f = IndexFile::from_json(&json)
        .map_err(|e| RepoError::corrupt(format!("index {}", id.to_hex()), e))?;
    if repo.version() < 2 && f.has_compressed() {
        return Err(RepoError::corrupt(
            format!("index {}", id.to_hex()),
            "compressed blobs in a version 1 repository",
        ));
    }
    Ok(f)
}

/// Whether a failure to read a pack header means the pack is unusable (left out of the index)
/// rather than a problem of the storage that should stop the repair.
fn pack_is_unusable(e: &RepoError) -> bool {
    match e {
        RepoError::Corrupt { .. } => true,
        RepoError::Backend(b) => b.is_not_found(),
        _ => false,
    }
}

/// Rebuild the index (restic's `repair index`, formerly `rebuild-index`).
///
/// Loads every index file (undecodable ones are reported and replaced), lists the pack files,
/// reads the headers of packs the index does not describe or describes with the wrong size
/// (of all packs with `read_all_packs`), drops entries of packs that no longer exist, writes
/// a complete new index superseding all old index files, and only then removes the old ones.
/// Packs whose header cannot be read are reported and left out of the index; storage errors
/// other than a vanished file abort the repair before anything is written. The caller holds an
/// exclusive lock.
pub fn repair_index(
    repo: &Repository,
    opts: RepairIndexOptions,
    progress: &(dyn Fn(IndexRepairEvent) + Sync),
) -> Result<RepairIndexSummary> {
    let mut summary = RepairIndexSummary::default();
    let old_index_files = repo.list_ids(FileType::Index)?;
    let mut known: HashMap<Id, Vec<PackBlob>> = HashMap::new();
    if !opts.read_all_packs {
        progress(IndexRepairEvent::LoadingIndexes);
        let mut index = Index::new();
        for batch in old_index_files.chunks(INDEX_BATCH) {
            let loaded = parallel_map(batch, |id| Ok(load_index_file(repo, id)))?;
            for (id, r) in batch.iter().zip(loaded) {
                match r {
                    Ok(f) => {
                        index.add_index_file(&f);
                        summary.index_files_loaded += 1;
                    }
                    Err(e) => {
                        progress(IndexRepairEvent::InvalidIndex {
                            id: *id,
                            error: e.to_string(),
                        });
                        summary.invalid_index_files.push(*id);
                    }
                }
            }
        }
        known = index.packs();
    }

    progress(IndexRepairEvent::ListingPacks);
    let mut listed: Vec<(Id, u64)> = repo
        .backend()
        .list(FileType::Pack)?
        .into_iter()
        .filter_map(|(name, size)| Id::from_name(&name).map(|id| (id, size)))
        .collect();
    listed.sort();
    summary.pack_files = listed.len();
    let mut to_read: Vec<(Id, u64)> = Vec::new();
    let mut seen: HashSet<Id> = HashSet::with_capacity(listed.len());
    for &(id, size) in &listed {
        seen.insert(id);
        match known.get(&id) {
            None => {
                if !opts.read_all_packs {
                    progress(IndexRepairEvent::PackNotIndexed { id });
                    summary.packs_not_indexed.push(id);
                }
                to_read.push((id, size));
            }
            Some(blobs) => {
                let indexed_size = pack_size_from_index(blobs);
                if indexed_size != size {
                    progress(IndexRepairEvent::PackSizeMismatch {
                        id,
                        size,
                        indexed_size,
                    });
                    summary.packs_size_mismatch.push(id);
                    known.remove(&id);
                    to_read.push((id, size));
                }
            }
        }
    }
    let mut missing: Vec<Id> = known
        .keys()
        .filter(|id| !seen.contains(id))
        .copied()
        .collect();
    missing.sort();
    for id in &missing {
        progress(IndexRepairEvent::PackMissing { id: *id });
        known.remove(id);
    }
    summary.packs_missing = missing;

    if !to_read.is_empty() {
        progress(IndexRepairEvent::ReadingPacks {
            count: to_read.len(),
        });
        let key = repo.master_key();
        let version = repo.version();
        let headers = parallel_map(&to_read, |(id, size)| {
            let r = read_pack_header(&**repo.backend(), key, &id.to_hex(), *size, version);
            progress(IndexRepairEvent::PackRead);
            match r {
                Ok(blobs) => Ok(Ok(blobs)),
                Err(e) if pack_is_unusable(&e) => Ok(Err(e.to_string())),
                Err(e) => Err(e),
            }
        })?;
        summary.packs_read = to_read.len();
        for ((id, _), r) in to_read.iter().zip(headers) {
            match r {
                Ok(blobs) => {
                    known.insert(*id, blobs);
                }
                Err(error) => {
                    progress(IndexRepairEvent::PackUnreadable {
                        id: *id,
                        error: error.clone(),
                    });
                    summary
                        .packs_unreadable
                        .push(UnreadablePack { id: *id, error });
                }
            }
        }
    }

    progress(IndexRepairEvent::RebuildingIndex { packs: known.len() });
    summary.packs_indexed = known.len();
    summary.blobs_indexed = known.values().map(Vec::len).sum();
    let written = repo.write_index_files(sorted_packs(known), &old_index_files)?;
    let obsolete: Vec<Id> = old_index_files
        .iter()
        .filter(|id| !written.contains(id))
        .copied()
        .collect();
    progress(IndexRepairEvent::RemovingOldIndexes {
        count: obsolete.len(),
    });
    repo.remove_files(FileType::Index, &obsolete)?;
    summary.index_files_removed = obsolete.len();
    summary.index_files_written = written;
    Ok(summary)
}
