//! `cairn repair index|packs|snapshots`.

pub mod index;
mod packs;
mod snapshots;

use crate::cli::GlobalOpts;
use anyhow::Result;
use clap::{Args, Subcommand};

/// `repair` options.
#[derive(Debug, Args)]
pub struct RepairArgs {
    /// What to repair.
    #[command(subcommand)]
    pub what: RepairCommand,
}

/// The things `repair` can repair.
#[derive(Debug, Subcommand)]
pub enum RepairCommand {
    /// Rebuild the index from the pack files.
    Index(index::RepairIndexArgs),
    /// Salvage damaged pack files.
    Packs(packs::RepairPacksArgs),
    /// Repair snapshots whose trees or data are damaged.
    Snapshots(snapshots::RepairSnapshotsArgs),
}

/// Run `cairn repair`.
pub fn run(g: &GlobalOpts, a: &RepairArgs) -> Result<()> {
    match &a.what {
        RepairCommand::Index(x) => index::run(g, x),
        RepairCommand::Packs(x) => packs::run(g, x),
        RepairCommand::Snapshots(x) => snapshots::run(g, x),
    }
}
