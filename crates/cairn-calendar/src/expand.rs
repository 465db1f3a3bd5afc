//! Shared by the launchd and cron translations: checks for what a minute-based scheduler
//! cannot express, value sets of each field, and the conversion of an expression's time
//! zone into the scheduler's.

use std::collections::{BTreeMap, BTreeSet};

use crate::tz::ZoneRef;
use crate::{CalendarError, CalendarEvent, Component, Tz, Zone};

/// Value sets of one schedule line, in the target's local time.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Fields {
    pub(crate) minutes: BTreeSet<u8>,
    pub(crate) hours: BTreeSet<u8>,
    /// Days of month; `None` = any.
    pub(crate) days: Option<BTreeSet<u8>>,
    /// Months 1..=12; `None` = any.
    pub(crate) months: Option<BTreeSet<u8>>,
    /// Weekdays as systemd bits (bit 0 = Monday); `None` = any.
    pub(crate) weekdays: Option<u8>,
}

/// The result of [`plan`]: either the expression's own chains (no time-zone shift) or
/// shifted value sets.
pub(crate) enum Plan {
    Chains,
    Shifted(Vec<Fields>),
}

/// Values of a chain within `lo..=hi` (empty chain = every value).
pub(crate) fn chain_values(chain: &[Component], lo: i64, hi: i64) -> BTreeSet<u8> {
    if chain.is_empty() {
        return (lo..=hi).filter_map(|v| u8::try_from(v).ok()).collect();
    }
    let mut out = BTreeSet::new();
    for c in chain {
        let end = c
            .stop
            .unwrap_or(if c.repeat > 0 { hi } else { c.start })
            .min(hi);
        let step = c.repeat.max(1);
        let mut v = c.start;
        while v <= end {
            if let Ok(b) = u8::try_from(v)
                && v >= lo
            {
                out.insert(b);
            }
            v += step;
        }
    }
    out
}

/// The expression rewritten with `edit` applied, in normalized form (used to suggest the
/// nearest form a scheduler can express).
fn suggest(ev: &CalendarEvent, edit: impl FnOnce(&mut CalendarEvent)) -> String {
    let mut e = ev.clone();
    edit(&mut e);
    e.normalized()
}

fn refuse(ev: &CalendarEvent, target: &str, why: &str, nearest: Option<String>) -> CalendarError {
    let mut msg = format!(
        "calendar expression {:?} cannot be expressed for {target}: {why}",
        ev.normalized()
    );
    if let Some(n) = nearest {
        msg.push_str(&format!("; the nearest form {target} can express is {n:?}"));
    }
    msg.push_str(" (systemd timers run the expression as written)");
    CalendarError::new(msg)
}

/// Checks what every minute-based scheduler refuses and decides whether the expression's
/// time zone must be shifted into `target_tz`.
pub(crate) fn plan(
    ev: &CalendarEvent,
    target_tz: &Tz,
    target: &str,
) -> Result<Plan, CalendarError> {
    let zero = [Component {
        start: 0,
        stop: None,
        repeat: 0,
    }];
    if ev.second != zero {
        return Err(refuse(
            ev,
            target,
            "it starts jobs on whole minutes only, so the seconds must be 0",
            Some(suggest(ev, |e| e.second = zero.to_vec())),
        ));
    }
    if !ev.year.is_empty() {
        return Err(refuse(
            ev,
            target,
            "it has no year field, so the year must be '*'",
            Some(suggest(ev, |e| e.year.clear())),
        ));
    }
    if ev.end_of_month {
        return Err(refuse(
            ev,
            target,
            "it cannot count days from the end of the month ('~')",
            Some(suggest(ev, |e| {
                e.end_of_month = false;
                e.day = vec![Component {
                    start: 28,
                    stop: None,
                    repeat: 0,
                }];
            })),
        ));
    }
    let shift = zone_shift(ev, target_tz, target)?;
    if shift == 0 {
        return Ok(Plan::Chains);
    }
    shifted_fields(ev, shift, target).map(Plan::Shifted)
}

/// Minutes to add to the expression's wall-clock times to get the target's, when that
/// difference is the same all year; refused otherwise.
fn zone_shift(ev: &CalendarEvent, target_tz: &Tz, target: &str) -> Result<i64, CalendarError> {
    let (zone, name) = match &ev.zone {
        Zone::Local => return Ok(0),
        Zone::Utc => (ZoneRef::Utc, "UTC".to_string()),
        Zone::Named(n, t) => (ZoneRef::Named(*t), n.clone()),
    };
    let tzone = target_tz.zone();
    if zone == tzone {
        return Ok(0);
    }
    let now = chrono::Utc::now().timestamp();
    let mut diff: Option<i64> = None;
    let mut t = now - 86_400;
    while t < now + 2 * 366 * 86_400 {
        let d = match (zone.offset_at(t), tzone.offset_at(t)) {
            (Some(a), Some(b)) => i64::from(b) - i64::from(a),
            _ => return Err(refuse(ev, target, "time zone offsets are unknown", None)),
        };
        match diff {
            None => diff = Some(d),
            Some(prev) if prev != d => {
                return Err(refuse(
                    ev,
                    target,
                    &format!(
                        "its time zone {name} is not a fixed offset from the scheduler's time zone {} (daylight-saving changes would move the run time), and the scheduler only knows local time",
                        target_tz.name()
                    ),
                    Some(suggest(ev, |e| e.zone = Zone::Local)),
                ));
            }
            Some(_) => {}
        }
        t += 3600;
    }
    let d = diff.unwrap_or(0);
    if d % 60 != 0 {
        return Err(refuse(
            ev,
            target,
            "the time zones differ by a fraction of a minute",
            None,
        ));
    }
    Ok(d / 60)
}

/// Adds `shift` minutes to every (hour, minute) of the expression; times that cross
/// midnight move to the previous or next day (weekdays rotate; days of month and months
/// cannot, so those are refused).
fn shifted_fields(
    ev: &CalendarEvent,
    shift: i64,
    target: &str,
) -> Result<Vec<Fields>, CalendarError> {
    let hours = chain_values(&ev.hour, 0, 23);
    let minutes = chain_values(&ev.minute, 0, 59);
    // day offset → hour → minutes
    let mut groups: BTreeMap<i64, BTreeMap<u8, BTreeSet<u8>>> = BTreeMap::new();
    for h in &hours {
        for m in &minutes {
            let total = i64::from(*h) * 60 + i64::from(*m) + shift;
            let day_off = total.div_euclid(1440);
            let tod = total.rem_euclid(1440);
            groups
                .entry(day_off)
                .or_default()
                .entry((tod / 60) as u8)
                .or_default()
                .insert((tod % 60) as u8);
        }
    }
    let days = (!ev.day.is_empty()).then(|| chain_values(&ev.day, 1, 31));
    let months = (!ev.month.is_empty()).then(|| chain_values(&ev.month, 1, 12));
    let mut out = Vec::new();
    for (day_off, by_hour) in groups {
        if day_off != 0 && (days.is_some() || months.is_some()) {
            return Err(refuse(
                ev,
                target,
                &format!(
                    "converted to the scheduler's time zone some run times move to the {} day, which cannot be expressed together with days of month or months",
                    if day_off < 0 { "previous" } else { "next" }
                ),
                Some(suggest(ev, |e| e.zone = Zone::Local)),
            ));
        }
        let weekdays = ev.weekdays.map(|bits| rotate_weekdays(bits, day_off));
        // Hours sharing the same minutes become one line.
        let mut by_minutes: BTreeMap<BTreeSet<u8>, BTreeSet<u8>> = BTreeMap::new();
        for (h, ms) in by_hour {
            by_minutes.entry(ms).or_default().insert(h);
        }
        for (ms, hs) in by_minutes {
            out.push(Fields {
                minutes: ms,
                hours: hs,
                days: days.clone(),
                months: months.clone(),
                weekdays,
            });
        }
    }
    Ok(out)
}

/// Moves every weekday by `by` days (Mon + 1 = Tue, Mon - 1 = Sun).
pub(crate) fn rotate_weekdays(bits: u8, by: i64) -> u8 {
    let mut out = 0u8;
    for k in 0..7i64 {
        if bits & (1 << k) != 0 {
            out |= 1 << (k + by).rem_euclid(7);
        }
    }
    out
}

/// Fields of an unshifted expression.
pub(crate) fn plain_fields(ev: &CalendarEvent) -> Fields {
    Fields {
        minutes: chain_values(&ev.minute, 0, 59),
        hours: chain_values(&ev.hour, 0, 23),
        days: (!ev.day.is_empty()).then(|| chain_values(&ev.day, 1, 31)),
        months: (!ev.month.is_empty()).then(|| chain_values(&ev.month, 1, 12)),
        weekdays: ev.weekdays,
    }
}

/// cron/launchd weekday number (0 = Sunday) of systemd weekday bit `k` (0 = Monday).
pub(crate) fn cron_weekday(k: u8) -> u8 {
    (k + 1) % 7
}

/// Sorted cron weekday numbers of systemd weekday bits.
pub(crate) fn cron_weekdays(bits: u8) -> Vec<u8> {
    let mut v: Vec<u8> = (0..7u8)
        .filter(|k| bits & (1 << k) != 0)
        .map(cron_weekday)
        .collect();
    v.sort_unstable();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_of_chains() {
        let ev = CalendarEvent::parse("*-*-* 8..18/2:0/15").unwrap();
        let f = plain_fields(&ev);
        assert_eq!(
            f.hours.into_iter().collect::<Vec<_>>(),
            vec![8, 10, 12, 14, 16, 18]
        );
        assert_eq!(
            f.minutes.into_iter().collect::<Vec<_>>(),
            vec![0, 15, 30, 45]
        );
        assert_eq!(rotate_weekdays(0b100_0000, 1), 1);
        assert_eq!(cron_weekdays(0b110_0000), vec![0, 6]);
    }

    #[test]
    fn utc_to_fixed_offset_zone_shifts() {
        let ev = CalendarEvent::parse("Mon *-*-* 23:30 UTC").unwrap();
        let tokyo = Tz::named("Asia/Tokyo").unwrap();
        let Plan::Shifted(f) = plan(&ev, &tokyo, "cron").unwrap() else {
            panic!("expected a shift")
        };
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].hours.iter().copied().collect::<Vec<_>>(), vec![8]);
        assert_eq!(f[0].weekdays, Some(0b10)); // Tuesday
        let paris = Tz::named("Europe/Paris").unwrap();
        let err = plan(&ev, &paris, "cron").err().unwrap();
        assert!(err.message.contains("fixed offset"), "{}", err.message);
    }
}
