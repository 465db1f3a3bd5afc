//! From a resolved profile to engine command lines (§4, §5): which keys reach a command, how
//! values become flags, special values (`host`/`tag`/`path = true`), path resolution, aliases,
//! backup sources, `copy`/`init` repository keys, and a lint of unknown flags.

use std::collections::BTreeMap;

use crate::config::node::{Node, Origin, Table};
use crate::config::paths::{absolute_prefix, expand_env, join_clean, resolve_globs};
use crate::config::{ConfigError, ConfigErrorKind, Profile, Warning, suggest};
use crate::types::{FlagKind, FlagSchema};

/// Profile-level keys that never reach the engine (§3.1).
pub const PROFILE_ONLY: [&str; 21] = [
    "inherit",
    "description",
    "base-dir",
    "lock",
    "force-inactive-lock",
    "initialize",
    "env",
    "env-file",
    "status-file",
    "prometheus-save-to-file",
    "prometheus-push",
    "prometheus-push-job",
    "prometheus-push-format",
    "prometheus-labels",
    "stream-error",
    "systemd-drop-in-files",
    "run-before",
    "run-after",
    "run-after-fail",
    "run-finally",
    "use",
];

/// Section keys that never reach the engine, besides hooks, `send-*`, `schedule*` and
/// `healthchecks-*` (§5).
fn section_only(section: &str, key: &str) -> bool {
    match section {
        "backup" => [
            "check-before",
            "check-after",
            "no-error-on-warning",
            "stdin-command",
            "source",
            "source-base",
            "source-relative",
            "extended-status",
        ]
        .contains(&key),
        "retention" => ["before-backup", "after-backup"].contains(&key),
        "copy" => ["initialize", "initialize-copy-chunker-params", "snapshot"].contains(&key),
        _ => false,
    }
}

fn orchestration(key: &str) -> bool {
    HOOK_KEYS.contains(&key)
        || key == "schedule"
        || key == "schedules"
        || key.starts_with("schedule-")
        || key.starts_with("healthchecks-")
        || key == "use"
        || key == "inherit"
        || key == "description"
}

/// Keys whose values are paths relative to the configuration directory (§4.5).
const CONFIG_RELATIVE: [&str; 12] = [
    "password-file",
    "repository-file",
    "cache-dir",
    "cacert",
    "tls-client-cert",
    "exclude-file",
    "iexclude-file",
    "files-from",
    "files-from-raw",
    "files-from-verbatim",
    "from-password-file",
    "from-repository-file",
];

/// Keys whose values get `$VAR` and `~` expansion but no directory prefix.
const EXPANDED: [&str; 4] = ["exclude", "iexclude", "repository", "from-repository"];

/// Keys where an empty string is an explicit empty value (`--tag=`).
const EMPTY_ALLOWED: [&str; 3] = ["tag", "keep-tag", "group-by"];

/// Keys naming a repository in `copy` / `init` (destination spelling → engine flag).
const REPO_KEYS: [(&str, &str); 5] = [
    ("repository", "repo"),
    ("repository-file", "repository-file"),
    ("password-file", "password-file"),
    ("password-command", "password-command"),
    ("key-hint", "key-hint"),
];

/// How a command reads the profile.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    /// Engine command (`forget` for retention, `repair snapshots`).
    engine: String,
    /// Sections read, lowest priority first.
    sections: Vec<String>,
}

/// The section that holds a command's own hooks and settings: `repair snapshots` →
/// `repair-snapshots`, `backup` → `backup`, `retention` → `retention`.
pub fn own_section(command: &str) -> String {
    plan(command).sections.pop().unwrap_or_default()
}

/// The engine command a typed command runs: `repair-snapshots` → `repair snapshots`.
pub fn engine_command(command: &str) -> String {
    plan(command).engine
}

fn plan(command: &str) -> Plan {
    let c = command.trim().to_lowercase();
    if c == "retention" {
        return Plan {
            engine: "forget".into(),
            sections: vec!["retention".into()],
        };
    }
    let words: Vec<&str> = c.split_whitespace().collect();
    let (first, second) = match words.as_slice() {
        [a, b] => (a.to_string(), Some(b.to_string())),
        [a] => match a.split_once('-') {
            Some((p, rest)) if ["key", "repair"].contains(&p) => {
                (p.to_string(), Some(rest.to_string()))
            }
            _ => (a.to_string(), None),
        },
        _ => (c.clone(), None),
    };
    match second {
        Some(sub) => Plan {
            engine: format!("{first} {sub}"),
            sections: vec![first.clone(), format!("{first}-{sub}")],
        },
        None => Plan {
            engine: first.clone(),
            sections: vec![first],
        },
    }
}

/// One configuration value on its way to a flag.
#[derive(Debug, Clone)]
struct Item {
    flag: String,
    key: String,
    node: Node,
    origin: Origin,
}

/// Backup sources as the engine gets them: `$VAR`/`~` expanded, joined to `source-base` and
/// `base-dir`, globs expanded, a leading `-` protected with `./` (§4.5).
pub fn backup_sources(profile: &Profile) -> Vec<String> {
    let Some(backup) = profile
        .level("backup")
        .filter(|_| profile.has_section("backup"))
    else {
        return Vec::new();
    };
    resolve_sources(profile, backup, &backup.strings("source"))
}

fn resolve_sources(profile: &Profile, backup: &Table, sources: &[String]) -> Vec<String> {
    let relative = backup.bool("source-relative").unwrap_or(false);
    let source_base = backup
        .string("source-base")
        .map(|b| profile.expand(b.trim()))
        .filter(|b| !b.is_empty());
    let base_dir = profile.base_dir();
    let home = profile.home();
    let fixed: Vec<String> = sources
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| {
            let mut v = profile.expand(s);
            if !relative {
                if let Some(b) = &source_base {
                    v = absolute_prefix(&v, std::path::Path::new(b), home.as_deref());
                }
                if let Some(b) = &base_dir {
                    v = absolute_prefix(&v, b, home.as_deref());
                }
            }
            v
        })
        .collect();
    resolve_globs(fixed)
        .into_iter()
        .map(|s| {
            if s.starts_with('-') {
                format!("./{s}")
            } else {
                s
            }
        })
        .collect()
}

/// The tags of `[p.backup]` joined with commas, None when it has none.
fn backup_tags(profile: &Profile) -> Option<String> {
    let tags = match profile
        .level("backup")
        .filter(|_| profile.has_section("backup"))?
        .get("tag")?
    {
        Node::Bool(_) => return None,
        other => other.as_strings(),
    };
    let tags: Vec<String> = tags.into_iter().collect();
    if tags.is_empty() {
        None
    } else {
        Some(tags.join(","))
    }
}

/// Absolute sources for `path = true`.
fn source_paths(profile: &Profile) -> Vec<String> {
    let Some(backup) = profile
        .level("backup")
        .filter(|_| profile.has_section("backup"))
    else {
        return Vec::new();
    };
    resolve_sources(profile, backup, &backup.strings("source"))
        .into_iter()
        .map(|s| join_clean(&profile.current_dir, &s).display().to_string())
        .collect()
}

/// Resolves special values and paths of one level (§4.4, §4.5). Returns None when the key is
/// removed (`tag = true` without backup tags).
fn resolve_value(profile: &Profile, key: &str, node: &Node) -> Option<Node> {
    match (key, node) {
        ("host", Node::Bool(true)) => Some(Node::Str(profile.hostname.clone())),
        ("tag", Node::Bool(true)) => backup_tags(profile).map(Node::Str),
        ("path", Node::Bool(true)) => Some(Node::List(
            source_paths(profile).into_iter().map(Node::Str).collect(),
        )),
        ("path", Node::Str(_) | Node::List(_)) => Some(Node::List(
            node.as_strings()
                .into_iter()
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let v = expand_env(&p, &|n| profile.lookup_var(n));
                    Node::Str(join_clean(&profile.current_dir, &v).display().to_string())
                })
                .collect(),
        )),
        (k, Node::Str(_) | Node::List(_)) if CONFIG_RELATIVE.contains(&k) => {
            Some(map_strings(node, &|s| profile.config_path(s)))
        }
        (k, Node::Str(_) | Node::List(_)) if EXPANDED.contains(&k) => {
            Some(map_strings(node, &|s| profile.expand(s)))
        }
        _ => Some(node.clone()),
    }
}

fn map_strings(node: &Node, f: &dyn Fn(&str) -> String) -> Node {
    match node {
        Node::Str(s) if s.is_empty() => node.clone(),
        Node::Str(s) => Node::Str(f(s)),
        Node::List(items) => Node::List(items.iter().map(|i| map_strings(i, f)).collect()),
        other => other.clone(),
    }
}

/// The items of one level, special values resolved, engine-only keys kept.
fn level_items(
    profile: &Profile,
    plan: &Plan,
    section: Option<&str>,
    table: &Table,
) -> Result<Vec<Item>, ConfigError> {
    let mut out = Vec::new();
    let copy_to = plan.engine == "copy" && is_copy_to(profile);
    for (k, e) in table.iter() {
        if matches!(e.value, Node::Null) || orchestration(k) {
            continue;
        }
        match section {
            None => {
                if PROFILE_ONLY.contains(&k.as_str()) || matches!(e.value, Node::Table(_)) {
                    continue;
                }
            }
            Some(s) => {
                if section_only(s, k) {
                    continue;
                }
                if let Node::Table(_) = e.value {
                    return Err(ConfigError::at_origin(
                        ConfigErrorKind::Invalid,
                        Some(&e.origin),
                        format!(
                            "`{}` in [{s}] is a table; an engine option takes a value or a list",
                            e.key
                        ),
                    ));
                }
            }
        }
        let Some(node) = resolve_value(profile, k, &e.value) else {
            continue;
        };
        let flag = flag_name(plan, section, k, copy_to);
        out.push(Item {
            flag,
            key: k.clone(),
            node,
            origin: e.origin.clone(),
        });
    }
    if section == Some("backup") && !table.strings("stdin-command").is_empty() {
        out.push(Item {
            flag: "stdin".into(),
            key: "stdin".into(),
            node: Node::Bool(true),
            origin: table.origin("stdin-command").cloned().unwrap_or_default(),
        });
    }
    if section == Some("retention") && !table.contains("path") && profile.has_section("backup") {
        out.push(Item {
            flag: "path".into(),
            key: "path".into(),
            node: Node::List(source_paths(profile).into_iter().map(Node::Str).collect()),
            origin: Origin::default(),
        });
    }
    Ok(out)
}

fn is_copy_to(profile: &Profile) -> bool {
    let Some(copy) = profile
        .level("copy")
        .filter(|_| profile.has_section("copy"))
    else {
        return false;
    };
    [
        "repository",
        "repository-file",
        "to-repository",
        "to-repository-file",
    ]
    .iter()
    .any(|k| copy.string(k).is_some_and(|v| !v.is_empty()))
}

/// The engine flag for config key `key` at a level (aliases, `copy`/`init` repository keys).
fn flag_name(plan: &Plan, section: Option<&str>, key: &str, copy_to: bool) -> String {
    let repo_flag = |k: &str| REPO_KEYS.iter().find(|(c, _)| *c == k).map(|(_, f)| *f);
    let from = |k: &str| -> Option<String> {
        let rest = k.strip_prefix("from-")?;
        Some(format!("from-{}", repo_flag(rest)?))
    };
    if plan.engine == "copy" {
        match section {
            None if copy_to => {
                if let Some(f) = repo_flag(key) {
                    return format!("from-{f}");
                }
            }
            Some(_) => {
                let k = key.strip_prefix("to-").unwrap_or(key);
                if let Some(f) = repo_flag(k) {
                    return f.to_string();
                }
                if let Some(f) = from(key) {
                    return f;
                }
            }
            None => {}
        }
    }
    if let Some(f) = from(key) {
        return f;
    }
    if key == "repository" {
        return "repo".into();
    }
    key.to_string()
}

/// Renders one value as flags (§4.2). An empty result means "absent".
fn render(
    flag: &str,
    node: &Node,
    kind: FlagKind,
    origin: &Origin,
) -> Result<Vec<String>, ConfigError> {
    let plain = |v: String| format!("--{flag}={v}");
    Ok(match node {
        Node::Null => Vec::new(),
        Node::Bool(true) => vec![format!("--{flag}")],
        Node::Bool(false) => Vec::new(),
        Node::Int(0) => Vec::new(),
        Node::Float(f) if *f == 0.0 => Vec::new(),
        Node::Int(n) if kind == FlagKind::Count => match n {
            1 => vec![format!("--{flag}")],
            n if *n > 1 => vec![plain(n.to_string())],
            _ => Vec::new(),
        },
        Node::Int(_) | Node::Float(_) => vec![plain(node.as_string().unwrap_or_default())],
        Node::Str(s) if s.is_empty() => {
            if EMPTY_ALLOWED.contains(&flag) {
                vec![format!("--{flag}=")]
            } else {
                Vec::new()
            }
        }
        Node::Str(s) => match kind {
            FlagKind::Bool => match crate::config::node::parse_go_bool(s.trim()) {
                Some(true) => vec![format!("--{flag}")],
                Some(false) => Vec::new(),
                None => vec![plain(s.clone())],
            },
            FlagKind::Count => match node.as_int() {
                Some(n) => return render(flag, &Node::Int(n), kind, origin),
                None => match crate::config::node::parse_go_bool(s.trim()) {
                    Some(true) => vec![format!("--{flag}")],
                    Some(false) => Vec::new(),
                    None => vec![plain(s.clone())],
                },
            },
            _ => vec![plain(s.clone())],
        },
        Node::List(items) => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    Node::Str(s) if s.is_empty() => {
                        if EMPTY_ALLOWED.contains(&flag) {
                            out.push(format!("--{flag}="));
                        }
                    }
                    Node::Table(_) | Node::List(_) => {
                        return Err(ConfigError::at_origin(
                            ConfigErrorKind::Invalid,
                            Some(origin),
                            format!(
                                "`{flag}` holds a nested list or table; write a list of values"
                            ),
                        ));
                    }
                    Node::Null => {}
                    other => out.push(plain(other.as_string().unwrap_or_default())),
                }
            }
            out
        }
        Node::Table(_) => {
            return Err(ConfigError::at_origin(
                ConfigErrorKind::Invalid,
                Some(origin),
                format!("`{flag}` is a table; an engine option takes a value or a list"),
            ));
        }
    })
}

/// Flags that select snapshots; `check` only gets them from `[p.check]` (§22.6 h).
const SNAPSHOT_FILTERS: [&str; 3] = ["host", "tag", "path"];

/// The engine arguments for `command` run on `profile` (§4.1–§4.5, §5): profile-level options
/// and other flags, overlaid by the command's section (multi-word commands: `repair snapshots`
/// reads `[p.repair]`, then `[p.repair-snapshots]` which wins; `key add` reads `[p.key]` and
/// `[p.key-add]`), filtered by `schema.flag(command, name)`, rendered with the §4.2 rules
/// (`true` → `--flag`, `false`/0/`""` absent — a section's absent value leaves the profile
/// level's in place — except `tag`/`keep-tag`/`group-by` empty values, lists repeat,
/// `verbose = N` → `--verbose=N`), special values (§4.4), path resolution (§4.5), `source` as
/// positional arguments for backup, aliases (`repository` → `--repo`), `retention` producing
/// `forget` arguments, `copy`/`init` `from-*`/`to-*` keys, `snapshot` of `[p.copy]` as
/// positional arguments. Orchestration keys never appear. Flags are sorted by name, then
/// positional arguments follow. `"retention"` and `"check"` give the implicit steps of a
/// backup run.
pub fn command_args(
    profile: &Profile,
    command: &str,
    schema: &dyn FlagSchema,
) -> Result<Vec<String>, ConfigError> {
    let plan = plan(command);
    let mut chosen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut levels: Vec<(Option<String>, Vec<Item>)> = Vec::new();
    levels.push((None, level_items(profile, &plan, None, &profile.tree)?));
    for s in &plan.sections {
        if let Some(t) = profile.tree.table(s) {
            levels.push((Some(s.clone()), level_items(profile, &plan, Some(s), t)?));
        }
    }
    for (section, items) in &levels {
        for item in items {
            if plan.engine == "check"
                && section.is_none()
                && SNAPSHOT_FILTERS.contains(&item.key.as_str())
            {
                continue;
            }
            let Some(kind) = schema.flag(&plan.engine, &item.flag) else {
                continue;
            };
            let args = render(&item.flag, &item.node, kind, &item.origin)?;
            if args.is_empty() {
                continue;
            }
            chosen.insert(item.flag.clone(), args);
        }
    }
    let mut out: Vec<String> = chosen.into_values().flatten().collect();
    if plan.engine == "backup" {
        out.extend(backup_sources(profile));
    }
    if plan.engine == "copy" {
        out.extend(
            profile
                .list_in("copy", "snapshot")
                .into_iter()
                .filter(|s| !s.is_empty()),
        );
    }
    Ok(out)
}

/// Commands whose flags a profile-level key may be meant for.
const COMMON_COMMANDS: [&str; 20] = [
    "backup",
    "forget",
    "check",
    "prune",
    "snapshots",
    "ls",
    "find",
    "restore",
    "copy",
    "init",
    "stats",
    "diff",
    "tag",
    "cache",
    "key add",
    "repair snapshots",
    "rewrite",
    "dump",
    "mount",
    "unlock",
];

/// Sections that are not engine commands.
const NON_COMMAND_SECTIONS: [&str; 4] = ["retention", "env", "prometheus-labels", "schedules"];

/// Keys that no command accepts (typos, flags of another engine), with the nearest valid name:
/// profile-level keys no common command accepts, section keys the section's command does not
/// accept, and sections that name no command.
pub fn lint(profile: &Profile, schema: &dyn FlagSchema) -> Vec<Warning> {
    let mut out = Vec::new();
    let commands: Vec<&str> = COMMON_COMMANDS
        .iter()
        .copied()
        .filter(|c| schema.has_command(c))
        .collect();
    let all_flags: Vec<String> = {
        let mut v: Vec<String> = commands.iter().flat_map(|c| schema.flags(c)).collect();
        v.sort();
        v.dedup();
        v
    };
    let top_plan = plan("backup");
    if let Ok(items) = level_items(profile, &top_plan, None, &profile.tree) {
        for item in items {
            let flag = if item.key == "repository" {
                "repo"
            } else {
                item.flag.as_str()
            };
            if !commands.iter().any(|c| schema.flag(c, flag).is_some()) {
                out.push(unknown_flag(&item, "any command", &all_flags));
            }
        }
    }
    for section in profile.sections() {
        if NON_COMMAND_SECTIONS.contains(&section.as_str()) {
            if section == "retention" {
                lint_section(profile, schema, "retention", &mut out);
            }
            continue;
        }
        let p = plan(&section);
        if !schema.has_command(&p.engine) {
            let names: Vec<&str> = COMMON_COMMANDS
                .iter()
                .map(|c| match *c {
                    "key add" => "key-add",
                    "repair snapshots" => "repair-snapshots",
                    other => other,
                })
                .collect();
            let origin = profile.tree.origin(&section).cloned();
            let msg = match suggest(&section, names.iter().copied()) {
                Some(s) => format!("section [{section}] names no command; did you mean [{s}]?"),
                None => format!("section [{section}] names no command; its options are never used"),
            };
            out.push(Warning::at(origin.as_ref(), msg));
            continue;
        }
        lint_section(profile, schema, &section, &mut out);
    }
    out
}

fn lint_section(profile: &Profile, schema: &dyn FlagSchema, section: &str, out: &mut Vec<Warning>) {
    let p = plan(section);
    let Some(table) = profile.tree.table(section) else {
        return;
    };
    let Ok(items) = level_items(profile, &p, Some(section), table) else {
        return;
    };
    let flags = schema.flags(&p.engine);
    for item in items {
        if schema.flag(&p.engine, &item.flag).is_none() {
            out.push(unknown_flag(&item, &format!("`{}`", p.engine), &flags));
        }
    }
}

/// Shell hooks (§8) and HTTP hooks (§10): orchestration, never engine flags.
const HOOK_KEYS: [&str; 8] = [
    "run-before",
    "run-after",
    "run-after-fail",
    "run-finally",
    "send-before",
    "send-after",
    "send-after-fail",
    "send-finally",
];

/// Orchestration keys offered as suggestions next to engine flags (also the non-engine keys of
/// the JSON schema): the hooks and these.
const OTHER_ORCHESTRATION_KEYS: [&str; 16] = [
    "schedule",
    "schedule-permission",
    "schedule-lock-wait",
    "schedule-log",
    "healthchecks-url",
    "healthchecks-url-command",
    "check-before",
    "check-after",
    "no-error-on-warning",
    "stdin-command",
    "source",
    "source-base",
    "source-relative",
    "before-backup",
    "after-backup",
    "status-file",
];

/// Orchestration keys offered as suggestions next to engine flags (also the non-engine keys of
/// the JSON schema).
pub fn orchestration_keys() -> impl Iterator<Item = &'static str> {
    HOOK_KEYS.into_iter().chain(OTHER_ORCHESTRATION_KEYS)
}

fn unknown_flag(item: &Item, what: &str, flags: &[String]) -> Warning {
    let orchestration: Vec<&str> = orchestration_keys().collect();
    let candidates = flags
        .iter()
        .map(String::as_str)
        .chain(orchestration)
        .chain(PROFILE_ONLY);
    let msg = match suggest(&item.key, candidates) {
        Some(s) => format!(
            "`{}` is not an option of {what} (ignored); did you mean `{s}`?",
            item.key
        ),
        None => format!("`{}` is not an option of {what} (ignored)", item.key),
    };
    Warning::at(Some(&item.origin), msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans() {
        assert_eq!(
            plan("repair snapshots").sections,
            vec!["repair", "repair-snapshots"]
        );
        assert_eq!(plan("repair-snapshots").engine, "repair snapshots");
        assert_eq!(plan("key add").sections, vec!["key", "key-add"]);
        assert_eq!(plan("retention").engine, "forget");
        assert_eq!(plan("backup").sections, vec!["backup"]);
        assert_eq!(plan("dry-run").engine, "dry-run");
    }

    #[test]
    fn rendering_table() {
        let o = Origin::default();
        let r = |flag: &str, n: Node, k: FlagKind| render(flag, &n, k, &o).unwrap();
        assert_eq!(
            r("force", Node::Bool(true), FlagKind::Bool),
            vec!["--force"]
        );
        assert!(r("force", Node::Bool(false), FlagKind::Bool).is_empty());
        assert!(r("max-unused", Node::Int(0), FlagKind::Value).is_empty());
        assert_eq!(
            r("max-unused", Node::Str("0".into()), FlagKind::Value),
            vec!["--max-unused=0"]
        );
        assert_eq!(
            r("pack-size", Node::Int(128), FlagKind::Value),
            vec!["--pack-size=128"]
        );
        assert_eq!(r("x", Node::Float(1.5), FlagKind::Value), vec!["--x=1.5"]);
        assert!(r("host", Node::Str(String::new()), FlagKind::Value).is_empty());
        assert_eq!(
            r("tag", Node::Str(String::new()), FlagKind::Repeated),
            vec!["--tag="]
        );
        assert_eq!(
            r("group-by", Node::Str(String::new()), FlagKind::Value),
            vec!["--group-by="]
        );
        assert_eq!(
            r(
                "tag",
                Node::List(vec![Node::Str("a".into()), Node::Str("b".into())]),
                FlagKind::Repeated
            ),
            vec!["--tag=a", "--tag=b"]
        );
        assert_eq!(
            r("verbose", Node::Bool(true), FlagKind::Count),
            vec!["--verbose"]
        );
        assert_eq!(
            r("verbose", Node::Int(1), FlagKind::Count),
            vec!["--verbose"]
        );
        assert_eq!(
            r("verbose", Node::Int(3), FlagKind::Count),
            vec!["--verbose=3"]
        );
        assert_eq!(
            r("verbose", Node::Str("2".into()), FlagKind::Count),
            vec!["--verbose=2"]
        );
        assert_eq!(
            r("exclude-caches", Node::Str("true".into()), FlagKind::Bool),
            vec!["--exclude-caches"]
        );
        assert!(render("x", &Node::Table(Table::new()), FlagKind::Value, &o).is_err());
    }
}
