//! Snapshot selection and tree walking shared by `restore`, `ls`, `dump`, `diff` and `find`.
//!
//! * [`find_snapshot`]: restic's `latest` / id-prefix / `ID:subfolder` selector
//!   (`SnapshotFilter.FindLatest` + `FindSnapshot`).
//! * [`select_snapshots`]: restic's `FindAll` (explicit ids or all snapshots matching a filter).
//! * [`resolve_subtree`]: restic's `FindTreeDirectory` (the `:subfolder` part).
//! * [`walk_tree`]: restic's `walker.Walk`: depth-first, nodes sorted by raw name, paths
//!   `/a/b` built from the raw names.

use crate::{EngineError, Result};
use cairn_repo::node::{Node, NodeType};
use cairn_repo::repository::Repository;
use cairn_repo::snapshot::{Snapshot, SnapshotFilter};
use cairn_repo::{Id, RepoError};
use std::collections::HashSet;

/// The visitor of [`walk_tree_ext`]: (id of the tree holding the node, raw path, node).
pub type WalkVisitor<'a> = dyn FnMut(&Id, &[u8], &Node) -> Result<WalkAction> + 'a;

/// What the walker should do after visiting a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkAction {
    /// Keep going (descend into a directory).
    Continue,
    /// Do not descend into this directory (no effect for other node types).
    SkipChildren,
}

/// Splits a snapshot selector `ID[:subfolder]` at the first `:` (restic ≥ 0.17 syntax).
/// An empty subfolder (`ID:`) is `None`.
pub fn split_snapshot_spec(spec: &str) -> (&str, Option<&str>) {
    match spec.split_once(':') {
        Some((id, sub)) if !sub.is_empty() => (id, Some(sub)),
        Some((id, _)) => (id, None),
        None => (spec, None),
    }
}

/// The newest snapshot of `snaps` that passes `filter` (restic's `findLatest`; on equal
/// times the later entry of `snaps` wins). `snaps` is expected oldest first, as
/// `Repository::load_snapshots` returns them.
pub fn latest_snapshot<'a>(
    snaps: &'a [(Id, Snapshot)],
    filter: &SnapshotFilter,
) -> Option<&'a (Id, Snapshot)> {
    let mut latest: Option<&(Id, Snapshot)> = None;
    for entry in snaps {
        if let Some(l) = latest
            && entry.1.time < l.1.time
        {
            continue;
        }
        if filter.matches(&entry.1) {
            latest = Some(entry);
        }
    }
    latest
}

fn describe_filter(filter: &SnapshotFilter) -> String {
    let tags: Vec<String> = filter.tags.iter().map(|g| g.join(",")).collect();
    format!(
        "snapshot filter (Paths:{:?} Tags:{:?} Hosts:{:?})",
        filter.paths, tags, filter.hosts
    )
}

/// Resolves a full or abbreviated snapshot id (no `latest`, no subfolder). Looks in `snaps`
/// first and falls back to the repository listing (for snapshots missing from `snaps`).
pub fn find_snapshot_by_id(
    repo: &Repository,
    snaps: &[(Id, Snapshot)],
    prefix: &str,
) -> Result<(Id, Snapshot)> {
    if prefix.is_empty() {
        return Err(EngineError::Invalid(
            "no snapshot ID specified, specify snapshot ID or use special ID 'latest'".into(),
        ));
    }
    if let Some(id) = Id::from_name(&prefix.to_ascii_lowercase()) {
        if let Some((_, s)) = snaps.iter().find(|(i, _)| *i == id) {
            return Ok((id, s.clone()));
        }
        return match repo.load_snapshot(&id) {
            Ok(s) => Ok((id, s)),
            Err(RepoError::Backend(e)) if e.is_not_found() => Err(EngineError::NoSnapshot(
                format!("no snapshot with ID {prefix:?} found"),
            )),
            Err(e) => Err(e.into()),
        };
    }
    if !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(EngineError::NoSnapshot(format!(
            "invalid snapshot ID {prefix:?}: not a hex ID prefix and not \"latest\""
        )));
    }
    let matches: Vec<&(Id, Snapshot)> =
        snaps.iter().filter(|(i, _)| i.has_prefix(prefix)).collect();
    match matches.as_slice() {
        [one] => Ok((one.0, one.1.clone())),
        [] => {
            // Not among the loaded snapshots: ask the repository listing.
            match repo.find_id(cairn_repo::backend::FileType::Snapshot, prefix) {
                Ok(id) => Ok((id, repo.load_snapshot(&id)?)),
                Err(RepoError::Invalid(_)) => Err(EngineError::NoSnapshot(format!(
                    "no snapshot matching ID prefix {prefix:?} found"
                ))),
                Err(e) => Err(e.into()),
            }
        }
        _ => Err(EngineError::Invalid(format!(
            "multiple snapshots match ID prefix {prefix:?}; give more digits"
        ))),
    }
}

/// Selects one snapshot: `latest` (newest passing `filter`), a full or abbreviated id (the
/// filter is ignored, like restic), optionally followed by `:sub/folder`. Returns the id,
/// the snapshot and the subfolder (if one was given).
pub fn find_snapshot(
    repo: &Repository,
    snaps: &[(Id, Snapshot)],
    spec: &str,
    filter: &SnapshotFilter,
) -> Result<(Id, Snapshot, Option<String>)> {
    let (id_part, sub) = split_snapshot_spec(spec);
    let sub = sub.map(str::to_string);
    if id_part == "latest" {
        return match latest_snapshot(snaps, filter) {
            Some((id, s)) => Ok((*id, s.clone(), sub)),
            None => Err(EngineError::NoSnapshot(format!(
                "{}: no snapshot found",
                describe_filter(filter)
            ))),
        };
    }
    let (id, s) = find_snapshot_by_id(repo, snaps, id_part)?;
    Ok((id, s, sub))
}

/// restic's `FindAll`: with explicit `specs`, those snapshots (`latest` = newest passing
/// `filter`, used at most once; duplicates dropped; `ID:subfolder` is an error); without,
/// every snapshot of `snaps` that passes `filter`, in the order of `snaps`. With explicit
/// ids and a non-empty filter but no `latest`, the filter is ignored (restic warns).
pub fn select_snapshots(
    repo: &Repository,
    snaps: &[(Id, Snapshot)],
    specs: &[String],
    filter: &SnapshotFilter,
) -> Result<Vec<(Id, Snapshot)>> {
    if specs.is_empty() {
        return Ok(snaps
            .iter()
            .filter(|(_, s)| filter.matches(s))
            .cloned()
            .collect());
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut used_latest = false;
    for spec in specs {
        let (id_part, sub) = split_snapshot_spec(spec);
        if sub.is_some() || spec.starts_with("latest:") {
            return Err(EngineError::Invalid(
                "<snapshot>:<subfolder> syntax not allowed".into(),
            ));
        }
        let entry = if id_part == "latest" {
            if used_latest {
                continue;
            }
            used_latest = true;
            match latest_snapshot(snaps, filter) {
                Some(e) => e.clone(),
                None => {
                    return Err(EngineError::NoSnapshot(format!(
                        "no snapshot matched given filter ({})",
                        describe_filter(filter)
                    )));
                }
            }
        } else {
            find_snapshot_by_id(repo, snaps, id_part)?
        };
        if seen.insert(entry.0) {
            out.push(entry);
        }
    }
    Ok(out)
}

/// Path components of a subfolder after Go's `path.Clean` (`.` and empty parts dropped,
/// `..` removes the previous component; leading `..` are kept and will not be found).
pub(crate) fn clean_components(path: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    let rooted = path.starts_with('/');
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if matches!(out.last(), Some(c) if *c != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Loads a tree and sorts its nodes by raw name (restic's walker sorts too).
pub(crate) fn load_sorted(repo: &Repository, id: &Id) -> Result<Vec<Node>> {
    let mut tree = repo.load_tree(id)?;
    tree.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tree.nodes)
}

/// The subtree id of a directory node, or a corruption error naming `path`.
pub(crate) fn subtree_of(node: &Node, path: &[u8]) -> Result<Id> {
    node.subtree.ok_or_else(|| {
        EngineError::Repo(RepoError::corrupt(
            format!("directory {}", String::from_utf8_lossy(path)),
            "dir node has no subtree",
        ))
    })
}

/// restic's `FindTreeDirectory`: follows `subfolder` (slash-separated, relative to the tree)
/// down from `tree` and returns the tree id of that directory. An empty subfolder (or `/`)
/// is the tree itself.
pub fn resolve_subtree(repo: &Repository, tree: Id, subfolder: &str) -> Result<Id> {
    let mut id = tree;
    let mut walked = String::new();
    for name in clean_components(subfolder) {
        if !walked.is_empty() {
            walked.push('/');
        }
        walked.push_str(name);
        let t = repo.load_tree(&id)?;
        let node = t
            .nodes
            .iter()
            .find(|n| n.name == name.as_bytes())
            .ok_or_else(|| EngineError::Invalid(format!("path {walked}: not found")))?;
        if node.node_type != NodeType::Dir {
            return Err(EngineError::Invalid(format!(
                "path {walked}: not a directory"
            )));
        }
        id = subtree_of(node, walked.as_bytes())?;
    }
    Ok(id)
}

/// Joins a walk prefix and a raw name: `/` + `a` → `/a`, `/x` + `a` → `/x/a`.
pub(crate) fn join_path(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let base = prefix.strip_suffix(b"/").unwrap_or(prefix);
    let mut p = Vec::with_capacity(base.len() + 1 + name.len());
    p.extend_from_slice(base);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

/// Depth-first walk of `tree` in restic's order (each directory's nodes sorted by raw name;
/// a directory is visited before its contents). `visit` gets the id of the tree holding the
/// node, the path `prefix/name…` (raw bytes; `prefix` is usually `/`) and the node.
/// Directories whose visit returns [`WalkAction::SkipChildren`] are not loaded. Uses an
/// explicit stack (no recursion), so deep trees cannot overflow the call stack.
pub fn walk_tree_ext(
    repo: &Repository,
    tree: Id,
    prefix: &[u8],
    visit: &mut WalkVisitor<'_>,
) -> Result<()> {
    struct Frame {
        tree: Id,
        nodes: std::vec::IntoIter<Node>,
        base: Vec<u8>,
    }
    let base = prefix.strip_suffix(b"/").unwrap_or(prefix).to_vec();
    let mut stack = vec![Frame {
        tree,
        nodes: load_sorted(repo, &tree)?.into_iter(),
        base,
    }];
    while let Some(frame) = stack.last_mut() {
        let Some(node) = frame.nodes.next() else {
            stack.pop();
            continue;
        };
        let path = join_path(&frame.base, &node.name);
        let action = visit(&frame.tree, &path, &node)?;
        if node.node_type == NodeType::Dir && action == WalkAction::Continue {
            let sub = subtree_of(&node, &path)?;
            let nodes = load_sorted(repo, &sub)?;
            stack.push(Frame {
                tree: sub,
                nodes: nodes.into_iter(),
                base: path,
            });
        }
    }
    Ok(())
}

/// [`walk_tree_ext`] without the parent tree id.
pub fn walk_tree_raw(
    repo: &Repository,
    tree: Id,
    prefix: &[u8],
    visit: &mut dyn FnMut(&[u8], &Node) -> Result<WalkAction>,
) -> Result<()> {
    walk_tree_ext(repo, tree, prefix, &mut |_, p, n| visit(p, n))
}

/// [`walk_tree_raw`] with paths converted for display (invalid UTF-8 replaced by U+FFFD,
/// which is what restic's JSON output shows).
pub fn walk_tree(
    repo: &Repository,
    tree: Id,
    prefix: &str,
    visit: &mut dyn FnMut(&str, &Node) -> Result<WalkAction>,
) -> Result<()> {
    walk_tree_raw(repo, tree, prefix.as_bytes(), &mut |p, n| {
        visit(&String::from_utf8_lossy(p), n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_spec() {
        assert_eq!(split_snapshot_spec("latest"), ("latest", None));
        assert_eq!(split_snapshot_spec("abc:a/b"), ("abc", Some("a/b")));
        assert_eq!(split_snapshot_spec("abc:"), ("abc", None));
        assert_eq!(split_snapshot_spec("abc:x:y"), ("abc", Some("x:y")));
    }

    #[test]
    fn clean() {
        assert_eq!(clean_components("/a//b/./c/"), vec!["a", "b", "c"]);
        assert_eq!(clean_components("a/../b"), vec!["b"]);
        assert_eq!(clean_components("../b"), vec!["..", "b"]);
        assert_eq!(clean_components("/../b"), vec!["b"]);
        assert!(clean_components("/").is_empty());
        assert!(clean_components("").is_empty());
    }

    #[test]
    fn join() {
        assert_eq!(join_path(b"/", b"a"), b"/a");
        assert_eq!(join_path(b"", b"a"), b"/a");
        assert_eq!(join_path(b"/x/", b"a"), b"/x/a");
        assert_eq!(join_path(b"/x", b"a\xff"), b"/x/a\xff");
    }
}
