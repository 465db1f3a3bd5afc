//! Snapshot documents (`snapshots/<id>`, spec §8): restic's field order and `omitempty`
//! rules, Go string escaping, and the host/tag/path filters restic's commands use.

use crate::error::{RepoError, Result};
use crate::gojson;
use crate::gotime::GoTime;
use crate::id::Id;
use serde::{Deserialize, Deserializer, Serialize};

/// Backup statistics stored by restic ≥ 0.17 (`summary`); every field is always written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    /// When the backup started.
    #[serde(default)]
    pub backup_start: GoTime,
    /// When the backup finished.
    #[serde(default)]
    pub backup_end: GoTime,
    /// Files that were not in the parent snapshot.
    #[serde(default, deserialize_with = "null_default")]
    pub files_new: u64,
    /// Files that changed since the parent.
    #[serde(default, deserialize_with = "null_default")]
    pub files_changed: u64,
    /// Files reused from the parent.
    #[serde(default, deserialize_with = "null_default")]
    pub files_unmodified: u64,
    /// New directories.
    #[serde(default, deserialize_with = "null_default")]
    pub dirs_new: u64,
    /// Changed directories.
    #[serde(default, deserialize_with = "null_default")]
    pub dirs_changed: u64,
    /// Unchanged directories.
    #[serde(default, deserialize_with = "null_default")]
    pub dirs_unmodified: u64,
    /// Data blobs added.
    #[serde(default, deserialize_with = "null_default")]
    pub data_blobs: u64,
    /// Tree blobs added.
    #[serde(default, deserialize_with = "null_default")]
    pub tree_blobs: u64,
    /// Bytes added before compression.
    #[serde(default, deserialize_with = "null_default")]
    pub data_added: u64,
    /// Bytes added as stored (after compression).
    #[serde(default, deserialize_with = "null_default")]
    pub data_added_packed: u64,
    /// Files processed.
    #[serde(default, deserialize_with = "null_default")]
    pub total_files_processed: u64,
    /// Bytes processed.
    #[serde(default, deserialize_with = "null_default")]
    pub total_bytes_processed: u64,
}

/// A snapshot: what was backed up, when, from where, and the root tree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Snapshot time (backup start) in the writer's local offset.
    #[serde(default)]
    pub time: GoTime,
    /// Snapshot used as parent for change detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Id>,
    /// Root tree blob.
    pub tree: Id,
    /// Backup targets (absolute paths); always written.
    #[serde(default, deserialize_with = "null_default")]
    pub paths: Vec<String>,
    /// Host name.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub hostname: String,
    /// User name.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub username: String,
    /// Uid of the user (omitted when 0).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub uid: u32,
    /// Gid of the user (omitted when 0).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub gid: u32,
    /// Exclude patterns used.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub excludes: Vec<String>,
    /// Tags.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tags: Vec<String>,
    /// ID of the first version of this snapshot before metadata rewrites.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<Id>,
    /// Program that wrote the snapshot (restic ≥ 0.16), e.g. `"restic 0.17.3"`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub program_version: String,
    /// Backup statistics (restic ≥ 0.17).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<SnapshotSummary>,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// Go semantics for `null`: leave the zero value.
fn null_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

impl Snapshot {
    /// A snapshot of `paths` at `time` with the given root tree; everything else empty.
    pub fn new(time: GoTime, tree: Id, paths: Vec<String>) -> Snapshot {
        Snapshot {
            time,
            parent: None,
            tree,
            paths,
            hostname: String::new(),
            username: String::new(),
            uid: 0,
            gid: 0,
            excludes: Vec::new(),
            tags: Vec::new(),
            original: None,
            program_version: String::new(),
            summary: None,
        }
    }

    /// The JSON restic writes (compact, Go escaping, no trailing newline).
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain strings, numbers and IDs to memory cannot fail.
        gojson::to_vec_go(self).unwrap_or_default()
    }

    /// Parses snapshot JSON (unknown fields ignored, missing ones empty; `tree` required).
    pub fn from_json(json: &[u8]) -> Result<Snapshot> {
        serde_json::from_slice(json).map_err(|e| RepoError::corrupt("snapshot", e))
    }

    /// True if the snapshot carries tag `t`.
    pub fn has_tag(&self, t: &str) -> bool {
        self.tags.iter().any(|x| x == t)
    }

    /// restic's `HasTags`: all of `tags` are present; an empty tag `""` matches a snapshot
    /// without tags.
    pub fn has_tags(&self, tags: &[String]) -> bool {
        for t in tags {
            if t.is_empty() && self.tags.is_empty() {
                return true;
            }
            if !self.has_tag(t) {
                return false;
            }
        }
        true
    }

    /// True if the snapshot's paths are the same set as `paths` (parent selection).
    pub fn has_paths(&self, paths: &[String]) -> bool {
        self.contains_paths(paths) && paths_subset(&self.paths, paths)
    }

    /// restic's `HasPaths` (`--path` filter): every one of `paths` is among the snapshot's.
    pub fn contains_paths(&self, paths: &[String]) -> bool {
        paths_subset(paths, &self.paths)
    }

    /// Adds tags that are not present yet; true if anything changed.
    pub fn add_tags(&mut self, tags: &[String]) -> bool {
        let mut changed = false;
        for t in tags {
            if !self.has_tag(t) {
                self.tags.push(t.clone());
                changed = true;
            }
        }
        changed
    }

    /// Removes the given tags; true if anything changed.
    pub fn remove_tags(&mut self, tags: &[String]) -> bool {
        let before = self.tags.len();
        self.tags.retain(|t| !tags.contains(t));
        self.tags.len() != before
    }
}

fn paths_subset(small: &[String], big: &[String]) -> bool {
    small.iter().all(|p| big.contains(p))
}

/// restic's snapshot selection by `--host`, `--tag` and `--path`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotFilter {
    /// Accepted host names (any of them); empty = all hosts.
    pub hosts: Vec<String>,
    /// Tag groups: the snapshot must have all tags of at least one group (`--tag a,b --tag c`
    /// = `[["a","b"],["c"]]`); empty = no tag restriction.
    pub tags: Vec<Vec<String>>,
    /// Paths the snapshot must all contain (restic's `HasPaths`); empty = any paths.
    pub paths: Vec<String>,
}

impl SnapshotFilter {
    /// True if `s` passes the host, tag and path restrictions.
    pub fn matches(&self, s: &Snapshot) -> bool {
        let host_ok = self.hosts.is_empty() || self.hosts.contains(&s.hostname);
        let tags_ok = self.tags.is_empty() || self.tags.iter().any(|g| s.has_tags(g));
        host_ok && tags_ok && s.contains_paths(&self.paths)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2_SNAP2: &str = r#"{"time":"2026-11-26T13:16:17.186340439+01:00","parent":"74bee6adb91355004e1ca59d1b742f95caeade2f48b2a74bf91967b431c0e364","tree":"7aa313e15a0e3026918d17b4954ec38b2b7928a76105067d5b8d69f06976f1d5","paths":["/tmp/restic-fixture-src"],"hostname":"fixture-host","username":"root","tags":["fixture","modified"]}"#;

    fn fixture_dir(repo: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/expected")
            .join(repo)
            .join("snapshots")
    }

    #[test]
    fn golden_snapshots_round_trip() {
        let mut count = 0;
        for repo in ["repo-v1", "repo-v2"] {
            let dir = fixture_dir(repo);
            let entries = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("fixture dir {} missing: {e}", dir.display()));
            for entry in entries {
                let path = entry.unwrap().path();
                let bytes = std::fs::read(&path).unwrap();
                let sn = Snapshot::from_json(&bytes).unwrap();
                assert_eq!(sn.to_json(), bytes, "{}", path.display());
                assert_eq!(sn.hostname, "fixture-host");
                assert_eq!(sn.paths, ["/tmp/restic-fixture-src"]);
                assert!(sn.has_tag("fixture"));
                assert_eq!(sn.uid, 0);
                // serde_json's plain output agrees for these (no <>& in strings).
                assert_eq!(serde_json::to_vec(&sn).unwrap(), bytes);
                count += 1;
            }
        }
        assert_eq!(count, 4, "expected 4 fixture snapshots");
    }

    #[test]
    fn fields_order_omitempty_and_escaping() {
        let sn = Snapshot::from_json(V2_SNAP2.as_bytes()).unwrap();
        assert_eq!(sn.to_json(), V2_SNAP2.as_bytes());
        assert_eq!(sn.time.format(), "2026-11-26T13:16:17.186340439+01:00");
        assert_eq!(
            sn.parent.unwrap().to_hex(),
            "74bee6adb91355004e1ca59d1b742f95caeade2f48b2a74bf91967b431c0e364"
        );

        let mut full = sn.clone();
        full.uid = 1000;
        full.gid = 100;
        full.excludes = vec!["*.tmp".into()];
        full.hostname = "a<b>&c".into();
        full.original = Some(Id::hash(b"x"));
        full.program_version = "cairn 0.1.0".into();
        full.summary = Some(SnapshotSummary {
            files_new: 1,
            total_bytes_processed: 7,
            ..Default::default()
        });
        let json = String::from_utf8(full.to_json()).unwrap();
        let keys: Vec<&str> = [
            "\"time\"",
            "\"parent\"",
            "\"tree\"",
            "\"paths\"",
            "\"hostname\":\"a\\u003cb\\u003e\\u0026c\"",
            "\"username\"",
            "\"uid\":1000",
            "\"gid\":100",
            "\"excludes\"",
            "\"tags\"",
            "\"original\"",
            "\"program_version\"",
            "\"summary\":{\"backup_start\":\"0001-01-01T00:00:00Z\",\"backup_end\":\"0001-01-01T00:00:00Z\",\"files_new\":1,\"files_changed\":0",
            "\"total_bytes_processed\":7}}",
        ]
        .to_vec();
        let mut last = 0;
        for k in keys {
            let pos = json[last..]
                .find(k)
                .unwrap_or_else(|| panic!("{k} not in order in {json}"));
            last += pos + k.len();
        }
        assert_eq!(Snapshot::from_json(json.as_bytes()).unwrap(), full);

        // Empty paths still written; nulls and unknown fields tolerated.
        let mut bare = Snapshot::new(GoTime::zero(), Id::hash(b""), Vec::new());
        assert_eq!(
            String::from_utf8(bare.to_json()).unwrap(),
            "{\"time\":\"0001-01-01T00:00:00Z\",\"tree\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\",\"paths\":[]}"
        );
        let parsed = Snapshot::from_json(
            br#"{"tree":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","paths":null,"tags":null,"hostname":null,"uid":null,"parent":null,"future":{"x":[1]},"time":null}"#,
        )
        .unwrap();
        assert_eq!(parsed, bare);
        bare.tags.push("x".into());
        assert_ne!(parsed, bare);
        assert!(Snapshot::from_json(b"{\"time\":\"2021-01-01T00:00:00Z\"}").is_err());
        assert!(Snapshot::from_json(b"{\"tree\":\"zz\"}").is_err());
        assert!(Snapshot::from_json(b"[]").is_err());
    }

    #[test]
    fn tag_and_path_helpers_and_filter() {
        let mut sn = Snapshot::from_json(V2_SNAP2.as_bytes()).unwrap();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(sn.has_tags(&s(&["fixture", "modified"])));
        assert!(!sn.has_tags(&s(&["fixture", "other"])));
        assert!(!sn.has_tags(&s(&[""])));
        assert!(sn.has_paths(&s(&["/tmp/restic-fixture-src"])));
        assert!(!sn.has_paths(&s(&[])));
        assert!(sn.contains_paths(&s(&[])));
        sn.paths.push("/etc".into());
        assert!(sn.has_paths(&s(&["/etc", "/tmp/restic-fixture-src"])));
        assert!(!sn.has_paths(&s(&["/etc"])));
        assert!(sn.contains_paths(&s(&["/etc"])));

        let mut f = SnapshotFilter::default();
        assert!(f.matches(&sn));
        f.hosts = s(&["other", "fixture-host"]);
        assert!(f.matches(&sn));
        f.tags = vec![s(&["nope"]), s(&["modified", "fixture"])];
        assert!(f.matches(&sn));
        f.tags = vec![s(&["nope"]), s(&["modified", "x"])];
        assert!(!f.matches(&sn));
        f.tags.clear();
        f.paths = s(&["/etc"]);
        assert!(f.matches(&sn));
        f.paths = s(&["/home"]);
        assert!(!f.matches(&sn));
        f.paths.clear();
        f.hosts = s(&["other"]);
        assert!(!f.matches(&sn));

        assert!(!sn.add_tags(&s(&["fixture"])));
        assert!(sn.add_tags(&s(&["new", "fixture"])));
        assert_eq!(sn.tags, s(&["fixture", "modified", "new"]));
        assert!(sn.remove_tags(&s(&["fixture", "absent"])));
        assert!(!sn.remove_tags(&s(&["absent"])));
        sn.tags.clear();
        assert!(
            sn.has_tags(&s(&[""])),
            "empty tag matches untagged snapshot"
        );
        let f = SnapshotFilter {
            tags: vec![s(&[""])],
            ..Default::default()
        };
        assert!(f.matches(&sn));
    }
}
