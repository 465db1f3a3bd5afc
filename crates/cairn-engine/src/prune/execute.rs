//! Executing a prune plan in crash-safe order:
//!
//! 1. remove the unreferenced packs (no index mentions them: nothing can depend on them);
//! 2. repack (new packs are written, not yet indexed);
//! 3. write index files for every surviving pack, superseding all current index files;
//! 4. remove the superseded index files;
//! 5. remove the repacked and unused packs.
//!
//! An interruption leaves extra unreferenced packs (during or after 2, or during 5) or
//! duplicate index entries (after 3); both are accepted by `restic check` and cleaned up by the
//! next prune.

use super::plan::PrunePlan;
use super::repack::{self, StoreMode};
use super::{IdHash, IdMap, IdSet, Phase, PruneOptions, PruneProgress};
use crate::Result;
use cairn_repo::Id;
use cairn_repo::backend::FileType;
use cairn_repo::pack::PackBlob;
use cairn_repo::repository::Repository;

/// Files removed per batch (progress granularity).
const REMOVE_BATCH: usize = 64;

/// What an executed prune did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExecuteStats {
    /// Unreferenced packs removed.
    pub unreferenced_removed: u64,
    /// Packs repacked.
    pub repacked: u64,
    /// New packs written by repacking.
    pub packs_written: u64,
    /// Blobs stored again by repacking.
    pub blobs_repacked: u64,
    /// Index files written.
    pub index_files_written: u64,
    /// Index files removed.
    pub index_files_removed: u64,
    /// Repacked and unused packs removed.
    pub packs_removed: u64,
    /// Removals that failed (left for the next prune).
    pub remove_failures: u64,
}

/// Remove files in batches, reporting progress; returns the number of failed batches'
/// files (or the first error when `fatal`).
fn remove_all(
    repo: &Repository,
    t: FileType,
    ids: &[Id],
    phase: Phase,
    fatal: bool,
    progress: &dyn PruneProgress,
) -> Result<u64> {
    let mut failed = 0u64;
    for chunk in ids.chunks(REMOVE_BATCH) {
        match repo.remove_files(t, chunk) {
            Ok(()) => {}
            Err(e) if !fatal => {
                progress.warn(&format!("unable to remove some {} files: {e}", t.name()));
                failed += chunk.len() as u64;
            }
            Err(e) => return Err(e.into()),
        }
        progress.advance(phase, chunk.len() as u64);
    }
    Ok(failed)
}

/// Index entries grouped per pass when writing the new index (bounds the memory of the
/// pack → blobs lists to this many entries, instead of a copy of the whole index).
const INDEX_PASS_BLOBS: usize = 250_000;

/// Write index files for every indexed pack not in `obsolete`, plus `new_packs`, superseding
/// `old`. Packs are grouped by the first byte of their id, one pass over the index per group.
fn write_new_index(
    repo: &Repository,
    obsolete: &IdSet,
    new_packs: Vec<(Id, Vec<PackBlob>)>,
    old: &[Id],
) -> Result<Vec<Id>> {
    let index = repo.index();
    let groups = (index.len() / INDEX_PASS_BLOBS + 1).min(256);
    let group_of = |id: &Id| usize::from(id.0[0]) * groups / 256;
    let mut extra: Vec<Vec<(Id, Vec<PackBlob>)>> = (0..groups).map(|_| Vec::new()).collect();
    for p in new_packs {
        if let Some(g) = extra.get_mut(group_of(&p.0)) {
            g.push(p);
        }
    }
    let mut written = Vec::new();
    for (g, extra) in extra.into_iter().enumerate() {
        let mut packs: IdMap<Vec<PackBlob>> = IdMap::with_hasher(IdHash);
        for (t, id, loc) in index.iter() {
            if group_of(&loc.pack_id) == g && !obsolete.contains(&loc.pack_id) {
                packs
                    .entry(loc.pack_id)
                    .or_default()
                    .push(loc.to_pack_blob(t, id));
            }
        }
        let mut packs: Vec<(Id, Vec<PackBlob>)> = packs.into_iter().chain(extra).collect();
        packs.sort_by_key(|p| p.0);
        for (_, blobs) in &mut packs {
            blobs.sort_by_key(|b| b.offset);
        }
        written.extend(repo.write_index_files(packs, old)?);
    }
    Ok(written)
}

/// Execute `plan` on `repo` (holding an exclusive lock). See the module documentation for the
/// order of the steps; [`PruneProgress::done`] is called after each one.
pub fn execute(
    repo: &Repository,
    plan: PrunePlan,
    opts: &PruneOptions,
    progress: &dyn PruneProgress,
) -> Result<ExecuteStats> {
    let mut st = ExecuteStats::default();
    let obsolete = plan.obsolete_packs();
    let PrunePlan {
        remove_first,
        repack: to_repack,
        remove,
        keep,
        ..
    } = plan;

    if !remove_first.is_empty() {
        progress.start(Phase::RemoveUnreferenced, remove_first.len() as u64);
        let failed = remove_all(
            repo,
            FileType::Pack,
            &remove_first,
            Phase::RemoveUnreferenced,
            false,
            progress,
        )?;
        st.unreferenced_removed = remove_first.len() as u64 - failed;
        st.remove_failures += failed;
        progress.done(Phase::RemoveUnreferenced);
    }

    let mut new_packs = Vec::new();
    if !to_repack.is_empty() {
        progress.start(Phase::Repack, to_repack.len() as u64);
        let pack_size = usize::try_from(opts.pack_size).unwrap_or(usize::MAX);
        let mut mode = StoreMode::new(repo.version(), opts.compression, pack_size);
        mode.compress_all = opts.repack_uncompressed;
        new_packs = repack::repack(repo, &to_repack, keep, mode, progress)?;
        st.repacked = to_repack.len() as u64;
        st.packs_written = new_packs.len() as u64;
        st.blobs_repacked = to_repack.iter().map(|p| p.blobs.len() as u64).sum();
        progress.done(Phase::Repack);
    }

    if !obsolete.is_empty() {
        progress.start(Phase::WriteIndex, 0);
        let old = repo.list_ids(FileType::Index)?;
        let written = write_new_index(repo, &obsolete, new_packs, &old)?;
        st.index_files_written = written.len() as u64;
        progress.done(Phase::WriteIndex);

        progress.start(Phase::RemoveIndex, old.len() as u64);
        let stale: Vec<Id> = old.into_iter().filter(|id| !written.contains(id)).collect();
        remove_all(
            repo,
            FileType::Index,
            &stale,
            Phase::RemoveIndex,
            true,
            progress,
        )?;
        st.index_files_removed = stale.len() as u64;
        progress.done(Phase::RemoveIndex);
    }

    let mut doomed: Vec<Id> = remove;
    doomed.extend(to_repack.iter().map(|p| p.id));
    if !doomed.is_empty() {
        progress.start(Phase::RemovePacks, doomed.len() as u64);
        let failed = remove_all(
            repo,
            FileType::Pack,
            &doomed,
            Phase::RemovePacks,
            false,
            progress,
        )?;
        st.packs_removed = doomed.len() as u64 - failed;
        st.remove_failures += failed;
        progress.done(Phase::RemovePacks);
    }
    Ok(st)
}
