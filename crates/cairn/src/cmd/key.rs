//! `cairn key`.

use crate::cli::GlobalOpts;
use anyhow::Result;
use clap::Args;

/// `key` options.
#[derive(Debug, Args)]
pub struct KeyArgs {}

/// Run `cairn key`.
pub fn run(_g: &GlobalOpts, _a: &KeyArgs) -> Result<()> {
    anyhow::bail!("`key` is not implemented yet")
}
