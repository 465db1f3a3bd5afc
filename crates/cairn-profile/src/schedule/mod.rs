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
mod job;
mod launchd;
mod status;
mod systemd;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::types::{Global, ScheduleSpec};

pub use install::{install, installed, uninstall};
pub(crate) use job::*;
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

/// How `run-schedule` treats the profile's local lock (§12.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockPolicy {
    /// `schedule-lock-mode = "default"`: wait up to this long (None: do not wait; lock
    /// waits of 2 s or less count as none).
    Wait(Option<std::time::Duration>),
    /// `fail`: never wait for the lock.
    Fail,
    /// `ignore`: do not take the local lock (repository locks still apply, without wait).
    Ignore,
}

/// The lock policy of a scheduled run from `schedule-lock-mode` / `schedule-lock-wait`.
pub fn lock_policy(spec: &ScheduleSpec) -> Result<LockPolicy, ScheduleError> {
    match spec
        .lock_mode
        .as_deref()
        .unwrap_or("default")
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "" | "default" => Ok(LockPolicy::Wait(
            spec.lock_wait
                .filter(|d| *d > std::time::Duration::from_secs(2)),
        )),
        "fail" => Ok(LockPolicy::Fail),
        "ignore" => Ok(LockPolicy::Ignore),
        other => Err(invalid(
            &job_id(spec),
            format!("schedule-lock-mode {other:?} is not default, fail or ignore"),
        )),
    }
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

#[cfg(test)]
mod tests;
