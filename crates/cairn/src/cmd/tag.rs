//! `cairn tag`: add, remove or replace snapshot tags (restic's semantics). A changed snapshot
//! is written as a new snapshot file (with `original` pointing at the first version) before
//! the old file is removed.

use crate::cli::{GlobalOpts, SnapshotFilterArgs};
use anyhow::{Result, bail};
use cairn_repo::Id;
use cairn_repo::backend::FileType;
use cairn_repo::repository::{LockMode, Repository};
use cairn_repo::snapshot::Snapshot;
use clap::Args;
use serde_json::json;

/// `tag` options.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// Snapshots to modify (IDs, unique ID prefixes or `latest`); default: all matching the
    /// filters.
    #[arg(value_name = "SNAPSHOT ID")]
    pub ids: Vec<String>,
    /// Tags which replace the existing tags (tag[,tag,...]; repeatable).
    #[arg(long = "set", value_name = "tags")]
    pub set: Vec<String>,
    /// Tags which are added to the existing tags (tag[,tag,...]; repeatable).
    #[arg(long = "add", value_name = "tags")]
    pub add: Vec<String>,
    /// Tags which are removed from the existing tags (tag[,tag,...]; repeatable).
    #[arg(long = "remove", value_name = "tags")]
    pub remove: Vec<String>,
    /// Filters (used when no snapshot ID is given).
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
}

/// restic's `TagLists.Flatten`: every tag of every list, empty tags dropped.
fn flatten(lists: &[String]) -> Vec<String> {
    lists
        .iter()
        .flat_map(|l| cairn_engine::forget::parse_tag_list(l))
        .filter(|t| !t.is_empty())
        .collect()
}

/// The requested tag change.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TagChange {
    /// Replacement tags (restic: applied when non-empty after flattening).
    pub set: Vec<String>,
    /// Tags to add.
    pub add: Vec<String>,
    /// Tags to remove.
    pub remove: Vec<String>,
}

impl TagChange {
    /// Applies the change like restic's `changeTags`; true if the snapshot must be rewritten.
    /// `--set` always counts as a change; `--add` appends missing tags in order; `--remove`
    /// deletes the first occurrence of each tag by moving the last tag into its place.
    pub fn apply(&self, s: &mut Snapshot) -> bool {
        if !self.set.is_empty() {
            s.tags = self.set.clone();
            return true;
        }
        let mut changed = false;
        for t in &self.add {
            if !s.tags.contains(t) {
                s.tags.push(t.clone());
                changed = true;
            }
        }
        for t in &self.remove {
            if let Some(i) = s.tags.iter().position(|x| x == t) {
                s.tags.swap_remove(i);
                changed = true;
            }
        }
        changed
    }
}

/// Rewrites one snapshot with the changed tags: saves the new snapshot, then removes the old
/// file. Returns the new ID, or `None` if nothing changed.
fn retag(repo: &Repository, id: &Id, old: &Snapshot, change: &TagChange) -> Result<Option<Id>> {
    let mut new = old.clone();
    if !change.apply(&mut new) {
        return Ok(None);
    }
    if new.original.is_none() {
        new.original = Some(*id);
    }
    let new_id = repo.save_snapshot(&new)?;
    // IDs hash the encrypted file (random IV), so they always differ; never remove what was
    // just written.
    if new_id != *id {
        repo.backend().remove(FileType::Snapshot, &id.to_hex())?;
    }
    Ok(Some(new_id))
}

/// Run `cairn tag`.
pub fn run(g: &GlobalOpts, a: &TagArgs) -> Result<()> {
    if a.set.is_empty() && a.add.is_empty() && a.remove.is_empty() {
        bail!("nothing to do!");
    }
    if !a.set.is_empty() && (!a.add.is_empty() || !a.remove.is_empty()) {
        bail!("--set and --add/--remove cannot be given at the same time");
    }
    let change = TagChange {
        set: flatten(&a.set),
        add: flatten(&a.add),
        remove: flatten(&a.remove),
    };
    let filter = super::forget::build_filter(&a.filter.host, &a.filter.tag, &a.filter.path);
    let repo = crate::open::open(g)?;
    let _lock = super::lock(g, &repo, LockMode::Exclusive)?;
    let snaps = repo.load_snapshots()?;
    let selected = super::forget::select(g, &repo, &snaps, &a.ids, &filter)?;
    let mut changed = 0usize;
    let mut failed = 0usize;
    for (id, s) in &selected {
        match retag(&repo, id, s, &change) {
            Ok(Some(new_id)) => {
                changed += 1;
                if g.json {
                    crate::output::json_line(&json!({
                        "message_type": "changed",
                        "old_snapshot_id": id.to_hex(),
                        "new_snapshot_id": new_id.to_hex(),
                    }));
                } else if g.verbose >= 1 && !g.quiet {
                    println!(
                        "old snapshot ID: {} -> new snapshot ID: {}",
                        id.to_hex(),
                        new_id.to_hex()
                    );
                }
            }
            Ok(None) => {}
            Err(e) => {
                failed += 1;
                eprintln!(
                    "unable to modify the tags for snapshot ID \"{}\": {e:#}",
                    id.to_hex()
                );
            }
        }
    }
    if g.json {
        crate::output::json_line(&json!({"message_type": "summary", "changed_snapshots": changed}));
    } else if !g.quiet {
        if changed == 0 {
            println!("no snapshots were modified");
        } else {
            println!("modified {changed} snapshots");
        }
    }
    if failed > 0 {
        bail!("failed to modify the tags of {failed} snapshots");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_repo::gotime::GoTime;

    fn snap(tags: &[&str]) -> Snapshot {
        let mut s = Snapshot::new(GoTime::zero(), Id::hash(b"t"), vec!["/x".into()]);
        s.tags = tags.iter().map(|t| t.to_string()).collect();
        s
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn flatten_drops_empty_tags() {
        assert_eq!(flatten(&strs(&["a, b", "", "c,,d"])), ["a", "b", "c", "d"]);
        assert!(flatten(&strs(&[""])).is_empty());
    }

    #[test]
    fn changes_follow_restic() {
        let add = TagChange {
            add: strs(&["b", "x", "x"]),
            ..Default::default()
        };
        let mut s = snap(&["a", "b"]);
        assert!(add.apply(&mut s));
        assert_eq!(s.tags, ["a", "b", "x"]);
        assert!(!add.apply(&mut s));

        // restic removes by swapping in the last tag.
        let rm = TagChange {
            remove: strs(&["a", "zz"]),
            ..Default::default()
        };
        let mut s = snap(&["a", "b", "c"]);
        assert!(rm.apply(&mut s));
        assert_eq!(s.tags, ["c", "b"]);
        assert!(!rm.apply(&mut s));

        let both = TagChange {
            add: strs(&["n"]),
            remove: strs(&["n"]),
            ..Default::default()
        };
        let mut s = snap(&["a"]);
        assert!(both.apply(&mut s));
        assert_eq!(s.tags, ["a"]);

        // --set always rewrites, even with the same tags.
        let set = TagChange {
            set: strs(&["b", "a"]),
            ..Default::default()
        };
        let mut s = snap(&["b", "a"]);
        assert!(set.apply(&mut s));
        assert_eq!(s.tags, ["b", "a"]);
    }
}
