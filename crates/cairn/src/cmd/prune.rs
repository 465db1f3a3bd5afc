//! `cairn prune`.

use crate::cli::GlobalOpts;
use anyhow::Result;
use cairn_repo::repository::Repository;
use clap::Args;
use std::sync::Arc;

/// Prune options shared by `prune` and `forget --prune`.
#[derive(Debug, Args, Clone, Default)]
pub struct PruneOptions {}

/// `prune` options.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Options shared with `forget --prune`.
    #[command(flatten)]
    pub opts: PruneOptions,
    /// Only print what would be done.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

/// Run `cairn prune`.
pub fn run(_g: &GlobalOpts, _a: &PruneArgs) -> Result<()> {
    anyhow::bail!("`prune` is not implemented yet")
}

/// Prune an opened repository on which the caller already holds an exclusive lock (used by
/// `forget --prune`).
#[allow(dead_code)] // called by `forget --prune` once that is written
pub fn prune_locked(
    _g: &GlobalOpts,
    _repo: &Arc<Repository>,
    _opts: &PruneOptions,
    _dry_run: bool,
) -> Result<()> {
    anyhow::bail!("`prune` is not implemented yet")
}
