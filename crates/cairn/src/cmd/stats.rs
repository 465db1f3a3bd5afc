//! `cairn stats`.

use crate::cli::GlobalOpts;
use anyhow::Result;
use clap::Args;

/// `stats` options.
#[derive(Debug, Args)]
pub struct StatsArgs {}

/// Run `cairn stats`.
pub fn run(_g: &GlobalOpts, _a: &StatsArgs) -> Result<()> {
    anyhow::bail!("`stats` is not implemented yet")
}
