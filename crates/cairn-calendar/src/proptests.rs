//! Property tests: `next_after` is strictly increasing and every elapse matches the
//! expression (checked by an independent matcher over the elapse's wall-clock fields).

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use proptest::prelude::*;

use crate::next::{civil_from_days, days_from_civil};
use crate::parse::USEC;
use crate::{CalendarEvent, Component, Tz, Zone};

fn component_matches(c: &Component, v: i64) -> bool {
    match (c.stop, c.repeat) {
        (None, 0) => v == c.start,
        (Some(stop), r) => v >= c.start && v <= stop && (v - c.start) % r.max(1) == 0,
        (None, r) => v >= c.start && (v - c.start) % r == 0,
    }
}

fn chain_matches(chain: &[Component], v: i64) -> bool {
    chain.is_empty() || chain.iter().any(|c| component_matches(c, v))
}

/// Day `d` of a month with `last` days against a `~` chain (days counted from the end;
/// repetitions run forward from the earlier day, as in systemd).
fn eom_matches(chain: &[Component], d: i64, last: i64) -> bool {
    chain.iter().any(|c| {
        let from_end = |n: i64| last - n + 1;
        match c.stop {
            Some(stop) => {
                let (a, b) = (from_end(stop), from_end(c.start));
                d >= a && d <= b && (d - a) % c.repeat.max(1) == 0
            }
            None if c.repeat > 0 => {
                d >= from_end(c.start) && (d - from_end(c.start)) % c.repeat == 0
            }
            None => d == from_end(c.start),
        }
    })
}

/// Whether the wall-clock time of `t` in the evaluation zone matches the expression.
fn matches(ev: &CalendarEvent, t: DateTime<Utc>, local: &Tz) -> bool {
    let naive = match (&ev.zone, local) {
        (Zone::Utc, _) | (Zone::Local, Tz::Utc) => t.naive_utc(),
        (Zone::Named(_, z), _) | (Zone::Local, Tz::Named(z)) => {
            z.from_utc_datetime(&t.naive_utc()).naive_local()
        }
        (Zone::Local, Tz::Local) => chrono::Local
            .from_utc_datetime(&t.naive_utc())
            .naive_local(),
    };
    let (y, m, d) = (
        i64::from(naive.year()),
        i64::from(naive.month()),
        i64::from(naive.day()),
    );
    let next_month = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let last = days_from_civil(next_month.0, next_month.1, 1) - days_from_civil(y, m, 1);
    let wd = i64::from(naive.weekday().num_days_from_monday());
    let usec = i64::from(naive.second()) * USEC + i64::from(naive.nanosecond() / 1000);
    chain_matches(&ev.year, y)
        && chain_matches(&ev.month, m)
        && if ev.end_of_month {
            eom_matches(&ev.day, d, last)
        } else {
            chain_matches(&ev.day, d)
        }
        && ev.weekdays.is_none_or(|b| b & (1 << wd) != 0)
        && chain_matches(&ev.hour, i64::from(naive.hour()))
        && chain_matches(&ev.minute, i64::from(naive.minute()))
        && chain_matches(&ev.second, usec)
}

fn field(lo: u32, hi: u32, frac: bool) -> impl Strategy<Value = String> {
    let one = (lo..=hi, 0u32..8, 1u32..13, 0u32..1000, 0u8..6).prop_map(
        move |(a, len, step, f, kind)| {
            let b = (a + len).min(hi);
            match kind {
                0 => format!("{a}..{b}"),
                1 => format!("{a}/{step}"),
                2 => format!("{a}..{b}/{}", step % 4 + 1),
                3 if frac => format!("{a}.{f:03}"),
                _ => format!("{a:02}"),
            }
        },
    );
    prop_oneof![
        1 => Just("*".to_string()),
        4 => prop::collection::vec(one, 1..4).prop_map(|v| v.join(",")),
    ]
}

fn expression() -> impl Strategy<Value = String> {
    let weekdays = prop_oneof![
        Just(""),
        Just("Mon "),
        Just("Mon..Fri "),
        Just("Sat,Sun "),
        Just("Tue,Thu..Sat ")
    ];
    let date = prop_oneof![
        Just(String::new()),
        (field(1, 12, false), field(1, 31, false)).prop_map(|(m, d)| format!("{m}-{d} ")),
        (field(1, 12, false), field(1, 9, false)).prop_map(|(m, d)| format!("{m}~{d} ")),
        (field(1, 12, false), field(1, 28, false))
            .prop_map(|(m, d)| format!("2024..2040-{m}-{d} ")),
    ];
    let time = (field(0, 23, false), field(0, 59, false), field(0, 59, true))
        .prop_map(|(h, m, s)| format!("{h}:{m}:{s}"));
    let zone = prop_oneof![
        Just(""),
        Just(" UTC"),
        Just(" Europe/Paris"),
        Just(" America/New_York")
    ];
    (weekdays, date, time, zone).prop_map(|(w, d, t, z)| format!("{w}{d}{t}{z}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn next_after_increases_and_matches(
        expr in expression(),
        base in 1_600_000_000i64..1_900_000_000,
        paris in any::<bool>(),
    ) {
        let Ok(ev) = CalendarEvent::parse(&expr) else {
            return Ok(());
        };
        let local = if paris { Tz::named("Europe/Paris").unwrap() } else { Tz::Utc };
        let mut at = DateTime::<Utc>::from_timestamp(base, 0).unwrap();
        for _ in 0..8 {
            let Some(next) = ev.next_after(at, &local) else { break };
            prop_assert!(next > at, "{expr}: {next} not after {at}");
            prop_assert!(matches(&ev, next, &local), "{expr}: {next} does not match");
            at = next;
        }
    }
}

#[test]
fn matcher_is_not_trivial() {
    let ev = CalendarEvent::parse("*-*~03/2 10:00").unwrap();
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    assert!(matches(&ev, at("2024-02-27T10:00:00Z"), &Tz::Utc));
    assert!(matches(&ev, at("2024-02-29T10:00:00Z"), &Tz::Utc));
    assert!(!matches(&ev, at("2024-02-28T10:00:00Z"), &Tz::Utc));
    assert!(!matches(&ev, at("2024-02-27T10:01:00Z"), &Tz::Utc));
    assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
}

#[test]
fn generator_yields_mostly_valid_expressions() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = expression();
    let mut valid = 0;
    for _ in 0..200 {
        let expr = strategy.new_tree(&mut runner).unwrap().current();
        if CalendarEvent::parse(&expr).is_ok() {
            valid += 1;
        }
    }
    assert!(
        valid >= 60,
        "only {valid} of 200 generated expressions parse"
    );
}
