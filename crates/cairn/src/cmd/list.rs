//! `cairn list`.

use crate::cli::GlobalOpts;
use anyhow::Result;
use clap::Args;

/// `list` options.
#[derive(Debug, Args)]
pub struct ListArgs {}

/// Run `cairn list`.
pub fn run(_g: &GlobalOpts, _a: &ListArgs) -> Result<()> {
    anyhow::bail!("`list` is not implemented yet")
}
