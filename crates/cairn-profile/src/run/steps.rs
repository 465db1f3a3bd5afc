//! The pieces of a profile run: the resolved profile with its environment, shell and lock
//! budget, and the operations the flow strings together (hooks, HTTP hooks, engine steps with
//! repository-lock retries, status file, metrics, Healthchecks pings).

use super::Runner;
use super::engine::{EngineCall, EngineResult};
use crate::config::Profile;
use crate::hooks::{HookContext, Shell};
use crate::locks::{ProfileLock, WaitBudget};
use crate::monitor::healthchecks::{Healthchecks, PingOutcome};
use crate::monitor::metrics::{MetricsRun, RunStatus};
use crate::monitor::send::{HttpSettings, SendContext};
use crate::monitor::status_file::{StatusEntry, StatusKind};
use crate::output::log_message;
use crate::types::{ErrorInfo, SendSpec};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Keep the last `max` bytes of `s` (on a character boundary): ERROR_STDERR goes into a
/// hook's environment, where one string may not exceed 128 KiB on Linux.
fn tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s.get(start..).unwrap_or_default().to_string()
}

/// Most stderr bytes passed to failure hooks.
const STDERR_LIMIT: usize = 64 * 1024;

/// What an engine step is recorded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StepKind {
    /// `backup` (status `backup`, backup metrics).
    Backup,
    /// `forget`/retention (status `retention`).
    Retention,
    /// `check` (status `check`).
    Check,
    /// `prune` (status `prune`, our addition).
    Prune,
    /// Anything else (no status entry).
    Other,
}

/// A failed step: the data failure hooks get, and the exit code of the run.
#[derive(Debug, Clone)]
pub(super) struct StepError {
    /// Message, command line, exit code and stderr of what failed.
    pub info: ErrorInfo,
    /// Exit code for the process (1 like resticprofile, 130 when interrupted).
    pub exit_code: i32,
}

impl StepError {
    fn plain(message: String) -> Self {
        StepError {
            info: ErrorInfo {
                message,
                command_line: String::new(),
                exit_code: -1,
                stderr: String::new(),
            },
            exit_code: 1,
        }
    }
}

/// One profile run in progress.
pub(super) struct Step<'r, 'a> {
    pub runner: &'r Runner<'a>,
    pub profile: Profile,
    pub name: String,
    pub command: String,
    pub group: Option<String>,
    shell: Option<Shell>,
    os_env: BTreeMap<String, String>,
    budget: RefCell<WaitBudget>,
    http: HttpSettings,
    log_start: Option<(PathBuf, u64)>,
    summary: RefCell<Vec<String>>,
    extra: Vec<String>,
    /// Metrics of the steps so far (the textfile holds every step of the run).
    metrics: RefCell<Vec<StepMetrics>>,
    /// The profile's `env` with secret references resolved (once per run).
    env: BTreeMap<String, String>,
}

/// Resolve a secret reference (`op://`, `env:`, `file:`, `cmd:`, `keyring:`); a plain value
/// comes back unchanged.
fn resolve_value(value: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    match crate::secrets::resolve(value, env) {
        Ok(Some(s)) => Ok(s.expose().to_string()),
        Ok(None) => Ok(value.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// The data of one step's metrics, owned.
struct StepMetrics {
    command: &'static str,
    status: RunStatus,
    duration: Duration,
    end: chrono::DateTime<chrono::Utc>,
    backup: Option<crate::types::BackupStats>,
}

/// Multi-word engine commands typed as `repair-snapshots` or `repair` + `snapshots`.
fn normalize_command(command: &str, extra: &mut Vec<String>) -> String {
    if command.starts_with("repair-") || command.starts_with("key-") {
        return crate::options::engine_command(command);
    }
    for parent in ["repair", "key"] {
        if command == parent
            && let Some(first) = extra.first()
            && !first.starts_with('-')
        {
            let sub = extra.remove(0);
            return format!("{parent} {sub}");
        }
    }
    command.to_string()
}

impl<'r, 'a> Step<'r, 'a> {
    /// Resolve the profile (reloading it after a `base-dir` chdir) and the run's environment.
    pub fn prepare(
        runner: &'r Runner<'a>,
        name: &str,
        command: &str,
        group: Option<&str>,
    ) -> Result<Self, StepError> {
        // `{{ env }}` hands out this profile's dotenv file.
        runner.funcs.set_profile(name);
        let load = |ctx: &crate::config::RenderContext| {
            runner
                .config
                .profile(name, ctx, runner.funcs)
                .map_err(|e| StepError::plain(format!("profile '{name}': {e}")))
        };
        let mut profile = load(&runner.ctx)?;
        if let Some(dir) = profile.base_dir() {
            std::env::set_current_dir(&dir).map_err(|e| {
                StepError::plain(format!(
                    "profile '{name}': cannot change to base-dir {}: {e}",
                    dir.display()
                ))
            })?;
            let mut ctx = runner.ctx.clone();
            ctx.current_dir = dir;
            profile = load(&ctx)?;
        }
        let lint = crate::options::lint(&profile, runner.schema);
        for w in profile.warnings.iter().chain(&lint) {
            match w.line {
                Some(l) => log_message(&format!("warning: {}:{l}: {}", w.file, w.message)),
                None => log_message(&format!("warning: {}: {}", w.file, w.message)),
            }
        }
        let shell = crate::hooks::find_shell(&runner.global.shell).ok();
        let lock_wait = runner.opts.lock_wait.or_else(|| {
            let s = runner.opts.schedule.as_ref()?;
            match s.lock_mode.as_deref() {
                Some("fail") | Some("ignore") => None,
                _ => s.lock_wait.filter(|w| *w > Duration::from_secs(2)),
            }
        });
        let http = HttpSettings {
            timeout: runner.global.send_timeout,
            ca_certificates: runner.global.ca_certificates.clone(),
            dry_run: runner.opts.dry_run,
            user_agent: format!("cairn/{}", env!("CARGO_PKG_VERSION")),
        };
        let log_start = runner.router.and_then(|r| r.log_file()).map(|p| {
            let len = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            (p.to_path_buf(), len)
        });
        let mut extra = runner.opts.extra_args.clone();
        let command = normalize_command(command, &mut extra);
        // Secret references in `env` values, resolved with the environment built so far.
        let mut lookup: BTreeMap<String, String> = std::env::vars().collect();
        let mut env = BTreeMap::new();
        for (k, v) in profile.env() {
            let value = resolve_value(&v, &lookup)
                .map_err(|e| StepError::plain(format!("profile '{name}': env {k}: {e}")))?;
            if value != v || crate::secrets::is_secret_env_name(&k) {
                crate::secrets::register_secret(&value);
            }
            lookup.insert(k.clone(), value.clone());
            env.insert(k, value);
        }
        let step = Step {
            runner,
            profile,
            name: name.to_string(),
            command,
            group: group.map(str::to_string),
            shell,
            os_env: std::env::vars().collect(),
            budget: RefCell::new(WaitBudget::new(lock_wait)),
            http,
            log_start,
            summary: RefCell::new(Vec::new()),
            extra,
            metrics: RefCell::new(Vec::new()),
            env,
        };
        step.apply_env();
        Ok(step)
    }

    /// The section holding this command's hooks (`repair snapshots` → `repair-snapshots`).
    pub fn section(&self) -> String {
        crate::options::own_section(&self.command)
    }

    /// The profile environment: env files (re-read every time, so `{{env}}` files written by
    /// a hook count) then `env`.
    fn profile_env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for f in self.profile.env_files() {
            if let Ok(pairs) = crate::dotenv::load(&f) {
                env.extend(pairs);
            }
        }
        env.extend(self.env.clone());
        env
    }

    /// Put the profile environment into this process, so the engine and its children (rclone,
    /// ssh, password commands) see it.
    fn apply_env(&self) {
        // SAFETY: as below.
        unsafe { std::env::set_var("CAIRN_PROFILE_NAME", &self.name) };
        for (k, v) in self.profile_env() {
            if crate::secrets::is_secret_env_name(&k) {
                crate::secrets::register_secret(&v);
            }
            // SAFETY: the run flow is the only code changing the environment, and no other
            // thread reads it while a profile step is being set up (engine threads of the
            // previous command have finished).
            unsafe { std::env::set_var(&k, &v) };
        }
    }

    fn hook_env(&self, error: Option<&ErrorInfo>) -> Result<BTreeMap<String, String>, StepError> {
        crate::hooks::hook_env(
            &self.os_env,
            &self.profile.env_files(),
            &self.env,
            &self.name,
            &self.command,
            error,
        )
        .map_err(|e| StepError::plain(e.message))
    }

    /// Built-in Healthchecks monitor, when configured (URL secret resolved). A profile-level
    /// `healthchecks-url` monitors `backup` runs; any other command is monitored only when its
    /// own section sets one (so `snapshots` or `init` typed at the console ping nothing).
    pub fn healthchecks(&self) -> Option<Healthchecks> {
        let section = self.section();
        let own = ["healthchecks-url", "healthchecks-url-command"]
            .iter()
            .any(|k| self.profile.string_in(&section, k).is_some());
        if self.command != "backup" && !own {
            return None;
        }
        let spec = self.profile.healthchecks_in(&section)?;
        if !spec.interactive && self.runner.opts.interactive {
            return None;
        }
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let url = match crate::secrets::resolve(&spec.url, &env) {
            Ok(Some(s)) => {
                let u = s.expose().to_string();
                crate::secrets::register_secret(&u);
                u
            }
            Ok(None) => spec.url.clone(),
            Err(e) => {
                log_message(&format!("healthchecks: cannot resolve the ping URL: {e}"));
                return None;
            }
        };
        Some(Healthchecks::new(url, &spec, &self.http))
    }

    /// Final Healthchecks ping: success, or /fail with the same run id.
    pub fn finish_healthchecks(&self, hc: &Healthchecks, error: Option<&StepError>) {
        self.flush();
        let outcome = match error {
            None => PingOutcome::Success,
            Some(_) => PingOutcome::Fail,
        };
        let mut summary = self.summary.borrow().join("\n");
        if let Some(e) = error {
            summary.push_str(&format!("\nerror: {}", e.info.message));
        }
        let log = self.log_start.as_ref().map(|(p, off)| (p.as_path(), *off));
        if let Some(w) = hc.finish(outcome, log, &crate::secrets::redact(&summary)) {
            log_message(&format!("healthchecks: {w}"));
        }
    }

    /// Take the local profile lock unless disabled (`--no-lock`, `--dry-run`, lock mode
    /// `ignore`).
    pub fn acquire_lock(&self) -> Result<Option<ProfileLock>, StepError> {
        let Some(path) = self.profile.lock() else {
            return Ok(None);
        };
        let opts = &self.runner.opts;
        let ignore = opts
            .schedule
            .as_ref()
            .is_some_and(|s| s.lock_mode.as_deref() == Some("ignore"));
        if opts.no_lock || opts.dry_run || ignore {
            return Ok(None);
        }
        let interrupted = || false;
        crate::locks::acquire(
            &path,
            &mut self.budget.borrow_mut(),
            self.profile.force_inactive_lock(),
            &interrupted,
        )
        .map(Some)
        .map_err(|e| StepError::plain(format!("{e}")))
    }

    fn flush(&self) {
        if let Some(r) = self.runner.router {
            r.flush();
        }
    }

    /// Run hook scripts in order, stopping at the first failure.
    pub fn run_hooks(
        &self,
        kind: &str,
        list: &[String],
        error: Option<&ErrorInfo>,
    ) -> Result<(), StepError> {
        for script in list {
            if self.runner.opts.dry_run {
                log_message(&format!("dry-run: {kind}: {}", script.trim()));
                continue;
            }
            let Some(shell) = &self.shell else {
                return Err(StepError::plain(format!(
                    "{kind} on profile '{}': no shell found (set `shell` in [global])",
                    self.name
                )));
            };
            let env = self.hook_env(error)?;
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
            self.flush();
            if let Some(r) = self.runner.router {
                r.begin_stderr_capture();
            }
            let result = crate::hooks::run_hook(
                shell,
                script,
                &HookContext {
                    env: &env,
                    cwd: &cwd,
                },
            );
            self.flush();
            let stderr = self
                .runner
                .router
                .map(|r| r.take_stderr())
                .unwrap_or_default();
            if let Err(e) = result {
                return Err(StepError {
                    info: ErrorInfo {
                        message: format!("{kind} on profile '{}': {}", self.name, e.message),
                        command_line: crate::secrets::redact(&e.command_line),
                        exit_code: e.exit_code,
                        stderr: tail(&crate::secrets::redact(&stderr), STDERR_LIMIT),
                    },
                    exit_code: 1,
                });
            }
        }
        Ok(())
    }

    /// Run every `run-finally` entry; failures are only logged.
    pub fn run_finally(&self, list: &[String], error: Option<&ErrorInfo>) {
        for script in list {
            if let Err(e) = self.run_hooks("run-finally", std::slice::from_ref(script), error) {
                log_message(&e.info.message);
            }
        }
    }

    /// Send HTTP hooks; failures are warnings.
    pub fn send(&self, kind: &str, specs: &[SendSpec], error: Option<&ErrorInfo>) {
        if specs.is_empty() {
            return;
        }
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let mut resolved = Vec::with_capacity(specs.len());
        for s in specs {
            let mut s = s.clone();
            let fix = |v: &mut String| match resolve_value(v, &env) {
                Ok(r) => {
                    *v = r;
                    true
                }
                Err(e) => {
                    log_message(&format!("{kind}: {e}"));
                    false
                }
            };
            let mut ok = fix(&mut s.url);
            for (_, v) in &mut s.headers {
                ok &= fix(v);
            }
            if ok {
                resolved.push(s);
            }
        }
        let ctx = SendContext {
            profile: &self.name,
            command: &self.command,
            error,
            env: &env,
        };
        for w in crate::monitor::send::send_all_with_funcs(
            &resolved,
            &ctx,
            &self.http,
            self.runner.funcs,
        ) {
            log_message(&format!("{kind}: {w}"));
        }
    }

    /// `initialize = true` (profile or global): try `init`, ignoring errors.
    pub fn initialize_if_asked(&self) {
        let wanted = self
            .profile
            .initialize()
            .unwrap_or(self.runner.global.initialize);
        if !wanted || self.runner.opts.dry_run {
            return;
        }
        if let Ok(args) = crate::options::command_args(&self.profile, "init", self.runner.schema) {
            let _ = self.runner.engine.run(&EngineCall {
                command: "init",
                args: &args,
            });
        }
    }

    /// Run one engine command with the profile's options for `section`, retrying while the
    /// repository is locked and the lock-wait budget lasts; record status and metrics.
    pub fn engine_step(
        &self,
        kind: StepKind,
        command: &str,
        section: &str,
        with_extra: bool,
    ) -> Result<EngineResult, StepError> {
        let mut args = crate::options::command_args(&self.profile, section, self.runner.schema)
            .map_err(|e| StepError::plain(format!("profile '{}': {e}", self.name)))?;
        if with_extra && !self.extra.is_empty() {
            args = override_args(args, &self.extra, self.runner.schema, command);
        }
        let lookup: BTreeMap<String, String> = std::env::vars().chain(self.env.clone()).collect();
        for a in &mut args {
            // Secret references in option values; plain values come back unchanged.
            if let Some((flag, value)) = a.split_once('=')
                && flag.starts_with("--")
            {
                let v = resolve_value(value, &lookup).map_err(|e| {
                    StepError::plain(format!("profile '{}': {flag}: {e}", self.name))
                })?;
                if v != value {
                    *a = format!("{flag}={v}");
                }
            }
        }
        let call = EngineCall {
            command,
            args: &args,
        };
        let command_line = crate::secrets::redact(&self.runner.engine.command_line(&call));
        if self.runner.opts.dry_run {
            log_message(&format!("dry-run: {command_line}"));
            return Ok(EngineResult::default());
        }
        self.apply_env();
        let started = Instant::now();
        let started_at = chrono::Local::now().fixed_offset();
        let watcher = self.stream_error_watcher();
        let mut unlocked_once = false;
        let (result, stderr) = loop {
            self.flush();
            if let Some(r) = self.runner.router {
                r.begin_stderr_capture();
            }
            let wid = match (&watcher, self.runner.router) {
                (Some(w), Some(r)) => {
                    let w = w.clone();
                    Some(r.add_stderr_watcher(Box::new(move |line: &str| w.feed(line))))
                }
                _ => None,
            };
            let result = self.runner.engine.run(&call);
            self.flush();
            if let (Some(id), Some(r)) = (wid, self.runner.router) {
                r.remove_stderr_watcher(id);
            }
            let stderr = self
                .runner
                .router
                .map(|r| r.take_stderr())
                .unwrap_or_default();
            if result.exit_code == 11 {
                // resticprofile's stale-lock rule: older than max(restic-stale-lock-age, 15m).
                let stale = match (result.lock_age, self.runner.global.restic_stale_lock_age) {
                    (Some(age), Some(limit)) if !limit.is_zero() => {
                        age >= limit.max(Duration::from_secs(15 * 60))
                    }
                    _ => false,
                };
                if stale && !self.profile.force_inactive_lock() {
                    log_message(
                        "the repository lock looks stale: set `force-inactive-lock = true` in the \
                         profile, or run `cairn unlock` after checking no other backup runs",
                    );
                }
                if stale && self.profile.force_inactive_lock() && !unlocked_once {
                    unlocked_once = true;
                    log_message("repository is locked: removing stale locks (force-inactive-lock)");
                    let unlock_args: Vec<String> = args
                        .iter()
                        .filter(|a| is_global_repo_arg(a))
                        .cloned()
                        .collect();
                    let _ = self.runner.engine.run(&EngineCall {
                        command: "unlock",
                        args: &unlock_args,
                    });
                    continue;
                }
                let retry_after = self
                    .runner
                    .global
                    .restic_lock_retry_after
                    .clamp(Duration::from_secs(15), Duration::from_secs(1800));
                let mut budget = self.budget.borrow_mut();
                let remaining = budget.remaining();
                if remaining > Duration::ZERO {
                    let wait = retry_after.min(remaining);
                    log_message(&format!(
                        "repository is locked: retrying in {}s (lock wait remaining {}s)",
                        wait.as_secs(),
                        remaining.as_secs()
                    ));
                    std::thread::sleep(wait);
                    budget.consume(wait);
                    continue;
                }
            }
            break (result, stderr);
        };
        if let Some(w) = &watcher {
            w.wait();
        }
        let duration = started.elapsed();
        let tolerated = kind == StepKind::Backup
            && result.exit_code == 3
            && self.profile.bool_in("backup", "no-error-on-warning") == Some(true);
        let success = result.exit_code == 0 || tolerated;
        self.record(kind, &result, success, &stderr, duration, started_at);
        if let Some(s) = &result.stats {
            self.summary.borrow_mut().push(format!(
                "{command}: {} new, {} changed, {} unmodified files; {} bytes added{}",
                s.files_new,
                s.files_changed,
                s.files_unmodified,
                s.bytes_added,
                s.snapshot_id
                    .as_ref()
                    .map(|id| format!("; snapshot {id}"))
                    .unwrap_or_default()
            ));
        } else {
            self.summary.borrow_mut().push(format!(
                "{command}: {}",
                if success { "ok" } else { "failed" }
            ));
        }
        if success {
            if result.exit_code == 3 {
                log_message(
                    "warning: at least one source file could not be read (no-error-on-warning)",
                );
            }
            return Ok(result);
        }
        let message = format!(
            "{command} on profile '{}': exit status {}",
            self.name, result.exit_code
        );
        Err(StepError {
            info: ErrorInfo {
                message,
                command_line,
                exit_code: result.exit_code,
                stderr: tail(&crate::secrets::redact(&stderr), STDERR_LIMIT),
            },
            exit_code: if result.exit_code == 130 { 130 } else { 1 },
        })
    }

    fn stream_error_watcher(&self) -> Option<std::sync::Arc<crate::hooks::StreamErrorWatcher>> {
        let specs = self.profile.stream_error();
        if specs.is_empty() {
            return None;
        }
        let shell = self.shell.clone()?;
        let env = self.hook_env(None).ok()?;
        let cwd = std::env::current_dir().ok()?;
        crate::hooks::StreamErrorWatcher::new(&specs, shell, env, cwd)
            .map(std::sync::Arc::new)
            .map_err(|e| log_message(&format!("stream-error: {}", e.message)))
            .ok()
    }

    /// Status file and metrics for one engine step.
    fn record(
        &self,
        kind: StepKind,
        result: &EngineResult,
        success: bool,
        stderr: &str,
        duration: Duration,
        started_at: chrono::DateTime<chrono::FixedOffset>,
    ) {
        let status_kind = match kind {
            StepKind::Backup => StatusKind::Backup,
            StepKind::Retention => StatusKind::Retention,
            StepKind::Check => StatusKind::Check,
            StepKind::Prune => StatusKind::Prune,
            StepKind::Other => return,
        };
        let stats = (kind == StepKind::Backup).then(|| {
            if success {
                result.stats.clone().unwrap_or_default()
            } else {
                crate::types::BackupStats::default()
            }
        });
        if let Some(path) = self.profile.status_file() {
            let entry = StatusEntry {
                success,
                time: chrono::Local::now().fixed_offset(),
                started: Some(started_at),
                error: result
                    .error
                    .as_deref()
                    .map(crate::secrets::redact)
                    .unwrap_or_default(),
                stderr: crate::secrets::redact(stderr),
                duration,
                stats: stats.clone(),
                exit_code: Some(result.exit_code),
                warning: result.exit_code == 3,
                host: None,
            };
            if let Err(e) =
                crate::monitor::status_file::record(&path, &self.name, status_kind, &entry)
            {
                log_message(&format!("cannot write status file {}: {e}", path.display()));
            }
        }
        let prom = self.profile.prometheus();
        if prom.save_to_file.is_none() && prom.push.is_none() {
            return;
        }
        let status = match (success, result.exit_code) {
            (true, 3) => RunStatus::Warning,
            (true, _) => RunStatus::Success,
            _ => RunStatus::Fail,
        };
        let cmd_name = match kind {
            StepKind::Retention => "forget",
            StepKind::Check => "check",
            StepKind::Prune => "prune",
            _ => "backup",
        };
        self.metrics.borrow_mut().push(StepMetrics {
            command: cmd_name,
            status,
            duration,
            end: chrono::Utc::now(),
            backup: stats,
        });
        let steps = self.metrics.borrow();
        let runs: Vec<MetricsRun> = steps
            .iter()
            .map(|m| MetricsRun {
                profile: &self.name,
                group: self.group.as_deref(),
                command: m.command,
                labels: &prom.labels,
                status: m.status,
                duration: m.duration,
                end: m.end,
                backup: m.backup.as_ref(),
                version: env!("CARGO_PKG_VERSION"),
            })
            .collect();
        let Some(run) = runs.last() else {
            return;
        };
        if let Some(f) = &prom.save_to_file
            && let Err(e) = crate::monitor::metrics::save_many_to_file(f, &runs)
        {
            log_message(&format!("cannot write metrics to {}: {e}", f.display()));
        }
        if prom.push.is_some()
            && let Some(w) = crate::monitor::metrics::push(&prom, run, &self.http)
        {
            log_message(&format!("prometheus push: {w}"));
        }
    }
}

/// The long name of a flag argument of `command` (`--host=x` → `host`, `-r` → `repo`).
fn flag_name(a: &str, schema: &dyn crate::types::FlagSchema, command: &str) -> Option<String> {
    if let Some(long) = a.strip_prefix("--") {
        return Some(long.split('=').next().unwrap_or(long).to_string());
    }
    let short = a.strip_prefix('-')?.chars().next()?;
    schema.long_of_short(command, short)
}

/// Profile arguments followed by the user's: a flag the user gives replaces the profile's
/// value (the engine accepts one value per single-valued flag); repeatable flags add up.
fn override_args(
    profile: Vec<String>,
    extra: &[String],
    schema: &dyn crate::types::FlagSchema,
    command: &str,
) -> Vec<String> {
    let given: Vec<String> = extra
        .iter()
        .filter_map(|a| flag_name(a, schema, command))
        .collect();
    let mut out: Vec<String> = profile
        .into_iter()
        .filter(|a| {
            match a
                .strip_prefix("--")
                .and_then(|_| flag_name(a, schema, command))
            {
                Some(name) if given.contains(&name) => matches!(
                    schema.flag(command, &name),
                    Some(crate::types::FlagKind::Repeated | crate::types::FlagKind::Count)
                ),
                _ => true,
            }
        })
        .collect();
    out.extend(extra.iter().cloned());
    out
}

/// Arguments that locate and open the repository (kept for the `unlock` retry).
fn is_global_repo_arg(a: &str) -> bool {
    [
        "--repo=",
        "--repository-file=",
        "--password-file=",
        "--password-command=",
        "--option=",
        "--cache-dir=",
        "--no-cache",
        "--cacert=",
        "--tls-client-cert=",
        "--insecure-no-password",
    ]
    .iter()
    .any(|p| a.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Schema;
    impl crate::types::FlagSchema for Schema {
        fn has_command(&self, _: &str) -> bool {
            true
        }
        fn flag(&self, _: &str, flag: &str) -> Option<crate::types::FlagKind> {
            use crate::types::FlagKind::*;
            Some(match flag {
                "tag" => Repeated,
                "verbose" => Count,
                "exclude-caches" => Bool,
                _ => Value,
            })
        }
        fn flags(&self, _: &str) -> Vec<String> {
            Vec::new()
        }
        fn long_of_short(&self, _: &str, short: char) -> Option<String> {
            match short {
                'v' => Some("verbose".into()),
                'r' => Some("repo".into()),
                _ => None,
            }
        }
    }

    #[test]
    fn user_flags_replace_single_valued_profile_flags() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let out = override_args(
            s(&[
                "--host=a",
                "--tag=x",
                "--exclude-caches",
                "--verbose",
                "/etc",
            ]),
            &s(&["--host", "b", "--tag=y", "--exclude-caches", "-v"]),
            &Schema,
            "backup",
        );
        assert_eq!(
            out,
            s(&[
                "--tag=x",
                "--verbose",
                "/etc",
                "--host",
                "b",
                "--tag=y",
                "--exclude-caches",
                "-v"
            ])
        );
        let out = override_args(
            s(&["--repo=/r", "/etc"]),
            &s(&["-r", "/other"]),
            &Schema,
            "backup",
        );
        assert_eq!(out, s(&["/etc", "-r", "/other"]));
    }

    #[test]
    fn multi_word_commands() {
        let mut extra = vec!["snapshots".to_string(), "--forget".to_string()];
        assert_eq!(normalize_command("repair", &mut extra), "repair snapshots");
        assert_eq!(extra, ["--forget"]);
        let mut extra = vec![];
        assert_eq!(
            normalize_command("repair-snapshots", &mut extra),
            "repair snapshots"
        );
        assert_eq!(normalize_command("key-add", &mut extra), "key add");
        assert_eq!(normalize_command("backup", &mut extra), "backup");
    }
}
