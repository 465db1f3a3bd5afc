//! Snapshot retention policies with restic's `forget` semantics: grouping, the `--keep-*`
//! rules, the reasons for keeping a snapshot, and the safety rules of restic ≥ 0.17.
//!
//! Pure logic: the caller loads the snapshots, calls [`plan_forget`] (or [`apply_policy`] on
//! one group) and removes the snapshot files of the plan's `remove` lists.
//!
//! Decisions follow restic's `ApplyPolicy` exactly (restic 0.18+ by default,
//! [`Rules::Restic014`] reproduces 0.14/0.15): the group is sorted newest first, every rule
//! keeps the newest snapshot of each of its periods (buckets are computed on the wall clock of
//! each snapshot's own recorded offset), a counted rule consumes one count per kept period,
//! and the kept set is the union over all rules. Snapshots with the same instant are ordered
//! by descending ID (restic uses the backend's listing order, which is not deterministic).

mod duration;
mod group;

pub use duration::{PolicyDuration, system_local_offset};
pub use group::{GroupBy, GroupKey, group_snapshots};

use crate::{EngineError, Result};
use cairn_repo::Id;
use cairn_repo::gotime::GoTime;
use cairn_repo::snapshot::Snapshot;
use chrono::{DateTime, Datelike, FixedOffset, Timelike};

/// Count value meaning "no limit" (`--keep-daily unlimited`).
pub const UNLIMITED: i64 = -1;

/// Parses a `--keep-*` count like restic ≥ 0.16: a non-negative integer or `unlimited`.
pub fn parse_count(s: &str) -> Result<i64> {
    if s == "unlimited" {
        return Ok(UNLIMITED);
    }
    let v: i64 = s
        .parse()
        .map_err(|e| EngineError::Invalid(format!("invalid count {s:?}: {e}")))?;
    if v < 0 {
        return Err(EngineError::Invalid(
            "negative values not allowed, use 'unlimited' instead".into(),
        ));
    }
    Ok(v)
}

/// Splits a restic tag list (`a,b`): comma separated, whitespace around each tag removed;
/// empty entries are kept (the empty tag matches snapshots without tags).
pub fn parse_tag_list(s: &str) -> Vec<String> {
    s.split(',').map(|t| t.trim().to_string()).collect()
}

/// The `--keep-*` options (restic's `ExpirePolicy`). Counts: 0 = off, [`UNLIMITED`] = all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExpirePolicy {
    /// `--keep-last`.
    pub last: i64,
    /// `--keep-hourly`.
    pub hourly: i64,
    /// `--keep-daily`.
    pub daily: i64,
    /// `--keep-weekly`.
    pub weekly: i64,
    /// `--keep-monthly`.
    pub monthly: i64,
    /// `--keep-yearly`.
    pub yearly: i64,
    /// `--keep-within`.
    pub within: PolicyDuration,
    /// `--keep-within-hourly`.
    pub within_hourly: PolicyDuration,
    /// `--keep-within-daily`.
    pub within_daily: PolicyDuration,
    /// `--keep-within-weekly`.
    pub within_weekly: PolicyDuration,
    /// `--keep-within-monthly`.
    pub within_monthly: PolicyDuration,
    /// `--keep-within-yearly`.
    pub within_yearly: PolicyDuration,
    /// `--keep-tag` lists: keep snapshots that have all tags of at least one list.
    pub tags: Vec<Vec<String>>,
}

impl ExpirePolicy {
    fn counts(&self) -> [(i64, &'static str); 6] {
        [
            (self.last, "latest"),
            (self.hourly, "hourly"),
            (self.daily, "daily"),
            (self.weekly, "weekly"),
            (self.monthly, "monthly"),
            (self.yearly, "yearly"),
        ]
    }

    fn withins(&self) -> [(PolicyDuration, &'static str); 5] {
        [
            (self.within_hourly, "hourly"),
            (self.within_daily, "daily"),
            (self.within_weekly, "weekly"),
            (self.within_monthly, "monthly"),
            (self.within_yearly, "yearly"),
        ]
    }

    /// restic's `Empty()`: no rule is configured.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
            && self.counts().iter().all(|(c, _)| *c == 0)
            && self.within.is_zero()
            && self.withins().iter().all(|(d, _)| d.is_zero())
    }

    /// restic's checks of the options: counts ≥ −1, durations without negative parts.
    pub fn validate(&self) -> Result<()> {
        if self.counts().iter().any(|(c, _)| *c < UNLIMITED) {
            return Err(EngineError::Invalid(
                "negative values other than -1 are not allowed for --keep-*".into(),
            ));
        }
        if self.within.is_negative() || self.withins().iter().any(|(d, _)| d.is_negative()) {
            return Err(EngineError::Invalid(
                "durations containing negative values are not allowed for --keep-within*".into(),
            ));
        }
        Ok(())
    }

    /// restic's description (`Applying Policy: <this>`), e.g.
    /// `keep 2 latest, 3 daily snapshots, hourly snapshots within 2d and all snapshots with
    /// tags [[a, b]] and all snapshots within 1y of the newest`.
    pub fn describe(&self) -> String {
        let keeps: Vec<String> = self
            .counts()
            .iter()
            .filter_map(|(c, what)| match *c {
                UNLIMITED => Some(format!("all {what}")),
                n if n > 0 => Some(format!("{n} {what}")),
                _ => None,
            })
            .collect();
        let keepw: Vec<String> = self
            .withins()
            .iter()
            .filter(|(d, _)| !d.is_zero())
            .map(|(d, what)| format!("{what} snapshots within {d}"))
            .collect();
        let mut s = String::new();
        if !keeps.is_empty() {
            s = format!("{} snapshots", keeps.join(", "));
        }
        if !keepw.is_empty() {
            if !s.is_empty() {
                s.push_str(", ");
            }
            s.push_str(&keepw.join(", "));
        }
        if !self.tags.is_empty() {
            if !s.is_empty() {
                s.push_str(" and ");
            }
            let lists: Vec<String> = self.tags.iter().map(|l| tag_list_string(l)).collect();
            s.push_str(&format!("all snapshots with tags [{}]", lists.join(" ")));
        }
        if !self.within.is_zero() {
            if !s.is_empty() {
                s.push_str(" and ");
            }
            s.push_str(&format!(
                "all snapshots within {} of the newest",
                self.within
            ));
        }
        if s.is_empty() {
            "remove".into()
        } else {
            format!("keep {s}")
        }
    }
}

/// restic's `TagList.String()`: `[a, b]`.
fn tag_list_string(l: &[String]) -> String {
    format!("[{}]", l.join(", "))
}

/// Which restic version's rules to follow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Rules {
    /// restic ≥ 0.18: `unlimited` counts; the oldest snapshot of a group is also kept while a
    /// counted rule has counts left or a `within-*` rule covers it (reason `oldest …`); an
    /// empty policy removes everything (the caller must allow that explicitly).
    #[default]
    Latest,
    /// restic 0.14/0.15: no `unlimited`, no oldest-snapshot rule, an empty policy keeps
    /// everything ("policy is empty"). For comparisons with those versions.
    Restic014,
}

/// The current time and local zone used by the policy (restic ignores snapshots in the future
/// when finding the newest one, and resolves some wall-clock times in the local zone).
#[derive(Clone, Copy)]
pub struct Clock<'a> {
    /// Now.
    pub now: GoTime,
    /// UTC offset (seconds east) of the local zone at a Unix time.
    pub local_offset: &'a dyn Fn(i64) -> i32,
}

impl Clock<'static> {
    /// The system clock and local zone.
    pub fn system() -> Clock<'static> {
        Clock {
            now: GoTime::now(),
            local_offset: &system_local_offset,
        }
    }
}

impl std::fmt::Debug for Clock<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clock").field("now", &self.now).finish()
    }
}

/// Counts left after evaluating a snapshot (restic's `KeepReason.Counters`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// `--keep-last` left.
    pub last: i64,
    /// `--keep-hourly` left.
    pub hourly: i64,
    /// `--keep-daily` left.
    pub daily: i64,
    /// `--keep-weekly` left.
    pub weekly: i64,
    /// `--keep-monthly` left.
    pub monthly: i64,
    /// `--keep-yearly` left.
    pub yearly: i64,
}

/// Why a snapshot is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeepReason {
    /// The kept snapshot.
    pub id: Id,
    /// restic's match texts: `last snapshot`, `daily snapshot`, `oldest weekly snapshot`,
    /// `within 2d`, `daily within 7d`, `has tags [a, b]`, …
    pub matches: Vec<String>,
    /// Counts left after this snapshot.
    pub counters: Counters,
}

/// The decision for one group; lists are newest first and `reasons` parallels `keep`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicyResult {
    /// Snapshots to keep.
    pub keep: Vec<(Id, Snapshot)>,
    /// Snapshots to remove.
    pub remove: Vec<(Id, Snapshot)>,
    /// One reason per kept snapshot.
    pub reasons: Vec<KeepReason>,
}

type Bucker = fn(&DateTime<FixedOffset>, usize) -> i64;

fn ymdh(t: &DateTime<FixedOffset>, _: usize) -> i64 {
    i64::from(t.year()) * 1_000_000
        + i64::from(t.month()) * 10_000
        + i64::from(t.day()) * 100
        + i64::from(t.hour())
}

fn ymd(t: &DateTime<FixedOffset>, _: usize) -> i64 {
    i64::from(t.year()) * 10_000 + i64::from(t.month()) * 100 + i64::from(t.day())
}

fn yw(t: &DateTime<FixedOffset>, _: usize) -> i64 {
    let w = t.iso_week();
    i64::from(w.year()) * 100 + i64::from(w.week())
}

fn ym(t: &DateTime<FixedOffset>, _: usize) -> i64 {
    i64::from(t.year()) * 100 + i64::from(t.month())
}

fn y(t: &DateTime<FixedOffset>, _: usize) -> i64 {
    i64::from(t.year())
}

fn always(_: &DateTime<FixedOffset>, nr: usize) -> i64 {
    i64::try_from(nr).unwrap_or(i64::MAX)
}

/// restic's `findLatestTimestamp`: the newest snapshot time that is not in the future (Go's
/// zero time if there is none).
fn find_latest(list: &[(Id, Snapshot)], now: &GoTime) -> GoTime {
    let mut latest = GoTime::zero();
    for (_, s) in list {
        if s.time > latest && s.time < *now {
            latest = s.time;
        }
    }
    latest
}

/// Sorts snapshots newest first; equal instants by descending ID.
pub fn sort_newest_first(list: &mut [(Id, Snapshot)]) {
    list.sort_by(|a, b| b.1.time.cmp(&a.1.time).then_with(|| b.0.cmp(&a.0)));
}

struct Bucket {
    count: i64,
    bucker: Bucker,
    last: i64,
    reason: &'static str,
}

struct WithinBucket {
    cutoff: Option<Option<i128>>,
    within: PolicyDuration,
    bucker: Bucker,
    last: i64,
    reason: &'static str,
}

/// True if `t` is strictly after the cutoff (`None` = before all representable times).
fn after(t: &GoTime, cutoff: Option<i128>) -> bool {
    cutoff.is_none_or(|c| t.unix_nanos() > c)
}

/// restic's `ApplyPolicy` on one group: which snapshots to keep and why.
pub fn apply_policy(
    mut list: Vec<(Id, Snapshot)>,
    p: &ExpirePolicy,
    rules: Rules,
    clock: &Clock<'_>,
) -> PolicyResult {
    sort_newest_first(&mut list);
    let mut res = PolicyResult::default();
    if rules == Rules::Restic014 && p.is_empty() {
        res.reasons = list
            .iter()
            .map(|(id, _)| KeepReason {
                id: *id,
                matches: vec!["policy is empty".into()],
                counters: Counters::default(),
            })
            .collect();
        res.keep = list;
        return res;
    }
    if list.is_empty() {
        return res;
    }
    let mk = |count, bucker, reason| Bucket {
        count,
        bucker,
        last: -1,
        reason,
    };
    let mut buckets = [
        mk(p.last, always as Bucker, "last snapshot"),
        mk(p.hourly, ymdh, "hourly snapshot"),
        mk(p.daily, ymd, "daily snapshot"),
        mk(p.weekly, yw, "weekly snapshot"),
        mk(p.monthly, ym, "monthly snapshot"),
        mk(p.yearly, y, "yearly snapshot"),
    ];
    let latest = find_latest(&list, &clock.now);
    let cutoff = |d: &PolicyDuration| d.cutoff(latest.0, clock.local_offset);
    let mkw = |within: PolicyDuration, bucker, reason| WithinBucket {
        cutoff: (!within.is_zero()).then(|| cutoff(&within)),
        within,
        bucker,
        last: -1,
        reason,
    };
    let mut withins = [
        mkw(p.within_hourly, ymdh as Bucker, "hourly within"),
        mkw(p.within_daily, ymd, "daily within"),
        mkw(p.within_weekly, yw, "weekly within"),
        mkw(p.within_monthly, ym, "monthly within"),
        mkw(p.within_yearly, y, "yearly within"),
    ];
    let within_cutoff = (!p.within.is_zero()).then(|| cutoff(&p.within));
    let latest_rules = rules == Rules::Latest;
    let oldest = list.len() - 1;

    for (nr, (id, cur)) in list.into_iter().enumerate() {
        let mut matches: Vec<String> = Vec::new();
        for l in &p.tags {
            if cur.has_tags(l) {
                matches.push(format!("has tags {}", tag_list_string(l)));
            }
        }
        if let Some(c) = within_cutoff
            && after(&cur.time, c)
        {
            matches.push(format!("within {}", p.within));
        }
        let is_oldest = latest_rules && nr == oldest;
        for b in &mut buckets {
            let active = b.count > 0 || (latest_rules && b.count == UNLIMITED);
            if !active {
                continue;
            }
            let val = (b.bucker)(&cur.time.0, nr);
            if val != b.last || is_oldest {
                if val == b.last {
                    matches.push(format!("oldest {}", b.reason));
                } else {
                    matches.push(b.reason.to_string());
                }
                b.last = val;
                if b.count > 0 {
                    b.count -= 1;
                }
            }
        }
        for b in &mut withins {
            let Some(c) = b.cutoff else { continue };
            if !after(&cur.time, c) {
                continue;
            }
            let val = (b.bucker)(&cur.time.0, nr);
            if val != b.last || is_oldest {
                let prefix = if val == b.last { "oldest " } else { "" };
                matches.push(format!("{prefix}{} {}", b.reason, b.within));
                b.last = val;
            }
        }
        if matches.is_empty() {
            res.remove.push((id, cur));
        } else {
            res.reasons.push(KeepReason {
                id,
                matches,
                counters: Counters {
                    last: buckets[0].count,
                    hourly: buckets[1].count,
                    daily: buckets[2].count,
                    weekly: buckets[3].count,
                    monthly: buckets[4].count,
                    yearly: buckets[5].count,
                },
            });
            res.keep.push((id, cur));
        }
    }
    res
}

/// The plan for one group.
#[derive(Clone, Debug, PartialEq)]
pub struct ForgetGroup {
    /// The group.
    pub key: GroupKey,
    /// What to keep and remove.
    pub result: PolicyResult,
}

/// restic ≥ 0.17's checks before applying a policy: an empty policy is an error ("no policy
/// was specified, no snapshots will be removed") unless `unsafe_allow_remove_all` is given
/// together with a snapshot filter (`filter_given`). Also runs [`ExpirePolicy::validate`].
pub fn check_policy(
    p: &ExpirePolicy,
    unsafe_allow_remove_all: bool,
    filter_given: bool,
) -> Result<()> {
    p.validate()?;
    if p.is_empty() {
        if !unsafe_allow_remove_all {
            return Err(EngineError::Invalid(
                "no policy was specified, no snapshots will be removed".into(),
            ));
        }
        if !filter_given {
            return Err(EngineError::Invalid(
                "--unsafe-allow-remove-all is not allowed unless a snapshot filter option is specified"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// Groups `snaps` and applies the policy to each group (groups sorted by key). With
/// [`Rules::Latest`], a non-empty policy that would remove every snapshot of a group is an
/// error (restic ≥ 0.17: "refusing to delete last snapshot of snapshot group").
pub fn plan_forget(
    snaps: Vec<(Id, Snapshot)>,
    p: &ExpirePolicy,
    by: GroupBy,
    rules: Rules,
    clock: &Clock<'_>,
) -> Result<Vec<ForgetGroup>> {
    let mut out = Vec::new();
    for (key, list) in group_snapshots(snaps, by) {
        let result = apply_policy(list, p, rules, clock);
        if rules == Rules::Latest && !p.is_empty() && result.keep.is_empty() {
            return Err(EngineError::Invalid(format!(
                "refusing to delete last snapshot of snapshot group \"{}\"",
                key.describe()
            )));
        }
        out.push(ForgetGroup { key, result });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;
