//! Schedules: generating, installing, removing and inspecting scheduled jobs for systemd
//! (service + timer), launchd (agent/daemon plist) and cron (a marked block in a crontab).
//!
//! [`generate`] is pure: it turns one [`ScheduleSpec`] into the files and commands of a
//! [`Job`]. [`install`] writes them and runs the scheduler's commands, [`uninstall`] removes
//! one job, [`installed`] discovers every job of a configuration file and [`status`] describes
//! them (next run times from `cairn-calendar`, scheduler state when available).
//!
//! Every job runs Cairn itself:
//! `<binary> --no-prio --no-ansi --config <file> [--log <file>] run-schedule <command>@<profile>`
//! (cron omits `--no-prio`: cron cannot lower the priority itself). A shell appears only when
//! the user asks for `schedule-log-truncate` on launchd (`/bin/sh -c ': >"$1"; shift; exec "$@"'`
//! with the log and the command line as arguments, nothing interpolated into the script); on
//! systemd log truncation is an `ExecStartPre=/usr/bin/truncate -s 0 -- <log>` and on cron a
//! `: > <log>; ` before the command. `schedule-wrapper` is an argv prefix (e.g. `fdautil exec`).

mod cron;
mod install;
mod launchd;
mod status;
mod systemd;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::types::{Global, ScheduleSpec};

pub use install::{install, installed, uninstall};
pub use status::{
    ExpressionInfo, JobStatus, NextRun, describe_expression, next_runs, render_expression,
    render_status, status,
};

/// Which scheduler receives the jobs (`global.scheduler`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheduler {
    /// systemd service + timer units.
    Systemd,
    /// launchd agents (`~/Library/LaunchAgents`) or daemons (`/Library/LaunchDaemons`).
    Launchd,
    /// cron: the caller's crontab through the `crontab` program, or a crontab file.
    Cron {
        /// `crontab:USER:FILE`: write this file directly instead of calling `crontab`.
        crontab: Option<PathBuf>,
        /// User column of the crontab file: `None` = no user column (`crontab:-:FILE`,
        /// `crontab:FILE`), `Some("*")` = the job's user (`schedule-user`) or the caller.
        user: Option<String>,
        /// `crond:PATH`: the `crontab` program to call (default `crontab` from PATH).
        program: Option<PathBuf>,
    },
}

impl Scheduler {
    /// Parse `global.scheduler`: `auto` (launchd on macOS, systemd when
    /// `/run/systemd/system` exists, else cron), `systemd`, `launchd`, `crond`,
    /// `crond:PATH` (crontab program), `crontab:USER:FILE` or `crontab:FILE`.
    pub fn from_setting(s: &str) -> Result<Scheduler, ScheduleError> {
        let s = s.trim();
        let (kind, resource) = match s.split_once(':') {
            Some((k, r)) => (k.trim(), Some(r.trim())),
            None => (s, None),
        };
        let cron = |crontab, user, program| Scheduler::Cron {
            crontab,
            user,
            program,
        };
        match (kind.to_ascii_lowercase().as_str(), resource) {
            ("auto" | "", None) => Ok(Self::auto()),
            ("systemd", None) => Ok(Scheduler::Systemd),
            ("launchd", None) => Ok(Scheduler::Launchd),
            ("crond" | "cron", None) => Ok(cron(None, None, None)),
            ("crond" | "cron", Some(path)) if !path.is_empty() => {
                Ok(cron(None, None, Some(PathBuf::from(path))))
            }
            ("crontab", Some(rest)) if !rest.is_empty() => match rest.split_once(':') {
                Some((user, file)) if !file.trim().is_empty() => {
                    let user = user.trim();
                    let user = (!user.is_empty() && user != "-").then(|| user.to_string());
                    Ok(cron(Some(PathBuf::from(file.trim())), user, None))
                }
                _ => Ok(cron(Some(PathBuf::from(rest)), None, None)),
            },
            _ => Err(ScheduleError::UnknownScheduler(s.to_string())),
        }
    }

    /// The scheduler `auto` picks on this machine.
    pub fn auto() -> Scheduler {
        if cfg!(target_os = "macos") {
            Scheduler::Launchd
        } else if Path::new("/run/systemd/system").is_dir() {
            Scheduler::Systemd
        } else {
            Scheduler::Cron {
                crontab: None,
                user: None,
                program: None,
            }
        }
    }

    /// Short name for messages (`systemd`, `launchd`, `cron`).
    pub fn name(&self) -> &'static str {
        match self {
            Scheduler::Systemd => "systemd",
            Scheduler::Launchd => "launchd",
            Scheduler::Cron { .. } => "cron",
        }
    }
}

/// Facts about the machine and the caller that a job depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobContext {
    /// Absolute path of the cairn binary the job runs.
    pub binary: PathBuf,
    /// Absolute path of the configuration file.
    pub config_file: PathBuf,
    /// Working directory of the job (the cwd at `schedule` time).
    pub working_dir: PathBuf,
    /// Whether the caller is root (effective uid 0).
    pub is_root: bool,
    /// Home directory written as `HOME` into system units and used for per-user locations
    /// (`~/.config/systemd/user`, `~/Library/LaunchAgents`): the sudo caller's when under sudo.
    pub home: PathBuf,
    /// Name of the calling user (the sudo caller's name when under sudo).
    pub user: String,
    /// `SUDO_USER` when running under sudo.
    pub sudo_user: Option<String>,
    /// uid whose launchd domains (`gui/<uid>`, `user/<uid>`) receive agents: the sudo
    /// caller's uid when running under sudo.
    pub uid: u32,
    /// Process environment plus the profile's `env`, for `schedule-capture-environment`;
    /// its `PATH` is also the search path for `systemctl`, `launchctl` and `crontab`.
    pub env: BTreeMap<String, String>,
    /// Tests: write unit files / plists here instead of `/etc/systemd/system`,
    /// `~/.config/systemd/user`, `~/Library/LaunchAgents` or `/Library/LaunchDaemons`.
    pub unit_dir_override: Option<PathBuf>,
}

/// One file a job consists of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    /// Where the file is written.
    pub path: PathBuf,
    /// Its full contents.
    pub contents: String,
    /// Unix permission bits.
    pub mode: u32,
}

/// Everything one scheduled job consists of, as [`generate`] computed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The schedule this job implements.
    pub spec: ScheduleSpec,
    /// Files to write (unit + timer, or a plist; empty for cron).
    pub files: Vec<GeneratedFile>,
    /// Commands `install` runs, in order (`systemctl …`, `launchctl …`, `crontab …`).
    pub commands: Vec<Vec<String>>,
    /// cron only: the lines this job puts inside Cairn's marked block of the crontab.
    pub crontab_lines: Vec<String>,
    /// Settings of the spec this scheduler cannot honour (ignored, not silently).
    pub warnings: Vec<String>,
    /// Where the job is installed.
    pub scope: Scope,
    /// Unit name (timer, or service for manual-only jobs), launchd label, or the crontab.
    pub name: String,
}

impl Job {
    /// Human rendering for `schedule --dry-run`: each file with a header line, the crontab
    /// lines, the commands install would run, then the warnings.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.files {
            out.push_str(&format!(
                "# --- {} (mode {:o}) ---\n",
                f.path.display(),
                f.mode
            ));
            out.push_str(&f.contents);
            if !f.contents.ends_with('\n') {
                out.push('\n');
            }
        }
        if !self.crontab_lines.is_empty() {
            out.push_str(&format!("# --- crontab ({}) ---\n", self.name));
            for l in &self.crontab_lines {
                out.push_str(l);
                out.push('\n');
            }
        }
        for c in &self.commands {
            out.push_str(&format!("# would run: {}\n", c.join(" ")));
        }
        for w in &self.warnings {
            out.push_str(&format!("# warning: {w}\n"));
        }
        out
    }
}

/// Where a job lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// System-wide: system unit, launchd daemon (`system` domain), root's crontab.
    System,
    /// launchd agent in the `user/<uid>` domain (runs without a login session).
    UserBackground,
    /// Per user and login: user unit (`systemctl --user`), launchd agent in `gui/<uid>`, or
    /// the caller's crontab.
    User,
}

/// A job found installed for the configuration file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InstalledJob {
    /// Profile or group name.
    pub profile: String,
    /// Scheduled command.
    pub command: String,
    /// Files of the job (unit/timer, plist, or the crontab file).
    pub files: Vec<PathBuf>,
    /// Calendar expressions as written at schedule time.
    pub calendars: Vec<String>,
    /// Where it is installed.
    pub scope: Scope,
    /// Unit name / launchd label of the job.
    pub name: String,
}

/// Errors of the schedule module; each says what to change.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// `global.scheduler` is not understood.
    #[error(
        "unknown scheduler {0:?}: use auto, systemd, launchd, crond, crond:/path/to/crontab or crontab:USER:FILE"
    )]
    UnknownScheduler(String),
    /// A calendar expression does not parse.
    #[error("{job}: invalid schedule {expr:?}: {reason}")]
    Calendar {
        /// `command@profile`.
        job: String,
        /// The expression.
        expr: String,
        /// Parser message.
        reason: String,
    },
    /// The scheduler cannot express a calendar expression.
    #[error(
        "{job}: {scheduler} cannot run {expr:?}: {reason}; rewrite the expression or use another scheduler"
    )]
    Unsupported {
        /// `command@profile`.
        job: String,
        /// `launchd` or `cron`.
        scheduler: &'static str,
        /// The expression.
        expr: String,
        /// Why.
        reason: String,
    },
    /// Settings that contradict each other or this scheduler.
    #[error("{job}: {message}")]
    Invalid {
        /// `command@profile`.
        job: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A variable that looks like a secret would be written into a job file.
    #[error(
        "{job}: {source_key} would write {name} into the job file, and its name looks like a secret (job files are world-readable); \
         narrow the pattern, or let the job read it at run time from the profile's env, env-file or a secret reference"
    )]
    Secret {
        /// `command@profile`.
        job: String,
        /// `schedule-capture-environment = "GLOB"` or `schedule-environment`.
        source_key: String,
        /// The variable name.
        name: String,
    },
    /// A file operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was attempted (`write`, `read`, `remove`, `create directory`).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A scheduler command failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status and stderr.
        detail: String,
    },
    /// `uninstall` found no such job.
    #[error("no {scheduler} job {job} is installed for this configuration file")]
    NotInstalled {
        /// `command@profile`.
        job: String,
        /// Scheduler name.
        scheduler: &'static str,
    },
    /// Installing needs root.
    #[error(
        "{job}: installing into {path} needs root; run `sudo cairn schedule`, or use schedule-permission = \"user_logged_on\""
    )]
    NeedsRoot {
        /// `command@profile`.
        job: String,
        /// Target location.
        path: PathBuf,
    },
}

/// Generate (pure: no side effects) the artifacts of one job.
pub fn generate(
    scheduler: &Scheduler,
    spec: &ScheduleSpec,
    global: &Global,
    ctx: &JobContext,
) -> Result<Job, ScheduleError> {
    let job = job_id(spec);
    if spec.profile.is_empty() || spec.command.is_empty() {
        return Err(invalid(&job, "a schedule needs a profile and a command"));
    }
    if spec.command.contains(['@', '/', '\n']) || spec.profile.contains(['\n', '/']) {
        return Err(invalid(
            &job,
            "profile and command names used in schedules must not contain '/' or newlines (and commands no '@')",
        ));
    }
    for expr in expressions(spec) {
        status::parse_calendar(&job, expr)?;
    }
    match scheduler {
        Scheduler::Systemd => systemd::generate(spec, global, ctx),
        Scheduler::Launchd => launchd::generate(spec, global, ctx),
        Scheduler::Cron {
            crontab,
            user,
            program,
        } => cron::generate(
            spec,
            ctx,
            crontab.as_deref(),
            user.as_deref(),
            program.as_deref(),
        ),
    }
}

/// `command@profile`.
pub(crate) fn job_id(spec: &ScheduleSpec) -> String {
    format!("{}@{}", spec.command, spec.profile)
}

/// The non-empty calendar expressions of a spec.
pub(crate) fn expressions(spec: &ScheduleSpec) -> impl Iterator<Item = &str> {
    spec.at.iter().map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// `<config>:<command>@<profile>`, the value of `CAIRN_SCHEDULE_ID`.
pub(crate) fn schedule_id(ctx: &JobContext, spec: &ScheduleSpec) -> Result<String, ScheduleError> {
    Ok(format!(
        "{}:{}",
        utf8(&job_id(spec), &ctx.config_file)?,
        job_id(spec)
    ))
}

/// Split a schedule id back into (command, profile) when it belongs to `config`.
pub(crate) fn parse_schedule_id<'a>(id: &'a str, config: &str) -> Option<(&'a str, &'a str)> {
    let rest = id.strip_prefix(config)?.strip_prefix(':')?;
    let (command, profile) = rest.split_once('@')?;
    (!command.is_empty() && !profile.is_empty()).then_some((command, profile))
}

pub(crate) fn invalid(job: &str, message: impl Into<String>) -> ScheduleError {
    ScheduleError::Invalid {
        job: job.to_string(),
        message: message.into(),
    }
}

/// A path as UTF-8 (job files are text).
pub(crate) fn utf8<'a>(job: &str, p: &'a Path) -> Result<&'a str, ScheduleError> {
    p.to_str().ok_or_else(|| {
        invalid(
            job,
            format!(
                "path {} is not valid UTF-8 and cannot be written into a job file",
                p.display()
            ),
        )
    })
}

/// Who runs the job, resolved from `schedule-permission` (§17.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Permission {
    /// System job (root, or `schedule-user`).
    System,
    /// System job running as the invoking user, without a login session.
    User,
    /// Job of the logged-in user.
    UserLoggedOn,
}

pub(crate) fn permission(
    spec: &ScheduleSpec,
    ctx: &JobContext,
) -> Result<Permission, ScheduleError> {
    let p = spec.permission.as_deref().unwrap_or("auto").trim();
    match p.to_ascii_lowercase().replace('-', "_").as_str() {
        "" | "auto" => Ok(if ctx.is_root || spec.user.is_some() {
            Permission::System
        } else {
            Permission::UserLoggedOn
        }),
        "system" => Ok(Permission::System),
        "user" => Ok(Permission::User),
        "user_logged_on" | "user_logged_in" => Ok(Permission::UserLoggedOn),
        _ => Err(invalid(
            &job_id(spec),
            format!("schedule-permission {p:?} is not one of auto, system, user, user_logged_on"),
        )),
    }
}

/// Whether `schedule-priority` asks for background execution.
pub(crate) fn is_background(spec: &ScheduleSpec) -> Result<bool, ScheduleError> {
    match spec
        .priority
        .as_deref()
        .unwrap_or("standard")
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "" | "standard" => Ok(false),
        "background" => Ok(true),
        other => Err(invalid(
            &job_id(spec),
            format!("schedule-priority {other:?} is not background or standard"),
        )),
    }
}

/// Nice value of the job: `global.priority` when set (§15), else `global.nice`.
pub(crate) fn nice(global: &Global) -> i32 {
    match global
        .priority
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("idle") => 19,
        Some("background") => 15,
        Some("low") => 10,
        Some("normal") => 0,
        Some("high") => -10,
        Some("highest") => -20,
        _ => global.nice.clamp(-20, 19),
    }
}

/// The log target of the job, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LogTarget {
    /// No `schedule-log` (or `-`).
    None,
    /// A file, made absolute.
    File(String),
    /// syslog, network or `temp:` target, passed verbatim.
    Other(String),
}

impl LogTarget {
    /// The `--log` argument, if any.
    pub(crate) fn arg(&self) -> Option<&str> {
        match self {
            LogTarget::None => None,
            LogTarget::File(s) | LogTarget::Other(s) => Some(s),
        }
    }
}

/// Resolve `schedule-log`: `~` and `$VAR` expanded, relative files against the config
/// file's directory (§4.5); `schedule-log-truncate` needs a file.
pub(crate) fn log_target(
    spec: &ScheduleSpec,
    ctx: &JobContext,
) -> Result<LogTarget, ScheduleError> {
    let job = job_id(spec);
    let raw = spec.log.as_deref().map(str::trim).unwrap_or("");
    let target = if raw.is_empty() || raw == "-" {
        LogTarget::None
    } else if ["syslog:", "syslog-tcp:", "udp:", "tcp:", "temp:"]
        .iter()
        .any(|p| raw.to_ascii_lowercase().starts_with(p))
    {
        LogTarget::Other(raw.to_string())
    } else {
        let expanded = expand_path(&job, raw, ctx)?;
        let path = Path::new(&expanded);
        let path = if path.is_absolute() {
            path.to_path_buf()
        } else {
            ctx.config_file
                .parent()
                .unwrap_or(Path::new("/"))
                .join(path)
        };
        LogTarget::File(utf8(&job, &path)?.to_string())
    };
    if spec.log_truncate && !matches!(target, LogTarget::File(_)) {
        return Err(invalid(
            &job,
            "schedule-log-truncate needs schedule-log to name a file",
        ));
    }
    Ok(target)
}

/// Expand a leading `~` and `$VAR` / `${VAR}` (`$$` = `$`) with the context's environment.
fn expand_path(job: &str, raw: &str, ctx: &JobContext) -> Result<String, ScheduleError> {
    let home = utf8(job, &ctx.home)?;
    let raw = if raw == "~" {
        home.to_string()
    } else if let Some(rest) = raw.strip_prefix("~/") {
        format!("{}/{rest}", home.trim_end_matches('/'))
    } else {
        raw.to_string()
    };
    let mut out = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let name: String = match chars.peek() {
            Some('$') => {
                chars.next();
                out.push('$');
                continue;
            }
            Some('{') => {
                chars.next();
                let mut n = String::new();
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                    n.push(c);
                }
                n
            }
            _ => {
                let mut n = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        n.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                n
            }
        };
        match ctx.env.get(&name) {
            Some(v) => out.push_str(v),
            None => {
                return Err(invalid(
                    job,
                    format!("schedule-log {raw:?} uses ${name}, which is not set"),
                ));
            }
        }
    }
    Ok(out)
}

/// The argv of the job (without wrapper).
pub(crate) fn job_argv(
    spec: &ScheduleSpec,
    ctx: &JobContext,
    log: &LogTarget,
    no_prio: bool,
) -> Result<Vec<String>, ScheduleError> {
    let job = job_id(spec);
    let mut argv = vec![utf8(&job, &ctx.binary)?.to_string()];
    if no_prio {
        argv.push("--no-prio".into());
    }
    argv.push("--no-ansi".into());
    argv.push("--config".into());
    argv.push(utf8(&job, &ctx.config_file)?.to_string());
    if let Some(l) = log.arg() {
        argv.push("--log".into());
        argv.push(l.to_string());
    }
    argv.push("run-schedule".into());
    argv.push(job);
    Ok(argv)
}

/// The wrapper prefix with its program resolved on the context's PATH when relative.
pub(crate) fn wrapper(spec: &ScheduleSpec, ctx: &JobContext) -> Vec<String> {
    let mut w: Vec<String> = spec
        .wrapper
        .iter()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect();
    if let Some(first) = w.first_mut()
        && !first.contains('/')
        && let Some(found) = find_program(first, ctx)
    {
        *first = found;
    }
    w
}

/// Search `name` in the context's PATH.
pub(crate) fn find_program(name: &str, ctx: &JobContext) -> Option<String> {
    let path = ctx.env.get("PATH")?;
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .and_then(|p| p.to_str().map(str::to_string))
}

/// Whether a variable name looks like a secret (§19.4: `*_KEY`, `*_TOKEN`, `*PASSWORD*`,
/// `*SECRET*`, `*_AUTH`), or is a `*_URL` whose value carries credentials.
pub(crate) fn looks_secret(name: &str, value: &str) -> bool {
    let n = name.to_ascii_uppercase();
    let suffix = |s: &str| n.len() > s.len() && n.ends_with(s);
    if suffix("_KEY")
        || suffix("_TOKEN")
        || suffix("_AUTH")
        || n.contains("PASSWORD")
        || n.contains("SECRET")
    {
        return true;
    }
    if suffix("_URL")
        && let Some((_, rest)) = value.split_once("://")
    {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            return userinfo.contains(':');
        }
    }
    false
}

/// Glob match with `*` and `?` (case-sensitive, like environment names).
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || Some(&c) == n.get(ni) => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..).unwrap_or(&[]).iter().all(|&c| c == '*')
}

/// Environment written into the job: captured variables (globs over `ctx.env`), then
/// `schedule-environment`; secrets refused.
pub(crate) fn job_environment(
    spec: &ScheduleSpec,
    ctx: &JobContext,
) -> Result<BTreeMap<String, String>, ScheduleError> {
    let job = job_id(spec);
    let mut env = BTreeMap::new();
    for glob in spec.capture_environment.iter().filter(|g| !g.is_empty()) {
        for (name, value) in ctx.env.iter().filter(|(n, _)| glob_match(glob, n)) {
            if looks_secret(name, value) {
                return Err(ScheduleError::Secret {
                    job,
                    source_key: format!("schedule-capture-environment = {glob:?}"),
                    name: name.clone(),
                });
            }
            env.insert(name.clone(), value.clone());
        }
    }
    for (name, value) in &spec.environment {
        if looks_secret(name, value) {
            return Err(ScheduleError::Secret {
                job,
                source_key: "schedule-environment".into(),
                name: name.clone(),
            });
        }
        if name.is_empty() || name.contains(['=', '\0']) || value.contains('\0') {
            return Err(invalid(
                &job,
                format!("schedule-environment has an invalid variable {name:?}"),
            ));
        }
        env.insert(name.clone(), value.clone());
    }
    Ok(env)
}

/// Quote a word for a POSIX shell (single quotes when needed).
pub(crate) fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_.,:@=+-%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests;
