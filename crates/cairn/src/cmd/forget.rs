//! `cairn forget`: remove snapshots according to a retention policy (restic's semantics and
//! safety rules), optionally followed by `prune`.

use crate::cli::GlobalOpts;
use crate::output;
use anyhow::{Result, bail};
use cairn_engine::forget::{
    self, Clock, ExpirePolicy, ForgetGroup, GroupBy, KeepReason, PolicyDuration, Rules,
};
use cairn_repo::Id;
use cairn_repo::backend::FileType;
use cairn_repo::repository::{LockMode, Repository};
use cairn_repo::snapshot::{Snapshot, SnapshotFilter};
use clap::Args;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};

fn count(s: &str) -> Result<i64, String> {
    forget::parse_count(s).map_err(|e| e.to_string())
}

fn duration(s: &str) -> Result<PolicyDuration, String> {
    PolicyDuration::parse(s).map_err(|e| e.to_string())
}

/// `forget` options (restic's flags; `--host` has no `-H` because `-H` is `--keep-hourly`).
#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Snapshots to remove (IDs, unique ID prefixes or `latest`); no policy is applied then.
    #[arg(value_name = "SNAPSHOT ID")]
    pub ids: Vec<String>,
    /// Keep the last n snapshots (`unlimited` keeps all).
    #[arg(short = 'l', long, value_name = "n", value_parser = count, allow_negative_numbers = true)]
    pub keep_last: Option<i64>,
    /// Keep the last n hourly snapshots (`unlimited` keeps all hourly snapshots).
    #[arg(short = 'H', long, value_name = "n", value_parser = count, allow_negative_numbers = true)]
    pub keep_hourly: Option<i64>,
    /// Keep the last n daily snapshots (`unlimited` keeps all daily snapshots).
    #[arg(short = 'd', long, value_name = "n", value_parser = count, allow_negative_numbers = true)]
    pub keep_daily: Option<i64>,
    /// Keep the last n weekly snapshots (`unlimited` keeps all weekly snapshots).
    #[arg(short = 'w', long, value_name = "n", value_parser = count, allow_negative_numbers = true)]
    pub keep_weekly: Option<i64>,
    /// Keep the last n monthly snapshots (`unlimited` keeps all monthly snapshots).
    #[arg(short = 'm', long, value_name = "n", value_parser = count, allow_negative_numbers = true)]
    pub keep_monthly: Option<i64>,
    /// Keep the last n yearly snapshots (`unlimited` keeps all yearly snapshots).
    #[arg(short = 'y', long, value_name = "n", value_parser = count, allow_negative_numbers = true)]
    pub keep_yearly: Option<i64>,
    /// Keep snapshots newer than duration (e.g. 1y5m7d2h; m = months) relative to the latest.
    #[arg(long, value_name = "duration", value_parser = duration)]
    pub keep_within: Option<PolicyDuration>,
    /// Keep hourly snapshots newer than duration relative to the latest snapshot.
    #[arg(long, value_name = "duration", value_parser = duration)]
    pub keep_within_hourly: Option<PolicyDuration>,
    /// Keep daily snapshots newer than duration relative to the latest snapshot.
    #[arg(long, value_name = "duration", value_parser = duration)]
    pub keep_within_daily: Option<PolicyDuration>,
    /// Keep weekly snapshots newer than duration relative to the latest snapshot.
    #[arg(long, value_name = "duration", value_parser = duration)]
    pub keep_within_weekly: Option<PolicyDuration>,
    /// Keep monthly snapshots newer than duration relative to the latest snapshot.
    #[arg(long, value_name = "duration", value_parser = duration)]
    pub keep_within_monthly: Option<PolicyDuration>,
    /// Keep yearly snapshots newer than duration relative to the latest snapshot.
    #[arg(long, value_name = "duration", value_parser = duration)]
    pub keep_within_yearly: Option<PolicyDuration>,
    /// Keep snapshots with all tags of this list (comma-separated; repeatable).
    #[arg(long = "keep-tag", value_name = "taglist")]
    pub keep_tag: Vec<String>,
    /// Allow deleting all snapshots of a snapshot group (needs a filter when no policy).
    #[arg(long)]
    pub unsafe_allow_remove_all: bool,
    /// Only consider snapshots of this host (repeatable).
    #[arg(long = "host", alias = "hostname", value_name = "host")]
    pub host: Vec<String>,
    /// Only consider snapshots including tag[,tag,...] (repeatable: any of the lists).
    #[arg(long = "tag", value_name = "tag[,tag,...]")]
    pub tag: Vec<String>,
    /// Only consider snapshots including this path (repeatable: all of them).
    #[arg(long = "path", value_name = "path")]
    pub path: Vec<String>,
    /// Use the compact table format.
    #[arg(short = 'c', long)]
    pub compact: bool,
    /// Group snapshots by host, paths and/or tags (comma-separated; '' = no grouping).
    #[arg(short = 'g', long, value_name = "group", default_value = "host,paths")]
    pub group_by: String,
    /// Do not delete anything, just print what would be done.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Run `prune` afterwards if snapshots were removed.
    #[arg(long)]
    pub prune: bool,
    /// Options for `--prune`.
    #[command(flatten)]
    pub prune_options: super::prune::PruneOptions,
}

impl ForgetArgs {
    /// The policy given by the `--keep-*` flags.
    pub fn policy(&self) -> ExpirePolicy {
        ExpirePolicy {
            last: self.keep_last.unwrap_or(0),
            hourly: self.keep_hourly.unwrap_or(0),
            daily: self.keep_daily.unwrap_or(0),
            weekly: self.keep_weekly.unwrap_or(0),
            monthly: self.keep_monthly.unwrap_or(0),
            yearly: self.keep_yearly.unwrap_or(0),
            within: self.keep_within.unwrap_or_default(),
            within_hourly: self.keep_within_hourly.unwrap_or_default(),
            within_daily: self.keep_within_daily.unwrap_or_default(),
            within_weekly: self.keep_within_weekly.unwrap_or_default(),
            within_monthly: self.keep_within_monthly.unwrap_or_default(),
            within_yearly: self.keep_within_yearly.unwrap_or_default(),
            tags: self
                .keep_tag
                .iter()
                .map(|t| forget::parse_tag_list(t))
                .collect(),
        }
    }
}

/// restic's snapshot filter from `--host`, `--tag` and `--path` values: tag lists are split
/// at commas with whitespace trimmed (an empty tag matches snapshots without tags), and a
/// single empty `--host ""` means "any host".
pub(crate) fn build_filter(hosts: &[String], tags: &[String], paths: &[String]) -> SnapshotFilter {
    let hosts = match hosts {
        [one] if one.is_empty() => Vec::new(),
        h => h.to_vec(),
    };
    SnapshotFilter {
        hosts,
        tags: tags.iter().map(|t| forget::parse_tag_list(t)).collect(),
        paths: paths.to_vec(),
    }
}

/// Whether a filter restricts anything (restic's `!SnapshotFilter.Empty()`).
pub(crate) fn filter_given(f: &SnapshotFilter) -> bool {
    !(f.hosts.is_empty() && f.tags.is_empty() && f.paths.is_empty())
}

/// restic's `FindAll` for commands that modify snapshots: explicit ids (filters ignored
/// with a warning unless `latest` is among them) or every snapshot passing the filter.
pub(crate) fn select(
    g: &GlobalOpts,
    repo: &Repository,
    snaps: &[(Id, Snapshot)],
    ids: &[String],
    filter: &SnapshotFilter,
) -> Result<Vec<(Id, Snapshot)>> {
    if !ids.is_empty() && filter_given(filter) && !ids.iter().any(|i| i == "latest") && !g.quiet {
        eprintln!("Ignoring filters as there are explicit snapshot ids given");
    }
    Ok(cairn_engine::select::select_snapshots(
        repo, snaps, ids, filter,
    )?)
}

/// Run `cairn forget`.
pub fn run(g: &GlobalOpts, a: &ForgetArgs) -> Result<()> {
    let policy = a.policy();
    let filter = build_filter(&a.host, &a.tag, &a.path);
    let group_by = GroupBy::parse(&a.group_by)?;
    policy.validate()?;
    if a.ids.is_empty() {
        forget::check_policy(&policy, a.unsafe_allow_remove_all, filter_given(&filter))?;
    }
    if g.no_lock && !a.dry_run {
        bail!("--no-lock is only applicable in combination with --dry-run for forget command");
    }
    let repo = crate::open::open(g)?;
    let _lock = if g.no_lock {
        None
    } else {
        super::lock(g, &repo, LockMode::Exclusive)?
    };
    let snaps = repo.load_snapshots()?;
    let text = !g.json && !g.quiet;

    let mut groups: Vec<ForgetGroup> = Vec::new();
    let remove: BTreeSet<Id> = if !a.ids.is_empty() {
        select(g, &repo, &snaps, &a.ids, &filter)?
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    } else {
        let selected: Vec<(Id, Snapshot)> = snaps
            .into_iter()
            .filter(|(_, s)| filter.matches(s))
            .collect();
        groups = forget::plan_forget(selected, &policy, group_by, Rules::Latest, &Clock::system())?;
        if text {
            println!("Applying Policy: {}", policy.describe());
            for grp in &groups {
                print_group(grp, group_by, a.compact);
            }
        }
        groups
            .iter()
            .flat_map(|grp| grp.result.remove.iter().map(|(id, _)| *id))
            .collect()
    };

    let mut failed = 0usize;
    if !remove.is_empty() {
        if a.dry_run {
            if text {
                let short: Vec<String> = remove.iter().map(Id::short).collect();
                println!(
                    "Would have removed the following snapshots:\n{{{}}}\n",
                    short.join(" ")
                );
            }
        } else {
            for id in &remove {
                match repo.backend().remove(FileType::Snapshot, &id.to_hex()) {
                    Ok(()) => {
                        if g.verbose >= 2 && !g.json {
                            println!("removed snapshots/{}", id.to_hex());
                        }
                    }
                    Err(e) if e.is_not_found() => {}
                    Err(e) => {
                        failed += 1;
                        eprintln!(
                            "unable to remove snapshots/{} from the repository: {e}",
                            id.to_hex()
                        );
                    }
                }
            }
            if text {
                println!("removed {} snapshots", remove.len() - failed);
            }
        }
    }
    if g.json && !groups.is_empty() {
        let out: Vec<Value> = groups.iter().map(group_json).collect();
        output::json_line(&out);
    }
    if failed > 0 {
        return Err(crate::Exit {
            code: 3,
            msg: "failed to remove one or more snapshots".into(),
        }
        .into());
    }
    if !remove.is_empty() && a.prune {
        if text {
            if a.dry_run {
                println!(
                    "{} snapshots would be removed, running prune dry run",
                    remove.len()
                );
            } else {
                println!(
                    "{} snapshots have been removed, running prune",
                    remove.len()
                );
            }
        }
        // The forgotten snapshots do not count as used (they still exist in a dry run).
        let ignore: Vec<Id> = remove.iter().copied().collect();
        super::prune::prune_locked_ignoring(g, &repo, &a.prune_options, a.dry_run, &ignore)?;
    }
    Ok(())
}

/// A list of snapshots as restic's JSON (`null` when empty, like Go's nil slices).
fn snapshots_json(list: &[(Id, Snapshot)]) -> Value {
    if list.is_empty() {
        return Value::Null;
    }
    Value::Array(
        list.iter()
            .map(|(id, s)| super::snapshots::snapshot_json(id, s))
            .collect(),
    )
}

/// One group of restic's `forget --json` output:
/// `{tags, host, paths, keep, remove, reasons: [{snapshot, matches}]}`.
fn group_json(grp: &ForgetGroup) -> Value {
    let r = &grp.result;
    let by_id: HashMap<Id, &Snapshot> = r.keep.iter().map(|(id, s)| (*id, s)).collect();
    let reasons: Vec<Value> = r
        .reasons
        .iter()
        .filter_map(|k| {
            let s = by_id.get(&k.id)?;
            Some(json!({
                "snapshot": super::snapshots::snapshot_json(&k.id, s),
                "matches": k.matches,
            }))
        })
        .collect();
    json!({
        "tags": grp.key.tags,
        "host": grp.key.hostname,
        "paths": grp.key.paths,
        "keep": snapshots_json(&r.keep),
        "remove": snapshots_json(&r.remove),
        "reasons": if reasons.is_empty() { Value::Null } else { Value::Array(reasons) },
    })
}

/// restic's group header (`snapshots for (host [h], tags [t], paths [p]):`).
fn group_header(grp: &ForgetGroup) -> Option<String> {
    let k = &grp.key;
    let mut parts = Vec::new();
    if !k.hostname.is_empty() {
        parts.push(format!("host [{}]", k.hostname));
    }
    if let Some(t) = &k.tags {
        parts.push(format!("tags [{}]", t.join(", ")));
    }
    if let Some(p) = &k.paths {
        parts.push(format!("paths [{}]", p.join(", ")));
    }
    (!parts.is_empty()).then(|| format!("snapshots for ({}):", parts.join(", ")))
}

fn print_group(grp: &ForgetGroup, by: GroupBy, compact: bool) {
    if by.is_grouped()
        && let Some(h) = group_header(grp)
    {
        println!("{h}");
    }
    let r = &grp.result;
    if !r.keep.is_empty() {
        println!("keep {} snapshots:", r.keep.len());
        print_table(&r.keep, Some(&r.reasons), compact);
        println!();
    }
    if !r.remove.is_empty() {
        println!("remove {} snapshots:", r.remove.len());
        print_table(&r.remove, None, compact);
        println!();
    }
}

/// restic's snapshot table for `forget`: oldest first; ID, Time, Host, Tags, Reasons (for
/// kept snapshots), Paths and Size (when snapshots carry a summary); `--compact` shows ID,
/// Time, Host, Tags (one per line) and Size.
fn print_table(list: &[(Id, Snapshot)], reasons: Option<&[KeepReason]>, compact: bool) {
    let why: HashMap<Id, &[String]> = reasons
        .unwrap_or_default()
        .iter()
        .map(|k| (k.id, k.matches.as_slice()))
        .collect();
    let mut rows: Vec<&(Id, Snapshot)> = list.iter().collect();
    rows.sort_by_key(|x| x.1.time);
    let has_size = rows.iter().any(|(_, s)| s.summary.is_some());
    let mut headers: Vec<&str> = vec!["ID", "Time"];
    if compact {
        headers.extend(["Host", "Tags  "]);
    } else {
        headers.extend(["Host      ", "Tags      "]);
        if reasons.is_some() {
            headers.push("Reasons");
        }
        headers.push("Paths");
    }
    if has_size {
        headers.push("Size");
    }
    let mut multiline = false;
    let cells: Vec<Vec<Vec<String>>> = rows
        .iter()
        .map(|(id, s)| {
            let mut row: Vec<Vec<String>> = vec![
                vec![id.short()],
                vec![s.time.0.format("%Y-%m-%d %H:%M:%S").to_string()],
                vec![s.hostname.clone()],
            ];
            if compact {
                row.push(s.tags.clone());
            } else {
                row.push(vec![s.tags.join(",")]);
                if reasons.is_some() {
                    row.push(why.get(id).map(|m| m.to_vec()).unwrap_or_default());
                }
                row.push(s.paths.clone());
                multiline |= s.paths.len() > 1;
            }
            if has_size {
                row.push(vec![
                    s.summary
                        .as_ref()
                        .map(|x| output::size(x.total_bytes_processed))
                        .unwrap_or_default(),
                ]);
            }
            row
        })
        .collect();
    let mut width: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &cells {
        for (w, cell) in width.iter_mut().zip(row) {
            for line in cell {
                *w = (*w).max(line.chars().count());
            }
        }
    }
    let fmt_line = |parts: Vec<&str>| -> String {
        let padded: Vec<String> = parts
            .iter()
            .zip(&width)
            .map(|(p, w)| format!("{p:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let total = width.iter().sum::<usize>() + 2 * width.len().saturating_sub(1);
    println!("{}", fmt_line(headers.clone()));
    println!("{}", "-".repeat(total));
    for (i, row) in cells.iter().enumerate() {
        if multiline && i > 0 {
            println!();
        }
        let height = row.iter().map(Vec::len).max().unwrap_or(1).max(1);
        for l in 0..height {
            let parts: Vec<&str> = row
                .iter()
                .map(|c| c.get(l).map(String::as_str).unwrap_or(""))
                .collect();
            println!("{}", fmt_line(parts));
        }
    }
    println!("{}", "-".repeat(total));
    println!("{} snapshots", rows.len());
}
