//! `cairn rewrite`.

use crate::cli::GlobalOpts;
use anyhow::Result;
use clap::Args;

/// `rewrite` options.
#[derive(Debug, Args)]
pub struct RewriteArgs {}

/// Run `cairn rewrite`.
pub fn run(_g: &GlobalOpts, _a: &RewriteArgs) -> Result<()> {
    anyhow::bail!("`rewrite` is not implemented yet")
}
