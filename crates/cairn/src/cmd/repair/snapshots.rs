//! `cairn repair snapshots`: replace snapshots whose trees or file contents are damaged
//! (restic's `repair snapshots`): unreadable directories become empty, files keep only the
//! content blobs the index knows, snapshots with an unreadable root are removed.

use crate::cli::{GlobalOpts, SnapshotFilterArgs};
use crate::cmd::rewrite::{event_text, open_selected, report, summary};
use anyhow::{Context, Result};
use cairn_engine::rewrite::{
    RepairRules, ReplaceOptions, RewriteEvent, TreeRewriter, replace_snapshot,
};
use cairn_repo::repository::LockMode;
use clap::Args;

/// `repair snapshots` options.
#[derive(Debug, Args)]
pub struct RepairSnapshotsArgs {
    /// Snapshots to repair (default: all matching the filters).
    #[arg(value_name = "SNAPSHOT")]
    pub ids: Vec<String>,
    /// Snapshot filters (when no ids are given).
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
    /// Remove the original snapshots after creating the repaired ones.
    #[arg(long)]
    pub forget: bool,
    /// Only print what would be done.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

/// Run `cairn repair snapshots`.
pub fn run(g: &GlobalOpts, a: &RepairSnapshotsArgs) -> Result<()> {
    let mode = if a.dry_run {
        LockMode::Shared
    } else {
        LockMode::Exclusive
    };
    let (repo, _lock, selected) = open_selected(g, mode, &a.ids, &a.filter)?;
    let human = !g.json && !g.quiet;
    let mut rewriter = TreeRewriter::new(&repo, RepairRules::new(&repo), !a.dry_run, true, true);
    let opts = ReplaceOptions {
        dry_run: a.dry_run,
        forget: a.forget,
        add_tag: "repaired".into(),
        ..Default::default()
    };
    let mut changed = 0;
    for (id, snap) in &selected {
        if human {
            println!("\n{}", super::super::copy::describe(id, snap));
        }
        let mut ev = |e: RewriteEvent| {
            if human {
                println!("{}", event_text(&e));
            }
        };
        let tree = rewriter
            .rewrite(b"/", &snap.tree, &mut ev)
            .with_context(|| format!("unable to repair snapshot ID {:?}", id.short()))?;
        let r = replace_snapshot(&repo, id, snap, tree, &opts)
            .with_context(|| format!("unable to repair snapshot ID {:?}", id.short()))?;
        if report(g, id, &r, a.dry_run, a.forget) {
            changed += 1;
        }
    }
    summary(g, changed, a.dry_run);
    Ok(())
}
