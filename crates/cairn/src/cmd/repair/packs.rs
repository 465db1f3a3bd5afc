//! `cairn repair packs`.

use crate::cli::GlobalOpts;
use anyhow::Result;
use clap::Args;

/// `repair packs` options.
#[derive(Debug, Args)]
pub struct RepairPacksArgs {}

/// Run `cairn repair packs`.
pub fn run(_g: &GlobalOpts, _a: &RepairPacksArgs) -> Result<()> {
    anyhow::bail!("`repair packs` is not implemented yet")
}
