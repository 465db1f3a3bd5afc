//! `cairn tag`.

use crate::cli::GlobalOpts;
use anyhow::Result;
use clap::Args;

/// `tag` options.
#[derive(Debug, Args)]
pub struct TagArgs {}

/// Run `cairn tag`.
pub fn run(_g: &GlobalOpts, _a: &TagArgs) -> Result<()> {
    anyhow::bail!("`tag` is not implemented yet")
}
