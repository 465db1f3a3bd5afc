//! Types shared by the modules of the profile layer: what the configuration loader produces and
//! what hooks, monitors, locks and schedules consume. Plain data, no behaviour beyond defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Shell hooks of one level (profile level or one command section), in run order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    /// `run-before` entries.
    pub run_before: Vec<String>,
    /// `run-after` entries.
    pub run_after: Vec<String>,
    /// `run-after-fail` entries.
    pub run_after_fail: Vec<String>,
    /// `run-finally` entries.
    pub run_finally: Vec<String>,
}

/// One HTTP hook (an element of `send-before`, `send-after`, `send-after-fail`, `send-finally`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendSpec {
    /// Target URL (may carry credentials; masked in logs). `$VAR` not yet expanded.
    pub url: String,
    /// HTTP method, upper case; empty means GET.
    pub method: String,
    /// Extra headers as (name, value).
    pub headers: Vec<(String, String)>,
    /// Literal body (wins over `body_template`). `$VAR` not yet expanded.
    pub body: Option<String>,
    /// Go-template file for the body, already made absolute.
    pub body_template: Option<PathBuf>,
    /// Accept any TLS certificate.
    pub skip_tls_verification: bool,
}

/// HTTP hooks of one command section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sends {
    /// `send-before`.
    pub before: Vec<SendSpec>,
    /// `send-after`.
    pub after: Vec<SendSpec>,
    /// `send-after-fail`.
    pub after_fail: Vec<SendSpec>,
    /// `send-finally`.
    pub finally: Vec<SendSpec>,
}

/// What failed, as handed to failure hooks (`ERROR*` variables) and HTTP hook templates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorInfo {
    /// Failure message, e.g. `backup on profile 'vps': exit status 1`.
    pub message: String,
    /// Quoted command line of the failed command (secrets masked), `"prog" "arg"`.
    pub command_line: String,
    /// Exit code of the failed command, -1 when it did not exit normally.
    pub exit_code: i32,
    /// Everything the failed command wrote to stderr.
    pub stderr: String,
}

/// Counters of one backup run, for the status file and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupStats {
    /// New files.
    pub files_new: u64,
    /// Changed files.
    pub files_changed: u64,
    /// Unmodified files.
    pub files_unmodified: u64,
    /// New directories.
    pub dirs_new: u64,
    /// Changed directories.
    pub dirs_changed: u64,
    /// Unmodified directories.
    pub dirs_unmodified: u64,
    /// Files processed (scanned).
    pub files_total: u64,
    /// Bytes added to the repository before compression.
    pub bytes_added: u64,
    /// Bytes added after compression.
    pub bytes_added_packed: u64,
    /// Bytes processed (scanned).
    pub bytes_total: u64,
    /// Id of the snapshot written, if any.
    pub snapshot_id: Option<String>,
}

/// Body sent with the final Healthchecks ping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HealthchecksBody {
    /// The tail of this run's log (default).
    #[default]
    LogTail,
    /// A short summary of the run (outcome, duration, counters).
    Summary,
    /// No body.
    None,
}

/// Built-in Healthchecks.io monitor of a profile (`healthchecks-url`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthchecksSpec {
    /// Ping URL (`https://hc-ping.com/<uuid>`), or a secret reference (`op://`, `env:`, `file:`,
    /// `cmd:`) still to be resolved.
    pub url: String,
    /// Body of the final ping.
    pub body: HealthchecksBody,
    /// Largest body in bytes (a lower `Ping-Body-Limit` from the server wins).
    pub body_limit: usize,
    /// Timeout of one ping attempt.
    pub timeout: Duration,
    /// Attempts per ping (at least 1).
    pub retries: u32,
    /// Also send pings for runs started from a terminal (default true).
    pub interactive: bool,
}

impl Default for HealthchecksSpec {
    fn default() -> Self {
        HealthchecksSpec {
            url: String::new(),
            body: HealthchecksBody::LogTail,
            body_limit: 100_000,
            timeout: Duration::from_secs(10),
            retries: 3,
            interactive: true,
        }
    }
}

/// Prometheus settings of a profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrometheusSpec {
    /// `prometheus-save-to-file`: textfile-collector file, used verbatim.
    pub save_to_file: Option<PathBuf>,
    /// `prometheus-push`: Pushgateway base URL.
    pub push: Option<String>,
    /// `prometheus-push-job` (may contain `$command`); default `<profile>.<command>`.
    pub push_job: Option<String>,
    /// `prometheus-push-format`: `text` (default) or `protobuf`.
    pub push_format: Option<String>,
    /// `prometheus-labels`, already rendered.
    pub labels: BTreeMap<String, String>,
}

/// One `stream-error` callback.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamErrorSpec {
    /// RE2 pattern matched against each stderr line.
    pub pattern: String,
    /// Shell command started with the matching line on stdin.
    pub run: String,
    /// Matches needed before the first run (0 and 1 mean the first match).
    pub min_matches: u32,
    /// Most runs per command (0 = unlimited).
    pub max_runs: u32,
}

/// Settings of one scheduled job, from a command section's `schedule*` keys (flat or table
/// form) over `[global.schedule-defaults]`, or from a v2 group's `schedules` table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleSpec {
    /// Profile or group name.
    pub profile: String,
    /// Command the job runs (`backup`, `check`, `forget`, `prune`, `copy`).
    pub command: String,
    /// True when `profile` names a group.
    pub is_group: bool,
    /// Calendar expressions (systemd OnCalendar syntax); empty means a manual-only job.
    pub at: Vec<String>,
    /// `auto`, `system`, `user`, `user_logged_on`.
    pub permission: Option<String>,
    /// `background` or `standard`.
    pub priority: Option<String>,
    /// Log target for scheduled runs.
    pub log: Option<String>,
    /// `auto`, `log`, `console`, `all`.
    pub command_output: Option<String>,
    /// `default`, `fail`, `ignore`.
    pub lock_mode: Option<String>,
    /// Lock wait for scheduled runs.
    pub lock_wait: Option<Duration>,
    /// Globs of environment variable names copied into the job.
    pub capture_environment: Vec<String>,
    /// Skip when on battery.
    pub ignore_on_battery: bool,
    /// Skip when on battery and charge is at or below this percentage.
    pub ignore_on_battery_less_than: Option<u8>,
    /// systemd: order after network-online.target.
    pub after_network_online: bool,
    /// Extension `schedule-random-delay`: systemd `RandomizedDelaySec=`.
    pub random_delay: Option<Duration>,
    /// Extension `schedule-accuracy`: systemd `AccuracySec=`.
    pub accuracy: Option<Duration>,
    /// Extension `schedule-persistent` (default true): systemd `Persistent=`.
    pub persistent: Option<bool>,
    /// Extension `schedule-hardening`: read everything through CAP_DAC_READ_SEARCH instead
    /// of root, NoNewPrivileges, read-only system, private /tmp.
    pub hardening: bool,
    /// Extension `schedule-user` / `schedule-group`: account of a system job.
    pub user: Option<String>,
    /// See `user`.
    pub group: Option<String>,
    /// Extension `schedule-wrapper`: argv prefix for the job (e.g. `fdautil exec`).
    pub wrapper: Vec<String>,
    /// Extension `schedule-log-truncate`: empty the log file before each run.
    pub log_truncate: bool,
    /// Extension `schedule-environment`: extra `NAME=value` pairs written into the job.
    pub environment: BTreeMap<String, String>,
}

/// The `[global]` section after templates, includes and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Global {
    /// Command run when the command line names none (default `snapshots`).
    pub default_command: String,
    /// Try `init` before any command.
    pub initialize: bool,
    /// `idle`, `background`, `low`, `normal`, `high`, `highest`.
    pub priority: Option<String>,
    /// Nice value when `priority` is unset.
    pub nice: i32,
    /// Linux I/O priority on.
    pub ionice: bool,
    /// 1 realtime, 2 best-effort, 3 idle.
    pub ionice_class: u8,
    /// Level inside the class, 0..=7.
    pub ionice_level: u8,
    /// Refuse to run below this much available memory (MB, 0 = off).
    pub min_memory: u64,
    /// Keep the machine awake while running.
    pub prevent_sleep: bool,
    /// Shells for hooks, first found on PATH wins; empty means `bash`, then `sh`.
    pub shell: Vec<String>,
    /// Retry delay when the repository is locked (clamped to 15 s..30 min).
    pub restic_lock_retry_after: Duration,
    /// Age from which a repository lock counts as stale (None = never).
    pub restic_stale_lock_age: Option<Duration>,
    /// `auto`, `launchd`, `systemd`, `crond`, `crond:PATH`, `crontab:USER:FILE`.
    pub scheduler: String,
    /// `[global.schedule-defaults]` (profile, command and `at` are empty).
    pub schedule_defaults: ScheduleSpec,
    /// Custom systemd unit template file.
    pub systemd_unit_template: Option<PathBuf>,
    /// Custom systemd timer template file.
    pub systemd_timer_template: Option<PathBuf>,
    /// Default log target.
    pub log: Option<String>,
    /// `auto`, `log`, `console`, `all`.
    pub command_output: String,
    /// HTTP hook timeout.
    pub send_timeout: Duration,
    /// Extra PEM roots for HTTP hooks.
    pub ca_certificates: Vec<PathBuf>,
    /// Groups go on after a failing member.
    pub group_continue_on_error: bool,
}

impl Default for Global {
    fn default() -> Self {
        Global {
            default_command: "snapshots".into(),
            initialize: false,
            priority: None,
            nice: 0,
            ionice: false,
            ionice_class: 2,
            ionice_level: 0,
            min_memory: 100,
            prevent_sleep: false,
            shell: Vec::new(),
            restic_lock_retry_after: Duration::from_secs(60),
            restic_stale_lock_age: Some(Duration::from_secs(3600)),
            scheduler: "auto".into(),
            schedule_defaults: ScheduleSpec::default(),
            systemd_unit_template: None,
            systemd_timer_template: None,
            log: None,
            command_output: "auto".into(),
            send_timeout: Duration::from_secs(30),
            ca_certificates: Vec::new(),
            group_continue_on_error: false,
        }
    }
}

/// A group of profiles run one after the other.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// Description shown by `profiles`.
    pub description: String,
    /// Member profiles in run order.
    pub profiles: Vec<String>,
    /// `continue-on-error` (None = use the global setting).
    pub continue_on_error: Option<bool>,
    /// v2 `schedules` of the group.
    pub schedules: Vec<ScheduleSpec>,
}

/// How one engine flag is written on a command line, as the option router needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagKind {
    /// A switch (`--force`).
    Bool,
    /// Takes one value (`--host NAME`).
    Value,
    /// Takes a value and may repeat (`--tag a --tag b`).
    Repeated,
    /// A counted switch (`--verbose`, `-vv`); a number gives the level.
    Count,
}

/// The engine's command-line schema: which commands exist and which flags each accepts. The
/// binary implements it from its own argument definitions.
pub trait FlagSchema {
    /// Whether `command` (e.g. `backup`, `repair snapshots`, `key add`) exists.
    fn has_command(&self, command: &str) -> bool;
    /// The kind of `--flag` for `command` (global flags included), None when not accepted.
    fn flag(&self, command: &str, flag: &str) -> Option<FlagKind>;
    /// Every flag name `command` accepts (global flags included), for suggestions.
    fn flags(&self, command: &str) -> Vec<String>;
    /// The long name of the short flag `-c` of `command` (global flags included).
    fn long_of_short(&self, command: &str, short: char) -> Option<String>;
}
