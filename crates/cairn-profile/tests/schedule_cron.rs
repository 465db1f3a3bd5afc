//! cron generation: the crontab lines, read by an independent cron-expression matcher
//! (with the weekday guard evaluated), run at the same minutes as the expression for a year.

mod schedule_common;

use std::collections::BTreeSet;

use cairn_profile::schedule::{ScheduleError, Scheduler, generate};
use cairn_profile::types::Global;
use chrono::{Datelike as _, Local, NaiveDate, NaiveDateTime, TimeZone as _, Timelike as _, Utc};
use schedule_common::{ctx, spec};

/// One cron field: the set of values it matches and whether it was `*`.
fn field(s: &str, min: u32, max: u32) -> (BTreeSet<u32>, bool) {
    let mut out = BTreeSet::new();
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => (r, st.parse::<u32>().unwrap()),
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (a.parse().unwrap(), b.parse().unwrap())
        } else {
            let a: u32 = range.parse().unwrap();
            (a, if part.contains('/') { max } else { a })
        };
        assert!(a >= min && b <= max && a <= b, "field {s}");
        let mut v = a;
        while v <= b {
            out.insert(v);
            v += step;
        }
    }
    (out, s == "*" || s.starts_with("*/"))
}

/// A parsed crontab line: five fields and the weekday guard of its command.
struct Line {
    minute: BTreeSet<u32>,
    hour: BTreeSet<u32>,
    dom: (BTreeSet<u32>, bool),
    month: BTreeSet<u32>,
    dow: (BTreeSet<u32>, bool),
    guard: Option<BTreeSet<u32>>,
}

fn parse_line(l: &str) -> Line {
    let (fields, command) = l.split_once('\t').unwrap();
    let f: Vec<&str> = fields.split(' ').collect();
    assert_eq!(f.len(), 5, "{l}");
    for x in &f {
        if x.chars().all(|c| c.is_ascii_digit()) {
            assert!(x.len() >= 2, "numbers are zero-padded: {l}");
        }
    }
    let mut dow = field(f[4], 0, 7);
    if dow.0.remove(&7) {
        dow.0.insert(0);
    }
    let guard = command.contains("test $(date").then(|| {
        let g = command.split(" && cd ").next().unwrap();
        g.split("-eq ")
            .skip(1)
            .map(|x| x.split_whitespace().next().unwrap().parse().unwrap())
            .collect()
    });
    assert!(
        command.contains("cd /home/ubuntu && /bin/true --no-ansi --config"),
        "{command}"
    );
    assert!(!command.contains("--no-prio"));
    Line {
        minute: field(f[0], 0, 59).0,
        hour: field(f[1], 0, 23).0,
        dom: field(f[2], 1, 31),
        month: field(f[3], 1, 12).0,
        dow,
        guard,
    }
}

/// Vixie cron semantics (day of month OR weekday when both are restricted) plus the guard.
fn runs(l: &Line, t: NaiveDateTime) -> bool {
    let wd = t.weekday().num_days_from_sunday();
    let dom_ok = l.dom.0.contains(&t.day());
    let dow_ok = l.dow.0.contains(&wd);
    let day_ok = match (l.dom.1, l.dow.1) {
        (true, true) => true,
        (true, false) => dow_ok,
        (false, true) => dom_ok,
        (false, false) => dom_ok || dow_ok,
    };
    l.minute.contains(&t.minute())
        && l.hour.contains(&t.hour())
        && l.month.contains(&t.month())
        && day_ok
        && l.guard.as_ref().is_none_or(|g| g.contains(&wd))
}

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
        out.insert(local);
        at = t;
    }
    out
}

#[test]
fn crontab_lines_run_at_the_expression_minutes_for_a_year() {
    let exprs: &[&[&str]] = &[
        &["*:0/15"],
        &["Mon..Fri 02:30"],
        &["*-*-01 04:00:00"],
        &["Mon *-*-01..07 03:00"],
        &["Sat,Sun 0,12:00"],
        &["12..14:10,20,30"],
        &["quarterly", "weekly"],
        &["*-06-15 08:00"],
        &["Tue,Thu *-*-10..20 23:59"],
    ];
    let cron = Scheduler::from_setting("crond").unwrap();
    for at in exprs {
        let dir = tempfile::tempdir().unwrap();
        let job = generate(
            &cron,
            &spec("vps", "backup", at),
            &Global::default(),
            &ctx(dir.path()),
        )
        .unwrap();
        assert!(job.files.is_empty());
        assert_eq!(
            job.commands,
            vec![vec!["crontab", "-l"], vec!["crontab", "-"]]
        );
        assert_eq!(
            job.crontab_lines[0],
            "# cairn-job: /home/ubuntu/.config/resticprofile/profiles.toml:backup@vps"
        );
        for (i, e) in at.iter().enumerate() {
            assert_eq!(job.crontab_lines[i + 1], format!("# cairn-calendar: {e}"));
        }
        let lines: Vec<Line> = job
            .crontab_lines
            .iter()
            .filter(|l| !l.starts_with('#'))
            .map(|l| parse_line(l))
            .collect();
        assert!(!lines.is_empty());
        let mut want = BTreeSet::new();
        for e in *at {
            want.extend(expression_minutes(e));
        }
        let mut got = BTreeSet::new();
        let mut t = NaiveDate::from_ymd_opt(2025, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        let end = NaiveDate::from_ymd_opt(2026, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        while t < end {
            if lines.iter().any(|l| runs(l, t)) {
                got.insert(t);
            }
            t += chrono::Duration::minutes(1);
        }
        assert_eq!(got.len(), want.len(), "{at:?}: {:?}", job.crontab_lines);
        assert!(got == want, "{at:?}");
    }
}

#[test]
fn crontab_options() {
    let dir = tempfile::tempdir().unwrap();
    let c = ctx(dir.path());
    let g = Global::default();
    // crontab file with the user column; log truncation and %-escaping.
    let tab = Scheduler::from_setting("crontab:*:/etc/cron.d/cairn").unwrap();
    let mut s = spec("vps", "backup", &["05:00"]);
    s.log = Some("/var/log/cairn 100%.log".into());
    s.log_truncate = true;
    let j = generate(&tab, &s, &g, &c).unwrap();
    assert!(j.commands.is_empty());
    assert_eq!(j.name, "/etc/cron.d/cairn");
    let line = j.crontab_lines.last().unwrap();
    assert_eq!(
        line,
        "00 05 * * *\troot\tcd /home/ubuntu && : > '/var/log/cairn 100\\%.log' && /bin/true --no-ansi --config /home/ubuntu/.config/resticprofile/profiles.toml --log '/var/log/cairn 100\\%.log' run-schedule backup@vps"
    );
    s.user = Some("ubuntu".into());
    let j = generate(&tab, &s, &g, &c).unwrap();
    assert!(
        j.crontab_lines
            .last()
            .unwrap()
            .starts_with("00 05 * * *\tubuntu\tcd ")
    );
    // No user column: schedule-user cannot be honoured.
    let e = generate(
        &Scheduler::from_setting("crontab:-:/tmp/x").unwrap(),
        &s,
        &g,
        &c,
    )
    .unwrap_err();
    assert!(e.to_string().contains("user column"), "{e}");
    // crond:PATH names the crontab program.
    let j = generate(
        &Scheduler::from_setting("crond:/opt/bin/crontab").unwrap(),
        &spec("a", "check", &["daily"]),
        &g,
        &c,
    )
    .unwrap();
    assert_eq!(j.commands[0], ["/opt/bin/crontab", "-l"]);
    // Manual-only and user_logged_on are refused; systemd-only settings warn.
    let cron = Scheduler::from_setting("crond").unwrap();
    assert!(generate(&cron, &spec("a", "backup", &[]), &g, &c).is_err());
    let mut s = spec("a", "backup", &["daily"]);
    s.permission = Some("user_logged_on".into());
    assert!(generate(&cron, &s, &g, &c).is_err());
    let mut s = spec("a", "backup", &["daily"]);
    s.hardening = true;
    s.priority = Some("background".into());
    let j = generate(&cron, &s, &g, &c).unwrap();
    assert_eq!(j.warnings.len(), 2, "{:?}", j.warnings);
    // Seconds cannot be expressed.
    let e = generate(&cron, &spec("a", "backup", &["*:*:30"]), &g, &c).unwrap_err();
    assert!(matches!(e, ScheduleError::Unsupported { .. }), "{e}");
}
