//! launchd generation: plists parsed back with Python's `plistlib`, their calendar intervals
//! compared minute by minute with the expression over a year, and the seed user's plists.

mod schedule_common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cairn_profile::schedule::{ScheduleError, Scheduler, generate};
use cairn_profile::types::{Global, ScheduleSpec};
use chrono::{Datelike as _, Local, NaiveDate, NaiveDateTime, TimeZone as _, Timelike as _, Utc};
use schedule_common::{ctx, external, spec};
use serde_json::Value;

/// Parse plist files with Python's plistlib (one interpreter for all), as JSON.
fn plistlib_all(python: &Path, paths: &[&Path]) -> Vec<Value> {
    let out = Command::new(python)
        .args([
            "-c",
            "import plistlib, json, sys; print(json.dumps([plistlib.load(open(p, 'rb')) for p in sys.argv[1:]]))",
        ])
        .args(paths)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "plistlib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout).unwrap() {
        Value::Array(a) => a,
        other => panic!("{other}"),
    }
}

fn plistlib(python: &Path, path: &Path) -> Value {
    plistlib_all(python, &[path]).remove(0)
}

fn write_plist(
    s: &ScheduleSpec,
    g: &Global,
    dir: &Path,
) -> (cairn_profile::schedule::Job, std::path::PathBuf) {
    let job = generate(&Scheduler::Launchd, s, g, &ctx(dir)).unwrap();
    assert_eq!(job.files.len(), 1);
    let f = &job.files[0];
    std::fs::write(&f.path, &f.contents).unwrap();
    let p = f.path.clone();
    (job, p)
}

/// The intervals of a parsed plist (dict or array of dicts).
fn intervals(v: &Value) -> Vec<serde_json::Map<String, Value>> {
    match v.get("StartCalendarInterval") {
        None => Vec::new(),
        Some(Value::Object(m)) => vec![m.clone()],
        Some(Value::Array(a)) => a.iter().map(|x| x.as_object().unwrap().clone()).collect(),
        Some(other) => panic!("bad StartCalendarInterval {other}"),
    }
}

/// Whether a launchd interval (Minute, Hour, Day, Month, Weekday) fires at local minute `t`.
fn fires(i: &[Option<u32>; 5], t: NaiveDateTime) -> bool {
    let actual = [
        t.minute(),
        t.hour(),
        t.day(),
        t.month(),
        t.weekday().num_days_from_sunday(),
    ];
    i.iter()
        .zip(actual)
        .enumerate()
        .all(|(k, (want, got))| match want {
            None => true,
            Some(w) if k == 4 => w % 7 == got,
            Some(w) => *w == got,
        })
}

/// Local minutes of 2025 at which the expression elapses (cairn-calendar).
fn expression_minutes(expr: &str) -> BTreeSet<NaiveDateTime> {
    let ev = cairn_calendar::CalendarEvent::parse(expr).unwrap();
    let tz = cairn_calendar::Tz::local();
    let start = NaiveDate::from_ymd_opt(2025, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let end = NaiveDate::from_ymd_opt(2026, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let mut at = Local
        .from_local_datetime(&start)
        .earliest()
        .unwrap()
        .with_timezone(&Utc)
        - chrono::Duration::seconds(1);
    let mut out = BTreeSet::new();
    while let Some(t) = ev.next_after(at, &tz) {
        let local = t.with_timezone(&Local).naive_local();
        if local >= end {
            break;
        }
        assert_eq!(local.second(), 0, "{expr}: launchd has no seconds");
        out.insert(local);
        at = t;
    }
    out
}

fn interval_minutes(ivs: &[serde_json::Map<String, Value>]) -> BTreeSet<NaiveDateTime> {
    for i in ivs {
        for k in i.keys() {
            assert!(
                ["Minute", "Hour", "Day", "Month", "Weekday"].contains(&k.as_str()),
                "{k}"
            );
        }
    }
    let ivs: Vec<[Option<u32>; 5]> = ivs
        .iter()
        .map(|i| {
            ["Minute", "Hour", "Day", "Month", "Weekday"]
                .map(|k| i.get(k).map(|v| v.as_u64().unwrap() as u32))
        })
        .collect();
    let mut t = NaiveDate::from_ymd_opt(2025, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let end = NaiveDate::from_ymd_opt(2026, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let mut out = BTreeSet::new();
    while t < end {
        if ivs.iter().any(|i| fires(i, t)) {
            out.insert(t);
        }
        t += chrono::Duration::minutes(1);
    }
    out
}

#[test]
fn plists_parse_and_fire_at_the_expression_minutes_for_a_year() {
    let Some(python) = external("python3") else {
        return;
    };
    let exprs: &[&[&str]] = &[
        &["daily"],
        &["12:00"],
        &["*:0/15"],
        &["Mon..Fri 02:30"],
        &["*-*-01 04:00:00"],
        &["Sat,Sun 0,12:00"],
        &["12..14:10,20,30"],
        &["weekly", "monthly"],
        &["quarterly"],
        &["*-06-15 08:00", "*-12-24 18:45"],
    ];
    let dirs: Vec<tempfile::TempDir> = exprs.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let written: Vec<_> = exprs
        .iter()
        .zip(&dirs)
        .map(|(at, dir)| {
            write_plist(
                &spec("Nidoking", "backup", at),
                &Global::default(),
                dir.path(),
            )
        })
        .collect();
    let parsed = plistlib_all(
        &python,
        &written.iter().map(|(_, p)| p.as_path()).collect::<Vec<_>>(),
    );
    for ((at, (job, _)), v) in exprs.iter().zip(&written).zip(parsed) {
        assert_eq!(v["Label"], "cairn.nidoking.backup");
        assert_eq!(job.name, "cairn.nidoking.backup");
        let ivs = intervals(&v);
        assert!(!ivs.is_empty());
        let mut want = BTreeSet::new();
        for e in *at {
            want.extend(expression_minutes(e));
        }
        let got = interval_minutes(&ivs);
        assert_eq!(got.len(), want.len(), "{at:?}");
        assert!(
            got == want,
            "{at:?}: first difference {:?}",
            got.symmetric_difference(&want).next()
        );
    }
}

#[test]
fn plist_keys_and_escaping() {
    let Some(python) = external("python3") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec("Odd & <Name>", "check", &["daily"]);
    s.environment
        .insert("WEIRD".into(), "a<b>&\"c\" 'd'".into());
    s.capture_environment = vec!["TZ".into()];
    s.priority = Some("background".into());
    let (_, path) = write_plist(&s, &Global::default(), dir.path());
    let v = plistlib(&python, &path);
    assert_eq!(v["Label"], "cairn.odd & <name>.check");
    let env = v["EnvironmentVariables"].as_object().unwrap();
    assert_eq!(env["WEIRD"], "a<b>&\"c\" 'd'");
    assert_eq!(env["TZ"], "UTC");
    assert_eq!(env["PATH"], "/usr/local/bin:/usr/bin:/bin");
    assert_eq!(
        env["CAIRN_SCHEDULE_ID"],
        "/home/ubuntu/.config/resticprofile/profiles.toml:check@Odd & <Name>"
    );
    assert_eq!(env["RESTICPROFILE_SCHEDULE_ID"], env["CAIRN_SCHEDULE_ID"]);
    assert_eq!(
        v["ProgramArguments"],
        serde_json::json!([
            "/bin/true",
            "--no-prio",
            "--no-ansi",
            "--config",
            "/home/ubuntu/.config/resticprofile/profiles.toml",
            "run-schedule",
            "check@Odd & <Name>"
        ])
    );
    assert_eq!(v["WorkingDirectory"], "/home/ubuntu");
    assert_eq!(
        v["StandardOutPath"],
        "/home/ubuntu/cairn.odd & <name>.check.log"
    );
    assert_eq!(v["StandardErrorPath"], v["StandardOutPath"]);
    assert_eq!(v["ProcessType"], "Background");
    assert_eq!(v["LowPriorityIO"], true);
    assert_eq!(v["LowPriorityBackgroundIO"], true);
    assert_eq!(v["Nice"], 5);
    // ctx is root: a daemon in the system domain.
    assert_eq!(v["LimitLoadToSessionType"], "System");
}

#[test]
fn refuses_what_launchd_cannot_express() {
    let dir = tempfile::tempdir().unwrap();
    for expr in ["*:*:30", "2030-*-* 01:00", "*-*~1"] {
        let e = generate(
            &Scheduler::Launchd,
            &spec("p", "backup", &[expr]),
            &Global::default(),
            &ctx(dir.path()),
        )
        .unwrap_err();
        assert!(
            matches!(e, ScheduleError::Unsupported { .. }),
            "{expr}: {e}"
        );
        assert!(e.to_string().contains(expr), "{e}");
    }
}

fn seed(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/seed-schedule")
        .join(name)
}

const SEED_PATH: &str = "/Users/manselmi/.prefix/bin:/Users/manselmi/.prefix/sw/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

/// The seed user's agents: a spec per plist and the context of user manselmi.
fn seed_job(
    profile: &str,
    at: &[&str],
    background: bool,
    lock_wait: Option<Duration>,
    dir: &Path,
) -> (ScheduleSpec, cairn_profile::schedule::JobContext) {
    let log = format!("/Users/manselmi/.config/resticprofile/log/{profile}/backup.log");
    let mut s = spec(profile, "backup", at);
    s.permission = Some("user_logged_on".into());
    s.priority = Some(if background { "background" } else { "standard" }.into());
    s.log = Some(log);
    s.log_truncate = true;
    s.lock_wait = lock_wait;
    s.wrapper = vec!["fdautil".into(), "exec".into()];
    s.capture_environment = vec!["PATH".into()];
    s.environment.insert("TZ".into(), "UTC".into());
    let mut c = ctx(dir);
    c.is_root = false;
    c.user = "manselmi".into();
    c.sudo_user = None;
    c.uid = 501;
    c.home = "/Users/manselmi".into();
    c.working_dir = "/Users/manselmi".into();
    c.binary = "/Users/manselmi/.prefix/bin/cairn".into();
    c.config_file = "/Users/manselmi/.config/resticprofile/profiles.toml".into();
    c.env.insert("PATH".into(), SEED_PATH.into());
    (s, c)
}

#[test]
fn reproduces_the_seed_nidoking_and_gdrive_plists() {
    let Some(python) = external("python3") else {
        return;
    };
    for (profile, at, background) in [
        ("nidoking", &["12:00"][..], true),
        ("gdrive", &[][..], false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (s, c) = seed_job(
            profile,
            at,
            background,
            Some(Duration::from_secs(3600)),
            dir.path(),
        );
        let job = generate(&Scheduler::Launchd, &s, &Global::default(), &c).unwrap();
        let f = &job.files[0];
        std::fs::write(&f.path, &f.contents).unwrap();
        let ours = plistlib(&python, &f.path);
        let theirs = plistlib(
            &python,
            &seed(&format!(
                "com.manselmi.resticprofile.{profile}.backup.plist"
            )),
        );
        let log = format!("/Users/manselmi/.config/resticprofile/log/{profile}/backup.log");

        // Same calendar (nidoking {Hour 12, Minute 0}; gdrive none = manual-only).
        assert_eq!(
            ours.get("StartCalendarInterval"),
            theirs.get("StartCalendarInterval"),
            "{profile}"
        );
        // Same priority keys.
        for k in ["ProcessType", "LowPriorityIO", "LowPriorityBackgroundIO"] {
            if let Some(t) = theirs.get(k) {
                assert_eq!(ours.get(k), Some(t), "{profile} {k}");
            }
        }
        if !background {
            assert_eq!(ours["ProcessType"], "Standard");
            assert!(ours.get("LowPriorityIO").is_none() && ours.get("Nice").is_none());
        }
        // Same environment for the job's processes (PATH, TZ).
        let (oe, te) = (
            &ours["EnvironmentVariables"],
            &theirs["EnvironmentVariables"],
        );
        for k in ["PATH", "TZ"] {
            assert_eq!(oe[k], te[k], "{profile} {k}");
        }
        // Their RESTICPROFILE_LOG / _NO_ANSI / _NO_PRIO become our arguments.
        assert_eq!(te["RESTICPROFILE_LOG"], log.as_str());
        let args: Vec<String> = ours["ProgramArguments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        // Truncate the log, then `fdautil exec <cairn> …` like theirs.
        assert_eq!(
            args[..5],
            [
                "/bin/sh",
                "-c",
                r#": >"$1"; shift; exec "$@""#,
                "cairn-truncate-log",
                log.as_str()
            ]
        );
        assert_eq!(args[5..7], ["fdautil", "exec"]);
        assert_eq!(
            args[7..],
            [
                "/Users/manselmi/.prefix/bin/cairn",
                "--no-prio",
                "--no-ansi",
                "--config",
                "/Users/manselmi/.config/resticprofile/profiles.toml",
                "--log",
                log.as_str(),
                "run-schedule",
                &format!("backup@{profile}"),
            ]
        );
        let theirs_cmd = theirs["ProgramArguments"][2].as_str().unwrap();
        assert!(
            theirs_cmd
                .starts_with("truncate -s 0 -- \"${RESTICPROFILE_LOG}\" ; exec -- fdautil exec")
        );
        assert!(theirs_cmd.ends_with(&format!("-- {profile}.backup")));
        // Logging goes to the --log file, not to launchd's stdout/stderr files.
        assert!(ours.get("StandardOutPath").is_none() && theirs.get("StandardOutPath").is_none());
        // Intended differences: label, session type, working directory, Nice 5 for background.
        assert_eq!(ours["Label"], format!("cairn.{profile}.backup"));
        assert_eq!(ours["LimitLoadToSessionType"], "Aqua");
        assert_eq!(
            job.commands[1],
            [
                "launchctl",
                "bootstrap",
                "gui/501",
                f.path.to_str().unwrap()
            ]
        );
        if background {
            assert_eq!(ours["Nice"], 5);
        }
    }
}

#[test]
fn warns_about_systemd_only_settings() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec("p", "backup", &["daily"]);
    s.random_delay = Some(Duration::from_secs(60));
    s.hardening = true;
    let j = generate(
        &Scheduler::Launchd,
        &s,
        &Global::default(),
        &ctx(dir.path()),
    )
    .unwrap();
    assert_eq!(j.warnings.len(), 2, "{:?}", j.warnings);
    let mut c = ctx(dir.path());
    c.is_root = false;
    let mut s = spec("p", "backup", &["daily"]);
    s.user = Some("x".into());
    s.permission = Some("user".into());
    assert!(generate(&Scheduler::Launchd, &s, &Global::default(), &c).is_err());
}
