//! The parser: systemd's calendar-event grammar, normalisation and validity rules.

use crate::{CalendarEvent, Component, Zone};

/// Microseconds per second (the seconds field is kept in microseconds).
pub(crate) const USEC: i64 = 1_000_000;
/// Years outside this window are refused, as systemd does.
pub(crate) const MIN_YEAR: i64 = 1970;
/// See [`MIN_YEAR`].
pub(crate) const MAX_YEAR: i64 = 2199;
/// Longest list systemd accepts in one field.
const MAX_COMPONENTS: usize = 240;
/// All seven weekday bits.
const ALL_WEEKDAYS: i32 = 127;

type PResult<T> = Result<T, String>;

const KEYWORDS: &[(&str, Keyword)] = &[
    ("minutely", Keyword::Minutely),
    ("hourly", Keyword::Hourly),
    ("daily", Keyword::Daily),
    ("monthly", Keyword::Monthly),
    ("annually", Keyword::Yearly),
    ("yearly", Keyword::Yearly),
    ("anually", Keyword::Yearly),
    ("weekly", Keyword::Weekly),
    ("quarterly", Keyword::Quarterly),
    ("biannually", Keyword::Semiannually),
    ("bi-annually", Keyword::Semiannually),
    ("semiannually", Keyword::Semiannually),
    ("semi-annually", Keyword::Semiannually),
];

#[derive(Clone, Copy)]
enum Keyword {
    Minutely,
    Hourly,
    Daily,
    Monthly,
    Yearly,
    Weekly,
    Quarterly,
    Semiannually,
}

const WEEKDAY_NAMES: &[(&str, i32)] = &[
    ("monday", 0),
    ("mon", 0),
    ("tuesday", 1),
    ("tue", 1),
    ("wednesday", 2),
    ("wed", 2),
    ("thursday", 3),
    ("thu", 3),
    ("friday", 4),
    ("fri", 4),
    ("saturday", 5),
    ("sat", 5),
    ("sunday", 6),
    ("sun", 6),
];

fn single(v: i64) -> Vec<Component> {
    vec![Component {
        start: v,
        stop: None,
        repeat: 0,
    }]
}

/// Parser state: the spec being built plus a cursor over the expression's bytes.
struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    weekday_bits: i32,
    ev: CalendarEvent,
}

impl Parser<'_> {
    fn peek(&self) -> u8 {
        self.s.get(self.pos).copied().unwrap_or(0)
    }

    fn peek_at(&self, off: usize) -> u8 {
        self.s.get(self.pos + off).copied().unwrap_or(0)
    }

    fn skip_spaces(&mut self) {
        while self.peek() == b' ' {
            self.pos += 1;
        }
    }

    fn weekdays(&mut self) -> PResult<()> {
        let mut range_from: Option<i32> = None;
        let mut first = true;
        loop {
            let rest = self.s.get(self.pos..).unwrap_or(&[]);
            let found = WEEKDAY_NAMES.iter().find(|(name, _)| {
                rest.len() >= name.len()
                    && rest
                        .get(..name.len())
                        .is_some_and(|p| p.eq_ignore_ascii_case(name.as_bytes()))
            });
            let Some(&(name, nr)) = found else {
                // No weekday here: the expression starts with the date (or is wrong).
                return if first {
                    Ok(())
                } else {
                    Err("expected a weekday name after ',' or '..'".into())
                };
            };
            let after = self.peek_at(name.len());
            if !matches!(after, 0 | b'-' | b'.' | b',' | b' ') {
                return Err(format!(
                    "unknown weekday {:?} (use Mon, Tue, …, Sun or the full English name)",
                    String::from_utf8_lossy(rest.split(|b| *b == b' ').next().unwrap_or(rest))
                ));
            }
            self.weekday_bits |= 1 << nr;
            if let Some(from) = range_from {
                if from > nr {
                    return Err(
                        "weekday range goes backwards (systemd counts Mon..Sun; write e.g. \"Fri..Sun,Mon\" instead of \"Fri..Mon\")"
                            .into(),
                    );
                }
                for j in from + 1..nr {
                    self.weekday_bits |= 1 << j;
                }
            }
            self.pos += name.len();
            match self.peek() {
                0 => return Ok(()),
                b' ' => {
                    self.skip_spaces();
                    return Ok(());
                }
                b'.' => {
                    if range_from.is_some() || self.peek_at(1) != b'.' {
                        return Err("bad weekday range (write \"Mon..Fri\")".into());
                    }
                    range_from = Some(nr);
                    self.pos += 2;
                }
                b'-' => {
                    if range_from.is_some() {
                        return Err("bad weekday range (write \"Mon..Fri\")".into());
                    }
                    range_from = Some(nr);
                    self.pos += 1;
                }
                b',' => {
                    range_from = None;
                    self.pos += 1;
                }
                _ => {}
            }
            if matches!(self.peek(), 0 | b' ') {
                self.skip_spaces();
                return if range_from.is_none() {
                    Ok(())
                } else {
                    Err("weekday range without an end (write \"Mon..Fri\")".into())
                };
            }
            first = false;
        }
    }

    /// Digits (and, for seconds, a fraction) at the cursor.
    fn decimal(&mut self, usec: bool) -> PResult<i64> {
        if !self.peek().is_ascii_digit() {
            return Err(format!(
                "expected a number at {:?}",
                String::from_utf8_lossy(self.s.get(self.pos..).unwrap_or(&[]))
            ));
        }
        let mut value: u64 = 0;
        while self.peek().is_ascii_digit() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(self.peek() - b'0')))
                .ok_or("number too large")?;
            self.pos += 1;
        }
        if usec {
            value = value.checked_mul(USEC as u64).ok_or("number too large")?;
            if self.peek() == b'.' && self.peek_at(1) != b'.' {
                self.pos += 1;
                value = value
                    .checked_add(u64::from(self.fraction()?))
                    .ok_or("number too large")?;
            }
        }
        if value > i32::MAX as u64 {
            return Err("number too large".into());
        }
        Ok(value as i64)
    }

    /// Six digits of fraction, rounded on the seventh like systemd.
    fn fraction(&mut self) -> PResult<u32> {
        let mut val: u32 = 0;
        let mut i = 0;
        while i < 6 {
            let c = self.peek();
            if !c.is_ascii_digit() {
                if i == 0 {
                    return Err("expected digits after the decimal point".into());
                }
                while i < 6 {
                    val *= 10;
                    i += 1;
                }
                break;
            }
            val = val * 10 + u32::from(c - b'0');
            self.pos += 1;
            i += 1;
        }
        if (b'5'..=b'9').contains(&self.peek()) {
            val += 1;
        }
        while self.peek().is_ascii_digit() {
            self.pos += 1;
        }
        Ok(val)
    }

    /// One field: `*` or a list of `a`, `a..b`, `a/r`, `a..b/r`.
    fn chain(&mut self, usec: bool) -> PResult<Vec<Component>> {
        if self.peek() == b'*' {
            self.pos += 1;
            return Ok(if usec {
                vec![Component {
                    start: 0,
                    stop: None,
                    repeat: USEC,
                }]
            } else {
                Vec::new()
            });
        }
        let mut out = Vec::new();
        loop {
            if out.len() > MAX_COMPONENTS {
                return Err(format!("more than {MAX_COMPONENTS} values in one field"));
            }
            let start = self.decimal(usec)?;
            let mut stop = None;
            let mut repeat = 0;
            if self.peek() == b'.' && self.peek_at(1) == b'.' {
                self.pos += 2;
                stop = Some(self.decimal(usec)?);
                repeat = if usec { USEC } else { 1 };
            }
            if self.peek() == b'/' {
                self.pos += 1;
                repeat = self.decimal(usec)?;
                if repeat == 0 {
                    return Err("a repetition of 0 never advances (use /1 or more)".into());
                }
            } else {
                if start > i64::from(i32::MAX) - repeat {
                    return Err("number too large".into());
                }
                if usec && stop.is_some_and(|stop| start + repeat > stop) {
                    return Err(
                        "a seconds range shorter than one second needs an explicit /repetition"
                            .into(),
                    );
                }
            }
            if !matches!(self.peek(), 0 | b' ' | b',' | b'-' | b'~' | b':') {
                return Err(format!(
                    "unexpected {:?}",
                    String::from_utf8_lossy(self.s.get(self.pos..).unwrap_or(&[]))
                ));
            }
            out.push(Component {
                start,
                stop,
                repeat,
            });
            if self.peek() == b',' {
                self.pos += 1;
                continue;
            }
            return Ok(out);
        }
    }

    /// The date part. Returns true when the expression was `@EPOCH` (no time follows).
    fn date(&mut self) -> PResult<bool> {
        if self.peek() == 0 {
            return Ok(false);
        }
        if self.peek() == b'@' {
            self.pos += 1;
            if !self.peek().is_ascii_digit() {
                return Err("expected seconds since the epoch after '@'".into());
            }
            let mut secs: i64 = 0;
            while self.peek().is_ascii_digit() {
                secs = secs
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(i64::from(self.peek() - b'0')))
                    .ok_or("timestamp too large")?;
                self.pos += 1;
            }
            let t = chrono::DateTime::from_timestamp(secs, 0).ok_or("timestamp out of range")?;
            use chrono::{Datelike, Timelike};
            self.ev.year = single(i64::from(t.year()));
            self.ev.month = single(i64::from(t.month()));
            self.ev.day = single(i64::from(t.day()));
            self.ev.hour = single(i64::from(t.hour()));
            self.ev.minute = single(i64::from(t.minute()));
            self.ev.second = single(i64::from(t.second()) * USEC);
            self.ev.zone = Zone::Utc;
            return Ok(true);
        }
        let save = self.pos;
        let first = self.chain(false)?;
        if matches!(self.peek(), 0 | b':') {
            // That was an hour, not a date.
            self.pos = save;
            return Ok(false);
        }
        match self.peek() {
            b'~' => self.ev.end_of_month = true,
            b'-' => {}
            _ => return Err("expected '-' between date fields".into()),
        }
        self.pos += 1;
        let second = self.chain(false)?;
        if matches!(self.peek(), 0 | b' ') {
            self.skip_spaces();
            self.ev.month = first;
            self.ev.day = second;
            return Ok(false);
        } else if self.ev.end_of_month {
            return Err("'~' may only stand between month and day".into());
        }
        match self.peek() {
            b'~' => self.ev.end_of_month = true,
            b'-' => {}
            _ => return Err("expected '-' between date fields".into()),
        }
        self.pos += 1;
        let third = self.chain(false)?;
        if !matches!(self.peek(), 0 | b' ') {
            return Err("expected a space after the date".into());
        }
        self.skip_spaces();
        self.ev.year = first;
        self.ev.month = second;
        self.ev.day = third;
        Ok(false)
    }

    fn time(&mut self) -> PResult<()> {
        if self.peek() == 0 {
            self.ev.hour = single(0);
            self.ev.minute = single(0);
            self.ev.second = single(0);
            return Ok(());
        }
        let h = self.chain(false)?;
        if self.peek() != b':' {
            return Err("expected ':' in the time (write HOUR:MINUTE[:SECOND])".into());
        }
        self.pos += 1;
        let m = self.chain(false)?;
        let s = if self.peek() == 0 {
            single(0)
        } else {
            if self.peek() != b':' {
                return Err("expected ':' before the seconds".into());
            }
            self.pos += 1;
            let s = self.chain(true)?;
            if self.peek() != 0 {
                return Err("unexpected text after the seconds".into());
            }
            s
        };
        self.ev.hour = h;
        self.ev.minute = m;
        self.ev.second = s;
        Ok(())
    }
}

/// Strips a trailing time zone (` UTC` in any case, or a valid IANA name after the last space).
fn split_zone(expr: &str) -> (&str, Zone) {
    let n = expr.len();
    if n >= 4
        && expr
            .as_bytes()
            .get(n - 4..)
            .is_some_and(|t| t.eq_ignore_ascii_case(b" UTC"))
    {
        return (expr.get(..n - 4).unwrap_or(""), Zone::Utc);
    }
    if let Some(sp) = expr.rfind(' ') {
        let name = expr.get(sp + 1..).unwrap_or("");
        if name == "UTC" {
            return (expr.get(..sp).unwrap_or(""), Zone::Utc);
        }
        if let Some(tz) = crate::tz::zone_by_name(name) {
            return (
                expr.get(..sp).unwrap_or(""),
                Zone::Named(name.to_string(), tz),
            );
        }
    }
    (expr, Zone::Local)
}

pub(crate) fn parse(expr: &str) -> PResult<CalendarEvent> {
    let (body, zone) = split_zone(expr);
    if body.is_empty() {
        return Err("empty expression".into());
    }
    let mut p = Parser {
        s: body.as_bytes(),
        pos: 0,
        weekday_bits: 0,
        ev: CalendarEvent {
            weekdays: None,
            year: Vec::new(),
            month: Vec::new(),
            day: Vec::new(),
            hour: Vec::new(),
            minute: Vec::new(),
            second: Vec::new(),
            end_of_month: false,
            zone,
        },
    };
    if let Some((_, kw)) = KEYWORDS.iter().find(|(k, _)| body.eq_ignore_ascii_case(k)) {
        let ev = &mut p.ev;
        ev.second = single(0);
        let midnight = |ev: &mut CalendarEvent| {
            ev.hour = single(0);
            ev.minute = single(0);
        };
        match kw {
            Keyword::Minutely => {}
            Keyword::Hourly => ev.minute = single(0),
            Keyword::Daily => midnight(ev),
            Keyword::Monthly => {
                midnight(ev);
                ev.day = single(1);
            }
            Keyword::Yearly => {
                midnight(ev);
                ev.day = single(1);
                ev.month = single(1);
            }
            Keyword::Weekly => {
                midnight(ev);
                p.weekday_bits = 1;
            }
            Keyword::Quarterly => {
                midnight(ev);
                ev.day = single(1);
                ev.month = [1, 4, 7, 10].iter().flat_map(|m| single(*m)).collect();
            }
            Keyword::Semiannually => {
                midnight(ev);
                ev.day = single(1);
                ev.month = [1, 7].iter().flat_map(|m| single(*m)).collect();
            }
        }
    } else {
        p.weekdays()?;
        if !p.date()? {
            p.time()?;
        }
        if p.peek() != 0 {
            return Err(format!(
                "unexpected {:?}",
                String::from_utf8_lossy(p.s.get(p.pos..).unwrap_or(&[]))
            ));
        }
    }
    let mut ev = p.ev;
    if p.weekday_bits > 0 && p.weekday_bits < ALL_WEEKDAYS {
        ev.weekdays = Some(p.weekday_bits as u8);
    }
    normalize(&mut ev);
    validate(&ev)?;
    Ok(ev)
}

fn normalize(ev: &mut CalendarEvent) {
    if ev.end_of_month && ev.day.is_empty() {
        ev.end_of_month = false;
    }
    for c in &mut ev.year {
        for v in std::iter::once(&mut c.start).chain(c.stop.as_mut()) {
            if (0..70).contains(v) {
                *v += 2000;
            } else if (70..100).contains(v) {
                *v += 1900;
            }
        }
    }
    for chain in [
        &mut ev.year,
        &mut ev.month,
        &mut ev.day,
        &mut ev.hour,
        &mut ev.minute,
        &mut ev.second,
    ] {
        normalize_chain(chain);
    }
}

/// Shortens ranges to a multiple of their repetition, turns one-value ranges into values,
/// sorts and removes duplicates.
fn normalize_chain(chain: &mut Vec<Component>) {
    for c in chain.iter_mut() {
        if let Some(stop) = c.stop
            && stop > c.start
            && c.repeat > 0
        {
            c.stop = Some(stop - (stop - c.start) % c.repeat);
        }
        let stop = c.stop.unwrap_or(-1);
        if (stop > c.start && c.repeat > 0 && c.start + c.repeat > stop) || c.start == stop {
            c.repeat = 0;
            c.stop = None;
        }
    }
    chain.sort();
    chain.dedup();
}

fn validate(ev: &CalendarEvent) -> PResult<()> {
    check_chain(&ev.year, MIN_YEAR, MAX_YEAR, false, "year")?;
    check_chain(&ev.month, 1, 12, false, "month")?;
    check_chain(&ev.day, 1, 31, ev.end_of_month, "day")?;
    check_chain(&ev.hour, 0, 23, false, "hour")?;
    check_chain(&ev.minute, 0, 59, false, "minute")?;
    check_chain(&ev.second, 0, 60 * USEC - 1, false, "second")
}

fn check_chain(chain: &[Component], from: i64, to: i64, eom: bool, what: &str) -> PResult<()> {
    let (show_from, show_to, unit) = if what == "second" {
        (from / USEC, (to + 1) / USEC - 1, USEC)
    } else {
        (from, if eom { to - 3 } else { to }, 1)
    };
    let bad = |why: &str| {
        Err(format!(
            "{what} out of range: {why} (allowed {show_from}..{show_to}{})",
            if eom {
                " from the end of the month; as in systemd, each further '~' value must stay 3 below the limit of the previous one"
            } else {
                ""
            }
        ))
    };
    let mut to = to;
    for c in chain {
        // systemd lowers the limit by 3 for every value of a '~' list (in sorted order),
        // so "~16,28" is refused while "~16,17" is accepted; we follow it.
        if eom {
            to -= 3;
        }
        if c.start < from || c.start > to {
            return bad(&format!("{}", c.start / unit));
        }
        if c.repeat > to - from {
            return bad(&format!("repetition /{}", c.repeat / unit));
        }
        match c.stop {
            Some(stop) => {
                if stop < from || stop > to {
                    return bad(&format!("{}", stop / unit));
                }
                if c.start + c.repeat > stop {
                    return bad(&format!(
                        "range {}..{} ends before it starts or repeats",
                        c.start / unit,
                        stop / unit
                    ));
                }
            }
            None => {
                if eom && c.start - c.repeat < from {
                    return bad(&format!("~{}/{}", c.start, c.repeat));
                }
                if !eom && c.start + c.repeat > to {
                    return bad(&format!(
                        "{}/{} never repeats",
                        c.start / unit,
                        c.repeat / unit
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_and_simple_forms() {
        let ev = parse("weekly").unwrap();
        assert_eq!(ev.weekdays, Some(1));
        assert_eq!(ev.hour, single(0));
        let ev = parse("Mon..Fri *:00").unwrap();
        assert_eq!(ev.weekdays, Some(0b11111));
        assert!(ev.hour.is_empty());
        assert_eq!(ev.minute, single(0));
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(parse("Fri..Mon").unwrap_err().contains("backwards"));
        assert!(parse("*:0/0").unwrap_err().contains("repetition"));
        assert!(parse("").is_err());
        assert!(parse("25:00").unwrap_err().contains("hour"));
    }

    #[test]
    fn two_digit_years_and_ranges() {
        let ev = parse("12-01-01").unwrap();
        assert_eq!(ev.year, single(2012));
        let ev = parse("*-1..12/3-1").unwrap();
        assert_eq!(
            ev.month,
            vec![Component {
                start: 1,
                stop: Some(10),
                repeat: 3
            }]
        );
    }
}
