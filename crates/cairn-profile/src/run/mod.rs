//! The profile run flow (spec §8): process gates, groups, and one profile run in resticprofile's
//! exact order — base-dir, local lock, hooks, HTTP hooks, the command body (backup with
//! retention and check), failure and finally hooks — with the built-in Healthchecks monitor,
//! the status file and Prometheus metrics around it.

mod body;
mod engine;
mod flow;
mod notify;
mod steps;

pub use engine::{Engine, EngineCall, EngineResult};
pub use notify::notify_systemd;

use crate::config::{Config, RenderContext};
use crate::output::OutputRouter;
use crate::types::{FlagSchema, Global, Group, ScheduleSpec};
use std::time::Duration;

/// Settings of one invocation that apply to every profile it runs.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Print what would run (engine commands, hooks, HTTP requests) without doing it.
    pub dry_run: bool,
    /// Ignore the profile `lock` file.
    pub no_lock: bool,
    /// Wait this long for local and repository locks (one budget for the whole run).
    pub lock_wait: Option<Duration>,
    /// Extra engine arguments typed after the command (they win over the profile).
    pub extra_args: Vec<String>,
    /// The schedule this run comes from (`run-schedule`), for lock mode and lock wait.
    pub schedule: Option<ScheduleSpec>,
    /// Whether the run was started from a terminal (Healthchecks `interactive = false` skips
    /// pings then).
    pub interactive: bool,
}

/// The outcome of a profile or group run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Process exit code: 0 ok; 1 error (resticprofile's code for any failure).
    pub exit_code: i32,
    /// Failure message, when the run failed.
    pub error: Option<String>,
}

/// Everything a run needs besides the profile name and command.
pub struct Runner<'a> {
    /// The engine (in-process).
    pub engine: &'a dyn Engine,
    /// The engine's flag schema (option routing).
    pub schema: &'a dyn FlagSchema,
    /// The loaded configuration.
    pub config: &'a Config,
    /// Its `[global]` section.
    pub global: Global,
    /// Template data of this process.
    pub ctx: RenderContext,
    /// Side-effecting template functions (private temp dir, `{{env}}` files).
    pub funcs: &'a cairn_template::PrivateTemp,
    /// The output router when output goes through one (log file, stderr capture).
    pub router: Option<&'a OutputRouter>,
    /// Invocation settings.
    pub opts: RunOptions,
}

impl Runner<'_> {
    /// Run `command` on the profile or group `name`.
    pub fn run(&self, name: &str, command: &str) -> RunReport {
        let groups = self
            .config
            .groups(&self.ctx, self.funcs)
            .unwrap_or_default();
        if let Some(g) = groups.iter().find(|g| g.name.eq_ignore_ascii_case(name)) {
            let is_profile = self
                .config
                .has_profile(&name.to_lowercase(), &self.ctx, self.funcs)
                .unwrap_or(false);
            if !is_profile {
                return self.run_group(g, command);
            }
        }
        flow::run_profile(self, name, command, None)
    }

    /// Run `command` on every member of `group` in order (§8.3).
    pub fn run_group(&self, group: &Group, command: &str) -> RunReport {
        let go_on = group
            .continue_on_error
            .unwrap_or(self.global.group_continue_on_error);
        let mut first_error: Option<RunReport> = None;
        for p in &group.profiles {
            crate::output::log_message(&format!("group '{}': running profile '{p}'", group.name));
            let r = flow::run_profile(self, p, command, Some(&group.name));
            if r.exit_code != 0 {
                if r.exit_code == 130 || !go_on {
                    return r;
                }
                first_error.get_or_insert(r);
            }
        }
        first_error.unwrap_or_default()
    }
}

/// Exit code for "not enough memory" (resticprofile's 5).
pub const EXIT_MEMORY: i32 = 5;
/// Exit code for "skipped because on battery" (resticprofile's 3).
pub const EXIT_BATTERY: i32 = 3;

/// Process-level gates and settings before any profile work (§8.2 steps 2–5): battery, sleep
/// prevention, memory, priority. Returns the sleep inhibitor to keep alive for the run, or the
/// exit code to stop with.
pub fn prepare_process(
    global: &Global,
    ignore_on_battery: Option<u8>,
    no_prio: bool,
) -> Result<Option<crate::gates::SleepInhibitor>, (i32, String)> {
    if let Some(threshold) = ignore_on_battery
        && let Some(b) = crate::gates::battery()
        && b.on_battery
        && b.percent.is_none_or(|p| p <= threshold)
    {
        return Err((
            EXIT_BATTERY,
            "running on battery: skipping (--ignore-on-battery)".into(),
        ));
    }
    let inhibitor = if global.prevent_sleep {
        match crate::gates::SleepInhibitor::start() {
            Ok(i) => Some(i),
            Err(e) => {
                crate::output::log_message(&format!("cannot prevent sleep: {e}"));
                None
            }
        }
    } else {
        None
    };
    if global.min_memory > 0
        && let Some(avail) = crate::gates::available_memory_mb()
        && avail < global.min_memory
    {
        return Err((
            EXIT_MEMORY,
            format!(
                "available memory is < {} MB (set min-memory = 0 in [global] to run anyway)",
                global.min_memory
            ),
        ));
    }
    if !no_prio {
        let ionice = global
            .ionice
            .then_some((global.ionice_class, global.ionice_level));
        for w in crate::gates::apply_priority(global.priority.as_deref(), global.nice, ionice) {
            crate::output::log_message(&w);
        }
    }
    Ok(inhibitor)
}
