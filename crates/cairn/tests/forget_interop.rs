//! `cairn forget` against the real restic: many random snapshot sets and policies compared
//! with `restic forget --dry-run --json` (the installed restic is 0.14, so the engine's
//! 0.14 rules must match it exactly and the CLI may differ only by restic ≥ 0.16's
//! "oldest snapshot" rule and ≥ 0.17's refusal to empty a group), the recorded fixture
//! vectors through the CLI, and real removals checked with restic.

mod common;
use cairn_backend::LocalBackend;
use cairn_engine::forget::{self, Clock, ExpirePolicy, GroupBy, PolicyDuration, Rules};
use cairn_repo::Id;
use cairn_repo::backend::FileType;
use cairn_repo::gotime::GoTime;
use cairn_repo::repository::{Repository, WriteOptions};
use cairn_repo::snapshot::{Snapshot, SnapshotFilter};
use chrono::{Datelike, NaiveDate, TimeZone, Utc, Weekday};
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

/// xorshift64*: a tiny deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

/// UTC offset of Europe/Berlin (EU rule: +02:00 from the last Sunday of March 01:00 UTC to the
/// last Sunday of October 01:00 UTC, else +01:00).
fn berlin_offset(unix: i64) -> i32 {
    let year = Utc.timestamp_opt(unix, 0).unwrap().year();
    let last_sunday = |month: u32| {
        let mut d = NaiveDate::from_ymd_opt(year, month + 1, 1)
            .unwrap()
            .pred_opt()
            .unwrap();
        while d.weekday() != Weekday::Sun {
            d = d.pred_opt().unwrap();
        }
        d.and_hms_opt(1, 0, 0).unwrap().and_utc().timestamp()
    };
    if (last_sunday(3)..last_sunday(10)).contains(&unix) {
        7200
    } else {
        3600
    }
}

fn utc_offset(_: i64) -> i32 {
    0
}

/// A scratch repository with one real tree that every synthetic snapshot points at.
struct Repo {
    _dir: tempfile::TempDir,
    path: PathBuf,
    cache: PathBuf,
    restic: PathBuf,
    tree: Id,
    /// `TZ` for both programs.
    tz: &'static str,
}

impl Repo {
    fn new(restic_bin: &Path, tz: &'static str) -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let path = d.join("repo");
        ok(cairn().args(["init", "-r"]).arg(&path));
        std::fs::create_dir_all(d.join("src")).unwrap();
        std::fs::write(d.join("src/f.txt"), b"forget interop\n").unwrap();
        ok(cairn()
            .arg("-r")
            .arg(&path)
            .arg("backup")
            .arg(d.join("src")));
        let repo = open_repo(&path);
        let snaps = repo.load_snapshots().unwrap();
        assert_eq!(snaps.len(), 1);
        let (id, s) = &snaps[0];
        repo.backend()
            .remove(FileType::Snapshot, &id.to_hex())
            .unwrap();
        Repo {
            path,
            cache: d.join("cache"),
            restic: restic_bin.to_path_buf(),
            tree: s.tree,
            _dir: dir,
            tz,
        }
    }

    fn cairn(&self, args: &[String]) -> Output {
        cairn()
            .env("TZ", self.tz)
            .arg("-r")
            .arg(&self.path)
            .args(args)
            .output()
            .unwrap()
    }

    fn restic(&self, args: &[String]) -> Output {
        restic(&self.restic, &self.cache)
            .env("TZ", self.tz)
            .arg("-r")
            .arg(&self.path)
            .args(args)
            .output()
            .unwrap()
    }
}

fn open_repo(path: &Path) -> Repository {
    Repository::open(
        Arc::new(LocalBackend::new(path)),
        PASSWORD.as_bytes(),
        WriteOptions::default(),
    )
    .unwrap()
}

/// Random snapshots: times from seconds to years before `base` (unique instants: restic
/// orders equal instants by backend listing order), optionally a few in the future.
fn random_snapshots(
    rng: &mut Rng,
    n: usize,
    base: i64,
    zone: fn(i64) -> i32,
    offsets: &[i32],
    future: bool,
) -> Vec<Snapshot> {
    let hosts = ["h1", "h2", ""];
    let path_sets: [&[&str]; 4] = [&["/a"], &["/b"], &["/a", "/b"], &["/b", "/a"]];
    let tag_pool = ["x", "y", "z"];
    (0..n)
        .map(|i| {
            let scale = *rng.pick(&[3_600i64, 3 * 86_400, 100 * 86_400, 6 * 365 * 86_400]);
            let mut ago = rng.range(0, scale);
            if rng.chance(40) {
                ago -= ago % *rng.pick(&[60, 900, 3_600, 86_400]);
            }
            let mut unix = base - ago;
            if future && rng.chance(8) {
                unix = base + 400 * 86_400 * 4 + rng.range(0, 86_400 * 30);
            }
            let offset = if offsets.is_empty() {
                zone(unix)
            } else {
                *rng.pick(offsets)
            };
            let time = GoTime::from_unix_with_offset(unix, i as u32 + 1, offset);
            let paths = rng.pick(&path_sets).iter().map(|p| p.to_string()).collect();
            let mut s = Snapshot::new(time, Id::default(), paths);
            s.hostname = rng.pick(&hosts).to_string();
            s.username = "tester".into();
            for t in tag_pool {
                if rng.chance(35) {
                    s.tags.push(t.into());
                }
            }
            if s.tags.len() > 1 && rng.chance(50) {
                s.tags.reverse();
            }
            s
        })
        .collect()
}

fn write_snapshots(repo: &Repo, snaps: Vec<Snapshot>) {
    let r = open_repo(&repo.path);
    for mut s in snaps {
        s.tree = repo.tree;
        r.save_snapshot(&s).unwrap();
    }
}

/// A random policy that restic 0.14 understands (no `unlimited`), never empty.
fn random_policy(rng: &mut Rng) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let counted = [
        "--keep-last",
        "--keep-hourly",
        "--keep-daily",
        "--keep-weekly",
        "--keep-monthly",
        "--keep-yearly",
    ];
    let within = [
        "--keep-within",
        "--keep-within-hourly",
        "--keep-within-daily",
        "--keep-within-weekly",
        "--keep-within-monthly",
        "--keep-within-yearly",
    ];
    let durations = [
        "2h", "30h", "1d", "3d", "10d5h", "1m", "1m3d", "2m", "1y", "1y2m", "3y",
    ];
    let tags = ["x", "y", "x,y", "z", ""];
    while args.is_empty() {
        for f in counted {
            if rng.chance(25) {
                args.push(f.into());
                args.push(rng.range(1, 8).to_string());
            }
        }
        for f in within {
            if rng.chance(12) {
                args.push(f.into());
                args.push(rng.pick(&durations).to_string());
            }
        }
        if rng.chance(15) {
            args.push("--keep-tag".into());
            args.push(rng.pick(&tags).to_string());
        }
    }
    if rng.chance(60) {
        args.push("--group-by".into());
        args.push(
            rng.pick(&["host", "paths", "tags", "", "host,tags", "host,paths,tags"])
                .to_string(),
        );
    }
    if rng.chance(10) {
        args.push("--host".into());
        args.push("h1".into());
    }
    if rng.chance(10) {
        args.push("--tag".into());
        args.push(rng.pick(&["x", "y,z", ""]).to_string());
    }
    if rng.chance(10) {
        args.push("--path".into());
        args.push("/a".into());
    }
    args
}

/// The same policy for the in-process engine.
fn parse_policy(args: &[String]) -> (ExpirePolicy, GroupBy, SnapshotFilter) {
    let mut p = ExpirePolicy::default();
    let mut by = GroupBy::host_paths();
    let mut f = SnapshotFilter::default();
    for pair in args.chunks(2) {
        let (flag, v) = (pair[0].as_str(), pair[1].as_str());
        let dur = || PolicyDuration::parse(v).unwrap();
        let n = || forget::parse_count(v).unwrap();
        match flag {
            "--keep-last" => p.last = n(),
            "--keep-hourly" => p.hourly = n(),
            "--keep-daily" => p.daily = n(),
            "--keep-weekly" => p.weekly = n(),
            "--keep-monthly" => p.monthly = n(),
            "--keep-yearly" => p.yearly = n(),
            "--keep-within" => p.within = dur(),
            "--keep-within-hourly" => p.within_hourly = dur(),
            "--keep-within-daily" => p.within_daily = dur(),
            "--keep-within-weekly" => p.within_weekly = dur(),
            "--keep-within-monthly" => p.within_monthly = dur(),
            "--keep-within-yearly" => p.within_yearly = dur(),
            "--keep-tag" => p.tags.push(forget::parse_tag_list(v)),
            "--group-by" => by = GroupBy::parse(v).unwrap(),
            "--host" => f.hosts.push(v.into()),
            "--tag" => f.tags.push(forget::parse_tag_list(v)),
            "--path" => f.paths.push(v.into()),
            other => panic!("unknown flag {other}"),
        }
    }
    (p, by, f)
}

type Key = (String, Option<Vec<String>>, Option<Vec<String>>);

/// One group of `forget --json` output (IDs newest first; reasons parallel `keep`).
#[derive(Debug, Default, PartialEq)]
struct Group {
    keep: Vec<String>,
    remove: Vec<String>,
    matches: Vec<Vec<String>>,
    counters: Vec<[i64; 6]>,
}

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array()
        .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
}

fn ids_of(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s["id"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

const COUNTER_NAMES: [&str; 6] = ["last", "hourly", "daily", "weekly", "monthly", "yearly"];

fn parse_groups(stdout: &[u8]) -> BTreeMap<Key, Group> {
    let text = String::from_utf8_lossy(stdout);
    let text = text.trim();
    if text.is_empty() {
        return BTreeMap::new();
    }
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let mut out = BTreeMap::new();
    for g in v.as_array().unwrap() {
        let key = (
            g["host"].as_str().unwrap().to_string(),
            strings(&g["paths"]),
            strings(&g["tags"]),
        );
        let reasons = g["reasons"].as_array().cloned().unwrap_or_default();
        let grp = Group {
            keep: ids_of(&g["keep"]),
            remove: ids_of(&g["remove"]),
            matches: reasons
                .iter()
                .map(|r| strings(&r["matches"]).unwrap())
                .collect(),
            counters: reasons
                .iter()
                .map(|r| COUNTER_NAMES.map(|n| r["counters"][n].as_i64().unwrap_or(0)))
                .collect(),
        };
        assert!(out.insert(key, grp).is_none(), "duplicate group");
    }
    out
}

/// The engine's decision in process (same snapshots, same clock and zone as the programs).
fn engine_groups(
    repo: &Repo,
    args: &[String],
    rules: Rules,
    zone: fn(i64) -> i32,
) -> Result<BTreeMap<Key, Group>, String> {
    let (p, by, f) = parse_policy(args);
    let snaps: Vec<_> = open_repo(&repo.path)
        .load_snapshots()
        .unwrap()
        .into_iter()
        .filter(|(_, s)| f.matches(s))
        .collect();
    let clock = Clock {
        now: GoTime::now(),
        local_offset: &zone,
    };
    let plan = forget::plan_forget(snaps, &p, by, rules, &clock).map_err(|e| e.to_string())?;
    let hexes = |l: &[(Id, Snapshot)]| l.iter().map(|(id, _)| id.to_hex()).collect();
    Ok(plan
        .into_iter()
        .map(|g| {
            let r = &g.result;
            let grp = Group {
                keep: hexes(&r.keep),
                remove: hexes(&r.remove),
                matches: r.reasons.iter().map(|k| k.matches.clone()).collect(),
                counters: r
                    .reasons
                    .iter()
                    .map(|k| {
                        let c = k.counters;
                        [c.last, c.hourly, c.daily, c.weekly, c.monthly, c.yearly]
                    })
                    .collect(),
            };
            ((g.key.hostname, g.key.paths, g.key.tags), grp)
        })
        .collect())
}

/// restic ≥ 0.16 keeps a group's oldest snapshot while a counted rule has counts left: check
/// that from restic 0.14's counters (the counts left before the oldest snapshot are those
/// after the last kept one).
fn oldest_rule_applies(args: &[String], r: &Group) -> bool {
    let (p, _, _) = parse_policy(args);
    let initial = [p.last, p.hourly, p.daily, p.weekly, p.monthly, p.yearly];
    let left = r.counters.last().copied().unwrap_or(initial);
    initial.iter().zip(left).any(|(i, l)| *i > 0 && l > 0)
}

/// Runs one policy through restic, the engine (0.14 and latest rules) and the CLI.
fn compare_case(repo: &Repo, args: &[String], zone: fn(i64) -> i32, stats: &mut [usize; 3]) {
    // Dry runs without locks (10× faster); locking is covered by the fixture tests.
    let mut full: Vec<String> = ["--no-lock", "forget", "--dry-run", "--json"]
        .map(String::from)
        .to_vec();
    full.extend_from_slice(args);
    let ro = repo.restic(&full);
    assert!(
        ro.status.success(),
        "restic {args:?}: {}",
        String::from_utf8_lossy(&ro.stderr)
    );
    let restic = parse_groups(&ro.stdout);

    // 1. The engine with restic 0.14's rules: identical decisions, reasons and counters.
    let e014 = engine_groups(repo, args, Rules::Restic014, zone).unwrap();
    assert_eq!(e014, restic, "engine (0.14 rules) vs restic for {args:?}");

    // 2. The CLI (restic ≥ 0.18 rules).
    let co = repo.cairn(&full);
    let latest = engine_groups(repo, args, Rules::Latest, zone);
    if restic.values().any(|g| g.keep.is_empty()) {
        // restic ≥ 0.17 refuses to empty a group.
        assert_eq!(co.status.code(), Some(1), "cairn {args:?} should refuse");
        let err = String::from_utf8_lossy(&co.stderr);
        assert!(
            err.contains("refusing to delete last snapshot of snapshot group"),
            "{args:?}: {err}"
        );
        assert!(latest.is_err());
        stats[2] += 1;
        return;
    }
    assert!(
        co.status.success(),
        "cairn {args:?}: {}",
        String::from_utf8_lossy(&co.stderr)
    );
    let cli = parse_groups(&co.stdout);
    // restic ≥ 0.17's JSON has no counters.
    let mut latest = latest.unwrap();
    for g in latest.values_mut() {
        g.counters = vec![[0; 6]; g.counters.len()];
    }
    assert_eq!(cli, latest, "CLI vs engine for {args:?}");
    assert_eq!(
        cli.keys().collect::<Vec<_>>(),
        restic.keys().collect::<Vec<_>>(),
        "groups for {args:?}"
    );
    let times: BTreeMap<String, GoTime> = open_repo(&repo.path)
        .load_snapshots()
        .unwrap()
        .into_iter()
        .map(|(id, s)| (id.to_hex(), s.time))
        .collect();
    for (key, r) in &restic {
        let c = &cli[key];
        let mut all: Vec<&String> = c.keep.iter().chain(&c.remove).collect();
        let mut rall: Vec<&String> = r.keep.iter().chain(&r.remove).collect();
        all.sort();
        rall.sort();
        assert_eq!(all, rall, "{args:?} {key:?}: same snapshots");
        let oldest = rall.iter().min_by_key(|id| times[id.as_str()]).unwrap();
        if c.keep == r.keep {
            // The oldest may gain "oldest …" reasons when another rule keeps it anyway.
            let mut cm = c.matches.clone();
            if c.keep.last() == Some(*oldest)
                && let Some(last) = cm.last_mut()
            {
                last.retain(|m| !m.starts_with("oldest "));
            }
            assert_eq!(cm, r.matches, "{args:?} {key:?}: reasons");
            assert_eq!(c.remove, r.remove);
            if r.remove.contains(oldest) && rall.len() > 1 {
                assert!(
                    !oldest_rule_applies(args, r),
                    "{args:?} {key:?}: counts left, the oldest must be kept"
                );
            }
            stats[0] += 1;
        } else {
            // The only allowed difference: the group's oldest snapshot is kept additionally
            // because of the oldest-snapshot rule.
            let extra = c.keep.last().unwrap();
            assert_eq!(extra, *oldest, "{args:?} {key:?}: not the oldest");
            assert_eq!(&c.keep[..c.keep.len() - 1], &r.keep[..], "{args:?} {key:?}");
            assert_eq!(r.remove.last(), Some(extra), "{args:?} {key:?}");
            assert_eq!(&r.remove[..r.remove.len() - 1], &c.remove[..]);
            let m = c.matches.last().unwrap();
            assert!(
                m.iter().all(|x| x.starts_with("oldest ")),
                "{args:?} {key:?}: {m:?}"
            );
            assert_eq!(&c.matches[..c.matches.len() - 1], &r.matches[..]);
            stats[1] += 1;
        }
    }
}

fn run_random(
    seed: u64,
    tz: &'static str,
    zone: fn(i64) -> i32,
    offsets: &[i32],
    future: bool,
    cases: usize,
) {
    let Some(rb) = external("restic") else { return };
    let repo = Repo::new(&rb, tz);
    let mut rng = Rng(seed);
    // 2023-06-15T12:00:00Z.
    let base = 1_686_830_400;
    let n = rng.range(20, 45) as usize;
    let snaps = random_snapshots(&mut rng, n, base, zone, offsets, future);
    write_snapshots(&repo, snaps);
    let mut stats = [0usize; 3];
    for _ in 0..cases {
        let args = random_policy(&mut rng);
        compare_case(&repo, &args, zone, &mut stats);
    }
    eprintln!(
        "seed {seed}: {cases} policies; groups identical {}, oldest rule {}, refused {}",
        stats[0], stats[1], stats[2]
    );
    assert!(stats[0] > 0);
}

#[test]
fn random_policies_match_restic_utc_offsets() {
    run_random(
        0x9e37_79b9_7f4a_7c15,
        "UTC",
        utc_offset,
        &[0, 3600, -18000, 19800, -43200, 50400],
        false,
        60,
    );
}

#[test]
fn random_policies_match_restic_utc_only() {
    run_random(0x1234_5678_9abc_def1, "UTC", utc_offset, &[0], false, 60);
}

#[test]
fn random_policies_match_restic_with_future_snapshots() {
    // restic ignores snapshots in the future when finding the newest one.
    run_random(
        0x5151_2323_abab_7777,
        "UTC",
        utc_offset,
        &[0, 7200],
        true,
        60,
    );
}

#[test]
fn random_policies_match_restic_berlin_local_zone() {
    // Offsets follow Berlin's DST, and restic runs in that zone: Go then computes
    // --keep-within cutoffs in the local zone (DST-aware).
    run_random(
        0x0bad_cafe_f00d_0001,
        "Europe/Berlin",
        berlin_offset,
        &[],
        false,
        60,
    );
}

#[test]
fn keep_within_cutoff_across_dst_matches_restic() {
    let Some(rb) = external("restic") else { return };
    let repo = Repo::new(&rb, "Europe/Berlin");
    // latest: 2022-04-01T12:00:00+02:00 (10:00Z). 7 days earlier in the local zone is
    // 2022-03-25T12:00:00+01:00 (11:00Z); in the fixed offset it would be 10:00Z.
    let latest = 1_648_807_200;
    let week = 7 * 86_400;
    let mut snaps = Vec::new();
    for (i, unix) in [
        latest,
        latest - week + 1_800, // 10:30Z: inside only with a fixed-offset cutoff
        latest - week + 5_400, // 11:30Z: inside either way
        latest - week - 1_800, // outside either way
        latest - 3 * 86_400,
    ]
    .into_iter()
    .enumerate()
    {
        let t = GoTime::from_unix_with_offset(unix, i as u32 + 1, berlin_offset(unix));
        let mut s = Snapshot::new(t, Id::default(), vec!["/a".into()]);
        s.hostname = "h1".into();
        snaps.push(s);
    }
    write_snapshots(&repo, snaps);
    let mut stats = [0usize; 3];
    for args in [
        vec!["--keep-within", "7d"],
        vec!["--keep-within-hourly", "7d"],
        vec!["--keep-within-daily", "7d"],
        vec!["--keep-within", "6d23h"],
    ] {
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        compare_case(&repo, &args, berlin_offset, &mut stats);
    }
    // The discriminating snapshot is removed (restic's local-zone cutoff).
    let out = repo.cairn(&[
        "forget".into(),
        "--dry-run".into(),
        "--json".into(),
        "--keep-within".into(),
        "7d".into(),
    ]);
    let g = parse_groups(&out.stdout);
    let grp = g.values().next().unwrap();
    assert_eq!(grp.keep.len(), 3, "{grp:?}");
    assert_eq!(grp.remove.len(), 2);
}

#[path = "forget_interop/e2e.rs"]
mod e2e;
