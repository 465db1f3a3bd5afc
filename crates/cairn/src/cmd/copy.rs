//! `cairn copy`.

use crate::cli::GlobalOpts;
use anyhow::Result;
use clap::Args;

/// `copy` options.
#[derive(Debug, Args)]
pub struct CopyArgs {}

/// Run `cairn copy`.
pub fn run(_g: &GlobalOpts, _a: &CopyArgs) -> Result<()> {
    anyhow::bail!("`copy` is not implemented yet")
}
