//! `cairn prune`: remove data that no snapshot references (restic's prune), and the prune step
//! of `forget --prune` ([`prune_locked`]).
//!
//! Test-only hook: `CAIRN_TEST_PRUNE_ABORT_AFTER=<phase>` makes the process exit with code 1
//! right after a phase (`unreferenced`, `repack`, `index-write`, `index-delete`, `packs`) or
//! half-way through repacking (`repack-partial`), without removing its lock, like a crash.

use crate::cli::GlobalOpts;
use crate::output;
use anyhow::{Context, Result};
use cairn_engine::prune::{
    self, ExecuteStats, MaxUnused, Phase, PrunePlan, PruneProgress, PruneStats,
};
use cairn_repo::Id;
use cairn_repo::repository::{LockMode, Repository};
use clap::Args;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Prune options shared by `prune` and `forget --prune`.
#[derive(Debug, Args, Clone, Default)]
pub struct PruneOptions {
    /// Tolerate this much unused data: a size (k/K, m/M, g/G, t/T), a percentage of the
    /// remaining data (`5%`) or `unlimited` [default: 5%].
    #[arg(long, value_name = "LIMIT")]
    pub max_unused: Option<String>,
    /// Repack at most this much data per run (k/K, m/M, g/G, t/T).
    #[arg(long, value_name = "SIZE")]
    pub max_repack_size: Option<String>,
    /// Only repack packs that are cacheable (tree packs).
    #[arg(long)]
    pub repack_cacheable_only: bool,
    /// Repack pack files below 80% of the target pack size.
    #[arg(long)]
    pub repack_small: bool,
    /// Repack pack files below this size (k/K, m/M; at most the pack size).
    #[arg(long, value_name = "SIZE")]
    pub repack_smaller_than: Option<String>,
    /// Repack all uncompressed data (repository format 2).
    #[arg(long)]
    pub repack_uncompressed: bool,
}

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

/// Translate the command-line options into the engine's.
fn engine_options(g: &GlobalOpts, o: &PruneOptions) -> Result<prune::PruneOptions> {
    let wo = crate::open::write_options(g)?;
    let max_unused = match &o.max_unused {
        Some(s) => MaxUnused::parse(s)?,
        None => MaxUnused::default(),
    };
    let size = |s: &Option<String>, what: &str| -> Result<Option<u64>> {
        s.as_deref()
            .map(|v| prune::parse_size(v).with_context(|| format!("invalid {what} {v:?}")))
            .transpose()
    };
    Ok(prune::PruneOptions {
        max_unused,
        max_repack_bytes: size(&o.max_repack_size, "--max-repack-size")?,
        repack_cacheable_only: o.repack_cacheable_only,
        repack_small: o.repack_small,
        repack_smaller_than: size(&o.repack_smaller_than, "--repack-smaller-than")?,
        repack_uncompressed: o.repack_uncompressed,
        pack_size: wo.pack_size as u64,
        compression: wo.compression,
        ignore_snapshots: Vec::new(),
    })
}

/// Run `cairn prune`.
pub fn run(g: &GlobalOpts, a: &PruneArgs) -> Result<()> {
    // Reject bad options before touching the repository.
    engine_options(g, &a.opts)?.small_pack_limit()?;
    let repo = crate::open::open(g)?;
    let _lock = super::lock(g, &repo, LockMode::Exclusive)?;
    prune_locked(g, &repo, &a.opts, a.dry_run)
}

/// Prune an opened repository on which the caller already holds an exclusive lock (used by
/// `forget --prune`).
pub fn prune_locked(
    g: &GlobalOpts,
    repo: &Arc<Repository>,
    opts: &PruneOptions,
    dry_run: bool,
) -> Result<()> {
    prune_locked_ignoring(g, repo, opts, dry_run, &[])
}

/// Like [`prune_locked`], but the snapshots in `ignore` do not count as used (restic's
/// `forget --prune --dry-run` ignores the snapshots it would remove).
pub fn prune_locked_ignoring(
    g: &GlobalOpts,
    repo: &Arc<Repository>,
    opts: &PruneOptions,
    dry_run: bool,
    ignore: &[Id],
) -> Result<()> {
    let mut eopts = engine_options(g, opts)?;
    eopts.ignore_snapshots = ignore.to_vec();
    let say = !g.json && !g.quiet;
    if repo.index().pack_count() == 0 {
        if say {
            println!("loading indexes...");
        }
        repo.load_index()?;
    }
    if say {
        println!("loading all snapshots...");
    }
    let progress = CliProgress::new(g);
    let plan = prune::plan(repo, &eopts, &progress)?;
    progress.finish_bar();
    for id in &plan.ignore {
        if id == &plan.ignore[0] {
            eprintln!(
                "Missing but unneeded pack files are referenced in the index, will be repaired"
            );
        }
        eprintln!("will forget missing pack file {id}");
    }
    if say {
        print_stats(&plan, g.verbose > 0);
    }
    if dry_run {
        if say && g.verbose > 0 {
            print_plan_lists(&plan);
        }
        if g.json {
            output::json_line(&summary_json(&plan.stats, dry_run, None));
        }
        return Ok(());
    }
    let stats = plan.stats;
    let summary = if plan.is_noop() {
        ExecuteStats::default()
    } else {
        prune::execute(repo, plan, &eopts, &progress)?
    };
    progress.finish_bar();
    if summary.remove_failures > 0 {
        eprintln!(
            "{} files could not be removed; the next prune removes them",
            summary.remove_failures
        );
    }
    if g.json {
        output::json_line(&summary_json(&stats, dry_run, Some(&summary)));
    } else if say {
        println!("done");
    }
    Ok(())
}

/// restic's `FormatPercent`.
fn percent(num: u64, denom: u64) -> String {
    let p = if denom == 0 {
        0.0
    } else {
        100.0 * num as f64 / denom as f64
    };
    format!("{p:3.2}%")
}

/// The statistics block restic prints (the first part and the pack counts only with `-v`).
fn print_stats(plan: &PrunePlan, verbose: bool) {
    let s = &plan.stats;
    let b = &s.blobs;
    let z = &s.size;
    println!();
    if verbose {
        println!(
            "used:         {:>10} blobs / {}",
            b.used,
            output::size(z.used)
        );
        if b.duplicate > 0 {
            println!(
                "duplicates:   {:>10} blobs / {}",
                b.duplicate,
                output::size(z.duplicate)
            );
        }
        println!(
            "unused:       {:>10} blobs / {}",
            b.unused,
            output::size(z.unused)
        );
        if z.unreferenced > 0 {
            println!(
                "unreferenced:                    {}",
                output::size(z.unreferenced)
            );
        }
        println!(
            "total:        {:>10} blobs / {}",
            s.total_blobs(),
            output::size(s.total_size())
        );
        if z.uncompressed > 0 {
            println!("uncompressed size: {}", output::size(z.uncompressed));
        }
        println!(
            "unused size: {} of total size",
            percent(s.unused_size(), s.total_size())
        );
        println!();
    }
    println!(
        "to repack:    {:>10} blobs / {}",
        b.repack,
        output::size(z.repack)
    );
    println!(
        "this removes: {:>10} blobs / {}",
        b.repack_remove,
        output::size(z.repack_remove)
    );
    println!(
        "to delete:    {:>10} blobs / {}",
        b.remove,
        output::size(z.remove + z.unreferenced)
    );
    println!(
        "total prune:  {:>10} blobs / {}",
        s.remove_total_blobs(),
        output::size(s.remove_total_size())
    );
    println!(
        "remaining:    {:>10} blobs / {}",
        s.remaining_blobs(),
        output::size(s.remaining_size())
    );
    println!(
        "unused size after prune: {} ({} of remaining size)",
        output::size(s.remaining_unused_size()),
        percent(s.remaining_unused_size(), s.remaining_size())
    );
    println!();
    if verbose {
        let p = &s.packs;
        println!("totally used packs: {:>10}", p.used);
        println!("partly used packs:  {:>10}", p.partly_used);
        println!("unused packs:       {:>10}\n", p.unused);
        println!("to keep:      {:>10} packs", p.keep);
        println!("to repack:    {:>10} packs", p.repack);
        println!("to delete:    {:>10} packs", p.remove);
        if p.unreferenced > 0 {
            println!("to delete:    {:>10} unreferenced packs\n", p.unreferenced);
        }
    }
}

fn id_list<'a>(ids: impl Iterator<Item = &'a Id>) -> String {
    let v: Vec<String> = ids.map(Id::short).collect();
    format!("{{{}}}", v.join(" "))
}

/// The pack lists of a dry run (`-v`).
fn print_plan_lists(plan: &PrunePlan) {
    if !plan.remove_first.is_empty() {
        println!(
            "Would have removed the following unreferenced packs:\n{}\n",
            id_list(plan.remove_first.iter())
        );
    }
    println!(
        "Would have repacked and removed the following packs:\n{}\n",
        id_list(plan.repack.iter().map(|p| &p.id))
    );
    println!(
        "Would have removed the following no longer used packs:\n{}\n",
        id_list(plan.remove.iter())
    );
}

/// The `--json` summary: restic's statistics shape (`blobs`, `bytes`, `packfiles`), plus what
/// was done when not a dry run.
fn summary_json(s: &PruneStats, dry_run: bool, done: Option<&ExecuteStats>) -> serde_json::Value {
    let mut v = serde_json::json!({
        "message_type": "summary",
        "dry_run": dry_run,
        "blobs": {
            "used": s.blobs.used, "duplicate": s.blobs.duplicate, "unused": s.blobs.unused,
            "total": s.total_blobs(), "repack": s.blobs.repack,
            "repack_remove": s.blobs.repack_remove, "remove": s.blobs.remove,
            "remove_total": s.remove_total_blobs(), "remaining": s.remaining_blobs(),
        },
        "bytes": {
            "used": s.size.used, "duplicate": s.size.duplicate, "unused": s.unused_size(),
            "unreferenced": s.size.unreferenced, "uncompressed": s.size.uncompressed,
            "total": s.total_size(), "repack": s.size.repack,
            "repack_remove": s.size.repack_remove, "remove": s.size.remove,
            "remove_total": s.remove_total_size(), "remaining": s.remaining_size(),
            "remaining_unused": s.remaining_unused_size(),
        },
        "packfiles": {
            "used": s.packs.used, "unused": s.packs.unused, "partly_used": s.packs.partly_used,
            "unreferenced": s.packs.unreferenced, "total": s.total_packs(),
            "keep": s.packs.keep, "repack": s.packs.repack, "remove": s.packs.remove,
            "remove_total": s.remove_total_packs(),
        },
    });
    if let (Some(d), Some(obj)) = (done, v.as_object_mut()) {
        obj.insert("packs_written".into(), serde_json::json!(d.packs_written));
        obj.insert(
            "index_files_written".into(),
            serde_json::json!(d.index_files_written),
        );
        obj.insert(
            "remove_failures".into(),
            serde_json::json!(d.remove_failures),
        );
    }
    v
}

/// Progress messages and bars of a prune run, and the test-only abort hook.
struct CliProgress {
    say: bool,
    bars: bool,
    bar: Mutex<Option<indicatif::ProgressBar>>,
    abort_after: Option<String>,
    repack_total: AtomicU64,
    repacked: AtomicU64,
}

impl CliProgress {
    fn new(g: &GlobalOpts) -> CliProgress {
        CliProgress {
            say: !g.json && !g.quiet,
            bars: output::show_progress(g.json, g.quiet),
            bar: Mutex::new(None),
            abort_after: std::env::var("CAIRN_TEST_PRUNE_ABORT_AFTER").ok(),
            repack_total: AtomicU64::new(0),
            repacked: AtomicU64::new(0),
        }
    }

    fn bar(&self) -> MutexGuard<'_, Option<indicatif::ProgressBar>> {
        self.bar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn finish_bar(&self) {
        if let Some(pb) = self.bar().take() {
            pb.finish_and_clear();
        }
    }

    fn new_bar(&self, total: u64, what: &str) {
        if !self.bars {
            return;
        }
        let pb = if total == 0 {
            indicatif::ProgressBar::new_spinner()
        } else {
            indicatif::ProgressBar::new(total)
        };
        let template = if total == 0 {
            format!("{{elapsed_precise}} {{pos}} {what}")
        } else {
            format!("{{elapsed_precise}} {{wide_bar}} {{pos}} / {{len}} {what}")
        };
        if let Ok(st) = indicatif::ProgressStyle::with_template(&template) {
            pb.set_style(st);
        }
        pb.enable_steady_tick(std::time::Duration::from_millis(200));
        if let Some(old) = self.bar().replace(pb) {
            old.finish_and_clear();
        }
    }

    fn crash(&self, at: &str) {
        if self.abort_after.as_deref() == Some(at) {
            self.finish_bar();
            eprintln!("aborting after {at} (CAIRN_TEST_PRUNE_ABORT_AFTER)");
            std::process::exit(1);
        }
    }
}

impl PruneProgress for CliProgress {
    fn start(&self, phase: Phase, total: u64) {
        self.finish_bar();
        let say = |m: &str| {
            if self.say {
                println!("{m}");
            }
        };
        match phase {
            Phase::FindUsed => {
                say(&format!(
                    "finding data that is still in use for {total} snapshots"
                ));
                self.new_bar(0, "trees");
            }
            Phase::Plan => {
                say("searching used packs...");
                say("collecting packs for deletion and repacking");
            }
            Phase::RemoveUnreferenced => say("deleting unreferenced packs"),
            Phase::Repack => {
                self.repack_total.store(total, Ordering::Relaxed);
                say("repacking packs");
                self.new_bar(total, "packs repacked");
            }
            Phase::WriteIndex => say("rebuilding index"),
            Phase::RemoveIndex => {
                say("deleting obsolete index files");
                self.new_bar(total, "files deleted");
            }
            Phase::RemovePacks => {
                say(&format!("removing {total} old packs"));
                self.new_bar(total, "files deleted");
            }
        }
    }

    fn advance(&self, phase: Phase, n: u64) {
        if let Some(pb) = &*self.bar() {
            pb.inc(n);
        }
        if phase == Phase::Repack {
            let done = self.repacked.fetch_add(n, Ordering::Relaxed) + n;
            if done * 2 >= self.repack_total.load(Ordering::Relaxed) {
                self.crash("repack-partial");
            }
        }
    }

    fn done(&self, phase: Phase) {
        self.finish_bar();
        self.crash(phase.name());
    }

    fn warn(&self, msg: &str) {
        eprintln!("{msg}");
    }
}
