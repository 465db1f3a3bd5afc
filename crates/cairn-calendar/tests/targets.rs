//! launchd and cron translations fire at exactly the minutes at which the expression
//! elapses, over a whole year, in the scheduler's time zone; what they cannot express is
//! refused with a reason.

use std::collections::BTreeSet;

use cairn_calendar::{CalendarEvent, CronEntry, LaunchdInterval, Tz};
use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};

/// 2024-01-01 00:00 UTC and one (leap) year later.
const START: i64 = 1_704_067_200;
const END: i64 = START + 366 * 86_400;

/// The target zone's wall-clock fields of a UTC minute: (minute, hour, day, month, weekday 0=Sun).
fn fields(t: i64, tz: &Tz) -> (u32, u32, u32, u32, u32) {
    let utc = DateTime::<Utc>::from_timestamp(t, 0).unwrap();
    let f = |d: &dyn Fn() -> (u32, u32, u32, u32, u32)| d();
    match tz {
        Tz::Utc => f(&|| {
            (
                utc.minute(),
                utc.hour(),
                utc.day(),
                utc.month(),
                utc.weekday().num_days_from_sunday(),
            )
        }),
        Tz::Named(z) => {
            let l = z.from_utc_datetime(&utc.naive_utc());
            (
                l.minute(),
                l.hour(),
                l.day(),
                l.month(),
                l.weekday().num_days_from_sunday(),
            )
        }
        Tz::Local => panic!("tests use fixed zones"),
    }
}

/// Minutes (as UTC timestamps) at which the expression elapses during the year.
fn elapse_minutes(ev: &CalendarEvent, tz: &Tz) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    let mut at = DateTime::<Utc>::from_timestamp(START - 1, 0).unwrap();
    while let Some(t) = ev.next_after(at, tz) {
        if t.timestamp() >= END {
            break;
        }
        assert_eq!(t.timestamp() % 60, 0, "{ev}: elapse not on a whole minute");
        out.insert(t.timestamp());
        at = t;
    }
    out
}

type Fields = (u32, u32, u32, u32, u32);

/// Every minute of the year with its wall-clock fields in `tz` (computed once per zone).
fn year_minutes(tz: &Tz) -> Vec<(i64, Fields)> {
    (START..END)
        .step_by(60)
        .map(|t| (t, fields(t, tz)))
        .collect()
}

fn launchd_minutes(iv: &[LaunchdInterval], year: &[(i64, Fields)]) -> BTreeSet<i64> {
    let ok = |want: Option<u8>, have: u32| want.is_none_or(|w| u32::from(w) == have);
    year.iter()
        .filter(|(_, (mi, h, d, mo, wd))| {
            let (mi, h, d, mo, wd) = (*mi, *h, *d, *mo, *wd);
            iv.iter().any(|i| {
                ok(i.minute, mi)
                    && ok(i.hour, h)
                    && ok(i.day, d)
                    && ok(i.month, mo)
                    && ok(i.weekday, wd)
            })
        })
        .map(|(t, _)| *t)
        .collect()
}

/// A small cron field matcher: `*`, `*/s`, `a`, `a-b`, `a-b/s`, lists.
fn cron_field_matches(field: &str, v: u32, lo: u32, hi: u32) -> bool {
    field.split(',').any(|item| {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().unwrap()),
            None => (item, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (a.parse().unwrap(), b.parse().unwrap())
        } else {
            let a: u32 = range.parse().unwrap();
            (a, if item.contains('/') { hi } else { a })
        };
        v >= a && v <= b && (v - a).is_multiple_of(step)
    })
}

/// Vixie cron semantics: day of month and weekday are ORed when neither starts with `*`;
/// then the weekday guard (the `test $(date +%w)` the caller adds) filters.
fn cron_minutes(entries: &[CronEntry], year: &[(i64, Fields)]) -> BTreeSet<i64> {
    // Each field parsed once into a bit mask of the values it allows.
    let mask = |f: &str, lo: u32, hi: u32| -> u64 {
        (lo..=hi)
            .filter(|v| cron_field_matches(f, *v, lo, hi))
            .fold(0, |m, v| m | (1 << v))
    };
    let parsed: Vec<_> = entries
        .iter()
        .map(|e| {
            let guard = e
                .weekday_guard
                .as_ref()
                .map_or(0x7f, |g| g.iter().fold(0u64, |m, v| m | (1 << v)));
            let or_days = !e.day_of_month.starts_with('*') && !e.day_of_week.starts_with('*');
            (
                mask(&e.minute, 0, 59),
                mask(&e.hour, 0, 23),
                mask(&e.day_of_month, 1, 31),
                mask(&e.month, 1, 12),
                mask(&e.day_of_week, 0, 6),
                or_days,
                guard,
            )
        })
        .collect();
    let has = |m: u64, v: u32| m & (1 << v) != 0;
    year.iter()
        .filter(|(_, (mi, h, d, mo, wd))| {
            parsed
                .iter()
                .any(|&(m_mi, m_h, m_d, m_mo, m_wd, or_days, guard)| {
                    let (dom, dow) = (has(m_d, *d), has(m_wd, *wd));
                    let day_ok = if or_days { dom || dow } else { dom && dow };
                    has(m_mi, *mi) && has(m_h, *h) && has(m_mo, *mo) && day_ok && has(guard, *wd)
                })
        })
        .map(|(t, _)| *t)
        .collect()
}

fn zones() -> Vec<(&'static str, Tz)> {
    vec![
        ("UTC", Tz::Utc),
        ("Asia/Tokyo", Tz::named("Asia/Tokyo").unwrap()),
        ("Asia/Kolkata", Tz::named("Asia/Kolkata").unwrap()),
    ]
}

/// Expressions launchd and cron can both express (in every zone of [`zones`]).
const BOTH: &[&str] = &[
    "daily",
    "hourly",
    "weekly",
    "monthly",
    "quarterly",
    "semiannually",
    "yearly",
    "Mon..Fri *:00",
    "*:00,30",
    "Sat,Sun 0,12:00",
    "Sat..Sun 10:00",
    "*-*-1",
    "12..14:10,20,30",
    "*-*-01 04:00:00",
    "Mon..Fri 02:30",
    "*:0/15",
    "*-*-* 8..18/2:00",
    "*-1..12/3-1",
    "*-02-29 12:00",
    "*-*-31 12:00",
    "*-*-1/2 00:00",
    "*-*-* *:5..7",
    "*-*-* 1..2:00",
    "Wed,Fri 23:59",
    "*-*-* 05:00:00 UTC",
    "Mon *-*-* 23:30 UTC",
    "Sun *-*-* 00:15 UTC",
    "*-*-* 0,23:10,45 UTC",
    "Tue..Thu 18:00..59/20 UTC",
    "*-*-* 18:30 Asia/Kolkata",
    "*-*-* 00:00 Asia/Tokyo",
];

#[test]
fn launchd_and_cron_fire_at_the_same_minutes_for_a_year() {
    for (name, tz) in zones() {
        let year = year_minutes(&tz);
        for expr in BOTH {
            let ev = CalendarEvent::parse(expr).unwrap();
            let want = elapse_minutes(&ev, &tz);
            assert!(!want.is_empty(), "{expr} never elapses");
            let iv = ev
                .launchd_intervals(&tz)
                .unwrap_or_else(|e| panic!("{expr} in {name}: {e}"));
            assert_eq!(
                launchd_minutes(&iv, &year),
                want,
                "launchd {expr} in {name}: {iv:?}"
            );
            let ce = ev
                .cron_entries(&tz)
                .unwrap_or_else(|e| panic!("{expr} in {name}: {e}"));
            assert_eq!(
                cron_minutes(&ce, &year),
                want,
                "cron {expr} in {name}: {ce:?}"
            );
        }
    }
}

#[test]
fn cron_guards_day_and_weekday_together() {
    let year = year_minutes(&Tz::Utc);
    for expr in [
        "Mon *-*-01..07 03:00",
        "Sat,Sun *-*-13 13:13",
        "Fri *-02-29",
    ] {
        let ev = CalendarEvent::parse(expr).unwrap();
        let ce = ev.cron_entries(&Tz::Utc).unwrap();
        assert!(
            ce.iter().all(|e| e.weekday_guard.is_some()),
            "{expr}: {ce:?}"
        );
        assert_eq!(
            cron_minutes(&ce, &year),
            elapse_minutes(&ev, &Tz::Utc),
            "{expr}"
        );
        let err = ev.launchd_intervals(&Tz::Utc).unwrap_err();
        assert!(err.message.contains("either matches"), "{err}");
    }
}

#[test]
fn inexpressible_forms_are_refused_with_a_reason_and_a_suggestion() {
    let tokyo = Tz::named("Asia/Tokyo").unwrap();
    let cases: &[(&str, &Tz, &str, Option<&str>)] = &[
        ("*:*:30", &Tz::Utc, "seconds", Some("*-*-* *:*:00")),
        ("*:*:0/30", &Tz::Utc, "seconds", Some("*-*-* *:*:00")),
        (
            "*-*-* 10:00:00.5",
            &Tz::Utc,
            "seconds",
            Some("*-*-* 10:00:00"),
        ),
        ("2030-*-* 00:00", &Tz::Utc, "year", Some("*-*-* 00:00:00")),
        (
            "*-*~01",
            &Tz::Utc,
            "end of the month",
            Some("*-*-28 00:00:00"),
        ),
        (
            "*-*-* 05:00 Europe/Paris",
            &Tz::Utc,
            "daylight-saving",
            Some("*-*-* 05:00:00"),
        ),
        (
            "*-*-01 23:30 UTC",
            &tokyo,
            "next day",
            Some("*-*-01 23:30:00"),
        ),
        ("*-06-* 20:00 UTC", &tokyo, "next day", None),
    ];
    for (expr, tz, why, nearest) in cases {
        let ev = CalendarEvent::parse(expr).unwrap();
        for err in [
            ev.launchd_intervals(tz).unwrap_err(),
            ev.cron_entries(tz).unwrap_err(),
        ] {
            assert!(err.message.contains(why), "{expr}: {err}");
            assert!(err.message.contains(&ev.normalized()), "{expr}: {err}");
            if let Some(n) = nearest {
                assert!(err.message.contains(&format!("{n:?}")), "{expr}: {err}");
            }
        }
    }
}

#[test]
fn cron_fields_are_formatted_like_resticprofile() {
    let e = &CalendarEvent::parse("Mon..Fri 02:30")
        .unwrap()
        .cron_entries(&Tz::Utc)
        .unwrap()[0];
    assert_eq!(
        (
            e.minute.as_str(),
            e.hour.as_str(),
            e.day_of_month.as_str(),
            e.month.as_str(),
            e.day_of_week.as_str()
        ),
        ("30", "02", "*", "*", "01-05")
    );
    let e = &CalendarEvent::parse("*-*-* 1..2:00")
        .unwrap()
        .cron_entries(&Tz::Utc)
        .unwrap()[0];
    assert_eq!(e.hour, "01,02");
}
