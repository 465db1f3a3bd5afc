//! `cairn copy`: copy snapshots from another repository (restic's `copy`), re-chunking file
//! contents when the chunker parameters differ. Also home of the source-repository options
//! (`--from-repo`, ...) shared with `init --copy-chunker-params`.

use crate::cli::{GlobalOpts, SnapshotFilterArgs};
use crate::open;
use anyhow::{Context, Result, anyhow, bail};
use cairn_engine::copy::{Copier, CopyProgress, index_by_original};
use cairn_engine::select::select_snapshots;
use cairn_repo::Id;
use cairn_repo::repository::{LockMode, Repository, WriteOptions};
use cairn_repo::snapshot::Snapshot;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The source ("from") repository of `copy` and `init --copy-chunker-params` (restic's
/// secondary repository options).
#[derive(Debug, Args, Clone, Default)]
pub struct FromRepoArgs {
    /// Source repository (env: RESTIC_FROM_REPOSITORY).
    #[arg(long = "from-repo", value_name = "REPOSITORY")]
    pub from_repo: Option<String>,
    /// File to read the source repository location from (env: RESTIC_FROM_REPOSITORY_FILE).
    #[arg(long = "from-repository-file", value_name = "FILE")]
    pub from_repository_file: Option<PathBuf>,
    /// File to read the source repository password from (env: RESTIC_FROM_PASSWORD_FILE).
    #[arg(long = "from-password-file", value_name = "FILE")]
    pub from_password_file: Option<PathBuf>,
    /// Shell command printing the source repository password (env:
    /// RESTIC_FROM_PASSWORD_COMMAND).
    #[arg(long = "from-password-command", value_name = "COMMAND")]
    pub from_password_command: Option<String>,
    /// Key id to try first for the source repository (accepted for restic compatibility;
    /// every key is tried).
    #[arg(long = "from-key-hint", value_name = "KEY")]
    pub from_key_hint: Option<String>,
    /// The source repository has an empty password.
    #[arg(long = "from-insecure-no-password")]
    pub from_insecure_no_password: bool,
}

impl FromRepoArgs {
    /// Whether a source repository location was given on the command line.
    pub fn location_given(&self) -> bool {
        self.from_repo.is_some() || self.from_repository_file.is_some()
    }

    /// The source location from flags or environment.
    pub fn location(&self) -> Result<String> {
        if self.from_repo.is_some() && self.from_repository_file.is_some() {
            bail!("--from-repo and --from-repository-file are mutually exclusive");
        }
        if let Some(r) = &self.from_repo {
            return Ok(r.clone());
        }
        let file = self
            .from_repository_file
            .clone()
            .or_else(|| open::env("FROM_REPOSITORY_FILE").map(PathBuf::from));
        if let Some(f) = file {
            let s = std::fs::read_to_string(&f)
                .with_context(|| format!("reading repository file {}", f.display()))?;
            return Ok(s.trim().to_string());
        }
        open::env("FROM_REPOSITORY").ok_or_else(|| {
            anyhow!(
                "please specify a source repository location (--from-repo or --from-repository-file)"
            )
        })
    }

    /// The source password from flags or environment.
    pub fn password(&self) -> Result<Vec<u8>> {
        if self.from_insecure_no_password {
            return Ok(Vec::new());
        }
        let file = self
            .from_password_file
            .clone()
            .or_else(|| open::env("FROM_PASSWORD_FILE").map(PathBuf::from));
        if let Some(f) = file {
            let s = std::fs::read_to_string(&f)
                .with_context(|| format!("reading password file {}", f.display()))?;
            return Ok(s.trim().as_bytes().to_vec());
        }
        let cmd = self
            .from_password_command
            .clone()
            .or_else(|| open::env("FROM_PASSWORD_COMMAND"));
        if let Some(cmd) = cmd {
            return open::run_password_command(&cmd);
        }
        if let Some(p) = open::env("FROM_PASSWORD") {
            return Ok(p.into_bytes());
        }
        bail!(
            "no password for the source repository: use --from-password-file, \
             --from-password-command or RESTIC_FROM_PASSWORD"
        )
    }
}

/// Open the source repository described by `f` (no cache; index not loaded).
pub fn open_from(g: &GlobalOpts, f: &FromRepoArgs) -> Result<Arc<Repository>> {
    let loc = f.location()?;
    let backend = open::backend_for(g, &loc)?;
    open::require_config(backend.as_ref(), &loc)?;
    let pw = f.password()?;
    let repo = Repository::open(backend, &pw, WriteOptions::default())
        .with_context(|| format!("opening source repository {loc}"))?;
    Ok(Arc::new(repo))
}

/// `copy` options.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Snapshots to copy (ids or `latest`; default: all matching the filters).
    #[arg(value_name = "SNAPSHOT")]
    pub ids: Vec<String>,
    /// The source repository.
    #[command(flatten)]
    pub from: FromRepoArgs,
    /// Snapshot filters (when no ids are given; also applied to the destination's snapshots
    /// when looking for copies made earlier).
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
    /// Copy blobs as they are even when the chunker parameters differ (restic's behaviour:
    /// the copies then do not deduplicate with backups made into the destination).
    #[arg(long)]
    pub no_rechunk: bool,
}

/// restic's one-line snapshot description.
pub fn describe(id: &Id, s: &Snapshot) -> String {
    format!(
        "snapshot {} of {:?} at {} by {}@{}",
        id.short(),
        s.paths,
        s.time.0.format("%Y-%m-%d %H:%M:%S%.f %z"),
        s.username,
        s.hostname
    )
}

/// Run `cairn copy`.
pub fn run(g: &GlobalOpts, a: &CopyArgs) -> Result<()> {
    let src = open_from(g, &a.from)?;
    let dst = open::open(g)?;
    let _src_lock = super::lock(g, &src, LockMode::Shared)?;
    // The destination is always locked (restic ignores --no-lock for it).
    let always = GlobalOpts {
        no_lock: false,
        ..g.clone()
    };
    let _dst_lock = super::lock(&always, &dst, LockMode::Shared)?;
    src.load_index().context("loading the source index")?;
    dst.load_index().context("loading the destination index")?;
    let filter = super::snapshot_filter(&a.filter);
    let src_snaps = src.load_snapshots()?;
    let selected = select_snapshots(&src, &src_snaps, &a.ids, &filter)?;
    let dst_snaps: Vec<(Id, Snapshot)> = dst
        .load_snapshots()?
        .into_iter()
        .filter(|(_, s)| filter.matches(s))
        .collect();
    let by_original = index_by_original(&dst_snaps);

    let progress = CopyProgress::default();
    let mut copier = Copier::new(&src, &dst, !a.no_rechunk, &progress);
    let human = !g.json && !g.quiet;
    if Copier::polynomials_differ(&src, &dst) && human {
        if copier.rechunks() {
            println!(
                "the repositories use different chunker parameters: file contents are re-chunked \
                 for the destination (tree ids change, deduplication is kept)"
            );
        } else {
            println!(
                "the repositories use different chunker parameters: blobs are copied as they are \
                 and will not deduplicate with backups made into the destination"
            );
        }
    }
    let (mut copied, mut skipped) = (0u64, 0u64);
    for (id, snap) in &selected {
        if let Some(existing) = copier.existing_copy(&by_original, id, snap) {
            skipped += 1;
            if g.json {
                crate::output::json_line(&serde_json::json!({
                    "message_type": "snapshot_skipped", "source_snapshot_id": id,
                    "existing_snapshot_id": existing,
                }));
            } else if !g.quiet && g.verbose > 0 {
                println!("\n{}", describe(id, snap));
                println!(
                    "skipping source snapshot {}, was already copied to snapshot {}",
                    id.short(),
                    existing.short()
                );
            }
            continue;
        }
        if human {
            println!("\n{}", describe(id, snap));
            println!("  copy started, this may take a while...");
        }
        let (new_id, _) = with_progress(g, &progress, || copier.copy_snapshot(id, snap))
            .with_context(|| format!("copying snapshot {}", id.short()))?;
        copied += 1;
        if g.json {
            crate::output::json_line(&serde_json::json!({
                "message_type": "snapshot_copied", "source_snapshot_id": id,
                "snapshot_id": new_id,
            }));
        } else if human {
            println!("snapshot {} saved", new_id.short());
        }
    }
    let stats = dst.save_stats();
    if g.json {
        crate::output::json_line(&serde_json::json!({
            "message_type": "summary", "snapshots_copied": copied, "snapshots_skipped": skipped,
            "rechunked": copier.rechunks(),
            "files_rechunked": progress.files_rechunked.load(Ordering::Relaxed),
            "data_blobs": stats.data_blobs, "tree_blobs": stats.tree_blobs,
            "data_added": stats.data_added, "data_added_packed": stats.data_added_packed,
        }));
    } else if human {
        println!(
            "\ncopied {copied} snapshots ({skipped} already present), added {} data and {} tree blobs ({} stored)",
            stats.data_blobs,
            stats.tree_blobs,
            crate::output::size(stats.data_added_packed)
        );
    }
    Ok(())
}

/// Run `f` while a spinner on a terminal shows the copy counters.
fn with_progress<T>(g: &GlobalOpts, p: &CopyProgress, f: impl FnOnce() -> T) -> T {
    if !crate::output::show_progress(g.json, g.quiet) {
        return f();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                bar.set_message(format!(
                    "{} trees, {} files re-chunked, {}/{} blobs copied, {} read",
                    p.trees.load(Ordering::Relaxed),
                    p.files_rechunked.load(Ordering::Relaxed),
                    p.blobs_done.load(Ordering::Relaxed),
                    p.blobs_total.load(Ordering::Relaxed),
                    crate::output::size(p.bytes_read.load(Ordering::Relaxed)),
                ));
                bar.tick();
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        });
        let r = f();
        stop.store(true, Ordering::Relaxed);
        bar.finish_and_clear();
        r
    })
}
