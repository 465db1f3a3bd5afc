//! `cairn rewrite`: new snapshots without excluded files, or with a new host or time
//! (restic's `rewrite`).

use crate::cli::{GlobalOpts, SnapshotFilterArgs};
use anyhow::{Context, Result, anyhow, bail};
use cairn_engine::filter::Excluder;
use cairn_engine::rewrite::{
    ReplaceOptions, Replaced, RewriteEvent, exclude_from_tree, replace_snapshot,
};
use cairn_engine::select::select_snapshots;
use cairn_repo::Id;
use cairn_repo::gotime::GoTime;
use cairn_repo::repository::{LockMode, Repository};
use cairn_repo::snapshot::Snapshot;
use clap::Args;

/// `rewrite` options.
#[derive(Debug, Args)]
pub struct RewriteArgs {
    /// Snapshots to rewrite (default: all matching the filters).
    #[arg(value_name = "SNAPSHOT")]
    pub ids: Vec<String>,
    /// Snapshot filters (when no ids are given).
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
    /// Exclude patterns.
    #[command(flatten)]
    pub patterns: crate::cli::ExcludePatternArgs,
    /// Remove the original snapshots after creating the new ones.
    #[arg(long)]
    pub forget: bool,
    /// Only print what would be done.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Replace the host name.
    #[arg(long, value_name = "HOST")]
    pub new_host: Option<String>,
    /// Replace the snapshot time (YYYY-MM-DD HH:MM:SS, local time).
    #[arg(long, value_name = "TIME")]
    pub new_time: Option<String>,
}

/// Parse restic's time format (`2006-01-02 15:04:05`) in local time.
fn parse_time(s: &str) -> Result<GoTime> {
    use chrono::{Local, NaiveDateTime, TimeZone};
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .map_err(|e| anyhow!("error in time option: {s:?} (want YYYY-MM-DD HH:MM:SS): {e}"))?;
    let t = Local
        .from_local_datetime(&naive)
        .earliest()
        .ok_or_else(|| anyhow!("time {s:?} does not exist in the local time zone"))?;
    Ok(GoTime(t.fixed_offset()))
}

/// The text restic prints for a rewrite event.
pub fn event_text(e: &RewriteEvent) -> String {
    let p = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match e {
        RewriteEvent::Excluded { path } => format!("excluding {}", p(path)),
        RewriteEvent::RemovedMissingContent { path } => {
            format!("  file {:?}: removed missing content", p(path))
        }
        RewriteEvent::FixedSize { path } => format!("  file {:?}: fixed incorrect size", p(path)),
        RewriteEvent::RemovedInvalidNode { path, node_type } => {
            format!(
                "  file {:?}: removed node with invalid type {node_type:?}",
                p(path)
            )
        }
        RewriteEvent::ReplacedWithEmptyDir { path } => {
            format!("  dir {:?}: replaced with empty directory", p(path))
        }
        RewriteEvent::RootUnreadable => "  dir \"/\": not readable".to_string(),
    }
}

/// Prints the outcome of one replaced snapshot; returns whether it changed.
pub fn report(g: &GlobalOpts, id: &Id, r: &Replaced, dry_run: bool, forget: bool) -> bool {
    let human = !g.json && !g.quiet;
    let (status, new_id) = match r {
        Replaced::Unchanged => ("unchanged", None),
        Replaced::EmptyRemoved => ("removed_empty", None),
        Replaced::Saved { new_id, .. } => ("modified", *new_id),
    };
    if g.json {
        crate::output::json_line(&serde_json::json!({
            "message_type": "snapshot_rewritten", "snapshot_id": id, "status": status,
            "new_snapshot_id": new_id, "original_removed": forget && status == "modified",
            "dry_run": dry_run,
        }));
    } else if human {
        match r {
            Replaced::Unchanged => {}
            Replaced::EmptyRemoved if dry_run => println!("would delete empty snapshot"),
            Replaced::EmptyRemoved => println!("removed empty snapshot {}", id.short()),
            Replaced::Saved {
                new_id,
                removed_old,
            } => {
                match new_id {
                    Some(n) => println!("saved new snapshot {}", n.short()),
                    None => println!("would save new snapshot"),
                }
                if *removed_old {
                    if dry_run {
                        println!("would remove old snapshot");
                    } else {
                        println!("removed old snapshot {}", id.short());
                    }
                }
            }
        }
    }
    status != "unchanged"
}

/// Prints restic's closing line ("modified N snapshots").
pub fn summary(g: &GlobalOpts, changed: usize, dry_run: bool) {
    if g.json {
        crate::output::json_line(&serde_json::json!({
            "message_type": "summary", "snapshots_modified": changed, "dry_run": dry_run,
        }));
    } else if !g.quiet {
        println!();
        match (changed, dry_run) {
            (0, false) => println!("no snapshots were modified"),
            (0, true) => println!("no snapshots would be modified"),
            (n, false) => println!("modified {n} snapshots"),
            (n, true) => println!("would modify {n} snapshots"),
        }
    }
}

/// An opened repository, its lock and the selected snapshots.
pub type Selected = (
    std::sync::Arc<Repository>,
    Option<cairn_repo::repository::LockGuard>,
    Vec<(Id, Snapshot)>,
);

/// Open with the lock the command needs and load index and the selected snapshots.
pub fn open_selected(
    g: &GlobalOpts,
    mode: LockMode,
    ids: &[String],
    filter: &SnapshotFilterArgs,
) -> Result<Selected> {
    let repo = crate::open::open(g)?;
    let lock = super::lock(g, &repo, mode)?;
    repo.load_index()?;
    let snaps = repo.load_snapshots()?;
    let selected = select_snapshots(&repo, &snaps, ids, &super::snapshot_filter(filter))?;
    Ok((repo, lock, selected))
}

/// Run `cairn rewrite`.
pub fn run(g: &GlobalOpts, a: &RewriteArgs) -> Result<()> {
    let patterns = a.patterns.options();
    if patterns.is_empty() && a.new_host.is_none() && a.new_time.is_none() {
        bail!("Nothing to do: no excludes provided and no new metadata provided");
    }
    let excluder = Excluder::new(&patterns)?;
    let new_time = a.new_time.as_deref().map(parse_time).transpose()?;
    // Removing snapshots needs the exclusive lock; adding only needs a shared one.
    let mode = if a.forget && !a.dry_run {
        LockMode::Exclusive
    } else {
        LockMode::Shared
    };
    let (repo, _lock, selected) = open_selected(g, mode, &a.ids, &a.filter)?;
    let human = !g.json && !g.quiet;
    let mut changed = 0;
    for (id, snap) in &selected {
        if human {
            println!("\n{}", super::copy::describe(id, snap));
        }
        let mut size = None;
        let tree = if excluder.is_empty() {
            snap.tree
        } else {
            let mut ev = |e: RewriteEvent| {
                if human {
                    println!("{}", event_text(&e));
                }
            };
            let (tree, s) = exclude_from_tree(&repo, &snap.tree, &excluder, !a.dry_run, &mut ev)
                .with_context(|| format!("unable to rewrite snapshot ID {:?}", id.short()))?;
            size = Some(s);
            tree
        };
        let opts = ReplaceOptions {
            dry_run: a.dry_run,
            forget: a.forget,
            add_tag: "rewrite".into(),
            new_host: a.new_host.clone(),
            new_time,
            size,
        };
        print_metadata(g, &opts);
        let r = replace_snapshot(&repo, id, snap, Some(tree), &opts)
            .with_context(|| format!("unable to rewrite snapshot ID {:?}", id.short()))?;
        if report(g, id, &r, a.dry_run, a.forget) {
            changed += 1;
        }
    }
    summary(g, changed, a.dry_run);
    Ok(())
}

fn print_metadata(g: &GlobalOpts, o: &ReplaceOptions) {
    if g.json || g.quiet {
        return;
    }
    let verb = if o.dry_run { "would set" } else { "setting" };
    if let Some(t) = &o.new_time {
        println!("{verb} time to {}", t.0.format("%Y-%m-%d %H:%M:%S %z"));
    }
    if let Some(h) = &o.new_host {
        println!("{verb} host to {h}");
    }
}
