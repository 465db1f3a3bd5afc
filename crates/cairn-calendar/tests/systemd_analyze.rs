//! Compares the parser, the normalized form and the next elapses with the real
//! `systemd-analyze calendar` for a table of expressions, in UTC and in Europe/Paris.

use std::process::Command;

use cairn_calendar::{CalendarEvent, Tz};
use chrono::{DateTime, NaiveDateTime, Utc};

/// `systemd-analyze`, or `None` (printing "skipping") when it is missing, unless
/// `CAIRN_REQUIRE_EXTERNAL=1`.
fn systemd_analyze() -> Option<&'static str> {
    let ok = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some("systemd-analyze");
    }
    if std::env::var("CAIRN_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
        panic!("systemd-analyze is required (CAIRN_REQUIRE_EXTERNAL=1) but missing");
    }
    eprintln!("skipping: systemd-analyze not installed");
    None
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Invalid,
    Valid {
        /// `None` when systemd-analyze could not print it (see [`from_systemd`]).
        normalized: Option<String>,
        elapses: Vec<i64>,
    },
}

const ITERATIONS: usize = 5;

/// Runs `systemd-analyze calendar`. systemd gives up on some searches ("Failed to determine
/// next elapse", its loop guard) and then prints nothing at all; we then ask for fewer
/// iterations to learn the elapses before the failure (our parser stops at the same place).
fn from_systemd(bin: &str, tz: &str, base: i64, expr: &str) -> Outcome {
    for iterations in (1..=ITERATIONS).rev() {
        match run_systemd(bin, tz, base, expr, iterations) {
            Ok(o) => return o,
            Err(gave_up) if gave_up => continue,
            Err(_) => return Outcome::Invalid,
        }
    }
    Outcome::Valid {
        normalized: None,
        elapses: Vec::new(),
    }
}

/// `Err(true)` when systemd parsed the expression but gave up computing an elapse.
fn run_systemd(
    bin: &str,
    tz: &str,
    base: i64,
    expr: &str,
    iterations: usize,
) -> Result<Outcome, bool> {
    let out = Command::new(bin)
        .env("TZ", tz)
        .env("SYSTEMD_COLORS", "0")
        .arg("calendar")
        .arg(format!("--iterations={iterations}"))
        .arg(format!("--base-time=@{base}"))
        .arg("--")
        .arg(expr)
        .output()
        .expect("run systemd-analyze");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.contains("Failed to determine next elapse"));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut normalized = None;
    let mut elapses = Vec::new();
    for line in text.lines() {
        let Some((label, value)) = line.split_once(": ") else {
            continue;
        };
        let label = label.trim();
        if label == "Normalized form" {
            normalized = Some(value.to_string());
            continue;
        }
        let is_time = label == "Next elapse" || label.starts_with("Iter.") || label == "(in UTC)";
        if !is_time || !value.ends_with(" UTC") {
            continue;
        }
        let parts: Vec<&str> = value.split_whitespace().collect();
        assert_eq!(parts.len(), 4, "unexpected line {line:?}");
        let t = NaiveDateTime::parse_from_str(
            &format!("{} {}", parts[1], parts[2]),
            "%Y-%m-%d %H:%M:%S",
        )
        .unwrap_or_else(|e| panic!("bad time in {line:?}: {e}"));
        elapses.push(t.and_utc().timestamp());
    }
    Ok(Outcome::Valid {
        normalized,
        elapses,
    })
}

fn ours(tz: &Tz, base: i64, expr: &str) -> Outcome {
    match CalendarEvent::parse(expr) {
        Err(e) => {
            assert!(
                e.message.contains(expr),
                "error must show the expression: {e}"
            );
            Outcome::Invalid
        }
        Ok(ev) => Outcome::Valid {
            normalized: Some(ev.normalized()),
            elapses: ev
                .next_n(
                    DateTime::<Utc>::from_timestamp(base, 0).unwrap(),
                    ITERATIONS,
                    tz,
                )
                .into_iter()
                .map(|t| t.timestamp())
                .collect(),
        },
    }
}

/// 2024-01-01 00:00:00 UTC.
const BASE: i64 = 1_704_067_200;

const VALID: &[&str] = &[
    // spec §17.3 examples
    "Mon..Fri *:00",
    "*:00,30",
    "Sat,Sun 0,12:00",
    "*-*-1",
    "12..14:10,20,30",
    "*-*-01 04:00:00",
    "Mon..Fri 02:30",
    "*-*-* 05:00:00 UTC",
    // keywords
    "minutely",
    "hourly",
    "daily",
    "weekly",
    "monthly",
    "quarterly",
    "semiannually",
    "semi-annually",
    "biannually",
    "yearly",
    "annually",
    "anually",
    "DAILY",
    "daily UTC",
    "weekly Europe/Paris",
    // lists, ranges, steps
    "*:0/15",
    "*-*-* 8..18/2:00",
    "*-1..12/3-1",
    "*:00/15,5",
    "1..3,2..5:00",
    "0..0:00",
    "5..6/2:00",
    "0/23:00",
    "*:05..07/1",
    "1,2,1:00",
    "2020..2030/3-*-*",
    "2024-*-* 1:2:3",
    "*-*-31",
    "*-02-30",
    "Fri *-02-29",
    // end of month
    "*-02~03",
    "*-*~1",
    "*-*~01..03",
    "*-02~03/2",
    "*-*~1..3/2",
    "Mon *-*~7",
    "*-*~28",
    // fractional seconds
    "*:*:0/15.5",
    "*:*:1.5",
    "*-*-* *:*:0..10/2.5",
    "*:*:0..1/0.25",
    "*:*:0.1234567",
    "*:*:05,00/1",
    "*:*:*",
    // two-digit years
    "12-01-01",
    "24-2-29 12:00",
    "70-01-01",
    "2199-12-31",
    // weekdays
    "Sat..Sun",
    "Mon-Wed",
    "mon,wed,fri",
    "Mon..Wed,Fri",
    "Mon,Tue,Wed",
    "Monday",
    "Mon, 10:00",
    "mon  10:00",
    "Tue-Tue",
    "Wed..Sat 23:59:59",
    // time zones
    "Mon *-*-* 10:00 utc",
    "*-*-* 05:00:00 Europe/Paris",
    "*-*-* 02:30 America/New_York",
    "*:0/20 Asia/Kolkata",
    "*-*-* 02:15 Australia/Lord_Howe",
    "daily Etc/GMT+5",
    "@1700000000",
    "*-*",
    "1-1",
];

const INVALID: &[&str] = &[
    "Sat..Mon",
    "Fri..Mon 10:00",
    "Sun..Sat",
    "*:0/0",
    "25:00",
    "*-*-* 24:00",
    "*-*-00",
    "*-*~29",
    "*-02~03/3",
    "2200-01-01",
    "1:2:3:4",
    "*",
    "Mo",
    "Monx",
    "Mon..",
    "Mon,,Tue",
    " mon",
    "12:",
    ":30",
    "*:*:5..5.5",
    "0/24:00",
    "1/25:00",
    "10..5:00",
    "00:00:60",
    "*:*:*,5",
    "daily europe/paris",
    "daily Europe/Nowhere",
    "",
    "bogus",
];

fn compare(bin: &str, tz_name: &str, tz: &Tz, base: i64, expr: &str) -> Option<String> {
    let theirs = from_systemd(bin, tz_name, base, expr);
    let mut mine = ours(tz, base, expr);
    // When systemd gave up before printing anything, only the (empty) elapses compare.
    if let (
        Outcome::Valid {
            normalized: None, ..
        },
        Outcome::Valid { normalized, .. },
    ) = (&theirs, &mut mine)
    {
        *normalized = None;
    }
    (theirs != mine).then(|| {
        format!("TZ={tz_name} base=@{base} {expr:?}:\n  systemd: {theirs:?}\n  cairn:   {mine:?}")
    })
}

#[test]
fn table_matches_systemd_analyze_in_utc() {
    let Some(bin) = systemd_analyze() else {
        return;
    };
    assert!(VALID.len() + INVALID.len() >= 40);
    let mut failures = Vec::new();
    for expr in VALID.iter().chain(INVALID) {
        failures.extend(compare(bin, "UTC", &Tz::Utc, BASE, expr));
    }
    for expr in VALID {
        let theirs = from_systemd(bin, "UTC", BASE, expr);
        assert_ne!(
            theirs,
            Outcome::Invalid,
            "{expr:?} should be valid for systemd"
        );
    }
    for expr in INVALID {
        let theirs = from_systemd(bin, "UTC", BASE, expr);
        assert_eq!(
            theirs,
            Outcome::Invalid,
            "{expr:?} should be invalid for systemd"
        );
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn table_matches_systemd_analyze_in_paris_across_dst() {
    let Some(bin) = systemd_analyze() else {
        return;
    };
    let paris = Tz::named("Europe/Paris").unwrap();
    let exprs = [
        "*-*-* 02:30",
        "*-*-* 02:00",
        "*-*-* *:30",
        "*-*-* 02:*:00",
        "*-*-* 01,02,03:00",
        "*:0/20",
        "daily",
        "Mon..Fri *:00",
        "*-*-* 05:00:00 UTC",
        "*-*-* 05:00:00 America/New_York",
        "*-*~01 02:30",
        "Sun *-*-* 02:00..03:00",
    ];
    // Midday before spring forward, midday before fall back, inside the first and the
    // second 02:xx of the fall-back night, and a plain winter day.
    let bases = [
        1_711_800_000,
        1_729_944_000,
        1_729_987_800,
        1_729_991_400,
        BASE,
    ];
    let mut failures = Vec::new();
    for expr in exprs {
        for base in bases {
            failures.extend(compare(bin, "Europe/Paris", &paris, base, expr));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn output_parser_reads_times_in_both_zones() {
    let Some(bin) = systemd_analyze() else {
        return;
    };
    let utc = from_systemd(bin, "UTC", BASE, "daily");
    let paris = from_systemd(bin, "Europe/Paris", BASE, "daily UTC");
    let day = 86_400;
    for o in [utc, paris] {
        assert_eq!(
            o,
            Outcome::Valid {
                normalized: Some(o_norm(&o)),
                elapses: (1..=5).map(|i| BASE + i * day).collect()
            }
        );
    }
}

fn o_norm(o: &Outcome) -> String {
    match o {
        Outcome::Valid {
            normalized: Some(normalized),
            ..
        } => {
            assert!(normalized.starts_with("*-*-* 00:00:00"));
            normalized.clone()
        }
        _ => panic!("valid expected"),
    }
}

/// Deterministic generator of expressions from grammar fragments (valid and invalid).
struct Gen(u64);

impl Gen {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % n
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.next(v.len())]
    }
    fn field(&mut self, lo: u32, hi: u32, allow_frac: bool) -> String {
        let mut parts = Vec::new();
        for _ in 0..=self.next(3) {
            // Mostly in range; sometimes one past the end to exercise refusals.
            let a = if self.next(30) == 0 {
                hi + 1
            } else {
                lo + self.next((hi - lo + 1) as usize) as u32
            };
            let room = (hi.saturating_sub(a) + 1) as usize;
            let s = match self.next(7) {
                0 if parts.is_empty() => "*".to_string(),
                1 => format!("{a}..{}", (a + self.next(8) as u32).min(hi)),
                2 => format!("{a}/{}", self.next(room) + 1),
                3 => format!(
                    "{a}..{}/{}",
                    (a + self.next(20) as u32).min(hi),
                    self.next(5) + 1
                ),
                4 if allow_frac => format!("{a}.{}", self.next(1000)),
                _ => format!("{a:02}"),
            };
            parts.push(s);
        }
        parts.join(",")
    }
}

#[test]
fn generated_expressions_match_systemd_analyze() {
    let Some(bin) = systemd_analyze() else {
        return;
    };
    let mut g = Gen(std::env::var("CAIRN_CAL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(42));
    let paris = Tz::named("Europe/Paris").unwrap();
    let mut failures = Vec::new();
    let mut valid = 0;
    for i in 0..std::env::var("CAIRN_CAL_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400)
    {
        let mut e = String::new();
        if g.next(3) == 0 {
            e.push_str(g.pick(&[
                "Mon",
                "Sat..Sun",
                "Mon..Fri",
                "Tue,Thu",
                "Wed-Fri,Sun",
                "Fri..Mon",
                "sunday",
            ]));
            e.push(' ');
        }
        match g.next(4) {
            0 => {}
            1 => e.push_str(&format!(
                "{}-{} ",
                g.field(1, 12, false),
                g.field(1, 31, false)
            )),
            2 => e.push_str(&format!(
                "{}~{} ",
                g.field(1, 12, false),
                g.field(1, 28, false)
            )),
            _ => e.push_str(&format!(
                "{}-{}-{} ",
                g.pick(&["*", "2024", "24..26", "2025/2", "99"]),
                g.field(1, 12, false),
                g.field(1, 31, false)
            )),
        }
        match g.next(3) {
            0 => e.push_str(&format!(
                "{}:{}",
                g.field(0, 23, false),
                g.field(0, 59, false)
            )),
            _ => e.push_str(&format!(
                "{}:{}:{}",
                g.field(0, 23, false),
                g.field(0, 59, false),
                g.field(0, 59, true)
            )),
        }
        e.push_str(g.pick(&["", "", "", " UTC", " Europe/Paris", " America/New_York"]));
        let (tz_name, tz) = if i % 2 == 0 {
            ("UTC", &Tz::Utc)
        } else {
            ("Europe/Paris", &paris)
        };
        let base = BASE + (g.next(1000) as i64) * 86_400 + g.next(86_400) as i64;
        if CalendarEvent::parse(&e).is_ok() {
            valid += 1;
        }
        failures.extend(compare(bin, tz_name, tz, base, &e));
    }
    assert!(valid > 50, "only {valid} valid expressions generated");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
