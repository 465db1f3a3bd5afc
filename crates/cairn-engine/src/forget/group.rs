//! restic's snapshot grouping (`--group-by host,paths,tags`, `GroupSnapshots`).

use crate::{EngineError, Result};
use cairn_repo::Id;
use cairn_repo::snapshot::Snapshot;
use std::collections::BTreeMap;
use std::fmt;

/// Which snapshot properties form a group (restic's `SnapshotGroupByOptions`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupBy {
    /// Group by host name.
    pub host: bool,
    /// Group by the (sorted) list of paths.
    pub paths: bool,
    /// Group by the (sorted) list of tags.
    pub tags: bool,
}

impl GroupBy {
    /// restic's default for `forget`: `host,paths`.
    pub fn host_paths() -> GroupBy {
        GroupBy {
            host: true,
            paths: true,
            tags: false,
        }
    }

    /// Parses a comma list of `host`/`hosts`, `path`/`paths`, `tag`/`tags`; empty entries
    /// are ignored, so `""` means no grouping.
    pub fn parse(s: &str) -> Result<GroupBy> {
        let mut g = GroupBy::default();
        for opt in s.split(',') {
            match opt {
                "host" | "hosts" => g.host = true,
                "path" | "paths" => g.paths = true,
                "tag" | "tags" => g.tags = true,
                "" => {}
                other => {
                    return Err(EngineError::Invalid(format!(
                        "unknown grouping option: {other:?}"
                    )));
                }
            }
        }
        Ok(g)
    }

    /// True if any property is used.
    pub fn is_grouped(&self) -> bool {
        self.host || self.paths || self.tags
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.host {
            parts.push("host");
        }
        if self.paths {
            parts.push("paths");
        }
        if self.tags {
            parts.push("tags");
        }
        f.write_str(&parts.join(","))
    }
}

/// The key of a snapshot group (restic's `SnapshotGroupKey`): the host name (empty when not
/// grouping by host), the sorted paths (`None` when not grouping by paths) and the sorted
/// tags (`None` when not grouping by tags or when the snapshot has no tags, which restic
/// writes as JSON `null`).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    /// Host name, or "".
    pub hostname: String,
    /// Sorted paths.
    pub paths: Option<Vec<String>>,
    /// Sorted tags.
    pub tags: Option<Vec<String>>,
}

impl GroupKey {
    /// restic's `SnapshotGroupKey.String()`, used in messages:
    /// `host alpha, path [/etc /home], tags [a b]`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.hostname.is_empty() {
            parts.push(format!("host {}", self.hostname));
        }
        if let Some(p) = self.paths.as_ref().filter(|p| !p.is_empty()) {
            parts.push(format!("path [{}]", p.join(" ")));
        }
        if let Some(t) = self.tags.as_ref().filter(|t| !t.is_empty()) {
            parts.push(format!("tags [{}]", t.join(" ")));
        }
        parts.join(", ")
    }
}

/// restic's `GroupSnapshots`: splits `snaps` into groups, keeping the input order inside each
/// group; groups are returned sorted by key. Like restic, every snapshot's `paths` are sorted
/// in place, and its `tags` too when grouping by tags (this shows in the JSON output).
pub fn group_snapshots(
    snaps: Vec<(Id, Snapshot)>,
    by: GroupBy,
) -> Vec<(GroupKey, Vec<(Id, Snapshot)>)> {
    let mut groups: BTreeMap<GroupKey, Vec<(Id, Snapshot)>> = BTreeMap::new();
    for (id, mut sn) in snaps {
        sn.paths.sort();
        let mut key = GroupKey::default();
        if by.tags {
            sn.tags.sort();
            if !sn.tags.is_empty() {
                key.tags = Some(sn.tags.clone());
            }
        }
        if by.host {
            key.hostname = sn.hostname.clone();
        }
        if by.paths {
            key.paths = Some(sn.paths.clone());
        }
        groups.entry(key).or_default().push((id, sn));
    }
    groups.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_repo::gotime::GoTime;

    fn snap(host: &str, paths: &[&str], tags: &[&str]) -> Snapshot {
        let mut s = Snapshot::new(
            GoTime::zero(),
            Id::hash(b"tree"),
            paths.iter().map(|p| p.to_string()).collect(),
        );
        s.hostname = host.into();
        s.tags = tags.iter().map(|t| t.to_string()).collect();
        s
    }

    #[test]
    fn parse_group_by() {
        assert_eq!(GroupBy::parse("host,paths").unwrap(), GroupBy::host_paths());
        assert_eq!(GroupBy::parse("hosts,path").unwrap(), GroupBy::host_paths());
        assert_eq!(GroupBy::parse("").unwrap(), GroupBy::default());
        assert!(!GroupBy::parse(",").unwrap().is_grouped());
        let t = GroupBy::parse("tags").unwrap();
        assert!(t.tags && !t.host && !t.paths);
        assert_eq!(t.to_string(), "tags");
        assert!(GroupBy::parse("host,bogus").is_err());
        assert!(GroupBy::parse("host paths").is_err());
        assert_eq!(
            GroupBy::parse("tag,path,host").unwrap().to_string(),
            "host,paths,tags"
        );
    }

    #[test]
    fn groups_compare_sorted_lists_and_sort_in_place() {
        let snaps = vec![
            (Id([1; 32]), snap("a", &["/home", "/etc"], &["y", "x"])),
            (Id([2; 32]), snap("a", &["/etc", "/home"], &[])),
            (Id([3; 32]), snap("b", &["/etc"], &["x", "y"])),
        ];
        let g = group_snapshots(snaps.clone(), GroupBy::host_paths());
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].0.hostname, "a");
        assert_eq!(g[0].0.paths, Some(vec!["/etc".into(), "/home".into()]));
        assert_eq!(g[0].0.tags, None);
        assert_eq!(g[0].1.len(), 2);
        // Paths sorted in place, tags untouched when not grouping by tags.
        assert_eq!(g[0].1[0].1.paths, ["/etc", "/home"]);
        assert_eq!(g[0].1[0].1.tags, ["y", "x"]);
        assert_eq!(g[0].0.describe(), "host a, path [/etc /home]");

        let g = group_snapshots(snaps.clone(), GroupBy::parse("tags").unwrap());
        // Untagged → key tags null, sorts first.
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].0.tags, None);
        assert_eq!(g[0].0.describe(), "");
        assert_eq!(g[1].0.tags, Some(vec!["x".into(), "y".into()]));
        assert_eq!(g[1].1[0].1.tags, ["x", "y"]);
        assert_eq!(g[1].0.describe(), "tags [x y]");
        assert_eq!(g[1].1.len(), 2);

        let g = group_snapshots(snaps, GroupBy::default());
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].0, GroupKey::default());
        let ids: Vec<Id> = g[0].1.iter().map(|x| x.0).collect();
        assert_eq!(ids, [Id([1; 32]), Id([2; 32]), Id([3; 32])]);
    }
}
