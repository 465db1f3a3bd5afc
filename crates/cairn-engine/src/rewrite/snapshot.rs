//! Replacing a snapshot by its rewritten version (restic's `filterAndReplaceSnapshot`).

use crate::Result;
use cairn_repo::Id;
use cairn_repo::backend::FileType;
use cairn_repo::gotime::GoTime;
use cairn_repo::repository::Repository;
use cairn_repo::snapshot::Snapshot;

use super::SnapshotSize;

/// How to replace a snapshot after its tree was rewritten.
#[derive(Debug, Clone, Default)]
pub struct ReplaceOptions {
    /// Only report what would be done.
    pub dry_run: bool,
    /// Remove the original snapshot after saving the new one (no tag is added then).
    pub forget: bool,
    /// Tag added to the new snapshot unless `forget` (`rewrite`, `repaired`).
    pub add_tag: String,
    /// New host name (`--new-host`).
    pub new_host: Option<String>,
    /// New snapshot time (`--new-time`).
    pub new_time: Option<GoTime>,
    /// New `total_files_processed`/`total_bytes_processed` for a snapshot that has a summary
    /// (set by `rewrite --exclude`).
    pub size: Option<SnapshotSize>,
}

/// What [`replace_snapshot`] did (or would do in a dry run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replaced {
    /// Tree and metadata unchanged: nothing written.
    Unchanged,
    /// The rewritten tree was removed entirely (unreadable root): the snapshot was (or would
    /// be) deleted.
    EmptyRemoved,
    /// A new snapshot was saved (`new_id` is `None` in a dry run); `removed_old` with forget.
    Saved {
        /// Id of the new snapshot.
        new_id: Option<Id>,
        /// Whether the original was (or would be) removed.
        removed_old: bool,
    },
}

/// Replaces snapshot `id` (`snap`) by one with root `new_tree`: unchanged when the tree is the
/// same and no metadata change was asked; otherwise flushes pending blobs, saves the new
/// snapshot (`original` = `id`, tag added unless forgetting, host/time replaced) and then, with
/// `forget`, removes the old one. A `None` tree removes the snapshot (restic's "removed empty
/// snapshot").
pub fn replace_snapshot(
    repo: &Repository,
    id: &Id,
    snap: &Snapshot,
    new_tree: Option<Id>,
    opts: &ReplaceOptions,
) -> Result<Replaced> {
    let Some(tree) = new_tree else {
        if !opts.dry_run {
            repo.remove_files(FileType::Snapshot, &[*id])?;
        }
        return Ok(Replaced::EmptyRemoved);
    };
    if tree == snap.tree && opts.new_host.is_none() && opts.new_time.is_none() {
        return Ok(Replaced::Unchanged);
    }
    if opts.dry_run {
        return Ok(Replaced::Saved {
            new_id: None,
            removed_old: opts.forget,
        });
    }
    let mut new = snap.clone();
    new.original = Some(*id);
    new.tree = tree;
    if let (Some(size), Some(summary)) = (opts.size, new.summary.as_mut()) {
        summary.total_files_processed = size.files;
        summary.total_bytes_processed = size.bytes;
    }
    if !opts.forget && !opts.add_tag.is_empty() {
        new.add_tags(std::slice::from_ref(&opts.add_tag));
    }
    if let Some(t) = &opts.new_time {
        new.time = *t;
    }
    if let Some(h) = &opts.new_host {
        new.hostname = h.clone();
    }
    // The new trees must be durable before a snapshot refers to them.
    repo.flush()?;
    let new_id = repo.save_snapshot(&new)?;
    if opts.forget {
        repo.remove_files(FileType::Snapshot, &[*id])?;
    }
    Ok(Replaced::Saved {
        new_id: Some(new_id),
        removed_old: opts.forget,
    })
}
