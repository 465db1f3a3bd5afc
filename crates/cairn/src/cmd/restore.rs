//! `cairn restore`.

use crate::cli::{GlobalOpts, RestoreArgs};
use crate::{Exit, output};
use anyhow::Result;
use cairn_engine::restore::{RestoreOptions, RestoreProgress, restore};
use cairn_repo::repository::LockMode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub fn run(g: &GlobalOpts, a: &RestoreArgs) -> Result<()> {
    let repo = crate::open::open(g)?;
    let _lock = super::lock(g, &repo, LockMode::Shared)?;
    repo.load_index()?;
    let (id, _snap, tree) =
        super::query::resolve(&repo, &a.snapshot, &super::snapshot_filter(&a.filter))?;
    let opts = RestoreOptions {
        target: a.target.clone(),
        includes: a.include.clone(),
        iincludes: a.iinclude.clone(),
        excludes: a.exclude.clone(),
        iexcludes: a.iexclude.clone(),
        sparse: a.sparse,
        verify: a.verify,
        dry_run: a.dry_run,
        overwrite: a.overwrite.parse()?,
        delete: a.delete,
        threads: 0,
        ownership_by_name: false,
    };
    if !g.quiet && !g.json {
        println!(
            "restoring snapshot {} to {}",
            id.short(),
            a.target.display()
        );
    }
    let progress = RestoreProgress::new();
    let started = Instant::now();
    let done = AtomicBool::new(false);
    let json = g.json;
    let on_warning = |msg: &str| {
        if json {
            output::json_error("restore", msg);
        } else {
            eprintln!("ignoring error for {msg}");
        }
    };
    let show_bar = output::show_progress(g.json, g.quiet);
    let r = std::thread::scope(|s| {
        let (progress, done) = (&progress, &done);
        let reporter = show_bar.then(|| {
            s.spawn(move || {
                let pb = output::bytes_bar();
                while !done.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    let p = progress.snapshot();
                    pb.set_length(p.total_bytes.max(p.bytes_done));
                    pb.set_position(p.bytes_done);
                    pb.set_message(format!("{}/{} files", p.files_done, p.total_files));
                }
                pb.finish_and_clear();
            })
        });
        let r = restore(&repo, tree, &opts, progress, &on_warning);
        done.store(true, Ordering::Relaxed);
        if let Some(h) = reporter {
            let _ = h.join();
        }
        r
    })?;
    let p = progress.snapshot();
    if g.json {
        output::json_line(&serde_json::json!({
            "message_type": "summary", "seconds_elapsed": started.elapsed().as_secs(),
            "total_files": p.total_files, "files_restored": r.files_restored,
            "files_skipped": r.files_skipped, "files_deleted": r.files_deleted,
            "total_bytes": p.total_bytes, "bytes_restored": r.bytes_written,
            "bytes_skipped": p.total_bytes.saturating_sub(r.bytes_written),
            "dry_run": a.dry_run,
        }));
    } else if !g.quiet {
        println!(
            "Summary: Restored {} files/dirs ({}) in {}{}",
            r.files_restored + r.dirs,
            output::size(r.bytes_written),
            output::duration(started.elapsed().as_secs()),
            if r.files_skipped > 0 {
                format!(", skipped {} files", r.files_skipped)
            } else {
                String::new()
            }
        );
        if a.verify {
            println!("verified {} files", r.files_verified);
        }
    }
    for e in &r.verify_errors {
        eprintln!("verify: {e}");
    }
    if r.errors > 0 || !r.verify_errors.is_empty() {
        return Err(Exit {
            code: 1,
            msg: format!(
                "restore finished with {} errors{}",
                r.errors,
                if r.verify_errors.is_empty() {
                    String::new()
                } else {
                    format!(" and {} verification failures", r.verify_errors.len())
                }
            ),
        }
        .into());
    }
    Ok(())
}
