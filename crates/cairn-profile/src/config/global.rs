//! Decoding `[global]` (§2) and `[groups]` (§1.7, §6.2).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::types::{Global, Group};

use super::error::{ConfigError, ConfigErrorKind, Warning, unknown_key_message};
use super::node::{Node, Table};
use super::paths::absolute_prefix;
use super::schedule::{apply_table, group_schedules};
use cairn_calendar::parse_go_duration;

/// Every key of `[global]` we know.
const GLOBAL_KEYS: [&str; 26] = [
    "default-command",
    "initialize",
    "priority",
    "nice",
    "ionice",
    "ionice-class",
    "ionice-level",
    "min-memory",
    "prevent-sleep",
    "shell",
    "restic-lock-retry-after",
    "restic-stale-lock-age",
    "scheduler",
    "schedule-defaults",
    "systemd-unit-template",
    "systemd-timer-template",
    "log",
    "command-output",
    "send-timeout",
    "ca-certificates",
    "group-continue-on-error",
    "restic-binary",
    "restic-version",
    "restic-arguments-filter",
    "legacy-arguments",
    "prevent-auto-repository-file",
];

/// Keys that only make sense when driving an external restic binary.
const IGNORED_KEYS: [&str; 5] = [
    "restic-binary",
    "restic-version",
    "restic-arguments-filter",
    "legacy-arguments",
    "prevent-auto-repository-file",
];

fn go_duration(table: &Table, key: &str) -> Result<Option<Duration>, ConfigError> {
    let Some(text) = table.string(key).filter(|s| !s.trim().is_empty()) else {
        return Ok(None);
    };
    parse_go_duration(&text).map(Some).map_err(|e| {
        ConfigError::at_origin(
            ConfigErrorKind::Invalid,
            table.origin(key),
            format!("`{key}`: {e}"),
        )
    })
}

fn int_in(table: &Table, key: &str, min: i64, max: i64) -> Result<Option<i64>, ConfigError> {
    match table.get(key) {
        None => Ok(None),
        Some(v) => match v.as_int() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ConfigError::at_origin(
                ConfigErrorKind::Invalid,
                table.origin(key),
                format!("`{key}` must be an integer from {min} to {max}"),
            )),
        },
    }
}

fn config_path(table: &Table, key: &str, dir: &Path) -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    table
        .string(key)
        .filter(|s| !s.is_empty())
        .map(|s| PathBuf::from(absolute_prefix(&s, dir, home.as_deref())))
}

/// Decodes `[global]`; relative paths resolve against `dir` (the configuration directory).
pub(crate) fn decode_global(
    table: &Table,
    dir: &Path,
) -> Result<(Global, Vec<Warning>), ConfigError> {
    let mut g = Global::default();
    let mut warnings = Vec::new();
    for (k, e) in table.iter() {
        if IGNORED_KEYS.contains(&k.as_str()) {
            warnings.push(Warning::at(
                Some(&e.origin),
                format!(
                    "`{}` is for driving an external restic; ignored (the engine is built in)",
                    e.key
                ),
            ));
        } else if !GLOBAL_KEYS.contains(&k.as_str()) {
            warnings.push(Warning::at(
                Some(&e.origin),
                unknown_key_message("global setting", &e.key, GLOBAL_KEYS),
            ));
        }
    }
    if let Some(s) = table.string("default-command").filter(|s| !s.is_empty()) {
        g.default_command = s;
    }
    g.initialize = table.bool("initialize").unwrap_or(false);
    g.priority = table
        .string("priority")
        .filter(|s| !s.is_empty())
        .map(|s| s.to_lowercase());
    if let Some(p) = &g.priority
        && !["idle", "background", "low", "normal", "high", "highest"].contains(&p.as_str())
    {
        return Err(ConfigError::at_origin(
            ConfigErrorKind::Invalid,
            table.origin("priority"),
            format!(
                "`priority = \"{p}\"` is not one of idle, background, low, normal, high, highest"
            ),
        ));
    }
    if let Some(n) = int_in(table, "nice", -20, 19)? {
        g.nice = i32::try_from(n).unwrap_or(0);
    }
    g.ionice = table.bool("ionice").unwrap_or(false);
    if let Some(n) = int_in(table, "ionice-class", 1, 3)? {
        g.ionice_class = u8::try_from(n).unwrap_or(2);
    }
    if let Some(n) = int_in(table, "ionice-level", 0, 7)? {
        g.ionice_level = u8::try_from(n).unwrap_or(0);
    }
    if let Some(n) = int_in(table, "min-memory", 0, i64::MAX)? {
        g.min_memory = u64::try_from(n).unwrap_or(0);
    }
    g.prevent_sleep = table.bool("prevent-sleep").unwrap_or(false);
    g.shell = table
        .strings("shell")
        .into_iter()
        .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("auto"))
        .collect();
    if let Some(d) = go_duration(table, "restic-lock-retry-after")? {
        g.restic_lock_retry_after = d.clamp(Duration::from_secs(15), Duration::from_secs(1800));
    }
    if table.contains("restic-stale-lock-age") {
        g.restic_stale_lock_age = match go_duration(table, "restic-stale-lock-age")? {
            None => None,
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d.max(Duration::from_secs(900))),
        };
    }
    if let Some(s) = table.string("scheduler").filter(|s| !s.is_empty()) {
        g.scheduler = s;
    }
    if let Some(d) = table.table("schedule-defaults") {
        apply_table(&mut g.schedule_defaults, d, &mut warnings);
        g.schedule_defaults.at.clear();
    }
    g.systemd_unit_template = config_path(table, "systemd-unit-template", dir);
    g.systemd_timer_template = config_path(table, "systemd-timer-template", dir);
    g.log = table.string("log").filter(|s| !s.is_empty());
    if let Some(s) = table.string("command-output").filter(|s| !s.is_empty()) {
        g.command_output = s;
    }
    if let Some(d) = go_duration(table, "send-timeout")? {
        g.send_timeout = d;
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    g.ca_certificates = table
        .strings("ca-certificates")
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(|s| PathBuf::from(absolute_prefix(&s, dir, home.as_deref())))
        .collect();
    g.group_continue_on_error = table.bool("group-continue-on-error").unwrap_or(false);
    Ok((g, warnings))
}

/// Decodes the groups table: `name = [profiles]` (v1) or `[name] profiles = [...]` (v2).
pub(crate) fn decode_groups(table: &Table) -> Result<Vec<Group>, ConfigError> {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for (name, e) in table.iter() {
        let mut g = Group {
            name: name.clone(),
            ..Group::default()
        };
        match &e.value {
            Node::Table(t) => {
                g.description = t.string("description").unwrap_or_default();
                g.profiles = t.strings("profiles");
                g.continue_on_error = t.bool("continue-on-error");
                if let Some(s) = t.table("schedules") {
                    g.schedules = group_schedules(name, s, &mut warnings);
                }
            }
            Node::List(_) | Node::Str(_) => g.profiles = e.value.as_strings(),
            other => {
                return Err(ConfigError::at_origin(
                    ConfigErrorKind::Invalid,
                    Some(&e.origin),
                    format!(
                        "group `{name}` is a {}; write a list of profile names",
                        other.type_name()
                    ),
                ));
            }
        }
        out.push(g);
    }
    Ok(out)
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
    fn seed_global() {
        let t = toml(
            "prevent-sleep = true\nrestic-lock-retry-after = '1m'\nrestic-stale-lock-age = '1h'\nshell = 'zsh'\n",
        );
        let (g, w) = decode_global(&t, Path::new("/cfg")).unwrap();
        assert!(g.prevent_sleep);
        assert_eq!(g.restic_lock_retry_after, Duration::from_secs(60));
        assert_eq!(g.restic_stale_lock_age, Some(Duration::from_secs(3600)));
        assert_eq!(g.shell, vec!["zsh"]);
        assert_eq!(g.default_command, "snapshots");
        assert!(w.is_empty());
    }

    #[test]
    fn clamps_paths_and_warnings() {
        let t = toml(
            "restic-lock-retry-after = '1s'\nrestic-stale-lock-age = '0'\nrestic-binary = '/x'\nprevent-slep = true\nca-certificates = ['ca.pem']\nshell = ['auto']\n[schedule-defaults]\nlock-wait = '2h'\npermission = 'system'\n",
        );
        let (g, w) = decode_global(&t, Path::new("/cfg")).unwrap();
        assert_eq!(g.restic_lock_retry_after, Duration::from_secs(15));
        assert_eq!(g.restic_stale_lock_age, None);
        assert_eq!(g.ca_certificates, vec![PathBuf::from("/cfg/ca.pem")]);
        assert!(g.shell.is_empty());
        assert_eq!(
            g.schedule_defaults.lock_wait,
            Some(Duration::from_secs(7200))
        );
        assert_eq!(g.schedule_defaults.permission.as_deref(), Some("system"));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w.iter()
                .any(|w| w.message.contains("did you mean `prevent-sleep`"))
        );
        let bad = toml("restic-lock-retry-after = '1d'\n");
        let e = decode_global(&bad, Path::new("/cfg")).unwrap_err();
        assert_eq!(e.line, Some(1));
        let bad = toml("nice = 40\n");
        assert!(decode_global(&bad, Path::new("/cfg")).is_err());
    }
}
