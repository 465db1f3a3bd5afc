//! `cairn check`: restic's repository check (structure, and data with `--read-data`), with
//! restic's messages, order of phases and exit codes (1 when errors were found; hints alone
//! do not fail).

use crate::cli::GlobalOpts;
use crate::{Exit, output};
use anyhow::{Result, bail};
use cairn_engine::check::{
    CheckEvent, CheckOptions, CheckProgress, CheckSummary, Phase, Problem, ProblemKind,
    ReadDataSubset, Severity, check,
};
use cairn_repo::Id;
use cairn_repo::repository::LockMode;
use clap::Args;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// `check` options.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Read all data blobs.
    #[arg(long)]
    pub read_data: bool,
    /// Read a subset of data packs: `n/t` for group n of t (by the first byte of the pack id,
    /// the same packs restic reads), `x%` or `x.y%` for a random share, or a size with
    /// k/K, m/M, g/G, t/T for random packs of about that much data.
    #[arg(long, value_name = "SUBSET")]
    pub read_data_subset: Option<String>,
    /// Use the local cache (by default check reads everything from the repository itself).
    #[arg(long)]
    pub with_cache: bool,
    /// Deprecated and ignored, as in restic.
    #[arg(long, hide = true)]
    pub check_unused: bool,
    /// Worker threads for loading trees and reading packs (default: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
}

/// What the printer remembers between events.
#[derive(Default)]
struct Printed {
    duplicates: bool,
    mixed: bool,
    errors: bool,
    orphans: usize,
}

fn subset_of(a: &CheckArgs) -> Result<Option<ReadDataSubset>> {
    if a.read_data && a.read_data_subset.is_some() {
        bail!("check flags --read-data and --read-data-subset cannot be used together");
    }
    if a.read_data {
        return Ok(Some(ReadDataSubset::All));
    }
    match &a.read_data_subset {
        Some(s) => Ok(Some(s.parse::<ReadDataSubset>()?)),
        None => Ok(None),
    }
}

/// The heading restic prints when the read-data phase starts.
fn read_heading(
    subset: &ReadDataSubset,
    selected: usize,
    total: usize,
    total_bytes: u64,
) -> String {
    match *subset {
        ReadDataSubset::All => "read all data".into(),
        ReadDataSubset::Bucket { n, total: t } => format!(
            "read group #{n} of {selected} data packs (out of total {total} packs in {t} groups)"
        ),
        ReadDataSubset::Percent(p) => format!("read {p:.1}% of packfiles"),
        ReadDataSubset::Bytes(n) => {
            let n = n.min(total_bytes);
            let pct = if total_bytes == 0 {
                100.0
            } else {
                n as f64 / total_bytes as f64 * 100.0
            };
            format!("read {n} bytes ({pct:.1}%) of data packs")
        }
    }
}

/// The full text of a problem: the message and its indented details.
fn problem_text(p: &Problem) -> String {
    if p.details.is_empty() {
        return p.message.clone();
    }
    let mut s = format!("{}:", p.message);
    for d in &p.details {
        s.push_str("\n  ");
        s.push_str(d);
    }
    s
}

fn ids(v: &[Id]) -> String {
    v.iter().map(Id::to_hex).collect::<Vec<_>>().join(" ")
}

/// Run `cairn check`.
pub fn run(g: &GlobalOpts, a: &CheckArgs) -> Result<()> {
    let subset = subset_of(a)?;
    let mut go = g.clone();
    if !a.with_cache {
        // Like restic's default temporary cache: verify what the repository itself holds.
        go.no_cache = true;
    }
    let repo = crate::open::open(&go)?;
    let _lock = super::lock(g, &repo, LockMode::Shared)?;
    let human = !g.json && !g.quiet;
    let verbose = g.verbose > 0;
    let json = g.json;
    let show_bar = output::show_progress(g.json, g.quiet);
    let pb = if show_bar {
        indicatif::ProgressBar::new(0).with_style(counts_style())
    } else {
        indicatif::ProgressBar::hidden()
    };
    let printed = Mutex::new(Printed::default());
    let say = |s: &str| {
        if human {
            pb.suspend(|| println!("{s}"));
        }
    };
    let on_event = |e: CheckEvent| match e {
        CheckEvent::Phase(p) => {
            let st = printed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match p {
                Phase::LoadIndex => say("load indexes"),
                Phase::Packs => {
                    if st.duplicates {
                        say(
                            "Duplicate packs are non-critical, you can run `cairn repair index' to correct this.",
                        );
                    }
                    if st.mixed {
                        say(
                            "Mixed packs with tree and data blobs are non-critical, you can run `cairn prune` to correct this.",
                        );
                    }
                    say("check all packs");
                }
                Phase::Structure => {
                    if st.orphans > 0 && !st.errors {
                        say(&format!(
                            "{} additional files were found in the repo, which likely contain duplicate data.\nThis is non-critical, you can run `cairn prune` to correct this.",
                            st.orphans
                        ));
                    }
                    say("check snapshots, trees and blobs");
                }
                Phase::ReadData {
                    selected,
                    total,
                    total_bytes,
                    ..
                } => {
                    if let Some(s) = &subset {
                        say(&read_heading(s, selected, total, total_bytes));
                    }
                }
            }
        }
        CheckEvent::Problem(p) => {
            let mut st = printed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match p.severity() {
                Severity::Error => {
                    st.errors = true;
                    let text = problem_text(&p);
                    let text = match p.kind {
                        ProblemKind::IndexUnreadable
                        | ProblemKind::IncompletePack
                        | ProblemKind::SnapshotUnreadable
                        | ProblemKind::ListFailed => format!("error: {text}"),
                        _ => text,
                    };
                    if json {
                        eprintln!(
                            "{}",
                            serde_json::json!({"message_type": "error", "message": text})
                        );
                    } else {
                        pb.suspend(|| eprintln!("{text}"));
                    }
                }
                Severity::Hint => {
                    match p.kind {
                        ProblemKind::DuplicatePack => st.duplicates = true,
                        ProblemKind::MixedPack => st.mixed = true,
                        ProblemKind::PackOrphaned => st.orphans += 1,
                        _ => {}
                    }
                    if p.kind != ProblemKind::PackOrphaned || verbose {
                        say(&p.message);
                    }
                }
            }
        }
    };
    let progress = CheckProgress::new();
    let opts = CheckOptions {
        read_data: subset,
        threads: a.threads,
    };
    let done = AtomicBool::new(false);
    let summary = std::thread::scope(|s| {
        let reporter = show_bar.then(|| {
            let (pb, progress, done) = (&pb, &progress, &done);
            s.spawn(move || draw(pb, progress, done))
        });
        let r = check(&repo, &opts, &progress, &on_event);
        done.store(true, Ordering::Relaxed);
        if let Some(h) = reporter {
            let _ = h.join();
        }
        r
    })?;
    pb.finish_and_clear();
    finish(g, &summary)
}

/// Style of the phases that count items (index files, trees).
fn counts_style() -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template("{elapsed_precise} {msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
}

/// Progress display on stderr, switching style per phase.
fn draw(pb: &indicatif::ProgressBar, progress: &CheckProgress, done: &AtomicBool) {
    let counts = counts_style();
    let bytes = output::bytes_bar().style();
    let mut phase = 0;
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        let p = progress.snapshot();
        if p.phase != phase {
            phase = p.phase;
            pb.set_style(if phase == 4 {
                bytes.clone()
            } else {
                counts.clone()
            });
        }
        match p.phase {
            1 => pb.set_message(format!("{}/{} index files", p.done, p.total)),
            3 => pb.set_message(format!("{}/{} trees", p.done, p.total)),
            4 => {
                pb.set_length(p.bytes_total.max(p.bytes_done));
                pb.set_position(p.bytes_done.min(p.bytes_total));
                pb.set_message(format!("{}/{} packs", p.done, p.total));
            }
            _ => pb.set_message(""),
        }
    }
}

/// Final messages, the JSON summary and the exit code.
fn finish(g: &GlobalOpts, s: &CheckSummary) -> Result<()> {
    let human = !g.json;
    let quiet = g.quiet;
    if human {
        if s.index_damaged {
            eprintln!(
                "\nThe repository index is damaged and must be repaired. You must run `cairn repair index' to correct this.\n"
            );
        }
        if !s.broken_packs.is_empty() {
            eprintln!(
                "\nThe repository contains damaged pack files. These damaged files must be removed to repair the repository. This can be done using the following commands:\n\ncairn repair packs {}\ncairn repair snapshots --forget\n",
                ids(&s.broken_packs)
            );
        }
        if !s.broken_snapshots.is_empty() {
            eprintln!(
                "\nThe repository contains damaged snapshot files. These damaged files must be removed to repair the repository. This can be done using the following commands:\n\ncairn repair snapshots --forget {}\n",
                ids(&s.broken_snapshots)
            );
        }
        if !s.is_ok()
            && !s.index_damaged
            && s.broken_packs.is_empty()
            && s.broken_snapshots.is_empty()
        {
            eprintln!("\nThe repository is damaged and must be repaired.\n");
        }
        if s.is_ok() && !quiet {
            println!("no errors were found");
        }
    } else {
        let broken: Option<Vec<String>> =
            (!s.broken_packs.is_empty()).then(|| s.broken_packs.iter().map(Id::to_hex).collect());
        let num_errors = if s.is_ok() { 0 } else { s.num_errors.max(1) };
        output::json_line(&serde_json::json!({
            "message_type": "summary",
            "num_errors": num_errors,
            "broken_packs": broken,
            "suggest_repair_index": s.suggest_repair_index,
            "suggest_prune": s.suggest_prune,
        }));
    }
    if !s.is_ok() {
        return Err(Exit {
            code: 1,
            msg: "repository contains errors".into(),
        }
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(read_data: bool, subset: Option<&str>) -> CheckArgs {
        CheckArgs {
            read_data,
            read_data_subset: subset.map(String::from),
            with_cache: false,
            check_unused: false,
            threads: 0,
        }
    }

    #[test]
    fn flags_are_validated_like_restic() {
        assert_eq!(subset_of(&args(false, None)).unwrap(), None);
        assert_eq!(
            subset_of(&args(true, None)).unwrap(),
            Some(ReadDataSubset::All)
        );
        assert_eq!(
            subset_of(&args(false, Some("2/5"))).unwrap(),
            Some(ReadDataSubset::Bucket { n: 2, total: 5 })
        );
        let e = subset_of(&args(true, Some("1/2"))).unwrap_err().to_string();
        assert!(e.contains("cannot be used together"), "{e}");
        assert!(subset_of(&args(false, Some("7"))).is_err());
    }

    #[test]
    fn problem_text_indents_details() {
        let p = Problem {
            kind: ProblemKind::Tree,
            message: "error for tree abcd".into(),
            details: vec!["a".into(), "b".into()],
            subject: None,
            context: None,
            salvage: false,
        };
        assert_eq!(problem_text(&p), "error for tree abcd:\n  a\n  b");
        assert_eq!(
            read_heading(&ReadDataSubset::Bucket { n: 1, total: 3 }, 4, 10, 0),
            "read group #1 of 4 data packs (out of total 10 packs in 3 groups)"
        );
    }
}
