//! restic's calendar durations for `--keep-within*` (`1y5m7d2h`: years, **months**, days,
//! hours) and the cutoff computation `latest.AddDate(-y, -m, -d).Add(-h hours)` with Go's
//! date normalisation and time-zone handling.

use crate::{EngineError, Result};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
use std::fmt;

/// A restic `Duration`: calendar years, months, days and hours (no minutes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PolicyDuration {
    /// Years.
    pub years: i64,
    /// Months (`m` is months, not minutes).
    pub months: i64,
    /// Days.
    pub days: i64,
    /// Hours.
    pub hours: i64,
}

impl PolicyDuration {
    /// restic's `Zero()`: every component is 0 (the rule is off).
    pub fn is_zero(&self) -> bool {
        self.years == 0 && self.months == 0 && self.days == 0 && self.hours == 0
    }

    /// True if any component is negative (restic rejects such `--keep-within*` values).
    pub fn is_negative(&self) -> bool {
        self.years < 0 || self.months < 0 || self.days < 0 || self.hours < 0
    }

    /// restic's `ParseDuration`: `<int><unit>` repeated, units `y`, `m`, `d`, `h`; a later
    /// unit overwrites an earlier one of the same kind; surrounding whitespace is ignored;
    /// the empty string is the zero duration.
    pub fn parse(s: &str) -> Result<PolicyDuration> {
        let mut d = PolicyDuration::default();
        let mut rest = s.trim();
        while !rest.is_empty() {
            let (negative, body) = match rest.strip_prefix('-') {
                Some(b) => (true, b),
                None => (false, rest),
            };
            let digits = body.bytes().take_while(u8::is_ascii_digit).count();
            let (num, after) = body.split_at(digits);
            if num.is_empty() {
                return Err(EngineError::Invalid(format!(
                    "invalid duration {s:?}: no number found"
                )));
            }
            let mut n: i64 = num.parse().map_err(|_| {
                EngineError::Invalid(format!("invalid duration {s:?}: number {num} too large"))
            })?;
            if negative {
                n = -n;
            }
            let mut chars = after.chars();
            let unit = chars.next().ok_or_else(|| {
                EngineError::Invalid(format!(
                    "invalid duration {s:?}: no unit found after number {n}"
                ))
            })?;
            match unit {
                'y' => d.years = n,
                'm' => d.months = n,
                'd' => d.days = n,
                'h' => d.hours = n,
                c => {
                    return Err(EngineError::Invalid(format!(
                        "invalid duration {s:?}: invalid unit {c:?} found after number {n}"
                    )));
                }
            }
            rest = chars.as_str();
        }
        Ok(d)
    }

    /// The instant `latest` − this duration, computed like restic:
    /// `latest.AddDate(-years, -months, -days).Add(-hours)`. `AddDate` works on the wall
    /// clock of `latest` (normalising e.g. March 31 − 1 month to March 3) in `latest`'s
    /// location: Go parses a snapshot time whose offset equals the local zone's offset at
    /// that instant into the *local* zone, so the new wall clock is then resolved in the
    /// local zone (`local_offset`: seconds east of UTC of the local zone at a Unix time),
    /// otherwise in the recorded fixed offset. Returns Unix nanoseconds; `None` if the result
    /// is outside the representable range (then it lies before every snapshot).
    pub fn cutoff(
        &self,
        latest: DateTime<FixedOffset>,
        local_offset: &dyn Fn(i64) -> i32,
    ) -> Option<i128> {
        let naive = latest.naive_local();
        let shifted = add_date(naive, -self.years, -self.months, -self.days)?;
        let offset = latest.offset().local_minus_utc();
        let is_local = offset != 0 && local_offset(latest.timestamp()) == offset;
        let wall_unix = shifted.and_utc().timestamp();
        let unix = if is_local {
            go_local_unix(wall_unix, local_offset)
        } else {
            wall_unix.checked_sub(i64::from(offset))?
        };
        let nanos = i128::from(unix) * 1_000_000_000
            + i128::from(shifted.and_utc().timestamp_subsec_nanos());
        let hours = i128::from(self.hours).checked_mul(3_600_000_000_000)?;
        nanos.checked_sub(hours)
    }
}

/// Go's `Date` normalisation for `AddDate`: months outside 1…12 carry into years, days
/// outside the month carry into months; the time of day is unchanged.
fn add_date(t: NaiveDateTime, years: i64, months: i64, days: i64) -> Option<NaiveDateTime> {
    let month0 = i64::from(t.month0()).checked_add(months)?;
    let year = i64::from(t.year())
        .checked_add(years)?
        .checked_add(month0.div_euclid(12))?;
    let month = u32::try_from(month0.rem_euclid(12) + 1).ok()?;
    let first = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, 1)?;
    let day_offset = i64::from(t.day()).checked_sub(1)?.checked_add(days)?;
    let date = first.checked_add_signed(chrono::TimeDelta::try_days(day_offset)?)?;
    Some(date.and_time(t.time()))
}

/// Go's `Date` in a zone with transitions: guess the offset at the wall-clock time read as
/// UTC; if it is non-zero, correct it with the offset in effect at the resulting instant.
fn go_local_unix(wall_unix: i64, local_offset: &dyn Fn(i64) -> i32) -> i64 {
    let first = local_offset(wall_unix);
    if first == 0 {
        return wall_unix;
    }
    let utc = wall_unix - i64::from(first);
    wall_unix - i64::from(local_offset(utc))
}

/// The system's local zone offset at a Unix time (the zone Go uses for `Local`: `TZ`, else
/// `/etc/localtime`).
pub fn system_local_offset(unix: i64) -> i32 {
    match DateTime::from_timestamp(unix, 0) {
        Some(utc) => chrono::Local
            .offset_from_utc_datetime(&utc.naive_utc())
            .local_minus_utc(),
        None => 0,
    }
}

impl fmt::Display for PolicyDuration {
    /// restic's `String()`: `1y5m7d2h`, zero components omitted (zero duration = "").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (v, unit) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if v != 0 {
                write!(f, "{v}{unit}")?;
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for PolicyDuration {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<PolicyDuration> {
        PolicyDuration::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_repo::gotime::GoTime;

    fn d(y: i64, m: i64, dd: i64, h: i64) -> PolicyDuration {
        PolicyDuration {
            years: y,
            months: m,
            days: dd,
            hours: h,
        }
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(PolicyDuration::parse("1y5m7d2h").unwrap(), d(1, 5, 7, 2));
        assert_eq!(PolicyDuration::parse(" 2d ").unwrap(), d(0, 0, 2, 0));
        assert_eq!(PolicyDuration::parse("").unwrap(), d(0, 0, 0, 0));
        assert_eq!(PolicyDuration::parse("3d1d").unwrap(), d(0, 0, 1, 0));
        assert_eq!(PolicyDuration::parse("-1y").unwrap(), d(-1, 0, 0, 0));
        assert_eq!(PolicyDuration::parse("1h2y").unwrap(), d(2, 0, 0, 1));
        for bad in [
            "5",
            "y",
            "1x",
            "1d5",
            "--1d",
            "1 d",
            "99999999999999999999y",
        ] {
            assert!(PolicyDuration::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(d(1, 5, 7, 2).to_string(), "1y5m7d2h");
        assert_eq!(d(0, 1, 3, 0).to_string(), "1m3d");
        assert_eq!(d(0, 0, 0, 0).to_string(), "");
        assert!(d(0, 0, 0, 0).is_zero());
        assert!(!d(0, 0, 0, 1).is_zero());
        assert!(d(0, -1, 0, 1).is_negative());
    }

    fn utc(_: i64) -> i32 {
        0
    }

    fn at(s: &str) -> DateTime<FixedOffset> {
        GoTime::parse(s).unwrap().0
    }

    fn nanos(s: &str) -> i128 {
        GoTime::parse(s).unwrap().unix_nanos()
    }

    #[test]
    fn cutoff_uses_go_adddate_normalisation() {
        // March 31 − 1 month = "February 31" = March 3 (2022 is no leap year).
        let c = d(0, 1, 0, 0).cutoff(at("2022-03-31T12:00:00Z"), &utc);
        assert_eq!(c, Some(nanos("2022-03-03T12:00:00Z")));
        // Leap year: 2020-03-31 − 1 month = Feb 31 = March 2.
        let c = d(0, 1, 0, 0).cutoff(at("2020-03-31T12:00:00Z"), &utc);
        assert_eq!(c, Some(nanos("2020-03-02T12:00:00Z")));
        // Days then hours, across a year boundary; wall clock of the recorded offset.
        let c = d(1, 0, 3, 2).cutoff(at("2021-01-02T01:00:00.5+05:00"), &utc);
        assert_eq!(c, Some(nanos("2019-12-29T23:00:00.5+05:00")));
        // Months carry into years.
        let c = d(0, 14, 0, 0).cutoff(at("2022-01-15T00:00:00Z"), &utc);
        assert_eq!(c, Some(nanos("2020-11-15T00:00:00Z")));
        // Absurd durations fall outside the range: no cutoff.
        assert_eq!(
            d(i64::MAX, 0, 0, 0).cutoff(at("2022-01-15T00:00:00Z"), &utc),
            None
        );
    }

    /// A fake "Berlin" zone: +01:00, +02:00 from 2022-03-27T01:00Z to 2022-10-30T01:00Z.
    fn berlin(unix: i64) -> i32 {
        let start = nanos("2022-03-27T01:00:00Z") / 1_000_000_000;
        let end = nanos("2022-10-30T01:00:00Z") / 1_000_000_000;
        if (start as i64..end as i64).contains(&unix) {
            7200
        } else {
            3600
        }
    }

    #[test]
    fn cutoff_in_local_zone_follows_dst_like_go() {
        // latest carries +02:00, which is the local offset then: Go treats it as Local, so
        // 7 days earlier is 08:00 local time in winter (+01:00).
        let latest = at("2022-03-31T08:00:00+02:00");
        let c = d(0, 0, 7, 0).cutoff(latest, &berlin);
        assert_eq!(c, Some(nanos("2022-03-24T08:00:00+01:00")));
        // With a zone that does not match, the fixed offset is kept.
        let c = d(0, 0, 7, 0).cutoff(latest, &utc);
        assert_eq!(c, Some(nanos("2022-03-24T08:00:00+02:00")));
        // Hours are plain elapsed time after the calendar step.
        let c = d(0, 0, 7, 3).cutoff(latest, &berlin);
        assert_eq!(c, Some(nanos("2022-03-24T05:00:00+01:00")));
        // A wall-clock time inside the spring-forward gap (02:30 does not exist): Go's guess
        // (+02:00) is corrected with the offset before the gap (+01:00).
        let c = d(0, 0, 4, 0).cutoff(at("2022-03-31T02:30:00+02:00"), &berlin);
        assert_eq!(c, Some(nanos("2022-03-27T02:30:00+01:00")));
    }
}
