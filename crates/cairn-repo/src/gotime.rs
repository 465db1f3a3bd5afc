//! Go `time.Time` as restic stores it: RFC 3339 with nanoseconds and the writer's local UTC
//! offset (spec §9).
//!
//! The recorded offset is kept on parse and reproduced on format. Equality and ordering are by
//! instant (two values at the same instant in different offsets compare equal); use
//! [`GoTime::format`] to compare representations.

use chrono::{DateTime, Datelike, FixedOffset, Local, NaiveDate, NaiveDateTime, Offset, TimeZone};
use chrono::{Timelike, Utc};
use std::fmt;

/// A timestamp with nanosecond precision and a fixed UTC offset, encoded like Go's
/// `time.Time` JSON form (`2021-03-04T06:06:07.123456789+01:00`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoTime(pub DateTime<FixedOffset>);

/// Highest and lowest year restic writes (it adjusts node times outside the range).
const MAX_YEAR: i32 = 9999;
const MIN_YEAR: i32 = 0;

impl Default for GoTime {
    fn default() -> Self {
        GoTime::zero()
    }
}

impl GoTime {
    /// Go's zero time, `0001-01-01T00:00:00Z`.
    pub fn zero() -> GoTime {
        let naive = NaiveDate::from_ymd_opt(1, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .unwrap_or(NaiveDateTime::MIN);
        GoTime(naive.and_utc().fixed_offset())
    }

    /// True for Go's zero time (`time.Time.IsZero`).
    pub fn is_zero(&self) -> bool {
        *self == GoTime::zero()
    }

    /// The current time in the local offset.
    pub fn now() -> GoTime {
        GoTime(Local::now().fixed_offset())
    }

    /// A Unix time (seconds + nanoseconds; nanoseconds ≥ 10⁹ carry into seconds) in the local
    /// offset in effect at that instant, like Go's `time.Unix`. Years outside 0…9999 are
    /// clamped the way restic does (only the year changes).
    pub fn from_unix(secs: i64, nanos: u32) -> GoTime {
        let utc = utc_from_unix(secs, nanos);
        let offset = Local.offset_from_utc_datetime(&utc.naive_utc()).fix();
        clamp_year(utc.with_timezone(&offset), true)
    }

    /// Like [`GoTime::from_unix`] but in a fixed offset (seconds east of UTC; an invalid
    /// offset means UTC). Deterministic, for tests and for reproducing recorded offsets.
    pub fn from_unix_with_offset(secs: i64, nanos: u32, offset_secs: i32) -> GoTime {
        let utc = utc_from_unix(secs, nanos);
        let offset = FixedOffset::east_opt(offset_secs).unwrap_or(Utc.fix());
        clamp_year(utc.with_timezone(&offset), false)
    }

    /// Nanoseconds since the Unix epoch.
    pub fn unix_nanos(&self) -> i128 {
        i128::from(self.0.timestamp()) * 1_000_000_000
            + i128::from(self.0.timestamp_subsec_nanos().min(999_999_999))
    }

    /// Seconds since the Unix epoch and the nanosecond part (0…999 999 999).
    pub fn unix(&self) -> (i64, u32) {
        (
            self.0.timestamp(),
            self.0.timestamp_subsec_nanos().min(999_999_999),
        )
    }

    /// Offset east of UTC in seconds.
    pub fn offset_secs(&self) -> i32 {
        self.0.offset().local_minus_utc()
    }

    /// Go's `RFC3339Nano` format: fraction with trailing zeros removed (omitted when zero),
    /// `Z` for a zero offset, otherwise `±hh:mm`.
    pub fn format(&self) -> String {
        let mut out = Vec::with_capacity(35);
        self.write_to(&mut out);
        // Only ASCII digits and separators are written.
        String::from_utf8(out).unwrap_or_default()
    }

    /// Appends [`GoTime::format`]'s text (ASCII) to `out` without allocating.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let d = self.0.naive_local();
        let year = d.year();
        if year < 0 {
            out.push(b'-');
        }
        push_num(out, year.unsigned_abs(), 4);
        out.push(b'-');
        push_num(out, d.month(), 2);
        out.push(b'-');
        push_num(out, d.day(), 2);
        out.push(b'T');
        push_num(out, d.hour(), 2);
        out.push(b':');
        push_num(out, d.minute(), 2);
        out.push(b':');
        push_num(out, d.second(), 2);
        let mut nanos = d.nanosecond().min(999_999_999);
        if nanos != 0 {
            let mut digits = 9;
            while nanos.is_multiple_of(10) {
                nanos /= 10;
                digits -= 1;
            }
            out.push(b'.');
            push_num(out, nanos, digits);
        }
        let off = self.offset_secs();
        if off == 0 {
            out.push(b'Z');
        } else {
            // Go truncates a seconds component of the offset.
            let mut zone = off / 60;
            if zone < 0 {
                out.push(b'-');
                zone = -zone;
            } else {
                out.push(b'+');
            }
            push_num(out, (zone / 60).unsigned_abs(), 2);
            out.push(b':');
            push_num(out, (zone % 60).unsigned_abs(), 2);
        }
    }

    /// Parses RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|±hh:mm)`), keeping the offset.
    /// Fractions longer than 9 digits are truncated, like Go.
    pub fn parse(s: &str) -> Result<GoTime, String> {
        parse_rfc3339(s.as_bytes()).ok_or_else(|| format!("invalid RFC 3339 time {s:?}"))
    }
}

/// Appends `v` in decimal, zero-padded to at least `width` digits.
fn push_num(out: &mut Vec<u8>, v: u32, width: usize) {
    let mut buf = [b'0'; 10];
    let mut i = buf.len();
    let mut v = v;
    while v > 0 && i > 0 {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            // A single decimal digit.
            *slot = b'0' + (v % 10) as u8;
        }
        v /= 10;
    }
    let start = i.min(buf.len().saturating_sub(width));
    out.extend_from_slice(buf.get(start..).unwrap_or_default());
}

fn utc_from_unix(secs: i64, nanos: u32) -> DateTime<Utc> {
    // Stay far inside chrono's range (±262 143 years) so that adding any UTC offset cannot
    // overflow; such times are clamped to year 0 / 9999 afterwards anyway.
    const LIMIT: i64 = 200_000 * 366 * 86_400;
    let secs = secs
        .saturating_add(i64::from(nanos / 1_000_000_000))
        .clamp(-LIMIT, LIMIT);
    let nanos = nanos % 1_000_000_000;
    DateTime::from_timestamp(secs, nanos).unwrap_or_default()
}

/// restic's `fixTime`: move the year into 0…9999 (`AddDate(±n, 0, 0)`; Feb 29 of a
/// non-leap target year becomes Mar 1). With `local`, the offset is re-resolved for the new
/// date like Go does in the `Local` location.
fn clamp_year(t: DateTime<FixedOffset>, local: bool) -> GoTime {
    let year = t.year();
    let target = year.clamp(MIN_YEAR, MAX_YEAR);
    if target == year {
        return GoTime(t);
    }
    let naive = t.naive_local();
    let date = NaiveDate::from_ymd_opt(target, naive.month(), naive.day())
        .or_else(|| NaiveDate::from_ymd_opt(target, 3, 1))
        .unwrap_or(NaiveDate::MIN);
    let new_naive = date.and_time(naive.time());
    let offset = if local {
        Local
            .from_local_datetime(&new_naive)
            .earliest()
            .map(|d| d.offset().fix())
            .unwrap_or(*t.offset())
    } else {
        *t.offset()
    };
    match offset.from_local_datetime(&new_naive).single() {
        Some(d) => GoTime(d),
        None => GoTime(t),
    }
}

/// Byte-level RFC 3339 parser.
fn parse_rfc3339(b: &[u8]) -> Option<GoTime> {
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = b.get(range)?;
        let mut v = 0u32;
        for &d in digits {
            if !d.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(d - b'0');
        }
        Some(v)
    };
    let sep = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(sep(4, b'-') && sep(7, b'-') && sep(10, b'T') && sep(13, b':') && sep(16, b':')) {
        return None;
    }
    let year = i32::try_from(num(0..4)?).ok()?;
    let (month, day) = (num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if hour > 23 || min > 59 || sec > 59 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u32;
    if matches!(b.get(i), Some(b'.' | b',')) {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 9 {
                nanos = nanos * 10 + u32::from(*b.get(i)? - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..9 {
            nanos *= 10;
        }
    }
    let offset_secs: i32 = match b.get(i) {
        Some(b'Z') if b.len() == i + 1 => 0,
        Some(&c @ (b'+' | b'-')) if b.len() == i + 6 && sep(i + 3, b':') => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let v = i32::try_from(oh * 3600 + om * 60).ok()?;
            if c == b'-' { -v } else { v }
        }
        _ => return None,
    };
    let naive =
        NaiveDate::from_ymd_opt(year, month, day)?.and_hms_nano_opt(hour, min, sec, nanos)?;
    let offset = FixedOffset::east_opt(offset_secs)?;
    offset.from_local_datetime(&naive).single().map(GoTime)
}

impl fmt::Display for GoTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format())
    }
}

impl std::str::FromStr for GoTime {
    type Err = String;
    fn from_str(s: &str) -> Result<GoTime, String> {
        GoTime::parse(s)
    }
}

impl serde::Serialize for GoTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.format())
    }
}

impl<'de> serde::Deserialize<'de> for GoTime {
    /// A string in RFC 3339 form; `null` gives the zero time (Go leaves the value untouched).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<GoTime, D::Error> {
        match Option::<std::borrow::Cow<'de, str>>::deserialize(d)? {
            None => Ok(GoTime::zero()),
            Some(s) => GoTime::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_trims_fraction_and_keeps_offset() {
        let cases = [
            "2021-03-04T06:06:07+01:00",
            "2021-03-04T06:06:07.5+01:00",
            "2026-11-26T13:16:10.4504239+01:00",
            "2021-01-01T01:00:00.000000001+01:00",
            "2026-11-26T12:16:16.174182798Z",
            "2021-06-01T00:00:00-09:30",
            "0001-01-01T00:00:00Z",
            "0000-02-29T23:59:59.999999999+14:00",
            "9999-12-31T23:59:59.999999999-12:00",
        ];
        for c in cases {
            let t = GoTime::parse(c).unwrap();
            assert_eq!(t.format(), c);
            assert_eq!(t.to_string(), c);
        }
    }

    #[test]
    fn parse_variants_and_errors() {
        // +00:00 is written back as Z (like Go).
        let t = GoTime::parse("2021-03-04T05:06:07.100+00:00").unwrap();
        assert_eq!(t.format(), "2021-03-04T05:06:07.1Z");
        // More than 9 fraction digits are truncated; comma accepted.
        let t = GoTime::parse("2021-03-04T05:06:07,1234567891Z").unwrap();
        assert_eq!(t.format(), "2021-03-04T05:06:07.123456789Z");
        for bad in [
            "",
            "2021-03-04",
            "2021-03-04 05:06:07Z",
            "2021-02-30T05:06:07Z",
            "2021-03-04T24:00:00Z",
            "2021-03-04T05:06:60Z",
            "2021-03-04T05:06:07.Z",
            "2021-03-04T05:06:07",
            "2021-03-04T05:06:07+0100",
            "2021-03-04T05:06:07+01:00x",
            "2021-03-04T05:06:07Zx",
            "2021-13-04T05:06:07Z",
            "２021-03-04T05:06:07Z",
        ] {
            assert!(GoTime::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn unix_round_trip_and_ordering() {
        let t = GoTime::from_unix_with_offset(1614834367, 123456789, 3600);
        assert_eq!(t.format(), "2021-03-04T06:06:07.123456789+01:00");
        assert_eq!(t.unix(), (1614834367, 123456789));
        assert_eq!(t.unix_nanos(), 1614834367123456789);
        let u = GoTime::parse("2021-03-04T05:06:07.123456789Z").unwrap();
        assert_eq!(t, u, "equality is by instant");
        assert!(GoTime::parse("2021-03-04T06:06:07.1234567891+01:00").unwrap() <= t);
        assert!(GoTime::parse("2021-03-04T06:06:07.12345679+01:00").unwrap() > t);
        // Nanoseconds carry.
        let c = GoTime::from_unix_with_offset(10, 1_500_000_000, 0);
        assert_eq!(c.unix(), (11, 500_000_000));
        let local = GoTime::from_unix(1614834367, 5);
        assert_eq!(local.unix(), (1614834367, 5));
        assert_eq!(GoTime::default(), GoTime::zero());
        assert!(GoTime::zero().is_zero());
        assert!(!local.is_zero());
        assert_eq!(GoTime::zero().unix(), (-62135596800, 0));
    }

    #[test]
    fn years_are_clamped() {
        // Year 10000 and beyond → 9999, same month/day/time.
        let t = GoTime::from_unix_with_offset(253402300800 + 86400 * 40, 7, 0);
        assert_eq!(t.format(), "9999-02-10T00:00:00.000000007Z");
        // Leap day in a leap year beyond 9999 → Mar 1 in 9999.
        let leap = GoTime::parse("10000-02-29T00:00:00Z");
        assert!(leap.is_err(), "5-digit years are not RFC 3339");
        let secs_10400_02_29 = NaiveDate::from_ymd_opt(10400, 2, 29)
            .unwrap()
            .and_hms_opt(1, 2, 3)
            .unwrap()
            .and_utc()
            .timestamp();
        let t = GoTime::from_unix_with_offset(secs_10400_02_29, 0, 0);
        assert_eq!(t.format(), "9999-03-01T01:02:03Z");
        // Negative years → 0000.
        let t = GoTime::from_unix_with_offset(-62167219200 - 86400 * 400, 0, 0);
        assert!(t.format().starts_with("0000-"), "{}", t.format());
        // Far out of chrono's range: still clamped, no panic.
        assert!(
            GoTime::from_unix_with_offset(i64::MAX, 0, 0)
                .format()
                .starts_with("9999-")
        );
        assert!(
            GoTime::from_unix_with_offset(i64::MIN, 0, 0)
                .format()
                .starts_with("0000-")
        );
        assert!(
            GoTime::from_unix(i64::MAX, u32::MAX)
                .format()
                .starts_with("9999-")
        );
    }

    #[test]
    fn serde_as_string() {
        let t = GoTime::parse("2021-03-04T06:06:07.5+01:00").unwrap();
        let j = serde_json::to_string(&t).unwrap();
        assert_eq!(j, "\"2021-03-04T06:06:07.5+01:00\"");
        let back: GoTime = serde_json::from_str(&j).unwrap();
        assert_eq!(back.format(), t.format());
        let z: GoTime = serde_json::from_str("null").unwrap();
        assert!(z.is_zero());
        assert!(serde_json::from_str::<GoTime>("\"yesterday\"").is_err());
        assert!(serde_json::from_str::<GoTime>("12").is_err());
    }
}
