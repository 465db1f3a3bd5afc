//! `find`: search snapshots for nodes whose path matches restic filter patterns, or for
//! blob / tree / pack ids (`--blob`, `--tree`, `--pack`).
//!
//! Pattern semantics are restic's `filter.Match` on the full path (`/dir/name`): a pattern
//! without a leading `/` matches any run of path components (so `*.txt` matches every
//! `.txt` file at any depth, and `foo` matches `/a/foo` and everything below it); with a
//! leading `/` it is anchored at the snapshot root. Directories are only entered when a
//! child may still match (`filter.ChildMatch`). Several patterns: any may match.

use crate::filter::PatternList;
use crate::select::{WalkAction, select_snapshots, walk_tree_ext, walk_tree_raw};
use crate::{EngineError, Result};
use cairn_repo::gotime::GoTime;
use cairn_repo::node::{Node, NodeType};
use cairn_repo::repository::Repository;
use cairn_repo::snapshot::{Snapshot, SnapshotFilter};
use cairn_repo::{BlobType, Id};
use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone};
use serde::Serialize;

/// Options of [`find`] and [`find_objects`].
#[derive(Clone, Debug, Default)]
pub struct FindOptions {
    /// Patterns (or ids for [`find_objects`]).
    pub patterns: Vec<String>,
    /// Lower-case patterns and paths before matching (`--ignore-case`).
    pub ignore_case: bool,
    /// Only nodes modified at or after this time (`--oldest`).
    pub oldest: Option<GoTime>,
    /// Only nodes modified at or before this time (`--newest`).
    pub newest: Option<GoTime>,
    /// Explicit snapshots (`--snapshot`, may be `latest`); empty = all matching `filter`.
    pub snapshots: Vec<String>,
    /// `--host` / `--tag` / `--path` restrictions.
    pub filter: SnapshotFilter,
    /// Search oldest snapshot first (`--reverse`); default is newest first.
    pub reverse: bool,
}

/// One matching node.
#[derive(Clone, Debug, PartialEq)]
pub struct FindMatch {
    /// Path in the snapshot (invalid UTF-8 replaced).
    pub path: String,
    /// The node.
    pub node: Node,
}

/// The matches in one snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct FindSnapshotResult {
    /// Snapshot id.
    pub snapshot_id: Id,
    /// The snapshot.
    pub snapshot: Snapshot,
    /// Matches in walk order.
    pub matches: Vec<FindMatch>,
}

/// restic's time formats for `--oldest` / `--newest`, read in the local time zone.
const TIME_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
];
const TIME_FORMATS_TZ: &[&str] = &["%Y-%m-%d %H:%M:%S %z", "%d.%m.%Y %H:%M:%S %z"];
const DATE_FORMATS: &[&str] = &["%Y-%m-%d", "%d.%m.%Y"];

fn local_go_time(ndt: NaiveDateTime) -> Option<GoTime> {
    Local
        .from_local_datetime(&ndt)
        .earliest()
        .map(|t| GoTime(t.fixed_offset()))
}

/// Parses a `--oldest` / `--newest` value like restic (`2006-01-02`, `2006-01-02 15:04`,
/// `2006-01-02 15:04:05`, `2006-01-02 15:04:05 -0700`, `02.01.2006[ 15:04[:05][ -0700]]`),
/// in the local time zone unless an offset is given.
pub fn parse_find_time(s: &str) -> Result<GoTime> {
    let s = s.trim();
    for f in TIME_FORMATS_TZ {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Ok(GoTime(t));
        }
    }
    for f in TIME_FORMATS {
        if let Some(t) = NaiveDateTime::parse_from_str(s, f)
            .ok()
            .and_then(local_go_time)
        {
            return Ok(t);
        }
    }
    for f in DATE_FORMATS {
        if let Some(t) = NaiveDate::parse_from_str(s, f)
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .and_then(local_go_time)
        {
            return Ok(t);
        }
    }
    Err(EngineError::Invalid(format!("unable to parse time: {s:?}")))
}

/// The snapshots `find` searches: [`select_snapshots`] sorted newest first (oldest first
/// with `reverse`).
pub fn find_snapshots(
    repo: &Repository,
    snaps: &[(Id, Snapshot)],
    opts: &FindOptions,
) -> Result<Vec<(Id, Snapshot)>> {
    let mut list = select_snapshots(repo, snaps, &opts.snapshots, &opts.filter)?;
    list.sort_by_key(|a| a.1.time);
    if !opts.reverse {
        list.reverse();
    }
    Ok(list)
}

/// Compiled find patterns: restic matches each pattern separately (a leading `!` has no
/// meaning), and the empty pattern matches everything.
struct Matcher {
    list: PatternList,
    match_all: bool,
}

impl Matcher {
    fn new(patterns: &[String], ignore_case: bool) -> Result<Matcher> {
        if patterns.is_empty() {
            return Err(EngineError::Invalid("wrong number of arguments".into()));
        }
        let match_all = patterns.iter().any(|p| p.is_empty() || p == "!");
        let stripped: Vec<&[u8]> = patterns
            .iter()
            .map(|p| p.strip_prefix('!').unwrap_or(p).as_bytes())
            .collect();
        let list = PatternList::new(&stripped, ignore_case)
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        Ok(Matcher { list, match_all })
    }

    /// (path matches, children may match).
    fn check(&self, path: &[u8]) -> (bool, bool) {
        if self.match_all {
            return (true, true);
        }
        self.list.matches_with_child(path)
    }
}

fn time_ok(node: &Node, opts: &FindOptions) -> bool {
    if opts.oldest.is_some_and(|o| node.mtime < o) {
        return false;
    }
    if opts.newest.is_some_and(|n| node.mtime > n) {
        return false;
    }
    true
}

/// Searches the snapshots selected by `opts` (see [`find_snapshots`]) for nodes whose path
/// matches one of `opts.patterns` and whose mtime is within `oldest`/`newest`, calling
/// `on_match(snapshot id, snapshot, path, node)` in order (snapshot by snapshot, each in
/// walk order). Returns the number of matches.
pub fn find(
    repo: &Repository,
    snaps: &[(Id, Snapshot)],
    opts: &FindOptions,
    on_match: &mut dyn FnMut(&Id, &Snapshot, &str, &Node) -> Result<()>,
) -> Result<usize> {
    let matcher = Matcher::new(&opts.patterns, opts.ignore_case)?;
    if let (Some(o), Some(n)) = (opts.oldest, opts.newest)
        && o > n
    {
        return Err(EngineError::Invalid(
            "--oldest must specify a time before --newest".into(),
        ));
    }
    let mut hits = 0usize;
    for (id, snap) in find_snapshots(repo, snaps, opts)? {
        walk_tree_raw(repo, snap.tree, b"/", &mut |path, node| {
            let (found, child) = matcher.check(path);
            let no_match = if node.node_type == NodeType::Dir && !child {
                WalkAction::SkipChildren
            } else {
                WalkAction::Continue
            };
            if !found || !time_ok(node, opts) {
                return Ok(no_match);
            }
            hits += 1;
            on_match(&id, &snap, &String::from_utf8_lossy(path), node)?;
            Ok(WalkAction::Continue)
        })?;
    }
    Ok(hits)
}

/// [`find`] collecting the matches per snapshot (snapshots without matches are left out).
pub fn find_collect(
    repo: &Repository,
    snaps: &[(Id, Snapshot)],
    opts: &FindOptions,
) -> Result<Vec<FindSnapshotResult>> {
    let mut out: Vec<FindSnapshotResult> = Vec::new();
    find(repo, snaps, opts, &mut |id, snap, path, node| {
        let m = FindMatch {
            path: path.to_string(),
            node: node.clone(),
        };
        match out.last_mut() {
            Some(r) if r.snapshot_id == *id => r.matches.push(m),
            _ => out.push(FindSnapshotResult {
                snapshot_id: *id,
                snapshot: snap.clone(),
                matches: vec![m],
            }),
        }
        Ok(())
    })?;
    Ok(out)
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

/// One match in `find --json`: restic's node JSON without `name`, `extended_attributes`,
/// `device`, `content`, `subtree` (and, in 0.14, `inode`), preceded by `path` and
/// `permissions`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FindMatchJson {
    /// Full path.
    pub path: String,
    /// Go `FileMode.String()` of `mode`.
    pub permissions: String,
    /// Node type.
    #[serde(rename = "type")]
    pub node_type: String,
    /// Go `FileMode` bits (omitted when 0).
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub mode: u32,
    /// Modification time.
    pub mtime: GoTime,
    /// Access time.
    pub atime: GoTime,
    /// Change time.
    pub ctime: GoTime,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Owner name (omitted when empty).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// Group name (omitted when empty).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Inode (restic ≥ 0.17 style only, omitted when 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inode: Option<u64>,
    /// `st_dev` (omitted when 0).
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub device_id: u64,
    /// Size (omitted when 0).
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub size: u64,
    /// Link count (omitted when 0).
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub links: u64,
    /// Symlink target (omitted when empty).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub linktarget: String,
    /// Metadata error text (omitted when empty).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
}

impl FindMatchJson {
    /// The JSON form of a match.
    pub fn new(path: &str, node: &Node, style: crate::ls::JsonStyle) -> Self {
        let modern = style == crate::ls::JsonStyle::Modern;
        FindMatchJson {
            path: path.to_string(),
            permissions: crate::ls::go_mode_string(node.mode),
            node_type: node.node_type.as_str().to_string(),
            mode: node.mode,
            mtime: node.mtime,
            atime: node.atime,
            ctime: node.ctime,
            uid: node.uid,
            gid: node.gid,
            user: node.user.clone(),
            group: node.group.clone(),
            inode: (modern && node.inode != 0).then_some(node.inode),
            device_id: node.device_id,
            size: node.size,
            links: node.links,
            linktarget: String::from_utf8_lossy(&node.linktarget).into_owned(),
            error: node.error.clone(),
        }
    }
}

/// The matches of one snapshot in `find --json` (the output is a JSON array of these).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FindSnapshotJson {
    /// The matches.
    pub matches: Vec<FindMatchJson>,
    /// Number of matches.
    pub hits: usize,
    /// Full snapshot id.
    pub snapshot: Id,
}

impl FindSnapshotResult {
    /// The `find --json` element for this snapshot.
    pub fn to_json(&self, style: crate::ls::JsonStyle) -> FindSnapshotJson {
        FindSnapshotJson {
            matches: self
                .matches
                .iter()
                .map(|m| FindMatchJson::new(&m.path, &m.node, style))
                .collect(),
            hits: self.matches.len(),
            snapshot: self.snapshot_id,
        }
    }
}

/// What [`find_objects`] looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    /// Data blob ids (`--blob`).
    Blob,
    /// Tree ids (`--tree`).
    Tree,
    /// Pack ids (`--pack`): every blob stored in those packs (looked up in the index).
    Pack,
}

/// One occurrence of a searched blob or tree (`find --blob/--tree/--pack`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FoundObject {
    /// `"blob"` or `"tree"`.
    pub object_type: &'static str,
    /// Full id.
    pub id: Id,
    /// For a blob: the file containing it; for a tree: the directory (`/` for the root).
    pub path: String,
    /// For a blob: the tree containing the file node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_tree: Option<Id>,
    /// The snapshot.
    #[serde(rename = "snapshot")]
    pub snapshot_id: Id,
    /// Snapshot time.
    pub time: GoTime,
}

/// Expands pack id prefixes to the blobs the index lists for those packs.
fn pack_blobs(repo: &Repository, packs: &[String]) -> Result<(Vec<String>, Vec<String>)> {
    let mut blobs = Vec::new();
    let mut trees = Vec::new();
    let mut found = vec![false; packs.len()];
    for (t, id, loc) in repo.index().iter() {
        let mut hit = false;
        for (p, f) in packs.iter().zip(found.iter_mut()) {
            if loc.pack_id.has_prefix(p) {
                *f = true;
                hit = true;
            }
        }
        if hit {
            match t {
                BlobType::Data => blobs.push(id.to_hex()),
                BlobType::Tree => trees.push(id.to_hex()),
            }
        }
    }
    let mut missing: Vec<&String> = packs
        .iter()
        .zip(&found)
        .filter(|(_, f)| !**f)
        .map(|(p, _)| p)
        .collect();
    if !missing.is_empty() {
        missing.sort();
        return Err(EngineError::Invalid(format!(
            "unable to find pack(s): {missing:?}"
        )));
    }
    Ok((blobs, trees))
}

fn matches_any(id: &Id, prefixes: &[String]) -> bool {
    prefixes.iter().any(|p| id.has_prefix(p))
}

/// `find --blob` / `--tree` / `--pack`: reports every place in the selected snapshots where
/// one of the ids (full or abbreviated, in `opts.patterns`) occurs, calling `on_found` in
/// walk order. Returns the number of occurrences.
pub fn find_objects(
    repo: &Repository,
    snaps: &[(Id, Snapshot)],
    opts: &FindOptions,
    kind: ObjectKind,
    on_found: &mut dyn FnMut(&FoundObject) -> Result<()>,
) -> Result<usize> {
    if opts.patterns.is_empty() {
        return Err(EngineError::Invalid("wrong number of arguments".into()));
    }
    for p in &opts.patterns {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(EngineError::Invalid(format!("invalid ID {p:?}")));
        }
    }
    let (blobs, trees) = match kind {
        ObjectKind::Blob => (opts.patterns.clone(), Vec::new()),
        ObjectKind::Tree => (Vec::new(), opts.patterns.clone()),
        ObjectKind::Pack => pack_blobs(repo, &opts.patterns)?,
    };
    let mut count = 0usize;
    for (sid, snap) in find_snapshots(repo, snaps, opts)? {
        let mut report = |object_type, id: Id, path: String, parent_tree| {
            count += 1;
            on_found(&FoundObject {
                object_type,
                id,
                path,
                parent_tree,
                snapshot_id: sid,
                time: snap.time,
            })
        };
        if matches_any(&snap.tree, &trees) {
            report("tree", snap.tree, "/".to_string(), None)?;
        }
        walk_tree_ext(repo, snap.tree, b"/", &mut |parent, path, node| {
            match node.node_type {
                NodeType::Dir if !trees.is_empty() => {
                    if let Some(sub) = node.subtree.filter(|s| matches_any(s, &trees)) {
                        report(
                            "tree",
                            sub,
                            String::from_utf8_lossy(path).into_owned(),
                            None,
                        )?;
                    }
                }
                NodeType::File if !blobs.is_empty() => {
                    for b in node.content.iter().flatten() {
                        if matches_any(b, &blobs) {
                            report(
                                "blob",
                                *b,
                                String::from_utf8_lossy(path).into_owned(),
                                Some(*parent),
                            )?;
                        }
                    }
                }
                _ => {}
            }
            Ok(WalkAction::Continue)
        })?;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let t = parse_find_time("2021-03-04 05:06:07 +0100").unwrap();
        assert_eq!(t.format(), "2021-03-04T05:06:07+01:00");
        let d = parse_find_time("2021-03-04").unwrap();
        let l = parse_find_time("04.03.2021 00:00").unwrap();
        assert_eq!(d, l);
        assert!(parse_find_time("2021-03-04 05:06").is_ok());
        assert!(parse_find_time("04.03.2021").is_ok());
        assert!(parse_find_time("yesterday").is_err());
    }

    #[test]
    fn matcher() {
        let m = Matcher::new(&["*.txt".into()], false).unwrap();
        assert_eq!(m.check(b"/a/b.txt"), (true, true));
        assert!(!m.check(b"/a/b.TXT").0);
        let m = Matcher::new(&["*.TXT".into()], true).unwrap();
        assert!(m.check(b"/a/b.txt").0);
        let m = Matcher::new(&["/a/b".into()], false).unwrap();
        assert_eq!(m.check(b"/a"), (false, true));
        assert_eq!(m.check(b"/x"), (false, false));
        assert!(m.check(b"/a/b/c").0);
        let m = Matcher::new(&["".into()], false).unwrap();
        assert_eq!(m.check(b"/anything"), (true, true));
        assert!(Matcher::new(&[], false).is_err());
        assert!(Matcher::new(&["[".into()], false).is_err());
    }
}
