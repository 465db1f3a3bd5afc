//! The prune planner (restic's `packInfoFromIndex` + `decidePackAction`): a pure function of
//! the index, the used blobs and the pack files present, deciding which packs to keep, repack
//! or remove, with restic's statistics.

use super::used::UsedBlobs;
use super::{IdHash, IdMap, IdSet, PruneOptions};
use crate::{EngineError, Result};
use cairn_repo::crypto::OVERHEAD;
use cairn_repo::index::Index;
use cairn_repo::pack::{PackBlob, TRAILER_SIZE};
use cairn_repo::{BlobType, Id};
use std::collections::HashSet;

/// Blob counts of a prune plan (restic's `blobs` statistics).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BlobStats {
    /// Used blobs (one copy each).
    pub used: u64,
    /// Extra copies of used blobs.
    pub duplicate: u64,
    /// Blobs no snapshot uses.
    pub unused: u64,
    /// Blobs in packs that are removed as a whole.
    pub remove: u64,
    /// Blobs in packs to repack.
    pub repack: u64,
    /// Unused blobs dropped by repacking.
    pub repack_remove: u64,
}

/// Byte counts of a prune plan (sealed blob sizes from the index; pack headers count towards
/// the used size of their pack, as in restic).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SizeStats {
    /// Bytes of used blobs.
    pub used: u64,
    /// Bytes of duplicate copies.
    pub duplicate: u64,
    /// Bytes of unused blobs.
    pub unused: u64,
    /// Bytes of unused blobs in packs removed as a whole.
    pub remove: u64,
    /// Bytes of the packs to repack.
    pub repack: u64,
    /// Unused bytes dropped by repacking.
    pub repack_remove: u64,
    /// Bytes of pack files that no index references.
    pub unreferenced: u64,
    /// Bytes of kept packs that hold uncompressed blobs (v2 only).
    pub uncompressed: u64,
}

/// Pack counts of a prune plan.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PackStats {
    /// Packs whose blobs are all used.
    pub used: u64,
    /// Packs without used blobs.
    pub unused: u64,
    /// Packs with used and unused blobs.
    pub partly_used: u64,
    /// Pack files no index references.
    pub unreferenced: u64,
    /// Packs kept as they are.
    pub keep: u64,
    /// Packs to repack.
    pub repack: u64,
    /// Packs removed as a whole (unused).
    pub remove: u64,
}

/// All statistics of a prune plan.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PruneStats {
    /// Blob counts.
    pub blobs: BlobStats,
    /// Byte counts.
    pub size: SizeStats,
    /// Pack counts.
    pub packs: PackStats,
}

impl PruneStats {
    /// All indexed blobs (every copy).
    pub fn total_blobs(&self) -> u64 {
        self.blobs.used + self.blobs.unused + self.blobs.duplicate
    }
    /// All bytes, including unreferenced packs.
    pub fn total_size(&self) -> u64 {
        self.size.used + self.size.duplicate + self.size.unused + self.size.unreferenced
    }
    /// Unused bytes before pruning (duplicates included).
    pub fn unused_size(&self) -> u64 {
        self.size.duplicate + self.size.unused
    }
    /// Blobs removed in total.
    pub fn remove_total_blobs(&self) -> u64 {
        self.blobs.remove + self.blobs.repack_remove
    }
    /// Bytes removed in total.
    pub fn remove_total_size(&self) -> u64 {
        self.size.remove + self.size.repack_remove + self.size.unreferenced
    }
    /// Blobs remaining.
    pub fn remaining_blobs(&self) -> u64 {
        self.total_blobs().saturating_sub(self.remove_total_blobs())
    }
    /// Bytes remaining.
    pub fn remaining_size(&self) -> u64 {
        self.total_size().saturating_sub(self.remove_total_size())
    }
    /// Unused bytes remaining.
    pub fn remaining_unused_size(&self) -> u64 {
        self.unused_size()
            .saturating_sub(self.size.remove + self.size.repack_remove)
    }
    /// Pack files in total.
    pub fn total_packs(&self) -> u64 {
        self.packs.used + self.packs.partly_used + self.packs.unused + self.packs.unreferenced
    }
    /// Pack files removed in total.
    pub fn remove_total_packs(&self) -> u64 {
        self.packs.unreferenced + self.packs.remove
    }
}

/// A pack to repack and the blobs to copy out of it (sorted by offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepackPack {
    /// The pack.
    pub id: Id,
    /// Its size from the index.
    pub size: u64,
    /// Blobs that must survive and exist in no kept pack.
    pub blobs: Vec<PackBlob>,
}

/// What prune will do.
#[derive(Debug, Default, Clone)]
pub struct PrunePlan {
    /// Statistics (what restic prints).
    pub stats: PruneStats,
    /// Pack files no index references: removed first.
    pub remove_first: Vec<Id>,
    /// Packs to repack, in the order they were chosen.
    pub repack: Vec<RepackPack>,
    /// Packs without used blobs: removed.
    pub remove: Vec<Id>,
    /// Indexed packs missing from the backend that hold nothing used: dropped from the index.
    pub ignore: Vec<Id>,
    /// Blobs to copy while repacking (each exactly once, though it may be in several packs).
    pub keep: HashSet<(BlobType, Id), IdHash>,
}

impl PrunePlan {
    /// True if executing the plan would change nothing.
    pub fn is_noop(&self) -> bool {
        self.remove_first.is_empty()
            && self.repack.is_empty()
            && self.remove.is_empty()
            && self.ignore.is_empty()
    }

    /// Packs that disappear from the index (repacked, removed, ignored).
    pub fn obsolete_packs(&self) -> IdSet {
        let mut s = IdSet::with_hasher(IdHash);
        s.extend(self.repack.iter().map(|p| p.id));
        s.extend(self.remove.iter().copied());
        s.extend(self.ignore.iter().copied());
        s
    }
}

/// Blob types found in a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Unset,
    Data,
    Tree,
    Mixed,
}

#[derive(Debug, Clone, Copy)]
struct PackInfo {
    used_blobs: u64,
    unused_blobs: u64,
    duplicate_blobs: u64,
    used_size: u64,
    unused_size: u64,
    kind: Kind,
    uncompressed: bool,
}

impl PackInfo {
    fn size(&self) -> u64 {
        self.used_size + self.unused_size
    }
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    id: Id,
    info: PackInfo,
    must_compress: bool,
}

/// Classify every indexed blob and every pack, and choose what to repack and remove
/// (restic's rules; see the module documentation of [`super`]). `packs` is the backend
/// listing of pack files with their sizes.
pub fn plan_packs(
    index: &Index,
    mut used: UsedBlobs,
    packs: &[(Id, u64)],
    opts: &PruneOptions,
    version: u32,
) -> Result<PrunePlan> {
    let mut stats = PruneStats::default();

    // Count the indexed copies of every used blob (saturating at 255).
    for (t, id, _) in index.iter() {
        if let Some(c) = used.map_mut(t).get_mut(&id) {
            *c = c.saturating_add(1);
        }
    }
    let mut missing: Vec<String> = Vec::new();
    for t in [BlobType::Data, BlobType::Tree] {
        for (id, c) in used.map(t) {
            if *c == 0 {
                missing.push(format!("{}/{}", t.as_str(), id.short()));
            }
        }
    }
    if !missing.is_empty() {
        missing.sort();
        let n = missing.len();
        missing.truncate(20);
        return Err(EngineError::Invalid(format!(
            "{n} used blob(s) not found in the index ({}{})\n\nIntegrity check failed: Data seems to be missing.\nWill not start prune to prevent (additional) data loss!\nindex is not complete",
            missing.join(", "),
            if n > 20 { ", ..." } else { "" }
        )));
    }

    // Per pack: header size first (counted as used), then the blobs.
    let mut info: IdMap<PackInfo> = IdMap::with_hasher(IdHash);
    for (_, _, loc) in index.iter() {
        let entry = if loc.uncompressed_length.is_some() {
            cairn_repo::pack::HEADER_ENTRY_COMPRESSED
        } else {
            cairn_repo::pack::HEADER_ENTRY_PLAIN
        } as u64;
        info.entry(loc.pack_id)
            .or_insert(PackInfo {
                used_blobs: 0,
                unused_blobs: 0,
                duplicate_blobs: 0,
                used_size: (OVERHEAD + TRAILER_SIZE) as u64,
                unused_size: 0,
                kind: Kind::Unset,
                uncompressed: false,
            })
            .used_size += entry;
    }
    let mut has_duplicates = false;
    for (t, id, loc) in index.iter() {
        let Some(ip) = info.get_mut(&loc.pack_id) else {
            continue;
        };
        let kind = match t {
            BlobType::Data => Kind::Data,
            BlobType::Tree => Kind::Tree,
        };
        if ip.kind == Kind::Unset {
            ip.kind = kind;
        } else if ip.kind != kind {
            ip.kind = Kind::Mixed;
        }
        let size = u64::from(loc.length);
        match used.map(t).get(&id).copied().unwrap_or(0) {
            c if c >= 2 => {
                has_duplicates = true;
                ip.unused_size += size;
                ip.unused_blobs += 1;
                ip.duplicate_blobs += 1;
                stats.size.duplicate += size;
                stats.blobs.duplicate += 1;
            }
            1 => {
                ip.used_size += size;
                ip.used_blobs += 1;
                stats.size.used += size;
                stats.blobs.used += 1;
            }
            _ => {
                ip.unused_size += size;
                ip.unused_blobs += 1;
                stats.size.unused += size;
                stats.blobs.unused += 1;
            }
        }
        if loc.uncompressed_length.is_none() {
            ip.uncompressed = true;
        }
    }

    // Choose one copy of each duplicate blob: one in a pack that has other used blobs or
    // consists only of duplicates (a pack written by an interrupted prune), else the last.
    if has_duplicates {
        for (t, id, loc) in index.iter() {
            let Some(count) = used.map_mut(t).get_mut(&id) else {
                continue;
            };
            if *count == 1 {
                continue;
            }
            let Some(ip) = info.get_mut(&loc.pack_id) else {
                continue;
            };
            let size = u64::from(loc.length);
            if ip.used_blobs > 0 || ip.duplicate_blobs == ip.unused_blobs || *count == 0 {
                ip.used_size += size;
                ip.used_blobs += 1;
                ip.unused_size = ip.unused_size.saturating_sub(size);
                ip.unused_blobs = ip.unused_blobs.saturating_sub(1);
                stats.size.used += size;
                stats.blobs.used += 1;
                stats.size.duplicate = stats.size.duplicate.saturating_sub(size);
                stats.blobs.duplicate = stats.blobs.duplicate.saturating_sub(1);
                *count = 1;
            } else {
                *count -= 1;
                if *count == 1 {
                    // 0 marks "one copy left, take the next one".
                    *count = 0;
                }
            }
        }
    }
    if used
        .data
        .values()
        .chain(used.tree.values())
        .any(|&c| c != 1)
    {
        return Err(EngineError::Invalid(
            "internal error during blob selection".into(),
        ));
    }

    let target = opts.small_pack_limit()?;
    let mut remove_first = Vec::new();
    let mut remove = Vec::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut small: Vec<Candidate> = Vec::new();
    let mut listed: Vec<(Id, u64)> = packs.to_vec();
    listed.sort();
    listed.dedup_by_key(|p| p.0);
    for (id, pack_size) in listed {
        let Some(p) = info.remove(&id) else {
            remove_first.push(id);
            stats.size.unreferenced += pack_size;
            continue;
        };
        if p.size() != pack_size && p.used_blobs != 0 {
            return Err(EngineError::Invalid(format!(
                "pack {}: calculated size {} does not match real size {pack_size}\nRun 'cairn repair index'.\npack size does not match calculated size from index",
                id.short(),
                p.size()
            )));
        }
        match () {
            _ if p.used_blobs == 0 => stats.packs.unused += 1,
            _ if p.unused_blobs == 0 => stats.packs.used += 1,
            _ => stats.packs.partly_used += 1,
        }
        if p.uncompressed {
            stats.size.uncompressed += p.size();
        }
        let must_compress =
            version >= 2 && (p.kind == Kind::Tree || opts.repack_uncompressed) && p.uncompressed;
        let c = Candidate {
            id,
            info: p,
            must_compress,
        };
        if p.used_blobs == 0 {
            remove.push(id);
            stats.blobs.remove += p.unused_blobs;
            stats.size.remove += p.unused_size;
        } else if opts.repack_cacheable_only && p.kind == Kind::Data {
            stats.packs.keep += 1;
        } else if p.unused_blobs == 0 && p.kind != Kind::Mixed && !must_compress {
            if pack_size >= target {
                stats.packs.keep += 1;
            } else {
                small.push(c);
            }
        } else {
            candidates.push(c);
        }
    }

    // What is left in `info` is indexed but missing from the backend.
    let mut ignore = Vec::new();
    let mut missing_needed = Vec::new();
    for (id, p) in &info {
        if p.used_blobs == 0 {
            ignore.push(*id);
            stats.blobs.remove += p.unused_blobs;
            stats.size.remove += p.unused_size;
        } else {
            missing_needed.push(id.to_hex());
        }
    }
    if !missing_needed.is_empty() {
        missing_needed.sort();
        return Err(EngineError::Invalid(format!(
            "The index references {} needed pack files which are missing from the repository:\n  {}\npacks from index missing in repo",
            missing_needed.len(),
            missing_needed.join("\n  ")
        )));
    }
    ignore.sort();

    // Too few small packs are not worth it (and one small pack would be repacked forever).
    if small.len() < 10 {
        stats.packs.keep += small.len() as u64;
    } else {
        candidates.append(&mut small);
    }

    // Tree and mixed packs first, then small packs, then by falling unused/used ratio.
    candidates.sort_by(|a, b| {
        let (pa, pb) = (&a.info, &b.info);
        let a_data = pa.kind == Kind::Data;
        let b_data = pb.kind == Kind::Data;
        let a_small = pa.size() < target;
        let b_small = pb.size() < target;
        a_data
            .cmp(&b_data)
            .then(b_small.cmp(&a_small))
            .then_with(|| {
                let l = u128::from(pa.unused_size) * u128::from(pb.used_size);
                let r = u128::from(pb.unused_size) * u128::from(pa.used_size);
                r.cmp(&l)
            })
            .then(a.id.cmp(&b.id))
    });

    let max_unused_after = opts.max_unused.max_unused_bytes(stats.size.used);
    let max_repack = opts.max_repack_bytes.unwrap_or(u64::MAX);
    let mut repack_ids: Vec<(Id, u64)> = Vec::new();
    for c in &candidates {
        let p = &c.info;
        let remaining_unused = (stats.size.duplicate + stats.size.unused)
            .saturating_sub(stats.size.remove + stats.size.repack_remove);
        let reached_unused = remaining_unused < max_unused_after;
        let reached_repack = stats.size.repack.saturating_add(p.size()) >= max_repack;
        let large_enough = p.size() >= target;
        let repack = if reached_repack {
            false
        } else if p.kind != Kind::Data || c.must_compress {
            true
        } else {
            !(reached_unused && large_enough)
        };
        if repack {
            repack_ids.push((c.id, p.size()));
            stats.blobs.repack += p.unused_blobs + p.used_blobs;
            stats.size.repack += p.size();
            stats.blobs.repack_remove += p.unused_blobs;
            stats.size.repack_remove += p.unused_size;
            if p.uncompressed {
                stats.size.uncompressed = stats.size.uncompressed.saturating_sub(p.size());
            }
        } else {
            stats.packs.keep += 1;
        }
    }
    stats.packs.unreferenced = remove_first.len() as u64;
    stats.packs.repack = repack_ids.len() as u64;
    stats.packs.remove = remove.len() as u64;
    if version < 2 {
        stats.size.uncompressed = 0;
    }

    // The blobs to copy: used blobs in packs to repack that have no copy in a surviving
    // pack (the used counter, 1 for every used blob now, becomes 2 for those that have one).
    let mut keep: HashSet<(BlobType, Id), IdHash> = HashSet::with_hasher(IdHash);
    let mut repack = Vec::with_capacity(repack_ids.len());
    if !repack_ids.is_empty() {
        let mut gone = IdSet::with_hasher(IdHash);
        gone.extend(remove.iter().copied());
        gone.extend(ignore.iter().copied());
        let mut to_repack: IdMap<usize> = IdMap::with_hasher(IdHash);
        for (i, (id, _)) in repack_ids.iter().enumerate() {
            gone.insert(*id);
            to_repack.insert(*id, i);
        }
        let mut blobs: Vec<Vec<PackBlob>> = vec![Vec::new(); repack_ids.len()];
        for (t, id, loc) in index.iter() {
            if !gone.contains(&loc.pack_id) {
                if let Some(c) = used.map_mut(t).get_mut(&id) {
                    *c = 2;
                }
            } else if let Some(list) = to_repack.get(&loc.pack_id).and_then(|&i| blobs.get_mut(i))
                && used.contains(t, &id)
            {
                list.push(loc.to_pack_blob(t, id));
            }
        }
        for ((id, size), mut list) in repack_ids.into_iter().zip(blobs) {
            list.retain(|b| used.map(b.blob_type).get(&b.id) == Some(&1));
            list.sort_by_key(|b| b.offset);
            keep.extend(list.iter().map(|b| (b.blob_type, b.id)));
            repack.push(RepackPack {
                id,
                size,
                blobs: list,
            });
        }
    }

    Ok(PrunePlan {
        stats,
        remove_first,
        repack,
        remove,
        ignore,
        keep,
    })
}
