//! Compact storage of one blob type's index entries (internal to [`super::Index`]).
//!
//! Entries live in a few immutable *runs*, each a vector of 47-byte records sorted by blob id.
//! A run drops the first id byte and keeps a 257-entry bucket table instead, so a record is
//! `id[1..32] ‖ pack:u32le ‖ offset:u32le ‖ length:u32le ‖ uncompressed_length:u32le` with no
//! padding (47 bytes per blob, plus 2 KiB per run). Lookups locate the bucket by the first id
//! byte and then interpolate on the next 8 bytes (ids are uniformly distributed SHA-256
//! values), so a lookup touches a handful of cache lines even in a run of millions.
//!
//! New entries go to a small unsorted tail (≤ [`TAIL_MAX`]) or, for larger batches, directly
//! into a new run. Runs are merged like a binary counter (the last two are merged while the
//! older one is at most twice as large), so there are O(log n) runs and each entry is copied
//! O(log n) times in total.

/// Bytes of a stored run record.
pub(super) const REC: usize = 47;
/// A stored run record (first id byte implied by its bucket).
pub(super) type Rec = [u8; REC];
/// A full entry: `id ‖ pack ‖ offset ‖ length ‖ uncompressed_length` (little-endian).
pub(super) type Full = [u8; 48];

/// Maximum number of entries in the unsorted tail.
pub(super) const TAIL_MAX: usize = 64;

/// Location fields of an entry; `ulen == 0` means uncompressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Meta {
    pub pack: u32,
    pub offset: u32,
    pub length: u32,
    pub ulen: u32,
}

fn le(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

impl Meta {
    fn write(&self, out: &mut [u8]) {
        for (i, v) in [self.pack, self.offset, self.length, self.ulen]
            .into_iter()
            .enumerate()
        {
            if let Some(dst) = out.get_mut(i * 4..i * 4 + 4) {
                dst.copy_from_slice(&v.to_le_bytes());
            }
        }
    }

    fn read(b: &[u8]) -> Meta {
        Meta {
            pack: le(b, 0),
            offset: le(b, 4),
            length: le(b, 8),
            ulen: le(b, 12),
        }
    }
}

/// Build a full entry.
pub(super) fn full(id: &[u8; 32], m: Meta) -> Full {
    let mut f = [0u8; 48];
    let (a, b) = f.split_at_mut(32);
    a.copy_from_slice(id);
    m.write(b);
    f
}

/// Split a full entry.
pub(super) fn split_full(f: &Full) -> ([u8; 32], Meta) {
    let (id, meta) = f.split_at(32);
    let mut out = [0u8; 32];
    out.copy_from_slice(id);
    (out, Meta::read(meta))
}

fn rec_key(r: &Rec) -> &[u8] {
    r.split_at(31).0
}

fn rec_meta(r: &Rec) -> Meta {
    Meta::read(r.split_at(31).1)
}

/// One immutable sorted run.
pub(super) struct Run {
    recs: Vec<Rec>,
    /// `recs[buckets[b]..buckets[b + 1]]` holds the ids starting with byte `b`.
    buckets: Box<[usize; 257]>,
}

impl Run {
    /// Build from full entries sorted and deduplicated as byte strings.
    fn from_sorted(fulls: &[Full]) -> Run {
        let mut recs = Vec::with_capacity(fulls.len());
        let mut buckets = Box::new([0usize; 257]);
        let mut next_bucket = 0usize;
        for f in fulls {
            let (first, rest) = f.split_at(1);
            let b = usize::from(first.first().copied().unwrap_or(0));
            while next_bucket <= b {
                if let Some(slot) = buckets.get_mut(next_bucket) {
                    *slot = recs.len();
                }
                next_bucket += 1;
            }
            let mut r = [0u8; REC];
            r.copy_from_slice(rest);
            recs.push(r);
        }
        for slot in buckets.iter_mut().skip(next_bucket) {
            *slot = recs.len();
        }
        Run { recs, buckets }
    }

    pub(super) fn len(&self) -> usize {
        self.recs.len()
    }

    fn bucket(&self, b: usize) -> &[Rec] {
        let lo = self.buckets.get(b).copied().unwrap_or(0);
        let hi = self.buckets.get(b + 1).copied().unwrap_or(lo);
        self.recs.get(lo..hi).unwrap_or_default()
    }

    /// All records whose id equals `id`.
    fn find(&self, id: &[u8; 32]) -> &[Rec] {
        let (first, key) = id.split_at(1);
        let s = self.bucket(usize::from(first.first().copied().unwrap_or(0)));
        let start = lower_bound(s, key);
        let s = s.get(start..).unwrap_or_default();
        let kp = prefix(key);
        let n = s
            .iter()
            .take_while(|r| prefix(rec_key(r)) == kp && rec_key(r) == key)
            .count();
        s.get(..n).unwrap_or_default()
    }

    /// Merge two runs, dropping exact duplicates.
    fn merge(a: &Run, b: &Run) -> Run {
        let mut recs: Vec<Rec> = Vec::with_capacity(a.len() + b.len());
        let mut buckets = Box::new([0usize; 257]);
        for bucket in 0..256 {
            let start = recs.len();
            if let Some(slot) = buckets.get_mut(bucket) {
                *slot = start;
            }
            let (mut x, mut y) = (a.bucket(bucket), b.bucket(bucket));
            loop {
                let next = match (x.split_first(), y.split_first()) {
                    (Some((rx, tx)), Some((ry, ty))) => match rx.cmp(ry) {
                        std::cmp::Ordering::Less => {
                            x = tx;
                            rx
                        }
                        std::cmp::Ordering::Greater => {
                            y = ty;
                            ry
                        }
                        std::cmp::Ordering::Equal => {
                            x = tx;
                            y = ty;
                            rx
                        }
                    },
                    (Some((rx, tx)), None) => {
                        x = tx;
                        rx
                    }
                    (None, Some((ry, ty))) => {
                        y = ty;
                        ry
                    }
                    (None, None) => break,
                };
                if recs.len() == start || recs.last() != Some(next) {
                    recs.push(*next);
                }
            }
        }
        if let Some(slot) = buckets.get_mut(256) {
            *slot = recs.len();
        }
        recs.shrink_to_fit();
        Run { recs, buckets }
    }

    fn iter(&self) -> impl Iterator<Item = ([u8; 32], Meta)> + '_ {
        (0..256usize).flat_map(move |b| {
            self.bucket(b).iter().map(move |r| {
                let mut id = [0u8; 32];
                let (first, rest) = id.split_at_mut(1);
                first.fill(b as u8);
                rest.copy_from_slice(rec_key(r));
                (id, rec_meta(r))
            })
        })
    }

    fn heap_bytes(&self) -> usize {
        self.recs.capacity() * REC + std::mem::size_of::<[usize; 257]>()
    }
}

fn prefix(k: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    if let Some(src) = k.get(..8) {
        b.copy_from_slice(src);
    }
    u64::from_be_bytes(b)
}

/// First index in sorted `s` whose key is `>= key` (31-byte keys). Ids are uniformly
/// distributed, so interpolation on the first 8 key bytes narrows the range to a few entries
/// in two or three probes; a bounded number of steps is followed by a binary search, so
/// adversarial inputs cost at most O(log n).
fn lower_bound(s: &[Rec], key: &[u8]) -> usize {
    let kp = prefix(key);
    let k = u128::from(kp);
    let (mut lo, mut hi) = (0usize, s.len());
    // Bounds of the key prefixes in [lo, hi): all below `klo` are less, `khi` is exclusive.
    let (mut klo, mut khi) = (0u128, 1u128 << 64);
    for _ in 0..6 {
        if hi - lo <= 8 || khi <= klo || k < klo || k >= khi {
            break;
        }
        let span = (hi - lo) as u128;
        let pos = lo + (((k - klo) * span) / (khi - klo)).min(span - 1) as usize;
        let Some(r) = s.get(pos) else { break };
        let rk = rec_key(r);
        if key_less(rk, kp, key) {
            lo = pos + 1;
            klo = u128::from(prefix(rk));
        } else {
            hi = pos;
            khi = u128::from(prefix(rk)) + 1;
        }
    }
    lo + s
        .get(lo..hi)
        .unwrap_or_default()
        .partition_point(|r| key_less(rec_key(r), kp, key))
}

/// `a < key` where `kp` is `prefix(key)`: the first 8 bytes decide almost always, so the
/// byte-wise comparison (a `memcmp` call) runs only on equal prefixes.
fn key_less(a: &[u8], kp: u64, key: &[u8]) -> bool {
    let ap = prefix(a);
    ap < kp || (ap == kp && a < key)
}

/// True if full entry `t` has id `id`, whose first 8 bytes are `idp`.
fn full_has_id(t: &Full, idp: u64, id: &[u8; 32]) -> bool {
    prefix(t) == idp && t.starts_with(id)
}

/// All entries of one blob type.
#[derive(Default)]
pub(super) struct BlobTable {
    runs: Vec<Run>,
    tail: Vec<Full>,
}

impl BlobTable {
    /// Number of entries.
    pub(super) fn len(&self) -> usize {
        self.runs.iter().map(Run::len).sum::<usize>() + self.tail.len()
    }

    /// Add new entries. The caller guarantees none is an exact duplicate of a stored entry;
    /// duplicates within `batch` are removed here.
    pub(super) fn insert(&mut self, mut batch: Vec<Full>) {
        if batch.is_empty() {
            return;
        }
        batch.sort_unstable();
        batch.dedup();
        if self.tail.len() + batch.len() < TAIL_MAX {
            if self.tail.capacity() == 0 {
                self.tail.reserve_exact(TAIL_MAX);
            }
            self.tail.extend_from_slice(&batch);
            return;
        }
        if !self.tail.is_empty() {
            batch.append(&mut self.tail);
            batch.sort_unstable();
            batch.dedup();
        }
        self.runs.push(Run::from_sorted(&batch));
        drop(batch);
        self.rebalance();
    }

    fn rebalance(&mut self) {
        while self.runs.len() >= 2 {
            let n = self.runs.len();
            let (older, newer) = match (self.runs.get(n - 2), self.runs.get(n - 1)) {
                (Some(a), Some(b)) => (a.len(), b.len()),
                _ => break,
            };
            if older > 2 * newer {
                break;
            }
            self.merge_last_two();
        }
    }

    fn merge_last_two(&mut self) {
        if let (Some(b), Some(a)) = (self.runs.pop(), self.runs.pop()) {
            self.runs.push(Run::merge(&a, &b));
        }
    }

    /// Move everything into a single run (fastest lookups, least memory).
    pub(super) fn compact(&mut self) {
        if !self.tail.is_empty() {
            let mut t = std::mem::take(&mut self.tail);
            t.sort_unstable();
            self.runs.push(Run::from_sorted(&t));
        }
        while self.runs.len() >= 2 {
            self.merge_last_two();
        }
        self.tail = Vec::new();
    }

    /// Call `f` for every entry with this id (runs oldest first, then the tail).
    pub(super) fn for_each_match(&self, id: &[u8; 32], mut f: impl FnMut(Meta)) {
        for run in &self.runs {
            for r in run.find(id) {
                f(rec_meta(r));
            }
        }
        let idp = prefix(id);
        for t in &self.tail {
            if full_has_id(t, idp, id) {
                f(split_full(t).1);
            }
        }
    }

    /// The first entry with this id.
    pub(super) fn first(&self, id: &[u8; 32]) -> Option<Meta> {
        for run in &self.runs {
            if let Some(r) = run.find(id).first() {
                return Some(rec_meta(r));
            }
        }
        let idp = prefix(id);
        self.tail
            .iter()
            .find(|t| full_has_id(t, idp, id))
            .map(|t| split_full(t).1)
    }

    /// True if exactly this entry is stored.
    pub(super) fn contains_exact(&self, f: &Full) -> bool {
        let (id, meta) = split_full(f);
        let mut found = false;
        self.for_each_match(&id, |m| found |= m == meta);
        found
    }

    /// Every entry.
    pub(super) fn iter(&self) -> impl Iterator<Item = ([u8; 32], Meta)> + '_ {
        self.runs
            .iter()
            .flat_map(Run::iter)
            .chain(self.tail.iter().map(split_full))
    }

    /// Number of runs (for tests).
    #[cfg(test)]
    pub(super) fn run_count(&self) -> usize {
        self.runs.len()
    }

    /// Heap bytes used, by capacity.
    pub(super) fn heap_bytes(&self) -> usize {
        self.runs.iter().map(Run::heap_bytes).sum::<usize>()
            + self.runs.capacity() * std::mem::size_of::<Run>()
            + self.tail.capacity() * std::mem::size_of::<Full>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seed: u32, pack: u32) -> Full {
        let id = crate::Id::hash(&seed.to_le_bytes()).0;
        full(
            &id,
            Meta {
                pack,
                offset: seed,
                length: seed + 32,
                ulen: seed % 3,
            },
        )
    }

    #[test]
    fn runs_merge_and_find() {
        let mut t = BlobTable::default();
        let mut all = Vec::new();
        for batch in 0..200u32 {
            let size = [1, 5, 70, 300][batch as usize % 4];
            let b: Vec<Full> = (0..size).map(|i| entry(batch * 1000 + i, batch)).collect();
            all.extend_from_slice(&b);
            t.insert(b);
        }
        assert_eq!(t.len(), all.len());
        assert!(t.run_count() <= 16, "{} runs", t.run_count());
        for f in &all {
            let (id, meta) = split_full(f);
            assert_eq!(t.first(&id), Some(meta));
            assert!(t.contains_exact(f));
        }
        let mut listed: Vec<Full> = t.iter().map(|(id, m)| full(&id, m)).collect();
        listed.sort_unstable();
        all.sort_unstable();
        assert_eq!(listed, all);
        t.compact();
        assert_eq!(t.run_count(), 1);
        assert_eq!(t.len(), all.len());
        for f in &all {
            assert!(t.contains_exact(f));
        }
        let missing = crate::Id::hash(b"missing").0;
        assert_eq!(t.first(&missing), None);
    }

    #[test]
    fn lower_bound_matches_binary_search() {
        let mut recs: Vec<Rec> = (0..5000u32)
            .map(|i| {
                let mut r = [0u8; REC];
                r[..31].copy_from_slice(&crate::Id::hash(&i.to_le_bytes()).0[..31]);
                r
            })
            .collect();
        recs.sort_unstable();
        for i in 0..3000u32 {
            let key = crate::Id::hash(&i.to_le_bytes()).0;
            for k in [&key[..31], &key[1..32]] {
                let want = recs.partition_point(|r| rec_key(r) < k);
                assert_eq!(lower_bound(&recs, k), want);
            }
        }
        assert_eq!(lower_bound(&recs, &[0u8; 31]), 0);
        // Skewed keys (shared prefixes, runs of equal keys) still give exact answers.
        let mut skewed: Vec<Rec> = (0..3000u32)
            .map(|i| {
                let mut r = [0u8; REC];
                r[30] = (i / 7) as u8;
                r[29] = (i / 1792) as u8;
                r[0] = if i > 2000 { 0xff } else { 0 };
                r
            })
            .collect();
        skewed.sort_unstable();
        for r in skewed.iter().step_by(13) {
            for delta in [0u8, 1] {
                let mut k = *r;
                k[30] = k[30].wrapping_add(delta);
                let want = skewed.partition_point(|x| rec_key(x) < &k[..31]);
                assert_eq!(lower_bound(&skewed, &k[..31]), want);
            }
        }
        assert_eq!(lower_bound(&recs, &[0xffu8; 31]), recs.len());
    }
}
