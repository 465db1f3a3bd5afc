//! [`Profile`]: a resolved profile (templates rendered, includes merged, inheritance applied)
//! and typed accessors for the orchestration keys (§3, §9, §10, §11, §13, §17).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::types::{
    Global, HealthchecksBody, HealthchecksSpec, Hooks, PrometheusSpec, ScheduleSpec, SendSpec,
    Sends, StreamErrorSpec,
};

use super::error::{Warning, unknown_key_message};
use super::node::{Node, Table};
use super::paths::{absolute_prefix, expand_env, expand_home, join_clean};
use super::render::RenderContext;
use super::schedule::{SCHEDULABLE, section_schedule};
use cairn_calendar::parse_go_duration;

/// Keys of one `send-*` entry.
const SEND_KEYS: [&str; 6] = [
    "url",
    "method",
    "headers",
    "body",
    "body-template",
    "skip-tls-verification",
];

/// Keys of one `stream-error` entry.
const STREAM_ERROR_KEYS: [&str; 4] = ["pattern", "run", "min-matches", "max-runs"];

/// Options whose zero is meaningful but is dropped by the "0 means unset" rule (§4.2).
fn zero_matters(key: &str) -> bool {
    key == "max-unused" || key.starts_with("keep-")
}

/// A resolved profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Name as given on the command line.
    pub name: String,
    /// `description` (own, not inherited).
    pub description: String,
    /// Suspicious keys and values found while loading.
    pub warnings: Vec<Warning>,
    pub(crate) tree: Table,
    pub(crate) config_dir: PathBuf,
    pub(crate) version: u8,
    pub(crate) current_dir: PathBuf,
    pub(crate) hostname: String,
    pub(crate) process_env: BTreeMap<String, String>,
}

impl Profile {
    pub(crate) fn new(
        name: &str,
        mut tree: Table,
        config_dir: PathBuf,
        version: u8,
        ctx: &RenderContext,
        mut warnings: Vec<Warning>,
    ) -> Profile {
        normalize_labels(&mut tree);
        if version >= 2 {
            v2_defaults(&mut tree);
        }
        let description = tree.string("description").unwrap_or_default();
        collect_warnings(&tree, &mut warnings);
        Profile {
            name: name.to_string(),
            description,
            warnings,
            tree,
            config_dir,
            version,
            current_dir: ctx.current_dir.clone(),
            hostname: ctx.hostname.clone(),
            process_env: ctx.env.clone(),
        }
    }

    /// Directory of the configuration file.
    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// Format version of the file the profile came from.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The host name used for `host = true`.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// The profile level (`""`) or a section.
    pub(crate) fn level(&self, section: &str) -> Option<&Table> {
        if section.is_empty() {
            Some(&self.tree)
        } else {
            self.tree.table(section)
        }
    }

    /// Names of the command sections defined (own and inherited), sorted.
    pub fn sections(&self) -> Vec<String> {
        self.tree
            .iter()
            .filter(|(k, e)| {
                matches!(e.value, Node::Table(_))
                    && !["env", "prometheus-labels", "schedule"].contains(&k.as_str())
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Whether the profile has a `[p.<section>]` table.
    pub fn has_section(&self, section: &str) -> bool {
        self.sections().iter().any(|s| *s == section.to_lowercase())
    }

    /// A bool in a section (`""` = profile level), weakly typed. `("backup", "stdin")` is also
    /// true when `stdin-command` is set.
    pub fn bool_in(&self, section: &str, key: &str) -> Option<bool> {
        let level = self.level(section)?;
        if section.eq_ignore_ascii_case("backup")
            && key.eq_ignore_ascii_case("stdin")
            && !level.strings("stdin-command").is_empty()
        {
            return Some(true);
        }
        level.bool(key)
    }

    /// A list of strings in a section (`""` = profile level); a scalar is one element.
    pub fn list_in(&self, section: &str, key: &str) -> Vec<String> {
        self.level(section)
            .map(|t| t.strings(key))
            .unwrap_or_default()
    }

    /// A scalar as text in a section (`""` = profile level).
    pub fn string_in(&self, section: &str, key: &str) -> Option<String> {
        self.level(section).and_then(|t| t.string(key))
    }

    /// `$VAR` lookup: the profile environment, then the process environment.
    pub(crate) fn lookup_var(&self, name: &str) -> Option<String> {
        let env = self.env();
        env.get(name)
            .cloned()
            .or_else(|| self.process_env.get(name).cloned())
    }

    pub(crate) fn home(&self) -> Option<PathBuf> {
        self.process_env
            .get("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
    }

    /// Expands `$VAR` and `~` (rp `expandEnv` + `expandUserHome`).
    pub(crate) fn expand(&self, value: &str) -> String {
        let home = self.home();
        expand_home(&expand_env(value, &|n| self.lookup_var(n)), home.as_deref())
    }

    /// A path relative to the configuration directory, `$VAR` and `~` expanded.
    pub(crate) fn config_path(&self, value: &str) -> String {
        let home = self.home();
        absolute_prefix(&self.expand(value), &self.config_dir, home.as_deref())
    }

    /// `base-dir`, `$VAR`/`~` expanded, made absolute against the current directory.
    pub fn base_dir(&self) -> Option<PathBuf> {
        let raw = self.tree.string("base-dir")?;
        let value = self.expand(raw.trim());
        if value.is_empty() {
            return None;
        }
        Some(join_clean(&self.current_dir, &value))
    }

    /// `lock`: `$VAR` expanded (not `~`), relative to the configuration directory.
    pub fn lock(&self) -> Option<PathBuf> {
        let raw = self.tree.string("lock").filter(|s| !s.is_empty())?;
        let value = expand_env(&raw, &|n| self.lookup_var(n));
        Some(PathBuf::from(absolute_prefix(
            &value,
            &self.config_dir,
            self.home().as_deref(),
        )))
    }

    /// `force-inactive-lock`.
    pub fn force_inactive_lock(&self) -> bool {
        self.tree.bool("force-inactive-lock").unwrap_or(false)
    }

    /// `initialize` at profile level (None = use the global setting).
    pub fn initialize(&self) -> Option<bool> {
        self.tree.bool("initialize")
    }

    /// `env` with resolved names (§1.4): the spelling of an existing process variable with the
    /// same name ignoring case, else upper case. Values are not expanded.
    pub fn env(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let Some(env) = self.tree.table("env") {
            for (k, e) in env.iter() {
                let name = self
                    .process_env
                    .keys()
                    .find(|n| n.eq_ignore_ascii_case(k))
                    .cloned()
                    .unwrap_or_else(|| k.to_uppercase());
                out.insert(name, e.value.as_string().unwrap_or_default());
            }
        }
        out
    }

    /// `env-file` entries, relative to the configuration directory.
    pub fn env_files(&self) -> Vec<PathBuf> {
        self.tree
            .strings("env-file")
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(|s| PathBuf::from(self.config_path(&s)))
            .collect()
    }

    /// `status-file`, verbatim.
    pub fn status_file(&self) -> Option<PathBuf> {
        self.tree
            .string("status-file")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    }

    /// Prometheus settings.
    pub fn prometheus(&self) -> PrometheusSpec {
        let s = |k: &str| self.tree.string(k).filter(|v| !v.is_empty());
        PrometheusSpec {
            save_to_file: s("prometheus-save-to-file").map(PathBuf::from),
            push: s("prometheus-push"),
            push_job: s("prometheus-push-job"),
            push_format: s("prometheus-push-format"),
            labels: self
                .tree
                .table("prometheus-labels")
                .map(|t| {
                    t.iter()
                        .map(|(k, e)| (k.clone(), e.value.as_string().unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Built-in Healthchecks monitor at profile level (`healthchecks-url` or
    /// `healthchecks-url-command`, which becomes a `cmd:` reference). See [`Self::healthchecks_in`].
    pub fn healthchecks(&self) -> Option<HealthchecksSpec> {
        self.healthchecks_in("")
    }

    /// Healthchecks settings for a command: keys of `[p.<section>]` win over profile level.
    pub fn healthchecks_in(&self, section: &str) -> Option<HealthchecksSpec> {
        let sec = self.level(section).filter(|_| !section.is_empty());
        let get = |k: &str| sec.and_then(|t| t.get(k)).or_else(|| self.tree.get(k));
        let text = |k: &str| get(k).and_then(Node::as_string).filter(|s| !s.is_empty());
        let url = match (text("healthchecks-url"), text("healthchecks-url-command")) {
            (Some(u), _) => u,
            (None, Some(c)) => format!("cmd:{c}"),
            (None, None) => return None,
        };
        let mut spec = HealthchecksSpec {
            url,
            ..HealthchecksSpec::default()
        };
        if let Some(b) = text("healthchecks-body") {
            spec.body = match b.to_lowercase().as_str() {
                "summary" => HealthchecksBody::Summary,
                "none" | "empty" => HealthchecksBody::None,
                _ => HealthchecksBody::LogTail,
            };
        }
        if let Some(n) = get("healthchecks-body-limit").and_then(Node::as_int) {
            spec.body_limit = usize::try_from(n).unwrap_or(0);
        }
        if let Some(d) = text("healthchecks-timeout").and_then(|t| parse_go_duration(&t).ok()) {
            spec.timeout = d;
        }
        if let Some(n) = get("healthchecks-retries").and_then(Node::as_int) {
            spec.retries = u32::try_from(n.max(1)).unwrap_or(1);
        }
        if let Some(b) = get("healthchecks-interactive").and_then(Node::as_bool) {
            spec.interactive = b;
        }
        Some(spec)
    }

    /// `stream-error` callbacks.
    pub fn stream_error(&self) -> Vec<StreamErrorSpec> {
        let Some(Node::List(items)) = self.tree.get("stream-error") else {
            return match self.tree.get("stream-error") {
                Some(Node::Table(t)) => vec![stream_error(t)],
                _ => Vec::new(),
            };
        };
        items
            .iter()
            .filter_map(Node::as_table)
            .map(stream_error)
            .collect()
    }

    /// Shell hooks of the profile level (None) or of a command section.
    pub fn hooks(&self, section: Option<&str>) -> Hooks {
        let Some(level) = self.level(section.unwrap_or("")) else {
            return Hooks::default();
        };
        let list = |k: &str| {
            level
                .strings(k)
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect()
        };
        Hooks {
            run_before: list("run-before"),
            run_after: list("run-after"),
            run_after_fail: list("run-after-fail"),
            run_finally: list("run-finally"),
        }
    }

    /// HTTP hooks of a command section (none for `retention`).
    pub fn sends(&self, section: &str) -> Sends {
        if section.eq_ignore_ascii_case("retention") {
            return Sends::default();
        }
        let Some(level) = self.level(section).filter(|_| !section.is_empty()) else {
            return Sends::default();
        };
        let list = |k: &str| -> Vec<SendSpec> {
            match level.get(k) {
                Some(Node::List(items)) => items.iter().filter_map(|i| self.send(i)).collect(),
                Some(other) => self.send(other).into_iter().collect(),
                None => Vec::new(),
            }
        };
        Sends {
            before: list("send-before"),
            after: list("send-after"),
            after_fail: list("send-after-fail"),
            finally: list("send-finally"),
        }
    }

    fn send(&self, node: &Node) -> Option<SendSpec> {
        let t = match node {
            Node::Table(t) => t,
            Node::Str(url) if !url.is_empty() => {
                return Some(SendSpec {
                    url: url.clone(),
                    ..SendSpec::default()
                });
            }
            _ => return None,
        };
        let url = t.string("url").filter(|u| !u.is_empty())?;
        let mut headers = Vec::new();
        if let Some(Node::List(items)) = t.get("headers") {
            for h in items.iter().filter_map(Node::as_table) {
                headers.push((
                    h.string("name").unwrap_or_default(),
                    h.string("value").unwrap_or_default(),
                ));
            }
        } else if let Some(h) = t.table("headers") {
            for (_, e) in h.iter() {
                headers.push((e.key.clone(), e.value.as_string().unwrap_or_default()));
            }
        }
        Some(SendSpec {
            url,
            method: t.string("method").unwrap_or_default().to_uppercase(),
            headers,
            body: t.string("body").filter(|b| !b.is_empty()),
            body_template: t
                .string("body-template")
                .filter(|b| !b.is_empty())
                .map(|b| PathBuf::from(self.config_path(&b))),
            skip_tls_verification: t.bool("skip-tls-verification").unwrap_or(false),
        })
    }

    /// Scheduled jobs of this profile (one per section with a `schedule`), over
    /// `[global.schedule-defaults]`. A `retention` schedule runs `forget` unless `[p.forget]`
    /// has its own.
    pub fn schedules(&self, global: &Global) -> Vec<ScheduleSpec> {
        let mut warnings = Vec::new();
        let mut out: Vec<ScheduleSpec> = Vec::new();
        for section in SCHEDULABLE {
            let Some(t) = self.tree.table(section) else {
                continue;
            };
            let command = if section == "retention" {
                "forget"
            } else {
                section
            };
            if section == "retention" && out.iter().any(|s| s.command == "forget") {
                continue;
            }
            if let Some(s) = section_schedule(
                &self.name,
                command,
                t,
                &global.schedule_defaults,
                &mut warnings,
            ) {
                out.push(s);
            }
        }
        // v2: `schedules.<command>` at profile level; a section's own schedule wins.
        if let Some(t) = self.tree.table("schedules") {
            for s in super::schedule::profile_schedules(
                &self.name,
                t,
                &global.schedule_defaults,
                &mut warnings,
            ) {
                if !out.iter().any(|o| o.command == s.command) {
                    out.push(s);
                }
            }
        }
        out
    }
}

fn stream_error(t: &Table) -> StreamErrorSpec {
    let n = |k: &str| {
        t.int(k)
            .and_then(|v| u32::try_from(v.max(0)).ok())
            .unwrap_or(0)
    };
    StreamErrorSpec {
        pattern: t.string("pattern").unwrap_or_default(),
        run: t.string("run").unwrap_or_default(),
        min_matches: n("min-matches"),
        max_runs: n("max-runs"),
    }
}

/// Version 2 extras (§4.4): `retention.after-backup` defaults to true when retention sets a
/// `keep-*` and neither `before-backup` nor `after-backup`; retention copies `tag` from backup
/// (as `tag = true`) and `host` from backup (or `host = true` when the profile sets none);
/// backup gets `host = true` when it sets no host.
fn v2_defaults(tree: &mut Table) {
    let backup = tree.table("backup").cloned();
    let profile_has_host = tree.contains("host");
    if let Some(Node::Table(r)) = tree.get_mut("retention") {
        let origin = super::node::Origin::default();
        if !r.contains("after-backup")
            && !r.contains("before-backup")
            && r.keys().any(|k| k.starts_with("keep-"))
        {
            r.insert("after-backup", Node::Bool(true), origin.clone());
        }
        if let Some(b) = &backup
            && !r.contains("tag")
            && b.contains("tag")
        {
            r.insert("tag", Node::Bool(true), origin.clone());
        }
        if !r.contains("host") {
            match backup.as_ref().and_then(|b| b.get("host")) {
                Some(h) => r.insert("host", h.clone(), origin),
                None if !profile_has_host => r.insert("host", Node::Bool(true), origin),
                None => {}
            }
        }
    }
    if let Some(Node::Table(b)) = tree.get_mut("backup")
        && !b.contains("host")
    {
        b.insert("host", Node::Bool(true), super::node::Origin::default());
    }
}

/// `prometheus-labels` written as a list of one-key tables becomes one table.
fn normalize_labels(tree: &mut Table) {
    let Some(Node::List(items)) = tree.get("prometheus-labels").cloned() else {
        return;
    };
    let origin = tree
        .origin("prometheus-labels")
        .cloned()
        .unwrap_or_default();
    let mut merged = Table::new();
    for item in items.iter().filter_map(Node::as_table) {
        for (_, e) in item.iter() {
            merged.insert_entry(e.clone());
        }
    }
    tree.insert("prometheus-labels", Node::Table(merged), origin);
}

fn collect_warnings(tree: &Table, warnings: &mut Vec<Warning>) {
    let mut check_level = |level: &Table, section: Option<&str>| {
        for (k, e) in level.iter() {
            if zero_matters(k) && matches!(e.value, Node::Int(0)) {
                warnings.push(Warning::at(
                    Some(&e.origin),
                    format!(
                        "`{} = 0` is dropped (a zero number means unset); write '0' in quotes to pass 0",
                        e.key
                    ),
                ));
            }
            if k.starts_with("send-")
                && let Node::List(items) = &e.value
            {
                for item in items.iter().filter_map(Node::as_table) {
                    for (ik, ie) in item.iter() {
                        if !SEND_KEYS.contains(&ik.as_str()) {
                            warnings.push(Warning::at(
                                Some(&ie.origin),
                                unknown_key_message("send setting", &ie.key, SEND_KEYS),
                            ));
                        }
                    }
                }
            }
            if section.is_some()
                && (k == "schedule" || k.starts_with("schedule-"))
                && !SCHEDULABLE.contains(&section.unwrap_or(""))
            {
                warnings.push(Warning::at(
                    Some(&e.origin),
                    format!(
                        "`{}` has no effect in [{}]; schedules belong in backup, check, forget, prune or copy",
                        e.key,
                        section.unwrap_or("")
                    ),
                ));
            }
            if section == Some("retention") && k == "schedule" {
                warnings.push(Warning::at(
                    Some(&e.origin),
                    "a schedule in [retention] is deprecated; move it to [forget]",
                ));
            }
        }
    };
    check_level(tree, None);
    for (k, e) in tree.iter() {
        if let Node::Table(t) = &e.value
            && !["env", "prometheus-labels"].contains(&k.as_str())
        {
            check_level(t, Some(k));
        }
    }
    if let Some(Node::List(items)) = tree.get("stream-error") {
        for item in items.iter().filter_map(Node::as_table) {
            for (ik, ie) in item.iter() {
                if !STREAM_ERROR_KEYS.contains(&ik.as_str()) {
                    warnings.push(Warning::at(
                        Some(&ie.origin),
                        unknown_key_message("stream-error setting", &ie.key, STREAM_ERROR_KEYS),
                    ));
                }
            }
        }
    }
    if let Some(body) = tree.string("healthchecks-body")
        && !["log-tail", "summary", "none", "empty", ""].contains(&body.to_lowercase().as_str())
    {
        warnings.push(Warning::at(
            tree.origin("healthchecks-body"),
            format!("`healthchecks-body = \"{body}\"` is not log-tail, summary or none; log-tail is used"),
        ));
    }
}
