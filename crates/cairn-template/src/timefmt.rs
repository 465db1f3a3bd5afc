//! Go time layouts (`Mon Jan 2 15:04:05 MST 2006`) and the `time.Time` methods templates call.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Offset, TimeZone, Timelike};

use crate::value::Value;

/// Go's weekday names, Sunday first (`time.Weekday`).
pub(crate) const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Go's month names, January first (`time.Month`).
pub(crate) const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// One element of a layout.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Elem {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    Tz,
    /// Numeric zone: `z` = "Z" for UTC, `colon`, `secs`, `short` (hours only).
    NumTz {
        z: bool,
        colon: bool,
        secs: bool,
        short: bool,
    },
    /// Fractional seconds: separator, digit count, trim trailing zeros (`9`s).
    Frac(char, usize, bool),
}

fn lower_start(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
}

/// Finds the next layout element: returns (literal prefix length, element, element length).
fn next_elem(layout: &str) -> Option<(usize, Elem, usize)> {
    let b = layout.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        let rest = &layout[i..];
        let found = match c {
            b'J' if rest.starts_with("Jan") => {
                if rest.starts_with("January") {
                    Some((Elem::LongMonth, 7))
                } else if !lower_start(&rest[3..]) {
                    Some((Elem::Month, 3))
                } else {
                    None
                }
            }
            b'M' if rest.starts_with("Mon") => {
                if rest.starts_with("Monday") {
                    Some((Elem::LongWeekDay, 6))
                } else if !lower_start(&rest[3..]) {
                    Some((Elem::WeekDay, 3))
                } else {
                    None
                }
            }
            b'M' if rest.starts_with("MST") => Some((Elem::Tz, 3)),
            b'0' => match b.get(i + 1) {
                Some(b'1') => Some((Elem::ZeroMonth, 2)),
                Some(b'2') => Some((Elem::ZeroDay, 2)),
                Some(b'3') => Some((Elem::ZeroHour12, 2)),
                Some(b'4') => Some((Elem::ZeroMinute, 2)),
                Some(b'5') => Some((Elem::ZeroSecond, 2)),
                Some(b'6') => Some((Elem::Year, 2)),
                Some(b'0') if b.get(i + 2) == Some(&b'2') => Some((Elem::ZeroYearDay, 3)),
                _ => None,
            },
            b'1' => {
                if b.get(i + 1) == Some(&b'5') {
                    Some((Elem::Hour, 2))
                } else {
                    Some((Elem::NumMonth, 1))
                }
            }
            b'2' => {
                if rest.starts_with("2006") {
                    Some((Elem::LongYear, 4))
                } else {
                    Some((Elem::Day, 1))
                }
            }
            b'_' => {
                if b.get(i + 1) == Some(&b'2') {
                    if rest.get(1..5) == Some("2006") {
                        // "_2006" is a literal underscore followed by the long year.
                        return Some((i + 1, Elem::LongYear, 4));
                    }
                    Some((Elem::UnderDay, 2))
                } else if rest.starts_with("__2") {
                    Some((Elem::UnderYearDay, 3))
                } else {
                    None
                }
            }
            b'3' => Some((Elem::Hour12, 1)),
            b'4' => Some((Elem::Minute, 1)),
            b'5' => Some((Elem::Second, 1)),
            b'P' if rest.starts_with("PM") => Some((Elem::PM, 2)),
            b'p' if rest.starts_with("pm") => Some((Elem::Pm, 2)),
            b'-' | b'Z' => {
                let z = c == b'Z';
                let body = &rest[1..];
                let tz = |colon, secs, short| Elem::NumTz {
                    z,
                    colon,
                    secs,
                    short,
                };
                if body.starts_with("070000") {
                    Some((tz(false, true, false), 7))
                } else if body.starts_with("07:00:00") {
                    Some((tz(true, true, false), 9))
                } else if body.starts_with("0700") {
                    Some((tz(false, false, false), 5))
                } else if body.starts_with("07:00") {
                    Some((tz(true, false, false), 6))
                } else if body.starts_with("07") {
                    Some((tz(false, false, true), 3))
                } else {
                    None
                }
            }
            b'.' | b',' => match b.get(i + 1) {
                Some(&d @ (b'0' | b'9')) => {
                    let mut j = i + 1;
                    while b.get(j) == Some(&d) {
                        j += 1;
                    }
                    if b.get(j).is_some_and(|x| x.is_ascii_digit()) {
                        None
                    } else {
                        Some((Elem::Frac(c as char, j - i - 1, d == b'9'), j - i))
                    }
                }
                _ => None,
            },
            _ => None,
        };
        if let Some((e, len)) = found {
            return Some((i, e, len));
        }
    }
    None
}

/// The zone abbreviation printed for `t`: `UTC` for offset zero, the local zone's name when
/// the offset is the local one at that instant, else empty (the numeric form is used).
fn zone_name(t: &DateTime<FixedOffset>) -> String {
    let off = t.offset().local_minus_utc();
    if off == 0 {
        return "UTC".to_string();
    }
    local_zone_abbrev(t.timestamp(), off).unwrap_or_default()
}

/// The C library's zone abbreviation for `ts` when its offset equals `off`.
#[cfg(unix)]
fn local_zone_abbrev(ts: i64, off: i32) -> Option<String> {
    #[allow(clippy::useless_conversion)]
    let t: libc::time_t = ts.try_into().ok()?;
    // SAFETY: `tm` is plain old data; localtime_r fills it and returns null on failure;
    // tm_zone points to static zone data (or is null) and is read immediately.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return None;
        }
        if tm.tm_gmtoff as i64 != off as i64 || tm.tm_zone.is_null() {
            return None;
        }
        let name = std::ffi::CStr::from_ptr(tm.tm_zone)
            .to_string_lossy()
            .into_owned();
        if name.is_empty() { None } else { Some(name) }
    }
}

#[cfg(not(unix))]
fn local_zone_abbrev(_ts: i64, _off: i32) -> Option<String> {
    None
}

fn push_num(out: &mut String, n: i64, width: usize) {
    if n < 0 {
        out.push('-');
    }
    out.push_str(&format!("{:0width$}", n.unsigned_abs()));
}

/// Formats `t` with a Go layout string (reference time `Mon Jan 2 15:04:05 MST 2006`).
pub fn go_time_format(t: &DateTime<FixedOffset>, layout: &str) -> String {
    let mut out = String::new();
    let mut rest = layout;
    while let Some((pre, elem, len)) = next_elem(rest) {
        out.push_str(&rest[..pre]);
        rest = &rest[pre + len..];
        let year = t.year() as i64;
        let hour = t.hour() as i64;
        match elem {
            Elem::LongMonth => out.push_str(MONTHS[t.month0() as usize % 12]),
            Elem::Month => out.push_str(&MONTHS[t.month0() as usize % 12][..3]),
            Elem::NumMonth => push_num(&mut out, t.month() as i64, 0),
            Elem::ZeroMonth => push_num(&mut out, t.month() as i64, 2),
            Elem::LongWeekDay => {
                out.push_str(WEEKDAYS[t.weekday().num_days_from_sunday() as usize % 7])
            }
            Elem::WeekDay => {
                out.push_str(&WEEKDAYS[t.weekday().num_days_from_sunday() as usize % 7][..3])
            }
            Elem::Day => push_num(&mut out, t.day() as i64, 0),
            Elem::UnderDay => {
                if t.day() < 10 {
                    out.push(' ');
                }
                push_num(&mut out, t.day() as i64, 0)
            }
            Elem::ZeroDay => push_num(&mut out, t.day() as i64, 2),
            Elem::UnderYearDay => out.push_str(&format!("{:>3}", t.ordinal())),
            Elem::ZeroYearDay => push_num(&mut out, t.ordinal() as i64, 3),
            Elem::Hour => push_num(&mut out, hour, 2),
            Elem::Hour12 | Elem::ZeroHour12 => {
                let h = if hour % 12 == 0 { 12 } else { hour % 12 };
                push_num(&mut out, h, if elem == Elem::Hour12 { 0 } else { 2 })
            }
            Elem::Minute => push_num(&mut out, t.minute() as i64, 0),
            Elem::ZeroMinute => push_num(&mut out, t.minute() as i64, 2),
            Elem::Second => push_num(&mut out, t.second() as i64, 0),
            Elem::ZeroSecond => push_num(&mut out, t.second() as i64, 2),
            Elem::LongYear => push_num(&mut out, year, 4),
            Elem::Year => push_num(&mut out, year.rem_euclid(100), 2),
            Elem::PM => out.push_str(if hour >= 12 { "PM" } else { "AM" }),
            Elem::Pm => out.push_str(if hour >= 12 { "pm" } else { "am" }),
            Elem::Tz => {
                let name = zone_name(t);
                if name.is_empty() {
                    let off = t.offset().local_minus_utc() / 60;
                    out.push(if off < 0 { '-' } else { '+' });
                    let off = off.abs();
                    push_num(&mut out, (off / 60) as i64, 2);
                    push_num(&mut out, (off % 60) as i64, 2);
                } else {
                    out.push_str(&name);
                }
            }
            Elem::NumTz {
                z,
                colon,
                secs,
                short,
            } => {
                let off = t.offset().local_minus_utc();
                if z && off == 0 {
                    out.push('Z');
                    continue;
                }
                out.push(if off < 0 { '-' } else { '+' });
                let abs = off.unsigned_abs() as i64;
                push_num(&mut out, abs / 3600, 2);
                if !short {
                    if colon {
                        out.push(':');
                    }
                    push_num(&mut out, (abs / 60) % 60, 2);
                }
                if secs {
                    if colon {
                        out.push(':');
                    }
                    push_num(&mut out, abs % 60, 2);
                }
            }
            Elem::Frac(sep, n, trim) => {
                let nanos = format!("{:09}", t.nanosecond() % 1_000_000_000);
                let mut digits: String = nanos.chars().take(n.min(9)).collect();
                if trim {
                    while digits.ends_with('0') {
                        digits.pop();
                    }
                    if digits.is_empty() {
                        continue;
                    }
                }
                out.push(sep);
                out.push_str(&digits);
            }
        }
    }
    out.push_str(rest);
    out
}

/// Go's `Time.String()` layout, used by `%v` and by printing a time.
pub(crate) fn go_time_string(t: &DateTime<FixedOffset>) -> String {
    go_time_format(t, "2006-01-02 15:04:05.999999999 -0700 MST")
}

/// Go's `time.Month` value for a month number (1..=12).
pub(crate) fn month_value(m: u32) -> Value {
    Value::Named {
        value: m as i64,
        name: MONTHS
            .get(m.wrapping_sub(1) as usize)
            .unwrap_or(&"%!Month")
            .to_string(),
    }
}

/// Go's `AddDate`: add years, months and days, normalising overflow like `time.Date`.
pub(crate) fn add_date(
    t: &DateTime<FixedOffset>,
    years: i64,
    months: i64,
    days: i64,
) -> Option<DateTime<FixedOffset>> {
    let total = (t.year() as i64 + years) * 12 + t.month0() as i64 + months;
    let year = i32::try_from(total.div_euclid(12)).ok()?;
    let month = total.rem_euclid(12) as u32 + 1;
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let date = first.checked_add_signed(chrono::Duration::try_days(t.day() as i64 - 1 + days)?)?;
    let naive = date.and_time(t.time());
    t.offset().from_local_datetime(&naive).single()
}

/// Calls a `time.Time` method by name; `Err` carries the message for unknown methods or bad
/// arguments.
pub(crate) fn call_method(
    t: &DateTime<FixedOffset>,
    name: &str,
    args: &[Value],
) -> Result<Value, String> {
    let want = |n: usize| -> Result<(), String> {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!(
                "wrong number of args for {name}: want {n} got {}",
                args.len()
            ))
        }
    };
    let v = match name {
        "Format" => {
            want(1)?;
            match args.first() {
                Some(Value::Str(layout)) => Value::Str(go_time_format(t, layout)),
                Some(other) => {
                    return Err(format!(
                        "wrong type for value; expected string; got {}",
                        other.type_name()
                    ));
                }
                None => return Err("missing layout".into()),
            }
        }
        "AddDate" => {
            want(3)?;
            let mut n = [0i64; 3];
            for (slot, a) in n.iter_mut().zip(args) {
                *slot = match a {
                    Value::Int(i) => *i,
                    Value::Float(f) if f.fract() == 0.0 => *f as i64,
                    other => {
                        return Err(format!(
                            "wrong type for value; expected int; got {}",
                            other.type_name()
                        ));
                    }
                };
            }
            let [y, m, d] = n;
            Value::Time(add_date(t, y, m, d).ok_or("date out of range")?)
        }
        "UTC" => {
            want(0)?;
            Value::Time(t.with_timezone(&chrono::Utc.fix()))
        }
        "Local" => {
            want(0)?;
            Value::Time(t.with_timezone(&chrono::Local).fixed_offset())
        }
        "Unix" => {
            want(0)?;
            Value::Int(t.timestamp())
        }
        "UnixMilli" => {
            want(0)?;
            Value::Int(t.timestamp_millis())
        }
        "Year" => {
            want(0)?;
            Value::Int(t.year() as i64)
        }
        "Month" => {
            want(0)?;
            month_value(t.month())
        }
        "Day" => {
            want(0)?;
            Value::Int(t.day() as i64)
        }
        "YearDay" => {
            want(0)?;
            Value::Int(t.ordinal() as i64)
        }
        "Weekday" => {
            want(0)?;
            let d = t.weekday().num_days_from_sunday();
            Value::Named {
                value: d as i64,
                name: WEEKDAYS[d as usize % 7].to_string(),
            }
        }
        "Hour" => {
            want(0)?;
            Value::Int(t.hour() as i64)
        }
        "Minute" => {
            want(0)?;
            Value::Int(t.minute() as i64)
        }
        "Second" => {
            want(0)?;
            Value::Int(t.second() as i64)
        }
        "Nanosecond" => {
            want(0)?;
            Value::Int((t.nanosecond() % 1_000_000_000) as i64)
        }
        "String" => {
            want(0)?;
            Value::Str(go_time_string(t))
        }
        _ => return Err(format!("can't evaluate field {name} in type time.Time")),
    };
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    #[test]
    fn reference_layouts() {
        let x = t("2024-03-05T07:08:09.012345678+02:00");
        assert_eq!(go_time_format(&x, "2006-01-02"), "2024-03-05");
        assert_eq!(
            go_time_format(&x, "2006-01-02T15:04:05Z07:00"),
            "2024-03-05T07:08:09+02:00"
        );
        assert_eq!(
            go_time_format(&x, "Mon Jan _2 15:04:05 2006"),
            "Tue Mar  5 07:08:09 2024"
        );
        assert_eq!(go_time_format(&x, "Monday, January 2"), "Tuesday, March 5");
        assert_eq!(go_time_format(&x, "3:4:5 PM pm"), "7:8:9 AM am");
        assert_eq!(go_time_format(&x, "03:04:05.000"), "07:08:09.012");
        assert_eq!(go_time_format(&x, "05.999999999"), "09.012345678");
        assert_eq!(go_time_format(&x, "05,00"), "09,01");
        assert_eq!(
            go_time_format(&x, "-0700 -07 -07:00:00 Z0700"),
            "+0200 +02 +02:00:00 +0200"
        );
        assert_eq!(go_time_format(&x, "06 002 __2 1/2"), "24 065  65 3/5");
        assert_eq!(go_time_format(&x, "_2006"), "_2024");
        // "Month" is not "Mon" + "th" and "Janet" is not "Jan" + "et".
        assert_eq!(go_time_format(&x, "Month Janet"), "Month Janet");
    }

    #[test]
    fn utc_prints_z_and_name() {
        let x = t("2024-12-31T23:59:59Z");
        assert_eq!(
            go_time_format(&x, "2006-01-02T15:04:05Z07:00"),
            "2024-12-31T23:59:59Z"
        );
        assert_eq!(go_time_format(&x, "15:04 .999"), "23:59 ");
        let s = go_time_string(&x);
        assert!(s.starts_with("2024-12-31 23:59:59 +0000 "), "{s}");
    }

    #[test]
    fn unnamed_zone_prints_numeric() {
        // An offset that no local zone has at that date prints as -0700 digits.
        let x = t("2024-06-01T00:00:00+13:45");
        let name = go_time_format(&x, "MST");
        assert!(name == "+1345" || !name.is_empty());
    }

    #[test]
    fn add_date_normalises_like_go() {
        let x = t("2024-01-31T10:00:00+00:00");
        assert_eq!(
            add_date(&x, 0, 1, 0).unwrap().to_rfc3339(),
            "2024-03-02T10:00:00+00:00"
        );
        assert_eq!(
            add_date(&x, 0, -6, 0).unwrap().to_rfc3339(),
            "2023-07-31T10:00:00+00:00"
        );
        assert_eq!(
            add_date(&x, 1, 0, -31).unwrap().to_rfc3339(),
            "2024-12-31T10:00:00+00:00"
        );
    }

    #[test]
    fn methods() {
        let x = t("2024-03-05T07:08:09+00:00");
        assert_eq!(call_method(&x, "Year", &[]).unwrap(), Value::Int(2024));
        assert_eq!(call_method(&x, "Month", &[]).unwrap().to_string(), "March");
        assert_eq!(
            call_method(&x, "Weekday", &[]).unwrap().to_string(),
            "Tuesday"
        );
        assert_eq!(call_method(&x, "YearDay", &[]).unwrap(), Value::Int(65));
        assert_eq!(
            call_method(&x, "Unix", &[]).unwrap(),
            Value::Int(1709622489)
        );
        assert!(call_method(&x, "Format", &[]).is_err());
        assert!(call_method(&x, "Nope", &[]).is_err());
    }
}
