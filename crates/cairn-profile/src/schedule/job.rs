//! Helpers shared by the generators: names and ids, permission and priority resolution,
//! the log target, the job's command line and environment (secrets refused), quoting.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{JobContext, ScheduleError};
use crate::types::{Global, ScheduleSpec};

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
    if crate::secrets::is_secret_env_name(name) || suffix("_AUTH") {
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

impl JobContext {
    /// The context of this process: `binary` = the running executable, `working_dir` = the
    /// current directory, `config_file` made absolute, root-ness from the effective uid, the
    /// sudo caller (`SUDO_USER`, `SUDO_UID`) as `user`/`uid`/`home` when running under sudo,
    /// and `env` = the process environment overlaid with `profile_env`.
    pub fn from_process(
        config_file: &Path,
        profile_env: &BTreeMap<String, String>,
    ) -> Result<JobContext, ScheduleError> {
        use nix::unistd::{Uid, User, geteuid, getuid};
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| ScheduleError::Io {
                action,
                path,
                source,
            }
        };
        let working_dir = std::env::current_dir().map_err(io("read", Path::new(".")))?;
        let binary =
            std::env::current_exe().map_err(io("locate", Path::new("the cairn executable")))?;
        let binary = binary.canonicalize().unwrap_or(binary);
        let config_file = working_dir.join(config_file);
        let config_file = config_file.canonicalize().unwrap_or(config_file);
        let is_root = geteuid().is_root();
        let sudo_user = std::env::var("SUDO_USER")
            .ok()
            .filter(|u| is_root && !u.is_empty() && u != "root");
        let sudo_account = sudo_user
            .as_deref()
            .and_then(|u| User::from_name(u).ok().flatten());
        let own = User::from_uid(getuid()).ok().flatten();
        let (user, uid, home) = match (&sudo_user, sudo_account) {
            (Some(name), Some(acc)) => (name.clone(), acc.uid.as_raw(), acc.dir),
            (Some(name), None) => (
                name.clone(),
                std::env::var("SUDO_UID")
                    .ok()
                    .and_then(|u| u.parse().ok())
                    .unwrap_or(0),
                PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/".into())),
            ),
            (None, _) => (
                own.as_ref()
                    .map(|u| u.name.clone())
                    .or_else(|| std::env::var("USER").ok())
                    .unwrap_or_default(),
                Uid::current().as_raw(),
                std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .or_else(|| own.map(|u| u.dir))
                    .unwrap_or_else(|| PathBuf::from("/")),
            ),
        };
        let mut env: BTreeMap<String, String> = std::env::vars().collect();
        env.extend(profile_env.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(JobContext {
            binary,
            config_file,
            working_dir,
            is_root,
            home,
            user,
            sudo_user,
            uid,
            env,
            unit_dir_override: None,
        })
    }
}
