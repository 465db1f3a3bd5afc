//! systemd `OnCalendar=` calendar events, implemented once for every scheduler target.
//!
//! * [`CalendarEvent::parse`] accepts the full grammar of systemd.time(7):
//!   `[WEEKDAYS] [[YEAR-]MONTH-DAY] [HOUR:MINUTE[:SECOND]] [TIMEZONE]`, lists, ranges,
//!   `/step` repetitions, `~` (days counted from the end of the month), fractional
//!   seconds, two-digit years, the keywords (`daily`, `weekly`, …), `@EPOCH` and a trailing
//!   `UTC` or IANA time zone.
//! * [`CalendarEvent::normalized`] prints the form `systemd-analyze calendar` prints.
//! * [`CalendarEvent::next_after`] computes elapses the way systemd does (including its
//!   behaviour around daylight-saving changes).
//! * [`CalendarEvent::launchd_intervals`] and [`CalendarEvent::cron_entries`] translate an
//!   expression for launchd and cron, refusing (never silently changing) what they cannot
//!   express.
//! * [`parse_go_duration`] and [`format_go_duration`]: Go's duration syntax (`1h30m`, `90s`),
//!   the other time expression of profiles and restic options.

#![warn(missing_docs)]

mod cron;
mod expand;
mod go_duration;
mod launchd;
mod next;
mod normalize;
mod parse;
#[cfg(test)]
mod proptests;
mod tz;

use std::fmt;

pub use cron::CronEntry;
pub use go_duration::{DurationError, format_go_duration, parse_go_duration};
pub use launchd::LaunchdInterval;
pub use tz::Tz;

/// A parse or translation error; the message says what is wrong and shows the expression.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CalendarError {
    /// Human-readable explanation, including the offending expression.
    pub message: String,
}

impl CalendarError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        CalendarError {
            message: message.into(),
        }
    }
}

/// One element of a field: a value, a range `start..stop` and/or a repetition `/repeat`.
///
/// `stop` is `None` when no range was given. For the seconds field every number is in
/// microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Component {
    pub(crate) start: i64,
    pub(crate) stop: Option<i64>,
    pub(crate) repeat: i64,
}

/// The time zone an expression is evaluated in.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Zone {
    /// No zone given: the caller's local zone.
    Local,
    /// ` UTC` suffix (any case).
    Utc,
    /// A named IANA zone such as `Europe/Paris`.
    Named(String, chrono_tz::Tz),
}

/// A parsed calendar event (systemd `OnCalendar=` expression).
#[derive(Clone, Debug, PartialEq)]
pub struct CalendarEvent {
    /// Weekday bits, bit 0 = Monday … bit 6 = Sunday; `None` = any day.
    pub(crate) weekdays: Option<u8>,
    /// Empty chains mean `*`.
    pub(crate) year: Vec<Component>,
    pub(crate) month: Vec<Component>,
    pub(crate) day: Vec<Component>,
    pub(crate) hour: Vec<Component>,
    pub(crate) minute: Vec<Component>,
    /// Seconds in microseconds; empty means `*`.
    pub(crate) second: Vec<Component>,
    /// Days are counted from the end of the month (`~`).
    pub(crate) end_of_month: bool,
    pub(crate) zone: Zone,
}

impl CalendarEvent {
    /// Parses a systemd calendar expression (`daily`, `Mon..Fri *:00`, `*-*-* 05:00:00 UTC`, …).
    pub fn parse(expr: &str) -> Result<CalendarEvent, CalendarError> {
        parse::parse(expr).map_err(|why| {
            CalendarError::new(format!(
                "invalid calendar expression {expr:?}: {why} (syntax: [WEEKDAYS] [[YEAR-]MONTH-DAY] [HOUR:MINUTE[:SECOND]] [TIMEZONE], e.g. \"Mon..Fri 02:30\", \"*-*-01 04:00\", \"*:0/15\", \"daily\")"
            ))
        })
    }

    /// systemd's normalized form, exactly as `systemd-analyze calendar` prints it
    /// (`Mon..Fri *:00` → `Mon..Fri *-*-* *:00:00`, `daily` → `*-*-* 00:00:00`).
    pub fn normalized(&self) -> String {
        normalize::format(self)
    }

    /// The next elapse strictly after `after`, evaluated in the expression's time zone or,
    /// when it has none, in `local_tz`. `None` when the expression never elapses again.
    pub fn next_after(
        &self,
        after: chrono::DateTime<chrono::Utc>,
        local_tz: &Tz,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        next::next_after(self, after, local_tz)
    }

    /// The next `n` elapses after `after` (fewer when the expression stops elapsing).
    pub fn next_n(
        &self,
        after: chrono::DateTime<chrono::Utc>,
        n: usize,
        local_tz: &Tz,
    ) -> Vec<chrono::DateTime<chrono::Utc>> {
        let mut out = Vec::with_capacity(n.min(1024));
        let mut at = after;
        while out.len() < n {
            match self.next_after(at, local_tz) {
                Some(t) => {
                    out.push(t);
                    at = t;
                }
                None => break,
            }
        }
        out
    }

    /// launchd `StartCalendarInterval` dictionaries for this expression (weekday 0 = Sunday).
    ///
    /// Listed values are expanded into their cartesian product; `*` fields are omitted.
    /// Refused (with the reason and the nearest expressible form): seconds other than 0, a
    /// year other than `*`, `~`, a day of month together with weekdays, and a time zone
    /// that cannot be converted exactly to `target_tz` for every day of the year.
    pub fn launchd_intervals(&self, target_tz: &Tz) -> Result<Vec<LaunchdInterval>, CalendarError> {
        launchd::intervals(self, target_tz)
    }

    /// crontab entries for this expression (one line each, five fields plus an optional
    /// weekday guard when both day of month and weekday are restricted).
    ///
    /// Refused like [`CalendarEvent::launchd_intervals`], except that day and weekday
    /// together are expressed with `weekday_guard`.
    pub fn cron_entries(&self, target_tz: &Tz) -> Result<Vec<CronEntry>, CalendarError> {
        cron::entries(self, target_tz)
    }
}

impl fmt::Display for CalendarEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.normalized())
    }
}

impl std::str::FromStr for CalendarEvent {
    type Err = CalendarError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CalendarEvent::parse(s)
    }
}
