//! Next elapse, computed the way systemd's `calendar_spec_next_usec` does it: a search over
//! broken-down local time, normalised through an emulation of libc's `mktime` (including
//! how glibc resolves times that a daylight-saving change makes ambiguous or skips).

use chrono::{DateTime, Utc};

use crate::parse::{MAX_YEAR, USEC};
use crate::tz::ZoneRef;
use crate::{CalendarEvent, Component, Tz, Zone};

/// systemd gives up after this many rounds (an expression that never matches, e.g. a
/// weekday that never falls on the listed dates within the year range).
const MAX_ITERATIONS: usize = 1000;

/// Broken-down time like `struct tm`, with the full year and a 0-based month. Fields may
/// be out of range until normalised.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tm {
    pub(crate) year: i64,
    pub(crate) mon: i64,
    pub(crate) mday: i64,
    pub(crate) hour: i64,
    pub(crate) min: i64,
    pub(crate) sec: i64,
    pub(crate) wday: i64,
    /// `tm_isdst` as a UTC offset: `Some` when the fields came from a real instant, `None`
    /// when unknown (`-1`).
    pub(crate) offset: Option<i32>,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (month 1-based).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`]: (year, month 1-based, day).
pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `mktime`/`timegm` and `localtime`/`gmtime` for one zone, remembering the last offset
/// the way glibc's `mktime` does (it seeds the next ambiguous-time resolution).
pub(crate) struct Clock {
    zone: ZoneRef,
    hint: i32,
}

impl Clock {
    pub(crate) fn new(zone: ZoneRef) -> Clock {
        Clock { zone, hint: 0 }
    }

    /// Broken-down local time of an instant.
    pub(crate) fn localtime(&mut self, t: i64) -> Option<Tm> {
        let off = self.zone.offset_at(t)?;
        Some(fields(t + i64::from(off), off))
    }

    /// Normalises `tm` in place and returns its instant (seconds since the epoch).
    pub(crate) fn mktime(&mut self, tm: &mut Tm) -> Option<i64> {
        let months = tm.year.checked_mul(12)?.checked_add(tm.mon)?;
        let (y, m) = (months.div_euclid(12), months.rem_euclid(12));
        if !(-200_000..=200_000).contains(&y) {
            return None;
        }
        let days = days_from_civil(y, m + 1, 1).checked_add(tm.mday.checked_sub(1)?)?;
        let local = days
            .checked_mul(86_400)?
            .checked_add(tm.hour.checked_mul(3600)?)?
            .checked_add(tm.min.checked_mul(60)?)?
            .checked_add(tm.sec)?;
        let t = match self.zone {
            ZoneRef::Utc => local,
            _ => self.resolve(local, tm.offset)?,
        };
        let off = self.zone.offset_at(t)?;
        self.hint = off;
        *tm = fields(t + i64::from(off), off);
        Some(t)
    }

    /// The instant of a local time, as glibc's `mktime` finds it.
    ///
    /// * A requested offset (a `tm_isdst` that came from a real instant) is honoured even
    ///   when the fields now lie on the other side of a daylight-saving change: glibc then
    ///   uses the offset of the nearest time that has it. systemd relies on this (and can
    ///   be sent backwards by it), so we do the same.
    /// * Otherwise the last offset used decides between the two instants of an ambiguous
    ///   time, and a time skipped by a change is moved forward by the size of the gap.
    fn resolve(&self, local: i64, requested: Option<i32>) -> Option<i64> {
        let guess = requested.unwrap_or(self.hint);
        let o1 = self.zone.offset_at(local - i64::from(guess))?;
        let natural = if self.zone.offset_at(local - i64::from(o1))? == o1 {
            local - i64::from(o1)
        } else {
            let o2 = self.zone.offset_at(local - i64::from(o1))?;
            if self.zone.offset_at(local - i64::from(o2))? == o2 {
                local - i64::from(o2)
            } else {
                // In a gap: not affected by a requested offset (glibc's oscillation case).
                return Some(local - i64::from(o1.min(o2)));
            }
        };
        match requested {
            Some(req) if self.zone.offset_at(natural)? != req => Some(
                self.nearest_with_offset(natural, req)
                    .map_or(natural, |_| local - i64::from(req)),
            ),
            _ => Some(natural),
        }
    }

    /// Whether the zone uses offset `off` within glibc's search window around `t` (probes
    /// a week apart, about 3.8 years each way).
    fn nearest_with_offset(&self, t: i64, off: i32) -> Option<i64> {
        const STRIDE: i64 = 601_200;
        const BOUND: i64 = 238_579_200 / 2 + STRIDE;
        let mut delta = STRIDE;
        while delta < BOUND {
            for ot in [t - delta, t + delta] {
                if self.zone.offset_at(ot) == Some(off) {
                    return Some(ot);
                }
            }
            delta += STRIDE;
        }
        None
    }
}

fn fields(local: i64, off: i32) -> Tm {
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    Tm {
        year: y,
        mon: m - 1,
        mday: d,
        hour: secs / 3600,
        min: secs % 3600 / 60,
        sec: secs % 60,
        wday: (days + 4).rem_euclid(7),
        offset: Some(off),
    }
}

/// Which unit of a `Tm` (used by the step that re-checks normalisation).
struct Search<'a> {
    ev: &'a CalendarEvent,
    clock: Clock,
}

enum Bounds {
    Good,
    Normalized,
    Error,
}

impl Search<'_> {
    fn end_of_month(&mut self, tm: &Tm, day: i64) -> i64 {
        let mut t = *tm;
        t.mon += 1;
        t.mday = 1 - day;
        match self.clock.mktime(&mut t) {
            Some(_) if t.mon == tm.mon => t.mday,
            _ => -1,
        }
    }

    /// The earliest value >= `*val` that one of the chain's components allows.
    /// `Some(true)` if `*val` changed, `Some(false)` if it already matched, `None` if
    /// nothing matches.
    fn matching(
        &mut self,
        chain: &[Component],
        is_day: bool,
        tm: &Tm,
        val: &mut i64,
    ) -> Option<bool> {
        if chain.is_empty() {
            return Some(false);
        }
        let eom = self.ev.end_of_month && is_day;
        let mut best: Option<i64> = None;
        for c in chain {
            let (mut start, mut stop) = (c.start, c.stop.unwrap_or(-1));
            if eom {
                start = self.end_of_month(tm, start);
                stop = self.end_of_month(tm, stop);
                if stop > 0 {
                    std::mem::swap(&mut start, &mut stop);
                }
            }
            if start >= *val {
                if best.is_none_or(|d| start < d) {
                    best = Some(start);
                }
            } else if c.repeat > 0 {
                let k = start + c.repeat * (*val - start + c.repeat - 1).div_euclid(c.repeat);
                if best.is_none_or(|d| k < d) && (stop < 0 || k <= stop) {
                    best = Some(k);
                }
            }
        }
        let d = best?;
        let changed = *val != d;
        *val = d;
        Some(changed)
    }

    fn within_bounds(&mut self, tm: &mut Tm) -> Bounds {
        if tm.year > MAX_YEAR {
            return Bounds::Error;
        }
        let mut t = *tm;
        if self.clock.mktime(&mut t).is_none() {
            return Bounds::Error;
        }
        use std::cmp::Ordering;
        let mut cmp = t.year.cmp(&tm.year);
        if cmp != Ordering::Equal {
            t.mon = 0;
        } else {
            cmp = t.mon.cmp(&tm.mon);
            if cmp != Ordering::Equal {
                t.mday = 1;
            } else {
                cmp = t.mday.cmp(&tm.mday);
                if cmp != Ordering::Equal {
                    t.hour = 0;
                } else {
                    cmp = t.hour.cmp(&tm.hour);
                    if cmp != Ordering::Equal {
                        t.min = 0;
                    } else {
                        cmp = t.min.cmp(&tm.min);
                        if cmp != Ordering::Equal {
                            t.sec = 0;
                        } else {
                            cmp = t.sec.cmp(&tm.sec);
                        }
                    }
                }
            }
        }
        match cmp {
            Ordering::Less => Bounds::Error,
            Ordering::Greater => {
                *tm = t;
                Bounds::Normalized
            }
            Ordering::Equal => Bounds::Good,
        }
    }

    fn matches_weekday(&mut self, tm: &Tm) -> bool {
        let Some(bits) = self.ev.weekdays else {
            return true;
        };
        let mut t = *tm;
        if self.clock.mktime(&mut t).is_none() {
            return false;
        }
        let k = if t.wday == 0 { 6 } else { t.wday - 1 };
        bits & (1 << k) != 0
    }

    /// systemd's `find_next`: the first matching time at or after `c` + `usec`.
    fn find_next(&mut self, mut c: Tm, mut usec: i64) -> Option<(Tm, i64)> {
        let ev = self.ev;
        for _ in 0..MAX_ITERATIONS {
            let _ = self.clock.mktime(&mut c);
            c.offset = None;

            let mut year = c.year;
            let r = self.matching(&ev.year, false, &c, &mut year)?;
            c.year = year;
            if r {
                c.mon = 0;
                c.mday = 1;
                (c.hour, c.min, c.sec, usec) = (0, 0, 0, 0);
            }
            if !matches!(self.within_bounds(&mut c), Bounds::Good) {
                return None;
            }

            let mut mon = c.mon + 1;
            let r = self.matching(&ev.month, false, &c, &mut mon);
            c.mon = mon - 1;
            if r == Some(true) {
                c.mday = 1;
                (c.hour, c.min, c.sec, usec) = (0, 0, 0, 0);
            }
            match r.map(|_| self.within_bounds(&mut c)) {
                None | Some(Bounds::Error) => {
                    c.year += 1;
                    c.mon = 0;
                    c.mday = 1;
                    (c.hour, c.min, c.sec, usec) = (0, 0, 0, 0);
                    continue;
                }
                Some(Bounds::Normalized) => continue,
                Some(Bounds::Good) => {}
            }

            let mut mday = c.mday;
            let r = self.matching(&ev.day, true, &c, &mut mday);
            c.mday = mday;
            if r == Some(true) {
                (c.hour, c.min, c.sec, usec) = (0, 0, 0, 0);
            }
            match r.map(|_| self.within_bounds(&mut c)) {
                None | Some(Bounds::Error) => {
                    c.mon += 1;
                    c.mday = 1;
                    (c.hour, c.min, c.sec, usec) = (0, 0, 0, 0);
                    continue;
                }
                Some(Bounds::Normalized) => continue,
                Some(Bounds::Good) => {}
            }

            if !self.matches_weekday(&c) {
                c.mday += 1;
                (c.hour, c.min, c.sec, usec) = (0, 0, 0, 0);
                continue;
            }

            let mut hour = c.hour;
            let r = self.matching(&ev.hour, false, &c, &mut hour);
            c.hour = hour;
            if r == Some(true) {
                (c.min, c.sec, usec) = (0, 0, 0);
            }
            match r.map(|_| self.within_bounds(&mut c)) {
                None | Some(Bounds::Error) => {
                    c.mday += 1;
                    (c.hour, c.min, c.sec, usec) = (0, 0, 0, 0);
                    continue;
                }
                Some(Bounds::Normalized) => continue,
                Some(Bounds::Good) => {}
            }

            let mut min = c.min;
            let r = self.matching(&ev.minute, false, &c, &mut min);
            c.min = min;
            if r == Some(true) {
                (c.sec, usec) = (0, 0);
            }
            match r.map(|_| self.within_bounds(&mut c)) {
                None | Some(Bounds::Error) => {
                    c.hour += 1;
                    (c.min, c.sec, usec) = (0, 0, 0);
                    continue;
                }
                Some(Bounds::Normalized) => continue,
                Some(Bounds::Good) => {}
            }

            let mut us = c.sec * USEC + usec;
            let r = self.matching(&ev.second, false, &c, &mut us);
            usec = us % USEC;
            c.sec = us / USEC;
            match r.map(|_| self.within_bounds(&mut c)) {
                None | Some(Bounds::Error) => {
                    c.min += 1;
                    (c.sec, usec) = (0, 0);
                    continue;
                }
                Some(Bounds::Normalized) => continue,
                Some(Bounds::Good) => {}
            }
            return Some((c, usec));
        }
        None
    }
}

/// The zone an expression is evaluated in.
pub(crate) fn eval_zone(ev: &CalendarEvent, local_tz: &Tz) -> ZoneRef {
    match &ev.zone {
        Zone::Local => local_tz.zone(),
        Zone::Utc => ZoneRef::Utc,
        Zone::Named(_, t) => ZoneRef::Named(*t),
    }
}

pub(crate) fn next_after(
    ev: &CalendarEvent,
    after: DateTime<Utc>,
    local_tz: &Tz,
) -> Option<DateTime<Utc>> {
    let usec = after.timestamp_micros().checked_add(1)?;
    let t = usec.div_euclid(USEC);
    let mut search = Search {
        ev,
        clock: Clock::new(eval_zone(ev, local_tz)),
    };
    let tm = search.clock.localtime(t)?;
    let (mut tm, us) = search.find_next(tm, usec.rem_euclid(USEC))?;
    let t = search.clock.mktime(&mut tm)?;
    DateTime::from_timestamp_micros(t.checked_mul(USEC)?.checked_add(us)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for d in [-1_000_000, -1, 0, 1, 59, 60, 10_957, 19_723, 2_000_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(days_from_civil(2024, 1, 1), 19_723);
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn simple_next() {
        let ev = CalendarEvent::parse("Mon..Fri *:00").unwrap();
        let n = ev.next_after(at("2024-01-01T00:00:00Z"), &Tz::Utc).unwrap();
        assert_eq!(n, at("2024-01-01T01:00:00Z"));
        let ev = CalendarEvent::parse("*-02~03").unwrap();
        let n = ev.next_after(at("2026-11-26T00:00:00Z"), &Tz::Utc).unwrap();
        assert_eq!(n, at("2027-02-26T00:00:00Z"));
        let ev = CalendarEvent::parse("*-02-30").unwrap();
        assert_eq!(ev.next_after(at("2024-01-01T00:00:00Z"), &Tz::Utc), None);
    }

    #[test]
    fn dst_gap_is_skipped_and_first_of_repeated_hour_is_used() {
        let paris = Tz::named("Europe/Paris").unwrap();
        let ev = CalendarEvent::parse("*-*-* 02:30").unwrap();
        let n = ev.next_after(at("2024-03-30T12:00:00Z"), &paris).unwrap();
        assert_eq!(n, at("2024-04-01T00:30:00Z"));
        let n = ev.next_after(at("2024-10-26T12:00:00Z"), &paris).unwrap();
        assert_eq!(n, at("2024-10-27T00:30:00Z"));
        let n = ev.next_after(at("2024-10-27T01:10:00Z"), &paris).unwrap();
        assert_eq!(n, at("2024-10-27T01:30:00Z"));
    }
}
