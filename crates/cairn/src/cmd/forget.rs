//! `cairn forget`.

use crate::cli::GlobalOpts;
use anyhow::Result;
use clap::Args;

/// `forget` options.
#[derive(Debug, Args)]
pub struct ForgetArgs {}

/// Run `cairn forget`.
pub fn run(_g: &GlobalOpts, _a: &ForgetArgs) -> Result<()> {
    anyhow::bail!("`forget` is not implemented yet")
}
