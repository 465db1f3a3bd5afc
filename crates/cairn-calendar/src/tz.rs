//! Time zones: the caller-facing [`Tz`], zone-name validation and UTC-offset lookups.

use chrono::{Offset, TimeZone};

/// A time zone in which calendar expressions without their own zone are evaluated, and
/// into which launchd/cron schedules are converted.
#[derive(Clone, Debug, PartialEq)]
pub enum Tz {
    /// The process's local zone as chrono sees it (`TZ`, else `/etc/localtime`).
    Local,
    /// An IANA zone such as `Europe/Paris`.
    Named(chrono_tz::Tz),
    /// Coordinated Universal Time.
    Utc,
}

impl Tz {
    /// The machine's local zone: `TZ` from the environment, else the target of
    /// `/etc/localtime`; [`Tz::Local`] when neither names a known zone.
    pub fn local() -> Tz {
        if let Ok(tz) = std::env::var("TZ") {
            let name = tz.strip_prefix(':').unwrap_or(&tz);
            if name.is_empty() || name == "UTC" || name == "UTC0" {
                return Tz::Utc;
            }
            if let Some(t) = Tz::named(name) {
                return t;
            }
            if let Some(t) = zoneinfo_suffix(name) {
                return t;
            }
            return Tz::Local;
        }
        if let Ok(target) = std::fs::read_link("/etc/localtime") {
            let target = target.to_string_lossy();
            if let Some(t) = zoneinfo_suffix(&target) {
                return t;
            }
        }
        Tz::Local
    }

    /// The zone with this IANA name (`UTC` gives [`Tz::Utc`]); `None` when unknown.
    pub fn named(name: &str) -> Option<Tz> {
        if name == "UTC" {
            return Some(Tz::Utc);
        }
        zone_by_name(name).map(Tz::Named)
    }

    /// The zone's name (`UTC`, `Europe/Paris`, or `local`).
    pub fn name(&self) -> String {
        match self {
            Tz::Local => "local".to_string(),
            Tz::Named(t) => t.name().to_string(),
            Tz::Utc => "UTC".to_string(),
        }
    }

    pub(crate) fn zone(&self) -> ZoneRef {
        match self {
            Tz::Local => ZoneRef::Local,
            Tz::Named(t) => ZoneRef::Named(*t),
            Tz::Utc => ZoneRef::Utc,
        }
    }
}

/// The zone named by a path such as `/usr/share/zoneinfo/Europe/Paris`.
fn zoneinfo_suffix(path: &str) -> Option<Tz> {
    let idx = path.find("zoneinfo/")?;
    path.get(idx + 9..).and_then(Tz::named)
}

/// A zone name systemd accepts (`[A-Za-z0-9_+-]` parts separated by single slashes) and
/// that the time-zone database knows.
pub(crate) fn zone_by_name(name: &str) -> Option<chrono_tz::Tz> {
    if name.is_empty() || name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return None;
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'/'))
    {
        return None;
    }
    name.parse::<chrono_tz::Tz>().ok()
}

/// A zone used for computations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum ZoneRef {
    Utc,
    Local,
    Named(chrono_tz::Tz),
}

impl ZoneRef {
    /// Seconds east of UTC at the instant `utc_secs`.
    pub(crate) fn offset_at(&self, utc_secs: i64) -> Option<i32> {
        let dt = chrono::DateTime::from_timestamp(utc_secs, 0)?.naive_utc();
        Some(match self {
            ZoneRef::Utc => 0,
            ZoneRef::Local => chrono::Local
                .offset_from_utc_datetime(&dt)
                .fix()
                .local_minus_utc(),
            ZoneRef::Named(t) => t.offset_from_utc_datetime(&dt).fix().local_minus_utc(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(Tz::named("UTC"), Some(Tz::Utc));
        assert!(matches!(Tz::named("Europe/Paris"), Some(Tz::Named(_))));
        assert_eq!(Tz::named("europe/paris"), None);
        assert_eq!(Tz::named("Europe//Paris"), None);
        let paris = Tz::named("Europe/Paris").unwrap().zone();
        // 2024-01-01 00:00 UTC: CET; 2024-07-01: CEST.
        assert_eq!(paris.offset_at(1_704_067_200), Some(3600));
        assert_eq!(paris.offset_at(1_719_792_000), Some(7200));
    }

    #[test]
    fn localtime_link_targets() {
        assert_eq!(
            zoneinfo_suffix("/usr/share/zoneinfo/Europe/Paris"),
            Tz::named("Europe/Paris")
        );
        assert_eq!(zoneinfo_suffix("../usr/share/zoneinfo/UTC"), Some(Tz::Utc));
        assert_eq!(
            zoneinfo_suffix("/var/db/timezone/zoneinfo/Asia/Tokyo"),
            Tz::named("Asia/Tokyo")
        );
        assert_eq!(zoneinfo_suffix("/etc/foo"), None);
    }
}
