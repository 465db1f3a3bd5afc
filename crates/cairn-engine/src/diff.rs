//! `diff`: compare two trees (usually two snapshots' roots, or `ID:subfolder` subtrees).
//!
//! Changes use restic's modifiers: `+` added, `-` removed, `M` file content changed,
//! `T` type changed, `U` metadata changed (only with `metadata`), `?` appended to `M` when
//! everything but the content is identical (probable bitrot). Directory paths end in `/`.
//! Identical subtrees (same tree id) are not walked for changes, only for the blob counts.
//! Statistics follow restic: counts of added/removed files, dirs and others, and the data
//! and tree blobs (with their plaintext sizes) only referenced by one side.

use crate::select::{join_path, load_sorted};
use crate::{EngineError, Result};
use cairn_repo::node::{Node, NodeType};
use cairn_repo::repository::Repository;
use cairn_repo::{BlobType, Id};
use serde::Serialize;
use std::collections::HashSet;

/// Options of [`diff`].
#[derive(Clone, Copy, Debug, Default)]
pub struct DiffOptions {
    /// Report metadata-only changes as `U` (`--metadata`).
    pub metadata: bool,
}

/// One reported change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Path (directories end in `/`; invalid UTF-8 replaced).
    pub path: String,
    /// restic's modifier string: `+`, `-`, or a combination of `T`, `M`, `?`, `U`.
    pub modifier: String,
}

/// Counters for one side (added or removed).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DiffStat {
    /// Regular files.
    pub files: usize,
    /// Directories.
    pub dirs: usize,
    /// Other node types.
    pub others: usize,
    /// Data blobs only on this side.
    pub data_blobs: usize,
    /// Tree blobs only on this side.
    pub tree_blobs: usize,
    /// Plaintext bytes of those blobs.
    pub bytes: u64,
}

impl DiffStat {
    fn add(&mut self, node: &Node) {
        match node.node_type {
            NodeType::File => self.files += 1,
            NodeType::Dir => self.dirs += 1,
            _ => self.others += 1,
        }
    }
}

/// Result of [`diff`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiffStats {
    /// Files present on both sides whose content differs.
    pub changed_files: usize,
    /// What the second tree adds.
    pub added: DiffStat,
    /// What the second tree no longer has.
    pub removed: DiffStat,
    /// Non-fatal problems (subtrees that could not be loaded; blobs missing from the index).
    pub warnings: Vec<String>,
}

/// A change message of `diff --json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChangeJson<'a> {
    /// Always `"change"`.
    pub message_type: &'static str,
    /// Path.
    pub path: &'a str,
    /// Modifier.
    pub modifier: &'a str,
}

impl<'a> From<&'a Change> for ChangeJson<'a> {
    fn from(c: &'a Change) -> Self {
        ChangeJson {
            message_type: "change",
            path: &c.path,
            modifier: &c.modifier,
        }
    }
}

/// The final statistics message of `diff --json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DiffStatsJson {
    /// Always `"statistics"`.
    pub message_type: &'static str,
    /// The first snapshot argument as given.
    pub source_snapshot: String,
    /// The second snapshot argument as given.
    pub target_snapshot: String,
    /// Files with changed content.
    pub changed_files: usize,
    /// Added counters.
    pub added: DiffStat,
    /// Removed counters.
    pub removed: DiffStat,
}

impl DiffStatsJson {
    /// The statistics message for `diff source target`.
    pub fn new(source: &str, target: &str, stats: &DiffStats) -> Self {
        DiffStatsJson {
            message_type: "statistics",
            source_snapshot: source.to_string(),
            target_snapshot: target.to_string(),
            changed_files: stats.changed_files,
            added: stats.added.clone(),
            removed: stats.removed.clone(),
        }
    }
}

type BlobSet = HashSet<(BlobType, Id)>;

fn add_blobs(set: &mut BlobSet, node: &Node) {
    match node.node_type {
        NodeType::File => {
            for id in node.content.iter().flatten() {
                set.insert((BlobType::Data, *id));
            }
        }
        NodeType::Dir => {
            if let Some(t) = node.subtree {
                set.insert((BlobType::Tree, t));
            }
        }
        _ => {}
    }
}

/// restic's `Node.Equals` (extended attributes compared as a set by name).
pub fn nodes_equal(a: &Node, b: &Node) -> bool {
    a.name == b.name
        && a.node_type == b.node_type
        && a.mode == b.mode
        && a.mtime == b.mtime
        && a.atime == b.atime
        && a.ctime == b.ctime
        && a.uid == b.uid
        && a.gid == b.gid
        && a.user == b.user
        && a.group == b.group
        && a.inode == b.inode
        && a.device_id == b.device_id
        && a.size == b.size
        && a.links == b.links
        && a.linktarget == b.linktarget
        && a.device == b.device
        && a.content == b.content
        && same_xattrs(a, b)
        && a.generic_attributes == b.generic_attributes
        && a.subtree == b.subtree
        && a.error == b.error
}

fn same_xattrs(a: &Node, b: &Node) -> bool {
    a.extended_attributes.len() == b.extended_attributes.len()
        && b.extended_attributes.iter().all(|x| {
            a.extended_attributes
                .iter()
                .any(|y| y.name == x.name && y.value == x.value)
        })
}

struct Comparer<'a> {
    repo: &'a Repository,
    opts: DiffOptions,
    on_change: &'a mut dyn FnMut(&Change) -> Result<()>,
    stats: DiffStats,
    before: BlobSet,
    after: BlobSet,
    common: BlobSet,
    /// Set when `on_change` failed: that error ends the diff instead of becoming a warning.
    fatal: Option<EngineError>,
}

fn dir_path(prefix: &[u8], node: &Node) -> Vec<u8> {
    let mut p = join_path(prefix, &node.name);
    if node.node_type == NodeType::Dir {
        p.push(b'/');
    }
    p
}

impl Comparer<'_> {
    fn emit(&mut self, path: &[u8], modifier: &str) -> Result<()> {
        let res = (self.on_change)(&Change {
            path: String::from_utf8_lossy(path).into_owned(),
            modifier: modifier.to_string(),
        });
        if let Err(e) = res {
            self.fatal = Some(e);
            return Err(EngineError::Interrupted);
        }
        Ok(())
    }

    /// Records a non-fatal error, or passes the error on once `on_change` has failed.
    fn warn(&mut self, e: EngineError) -> Result<()> {
        if self.fatal.is_some() {
            return Err(e);
        }
        self.stats.warnings.push(format!("error: {e}"));
        Ok(())
    }

    /// Lists everything below a removed (`-`) or added (`+`) directory.
    fn print_dir(&mut self, added: bool, prefix: &[u8], tree: Id) -> Result<()> {
        // (tree, path prefix) work list, processed depth-first in order.
        let mut stack: Vec<(std::vec::IntoIter<Node>, Vec<u8>)> = Vec::new();
        stack.push((load_sorted(self.repo, &tree)?.into_iter(), prefix.to_vec()));
        let modifier = if added { "+" } else { "-" };
        while let Some((iter, base)) = stack.last_mut() {
            let Some(node) = iter.next() else {
                stack.pop();
                continue;
            };
            let path = dir_path(base, &node);
            self.emit(&path, modifier)?;
            let (stat, set) = if added {
                (&mut self.stats.added, &mut self.after)
            } else {
                (&mut self.stats.removed, &mut self.before)
            };
            stat.add(&node);
            add_blobs(set, &node);
            if node.node_type == NodeType::Dir {
                match node.subtree.map(|s| load_sorted(self.repo, &s)) {
                    Some(Ok(nodes)) => stack.push((nodes.into_iter(), path)),
                    Some(Err(e)) => self.warn(e)?,
                    None => self.warn(EngineError::Invalid(format!(
                        "directory {} has no subtree",
                        String::from_utf8_lossy(&path)
                    )))?,
                }
            }
        }
        Ok(())
    }

    /// Adds every blob below `tree` to the common set (identical subtrees).
    fn collect_dir(&mut self, tree: Id) -> Result<()> {
        let mut todo = vec![tree];
        let mut seen = HashSet::new();
        while let Some(t) = todo.pop() {
            if !seen.insert(t) {
                continue;
            }
            for node in load_sorted(self.repo, &t)? {
                add_blobs(&mut self.common, &node);
                if let (NodeType::Dir, Some(s)) = (&node.node_type, node.subtree) {
                    todo.push(s);
                }
            }
        }
        Ok(())
    }

    fn diff_tree(&mut self, prefix: &[u8], id1: Id, id2: Id) -> Result<()> {
        let tree1 = load_sorted(self.repo, &id1)?;
        let tree2 = load_sorted(self.repo, &id2)?;
        let mut a = tree1.into_iter().peekable();
        let mut b = tree2.into_iter().peekable();
        loop {
            use std::cmp::Ordering;
            let ord = match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(x), Some(y)) => x.name.cmp(&y.name),
            };
            let (n1, n2) = match ord {
                Ordering::Less => (a.next(), None),
                Ordering::Greater => (None, b.next()),
                Ordering::Equal => (a.next(), b.next()),
            };
            if let Some(n) = &n1 {
                add_blobs(&mut self.before, n);
            }
            if let Some(n) = &n2 {
                add_blobs(&mut self.after, n);
            }
            match (n1, n2) {
                (Some(n1), Some(n2)) => self.compare_nodes(prefix, &n1, &n2)?,
                (Some(n1), None) => {
                    let path = dir_path(prefix, &n1);
                    self.emit(&path, "-")?;
                    self.stats.removed.add(&n1);
                    if let (NodeType::Dir, Some(s)) = (&n1.node_type, n1.subtree)
                        && let Err(e) = self.print_dir(false, &path, s)
                    {
                        self.warn(e)?;
                    }
                }
                (None, Some(n2)) => {
                    let path = dir_path(prefix, &n2);
                    self.emit(&path, "+")?;
                    self.stats.added.add(&n2);
                    if let (NodeType::Dir, Some(s)) = (&n2.node_type, n2.subtree)
                        && let Err(e) = self.print_dir(true, &path, s)
                    {
                        self.warn(e)?;
                    }
                }
                (None, None) => break,
            }
        }
        Ok(())
    }

    fn compare_nodes(&mut self, prefix: &[u8], n1: &Node, n2: &Node) -> Result<()> {
        let mut path = join_path(prefix, &n1.name);
        let mut modifier = String::new();
        if n1.node_type != n2.node_type {
            modifier.push('T');
        }
        if n2.node_type == NodeType::Dir {
            path.push(b'/');
        }
        if n1.node_type == NodeType::File
            && n2.node_type == NodeType::File
            && n1.content != n2.content
        {
            modifier.push('M');
            self.stats.changed_files += 1;
            let mut a = n1.clone();
            let mut b = n2.clone();
            a.content = None;
            b.content = None;
            if nodes_equal(&a, &b) {
                modifier.push('?');
            }
        } else if self.opts.metadata && !nodes_equal(n1, n2) {
            modifier.push('U');
        }
        if !modifier.is_empty() {
            self.emit(&path, &modifier)?;
        }
        if n1.node_type == NodeType::Dir && n2.node_type == NodeType::Dir {
            let res = match (n1.subtree, n2.subtree) {
                (Some(s1), Some(s2)) if s1 == s2 => self.collect_dir(s1),
                (Some(s1), Some(s2)) => self.diff_tree(&path, s1, s2),
                _ => Err(EngineError::Invalid(format!(
                    "directory {} has no subtree",
                    String::from_utf8_lossy(&path)
                ))),
            };
            if let Err(e) = res {
                self.warn(e)?;
            }
        }
        Ok(())
    }
}

/// Compares `tree1` (before) with `tree2` (after), calling `on_change` for every change in
/// restic's order, and returns the statistics. Subtrees that fail to load are reported in
/// [`DiffStats::warnings`] (restic prints them and goes on); errors from `on_change` and
/// from loading the two root trees abort.
pub fn diff(
    repo: &Repository,
    tree1: Id,
    tree2: Id,
    opts: DiffOptions,
    on_change: &mut dyn FnMut(&Change) -> Result<()>,
) -> Result<DiffStats> {
    let mut c = Comparer {
        repo,
        opts,
        on_change,
        stats: DiffStats::default(),
        before: BlobSet::new(),
        after: BlobSet::new(),
        common: BlobSet::new(),
        fatal: None,
    };
    c.before.insert((BlobType::Tree, tree1));
    c.after.insert((BlobType::Tree, tree2));
    if let Err(e) = c.diff_tree(b"/", tree1, tree2) {
        return Err(c.fatal.take().unwrap_or(e));
    }

    let Comparer {
        mut stats,
        before,
        after,
        common,
        ..
    } = c;
    let index = repo.index();
    let count =
        |set: &BlobSet, other: &BlobSet, stat: &mut DiffStat, warnings: &mut Vec<String>| {
            for h in set
                .iter()
                .filter(|h| !other.contains(h) && !common.contains(h))
            {
                match h.0 {
                    BlobType::Data => stat.data_blobs += 1,
                    BlobType::Tree => stat.tree_blobs += 1,
                }
                match index.get(h.0, &h.1) {
                    Some(loc) => {
                        let plain = match loc.uncompressed_length {
                            Some(u) => u64::from(u),
                            None => u64::from(loc.length)
                                .saturating_sub(cairn_repo::crypto::OVERHEAD as u64),
                        };
                        stat.bytes += plain;
                    }
                    None => warnings.push(format!(
                        "unable to find blob size for {} {}",
                        h.0.as_str(),
                        h.1.short()
                    )),
                }
            }
        };
    let mut warnings = std::mem::take(&mut stats.warnings);
    count(&before, &after, &mut stats.removed, &mut warnings);
    count(&after, &before, &mut stats.added, &mut warnings);
    stats.warnings = warnings;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_repo::node::ExtendedAttribute;

    #[test]
    fn equality_ignores_xattr_order() {
        let mut a = Node::new("f", NodeType::File);
        a.extended_attributes = vec![
            ExtendedAttribute {
                name: "user.a".into(),
                value: b"1".to_vec(),
            },
            ExtendedAttribute {
                name: "user.b".into(),
                value: b"2".to_vec(),
            },
        ];
        let mut b = a.clone();
        b.extended_attributes.reverse();
        assert!(nodes_equal(&a, &b));
        b.extended_attributes[0].value = b"x".to_vec();
        assert!(!nodes_equal(&a, &b));
        let mut c = a.clone();
        c.content = Some(vec![]);
        assert!(!nodes_equal(&a, &c), "null vs empty content differ");
    }

    #[test]
    fn json_shapes() {
        let c = Change {
            path: "/a/".into(),
            modifier: "+".into(),
        };
        let v = serde_json::to_value(ChangeJson::from(&c)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"message_type":"change","path":"/a/","modifier":"+"})
        );
        let s = DiffStatsJson::new("a", "b", &DiffStats::default());
        let v = serde_json::to_value(s).unwrap();
        assert_eq!(v["message_type"], "statistics");
        assert_eq!(v["added"]["data_blobs"], 0);
        assert_eq!(v["removed"]["bytes"], 0);
    }
}
