//! `cairn migrate`.

use crate::cli::GlobalOpts;
use anyhow::Result;
use clap::Args;

/// `migrate` options.
#[derive(Debug, Args)]
pub struct MigrateArgs {}

/// Run `cairn migrate`.
pub fn run(_g: &GlobalOpts, _a: &MigrateArgs) -> Result<()> {
    anyhow::bail!("`migrate` is not implemented yet")
}
