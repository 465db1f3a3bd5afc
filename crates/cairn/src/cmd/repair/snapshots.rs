//! `cairn repair snapshots`.

use crate::cli::GlobalOpts;
use anyhow::Result;
use clap::Args;

/// `repair snapshots` options.
#[derive(Debug, Args)]
pub struct RepairSnapshotsArgs {}

/// Run `cairn repair snapshots`.
pub fn run(_g: &GlobalOpts, _a: &RepairSnapshotsArgs) -> Result<()> {
    anyhow::bail!("`repair snapshots` is not implemented yet")
}
