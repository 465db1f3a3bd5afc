//! Unit tests of the policy, and the golden test over restic 0.14's recorded decisions
//! (`shared/fixtures/forget-vectors.json`).

use super::*;
use serde_json::Value;

fn utc_zone(_: i64) -> i32 {
    0
}

fn clock_at(now: &str) -> Clock<'static> {
    Clock {
        now: GoTime::parse(now).unwrap(),
        local_offset: &utc_zone,
    }
}

fn snap(id: u8, time: &str, tags: &[&str]) -> (Id, Snapshot) {
    let mut s = Snapshot::new(
        GoTime::parse(time).unwrap(),
        Id::hash(b"tree"),
        vec!["/data".into()],
    );
    s.hostname = "h".into();
    s.tags = tags.iter().map(|t| t.to_string()).collect();
    (Id([id; 32]), s)
}

fn ids(list: &[(Id, Snapshot)]) -> Vec<u8> {
    list.iter().map(|(id, _)| id.0[0]).collect()
}

fn matches(r: &PolicyResult) -> Vec<Vec<String>> {
    r.reasons.iter().map(|k| k.matches.clone()).collect()
}

#[test]
fn counts_and_tag_lists_parse_like_restic() {
    assert_eq!(parse_count("0").unwrap(), 0);
    assert_eq!(parse_count("7").unwrap(), 7);
    assert_eq!(parse_count("unlimited").unwrap(), UNLIMITED);
    let e = parse_count("-1").unwrap_err().to_string();
    assert_eq!(e, "negative values not allowed, use 'unlimited' instead");
    assert!(parse_count("x").is_err());
    assert!(parse_count("").is_err());
    assert_eq!(parse_tag_list(" a , b"), ["a", "b"]);
    assert_eq!(parse_tag_list(""), [""]);
}

#[test]
fn describe_matches_restic_text() {
    let mut p = ExpirePolicy {
        last: 2,
        ..Default::default()
    };
    assert_eq!(p.describe(), "keep 2 latest snapshots");
    p.tags = vec![vec!["important".into()]];
    assert_eq!(
        p.describe(),
        "keep 2 latest snapshots and all snapshots with tags [[important]]"
    );
    let p = ExpirePolicy {
        daily: UNLIMITED,
        weekly: 3,
        within_daily: PolicyDuration::parse("7d").unwrap(),
        within_yearly: PolicyDuration::parse("2y").unwrap(),
        tags: vec![vec!["a".into(), "b".into()], vec!["c".into()]],
        within: PolicyDuration::parse("1m2h").unwrap(),
        ..Default::default()
    };
    assert_eq!(
        p.describe(),
        "keep all daily, 3 weekly snapshots, daily snapshots within 7d, yearly snapshots \
         within 2y and all snapshots with tags [[a, b] [c]] and all snapshots within 1m2h of \
         the newest"
    );
    assert_eq!(ExpirePolicy::default().describe(), "remove");
}

#[test]
fn empty_policy_and_safety_checks() {
    let empty = ExpirePolicy::default();
    assert!(empty.is_empty());
    let e = check_policy(&empty, false, true).unwrap_err().to_string();
    assert_eq!(e, "no policy was specified, no snapshots will be removed");
    let e = check_policy(&empty, true, false).unwrap_err().to_string();
    assert_eq!(
        e,
        "--unsafe-allow-remove-all is not allowed unless a snapshot filter option is specified"
    );
    check_policy(&empty, true, true).unwrap();
    let p = ExpirePolicy {
        tags: vec![vec![]],
        ..Default::default()
    };
    assert!(!p.is_empty());
    check_policy(&p, false, false).unwrap();
    let bad = ExpirePolicy {
        last: -2,
        ..Default::default()
    };
    assert!(check_policy(&bad, false, false).is_err());
    let bad = ExpirePolicy {
        within_weekly: PolicyDuration::parse("-1d").unwrap(),
        ..Default::default()
    };
    assert!(check_policy(&bad, false, false).is_err());

    // An empty policy removes everything (latest rules) / keeps everything (0.14).
    let list = vec![
        snap(1, "2022-01-01T00:00:00Z", &[]),
        snap(2, "2022-01-02T00:00:00Z", &[]),
    ];
    let c = clock_at("2030-01-01T00:00:00Z");
    let r = apply_policy(list.clone(), &empty, Rules::Latest, &c);
    assert!(r.keep.is_empty());
    assert_eq!(ids(&r.remove), [2, 1]);
    let r = apply_policy(list.clone(), &empty, Rules::Restic014, &c);
    assert_eq!(ids(&r.keep), [2, 1]);
    assert_eq!(matches(&r)[0], ["policy is empty"]);
    // plan_forget does not refuse an empty policy (the caller checked it).
    let plan = plan_forget(list, &empty, GroupBy::host_paths(), Rules::Latest, &c).unwrap();
    assert_eq!(plan.len(), 1);
}

#[test]
fn refuses_to_empty_a_group() {
    let list = vec![
        snap(1, "2022-01-01T00:00:00Z", &["x"]),
        snap(2, "2022-01-02T00:00:00Z", &[]),
    ];
    let p = ExpirePolicy {
        tags: vec![vec!["important".into()]],
        ..Default::default()
    };
    let c = clock_at("2030-01-01T00:00:00Z");
    let e = plan_forget(list.clone(), &p, GroupBy::host_paths(), Rules::Latest, &c)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "refusing to delete last snapshot of snapshot group \"host h, path [/data]\""
    );
    // restic 0.14 removes the whole group.
    let plan = plan_forget(
        list.clone(),
        &p,
        GroupBy::host_paths(),
        Rules::Restic014,
        &c,
    )
    .unwrap();
    assert_eq!(ids(&plan[0].result.remove), [2, 1]);
    // Keeping one is enough.
    let p = ExpirePolicy {
        tags: vec![vec!["x".into()]],
        ..Default::default()
    };
    let plan = plan_forget(list, &p, GroupBy::host_paths(), Rules::Latest, &c).unwrap();
    assert_eq!(ids(&plan[0].result.keep), [1]);
    assert_eq!(matches(&plan[0].result), [["has tags [x]"]]);
}

#[test]
fn oldest_snapshot_rule_and_unlimited() {
    // Three snapshots on one day, one on the previous day.
    let list = vec![
        snap(1, "2022-01-01T10:00:00Z", &[]),
        snap(2, "2022-01-02T08:00:00Z", &[]),
        snap(3, "2022-01-02T09:00:00Z", &[]),
        snap(4, "2022-01-02T10:00:00Z", &[]),
    ];
    let c = clock_at("2030-01-01T00:00:00Z");
    let p = ExpirePolicy {
        daily: 5,
        ..Default::default()
    };
    let r = apply_policy(list.clone(), &p, Rules::Latest, &c);
    assert_eq!(ids(&r.keep), [4, 1]);
    // Same day as the previous kept one, but the oldest of the group and counts are left.
    let only_day2: Vec<_> = list[1..].to_vec();
    let r = apply_policy(only_day2.clone(), &p, Rules::Latest, &c);
    assert_eq!(ids(&r.keep), [4, 2]);
    assert_eq!(matches(&r), [["daily snapshot"], ["oldest daily snapshot"]]);
    assert_eq!(r.reasons[1].counters.daily, 3);
    let r = apply_policy(only_day2.clone(), &p, Rules::Restic014, &c);
    assert_eq!(ids(&r.keep), [4]);
    // No counts left: the oldest is not kept.
    let p1 = ExpirePolicy {
        daily: 1,
        ..Default::default()
    };
    let r = apply_policy(only_day2.clone(), &p1, Rules::Latest, &c);
    assert_eq!(ids(&r.keep), [4]);
    // Unlimited: newest per day, plus the oldest; counters stay −1.
    let pu = ExpirePolicy {
        daily: UNLIMITED,
        ..Default::default()
    };
    let r = apply_policy(list.clone(), &pu, Rules::Latest, &c);
    assert_eq!(ids(&r.keep), [4, 1]);
    assert_eq!(r.reasons[0].counters.daily, UNLIMITED);
    let r = apply_policy(only_day2.clone(), &pu, Rules::Latest, &c);
    assert_eq!(ids(&r.keep), [4, 2]);
    // restic 0.14 has no "unlimited": the rule is off.
    let r = apply_policy(list.clone(), &pu, Rules::Restic014, &c);
    assert!(r.keep.is_empty());
    // within-X rules keep the oldest when it is covered.
    let pw = ExpirePolicy {
        within_daily: PolicyDuration::parse("3d").unwrap(),
        ..Default::default()
    };
    let r = apply_policy(only_day2.clone(), &pw, Rules::Latest, &c);
    assert_eq!(ids(&r.keep), [4, 2]);
    assert_eq!(
        matches(&r),
        [["daily within 3d"], ["oldest daily within 3d"]]
    );
    let pw1 = ExpirePolicy {
        within_daily: PolicyDuration::parse("1h").unwrap(),
        ..Default::default()
    };
    let r = apply_policy(only_day2, &pw1, Rules::Latest, &c);
    assert_eq!(ids(&r.keep), [4]);
}

#[test]
fn within_is_relative_to_newest_past_snapshot_and_strict() {
    let list = vec![
        snap(1, "2022-01-01T00:00:00Z", &[]),
        snap(2, "2022-01-02T00:00:00Z", &[]),
        snap(3, "2022-01-03T00:00:00Z", &[]),
        // In the future relative to the clock: ignored when finding the newest.
        snap(4, "2040-01-01T00:00:00Z", &[]),
    ];
    let c = clock_at("2030-01-01T00:00:00Z");
    let p = ExpirePolicy {
        within: PolicyDuration::parse("1d").unwrap(),
        ..Default::default()
    };
    let r = apply_policy(list.clone(), &p, Rules::Latest, &c);
    // cutoff = 2022-01-02T00:00 exactly; strictly newer only.
    assert_eq!(ids(&r.keep), [4, 3]);
    assert_eq!(matches(&r)[1], ["within 1d"]);
    // Everything in the future: latest is the zero time, everything is newer.
    let c = clock_at("2000-01-01T00:00:00Z");
    let r = apply_policy(list, &p, Rules::Latest, &c);
    assert_eq!(r.keep.len(), 4);
}

#[test]
fn tags_rules_and_buckets_in_recorded_offset() {
    let list = vec![
        snap(1, "2019-12-31T23:30:00Z", &[]),
        // Same instant, but 2020-01-01 on its own wall clock.
        snap(2, "2020-01-01T00:30:00+01:00", &["a", "b"]),
        snap(3, "2020-01-01T05:00:00Z", &["a"]),
    ];
    let c = clock_at("2030-01-01T00:00:00Z");
    let p = ExpirePolicy {
        yearly: 5,
        tags: vec![vec!["a".into(), "b".into()], vec!["".into()]],
        ..Default::default()
    };
    let r = apply_policy(list, &p, Rules::Restic014, &c);
    // 3 newest of 2020; 2 (ties broken by descending ID: 2 before 1) has the tags; 1 is
    // 2019 on its wall clock and untagged (the empty tag matches untagged snapshots).
    assert_eq!(ids(&r.keep), [3, 2, 1]);
    assert_eq!(
        matches(&r),
        vec![
            vec!["yearly snapshot".to_string()],
            vec!["has tags [a, b]".to_string()],
            vec!["has tags []".to_string(), "yearly snapshot".to_string()],
        ]
    );
    assert_eq!(r.reasons[2].counters.yearly, 3);
}

#[test]
fn input_order_does_not_matter() {
    let mut list = vec![
        snap(5, "2020-01-01T00:00:00Z", &[]),
        snap(1, "2020-01-01T00:00:00Z", &[]),
        snap(9, "2020-01-01T01:00:00+01:00", &[]),
        snap(3, "2019-01-01T00:00:00Z", &[]),
    ];
    let c = clock_at("2030-01-01T00:00:00Z");
    let p = ExpirePolicy {
        last: 2,
        ..Default::default()
    };
    let a = apply_policy(list.clone(), &p, Rules::Latest, &c);
    list.reverse();
    let b = apply_policy(list, &p, Rules::Latest, &c);
    assert_eq!(a, b);
    assert_eq!(ids(&a.keep), [9, 5]);
}

// ---- golden test over restic 0.14's recorded results ----

fn vectors() -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/forget-vectors.json");
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_slice(&bytes).unwrap()
}

fn policy_from_args(args: &[String]) -> (ExpirePolicy, GroupBy) {
    let mut p = ExpirePolicy::default();
    let mut by = GroupBy::host_paths();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let v = it.next().unwrap();
        let dur = || PolicyDuration::parse(v).unwrap();
        match flag.as_str() {
            "--keep-last" => p.last = parse_count(v).unwrap(),
            "--keep-hourly" => p.hourly = parse_count(v).unwrap(),
            "--keep-daily" => p.daily = parse_count(v).unwrap(),
            "--keep-weekly" => p.weekly = parse_count(v).unwrap(),
            "--keep-monthly" => p.monthly = parse_count(v).unwrap(),
            "--keep-yearly" => p.yearly = parse_count(v).unwrap(),
            "--keep-within" => p.within = dur(),
            "--keep-within-hourly" => p.within_hourly = dur(),
            "--keep-within-daily" => p.within_daily = dur(),
            "--keep-within-weekly" => p.within_weekly = dur(),
            "--keep-within-monthly" => p.within_monthly = dur(),
            "--keep-within-yearly" => p.within_yearly = dur(),
            "--keep-tag" => p.tags.push(parse_tag_list(v)),
            "--group-by" => by = GroupBy::parse(v).unwrap(),
            other => panic!("unknown flag {other}"),
        }
    }
    (p, by)
}

fn opt_list(v: &Value) -> Option<Vec<String>> {
    v.as_array()
        .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
}

fn hex_list(v: &Value) -> Vec<String> {
    opt_list(v).unwrap_or_default()
}

fn hexes(list: &[(Id, Snapshot)]) -> Vec<String> {
    list.iter().map(|(id, _)| id.to_hex()).collect()
}

/// The vector snapshots, in the listing order restic used (oldest first overall).
fn vector_snapshots(v: &Value) -> Vec<(Id, Snapshot)> {
    v["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let id = Id::from_name(s["id"].as_str().unwrap()).unwrap();
            let json = serde_json::to_vec(s).unwrap();
            (id, Snapshot::from_json(&json).unwrap())
        })
        .collect()
}

#[test]
fn golden_restic_014_vectors() {
    let v = vectors();
    let snaps = vector_snapshots(&v);
    assert_eq!(snaps.len(), 26);
    let c = clock_at("2026-11-26T17:00:00Z");
    // The documented newest-first order, including both ties.
    let mut sorted = snaps.clone();
    sort_newest_first(&mut sorted);
    assert_eq!(
        hexes(&sorted),
        hex_list(&v["restic_sort_order_newest_first"])
    );

    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 16);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let args: Vec<String> = hex_list(&case["args"]);
        let (p, by) = policy_from_args(&args);
        let plan = plan_forget(snaps.clone(), &p, by, Rules::Restic014, &c).unwrap();
        let groups = case["groups"].as_array().unwrap();
        assert_eq!(plan.len(), groups.len(), "{name}: number of groups");
        for (g, want) in plan.iter().zip(groups) {
            let ctx = format!("{name} group {:?}", g.key);
            assert_eq!(g.key.hostname, want["host"].as_str().unwrap(), "{ctx}");
            assert_eq!(g.key.paths, opt_list(&want["paths"]), "{ctx}");
            assert_eq!(g.key.tags, opt_list(&want["tags"]), "{ctx}");
            assert_eq!(
                hexes(&g.result.keep),
                hex_list(&want["keep"]),
                "{ctx}: keep"
            );
            assert_eq!(
                hexes(&g.result.remove),
                hex_list(&want["remove"]),
                "{ctx}: remove"
            );
            let reasons = want["keep_reasons"].as_array().unwrap();
            assert_eq!(g.result.reasons.len(), reasons.len(), "{ctx}");
            for (r, w) in g.result.reasons.iter().zip(reasons) {
                assert_eq!(r.id.to_hex(), w["id"].as_str().unwrap(), "{ctx}");
                assert_eq!(r.matches, hex_list(&w["matches"]), "{ctx}: matches");
                let wc = &w["counters"];
                let count = |k: &str| wc[k].as_i64().unwrap_or(0);
                let got = r.counters;
                assert_eq!(
                    [
                        got.last,
                        got.hourly,
                        got.daily,
                        got.weekly,
                        got.monthly,
                        got.yearly
                    ],
                    [
                        count("last"),
                        count("hourly"),
                        count("daily"),
                        count("weekly"),
                        count("monthly"),
                        count("yearly")
                    ],
                    "{ctx}: counters of {}",
                    r.id.to_hex()
                );
            }
        }
    }
}

#[test]
fn golden_vectors_with_latest_rules_differ_only_as_documented() {
    let v = vectors();
    let snaps = vector_snapshots(&v);
    let c = clock_at("2026-11-26T17:00:00Z");
    for case in v["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (p, by) = policy_from_args(&hex_list(&case["args"]));
        let latest = plan_forget(snaps.clone(), &p, by, Rules::Latest, &c);
        if name == "tag" {
            let e = latest.unwrap_err().to_string();
            assert!(
                e.starts_with(
                    "refusing to delete last snapshot of snapshot group \"host beta, path ["
                ),
                "{e}"
            );
            continue;
        }
        let latest = latest.unwrap();
        let old = plan_forget(snaps.clone(), &p, by, Rules::Restic014, &c).unwrap();
        for (l, o) in latest.iter().zip(&old) {
            let mut want_keep = hexes(&o.result.keep);
            let mut want_reasons: Vec<Vec<String>> = matches(&o.result);
            if name == "weekly100" && l.key.hostname == "alpha" {
                want_keep.push(
                    "6306f0afc772d4dc2254c8f520338f950d54e9be50ace6b3903f61e23de84e96".into(),
                );
                want_reasons.push(vec!["oldest weekly snapshot".into()]);
            }
            assert_eq!(hexes(&l.result.keep), want_keep, "{name}");
            assert_eq!(matches(&l.result), want_reasons, "{name}");
        }
    }
}
