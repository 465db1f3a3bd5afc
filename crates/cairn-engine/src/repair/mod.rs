//! Repairs: rebuild the index from pack headers (`repair index`) and salvage damaged packs
//! (`repair packs`), with restic's semantics and in the crash-safe order: new packs, new
//! index, then removal of the old index files, then removal of packs.

mod index;
mod packs;
#[cfg(test)]
mod tests;

pub use index::{
    IndexRepairEvent, RepairIndexOptions, RepairIndexSummary, UnreadablePack, repair_index,
};
pub use packs::{
    BlobRef, DamagedBlob, PacksRepairEvent, RepairPacksOptions, RepairPacksSummary, repair_packs,
};

use cairn_repo::pack::{HEADER_ENTRY_COMPRESSED, HEADER_ENTRY_PLAIN, PackBlob, TRAILER_SIZE};
use cairn_repo::{Id, crypto::OVERHEAD};

/// Size of a pack file as computed from its index entries (restic's `pack.Size`): the sealed
/// blobs, one header entry per blob, the header's encryption overhead and the trailer.
pub fn pack_size_from_index(blobs: &[PackBlob]) -> u64 {
    let entries: u64 = blobs
        .iter()
        .map(|b| {
            u64::from(b.length)
                + if b.is_compressed() {
                    HEADER_ENTRY_COMPRESSED as u64
                } else {
                    HEADER_ENTRY_PLAIN as u64
                }
        })
        .sum();
    (OVERHEAD + TRAILER_SIZE) as u64 + entries
}

/// Sort packs by id and their blobs by offset, so index files are written deterministically.
fn sorted_packs(packs: impl IntoIterator<Item = (Id, Vec<PackBlob>)>) -> Vec<(Id, Vec<PackBlob>)> {
    let mut v: Vec<(Id, Vec<PackBlob>)> = packs.into_iter().collect();
    v.sort_by_key(|(id, _)| *id);
    for (_, blobs) in &mut v {
        blobs.sort_by_key(|b| (b.offset, b.length));
    }
    v
}
