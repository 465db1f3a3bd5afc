//! `cairn repair index`: build a new index from the pack files (restic's `repair index`,
//! formerly `rebuild-index`).

use crate::cli::GlobalOpts;
use crate::output;
use anyhow::{Context, Result};
use cairn_engine::repair::{IndexRepairEvent, RepairIndexOptions, repair_index};
use cairn_repo::repository::LockMode;
use clap::Args;
use std::sync::OnceLock;

/// `repair index` options.
#[derive(Debug, Args)]
pub struct RepairIndexArgs {
    /// Read all pack files to generate a new index from scratch.
    #[arg(long)]
    pub read_all_packs: bool,
}

/// A counting progress bar on stderr (`[0:03] 12 / 40 packs`).
pub(super) fn count_bar(len: usize, what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(len as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "[{{elapsed}}] {{wide_bar}} {{pos}} / {{len}} {what}"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb
}

/// A warning on stderr: text, or a restic-style JSON error line with `--json`.
pub(super) fn warn(g: &GlobalOpts, during: &str, item: &str, text: &str) {
    if g.json {
        eprintln!(
            "{}",
            serde_json::json!({
                "message_type": "error", "error": {"message": text},
                "during": during, "item": item,
            })
        );
    } else {
        eprintln!("{text}");
    }
}

/// Run `cairn repair index`.
pub fn run(g: &GlobalOpts, a: &RepairIndexArgs) -> Result<()> {
    let repo = crate::open::open(g)?;
    let _lock = crate::cmd::lock(g, &repo, LockMode::Exclusive)?;
    let text = !g.json && !g.quiet;
    let show_bar = output::show_progress(g.json, g.quiet);
    let bar: OnceLock<indicatif::ProgressBar> = OnceLock::new();
    let end_bar = || {
        if let Some(b) = bar.get() {
            b.finish_and_clear();
        }
    };
    let during = "repair index";
    let progress = |e: IndexRepairEvent| match e {
        IndexRepairEvent::LoadingIndexes if text => println!("loading indexes..."),
        IndexRepairEvent::InvalidIndex { id, error } => warn(
            g,
            during,
            &id.to_hex(),
            &format!("removing invalid index {id}: {error}"),
        ),
        IndexRepairEvent::ListingPacks if text => println!("getting pack files to read..."),
        IndexRepairEvent::PackNotIndexed { id } if !g.json => {
            eprintln!("adding pack file to index {id}")
        }
        IndexRepairEvent::PackSizeMismatch {
            id,
            size,
            indexed_size,
        } if !g.json => eprintln!(
            "reindexing pack file {id} with unexpected size {size} instead of {indexed_size}"
        ),
        IndexRepairEvent::PackMissing { id } if !g.json => {
            eprintln!("removing not found pack file {id}")
        }
        IndexRepairEvent::ReadingPacks { count } => {
            if text {
                println!("reading pack files");
            }
            if show_bar {
                let _ = bar.set(count_bar(count, "packs"));
            }
        }
        IndexRepairEvent::PackRead => {
            if let Some(b) = bar.get() {
                b.inc(1);
            }
        }
        IndexRepairEvent::PackUnreadable { id, error } => {
            end_bar();
            warn(
                g,
                during,
                &id.to_hex(),
                &format!("skipped incomplete pack file: {id}: {error}"),
            );
        }
        IndexRepairEvent::RebuildingIndex { .. } => {
            end_bar();
            if text {
                println!("rebuilding index");
            }
        }
        IndexRepairEvent::RemovingOldIndexes { count } if text && count > 0 => {
            println!("removing {count} old index files")
        }
        _ => {}
    };
    let s = repair_index(
        &repo,
        RepairIndexOptions {
            read_all_packs: a.read_all_packs,
        },
        &progress,
    )
    .context("repairing the index")?;
    end_bar();
    if g.json {
        let mut v = serde_json::to_value(&s)?;
        if let Some(m) = v.as_object_mut() {
            m.insert("message_type".into(), "summary".into());
        }
        output::json_line(&v);
        return Ok(());
    }
    if !s.packs_unreadable.is_empty() {
        eprintln!(
            "{} pack files could not be read and are not in the index; they are unusable \
             (`cairn prune` removes them)",
            s.packs_unreadable.len()
        );
    }
    if text {
        println!(
            "indexed {} blobs in {} packs, wrote {} index files",
            s.blobs_indexed,
            s.packs_indexed,
            s.index_files_written.len()
        );
        println!("done");
    }
    Ok(())
}
