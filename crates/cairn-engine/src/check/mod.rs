//! Repository checks with restic's semantics (`cairn check`): load the index files, compare
//! the packs they list with the packs stored, walk every snapshot's trees, and optionally read
//! pack data (`--read-data`, `--read-data-subset`).
//!
//! Phases run in restic's order. Problems are reported through a callback as they are found:
//! errors make the check fail, hints (duplicate or mixed packs, packs not in any index) do not.
//! A damaged index stops the check after the first phase, as in restic.

mod index;
mod read;
mod structure;
mod subset;

pub use subset::{MAX_BUCKETS, ReadDataSubset, in_bucket};

use crate::Result;
use cairn_repo::Id;
use cairn_repo::repository::Repository;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// Options of a check.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Read pack data: all packs or a subset. `None` checks the structure only.
    pub read_data: Option<ReadDataSubset>,
    /// Worker threads for tree loading and pack reading; 0 = one per core (at least 2).
    pub threads: usize,
}

/// Whether a problem fails the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Damage: the check fails.
    Error,
    /// Non-critical (restic's hints): the check still passes.
    Hint,
}

/// What kind of problem was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// An index file could not be read, decrypted or parsed (error; the check stops).
    IndexUnreadable,
    /// A pack is listed in several index files with the same blobs (hint: `repair index`).
    DuplicatePack,
    /// A pack holds both tree and data blobs (hint: `prune`).
    MixedPack,
    /// A pack is listed in several index files with different blobs (error).
    IncompletePack,
    /// A pack listed in the index does not exist (error).
    PackMissing,
    /// A pack's size differs from the size its index entries imply (error).
    PackSize,
    /// A pack is stored but not listed in any index (hint: `prune`).
    PackOrphaned,
    /// Listing the repository failed (error).
    ListFailed,
    /// A snapshot file could not be read, decrypted or parsed (error).
    SnapshotUnreadable,
    /// A tree could not be loaded or has invalid or missing references (error).
    Tree,
    /// Reading a pack found damaged or inconsistent data (error).
    PackData,
}

impl ProblemKind {
    /// Error or hint.
    pub fn severity(self) -> Severity {
        match self {
            ProblemKind::DuplicatePack | ProblemKind::MixedPack | ProblemKind::PackOrphaned => {
                Severity::Hint
            }
            _ => Severity::Error,
        }
    }
}

/// The repository object a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// A pack file (`data/`).
    Pack(Id),
    /// An index file.
    Index(Id),
    /// A snapshot file.
    Snapshot(Id),
    /// A tree blob.
    Tree(Id),
}

impl Subject {
    /// The id of the object.
    pub fn id(&self) -> Id {
        match *self {
            Subject::Pack(id) | Subject::Index(id) | Subject::Snapshot(id) | Subject::Tree(id) => {
                id
            }
        }
    }
}

/// Where in the snapshots a damaged tree was reached first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeContext {
    /// The snapshot whose walk reached the tree.
    pub snapshot: Id,
    /// Path of the directory the tree describes (`/` for a snapshot's root).
    pub path: String,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What kind of problem.
    pub kind: ProblemKind,
    /// The main message (restic's wording where restic has one).
    pub message: String,
    /// Individual findings under the message (the errors within one tree or pack).
    pub details: Vec<String>,
    /// The damaged object, when there is one.
    pub subject: Option<Subject>,
    /// For tree problems: the snapshot and path where the tree was reached.
    pub context: Option<TreeContext>,
    /// For pack data problems: the pack must be repaired (`repair packs`); false when the
    /// pack could not be read at all.
    pub salvage: bool,
}

impl Problem {
    fn new(kind: ProblemKind, subject: Option<Subject>, message: String) -> Problem {
        Problem {
            kind,
            message,
            details: Vec::new(),
            subject,
            context: None,
            salvage: false,
        }
    }

    /// Error or hint.
    pub fn severity(&self) -> Severity {
        self.kind.severity()
    }
}

/// The phases of a check, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// "load indexes".
    LoadIndex,
    /// "check all packs".
    Packs,
    /// "check snapshots, trees and blobs".
    Structure,
    /// "read all data" (or a subset).
    ReadData {
        /// Packs selected for reading.
        selected: usize,
        /// Packs in the index.
        total: usize,
        /// Bytes of the selected packs.
        bytes: u64,
        /// Bytes of all packs in the index.
        total_bytes: u64,
    },
}

/// What the check reports while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckEvent {
    /// A phase starts.
    Phase(Phase),
    /// A problem was found.
    Problem(Problem),
}

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct CheckProgress {
    phase: AtomicU8,
    done: AtomicU64,
    total: AtomicU64,
    bytes_done: AtomicU64,
    bytes_total: AtomicU64,
}

/// A consistent-enough copy of the progress counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProgressSnapshot {
    /// 0 not started, 1 index, 2 packs, 3 trees, 4 read data, 5 done.
    pub phase: u8,
    /// Items done in this phase (index files, trees, packs read).
    pub done: u64,
    /// Items known so far in this phase (grows while trees are discovered).
    pub total: u64,
    /// Bytes read (read-data phase).
    pub bytes_done: u64,
    /// Bytes to read (read-data phase).
    pub bytes_total: u64,
}

impl CheckProgress {
    /// Fresh counters.
    pub fn new() -> CheckProgress {
        CheckProgress::default()
    }

    /// Read the counters.
    pub fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            phase: self.phase.load(Ordering::Relaxed),
            done: self.done.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
            bytes_total: self.bytes_total.load(Ordering::Relaxed),
        }
    }

    fn start(&self, phase: u8, total: u64, bytes_total: u64) {
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
        self.bytes_done.store(0, Ordering::Relaxed);
        self.bytes_total.store(bytes_total, Ordering::Relaxed);
        self.phase.store(phase, Ordering::Relaxed);
    }

    fn add_done(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    fn add_total(&self, n: u64) {
        self.total.fetch_add(n, Ordering::Relaxed);
    }

    fn add_bytes(&self, n: u64) {
        self.bytes_done.fetch_add(n, Ordering::Relaxed);
    }
}

/// The outcome of a check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckSummary {
    /// Errors counted as restic does (each finding within a tree counts once).
    pub num_errors: usize,
    /// Problems of severity [`Severity::Error`].
    pub error_problems: usize,
    /// Problems of severity [`Severity::Hint`].
    pub hints: usize,
    /// Packs that must be removed or salvaged (`repair packs`), sorted.
    pub broken_packs: Vec<Id>,
    /// Snapshot files that could not be loaded (`repair snapshots --forget`), sorted.
    pub broken_snapshots: Vec<Id>,
    /// Packs not referenced by any index.
    pub orphaned_packs: usize,
    /// Suggest `repair index` (duplicate packs or a damaged index).
    pub suggest_repair_index: bool,
    /// Suggest `prune` (mixed packs or packs not in any index).
    pub suggest_prune: bool,
    /// The index could not be loaded completely; the later phases did not run.
    pub index_damaged: bool,
    /// Index files loaded.
    pub index_files: usize,
    /// Packs listed in the index.
    pub packs: usize,
    /// Snapshots checked.
    pub snapshots: usize,
    /// Distinct trees checked.
    pub trees: u64,
    /// Packs read with `--read-data`.
    pub packs_read: u64,
    /// Bytes read with `--read-data`.
    pub bytes_read: u64,
}

impl CheckSummary {
    /// True if no error was found (hints allowed).
    pub fn is_ok(&self) -> bool {
        self.error_problems == 0
    }
}

/// Collects problems into the summary and forwards them.
struct Reporter<'a> {
    sink: &'a (dyn Fn(CheckEvent) + Sync),
    state: parking_lot::Mutex<CheckSummary>,
}

impl Reporter<'_> {
    fn phase(&self, p: Phase) {
        (self.sink)(CheckEvent::Phase(p));
    }

    fn report(&self, p: Problem) {
        {
            let mut s = self.state.lock();
            match p.severity() {
                Severity::Error => {
                    s.error_problems += 1;
                    // restic counts each finding within a tree, one per other problem, and
                    // none for damaged snapshot files.
                    s.num_errors += match p.kind {
                        ProblemKind::Tree => p.details.len().max(1),
                        ProblemKind::SnapshotUnreadable => 0,
                        _ => 1,
                    };
                }
                Severity::Hint => s.hints += 1,
            }
            match (p.kind, p.subject) {
                (ProblemKind::DuplicatePack, _) => s.suggest_repair_index = true,
                (ProblemKind::MixedPack, _) => s.suggest_prune = true,
                (ProblemKind::PackOrphaned, _) => {
                    s.orphaned_packs += 1;
                    s.suggest_prune = true;
                }
                (ProblemKind::IndexUnreadable, _) => s.suggest_repair_index = true,
                (
                    ProblemKind::IncompletePack | ProblemKind::PackMissing | ProblemKind::PackSize,
                    Some(Subject::Pack(id)),
                ) => s.broken_packs.push(id),
                (ProblemKind::PackData, Some(Subject::Pack(id))) if p.salvage => {
                    s.broken_packs.push(id)
                }
                (ProblemKind::SnapshotUnreadable, Some(Subject::Snapshot(id))) => {
                    s.broken_snapshots.push(id)
                }
                _ => {}
            }
        }
        (self.sink)(CheckEvent::Problem(p));
    }
}

/// Number of worker threads: the option, or one per core.
fn workers(opt: usize) -> usize {
    if opt > 0 {
        return opt;
    }
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 32)
}

/// Check `repo` like `restic check`. Problems and phase changes go to `on_event` (called from
/// worker threads too); the result is `Ok` even when problems were found — see
/// [`CheckSummary::is_ok`]. `Err` means the check itself could not run (e.g. listing failed).
///
/// Uses its own in-memory index built from the index files (the repository's index is not
/// loaded or changed), so it can report problems in individual index files.
pub fn check(
    repo: &Repository,
    opts: &CheckOptions,
    progress: &CheckProgress,
    on_event: &(dyn Fn(CheckEvent) + Sync),
) -> Result<CheckSummary> {
    let rep = Reporter {
        sink: on_event,
        state: parking_lot::Mutex::new(CheckSummary::default()),
    };
    let threads = workers(opts.threads);

    rep.phase(Phase::LoadIndex);
    progress.start(1, 0, 0);
    let loaded = index::load(repo, threads, progress, &rep)?;
    {
        let mut s = rep.state.lock();
        s.index_files = loaded.files;
        s.packs = loaded.sizes.len();
    }
    if loaded.damaged {
        let mut s = rep.state.lock();
        s.index_damaged = true;
        progress.start(5, 0, 0);
        return Ok(finish(std::mem::take(&mut *s)));
    }

    rep.phase(Phase::Packs);
    progress.start(2, loaded.sizes.len() as u64, 0);
    let stored = index::check_packs(repo, &loaded.sizes, &rep)?;

    rep.phase(Phase::Structure);
    progress.start(3, 0, 0);
    let st = structure::check(repo, &loaded.index, threads, progress, &rep)?;
    {
        let mut s = rep.state.lock();
        s.snapshots = st.snapshots;
        s.trees = st.trees;
    }

    if let Some(subset) = &opts.read_data {
        let mut selected = subset.select(&loaded.sizes);
        // Missing packs were reported already.
        selected.retain(|id| stored.contains_key(id));
        let bytes: u64 = selected.iter().filter_map(|id| loaded.sizes.get(id)).sum();
        rep.phase(Phase::ReadData {
            selected: selected.len(),
            total: loaded.sizes.len(),
            bytes,
            total_bytes: loaded.sizes.values().sum(),
        });
        progress.start(4, selected.len() as u64, bytes);
        // One pack per core: reading from the page cache or a local disk costs CPU in the
        // same thread, and more packs in flight than cores only added cache contention.
        let r = read::read_packs(repo, &loaded, &stored, &selected, threads, progress, &rep)?;
        let mut s = rep.state.lock();
        s.packs_read = r.packs;
        s.bytes_read = r.bytes;
    }
    progress.start(5, 0, 0);
    let s = std::mem::take(&mut *rep.state.lock());
    Ok(finish(s))
}

fn finish(mut s: CheckSummary) -> CheckSummary {
    s.broken_packs.sort();
    s.broken_packs.dedup();
    s.broken_snapshots.sort();
    s.broken_snapshots.dedup();
    s
}

#[cfg(test)]
mod tests;
