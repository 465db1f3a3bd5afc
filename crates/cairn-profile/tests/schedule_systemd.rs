//! systemd generation checked with the real `systemd-analyze` and against the seed user's
//! hand-written units.

mod schedule_common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cairn_profile::schedule::{Scheduler, generate};
use cairn_profile::types::{Global, ScheduleSpec};
use chrono::{DateTime, NaiveDateTime, TimeZone as _, Utc};
use schedule_common::{ctx, external, spec, unit_directives};

/// Specs covering every systemd option.
fn specs() -> Vec<(ScheduleSpec, Global)> {
    let mut out = Vec::new();
    out.push((spec("vps", "backup", &["daily"]), Global::default()));
    let mut s = spec("Google Drive", "check", &["Mon..Fri *:0/15", "Sat 10:00"]);
    s.priority = Some("background".into());
    s.after_network_online = true;
    s.capture_environment = vec!["PATH".into(), "TZ".into()];
    s.environment
        .insert("ODD".into(), "a \"b\" 100% $HOME \\ c".into());
    s.log = Some("/var/log/cairn dir/check %i.log".into());
    s.log_truncate = true;
    out.push((s, Global::default()));
    let mut s = spec(
        "vps",
        "prune",
        &["*-*-01 04:00:00", "*-*~1 23:30 Europe/Paris"],
    );
    s.hardening = true;
    s.user = Some("ubuntu".into());
    s.group = Some("ubuntu".into());
    s.permission = Some("system".into());
    s.random_delay = Some(Duration::from_secs(300));
    s.accuracy = Some(Duration::from_micros(1));
    s.persistent = Some(false);
    s.wrapper = vec!["/usr/bin/env".into()];
    let g = Global {
        nice: 10,
        ionice: true,
        ionice_class: 2,
        ionice_level: 7,
        ..Global::default()
    };
    out.push((s, g));
    // Manual-only job: service only.
    out.push((spec("gdrive", "backup", &[]), Global::default()));
    // User unit (not root).
    let mut s = spec("laptop", "forget", &["weekly"]);
    s.permission = Some("user_logged_on".into());
    out.push((s, Global::default()));
    let mut s = spec("grp", "copy", &["quarterly", "Sat,Sun 0,12:00"]);
    s.is_group = true;
    s.permission = Some("user".into());
    let g = Global {
        priority: Some("low".into()),
        ionice: true,
        ionice_class: 3,
        ..Global::default()
    };
    out.push((s, g));
    out
}

#[test]
fn generated_units_pass_systemd_analyze_verify() {
    let Some(analyze) = external("systemd-analyze") else {
        return;
    };
    for (s, g) in specs() {
        let dir = tempfile::tempdir().unwrap();
        let c = ctx(dir.path());
        let job = generate(&Scheduler::Systemd, &s, &g, &c).unwrap();
        assert!(!job.files.is_empty());
        let mut paths = Vec::new();
        for f in &job.files {
            assert!(f.path.starts_with(dir.path()));
            assert_eq!(f.mode, 0o644);
            std::fs::write(&f.path, &f.contents).unwrap();
            paths.push(f.path.clone());
        }
        let out = Command::new(&analyze)
            .args(["verify", "--man=no", "--recursive-errors=no"])
            .args(&paths)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let all: String = job.files.iter().map(|f| f.contents.clone()).collect();
        assert!(
            out.status.success(),
            "verify failed for {s:?}:\n{stderr}\n{all}"
        );
        assert!(
            stderr.trim().is_empty(),
            "verify warned for {s:?}:\n{stderr}\n{all}"
        );
    }
}

#[test]
fn verify_rejects_a_missing_binary() {
    // The verification above can fail: a unit whose ExecStart binary does not exist.
    let Some(analyze) = external("systemd-analyze") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut c = ctx(dir.path());
    c.binary = "/nonexistent/cairn".into();
    let job = generate(
        &Scheduler::Systemd,
        &spec("vps", "backup", &["daily"]),
        &Global::default(),
        &c,
    )
    .unwrap();
    for f in &job.files {
        std::fs::write(&f.path, &f.contents).unwrap();
    }
    let out = Command::new(&analyze)
        .args(["verify", "--man=no", "--recursive-errors=no"])
        .args(job.files.iter().map(|f| &f.path))
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// Next elapses printed by `systemd-analyze calendar` (UTC) for `expr` in zone `tz`.
fn systemd_next(
    analyze: &Path,
    expr: &str,
    tz: &str,
    base: DateTime<Utc>,
    n: usize,
) -> Vec<DateTime<Utc>> {
    let out = Command::new(analyze)
        .env("TZ", tz)
        .args([
            "calendar",
            &format!("--iterations={n}"),
            &format!("--base-time=@{}", base.timestamp()),
            expr,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "systemd-analyze calendar {expr:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut times = Vec::new();
    let mut pending: Option<String> = None;
    let flush = |p: Option<String>, times: &mut Vec<DateTime<Utc>>| {
        if let Some(t) = p {
            let t = t.trim().trim_end_matches(" UTC");
            let naive = NaiveDateTime::parse_from_str(t, "%a %Y-%m-%d %H:%M:%S").unwrap();
            times.push(Utc.from_utc_datetime(&naive));
        }
    };
    for line in text.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("(in UTC):") {
            pending = Some(v.to_string());
        } else if l.starts_with("Next elapse:") || l.starts_with("Iter. #") {
            flush(pending.take(), &mut times);
            let v = l.split_once(':').map(|x| x.1).unwrap_or("").trim();
            if v != "never" {
                pending = Some(v.to_string());
            }
        }
    }
    flush(pending.take(), &mut times);
    times
}

#[test]
fn timer_calendars_elapse_like_systemd_analyze_calendar() {
    let Some(analyze) = external("systemd-analyze") else {
        return;
    };
    let exprs = [
        "daily",
        "weekly",
        "monthly",
        "quarterly",
        "*:0/15",
        "Mon..Fri *:00",
        "Mon..Fri 02:30",
        "*-*-01 04:00:00",
        "*-*-1",
        "Sat,Sun 0,12:00",
        "12..14:10,20,30",
        "*-*-* 05:00:00 UTC",
        "*-*~1 23:30",
        "Sun *-*-* 02:30 Europe/Paris",
        "*-02-29 12:00",
        "2027-02-29",
    ];
    let bases = [
        "2025-01-01T00:00:00Z",
        "2025-03-29T23:59:59Z",
        "2025-10-25T12:00:00Z",
    ];
    for tz_name in ["UTC", "Europe/Paris", "America/New_York"] {
        let tz = cairn_calendar::Tz::named(tz_name).unwrap();
        for expr in exprs {
            let dir = tempfile::tempdir().unwrap();
            let job = generate(
                &Scheduler::Systemd,
                &spec("vps", "backup", &[expr]),
                &Global::default(),
                &ctx(dir.path()),
            )
            .unwrap();
            let timer = job
                .files
                .iter()
                .find(|f| f.path.extension().is_some_and(|e| e == "timer"))
                .unwrap();
            let d = unit_directives(&timer.contents);
            let cal = d.get(&("Timer".into(), "OnCalendar".into())).unwrap();
            assert_eq!(cal, &vec![expr.to_string()], "verbatim");
            let event = cairn_calendar::CalendarEvent::parse(&cal[0]).unwrap();
            for base in bases {
                let base: DateTime<Utc> = base.parse().unwrap();
                let theirs = systemd_next(&analyze, &cal[0], tz_name, base, 3);
                let ours = event.next_n(base, 3, &tz);
                if expr != "2027-02-29" {
                    assert_eq!(theirs.len(), 3, "{expr:?}");
                }
                assert_eq!(ours, theirs, "{expr:?} in {tz_name} after {base}");
            }
        }
    }
}

/// A systemd time span in microseconds (subset: us ms s min m h d).
fn span_us(s: &str) -> u64 {
    let mut total = 0;
    for part in s.split_whitespace() {
        let digits: String = part.chars().take_while(|c| c.is_ascii_digit()).collect();
        let unit = &part[digits.len()..];
        let n: u64 = digits.parse().unwrap();
        total += n * match unit {
            "us" => 1,
            "ms" => 1_000,
            "s" | "" => 1_000_000,
            "m" | "min" => 60_000_000,
            "h" => 3_600_000_000,
            "d" => 86_400_000_000,
            u => panic!("unit {u}"),
        };
    }
    total
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/seed-schedule")
            .join(name),
    )
    .unwrap()
}

/// Unquote `Environment=` values into NAME=value strings.
fn env_values(values: &[String]) -> Vec<String> {
    values
        .iter()
        .map(|v| v.trim_matches('"').replace("\\\"", "\"").replace("%%", "%"))
        .collect()
}

#[test]
fn reproduces_the_seed_ubuntu_service_and_timer() {
    let seed_path = "/home/ubuntu/.prefix/bin:/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/games:/usr/local/games:/snap/bin";
    let log = "/home/ubuntu/.config/resticprofile/log/vps/backup.log";
    let mut s = spec("vps", "backup", &["*-*-* 05:00:00 UTC"]);
    s.permission = Some("system".into());
    s.random_delay = Some(Duration::from_secs(300));
    s.accuracy = Some(Duration::from_micros(1));
    s.persistent = Some(true);
    s.hardening = true;
    s.user = Some("ubuntu".into());
    s.group = Some("ubuntu".into());
    s.after_network_online = true;
    s.log = Some(log.into());
    s.log_truncate = true;
    s.lock_wait = Some(Duration::from_secs(300));
    s.capture_environment = vec!["PATH".into()];
    let dir = tempfile::tempdir().unwrap();
    let mut c = ctx(dir.path());
    c.binary = "/usr/local/bin/cairn".into();
    c.env.insert("PATH".into(), seed_path.into());
    let job = generate(&Scheduler::Systemd, &s, &Global::default(), &c).unwrap();
    let ours_service = unit_directives(&job.files[0].contents);
    let ours_timer = unit_directives(&job.files[1].contents);
    let theirs_service =
        unit_directives(&fixture("resticprofile-backup@.service").replace("%i", "vps"));
    let theirs_timer = unit_directives(&fixture("resticprofile-backup@.timer"));
    let key = |s: &str, k: &str| (s.to_string(), k.to_string());

    // Same directives, value for value.
    for (sec, k) in [
        ("Service", "AmbientCapabilities"),
        ("Service", "CapabilityBoundingSet"),
        ("Service", "SecureBits"),
        ("Service", "NoNewPrivileges"),
        ("Service", "LimitNOFILE"),
        ("Service", "User"),
        ("Service", "Group"),
        ("Service", "ExecStartPre"),
        ("Unit", "After"),
        ("Unit", "Wants"),
        ("Unit", "StartLimitIntervalSec"),
    ] {
        assert_eq!(
            ours_service.get(&key(sec, k)),
            theirs_service.get(&key(sec, k)),
            "[{sec}] {k}"
        );
    }
    for (sec, k) in [
        ("Timer", "OnCalendar"),
        ("Timer", "Persistent"),
        ("Install", "WantedBy"),
    ] {
        assert_eq!(
            ours_timer.get(&key(sec, k)),
            theirs_timer.get(&key(sec, k)),
            "[{sec}] {k}"
        );
    }
    for k in ["RandomizedDelaySec", "AccuracySec"] {
        let ours = &ours_timer[&key("Timer", k)];
        let theirs = &theirs_timer[&key("Timer", k)];
        assert_eq!(span_us(&ours[0]), span_us(&theirs[0]), "{k}");
    }
    // Environment: theirs is a subset of ours (we add HOME, SUDO_USER and the schedule id).
    let ours_env = env_values(&ours_service[&key("Service", "Environment")]);
    for e in env_values(&theirs_service[&key("Service", "Environment")]) {
        assert!(ours_env.contains(&e), "{e} missing from {ours_env:?}");
    }
    assert!(
        ours_env.contains(
            &"CAIRN_SCHEDULE_ID=/home/ubuntu/.config/resticprofile/profiles.toml:backup@vps"
                .to_string()
        )
    );
    // Command: same log file, flags and profile/command; the lock wait (5m) is read by
    // run-schedule from schedule-lock-wait instead of being on the command line.
    let theirs_exec = &theirs_service[&key("Service", "ExecStart")][0];
    assert!(
        theirs_exec.contains(&format!("--log {log}")) && theirs_exec.ends_with("-- vps.backup")
    );
    assert_eq!(
        ours_service[&key("Service", "ExecStart")],
        vec![format!(
            "/usr/local/bin/cairn --no-prio --no-ansi --config /home/ubuntu/.config/resticprofile/profiles.toml --log {log} run-schedule backup@vps"
        )]
    );
    // Intended differences.
    assert_eq!(ours_service[&key("Service", "Type")], vec!["notify"]);
    assert_eq!(theirs_service[&key("Service", "Type")], vec!["exec"]);
    assert!(!ours_service.contains_key(&key("Install", "WantedBy")));
    assert_eq!(
        ours_service[&key("Service", "ProtectSystem")],
        vec!["strict"]
    );
    assert_eq!(ours_service[&key("Service", "PrivateTmp")], vec!["true"]);
    assert_eq!(
        ours_timer[&key("Timer", "Unit")],
        vec!["cairn-backup@profile-vps.service"]
    );
    assert_eq!(
        job.files[0].path.file_name().unwrap(),
        "cairn-backup@profile-vps.service"
    );
    assert_eq!(
        job.commands,
        vec![
            vec!["systemctl", "daemon-reload"],
            vec![
                "systemctl",
                "enable",
                "--quiet",
                "--now",
                "cairn-backup@profile-vps.timer"
            ],
        ]
    );
}

#[test]
fn unit_contents_follow_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let c = ctx(dir.path());
    let specs = specs();
    let get = |i: usize| {
        let (s, g) = &specs[i];
        generate(&Scheduler::Systemd, s, g, &c).unwrap()
    };
    // Background priority and quoting.
    let j = get(1);
    let d = unit_directives(&j.files[0].contents);
    let k = |k: &str| ("Service".to_string(), k.to_string());
    assert_eq!(d[&k("CPUSchedulingPolicy")], vec!["idle"]);
    assert_eq!(d[&k("IOSchedulingClass")], vec!["idle"]);
    assert!(
        j.files[0]
            .contents
            .contains(r#"Environment="ODD=a \"b\" 100%% $HOME \\ c""#)
    );
    assert_eq!(
        d[&k("ExecStartPre")],
        vec![r#"/usr/bin/truncate -s 0 -- "/var/log/cairn dir/check %%i.log""#]
    );
    assert!(
        j.files[0]
            .path
            .ends_with("cairn-check@profile-Google\\x20Drive.service")
    );
    // Nice and ionice from global, wrapper, user/group.
    let j = get(2);
    let d = unit_directives(&j.files[0].contents);
    assert_eq!(d[&k("Nice")], vec!["10"]);
    assert_eq!(d[&k("IOSchedulingClass")], vec!["best-effort"]);
    assert_eq!(d[&k("IOSchedulingPriority")], vec!["7"]);
    assert_eq!(d[&k("NotifyAccess")], vec!["all"]);
    assert!(d[&k("ExecStart")][0].starts_with("/usr/bin/env /bin/true --no-prio"));
    assert!(d[&k("ReadWritePaths")].contains(&"-/home/ubuntu/.cache".to_string()));
    assert!(d[&k("ReadWritePaths")].contains(&"-/home/ubuntu/.config/resticprofile".to_string()));
    let t = unit_directives(&j.files[1].contents);
    assert!(!t.contains_key(&("Timer".into(), "Persistent".into())));
    assert_eq!(t[&("Timer".into(), "OnCalendar".into())].len(), 2);
    // Manual-only: no timer, only daemon-reload.
    let j = get(3);
    assert_eq!(j.files.len(), 1);
    assert_eq!(j.name, "cairn-backup@profile-gdrive.service");
    assert_eq!(j.commands, vec![vec!["systemctl", "daemon-reload"]]);
    // User unit: --user, no HOME.
    let mut c2 = c.clone();
    c2.is_root = false;
    c2.unit_dir_override = None;
    let (s, g) = &specs[4];
    let j = generate(&Scheduler::Systemd, s, g, &c2).unwrap();
    assert!(
        j.files[0]
            .path
            .starts_with("/home/ubuntu/.config/systemd/user")
    );
    assert_eq!(j.commands[0], vec!["systemctl", "--user", "daemon-reload"]);
    assert!(!j.files[0].contents.contains("HOME="));
    // Permission user: system unit running as the sudo caller; priority low = nice 10.
    let j = get(5);
    let d = unit_directives(&j.files[0].contents);
    assert_eq!(d[&k("User")], vec!["ubuntu"]);
    assert_eq!(d[&k("Nice")], vec!["10"]);
    assert_eq!(d[&k("IOSchedulingClass")], vec!["idle"]);
    assert!(!d.contains_key(&k("IOSchedulingPriority")));
    assert!(j.files[0].contents.contains("SUDO_USER=ubuntu"));
}

#[test]
fn refuses_contradictions() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = ctx(dir.path());
    c.is_root = false;
    let g = Global::default();
    let mut s = spec("p", "backup", &["daily"]);
    s.permission = Some("user_logged_on".into());
    s.hardening = true;
    assert!(
        generate(&Scheduler::Systemd, &s, &g, &c)
            .unwrap_err()
            .to_string()
            .contains("hardening")
    );
    s.hardening = false;
    s.after_network_online = true;
    assert!(generate(&Scheduler::Systemd, &s, &g, &c).is_err());
    s.after_network_online = false;
    s.user = Some("x".into());
    assert!(generate(&Scheduler::Systemd, &s, &g, &c).is_err());
    let g = Global {
        systemd_unit_template: Some("/x.tmpl".into()),
        ..Global::default()
    };
    let s = spec("p", "backup", &["daily"]);
    let j = generate(&Scheduler::Systemd, &s, &g, &c).unwrap();
    assert!(j.warnings.iter().any(|w| w.contains("template")));
}
