//! launchd `StartCalendarInterval` dictionaries.

use std::collections::BTreeSet;

use crate::expand::{self, Fields, Plan};
use crate::{CalendarError, CalendarEvent, Tz};

/// The most dictionaries one expression may expand into.
const MAX_INTERVALS: usize = 5000;

/// One `StartCalendarInterval` dictionary; `None` keys are omitted (any value).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LaunchdInterval {
    /// `Minute` 0..=59.
    pub minute: Option<u8>,
    /// `Hour` 0..=23.
    pub hour: Option<u8>,
    /// `Day` of month 1..=31.
    pub day: Option<u8>,
    /// `Weekday` 0..=6, 0 = Sunday.
    pub weekday: Option<u8>,
    /// `Month` 1..=12.
    pub month: Option<u8>,
}

/// The values of a field, or `[None]` when it allows every value (key omitted).
fn opts(set: Option<&BTreeSet<u8>>, full: usize) -> Vec<Option<u8>> {
    match set {
        Some(s) if s.len() < full => s.iter().map(|v| Some(*v)).collect(),
        _ => vec![None],
    }
}

pub(crate) fn intervals(
    ev: &CalendarEvent,
    target_tz: &Tz,
) -> Result<Vec<LaunchdInterval>, CalendarError> {
    let fields = match expand::plan(ev, target_tz, "launchd")? {
        Plan::Chains => vec![expand::plain_fields(ev)],
        Plan::Shifted(f) => f,
    };
    let mut out = Vec::new();
    for f in &fields {
        expand_one(ev, f, &mut out)?;
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn expand_one(
    ev: &CalendarEvent,
    f: &Fields,
    out: &mut Vec<LaunchdInterval>,
) -> Result<(), CalendarError> {
    let days = opts(f.days.as_ref(), 31);
    let weekdays: Vec<Option<u8>> = match f.weekdays {
        Some(bits) => expand::cron_weekdays(bits).into_iter().map(Some).collect(),
        None => vec![None],
    };
    if days.first().is_some_and(Option::is_some) && weekdays.first().is_some_and(Option::is_some) {
        return Err(CalendarError::new(format!(
            "calendar expression {:?} cannot be expressed for launchd: it restricts both the day of month and the weekday, and launchd starts the job when either matches; drop one of them (e.g. {:?}) or use cron (which Cairn guards with a weekday test) or systemd",
            ev.normalized(),
            {
                let mut e = ev.clone();
                e.weekdays = None;
                e.normalized()
            }
        )));
    }
    let minutes = opts(Some(&f.minutes), 60);
    let hours = opts(Some(&f.hours), 24);
    let months = opts(f.months.as_ref(), 12);
    let count = minutes.len() * hours.len() * days.len() * weekdays.len() * months.len();
    if out.len() + count > MAX_INTERVALS {
        return Err(CalendarError::new(format!(
            "calendar expression {:?} would need {} launchd StartCalendarInterval entries (at most {MAX_INTERVALS}); use fewer listed values",
            ev.normalized(),
            out.len() + count
        )));
    }
    for month in &months {
        for day in &days {
            for weekday in &weekdays {
                for hour in &hours {
                    for minute in &minutes {
                        out.push(LaunchdInterval {
                            minute: *minute,
                            hour: *hour,
                            day: *day,
                            weekday: *weekday,
                            month: *month,
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn li(e: &str) -> Result<Vec<LaunchdInterval>, CalendarError> {
        CalendarEvent::parse(e).unwrap().launchd_intervals(&Tz::Utc)
    }

    #[test]
    fn expansion() {
        let v = li("Mon..Fri 02:30").unwrap();
        assert_eq!(v.len(), 5);
        assert_eq!(
            v[0],
            LaunchdInterval {
                minute: Some(30),
                hour: Some(2),
                day: None,
                weekday: Some(1),
                month: None
            }
        );
        assert_eq!(li("*:0/15").unwrap().len(), 4);
        assert_eq!(
            li("minutely").unwrap(),
            vec![LaunchdInterval {
                minute: None,
                hour: None,
                day: None,
                weekday: None,
                month: None
            }]
        );
        assert_eq!(li("daily UTC").unwrap().len(), 1);
    }

    #[test]
    fn refusals_explain() {
        let e = li("*:*:30").unwrap_err();
        assert!(
            e.message.contains("seconds") && e.message.contains("*-*-* *:*:00"),
            "{e}"
        );
        assert!(li("2030-01-01").unwrap_err().message.contains("year"));
        assert!(li("*-*~01").unwrap_err().message.contains("~"));
        assert!(li("Mon *-*-01").unwrap_err().message.contains("either"));
    }
}
