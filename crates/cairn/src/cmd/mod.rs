//! One module per command; `run` dispatches.

pub mod backup;
pub mod cache;
mod cat;
pub mod check;
pub mod copy;
pub mod forget;
mod init;
pub mod key;
pub mod list;
pub mod migrate;
pub mod prune;
mod query;
pub mod repair;
mod restore;
pub mod rewrite;
pub mod serve;
mod snapshots;
pub mod stats;
pub mod tag;

use crate::cli::{Cli, Command, GlobalOpts, SnapshotFilterArgs};
use anyhow::{Result, anyhow};
use cairn_repo::repository::{LockGuard, LockMode, Repository};
use cairn_repo::snapshot::SnapshotFilter;
use std::sync::Arc;
use std::time::Duration;

/// Run the parsed command line.
pub fn run(cli: &Cli) -> Result<()> {
    let g = &cli.global;
    match &cli.command {
        Command::Init(a) => init::run(g, a),
        Command::Backup(a) => backup::run(g, a),
        Command::Snapshots(a) => snapshots::run(g, a),
        Command::Cat(a) => cat::run(g, a),
        Command::Unlock(a) => {
            let repo = crate::open::open(g)?;
            let n = repo.unlock(a.remove_all)?;
            if g.json {
                crate::output::json_line(
                    &serde_json::json!({"message_type": "unlock", "removed": n}),
                );
            } else if !g.quiet {
                println!("successfully removed {n} locks");
            }
            Ok(())
        }
        Command::Version => {
            let v = env!("CARGO_PKG_VERSION");
            if g.json {
                crate::output::json_line(&serde_json::json!({
                    "message_type": "version", "version": v, "go_os": std::env::consts::OS,
                    "go_arch": std::env::consts::ARCH,
                }));
            } else {
                println!(
                    "cairn {v} on {}/{}",
                    std::env::consts::OS,
                    std::env::consts::ARCH
                );
            }
            Ok(())
        }
        Command::Ls(a) => query::ls(g, a),
        Command::Find(a) => query::find(g, a),
        Command::Diff(a) => query::diff_cmd(g, a),
        Command::Dump(a) => query::dump_cmd(g, a),
        Command::Restore(a) => restore::run(g, a),
        Command::Forget(a) => forget::run(g, a),
        Command::Prune(a) => prune::run(g, a),
        Command::Check(a) => check::run(g, a),
        Command::Tag(a) => tag::run(g, a),
        Command::Key(a) => key::run(g, a),
        Command::List(a) => list::run(g, a),
        Command::Cache(a) => cache::run(g, a),
        Command::Stats(a) => stats::run(g, a),
        Command::Migrate(a) => migrate::run(g, a),
        Command::Copy(a) => copy::run(g, a),
        Command::Rewrite(a) => rewrite::run(g, a),
        Command::Repair(a) => repair::run(g, a),
        Command::RebuildIndex(a) => repair::index::run(g, a),
        Command::Serve(a) => serve::run(g, a),
    }
}

/// Parse restic-style (Go) durations for `--retry-lock` (`30s`, `5m`, `1h30m`).
pub fn parse_duration(s: &str) -> Result<Duration> {
    cairn_profile::config::parse_go_duration(s).map_err(|e| anyhow!("invalid duration {s:?}: {e}"))
}

/// Take a repository lock unless `--no-lock` (only honoured for shared locks).
pub fn lock(g: &GlobalOpts, repo: &Arc<Repository>, mode: LockMode) -> Result<Option<LockGuard>> {
    if g.no_lock && mode == LockMode::Shared {
        return Ok(None);
    }
    let retry = match &g.retry_lock {
        Some(s) => parse_duration(s)?,
        None => Duration::ZERO,
    };
    Ok(Some(repo.lock(mode, retry)?))
}

/// Convert filter flags to the engine's snapshot filter (restic's rules: `--tag ''` selects
/// snapshots without tags).
pub fn snapshot_filter(f: &SnapshotFilterArgs) -> SnapshotFilter {
    forget::build_filter(&f.host, &f.tag, &f.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory;
        crate::cli::Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("45s").unwrap(), Duration::from_secs(45));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
