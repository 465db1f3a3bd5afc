//! `cairn check`.

use crate::cli::GlobalOpts;
use anyhow::Result;
use clap::Args;

/// `check` options.
#[derive(Debug, Args)]
pub struct CheckArgs {}

/// Run `cairn check`.
pub fn run(_g: &GlobalOpts, _a: &CheckArgs) -> Result<()> {
    anyhow::bail!("`check` is not implemented yet")
}
