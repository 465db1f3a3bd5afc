//! Schedule settings (§17.1, §17.2): the `schedule` key (string, list or table form), flat
//! `schedule-*` keys, `[global.schedule-defaults]`, v2 group schedules, and our extension keys.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::types::ScheduleSpec;

use super::error::{Warning, unknown_key_message};
use super::node::{Node, Origin, Table};
use cairn_calendar::parse_go_duration;

/// Sections that may carry a schedule (retention is deprecated and schedules `forget`).
pub(crate) const SCHEDULABLE: [&str; 6] =
    ["backup", "check", "forget", "prune", "copy", "retention"];

/// Keys of the table form and of `schedule-defaults` (flat keys add the `schedule-` prefix,
/// except `at` and `command-output`).
pub(crate) const SCHEDULE_KEYS: [&str; 23] = [
    "at",
    "permission",
    "priority",
    "log",
    "command-output",
    "lock-mode",
    "lock-wait",
    "capture-environment",
    "ignore-on-battery",
    "ignore-on-battery-less-than",
    "after-network-online",
    "run-level",
    "hide-window",
    "start-when-available",
    "random-delay",
    "accuracy",
    "persistent",
    "hardening",
    "user",
    "group",
    "wrapper",
    "log-truncate",
    "environment",
];

/// Splits a command line with shell-like quoting (whitespace separates, quotes group).
pub(crate) fn split_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut has = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                has = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    has = true;
                }
            }
            (None, c) if c.is_whitespace() => {
                if has || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if has || !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn duration(
    value: &Node,
    key: &str,
    origin: Option<&Origin>,
    warnings: &mut Vec<Warning>,
) -> Option<Duration> {
    let text = value.as_string()?;
    if text.trim().is_empty() {
        return None;
    }
    match parse_go_duration(&text) {
        Ok(d) => Some(d),
        Err(e) => {
            warnings.push(Warning::at(origin, format!("`{key}`: {e}; ignored")));
            None
        }
    }
}

/// Applies one schedule setting (`name` without the `schedule-` prefix) to `spec`. Returns
/// false when the name is unknown.
fn apply_key(
    spec: &mut ScheduleSpec,
    name: &str,
    value: &Node,
    origin: Option<&Origin>,
    warnings: &mut Vec<Warning>,
) -> bool {
    let text = || value.as_string().filter(|s| !s.is_empty());
    let flag = || value.as_bool().unwrap_or(false);
    match name {
        "at" => {
            spec.at = value
                .as_strings()
                .into_iter()
                .filter(|s| !s.trim().is_empty())
                .collect()
        }
        "permission" => spec.permission = text(),
        "priority" => spec.priority = text(),
        "log" => spec.log = text(),
        "command-output" => spec.command_output = text(),
        "lock-mode" => spec.lock_mode = text(),
        "lock-wait" => spec.lock_wait = duration(value, "lock-wait", origin, warnings),
        "capture-environment" => spec.capture_environment = value.as_strings(),
        "ignore-on-battery" => spec.ignore_on_battery = flag(),
        "ignore-on-battery-less-than" => {
            spec.ignore_on_battery_less_than = value
                .as_int()
                .filter(|n| *n > 0)
                .map(|n| u8::try_from(n.min(100)).unwrap_or(100));
        }
        "after-network-online" => spec.after_network_online = flag(),
        "run-level" | "hide-window" | "start-when-available" => {}
        "random-delay" => spec.random_delay = duration(value, "random-delay", origin, warnings),
        "accuracy" => spec.accuracy = duration(value, "accuracy", origin, warnings),
        "persistent" => spec.persistent = value.as_bool(),
        "hardening" => spec.hardening = flag(),
        "user" => spec.user = text(),
        "group" => spec.group = text(),
        "wrapper" => {
            spec.wrapper = match value {
                Node::List(_) => value.as_strings(),
                other => split_words(&other.as_string().unwrap_or_default()),
            }
        }
        "log-truncate" => spec.log_truncate = flag(),
        "environment" => {
            let mut env = BTreeMap::new();
            match value {
                Node::Table(t) => {
                    for (_, e) in t.iter() {
                        env.insert(e.key.clone(), e.value.as_string().unwrap_or_default());
                    }
                }
                other => {
                    for item in other.as_strings() {
                        if let Some((k, v)) = item.split_once('=') {
                            env.insert(k.to_string(), v.to_string());
                        }
                    }
                }
            }
            spec.environment = env;
        }
        _ => return false,
    }
    true
}

/// Applies a table-form schedule (or `schedule-defaults`) onto `spec`.
pub(crate) fn apply_table(spec: &mut ScheduleSpec, table: &Table, warnings: &mut Vec<Warning>) {
    for (k, e) in table.iter() {
        if !apply_key(spec, k, &e.value, Some(&e.origin), warnings) {
            warnings.push(Warning::at(
                Some(&e.origin),
                unknown_key_message("schedule setting", &e.key, SCHEDULE_KEYS),
            ));
        }
    }
}

/// The job of one section, or None when the section declares no schedule expression.
/// `defaults` is `[global.schedule-defaults]`.
pub(crate) fn section_schedule(
    profile: &str,
    command: &str,
    section: &Table,
    defaults: &ScheduleSpec,
    warnings: &mut Vec<Warning>,
) -> Option<ScheduleSpec> {
    let value = section.get("schedule")?;
    let mut spec = defaults.clone();
    spec.profile = profile.to_string();
    spec.command = command.to_string();
    spec.is_group = false;
    spec.at = Vec::new();
    let table_form = matches!(value, Node::Table(_));
    match value {
        Node::Table(t) => apply_table(&mut spec, t, warnings),
        other => {
            apply_key(&mut spec, "at", other, section.origin("schedule"), warnings);
        }
    }
    for (k, e) in section.iter() {
        if let Some(name) = k.strip_prefix("schedule-")
            && name != "at"
            && !apply_key(&mut spec, name, &e.value, Some(&e.origin), warnings)
        {
            let flat: Vec<String> = SCHEDULE_KEYS
                .iter()
                .map(|k| format!("schedule-{k}"))
                .collect();
            warnings.push(Warning::at(
                Some(&e.origin),
                unknown_key_message("schedule setting", &e.key, flat.iter().map(String::as_str)),
            ));
        }
    }
    if spec.at.is_empty() && !table_form {
        return None;
    }
    Some(spec)
}

/// A profile's v2 `schedules` table (`schedules.<command> = { at = …, … }` or
/// `schedules.<command> = "daily"`), over `[global.schedule-defaults]`.
pub(crate) fn profile_schedules(
    profile: &str,
    table: &Table,
    defaults: &ScheduleSpec,
    warnings: &mut Vec<Warning>,
) -> Vec<ScheduleSpec> {
    let base = ScheduleSpec {
        profile: profile.to_string(),
        is_group: false,
        ..defaults.clone()
    };
    schedules_table(table, &base, warnings)
}

/// A v2 group's `schedules` table: command → schedule (string, list or table form).
pub(crate) fn group_schedules(
    group: &str,
    table: &Table,
    warnings: &mut Vec<Warning>,
) -> Vec<ScheduleSpec> {
    let base = ScheduleSpec {
        profile: group.to_string(),
        is_group: true,
        ..ScheduleSpec::default()
    };
    schedules_table(table, &base, warnings)
}

/// One schedule per command of a `schedules` table, each starting from `base` (its `at` list
/// replaced): a table value sets schedule keys, any other value is the `at` list.
fn schedules_table(
    table: &Table,
    base: &ScheduleSpec,
    warnings: &mut Vec<Warning>,
) -> Vec<ScheduleSpec> {
    let mut out = Vec::new();
    for (command, e) in table.iter() {
        let mut spec = ScheduleSpec {
            command: command.clone(),
            at: Vec::new(),
            ..base.clone()
        };
        match &e.value {
            Node::Table(t) => apply_table(&mut spec, t, warnings),
            other => {
                apply_key(&mut spec, "at", other, Some(&e.origin), warnings);
            }
        }
        out.push(spec);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse::{Format, parse_text};
    use std::sync::Arc;

    fn toml(text: &str) -> Table {
        parse_text(text, Format::Toml, &Arc::from("t.toml")).unwrap()
    }

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(split_words("fdautil exec"), vec!["fdautil", "exec"]);
        assert_eq!(
            split_words("a 'b c' \"d\\\"e\" f\\ g ''"),
            vec!["a", "b c", "d\"e", "f g", ""]
        );
    }

    #[test]
    fn flat_keys_override_table_and_defaults() {
        let t = toml(
            "schedule = { at = ['05:00', ''], permission = 'user', lock-wait = '30m', random-delay = '5m' }\nschedule-permission = 'system'\nschedule-persistent = true\nschedule-wrapper = 'fdautil exec'\nschedule-environment = ['TZ=UTC']\n",
        );
        let defaults = ScheduleSpec {
            priority: Some("background".into()),
            ..ScheduleSpec::default()
        };
        let mut w = Vec::new();
        let s = section_schedule("vps", "backup", &t, &defaults, &mut w).unwrap();
        assert_eq!(s.at, vec!["05:00"]);
        assert_eq!(s.permission.as_deref(), Some("system"));
        assert_eq!(s.priority.as_deref(), Some("background"));
        assert_eq!(s.lock_wait, Some(Duration::from_secs(1800)));
        assert_eq!(s.random_delay, Some(Duration::from_secs(300)));
        assert_eq!(s.persistent, Some(true));
        assert_eq!(s.wrapper, vec!["fdautil", "exec"]);
        assert_eq!(s.environment.get("TZ").map(String::as_str), Some("UTC"));
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn empty_expressions_mean_no_job_unless_table_form() {
        let mut w = Vec::new();
        let d = ScheduleSpec::default();
        assert!(section_schedule("p", "backup", &toml("schedule = ''\n"), &d, &mut w).is_none());
        assert!(section_schedule("p", "backup", &toml("x = 1\n"), &d, &mut w).is_none());
        let manual = section_schedule(
            "p",
            "backup",
            &toml("schedule = { permission = 'user' }\n"),
            &d,
            &mut w,
        );
        assert!(manual.unwrap().at.is_empty());
        let s = section_schedule(
            "p",
            "check",
            &toml("schedule = ['Mon *:00', 'daily']\nschedule-lock-wiat = '1m'\n"),
            &d,
            &mut w,
        )
        .unwrap();
        assert_eq!(s.at, vec!["Mon *:00", "daily"]);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].message.contains("did you mean `schedule-lock-wait`"),
            "{:?}",
            w
        );
    }
}

#[cfg(test)]
mod profile_schedules_tests {
    use super::*;
    use crate::config::parse::{Format, parse_text};
    use std::sync::Arc;

    #[test]
    fn v2_profile_schedules_table() {
        let t = parse_text(
            "[schedules]\nbackup = { at = [\"daily\"], permission = \"system\" }\ncheck = \"weekly\"\n",
            Format::Toml,
            &Arc::from("p.toml"),
        )
        .unwrap();
        let defaults = ScheduleSpec {
            priority: Some("background".into()),
            ..ScheduleSpec::default()
        };
        let mut w = Vec::new();
        let specs = profile_schedules("home", t.table("schedules").unwrap(), &defaults, &mut w);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(specs.len(), 2);
        let b = specs.iter().find(|s| s.command == "backup").unwrap();
        assert_eq!(b.at, ["daily"]);
        assert_eq!(b.permission.as_deref(), Some("system"));
        assert_eq!(b.priority.as_deref(), Some("background"));
        assert!(!b.is_group);
        let c = specs.iter().find(|s| s.command == "check").unwrap();
        assert_eq!(c.at, ["weekly"]);
    }
}
