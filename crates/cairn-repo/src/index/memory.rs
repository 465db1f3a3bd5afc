//! The in-memory repository index: every blob's pack and position, kept compactly
//! (about 47 bytes per blob plus ~40 bytes per pack; see [`super::table`]).

use std::collections::HashMap;
use std::fmt;

use super::file::IndexFile;
use super::table::{BlobTable, Full, Meta, full};
use crate::pack::PackBlob;
use crate::{BlobType, Id};

/// Where a blob is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlobLocation {
    /// The pack containing the blob.
    pub pack_id: Id,
    /// Offset of the sealed blob in the pack.
    pub offset: u32,
    /// Length of the sealed blob.
    pub length: u32,
    /// Plaintext length if compressed.
    pub uncompressed_length: Option<u32>,
}

impl BlobLocation {
    /// The pack header entry this location describes.
    pub fn to_pack_blob(&self, blob_type: BlobType, id: Id) -> PackBlob {
        PackBlob {
            blob_type,
            id,
            offset: self.offset,
            length: self.length,
            uncompressed_length: self.uncompressed_length,
        }
    }
}

/// Pack ids, numbered in insertion order, with an open-addressing lookup table.
#[derive(Default)]
struct PackTable {
    /// Fixed-size chunks so growth never copies or over-allocates much.
    chunks: Vec<Box<[Id]>>,
    len: usize,
    /// Indices into the pack list, `EMPTY` if free; power-of-two size, load ≤ 3/4.
    slots: Vec<u32>,
}

const CHUNK: usize = 1024;
const EMPTY: u32 = u32::MAX;

fn home(id: &Id, mask: usize) -> usize {
    let mut b = [0u8; 8];
    b.copy_from_slice(id.0.split_at(8).0);
    (u64::from_le_bytes(b) as usize) & mask
}

impl PackTable {
    fn get(&self, i: u32) -> Option<&Id> {
        let i = i as usize;
        if i >= self.len {
            return None;
        }
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    fn find(&self, id: &Id) -> Option<u32> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut s = home(id, mask);
        for _ in 0..self.slots.len() {
            let v = *self.slots.get(s)?;
            if v == EMPTY {
                return None;
            }
            if self.get(v) == Some(id) {
                return Some(v);
            }
            s = (s + 1) & mask;
        }
        None
    }

    fn place(slots: &mut [u32], id: &Id, v: u32) {
        let mask = slots.len() - 1;
        let mut s = home(id, mask);
        for _ in 0..slots.len() {
            match slots.get_mut(s) {
                Some(slot) if *slot == EMPTY => {
                    *slot = v;
                    return;
                }
                _ => s = (s + 1) & mask,
            }
        }
    }

    /// Index of `id`, adding it if new; the flag says whether it was already present.
    /// `None` only if the table is full (2³² − 1 packs).
    fn intern(&mut self, id: &Id) -> Option<(u32, bool)> {
        if let Some(i) = self.find(id) {
            return Some((i, true));
        }
        let idx = u32::try_from(self.len).ok().filter(|&i| i != EMPTY)?;
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            let cap = (self.slots.len() * 2).max(64);
            let mut slots = vec![EMPTY; cap];
            for (i, pid) in self.iter().enumerate() {
                Self::place(&mut slots, pid, i as u32);
            }
            self.slots = slots;
        }
        if self.len.is_multiple_of(CHUNK) {
            self.chunks
                .push(vec![Id::default(); CHUNK].into_boxed_slice());
        }
        let slot = self
            .chunks
            .last_mut()
            .and_then(|c| c.get_mut(self.len % CHUNK))?;
        *slot = *id;
        self.len += 1;
        Self::place(&mut self.slots, id, idx);
        Some((idx, false))
    }

    fn iter(&self) -> impl Iterator<Item = &Id> {
        self.chunks.iter().flat_map(|c| c.iter()).take(self.len)
    }

    fn heap_bytes(&self) -> usize {
        self.chunks.len() * CHUNK * std::mem::size_of::<Id>()
            + self.chunks.capacity() * std::mem::size_of::<Box<[Id]>>()
            + self.slots.capacity() * 4
    }
}

/// Entries collected before they are inserted into the blob tables.
#[derive(Default)]
struct Staging {
    data: Vec<Full>,
    tree: Vec<Full>,
}

/// Commit staged entries once this many are pending (bounds the transient memory of bulk loads).
const STAGING_MAX: usize = 1 << 20;

/// The in-memory index of a repository: for each `(blob type, id)` the pack(s) and position.
///
/// Built from index files ([`Index::add_index_file`]) and from newly written packs
/// ([`Index::add_pack`]). Lookups take `&self`. A blob stored in several packs has several
/// entries; an entry listed twice for the same pack (overlapping index files) is stored once.
#[derive(Default)]
pub struct Index {
    packs: PackTable,
    data: BlobTable,
    tree: BlobTable,
}

impl fmt::Debug for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Index")
            .field("packs", &self.packs.len)
            .field("data_blobs", &self.data.len())
            .field("tree_blobs", &self.tree.len())
            .finish()
    }
}

impl Index {
    /// An empty index.
    pub fn new() -> Index {
        Index::default()
    }

    fn table(&self, t: BlobType) -> &BlobTable {
        match t {
            BlobType::Data => &self.data,
            BlobType::Tree => &self.tree,
        }
    }

    fn stage(
        &mut self,
        st: &mut Staging,
        pack_id: &Id,
        blobs: impl Iterator<Item = (BlobType, Id, u32, u32, Option<u32>)>,
    ) {
        let Some((pack, known)) = self.packs.intern(pack_id) else {
            tracing::error!("index: too many packs, ignoring pack {pack_id}");
            return;
        };
        for (t, id, offset, length, ulen) in blobs {
            let meta = Meta {
                pack,
                offset,
                length,
                ulen: ulen.unwrap_or(0),
            };
            let f = full(&id.0, meta);
            // Exact duplicates are only possible for a pack that was already known.
            if known && self.table(t).contains_exact(&f) {
                continue;
            }
            match t {
                BlobType::Data => st.data.push(f),
                BlobType::Tree => st.tree.push(f),
            }
        }
        if st.data.len() + st.tree.len() >= STAGING_MAX {
            self.commit(std::mem::take(st));
        }
    }

    fn commit(&mut self, st: Staging) {
        self.data.insert(st.data);
        self.tree.insert(st.tree);
    }

    /// Add the blobs of a pack (its decoded header, or blobs of a newly written pack).
    pub fn add_pack(&mut self, pack_id: Id, blobs: &[PackBlob]) {
        let mut st = Staging::default();
        let it = blobs
            .iter()
            .map(|b| (b.blob_type, b.id, b.offset, b.length, b.uncompressed_length));
        self.stage(&mut st, &pack_id, it);
        self.commit(st);
    }

    /// Add every pack of an index file.
    pub fn add_index_file(&mut self, f: &IndexFile) {
        self.add_index_files(std::iter::once(f));
    }

    /// Add several index files in one batch (cheaper than one at a time when loading).
    pub fn add_index_files<'a>(&mut self, files: impl IntoIterator<Item = &'a IndexFile>) {
        let mut st = Staging::default();
        for f in files {
            for p in &f.packs {
                let it = p
                    .blobs
                    .iter()
                    .map(|b| (b.blob_type, b.id, b.offset, b.length, b.uncompressed_length));
                self.stage(&mut st, &p.id, it);
            }
        }
        self.commit(st);
    }

    /// Reorganize into the most compact, fastest form (call after loading all index files).
    pub fn compact(&mut self) {
        self.data.compact();
        self.tree.compact();
    }

    fn location(&self, m: Meta) -> Option<BlobLocation> {
        Some(BlobLocation {
            pack_id: *self.packs.get(m.pack)?,
            offset: m.offset,
            length: m.length,
            uncompressed_length: (m.ulen != 0).then_some(m.ulen),
        })
    }

    /// One location of the blob, if indexed.
    pub fn get(&self, t: BlobType, id: &Id) -> Option<BlobLocation> {
        self.table(t).first(&id.0).and_then(|m| self.location(m))
    }

    /// Every location of the blob (several if it is stored in several packs).
    pub fn get_all(&self, t: BlobType, id: &Id) -> Vec<BlobLocation> {
        let mut out = Vec::new();
        self.table(t).for_each_match(&id.0, |m| {
            if let Some(l) = self.location(m)
                && !out.contains(&l)
            {
                out.push(l);
            }
        });
        out
    }

    /// True if the blob is indexed.
    pub fn contains(&self, t: BlobType, id: &Id) -> bool {
        self.table(t).first(&id.0).is_some()
    }

    /// True if the pack is known (listed in an index file or added).
    pub fn has_pack(&self, pack_id: &Id) -> bool {
        self.packs.find(pack_id).is_some()
    }

    /// Number of entries (a blob in two packs counts twice).
    pub fn len(&self) -> usize {
        self.data.len() + self.tree.len()
    }

    /// Number of entries of one blob type.
    pub fn count(&self, t: BlobType) -> usize {
        self.table(t).len()
    }

    /// True if there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of known packs.
    pub fn pack_count(&self) -> usize {
        self.packs.len
    }

    /// All known pack ids, in the order they were first added.
    pub fn pack_ids(&self) -> impl Iterator<Item = &Id> {
        self.packs.iter()
    }

    /// Every entry (in no particular order).
    pub fn iter(&self) -> impl Iterator<Item = (BlobType, Id, BlobLocation)> + '_ {
        let data = self.data.iter().map(|e| (BlobType::Data, e));
        let tree = self.tree.iter().map(|e| (BlobType::Tree, e));
        data.chain(tree)
            .filter_map(|(t, (id, m))| Some((t, Id(id), self.location(m)?)))
    }

    /// The blobs of every known pack, sorted by offset (packs without entries map to an empty
    /// list).
    pub fn packs(&self) -> HashMap<Id, Vec<PackBlob>> {
        let mut out: HashMap<Id, Vec<PackBlob>> =
            self.packs.iter().map(|id| (*id, Vec::new())).collect();
        for (t, id, loc) in self.iter() {
            out.entry(loc.pack_id)
                .or_default()
                .push(loc.to_pack_blob(t, id));
        }
        for v in out.values_mut() {
            v.sort_by_key(|b| (b.offset, b.length));
        }
        out
    }

    /// A new index with only the packs for which `keep` returns true.
    pub fn filter_packs(&self, mut keep: impl FnMut(&Id) -> bool) -> Index {
        let mut packs: Vec<(Id, Vec<PackBlob>)> = self
            .packs()
            .into_iter()
            .filter(|(id, _)| keep(id))
            .collect();
        packs.sort_by_key(|(id, _)| self.packs.find(id));
        let mut out = Index::new();
        let mut st = Staging::default();
        for (id, blobs) in &packs {
            let it = blobs
                .iter()
                .map(|b| (b.blob_type, b.id, b.offset, b.length, b.uncompressed_length));
            out.stage(&mut st, id, it);
        }
        out.commit(st);
        out
    }

    /// Heap memory used (by capacity, excluding allocator overhead).
    pub fn heap_bytes(&self) -> usize {
        self.packs.heap_bytes() + self.data.heap_bytes() + self.tree.heap_bytes()
    }
}
