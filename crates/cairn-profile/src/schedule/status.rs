//! Describing calendar expressions (next elapses, normalized form) and installed jobs
//! (scheduler state from `systemctl show` / `launchctl print` when available).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use chrono::{DateTime, Local, Utc};
use serde::Serialize;

use super::install::run;
use super::{JobContext, ScheduleError, Scheduler, Scope, installed};

/// Parse an expression with `cairn-calendar`, as a schedule error naming the job.
pub(crate) fn parse_calendar(
    job: &str,
    expr: &str,
) -> Result<cairn_calendar::CalendarEvent, ScheduleError> {
    cairn_calendar::CalendarEvent::parse(expr).map_err(|e| ScheduleError::Calendar {
        job: job.to_string(),
        expr: expr.to_string(),
        reason: e.to_string(),
    })
}

/// One future elapse of an expression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NextRun {
    /// Local time (`Mon 2025-01-06 05:00:00 +01:00`).
    pub local: String,
    /// UTC (`Mon 2025-01-06 04:00:00 UTC`).
    pub utc: String,
    /// Time from now (`in 3h 12min`).
    pub from_now: String,
    /// RFC 3339 UTC, for machines.
    pub rfc3339: String,
}

/// Analysis of one calendar expression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpressionInfo {
    /// As written.
    pub original: String,
    /// systemd's normalized form (None when it does not parse).
    pub normalized: Option<String>,
    /// Next elapse (None when it never elapses again or does not parse).
    pub next: Option<NextRun>,
    /// Parse error.
    pub error: Option<String>,
}

/// `in 1d 3h 12min` / `now`.
fn human_delta(secs: i64) -> String {
    if secs <= 0 {
        return "now".into();
    }
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let mut parts = Vec::new();
    if d > 0 {
        parts.push(format!("{d}d"));
    }
    if h > 0 {
        parts.push(format!("{h}h"));
    }
    if m > 0 && d == 0 {
        parts.push(format!("{m}min"));
    }
    if s > 0 && d == 0 && h == 0 {
        parts.push(format!("{s}s"));
    }
    format!("in {}", parts.join(" "))
}

fn next_run(t: DateTime<Utc>, now: DateTime<Utc>) -> NextRun {
    NextRun {
        local: t
            .with_timezone(&Local)
            .format("%a %Y-%m-%d %H:%M:%S %:z")
            .to_string(),
        utc: t.format("%a %Y-%m-%d %H:%M:%S UTC").to_string(),
        from_now: human_delta((t - now).num_seconds()),
        rfc3339: t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }
}

/// Original form, normalized form and next elapse of one expression (local time zone).
pub fn describe_expression(expr: &str, now: DateTime<Utc>) -> ExpressionInfo {
    match cairn_calendar::CalendarEvent::parse(expr) {
        Ok(ev) => ExpressionInfo {
            original: expr.to_string(),
            normalized: Some(ev.normalized()),
            next: ev
                .next_after(now, &cairn_calendar::Tz::local())
                .map(|t| next_run(t, now)),
            error: None,
        },
        Err(e) => ExpressionInfo {
            original: expr.to_string(),
            normalized: None,
            next: None,
            error: Some(e.to_string()),
        },
    }
}

/// The next `n` elapses of `expr` after `now` (`cairn schedule --next N EXPR`).
pub fn next_runs(expr: &str, n: usize, now: DateTime<Utc>) -> Result<Vec<NextRun>, ScheduleError> {
    let ev = parse_calendar("schedule --next", expr)?;
    Ok(ev
        .next_n(now, n, &cairn_calendar::Tz::local())
        .into_iter()
        .map(|t| next_run(t, now))
        .collect())
}

/// Status of one installed job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobStatus {
    /// Profile or group.
    pub profile: String,
    /// Command.
    pub command: String,
    /// Scheduler name.
    pub scheduler: &'static str,
    /// Where it is installed.
    pub scope: Scope,
    /// Unit / label / crontab.
    pub name: String,
    /// Files of the job.
    pub files: Vec<PathBuf>,
    /// Its calendar expressions, analysed.
    pub expressions: Vec<ExpressionInfo>,
    /// Scheduler state (`systemctl show` properties, `launchctl print` fields).
    pub state: BTreeMap<String, String>,
    /// Why the state could not be read.
    pub state_error: Option<String>,
}

/// systemd properties shown for the timer and the service.
const TIMER_PROPS: &str = "ActiveState,SubState,LastTriggerUSec,NextElapseUSecRealtime,Result";
const SERVICE_PROPS: &str = "ActiveState,SubState,Result,ExecMainStatus,ExecMainExitTimestamp";

/// `KEY=VALUE` lines of `systemctl show`.
fn parse_show(out: &str, prefix: &str, into: &mut BTreeMap<String, String>) {
    for l in out.lines() {
        if let Some((k, v)) = l.split_once('=') {
            into.insert(format!("{prefix}{k}"), v.to_string());
        }
    }
}

/// Top-level `key = value` fields of `launchctl print` (one tab of indentation).
fn parse_launchctl_print(out: &str, into: &mut BTreeMap<String, String>) {
    const KEYS: [&str; 8] = [
        "state",
        "runs",
        "last exit code",
        "pid",
        "program",
        "working directory",
        "stdout path",
        "stderr path",
    ];
    for l in out.lines() {
        let Some(field) = l.strip_prefix('\t') else {
            continue;
        };
        if field.starts_with('\t') {
            continue;
        }
        if let Some((k, v)) = field.split_once(" = ")
            && KEYS.contains(&k.trim())
        {
            into.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
}

/// Describe every job installed for the configuration file, with scheduler state when the
/// scheduler can tell (`systemctl show`, `launchctl print`; cron keeps none).
pub fn status(
    scheduler: &Scheduler,
    ctx: &JobContext,
    now: DateTime<Utc>,
) -> Result<Vec<JobStatus>, ScheduleError> {
    let mut out = Vec::new();
    for j in installed(scheduler, ctx)? {
        let mut state = BTreeMap::new();
        let mut state_error = None;
        let mut query = |cmd: Vec<String>, f: &mut dyn FnMut(&str)| match run(&cmd, ctx, None) {
            Ok(r) if r.ok => f(&r.stdout),
            Ok(r) => state_error = Some(format!("{}: {}", cmd.join(" "), r.stderr.trim())),
            Err(e) => state_error = Some(e.to_string()),
        };
        match scheduler {
            Scheduler::Systemd => {
                let user: Vec<String> = if j.scope == Scope::User {
                    vec!["--user".into()]
                } else {
                    Vec::new()
                };
                let show = |props: &str, unit: &str| -> Vec<String> {
                    let mut c = vec!["systemctl".to_string()];
                    c.extend(user.iter().cloned());
                    c.extend(["show".into(), "-p".into(), props.into(), unit.into()]);
                    c
                };
                let service = j.name.replace(".timer", ".service");
                if j.name.ends_with(".timer") {
                    query(show(TIMER_PROPS, &j.name), &mut |o| {
                        parse_show(o, "timer.", &mut state)
                    });
                }
                query(show(SERVICE_PROPS, &service), &mut |o| {
                    parse_show(o, "service.", &mut state)
                });
            }
            Scheduler::Launchd => {
                let domain = match j.scope {
                    Scope::System => "system".to_string(),
                    Scope::UserBackground => format!("user/{}", ctx.uid),
                    Scope::User => format!("gui/{}", ctx.uid),
                };
                query(
                    vec![
                        "launchctl".into(),
                        "print".into(),
                        format!("{domain}/{}", j.name),
                    ],
                    &mut |o| parse_launchctl_print(o, &mut state),
                );
            }
            Scheduler::Cron { .. } => {}
        }
        out.push(JobStatus {
            expressions: j
                .calendars
                .iter()
                .map(|e| describe_expression(e, now))
                .collect(),
            profile: j.profile,
            command: j.command,
            scheduler: scheduler.name(),
            scope: j.scope,
            name: j.name,
            files: j.files,
            state,
            state_error,
        });
    }
    Ok(out)
}

/// Human rendering of [`status`] (also used for one expression list).
pub fn render_status(jobs: &[JobStatus]) -> String {
    let mut s = String::new();
    if jobs.is_empty() {
        s.push_str("no scheduled jobs for this configuration file\n");
    }
    for j in jobs {
        let _ = writeln!(
            s,
            "{}@{} ({} {}, {})",
            j.command,
            j.profile,
            j.scheduler,
            match j.scope {
                Scope::System => "system",
                Scope::UserBackground => "user background",
                Scope::User => "user",
            },
            j.name
        );
        for f in &j.files {
            let _ = writeln!(s, "  file: {}", f.display());
        }
        if j.expressions.is_empty() {
            s.push_str("  schedule: none (manual-only job)\n");
        }
        for e in &j.expressions {
            s.push_str(&render_expression(e));
        }
        for (k, v) in &j.state {
            let _ = writeln!(s, "  {k}: {v}");
        }
        if let Some(e) = &j.state_error {
            let _ = writeln!(s, "  state unavailable: {e}");
        }
    }
    s
}

/// Human rendering of one expression, as `systemd-analyze calendar` lays it out.
pub fn render_expression(e: &ExpressionInfo) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "  Original form: {}", e.original);
    if let Some(n) = &e.normalized {
        let _ = writeln!(s, "Normalized form: {n}");
    }
    match (&e.next, &e.error) {
        (_, Some(err)) => {
            let _ = writeln!(s, "          Error: {err}");
        }
        (Some(n), None) => {
            let _ = writeln!(s, "    Next elapse: {}", n.local);
            let _ = writeln!(s, "       (in UTC): {}", n.utc);
            let _ = writeln!(s, "       From now: {}", n.from_now);
        }
        (None, None) => s.push_str("    Next elapse: never\n"),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_deltas() {
        assert_eq!(human_delta(0), "now");
        assert_eq!(human_delta(42), "in 42s");
        assert_eq!(human_delta(3 * 3600 + 12 * 60 + 5), "in 3h 12min");
        assert_eq!(human_delta(2 * 86_400 + 3600), "in 2d 1h");
    }

    #[test]
    fn parses_scheduler_output() {
        let mut m = BTreeMap::new();
        parse_show("ActiveState=active\nResult=success\n", "timer.", &mut m);
        assert_eq!(
            m.get("timer.ActiveState").map(String::as_str),
            Some("active")
        );
        let print = "gui/501/cairn.x.backup = {\n\tactive count = 0\n\tstate = not running\n\truns = 3\n\tlast exit code = 0\n\tenvironment = {\n\t\tstate = nested\n\t}\n}\n";
        let mut m = BTreeMap::new();
        parse_launchctl_print(print, &mut m);
        assert_eq!(m.get("state").map(String::as_str), Some("not running"));
        assert_eq!(m.get("runs").map(String::as_str), Some("3"));
        assert_eq!(m.get("last exit code").map(String::as_str), Some("0"));
        assert!(!m.contains_key("active count"));
    }

    #[test]
    fn describes_expressions() {
        let now = DateTime::parse_from_rfc3339("2025-01-06T04:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let e = describe_expression("*-*-* 05:00:00 UTC", now);
        assert_eq!(e.normalized.as_deref(), Some("*-*-* 05:00:00 UTC"));
        let n = e.next.unwrap();
        assert_eq!(n.utc, "Mon 2025-01-06 05:00:00 UTC");
        assert_eq!(n.from_now, "in 1h");
        assert_eq!(n.rfc3339, "2025-01-06T05:00:00Z");
        let bad = describe_expression("Mon..Fri 25:00", now);
        assert!(bad.error.is_some() && bad.next.is_none());
        let runs = next_runs("*:0/15 UTC", 3, now).unwrap();
        let utc: Vec<&str> = runs.iter().map(|r| r.rfc3339.as_str()).collect();
        assert_eq!(
            utc,
            [
                "2025-01-06T04:15:00Z",
                "2025-01-06T04:30:00Z",
                "2025-01-06T04:45:00Z"
            ]
        );
        assert!(next_runs("nonsense", 1, now).is_err());
    }
}
