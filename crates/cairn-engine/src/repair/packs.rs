//! `repair packs`: copy every intact blob of damaged packs into new packs, rewrite the index
//! without the damaged packs, then remove them.

use super::sorted_packs;
use crate::{EngineError, Result};
use cairn_repo::backend::FileType;
use cairn_repo::pack::{PackBlob, parse_pack, read_blob};
use cairn_repo::repository::Repository;
use cairn_repo::{BlobType, Id};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;

/// Options of [`repair_packs`].
#[derive(Debug, Clone, Default)]
pub struct RepairPacksOptions {
    /// Save a copy of each pack as `pack-<id>` in this directory before anything else (restic
    /// saves them in the current directory); an existing copy is an error.
    pub backup_dir: Option<PathBuf>,
}

/// What [`repair_packs`] reports while it runs, in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacksRepairEvent {
    /// Saving backup copies starts.
    SavingBackups,
    /// A backup copy was written.
    BackupWritten {
        /// The pack.
        id: Id,
        /// Where its copy is.
        path: PathBuf,
    },
    /// Salvaging starts.
    Salvaging {
        /// Packs to salvage.
        count: usize,
    },
    /// The index does not list the pack, so its blobs are taken from its header.
    UsingPackHeader {
        /// The pack.
        id: Id,
    },
    /// Neither the index nor the pack header names any blob of the pack.
    NoBlobs {
        /// The pack.
        id: Id,
        /// Why the header did not help.
        error: String,
    },
    /// A blob could not be read, decrypted or verified.
    BlobFailed(DamagedBlob),
    /// One pack was processed.
    PackDone,
    /// Writing the new index starts.
    RebuildingIndex {
        /// Packs the new index describes.
        packs: usize,
    },
    /// Removing the replaced index files starts.
    RemovingOldIndexes {
        /// How many.
        count: usize,
    },
    /// Removing the damaged packs starts.
    RemovingPacks {
        /// How many.
        count: usize,
    },
    /// A damaged pack could not be removed (prune removes it later: it is in no index).
    RemoveFailed {
        /// The pack.
        id: Id,
        /// The error.
        error: String,
    },
}

/// A blob that could not be salvaged from a pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DamagedBlob {
    /// The damaged pack.
    pub pack: Id,
    /// `data` or `tree`.
    #[serde(rename = "type", serialize_with = "blob_type_str")]
    pub blob_type: BlobType,
    /// The blob.
    pub id: Id,
    /// What is wrong with it.
    pub error: String,
}

/// A blob by type and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct BlobRef {
    /// `data` or `tree`.
    #[serde(rename = "type", serialize_with = "blob_type_str")]
    pub blob_type: BlobType,
    /// The blob.
    pub id: Id,
}

fn blob_type_str<S: serde::Serializer>(t: &BlobType, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(t.as_str())
}

/// What [`repair_packs`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RepairPacksSummary {
    /// The packs repaired (and removed).
    pub packs: Vec<Id>,
    /// Backup copies written.
    pub backups: Vec<PathBuf>,
    /// Blobs copied into new packs.
    pub blobs_salvaged: usize,
    /// Packs neither the index nor their own header describe: nothing could be salvaged and
    /// what they held is unknown.
    pub packs_without_blobs: Vec<Id>,
    /// Blobs that could not be read from the damaged packs.
    pub blobs_damaged: Vec<DamagedBlob>,
    /// Damaged blobs with no intact copy anywhere in the repository: snapshots using them need
    /// `repair snapshots`.
    pub blobs_lost: Vec<BlobRef>,
    /// New pack files written.
    pub packs_written: u64,
    /// The new index files.
    pub index_files_written: Vec<Id>,
    /// Old index files removed.
    pub index_files_removed: usize,
    /// Damaged packs removed.
    pub packs_removed: usize,
}

/// Write `pack-<id>` into `dir`, refusing to overwrite an existing file.
fn save_backup(dir: &std::path::Path, id: &Id, data: &[u8]) -> Result<PathBuf> {
    let path = dir.join(format!("pack-{}", id.to_hex()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| EngineError::io(&path, e))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| EngineError::io(&path, e))?;
    Ok(path)
}

/// The sealed bytes of one blob in a pack held in memory, decrypted and verified.
fn open_blob(repo: &Repository, pack: &[u8], b: &PackBlob) -> std::result::Result<Vec<u8>, String> {
    let start = usize::try_from(b.offset).map_err(|e| e.to_string())?;
    let raw = start
        .checked_add(b.length as usize)
        .and_then(|end| pack.get(start..end))
        .ok_or_else(|| "blob extends beyond the end of the pack file".to_string())?;
    read_blob(repo.master_key(), raw, b).map_err(|e| e.to_string())
}

/// Salvage damaged packs (restic's `repair packs`).
///
/// The caller has loaded the index (`Repository::load_index`) and holds an exclusive lock.
/// Optionally saves a copy of each pack first; then reads each pack, stores every blob that
/// decrypts and verifies again in new packs (blobs are taken from the index entries of the
/// pack, or from its header when no index lists it), flushes, writes a complete new index
/// without the damaged packs superseding all old index files, removes the old index files,
/// and finally removes the damaged packs. A pack that cannot be read at all is an error
/// before anything is changed.
pub fn repair_packs(
    repo: &Repository,
    ids: &[Id],
    opts: &RepairPacksOptions,
    progress: &dyn Fn(PacksRepairEvent),
) -> Result<RepairPacksSummary> {
    let mut ids: Vec<Id> = ids.to_vec();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Err(EngineError::Invalid("no ids specified".into()));
    }
    let damaged_set: HashSet<Id> = ids.iter().copied().collect();
    let mut summary = RepairPacksSummary {
        packs: ids.clone(),
        ..Default::default()
    };
    let read_pack = |id: &Id| repo.backend().read(FileType::Pack, &id.to_hex());

    if let Some(dir) = &opts.backup_dir {
        progress(PacksRepairEvent::SavingBackups);
        for id in &ids {
            let data = read_pack(id)?;
            let path = save_backup(dir, id, &data)?;
            progress(PacksRepairEvent::BackupWritten {
                id: *id,
                path: path.clone(),
            });
            summary.backups.push(path);
        }
    }

    let mut indexed: HashMap<Id, Vec<PackBlob>> = HashMap::new();
    for (t, id, loc) in repo.index().iter() {
        if damaged_set.contains(&loc.pack_id) {
            indexed
                .entry(loc.pack_id)
                .or_default()
                .push(loc.to_pack_blob(t, id));
        }
    }

    progress(PacksRepairEvent::Salvaging { count: ids.len() });
    let packs_before = repo.save_stats().packs;
    for id in &ids {
        let data = read_pack(id)?;
        let mut blobs = match indexed.remove(id) {
            Some(b) => b,
            None => {
                progress(PacksRepairEvent::UsingPackHeader { id: *id });
                match parse_pack(repo.master_key(), &data, &id.to_hex(), repo.version()) {
                    Ok(b) => b,
                    Err(e) => {
                        summary.packs_without_blobs.push(*id);
                        progress(PacksRepairEvent::NoBlobs {
                            id: *id,
                            error: e.to_string(),
                        });
                        progress(PacksRepairEvent::PackDone);
                        continue;
                    }
                }
            }
        };
        blobs.sort_by_key(|b| (b.offset, b.length));
        for b in &blobs {
            match open_blob(repo, &data, b) {
                Ok(plain) => {
                    repo.save_blob_again(b.blob_type, b.id, &plain)?;
                    summary.blobs_salvaged += 1;
                }
                Err(error) => {
                    let d = DamagedBlob {
                        pack: *id,
                        blob_type: b.blob_type,
                        id: b.id,
                        error,
                    };
                    progress(PacksRepairEvent::BlobFailed(d.clone()));
                    summary.blobs_damaged.push(d);
                }
            }
        }
        progress(PacksRepairEvent::PackDone);
    }
    repo.flush()?;
    summary.packs_written = repo.save_stats().packs - packs_before;

    // Which damaged blobs survive elsewhere (another pack, or salvaged from another copy).
    let mut lost: Vec<BlobRef> = {
        let index = repo.index();
        summary
            .blobs_damaged
            .iter()
            .filter(|d| {
                !index
                    .get_all(d.blob_type, &d.id)
                    .iter()
                    .any(|l| !damaged_set.contains(&l.pack_id))
            })
            .map(|d| BlobRef {
                blob_type: d.blob_type,
                id: d.id,
            })
            .collect()
    };
    lost.sort();
    lost.dedup();
    summary.blobs_lost = lost;

    let old_index_files = repo.list_ids(FileType::Index)?;
    let mut packs = repo.index().packs();
    packs.retain(|id, _| !damaged_set.contains(id));
    progress(PacksRepairEvent::RebuildingIndex { packs: packs.len() });
    let written = repo.write_index_files(sorted_packs(packs), &old_index_files)?;
    let obsolete: Vec<Id> = old_index_files
        .iter()
        .filter(|id| !written.contains(id))
        .copied()
        .collect();
    progress(PacksRepairEvent::RemovingOldIndexes {
        count: obsolete.len(),
    });
    repo.remove_files(FileType::Index, &obsolete)?;
    summary.index_files_removed = obsolete.len();
    summary.index_files_written = written;

    progress(PacksRepairEvent::RemovingPacks { count: ids.len() });
    for id in &ids {
        match repo.backend().remove(FileType::Pack, &id.to_hex()) {
            Ok(()) => summary.packs_removed += 1,
            Err(e) if e.is_not_found() => {}
            Err(e) => progress(PacksRepairEvent::RemoveFailed {
                id: *id,
                error: e.to_string(),
            }),
        }
    }
    Ok(summary)
}
