//! `cairn repair packs`: salvage the intact blobs of damaged pack files, then remove them
//! (restic's `repair packs`).

use super::index::{count_bar, warn};
use crate::cli::GlobalOpts;
use crate::output;
use anyhow::{Context, Result};
use cairn_engine::repair::{PacksRepairEvent, RepairPacksOptions, repair_packs};
use cairn_repo::backend::FileType;
use cairn_repo::repository::LockMode;
use clap::Args;
use std::cell::RefCell;

/// `repair packs` options.
#[derive(Debug, Args)]
pub struct RepairPacksArgs {
    /// Pack files to salvage (ids as `cairn check --read-data` reports them; unique prefixes
    /// are accepted).
    #[arg(value_name = "PACK_ID")]
    pub ids: Vec<String>,
}

/// Run `cairn repair packs`.
pub fn run(g: &GlobalOpts, a: &RepairPacksArgs) -> Result<()> {
    if a.ids.is_empty() {
        anyhow::bail!("no ids specified");
    }
    let repo = crate::open::open(g)?;
    let _lock = crate::cmd::lock(g, &repo, LockMode::Exclusive)?;
    let mut ids = Vec::new();
    for s in &a.ids {
        ids.push(repo.find_id(FileType::Pack, s)?);
    }
    repo.load_index().context(
        "loading the index (if an index file is damaged, run `cairn repair index` first)",
    )?;
    let here = std::env::current_dir().context("finding the current directory")?;
    let text = !g.json && !g.quiet;
    let show_bar = output::show_progress(g.json, g.quiet);
    let bar: RefCell<Option<indicatif::ProgressBar>> = RefCell::new(None);
    let end_bar = || {
        if let Some(b) = bar.borrow_mut().take() {
            b.finish_and_clear();
        }
    };
    let during = "repair packs";
    let progress = |e: PacksRepairEvent| match e {
        PacksRepairEvent::SavingBackups if text => {
            println!("saving backup copies of pack files to current folder")
        }
        PacksRepairEvent::Salvaging { count } => {
            if text {
                println!("salvaging intact data from specified pack files");
            }
            if show_bar {
                *bar.borrow_mut() = Some(count_bar(count, "pack files"));
            }
        }
        PacksRepairEvent::UsingPackHeader { id } if g.verbose > 0 && text => {
            println!("pack {id} is not in the index, using its header")
        }
        PacksRepairEvent::NoBlobs { id, error } => {
            let msg = format!("no blobs found for pack {id}: {error}");
            match &*bar.borrow() {
                Some(b) if !g.json => b.suspend(|| warn(g, during, &id.to_hex(), &msg)),
                _ => warn(g, during, &id.to_hex(), &msg),
            }
        }
        PacksRepairEvent::BlobFailed(d) => {
            let msg = format!("failed to load blob {}: {}", d.id, d.error);
            match &*bar.borrow() {
                Some(b) if !g.json => b.suspend(|| warn(g, during, &d.id.to_hex(), &msg)),
                _ => warn(g, during, &d.id.to_hex(), &msg),
            }
        }
        PacksRepairEvent::PackDone => {
            if let Some(b) = &*bar.borrow() {
                b.inc(1);
            }
        }
        PacksRepairEvent::RebuildingIndex { .. } => {
            end_bar();
            if text {
                println!("rebuilding index");
            }
        }
        PacksRepairEvent::RemovingOldIndexes { count } if text && count > 0 => {
            println!("removing {count} old index files")
        }
        PacksRepairEvent::RemovingPacks { .. } if text => println!("removing salvaged pack files"),
        PacksRepairEvent::RemoveFailed { id, error } => warn(
            g,
            during,
            &id.to_hex(),
            &format!("failed to remove pack {id} ({error}); `cairn prune` removes it later"),
        ),
        _ => {}
    };
    let opts = RepairPacksOptions {
        backup_dir: Some(here),
    };
    let s = repair_packs(&repo, &ids, &opts, &progress).context("repairing packs")?;
    end_bar();
    if g.json {
        let mut v = serde_json::to_value(&s)?;
        if let Some(m) = v.as_object_mut() {
            m.insert("message_type".into(), "summary".into());
        }
        output::json_line(&v);
        return Ok(());
    }
    if text {
        println!(
            "salvaged {} blobs into {} new pack files, removed {} pack files",
            s.blobs_salvaged, s.packs_written, s.packs_removed
        );
    }
    if !s.blobs_lost.is_empty() || !s.packs_without_blobs.is_empty() {
        if !s.blobs_lost.is_empty() {
            eprintln!(
                "\n{} blobs could not be salvaged and have no other copy.",
                s.blobs_lost.len()
            );
        }
        eprintln!(
            "\nUse `cairn repair snapshots --forget` to remove the corrupted data blobs from all \
             snapshots"
        );
    }
    Ok(())
}
