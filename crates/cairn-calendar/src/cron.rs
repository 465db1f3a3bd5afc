//! crontab lines.

use std::collections::BTreeSet;

use crate::expand::{self, Fields, Plan};
use crate::{CalendarError, CalendarEvent, Component, Tz};

/// The five time fields of one crontab line.
///
/// When both the day of month and the weekday are restricted, cron would start the job
/// when *either* matches; then `day_of_week` is `*` and `weekday_guard` lists the weekdays
/// (0 = Sunday) the command must test for (`test $(date +%w) -eq N`) before running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronEntry {
    /// Minute field (`00`, `*/15`, `00,30`).
    pub minute: String,
    /// Hour field.
    pub hour: String,
    /// Day-of-month field.
    pub day_of_month: String,
    /// Month field.
    pub month: String,
    /// Day-of-week field (0 = Sunday … 6).
    pub day_of_week: String,
    /// Weekdays the job must check itself, when cron cannot (see the type's docs).
    pub weekday_guard: Option<Vec<u8>>,
}

impl CronEntry {
    /// The five fields joined by spaces (`00 05 * * *`).
    pub fn fields(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.minute, self.hour, self.day_of_month, self.month, self.day_of_week
        )
    }
}

fn pad(v: i64) -> String {
    format!("{v:02}")
}

/// A field from the expression's own chain, keeping its ranges and steps.
/// `star_step`: whether `*/N` may be written (not for the day of month, where a leading
/// `*` makes some crons treat the field as unrestricted).
fn chain_field(chain: &[Component], lo: i64, hi: i64, star_step: bool) -> String {
    if chain.is_empty() {
        return "*".to_string();
    }
    let parts: Vec<String> = chain
        .iter()
        .map(|c| match (c.stop, c.repeat) {
            (None, 0) => pad(c.start),
            (Some(stop), 1) if stop == c.start + 1 => format!("{},{}", pad(c.start), pad(stop)),
            (Some(stop), 1) => format!("{}-{}", pad(c.start), pad(stop)),
            (Some(stop), r) => format!("{}-{}/{r}", pad(c.start), pad(stop)),
            (None, r) if c.start == lo && star_step => format!("*/{r}"),
            (None, r) => format!("{}-{}/{r}", pad(c.start), pad(hi)),
        })
        .collect();
    parts.join(",")
}

/// A field from a value set: runs of three or more as `a-b`, others listed.
fn set_field(values: &BTreeSet<u8>, full: usize) -> String {
    if values.len() >= full {
        return "*".to_string();
    }
    let v: Vec<i64> = values.iter().map(|x| i64::from(*x)).collect();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while v
            .get(j + 1)
            .is_some_and(|n| Some(*n) == v.get(j).map(|p| p + 1))
        {
            j += 1;
        }
        let (a, b) = (
            v.get(i).copied().unwrap_or(0),
            v.get(j).copied().unwrap_or(0),
        );
        if j >= i + 2 {
            parts.push(format!("{}-{}", pad(a), pad(b)));
            i = j + 1;
        } else {
            parts.push(pad(a));
            i += 1;
        }
    }
    parts.join(",")
}

fn weekday_field(bits: Option<u8>) -> String {
    match bits {
        None => "*".to_string(),
        Some(b) => set_field(&expand::cron_weekdays(b).into_iter().collect(), 7),
    }
}

/// Day of week and guard: cron ORs day of month and weekday when both are restricted.
fn weekday_parts(day_restricted: bool, weekdays: Option<u8>) -> (String, Option<Vec<u8>>) {
    match weekdays {
        Some(bits) if day_restricted => ("*".to_string(), Some(expand::cron_weekdays(bits))),
        w => (weekday_field(w), None),
    }
}

pub(crate) fn entries(ev: &CalendarEvent, target_tz: &Tz) -> Result<Vec<CronEntry>, CalendarError> {
    match expand::plan(ev, target_tz, "cron")? {
        Plan::Chains => {
            let (day_of_week, weekday_guard) = weekday_parts(!ev.day.is_empty(), ev.weekdays);
            Ok(vec![CronEntry {
                minute: chain_field(&ev.minute, 0, 59, true),
                hour: chain_field(&ev.hour, 0, 23, true),
                day_of_month: chain_field(&ev.day, 1, 31, false),
                month: chain_field(&ev.month, 1, 12, true),
                day_of_week,
                weekday_guard,
            }])
        }
        Plan::Shifted(fields) => Ok(fields.iter().map(shifted_entry).collect()),
    }
}

fn shifted_entry(f: &Fields) -> CronEntry {
    let (day_of_week, weekday_guard) = weekday_parts(f.days.is_some(), f.weekdays);
    CronEntry {
        minute: set_field(&f.minutes, 60),
        hour: set_field(&f.hours, 24),
        day_of_month: f
            .days
            .as_ref()
            .map_or_else(|| "*".to_string(), |d| set_field(d, usize::MAX)),
        month: f
            .months
            .as_ref()
            .map_or_else(|| "*".to_string(), |m| set_field(m, 12)),
        day_of_week,
        weekday_guard,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ce(e: &str) -> Vec<CronEntry> {
        CalendarEvent::parse(e)
            .unwrap()
            .cron_entries(&Tz::Utc)
            .unwrap()
    }

    #[test]
    fn fields() {
        assert_eq!(ce("daily")[0].fields(), "00 00 * * *");
        assert_eq!(ce("Mon..Fri 02:30")[0].fields(), "30 02 * * 01-05");
        assert_eq!(ce("*:0/15")[0].fields(), "*/15 * * * *");
        assert_eq!(ce("*-*-* 8..18/2:05")[0].fields(), "05 08-18/2 * * *");
        assert_eq!(ce("Sat,Sun 0,12:00")[0].fields(), "00 00,12 * * 00,06");
        assert_eq!(ce("*-*-* 1..2:00")[0].fields(), "00 01,02 * * *");
        assert_eq!(ce("*-*-1/2 00:00")[0].fields(), "00 00 01-31/2 * *");
        assert_eq!(ce("quarterly")[0].fields(), "00 00 01 01,04,07,10 *");
        let e = &ce("Mon *-*-01..07 03:00")[0];
        assert_eq!(e.fields(), "00 03 01-07 * *");
        assert_eq!(e.weekday_guard, Some(vec![1]));
        assert_eq!(ce("*-*-* 05:00:00 UTC")[0].fields(), "00 05 * * *");
    }

    #[test]
    fn shifted_into_another_fixed_zone() {
        let tokyo = Tz::named("Asia/Tokyo").unwrap();
        let v = CalendarEvent::parse("*-*-* 05:00:00 UTC")
            .unwrap()
            .cron_entries(&tokyo)
            .unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].fields(), "00 14 * * *");
        let paris = Tz::named("Europe/Paris").unwrap();
        assert!(
            CalendarEvent::parse("*-*-* 05:00:00 UTC")
                .unwrap()
                .cron_entries(&paris)
                .is_err()
        );
    }
}
