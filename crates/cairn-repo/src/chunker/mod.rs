//! Content-defined chunking exactly like restic (spec §11): a Rabin fingerprint over a
//! 64-byte sliding window, with a per-repository random irreducible polynomial of degree
//! 53, cutting where the low 20 bits of the fingerprint are zero, with chunks between
//! [`MIN_SIZE`] and [`MAX_SIZE`] bytes.
//!
//! [`ChunkerTables`] holds the precomputed tables of one polynomial (build it once per
//! repository and share it); [`Chunker`] is the cheap streaming state that finds cut points
//! in data fed to it in arbitrary pieces.

mod pol;
mod scan;
#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use pol::Pol;
use scan::{SPLIT_MASK, WINDOW, roll};

/// Minimum chunk size (512 KiB); only a file's last chunk may be shorter.
pub const MIN_SIZE: usize = 512 * 1024;
/// Maximum chunk size (8 MiB).
pub const MAX_SIZE: usize = 8 * 1024 * 1024;

/// Bytes at the start of each chunk that are counted but never hashed.
const SKIP: usize = MIN_SIZE - WINDOW;

/// Precomputed lookup tables for one chunker polynomial (spec §11.4).
pub struct ChunkerTables {
    pol: Pol,
    /// `deg(pol) - 8`, clamped to `0..=63`.
    shift: u32,
    /// `out_table[b] = b · x^(8·63) mod pol`: removes the byte leaving the window.
    out_table: [u64; 256],
    /// `mod_table[b] = ((b << k) mod pol) | (b << k)`: reduces after shifting in a byte.
    mod_table: [u64; 256],
}

impl ChunkerTables {
    /// Precomputes the tables for `pol`. Any value is accepted (nothing panics), but only
    /// an irreducible polynomial of degree 53 (see [`Pol::is_irreducible`]) chunks like
    /// restic; validate the repository config before using it.
    pub fn new(pol: Pol) -> Arc<ChunkerTables> {
        let k = pol.deg().max(0) as u32;
        let p = pol.0;
        let mut out_table = [0u64; 256];
        let mut mod_table = [0u64; 256];
        for (b, (out, m)) in out_table.iter_mut().zip(mod_table.iter_mut()).enumerate() {
            let mut h = pol::pmod(b as u128, p);
            for _ in 0..WINDOW - 1 {
                h = pol::pmod((h as u128) << 8, p);
            }
            *out = h;
            let shifted = (b as u128) << k;
            *m = pol::pmod(shifted, p) | shifted as u64;
        }
        let shift = pol.deg().saturating_sub(8).clamp(0, 63) as u32;
        Arc::new(ChunkerTables {
            pol,
            shift,
            out_table,
            mod_table,
        })
    }

    /// The polynomial these tables were built for.
    pub fn pol(&self) -> Pol {
        self.pol
    }

    /// The out table: `out_table[b] = b · x^(8·63) mod pol`.
    pub fn out_table(&self) -> &[u64; 256] {
        &self.out_table
    }

    /// The mod table: `mod_table[b] = ((b << deg) mod pol) | (b << deg)`.
    pub fn mod_table(&self) -> &[u64; 256] {
        &self.mod_table
    }

    /// Rabin fingerprint of `bytes` (`h = ((h << 8) | b) mod pol` for each byte, from 0).
    /// For 64 bytes this is the window fingerprint `F` of spec §11.3.
    pub fn fingerprint(&self, bytes: &[u8]) -> u64 {
        // Rolling out zero bytes is a no-op (out_table[0] == 0), so this is Horner's rule.
        bytes.iter().fold(0, |d, &b| roll(self, d, 0, b))
    }
}

impl std::fmt::Debug for ChunkerTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkerTables")
            .field("pol", &self.pol)
            .finish_non_exhaustive()
    }
}

/// Streaming chunker state: feed the bytes of a file with [`Chunker::next_boundary`] and
/// it reports where restic would cut. Call [`Chunker::reset`] at the start of every file.
#[derive(Clone)]
pub struct Chunker {
    tables: Arc<ChunkerTables>,
    /// The last 64 hashed bytes as a ring; `window[wpos]` is the oldest.
    window: [u8; WINDOW],
    wpos: usize,
    digest: u64,
    /// Bytes in the current chunk so far (skipped ones included).
    count: usize,
}

impl Chunker {
    /// A chunker at the start of a chunk.
    pub fn new(tables: Arc<ChunkerTables>) -> Chunker {
        let mut c = Chunker {
            tables,
            window: [0; WINDOW],
            wpos: 0,
            digest: 0,
            count: 0,
        };
        c.reset();
        c
    }

    /// Starts a new chunk (call at the start of each file): zero window, digest 0, then
    /// the byte 1 slid in, exactly like restic.
    pub fn reset(&mut self) {
        self.window = [0; WINDOW];
        self.wpos = 0;
        self.digest = 0;
        self.count = 0;
        self.slide(1);
    }

    /// The tables this chunker uses.
    pub fn tables(&self) -> &Arc<ChunkerTables> {
        &self.tables
    }

    /// Number of bytes already fed into the current (unfinished) chunk.
    pub fn pending(&self) -> usize {
        self.count
    }

    /// Feeds bytes that continue the current chunk. Returns `Some(n)` if the chunk ends
    /// after `data[..n]` (`n ≥ 1`; the state is then reset for the next chunk and the
    /// caller continues with `&data[n..]`), or `None` if all of `data` was consumed
    /// without a cut. At end of file the pending bytes (if any) form the last chunk.
    ///
    /// The cut points do not depend on how the input is split into calls.
    pub fn next_boundary(&mut self, data: &[u8]) -> Option<usize> {
        let mut pos = 0;
        // The first MIN - 64 bytes of a chunk are only counted.
        if self.count < SKIP {
            let n = (SKIP - self.count).min(data.len());
            self.count += n;
            pos = n;
            if self.count < SKIP {
                return None;
            }
        }
        // Hash up to 64 bytes through the ring window, so that afterwards the window is
        // the 64 bytes of `data` just before `pos`. (count < MAX always holds here.)
        let ring_end = data
            .len()
            .min(pos + WINDOW)
            .min(pos + (MAX_SIZE - self.count));
        if let Some(cut) = self.ring_scan(data.get(pos..ring_end).unwrap_or_default()) {
            return Some(pos + cut);
        }
        pos = ring_end;
        if pos >= data.len() {
            return None;
        }
        // Now 64 bytes of this call were hashed (a shorter ring phase ends at MAX, which
        // cuts), so count ≥ MIN: every further position may cut.
        let end = data.len().min(pos + (MAX_SIZE - self.count));
        let Some(region) = data.get(pos.saturating_sub(WINDOW)..end) else {
            // Not reachable (pos ≥ 64 and pos < end ≤ len); the ring path is always exact.
            return self
                .ring_scan(data.get(pos..end).unwrap_or_default())
                .map(|cut| pos + cut);
        };
        let (cut, digest) = scan::scan(&self.tables, region, self.digest);
        if let Some(cut) = cut {
            self.reset();
            return Some(pos + cut);
        }
        self.count += end - pos;
        self.digest = digest;
        if let Some(w) = region.last_chunk::<WINDOW>() {
            self.window = *w;
            self.wpos = 0;
        }
        if self.count >= MAX_SIZE {
            self.reset();
            return Some(end);
        }
        None
    }

    /// Slides one byte into the ring window (restic's `slide`).
    #[inline]
    fn slide(&mut self, b: u8) {
        let i = self.wpos & (WINDOW - 1);
        self.digest = roll(&self.tables, self.digest, self.window[i], b);
        self.window[i] = b;
        self.wpos = (i + 1) & (WINDOW - 1);
    }

    /// Hashes `bytes` one by one through the ring window, counting them and checking the
    /// cut rule after each. On a cut resets and returns the number of bytes taken.
    fn ring_scan(&mut self, bytes: &[u8]) -> Option<usize> {
        for (i, &b) in bytes.iter().enumerate() {
            self.slide(b);
            self.count += 1;
            if self.count >= MIN_SIZE && (self.digest & SPLIT_MASK == 0 || self.count >= MAX_SIZE) {
                self.reset();
                return Some(i + 1);
            }
        }
        None
    }
}

impl std::fmt::Debug for Chunker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunker")
            .field("pol", &self.tables.pol)
            .field("pending", &self.count)
            .finish_non_exhaustive()
    }
}

/// Chunks a whole buffer (one file) and returns the chunk lengths, the final (possibly
/// short) chunk included. Empty input gives no chunks.
pub fn chunk_lengths(tables: &Arc<ChunkerTables>, data: &[u8]) -> Vec<usize> {
    let mut chunker = Chunker::new(Arc::clone(tables));
    let mut lengths = Vec::with_capacity(data.len() / (MIN_SIZE * 2) + 1);
    let mut rest = data;
    while let Some(n) = chunker.next_boundary(rest) {
        lengths.push(n);
        rest = rest.get(n..).unwrap_or_default();
    }
    if !rest.is_empty() {
        lengths.push(rest.len());
    }
    lengths
}
