//! systemd artifacts (§17.5): `cairn-<command>@profile-<profile>.service` and `.timer`.
//!
//! Calendar expressions go verbatim into `OnCalendar=` (validated by `cairn-calendar` first).
//! Custom Go-template units (`global.systemd-unit-template`) are not supported: a warning
//! says so and the built-in unit is written.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{
    GeneratedFile, Job, JobContext, LogTarget, Permission, ScheduleError, Scope, expressions,
    invalid, is_background, job_argv, job_environment, job_id, log_target, nice, permission,
    schedule_id, utf8, wrapper,
};
use crate::types::{Global, ScheduleSpec};

/// System unit directory.
pub(crate) const SYSTEM_DIR: &str = "/etc/systemd/system";
/// Absolute path of `truncate` used by `ExecStartPre=`.
const TRUNCATE: &str = "/usr/bin/truncate";

/// The unit base name `cairn-<command>@profile-<profile>` (escaped for unit names).
pub(crate) fn unit_base(command: &str, profile: &str) -> String {
    format!(
        "cairn-{}@profile-{}",
        escape_unit(command),
        escape_unit(profile)
    )
}

/// Escape for a unit name: keep `[A-Za-z0-9:_.-]`, write other bytes as `\xNN`.
fn escape_unit(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b":_.-".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Directory of user units.
pub(crate) fn user_dir(ctx: &JobContext) -> PathBuf {
    ctx.home.join(".config/systemd/user")
}

/// Escape `%` specifiers in free text (descriptions, paths).
fn spec_escape(s: &str) -> String {
    s.replace('%', "%%")
}

/// Quote one word of a command line (`ExecStart=`): specifiers and variables escaped,
/// quoted with C escapes when it holds anything but safe characters.
fn exec_word(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_.,:@=+-".contains(c));
    if safe {
        return s.to_string();
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c) & 0xff);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `Environment="NAME=value"` with escapes.
fn env_line(name: &str, value: &str) -> String {
    let mut out = String::from("Environment=\"");
    for c in format!("{name}={value}").chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c) & 0xff);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A duration as a systemd time span (`5min`, `1h 30min`, `1us`).
pub(crate) fn timespan(d: Duration) -> String {
    let mut us = d.as_micros();
    if us == 0 {
        return "0".into();
    }
    let units: [(u128, &str); 7] = [
        (86_400_000_000, "d"),
        (3_600_000_000, "h"),
        (60_000_000, "min"),
        (1_000_000, "s"),
        (1_000, "ms"),
        (1, "us"),
        (0, ""),
    ];
    let mut parts = Vec::new();
    for (size, name) in units {
        if size == 0 || us == 0 {
            break;
        }
        if us >= size {
            parts.push(format!("{}{name}", us / size));
            us %= size;
        }
    }
    parts.join(" ")
}

/// IOSchedulingClass name of a Linux ionice class.
fn io_class(class: u8) -> Option<&'static str> {
    match class {
        1 => Some("realtime"),
        2 => Some("best-effort"),
        3 => Some("idle"),
        _ => None,
    }
}

/// Directories a hardened job (ProtectSystem=strict) may write: the caches under
/// `$XDG_CACHE_HOME` or `~/.cache` (cairn, restic, rclone), the configuration file's
/// directory (status files, logs next to it), the log file's directory and rclone's
/// configuration directory (OAuth token refresh). Missing ones are ignored (`-` prefix).
fn writable_paths(ctx: &JobContext, log: &LogTarget) -> Vec<PathBuf> {
    let cache = ctx
        .env
        .get("XDG_CACHE_HOME")
        .filter(|s| s.starts_with('/'))
        .map(PathBuf::from)
        .unwrap_or_else(|| ctx.home.join(".cache"));
    let mut paths = vec![cache];
    if let Some(dir) = ctx.config_file.parent() {
        paths.push(dir.to_path_buf());
    }
    if let LogTarget::File(f) = log
        && let Some(dir) = Path::new(f).parent()
    {
        paths.push(dir.to_path_buf());
    }
    paths.push(ctx.home.join(".config/rclone"));
    let mut out: Vec<PathBuf> = Vec::new();
    for p in paths {
        if !p.as_os_str().is_empty() && p != Path::new("/") && !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// Generate the service (and timer unless manual-only) of one job.
pub(crate) fn generate(
    spec: &ScheduleSpec,
    global: &Global,
    ctx: &JobContext,
) -> Result<Job, ScheduleError> {
    let job = job_id(spec);
    let perm = permission(spec, ctx)?;
    let background = is_background(spec)?;
    let log = log_target(spec, ctx)?;
    let env = job_environment(spec, ctx)?;
    let config = utf8(&job, &ctx.config_file)?;
    let workdir = utf8(&job, &ctx.working_dir)?;
    let mut warnings = Vec::new();
    if global.systemd_unit_template.is_some() || global.systemd_timer_template.is_some() {
        warnings.push(
            "global systemd-unit-template / systemd-timer-template are not supported; the built-in units were generated"
                .to_string(),
        );
    }

    let (scope, dir) = match perm {
        Permission::System | Permission::User => (Scope::System, PathBuf::from(SYSTEM_DIR)),
        Permission::UserLoggedOn => (Scope::User, user_dir(ctx)),
    };
    let dir = ctx.unit_dir_override.clone().unwrap_or(dir);
    if scope == Scope::User {
        if spec.hardening {
            return Err(invalid(
                &job,
                "schedule-hardening needs a system unit (capabilities cannot be granted by the user manager): \
                 use schedule-permission = \"system\" with schedule-user, or \"user\"",
            ));
        }
        if spec.after_network_online {
            return Err(invalid(
                &job,
                "schedule-after-network-online is not available for user units (user_logged_on): use schedule-permission \"system\" or \"user\"",
            ));
        }
        if spec.user.is_some() || spec.group.is_some() {
            return Err(invalid(
                &job,
                "schedule-user / schedule-group need a system unit: use schedule-permission \"system\"",
            ));
        }
    }
    let run_as = match perm {
        Permission::System => spec.user.clone(),
        Permission::User => spec
            .user
            .clone()
            .or_else(|| ctx.sudo_user.clone())
            .or_else(|| (!ctx.is_root).then(|| ctx.user.clone())),
        Permission::UserLoggedOn => None,
    };

    let base = unit_base(&spec.command, &spec.profile);
    let service_name = format!("{base}.service");
    let timer_name = format!("{base}.timer");
    let header = |kind: &str| {
        format!(
            "# Generated by `cairn schedule` ({kind} of {job}); run `cairn schedule` again instead of editing.\n\
             # cairn-scope: {}\n",
            if scope == Scope::System {
                "system"
            } else {
                "user"
            }
        )
    };

    // Service unit.
    let mut s = header("service");
    s.push_str("\n[Unit]\n");
    let _ = writeln!(
        s,
        "Description={}",
        spec_escape(&format!(
            "cairn {} for profile {} in {config}",
            spec.command, spec.profile
        ))
    );
    if spec.after_network_online {
        s.push_str("After=network-online.target\nWants=network-online.target\n");
    }
    if spec.hardening {
        s.push_str("StartLimitIntervalSec=0\n");
    }
    s.push_str("\n[Service]\nType=notify\n");
    let prefix = wrapper(spec, ctx);
    if !prefix.is_empty() {
        // A wrapper that forks would send READY=1 from a child process.
        s.push_str("NotifyAccess=all\n");
    }
    let _ = writeln!(s, "WorkingDirectory={}", spec_escape(workdir));
    if spec.log_truncate
        && let LogTarget::File(f) = &log
    {
        let _ = writeln!(s, "ExecStartPre={TRUNCATE} -s 0 -- {}", exec_word(f));
    }
    let argv: Vec<String> = prefix
        .into_iter()
        .chain(job_argv(spec, ctx, &log, true)?)
        .collect();
    let words: Vec<String> = argv.iter().map(|a| exec_word(a)).collect();
    let _ = writeln!(s, "ExecStart={}", words.join(" "));
    if let Some(u) = &run_as {
        let _ = writeln!(s, "User={}", spec_escape(u));
    }
    if let Some(g) = &spec.group {
        let _ = writeln!(s, "Group={}", spec_escape(g));
    }
    let n = nice(global);
    if n != 0 {
        let _ = writeln!(s, "Nice={n}");
    }
    if background {
        s.push_str("CPUSchedulingPolicy=idle\nIOSchedulingClass=idle\n");
    } else if global.ionice
        && let Some(class) = io_class(global.ionice_class)
    {
        let _ = writeln!(s, "IOSchedulingClass={class}");
        if global.ionice_class != 3 {
            let _ = writeln!(s, "IOSchedulingPriority={}", global.ionice_level.min(7));
        }
    }
    let id = schedule_id(ctx, spec)?;
    let mut all_env: Vec<(String, String)> = env.into_iter().collect();
    if scope == Scope::System {
        let home = utf8(&job, &ctx.home)?;
        all_env.retain(|(k, _)| k != "HOME");
        all_env.push(("HOME".into(), home.to_string()));
        if let Some(su) = &ctx.sudo_user {
            all_env.retain(|(k, _)| k != "SUDO_USER");
            all_env.push(("SUDO_USER".into(), su.clone()));
        }
    }
    all_env.push(("CAIRN_SCHEDULE_ID".into(), id.clone()));
    all_env.push(("RESTICPROFILE_SCHEDULE_ID".into(), id));
    for (k, v) in &all_env {
        s.push_str(&env_line(k, v));
        s.push('\n');
    }
    if spec.hardening {
        s.push_str(
            "AmbientCapabilities=CAP_DAC_READ_SEARCH\n\
             CapabilityBoundingSet=CAP_DAC_READ_SEARCH\n\
             SecureBits=keep-caps\n\
             NoNewPrivileges=true\n\
             LimitNOFILE=infinity\n\
             PrivateTmp=true\n\
             ProtectSystem=strict\n",
        );
        for p in writable_paths(ctx, &log) {
            let p = utf8(&job, &p)?;
            let _ = writeln!(s, "ReadWritePaths={}", exec_word(&format!("-{p}")));
        }
    }

    let mut files = vec![GeneratedFile {
        path: dir.join(&service_name),
        contents: s,
        mode: 0o644,
    }];

    let user_flag: &[&str] = if scope == Scope::User {
        &["--user"]
    } else {
        &[]
    };
    let systemctl = |args: &[&str]| -> Vec<String> {
        std::iter::once("systemctl")
            .chain(user_flag.iter().copied())
            .chain(args.iter().copied())
            .map(str::to_string)
            .collect()
    };
    let mut commands = vec![systemctl(&["daemon-reload"])];
    let cals: Vec<&str> = expressions(spec).collect();
    let name = if cals.is_empty() {
        service_name.clone()
    } else {
        let mut t = header("timer");
        t.push_str("\n[Unit]\n");
        let _ = writeln!(
            t,
            "Description={}",
            spec_escape(&format!(
                "{} timer for profile {} in {config}",
                spec.command, spec.profile
            ))
        );
        t.push_str("\n[Timer]\n");
        for c in &cals {
            let _ = writeln!(t, "OnCalendar={c}");
        }
        let _ = writeln!(t, "Unit={service_name}");
        if spec.persistent.unwrap_or(true) {
            t.push_str("Persistent=true\n");
        }
        if let Some(d) = spec.random_delay {
            let _ = writeln!(t, "RandomizedDelaySec={}", timespan(d));
        }
        if let Some(d) = spec.accuracy {
            let _ = writeln!(t, "AccuracySec={}", timespan(d));
        }
        t.push_str("\n[Install]\nWantedBy=timers.target\n");
        files.push(GeneratedFile {
            path: dir.join(&timer_name),
            contents: t,
            mode: 0o644,
        });
        commands.push(systemctl(&["enable", "--quiet", "--now", &timer_name]));
        timer_name
    };
    Ok(Job {
        spec: spec.clone(),
        files,
        commands,
        crontab_lines: Vec::new(),
        warnings,
        scope,
        name,
    })
}

/// A job's unit files found in `dir`: (service path, timer path if any, scope, calendars).
pub(crate) struct FoundUnits {
    pub service: PathBuf,
    pub timer: Option<PathBuf>,
    pub scope: Scope,
    pub calendars: Vec<String>,
    pub command: String,
    pub profile: String,
    pub name: String,
}

/// Read one `KEY=value` directive's values from a unit file's text.
pub(crate) fn directives<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix(key)?.strip_prefix('='))
        .map(str::trim)
        .collect()
}

/// Undo `env_line` quoting: the value of `Environment="NAME=…"` for `name`.
fn env_value(text: &str, name: &str) -> Option<String> {
    for d in directives(text, "Environment") {
        let inner = d.strip_prefix('"').and_then(|d| d.strip_suffix('"'))?;
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(c) => out.push(c),
                    None => {}
                },
                '%' => {
                    chars.next();
                    out.push('%');
                }
                c => out.push(c),
            }
        }
        if let Some(v) = out.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
            return Some(v.to_string());
        }
    }
    None
}

/// Jobs of `config` among the `cairn-*.service` files in `dir`.
pub(crate) fn discover(
    dir: &Path,
    config: &str,
    default_scope: Scope,
) -> Result<Vec<FoundUnits>, ScheduleError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ScheduleError::Io {
                action: "read directory",
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut found = Vec::new();
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("cairn-") && n.ends_with(".service") && n.contains("@profile-"))
        .collect();
    names.sort();
    for n in names {
        let path = dir.join(&n);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Some(id) = env_value(&text, "CAIRN_SCHEDULE_ID") else {
            continue;
        };
        let Some((command, profile)) = super::parse_schedule_id(&id, config) else {
            continue;
        };
        let scope = if text.contains("\n# cairn-scope: user\n") {
            Scope::User
        } else if text.contains("\n# cairn-scope: system\n") {
            Scope::System
        } else {
            default_scope
        };
        let base = n.trim_end_matches(".service");
        let timer_path = dir.join(format!("{base}.timer"));
        let (timer, calendars) = match std::fs::read_to_string(&timer_path) {
            Ok(t) => (
                Some(timer_path),
                directives(&t, "OnCalendar")
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
            ),
            Err(_) => (None, Vec::new()),
        };
        let name = match &timer {
            Some(_) => format!("{base}.timer"),
            None => n.clone(),
        };
        found.push(FoundUnits {
            service: path,
            timer,
            scope,
            calendars,
            command: command.to_string(),
            profile: profile.to_string(),
            name,
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_unit_names() {
        assert_eq!(unit_base("backup", "vps"), "cairn-backup@profile-vps");
        assert_eq!(
            unit_base("backup", "Google Drive"),
            "cairn-backup@profile-Google\\x20Drive"
        );
        assert_eq!(unit_base("check", "a@b"), "cairn-check@profile-a\\x40b");
    }

    #[test]
    fn quotes_exec_words() {
        assert_eq!(exec_word("/usr/bin/cairn"), "/usr/bin/cairn");
        assert_eq!(exec_word("backup@vps"), "backup@vps");
        assert_eq!(exec_word("a b"), "\"a b\"");
        assert_eq!(exec_word("100%$x\"\\"), "\"100%%$$x\\\"\\\\\"");
        assert_eq!(exec_word(""), "\"\"");
        assert_eq!(exec_word(";"), "\";\"");
    }

    #[test]
    fn env_lines_round_trip() {
        let line = env_line("X", "a \"b\" 100% \\ c\nd");
        assert_eq!(line, r#"Environment="X=a \"b\" 100%% \\ c\nd""#);
        assert_eq!(
            env_value(&line, "X").as_deref(),
            Some("a \"b\" 100% \\ c\nd")
        );
        assert_eq!(env_value(&line, "Y"), None);
    }

    #[test]
    fn formats_timespans() {
        assert_eq!(timespan(Duration::from_secs(300)), "5min");
        assert_eq!(timespan(Duration::from_micros(1)), "1us");
        assert_eq!(timespan(Duration::from_secs(5400)), "1h 30min");
        assert_eq!(timespan(Duration::from_millis(1500)), "1s 500ms");
        assert_eq!(timespan(Duration::ZERO), "0");
    }
}
