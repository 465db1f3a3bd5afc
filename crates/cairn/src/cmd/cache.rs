//! `cairn cache`.

use crate::cli::GlobalOpts;
use anyhow::Result;
use clap::Args;

/// `cache` options.
#[derive(Debug, Args)]
pub struct CacheArgs {}

/// Run `cairn cache`.
pub fn run(_g: &GlobalOpts, _a: &CacheArgs) -> Result<()> {
    anyhow::bail!("`cache` is not implemented yet")
}
