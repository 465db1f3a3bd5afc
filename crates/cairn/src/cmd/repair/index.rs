//! `cairn repair index`.

use crate::cli::GlobalOpts;
use anyhow::Result;
use clap::Args;

/// `repair index` options.
#[derive(Debug, Args)]
pub struct RepairIndexArgs {}

/// Run `cairn repair index`.
pub fn run(_g: &GlobalOpts, _a: &RepairIndexArgs) -> Result<()> {
    anyhow::bail!("`repair index` is not implemented yet")
}
