//! Repository statistics in restic's modes (restore-size, files-by-contents, raw-data,
//! blobs-per-file), with the numbers restic's `stats` reports.
//!
//! Every mode first loads the trees of the selected snapshots in parallel, each distinct tree
//! once ([`for_each_tree`]); the modes then aggregate per-tree summaries, so shared subtrees
//! (the common case across snapshots) are decoded once:
//!
//! * restore-size: every node of every snapshot counts as a file (directories too) and adds
//!   its size; within one snapshot a hard-linked node (links > 1, not a directory) adds its
//!   size once per (inode, device) — restic ≥ 0.16's rule (0.14 keyed on the inode alone,
//!   which differs only for snapshots spanning several devices).
//! * files-by-contents: one file per distinct content (the sequence of content blob ids;
//!   all nodes without content share one), counting its size.
//! * raw-data: every distinct blob referenced (trees and file contents), counting its stored
//!   length; on v2 repositories also the uncompressed size and compression figures.
//! * blobs-per-file: for each distinct content, the path it was first seen at, in restic's
//!   walk order (snapshots in the given order, depth first, names sorted); counts the paths
//!   and the distinct (path, blob) pairs with the blobs' plaintext sizes.

mod walk;

#[cfg(test)]
mod tests;

pub use walk::{default_threads, for_each_tree};

use crate::{EngineError, Result};
use cairn_repo::node::NodeType;
use cairn_repo::repository::Repository;
use cairn_repo::snapshot::Snapshot;
use cairn_repo::tree::Tree;
use cairn_repo::{BlobType, Id, RepoError};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;

/// Bytes a blob's encryption adds (16-byte IV and 16-byte MAC).
const CRYPTO_OVERHEAD: u64 = 32;

/// restic's `stats --mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CountMode {
    /// Size of the files as restored (`restore-size`, the default).
    #[default]
    RestoreSize,
    /// Size of the files with distinct contents (`files-by-contents`).
    FilesByContents,
    /// Stored size of the distinct blobs referenced (`raw-data`).
    RawData,
    /// Distinct blob references per file path (`blobs-per-file`).
    BlobsPerFile,
}

impl CountMode {
    /// restic's name of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            CountMode::RestoreSize => "restore-size",
            CountMode::FilesByContents => "files-by-contents",
            CountMode::RawData => "raw-data",
            CountMode::BlobsPerFile => "blobs-per-file",
        }
    }
}

impl std::str::FromStr for CountMode {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<CountMode> {
        Ok(match s {
            "restore-size" => CountMode::RestoreSize,
            "files-by-contents" => CountMode::FilesByContents,
            "raw-data" => CountMode::RawData,
            "blobs-per-file" => CountMode::BlobsPerFile,
            _ => {
                return Err(EngineError::Invalid(format!(
                    "unknown counting mode: {s} (use restore-size, files-by-contents, blobs-per-file or raw-data)"
                )));
            }
        })
    }
}

/// Progress counters of a [`stats`] run (read by the caller from another thread).
#[derive(Debug, Default)]
pub struct StatsProgress {
    /// Distinct trees loaded so far.
    pub trees: AtomicU64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_f(n: &f64) -> bool {
    *n == 0.0
}

/// The result, serialized exactly like restic's `stats --json` (field names, order and
/// omitted zero fields as restic ≥ 0.16).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Stats {
    /// Total size in bytes (meaning depends on the mode).
    pub total_size: u64,
    /// raw-data on v2: the blobs' size before compression (with encryption overhead).
    #[serde(skip_serializing_if = "is_zero")]
    pub total_uncompressed_size: u64,
    /// raw-data on v2: uncompressed / stored size of the compressed blobs.
    #[serde(skip_serializing_if = "is_zero_f")]
    pub compression_ratio: f64,
    /// raw-data on v2: percentage of the data (uncompressed bytes) stored compressed.
    #[serde(skip_serializing_if = "is_zero_f")]
    pub compression_progress: f64,
    /// raw-data on v2: percentage saved by compression.
    #[serde(skip_serializing_if = "is_zero_f")]
    pub compression_space_saving: f64,
    /// Number of files (meaning depends on the mode).
    #[serde(skip_serializing_if = "is_zero")]
    pub total_file_count: u64,
    /// Number of blobs (raw-data, blobs-per-file).
    #[serde(skip_serializing_if = "is_zero")]
    pub total_blob_count: u64,
    /// Number of snapshots processed.
    pub snapshots_count: usize,
}

/// Compute the statistics of `snapshots` (already selected, in the order restic would walk
/// them) in `mode`, loading trees on `threads` threads. The repository index must be loaded.
pub fn stats(
    repo: &Repository,
    snapshots: &[(Id, Snapshot)],
    mode: CountMode,
    threads: usize,
    progress: Option<&StatsProgress>,
) -> Result<Stats> {
    let roots: Vec<Id> = snapshots.iter().map(|(_, s)| s.tree).collect();
    let loaded = progress.map(|p| &p.trees);
    let mut st = match mode {
        CountMode::RestoreSize => restore_size(repo, &roots, threads, loaded)?,
        CountMode::FilesByContents => files_by_contents(repo, &roots, threads, loaded)?,
        CountMode::RawData => raw_data(repo, &roots, threads, loaded)?,
        CountMode::BlobsPerFile => blobs_per_file(repo, &roots, threads, loaded)?,
    };
    st.snapshots_count = snapshots.len();
    Ok(st)
}

/// Every blob the trees below `roots` reference: the trees themselves and the contents of
/// file nodes (restic's `FindUsedBlobs`).
pub fn used_blobs(
    repo: &Repository,
    roots: &[Id],
    loaded: Option<&AtomicU64>,
) -> Result<HashSet<(BlobType, Id)>> {
    used_blobs_with(repo, roots, default_threads(), loaded)
}

fn used_blobs_with(
    repo: &Repository,
    roots: &[Id],
    threads: usize,
    loaded: Option<&AtomicU64>,
) -> Result<HashSet<(BlobType, Id)>> {
    let set = Mutex::new(HashSet::new());
    for_each_tree(repo, roots, threads, loaded, |id, tree| {
        let mut local = vec![(BlobType::Tree, id)];
        for n in &tree.nodes {
            if n.node_type == NodeType::File
                && let Some(c) = &n.content
            {
                local.extend(c.iter().map(|b| (BlobType::Data, *b)));
            }
        }
        set.lock().extend(local);
        Ok(())
    })?;
    Ok(set.into_inner())
}

/// The identity of a file's contents: SHA-256 of its content blob ids in order (restic's
/// `makeFileIDByContents`; every node without content gets the hash of nothing).
fn content_id(content: Option<&Vec<Id>>) -> [u8; 32] {
    let mut h = Sha256::new();
    for id in content.into_iter().flatten() {
        h.update(id.0);
    }
    h.finalize().into()
}

fn raw_data(
    repo: &Repository,
    roots: &[Id],
    threads: usize,
    loaded: Option<&AtomicU64>,
) -> Result<Stats> {
    let blobs = used_blobs_with(repo, roots, threads, loaded)?;
    let v2 = repo.version() >= 2;
    let index = repo.index();
    let mut st = Stats::default();
    let (mut compressed, mut compressed_unc) = (0u64, 0u64);
    for (t, id) in &blobs {
        let loc = index
            .get(*t, id)
            .ok_or_else(|| RepoError::BlobNotFound(format!("{} {}", t.as_str(), id.to_hex())))?;
        let length = u64::from(loc.length);
        st.total_size += length;
        if v2 {
            let unc = match loc.uncompressed_length {
                Some(u) => u64::from(u) + CRYPTO_OVERHEAD,
                None => length,
            };
            st.total_uncompressed_size += unc;
            if loc.uncompressed_length.is_some() {
                compressed += length;
                compressed_unc += unc;
            }
        }
        st.total_blob_count += 1;
    }
    if compressed > 0 {
        st.compression_ratio = compressed_unc as f64 / compressed as f64;
    }
    if st.total_uncompressed_size > 0 {
        let unc = st.total_uncompressed_size as f64;
        st.compression_progress = compressed_unc as f64 / unc * 100.0;
        st.compression_space_saving = (1.0 - st.total_size as f64 / unc) * 100.0;
    }
    Ok(st)
}

fn files_by_contents(
    repo: &Repository,
    roots: &[Id],
    threads: usize,
    loaded: Option<&AtomicU64>,
) -> Result<Stats> {
    let sizes: Mutex<HashMap<[u8; 32], u64>> = Mutex::new(HashMap::new());
    for_each_tree(repo, roots, threads, loaded, |_, tree| {
        let local: Vec<([u8; 32], u64)> = tree
            .nodes
            .iter()
            .map(|n| (content_id(n.content.as_ref()), n.size))
            .collect();
        let mut m = sizes.lock();
        for (fid, size) in local {
            // Nodes with equal contents have equal sizes; the smallest keeps the result
            // independent of the (parallel) visiting order if they do not.
            let e = m.entry(fid).or_insert(size);
            *e = (*e).min(size);
        }
        Ok(())
    })?;
    let sizes = sizes.into_inner();
    Ok(Stats {
        total_size: sizes.values().fold(0u64, |a, s| a.saturating_add(*s)),
        total_file_count: sizes.len() as u64,
        ..Stats::default()
    })
}

/// What restore-size needs of one tree.
#[derive(Debug, Default)]
struct TreeSummary {
    /// Nodes in the tree.
    count: u64,
    /// Sizes of the nodes that always count (not hard-linked).
    size: u64,
    /// Hard-linked nodes: (inode, device, size), counted once per snapshot.
    hardlinks: Vec<(u64, u64, u64)>,
    /// Subtrees, once per directory node (in node order).
    subtrees: Vec<Id>,
}

fn summarize(tree: &Tree) -> TreeSummary {
    let mut s = TreeSummary::default();
    for n in &tree.nodes {
        s.count += 1;
        if n.node_type == NodeType::Dir {
            if let Some(sub) = n.subtree {
                s.subtrees.push(sub);
            }
            s.size = s.size.saturating_add(n.size);
        } else if n.links == 1 || n.inode == 0 {
            s.size = s.size.saturating_add(n.size);
        } else {
            s.hardlinks.push((n.inode, n.device_id, n.size));
        }
    }
    s
}

/// Totals of a tree and everything below it, counting shared subtrees as often as they
/// are referenced.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    count: u64,
    size: u64,
    has_hardlinks: bool,
}

/// Totals of every tree below `root` (memoized in `memo`; iterative, so deep trees do not
/// overflow the stack).
fn totals(
    summaries: &HashMap<Id, TreeSummary>,
    root: Id,
    memo: &mut HashMap<Id, Totals>,
) -> Result<Totals> {
    let missing = |id: &Id| {
        EngineError::Repo(RepoError::corrupt(
            format!("tree {}", id.to_hex()),
            "not loaded",
        ))
    };
    let mut stack = vec![(root, false)];
    while let Some((id, expanded)) = stack.pop() {
        if memo.contains_key(&id) {
            continue;
        }
        let s = summaries.get(&id).ok_or_else(|| missing(&id))?;
        if !expanded {
            stack.push((id, true));
            for sub in &s.subtrees {
                if !memo.contains_key(sub) {
                    stack.push((*sub, false));
                }
            }
            continue;
        }
        let mut t = Totals {
            count: s.count,
            size: s.size,
            has_hardlinks: !s.hardlinks.is_empty(),
        };
        for sub in &s.subtrees {
            let st = memo.get(sub).copied().ok_or_else(|| missing(sub))?;
            t.count = t.count.saturating_add(st.count);
            t.size = t.size.saturating_add(st.size);
            t.has_hardlinks |= st.has_hardlinks;
        }
        memo.insert(id, t);
    }
    memo.get(&root).copied().ok_or_else(|| missing(&root))
}

/// The size of the hard-linked nodes below `root`, each (inode, device) counted once (the
/// first one met in walk order).
fn hardlinked_size(
    summaries: &HashMap<Id, TreeSummary>,
    memo: &HashMap<Id, Totals>,
    root: Id,
) -> u64 {
    let mut seen_inodes = HashSet::new();
    let mut seen_trees = HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if !memo.get(&id).is_some_and(|t| t.has_hardlinks) || !seen_trees.insert(id) {
            continue;
        }
        let Some(s) = summaries.get(&id) else {
            continue;
        };
        for (inode, dev, size) in &s.hardlinks {
            if seen_inodes.insert((*inode, *dev)) {
                total = total.saturating_add(*size);
            }
        }
        stack.extend(s.subtrees.iter().rev());
    }
    total
}

fn restore_size(
    repo: &Repository,
    roots: &[Id],
    threads: usize,
    loaded: Option<&AtomicU64>,
) -> Result<Stats> {
    let summaries = Mutex::new(HashMap::new());
    for_each_tree(repo, roots, threads, loaded, |id, tree| {
        let s = summarize(&tree);
        summaries.lock().insert(id, s);
        Ok(())
    })?;
    let summaries = summaries.into_inner();
    let mut memo = HashMap::new();
    let mut st = Stats::default();
    for root in roots {
        let t = totals(&summaries, *root, &mut memo)?;
        st.total_file_count = st.total_file_count.saturating_add(t.count);
        st.total_size = st.total_size.saturating_add(t.size);
        if t.has_hardlinks {
            st.total_size = st
                .total_size
                .saturating_add(hardlinked_size(&summaries, &memo, *root));
        }
    }
    Ok(st)
}

/// A node as blobs-per-file needs it.
#[derive(Debug)]
struct ContentNode {
    name: Vec<u8>,
    content: Vec<Id>,
    subtree: Option<Id>,
}

fn blobs_per_file(
    repo: &Repository,
    roots: &[Id],
    threads: usize,
    loaded: Option<&AtomicU64>,
) -> Result<Stats> {
    // Load (in parallel) what the sequential walk below needs of every tree.
    let trees: Mutex<HashMap<Id, Vec<ContentNode>>> = Mutex::new(HashMap::new());
    for_each_tree(repo, roots, threads, loaded, |id, tree| {
        let mut nodes: Vec<ContentNode> = tree
            .nodes
            .into_iter()
            .map(|n| ContentNode {
                subtree: if n.node_type == NodeType::Dir {
                    n.subtree
                } else {
                    None
                },
                name: n.name,
                content: n.content.unwrap_or_default(),
            })
            .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        trees.lock().insert(id, nodes);
        Ok(())
    })?;
    let trees = trees.into_inner();
    let index = repo.index();
    let mut st = Stats::default();
    let mut unique_files: HashSet<[u8; 32]> = HashSet::new();
    let mut file_blobs: HashMap<Vec<u8>, HashSet<Id>> = HashMap::new();
    // A tree walked once is never walked again: all its contents are known by then, so a
    // second walk would count nothing.
    let mut walked: HashSet<Id> = HashSet::new();
    for root in roots {
        if !walked.insert(*root) {
            continue;
        }
        // Depth first in restic's order: (tree, next node index, path of the tree).
        let mut stack: Vec<(Id, usize, Vec<u8>)> = vec![(*root, 0, Vec::new())];
        while let Some(frame) = stack.last_mut() {
            let (tree_id, i) = (frame.0, frame.1);
            let nodes = trees.get(&tree_id).ok_or_else(|| {
                EngineError::Repo(RepoError::corrupt(
                    format!("tree {}", tree_id.to_hex()),
                    "not loaded",
                ))
            })?;
            let Some(node) = nodes.get(i) else {
                stack.pop();
                continue;
            };
            frame.1 += 1;
            let mut path = frame.2.clone();
            path.push(b'/');
            path.extend_from_slice(&node.name);
            let content = (!node.content.is_empty()).then_some(&node.content);
            if unique_files.insert(content_id(content)) && !node.content.is_empty() {
                let seen = match file_blobs.get_mut(&path) {
                    Some(s) => s,
                    None => {
                        st.total_file_count += 1;
                        file_blobs.entry(path.clone()).or_default()
                    }
                };
                for blob in &node.content {
                    if seen.insert(*blob) {
                        let loc = index.get(BlobType::Data, blob).ok_or_else(|| {
                            RepoError::BlobNotFound(format!(
                                "data {} (for tree {})",
                                blob.to_hex(),
                                tree_id.to_hex()
                            ))
                        })?;
                        let plain = match loc.uncompressed_length {
                            Some(u) => u64::from(u),
                            None => u64::from(loc.length).saturating_sub(CRYPTO_OVERHEAD),
                        };
                        st.total_size = st.total_size.saturating_add(plain);
                        st.total_blob_count += 1;
                    }
                }
            }
            if let Some(sub) = node.subtree
                && walked.insert(sub)
            {
                stack.push((sub, 0, path));
            }
        }
    }
    Ok(st)
}
