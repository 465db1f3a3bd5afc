//! Prune (restic's semantics): find the blobs every snapshot still uses, decide from the index
//! and the list of pack files which packs to keep, repack or delete, then execute that plan in
//! an order that keeps the repository consistent if it is interrupted at any point.
//!
//! * [`plan`] walks all snapshot trees ([`used`]) and classifies the packs ([`plan::plan_packs`],
//!   a pure function of the index, the used blobs and the pack listing); it never reads pack
//!   data beyond tree blobs.
//! * [`execute`] removes unreferenced packs, repacks ([`repack`]), writes the new index, removes
//!   the old index files and finally the obsolete packs.

mod execute;
pub mod plan;
mod repack;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_exec;
pub mod used;

pub use execute::{ExecuteStats, execute};
pub use plan::{PackStats, PrunePlan, PruneStats};
pub use used::UsedBlobs;

use crate::{EngineError, Result};
use cairn_repo::Id;
use cairn_repo::backend::FileType;
use cairn_repo::compress::CompressionMode;
use cairn_repo::repository::Repository;
use std::collections::HashSet;

/// How much unused data may remain in the repository after pruning (`--max-unused`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxUnused {
    /// Never repack to reduce unused space (`unlimited`).
    Unlimited,
    /// At most this share (0 ≤ p < 100) of the remaining repository (`5%`).
    Percent(f64),
    /// At most this many bytes (`100M`).
    Bytes(u64),
}

impl Default for MaxUnused {
    fn default() -> Self {
        MaxUnused::Percent(5.0)
    }
}

impl MaxUnused {
    /// Parse restic's syntax: `unlimited`, `p%` or a size with a `k/m/g/t` (1024-based) or
    /// `b` suffix.
    pub fn parse(s: &str) -> Result<MaxUnused> {
        let t = s.trim();
        if t.is_empty() {
            return Err(EngineError::Invalid(format!(
                "invalid value for --max-unused: {s:?}"
            )));
        }
        if t == "unlimited" {
            return Ok(MaxUnused::Unlimited);
        }
        if let Some(p) = t.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|e| {
                EngineError::Invalid(format!(
                    "invalid percentage {s:?} passed for --max-unused: {e}"
                ))
            })?;
            if p.is_nan() || p < 0.0 {
                return Err(EngineError::Invalid(
                    "percentage for --max-unused must be positive".into(),
                ));
            }
            if p >= 100.0 {
                return Err(EngineError::Invalid(
                    "percentage for --max-unused must be below 100%".into(),
                ));
            }
            return Ok(MaxUnused::Percent(p));
        }
        parse_size(t).map(MaxUnused::Bytes).map_err(|e| {
            EngineError::Invalid(format!(
                "invalid number of bytes {s:?} for --max-unused: {e}"
            ))
        })
    }

    /// The unused bytes tolerated after pruning when `used` bytes remain in use:
    /// `p / (100 − p) × used` for a percentage (so unused is at most p% of what remains).
    pub fn max_unused_bytes(&self, used: u64) -> u64 {
        match *self {
            MaxUnused::Unlimited => u64::MAX,
            MaxUnused::Bytes(b) => b,
            // `as` saturates, like Go's conversion for the values that occur here.
            MaxUnused::Percent(p) => (p / (100.0 - p) * used as f64) as u64,
        }
    }
}

/// Parse a size like `--max-repack-size` (`k/K`, `m/M`, `g/G`, `t/T` = powers of 1024, `b` or
/// no suffix = bytes).
pub fn parse_size(s: &str) -> Result<u64> {
    crate::filter::parse_size(s.trim()).map_err(|e| EngineError::Invalid(e.to_string()))
}

/// What prune may do.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Unused data tolerated afterwards.
    pub max_unused: MaxUnused,
    /// Stop choosing packs to repack before their total size reaches this (`None`: no limit).
    pub max_repack_bytes: Option<u64>,
    /// Only repack tree (cacheable) packs.
    pub repack_cacheable_only: bool,
    /// Also repack packs below 80% of the pack size (restic 0.14 `--repack-small`).
    pub repack_small: bool,
    /// Packs below this size count as small (`--repack-smaller-than`; at most the pack size).
    pub repack_smaller_than: Option<u64>,
    /// v2: repack every pack holding uncompressed blobs, compressing them.
    pub repack_uncompressed: bool,
    /// Target pack size of new packs (bytes); packs below 1/25 of it are "small".
    pub pack_size: u64,
    /// Compression of the repository handle (uncompressed blobs that are repacked are
    /// compressed unless this is `Off`; trees always are in v2).
    pub compression: CompressionMode,
    /// Snapshots whose trees do not count as used (`forget --prune --dry-run` removes them).
    pub ignore_snapshots: Vec<Id>,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            max_unused: MaxUnused::default(),
            max_repack_bytes: None,
            repack_cacheable_only: false,
            repack_small: false,
            repack_smaller_than: None,
            repack_uncompressed: false,
            pack_size: cairn_repo::repository::DEFAULT_PACK_SIZE as u64,
            compression: CompressionMode::Auto,
            ignore_snapshots: Vec::new(),
        }
    }
}

impl PruneOptions {
    /// The size below which a fully used pack is a "small" repack candidate: 1/25 of the pack
    /// size, 80% of it with `--repack-small`, or `--repack-smaller-than` (restic 0.14 rules).
    pub fn small_pack_limit(&self) -> Result<u64> {
        if let Some(s) = self.repack_smaller_than {
            if s > self.pack_size {
                return Err(EngineError::Invalid(
                    "--repack-smaller-than exceeds the pack size".into(),
                ));
            }
            return Ok(s);
        }
        Ok(if self.repack_small {
            self.pack_size / 5 * 4
        } else {
            self.pack_size / 25
        })
    }

    /// Check the options against the repository (restic's early errors).
    pub fn validate(&self, version: u32) -> Result<()> {
        if self.repack_uncompressed && version < 2 {
            return Err(EngineError::Invalid(
                "compression requires at least repository format version 2".into(),
            ));
        }
        if self.repack_uncompressed && self.compression == CompressionMode::Off {
            return Err(EngineError::Invalid(
                "disabled compression and `--repack-uncompressed` are mutually exclusive".into(),
            ));
        }
        self.small_pack_limit().map(|_| ())
    }
}

/// The steps of prune, reported to [`PruneProgress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Loading snapshots and walking their trees.
    FindUsed,
    /// Classifying blobs and packs.
    Plan,
    /// Removing packs that no index references.
    RemoveUnreferenced,
    /// Copying the kept blobs of packs to repack into new packs (ends after the flush).
    Repack,
    /// Writing the new index files.
    WriteIndex,
    /// Removing the superseded index files.
    RemoveIndex,
    /// Removing the packs that were repacked or are unused.
    RemovePacks,
}

impl Phase {
    /// A short name (`repack`, `index-write`, ...), used in messages and by the test hook.
    pub fn name(self) -> &'static str {
        match self {
            Phase::FindUsed => "find-used",
            Phase::Plan => "plan",
            Phase::RemoveUnreferenced => "unreferenced",
            Phase::Repack => "repack",
            Phase::WriteIndex => "index-write",
            Phase::RemoveIndex => "index-delete",
            Phase::RemovePacks => "packs",
        }
    }
}

/// Progress and warnings of a prune run (all methods have empty defaults; called from worker
/// threads).
pub trait PruneProgress: Sync {
    /// A phase starts; `total` is the number of items it will count (packs, files; for
    /// [`Phase::FindUsed`] the number of snapshots, while [`PruneProgress::advance`] counts
    /// the trees walked; 0 if unknown).
    fn start(&self, _phase: Phase, _total: u64) {}
    /// `n` more items of the phase are done (trees walked, packs repacked, files removed).
    fn advance(&self, _phase: Phase, _n: u64) {}
    /// A phase finished; everything it wrote is durable.
    fn done(&self, _phase: Phase) {}
    /// A non-fatal problem.
    fn warn(&self, _msg: &str) {}
}

/// A [`PruneProgress`] that reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl PruneProgress for NoProgress {}

/// Plan a prune of `repo` (its index must be loaded): load all snapshots except the ignored
/// ones, mark every blob reachable from their trees as used, and classify the packs. Fails if
/// a used blob is not indexed, a needed pack is missing or has a size that does not match the
/// index.
pub fn plan(
    repo: &Repository,
    opts: &PruneOptions,
    progress: &dyn PruneProgress,
) -> Result<PrunePlan> {
    opts.validate(repo.version())?;
    let ignore: HashSet<Id> = opts.ignore_snapshots.iter().copied().collect();
    let snapshots = repo.load_snapshots()?;
    let mut roots: Vec<Id> = snapshots
        .iter()
        .filter(|(id, _)| !ignore.contains(id))
        .map(|(_, s)| s.tree)
        .collect();
    progress.start(Phase::FindUsed, roots.len() as u64);
    roots.sort();
    roots.dedup();
    let used = used::find_used_blobs(repo, &roots, progress)?;
    progress.done(Phase::FindUsed);
    let packs: Vec<(Id, u64)> = repo
        .backend()
        .list(FileType::Pack)?
        .into_iter()
        .filter_map(|(name, size)| Id::from_name(&name).map(|id| (id, size)))
        .collect();
    progress.start(Phase::Plan, packs.len() as u64);
    let index = repo.index();
    let p = plan::plan_packs(&index, used, &packs, opts, repo.version())?;
    drop(index);
    progress.done(Phase::Plan);
    Ok(p)
}

/// `BuildHasher` for maps keyed by ids (already uniformly distributed hashes): the first
/// eight bytes are the hash.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHash;

/// The hasher of [`IdHash`].
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // An id is written as one 32-byte slice (after its length); mix anything else in.
        match bytes.first_chunk::<8>() {
            Some(b) => self.0 ^= u64::from_le_bytes(*b),
            None => {
                for &b in bytes {
                    self.0 = self.0.rotate_left(8) ^ u64::from(b);
                }
            }
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = self.0.rotate_left(5) ^ n as u64;
    }
    fn write_u8(&mut self, n: u8) {
        self.0 = self.0.rotate_left(5) ^ u64::from(n);
    }
}

/// A set of ids with [`IdHash`].
pub type IdSet = HashSet<Id, IdHash>;
/// A map keyed by ids with [`IdHash`].
pub type IdMap<V> = std::collections::HashMap<Id, V, IdHash>;
