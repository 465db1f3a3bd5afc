//! `cairn migrate`: list or apply repository migrations, like restic's `migrate`. The one
//! migration is `upgrade_repo_v2`: rewrite the config with format version 2, after which new
//! data is written compressed.

use crate::cli::GlobalOpts;
use anyhow::{Context, Result, anyhow, bail};
use cairn_engine::check::{CheckEvent, CheckOptions, CheckProgress, Severity};
use cairn_repo::backend::FileType;
use cairn_repo::config::Config;
use cairn_repo::repository::{LockMode, Repository};
use clap::Args;
use std::path::PathBuf;

/// `migrate` options.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Migrations to apply; without, list the migrations that can be applied.
    #[arg(value_name = "MIGRATION")]
    pub names: Vec<String>,
    /// Apply a migration even if its check says it is not needed.
    #[arg(short, long)]
    pub force: bool,
}

/// Name of the one migration.
const UPGRADE_V2: &str = "upgrade_repo_v2";
/// Its description (restic's wording).
const UPGRADE_V2_DESC: &str = "upgrade a repository to version 2";

/// Whether `upgrade_repo_v2` applies, or why not.
fn upgrade_check(repo: &Repository) -> std::result::Result<(), String> {
    match repo.version() {
        1 => Ok(()),
        v => Err(format!("repository is already upgraded to version {v}")),
    }
}

/// Run `cairn migrate`.
pub fn run(g: &GlobalOpts, a: &MigrateArgs) -> Result<()> {
    let repo = crate::open::open(g)?;
    let lock_opts = GlobalOpts {
        no_lock: false,
        ..g.clone()
    };
    let _lock = super::lock(&lock_opts, &repo, LockMode::Exclusive)?;
    if a.names.is_empty() {
        let available: Vec<(&str, &str)> = if upgrade_check(&repo).is_ok() {
            vec![(UPGRADE_V2, UPGRADE_V2_DESC)]
        } else {
            Vec::new()
        };
        if g.json {
            let list: Vec<serde_json::Value> = available
                .iter()
                .map(|(n, d)| serde_json::json!({"name": n, "description": d}))
                .collect();
            crate::output::json_line(
                &serde_json::json!({"message_type": "migrations", "available": list}),
            );
        } else if !g.quiet {
            println!("available migrations:");
            for (n, d) in &available {
                println!("  {n}\t{d}");
            }
            if available.is_empty() {
                println!("no migrations found");
            }
        }
        return Ok(());
    }
    let say = |msg: &str| {
        if !g.json && !g.quiet {
            println!("{msg}");
        }
    };
    let mut first_err: Option<anyhow::Error> = None;
    let mut applied = Vec::new();
    for name in &a.names {
        if name != UPGRADE_V2 {
            eprintln!("unknown migration {name}");
            first_err.get_or_insert_with(|| anyhow!("unknown migration {name}"));
            continue;
        }
        if let Err(reason) = upgrade_check(&repo) {
            if !a.force {
                eprintln!(
                    "migration {name} cannot be applied: {reason}\nIf you want to apply this migration anyway, re-run with option --force"
                );
                continue;
            }
            eprintln!("check for migration {name} failed, continuing anyway");
        }
        say("checking repository integrity...");
        check_repository(&repo)?;
        say(&format!("applying migration {name}..."));
        match upgrade_repo_v2(&repo) {
            Ok(()) => {
                say(&format!("migration {name}: success"));
                applied.push(name.clone());
            }
            Err(e) => {
                eprintln!("migration {name} failed: {e:#}");
                first_err.get_or_insert(e);
            }
        }
    }
    if g.json {
        crate::output::json_line(
            &serde_json::json!({"message_type": "migrate", "applied": applied}),
        );
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// restic checks the repository (structure, no data) before a migration and refuses to
/// migrate a damaged one.
fn check_repository(repo: &Repository) -> Result<()> {
    let progress = CheckProgress::new();
    let report = |ev: CheckEvent| {
        if let CheckEvent::Problem(p) = ev
            && p.severity() == Severity::Error
        {
            eprintln!("{}", p.message);
            for d in &p.details {
                eprintln!("  {d}");
            }
        }
    };
    let summary = cairn_engine::check::check(repo, &CheckOptions::default(), &progress, &report)
        .context("checking the repository")?;
    if !summary.is_ok() {
        bail!("repository contains errors: run `cairn check` and repair it before migrating");
    }
    Ok(())
}

/// Rewrite the config with version 2, crash-safe: the old config is saved to a temporary
/// directory first; the new one replaces it atomically (the local backend renames over it);
/// if writing fails, the old config is written back and the backup's path reported.
fn upgrade_repo_v2(repo: &Repository) -> Result<()> {
    let backend = repo.backend();
    let raw = backend
        .read(FileType::Config, "config")
        .context("load config file failed")?;
    let backup_dir = tempdir_for_backup()?;
    let backup = backup_dir.join("config");
    write_synced(&backup, &raw).with_context(|| {
        format!(
            "write config file backup to {} failed",
            backup_dir.display()
        )
    })?;
    let config = Config {
        version: 2,
        ..repo.config().clone()
    };
    let sealed = repo.master_key().seal(&config.to_json());
    if let Err(e) = backend.write(FileType::Config, "config", &sealed) {
        return Err(match backend.write(FileType::Config, "config", &raw) {
            Ok(()) => anyhow!(
                "error uploading config ({e}), re-uploaded old config was successful, there is a backup of the config file in {}",
                backup.display()
            ),
            Err(e2) => anyhow!(
                "error uploading config ({e}), re-uploading old config failed as well ({e2}), but there is a backup of the config file in {}",
                backup.display()
            ),
        });
    }
    let _ = std::fs::remove_file(&backup);
    let _ = std::fs::remove_dir(&backup_dir);
    Ok(())
}

/// A new private directory `cairn-migrate-upgrade-repo-v2-<random>` in the temp dir.
fn tempdir_for_backup() -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    for _ in 0..16 {
        let p = base.join(format!(
            "cairn-migrate-upgrade-repo-v2-{:016x}",
            rand::random::<u64>()
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", p.display())),
        }
    }
    bail!(
        "could not create a temporary directory in {}",
        base.display()
    )
}

/// Write a file (mode 0600) and sync it.
fn write_synced(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}
