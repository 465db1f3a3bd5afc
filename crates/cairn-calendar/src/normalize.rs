//! systemd's normalized form (what `systemd-analyze calendar` prints as "Normalized form").

use std::fmt::Write;

use crate::parse::USEC;
use crate::{CalendarEvent, Component, Zone};

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Weekday bits as systemd writes them: runs of three or more as `a..b`, pairs as `a,b`.
pub(crate) fn format_weekdays(bits: u8) -> String {
    let mut out = String::new();
    let mut run_start: Option<usize> = None;
    let close = |out: &mut String, l: usize, x: usize| {
        if x > l + 1 {
            out.push_str(if x > l + 2 { ".." } else { "," });
            out.push_str(DAYS.get(x - 1).copied().unwrap_or(""));
        }
    };
    for (x, name) in DAYS.iter().enumerate() {
        if bits & (1 << x) != 0 {
            if run_start.is_none() {
                if !out.is_empty() {
                    out.push(',');
                }
                out.push_str(name);
                run_start = Some(x);
            }
        } else if let Some(l) = run_start.take() {
            close(&mut out, l, x);
        }
    }
    if let Some(l) = run_start {
        close(&mut out, l, DAYS.len());
    }
    out
}

fn is_star(chain: &[Component], usec: bool) -> bool {
    chain.is_empty()
        || (usec
            && chain
                .iter()
                .any(|c| c.start == 0 && c.stop.is_none() && c.repeat == USEC))
}

fn format_chain(out: &mut String, width: usize, chain: &[Component], usec: bool) {
    if is_star(chain, usec) {
        out.push('*');
        return;
    }
    let d = if usec { USEC } else { 1 };
    for (i, c) in chain.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{:0width$}", c.start / d);
        if c.start % d > 0 {
            let _ = write!(out, ".{:06}", c.start % d);
        }
        if let Some(stop) = c.stop.filter(|s| *s > 0) {
            let _ = write!(out, "..{:0width$}", stop / d);
            if stop % d > 0 {
                let _ = write!(out, ".{:06}", stop % d);
            }
        }
        let has_stop = c.stop.is_some_and(|s| s > 0);
        if c.repeat > 0 && !(has_stop && c.repeat == d) {
            let _ = write!(out, "/{}", c.repeat / d);
        }
        if c.repeat % d > 0 {
            let _ = write!(out, ".{:06}", c.repeat % d);
        }
    }
}

pub(crate) fn format(ev: &CalendarEvent) -> String {
    let mut out = String::new();
    if let Some(bits) = ev.weekdays {
        out.push_str(&format_weekdays(bits));
        out.push(' ');
    }
    format_chain(&mut out, 4, &ev.year, false);
    out.push('-');
    format_chain(&mut out, 2, &ev.month, false);
    out.push(if ev.end_of_month { '~' } else { '-' });
    format_chain(&mut out, 2, &ev.day, false);
    out.push(' ');
    format_chain(&mut out, 2, &ev.hour, false);
    out.push(':');
    format_chain(&mut out, 2, &ev.minute, false);
    out.push(':');
    format_chain(&mut out, 2, &ev.second, true);
    match &ev.zone {
        Zone::Local => {}
        Zone::Utc => out.push_str(" UTC"),
        Zone::Named(name, _) => {
            out.push(' ');
            out.push_str(name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::CalendarEvent;

    fn n(e: &str) -> String {
        CalendarEvent::parse(e).unwrap().normalized()
    }

    #[test]
    fn spec_examples() {
        assert_eq!(n("Mon..Fri *:00"), "Mon..Fri *-*-* *:00:00");
        assert_eq!(n("*:00,30"), "*-*-* *:00,30:00");
        assert_eq!(n("Sat,Sun 0,12:00"), "Sat,Sun *-*-* 00,12:00:00");
        assert_eq!(n("*-*-1"), "*-*-01 00:00:00");
        assert_eq!(n("12..14:10,20,30"), "*-*-* 12..14:10,20,30:00");
        assert_eq!(n("daily"), "*-*-* 00:00:00");
        assert_eq!(n("*-*-* 05:00:00 UTC"), "*-*-* 05:00:00 UTC");
        assert_eq!(n("Sat..Sun"), "Sat,Sun *-*-* 00:00:00");
        assert_eq!(n("*:*:0..1/0.25"), "*-*-* *:*:00..01/0.250000");
        assert_eq!(n("*:*:05,00/1"), "*-*-* *:*:*");
        assert_eq!(n("quarterly"), "*-01,04,07,10-01 00:00:00");
    }
}
