//! Installing, removing and discovering jobs: writes the generated files and runs
//! `systemctl`, `launchctl` or `crontab` (found on the context's `PATH`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{
    InstalledJob, Job, JobContext, ScheduleError, Scheduler, Scope, cron, launchd, systemd,
};

/// Result of one external command.
pub(crate) struct Ran {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
    pub status: String,
}

/// Run `cmd` with the context's `PATH`, feeding `stdin` when given.
pub(crate) fn run(
    cmd: &[String],
    ctx: &JobContext,
    stdin: Option<&str>,
) -> Result<Ran, ScheduleError> {
    let line = cmd.join(" ");
    let Some((prog, args)) = cmd.split_first() else {
        return Err(ScheduleError::Command {
            command: line,
            detail: "empty command".into(),
        });
    };
    let mut c = Command::new(prog);
    c.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(path) = ctx.env.get("PATH") {
        c.env("PATH", path);
    }
    // ETXTBSY: a script just written may still be open in a child forked meanwhile.
    let mut attempt = 0;
    let mut child = loop {
        match c.spawn() {
            Ok(child) => break child,
            Err(e) if e.raw_os_error() == Some(26) && attempt < 20 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => {
                return Err(ScheduleError::Command {
                    command: line,
                    detail: format!("cannot start {prog}: {e} (is it installed and on PATH?)"),
                });
            }
        }
    };
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .map_err(|e| ScheduleError::Command {
                command: line.clone(),
                detail: format!("writing its input: {e}"),
            })?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| ScheduleError::Command {
            command: line.clone(),
            detail: e.to_string(),
        })?;
    Ok(Ran {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        status: out.status.to_string(),
    })
}

/// Run `cmd` and fail on a non-zero exit.
pub(crate) fn run_checked(
    cmd: &[String],
    ctx: &JobContext,
    stdin: Option<&str>,
) -> Result<String, ScheduleError> {
    let r = run(cmd, ctx, stdin)?;
    if r.ok {
        Ok(r.stdout)
    } else {
        Err(ScheduleError::Command {
            command: cmd.join(" "),
            detail: format!("{}: {}", r.status, r.stderr.trim()),
        })
    }
}

fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> ScheduleError + 'a {
    move |source| ScheduleError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Write `contents` to `path` atomically (temp file + rename) with `mode`.
fn write_file(path: &Path, contents: &str, mode: u32, dir_mode: u32) -> Result<(), ScheduleError> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(dir_mode)
            .create(dir)
            .map_err(io("create directory", dir))?;
    }
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".cairn-tmp");
    let tmp = dir.join(tmp_name);
    std::fs::write(&tmp, contents).map_err(io("write", &tmp))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .map_err(io("set permissions of", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("write", path))
}

fn remove_path(path: &Path) -> Result<bool, ScheduleError> {
    let r = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io("remove", path)(e)),
    }
}

fn needs_root(job: &str, scope: Scope, ctx: &JobContext, path: &Path) -> Result<(), ScheduleError> {
    if scope == Scope::System && !ctx.is_root && ctx.unit_dir_override.is_none() {
        return Err(ScheduleError::NeedsRoot {
            job: job.to_string(),
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Write the job's files and run the install commands: `systemctl [--user] daemon-reload`
/// and `enable --quiet [--now] <timer>` (`--now` only when `start`); `launchctl bootout`
/// (failure ignored: not loaded) then `bootstrap`; or rewrite the crontab with the job's
/// lines inside Cairn's block, other lines preserved. Returns human messages.
pub fn install(
    job: &Job,
    scheduler: &Scheduler,
    ctx: &JobContext,
    start: bool,
) -> Result<Vec<String>, ScheduleError> {
    let id = super::job_id(&job.spec);
    let mut messages = Vec::new();
    match scheduler {
        Scheduler::Systemd => {
            for f in &job.files {
                needs_root(&id, job.scope, ctx, &f.path)?;
            }
            if ctx.unit_dir_override.is_none() {
                // The same job installed with the other permission keeps running too.
                let other = match job.scope {
                    Scope::User => PathBuf::from(systemd::SYSTEM_DIR),
                    _ => systemd::user_dir(ctx),
                };
                if let Some(name) = job.files.first().and_then(|f| f.path.file_name())
                    && other.join(name).exists()
                {
                    messages.push(format!(
                        "warning: {} also exists; remove the old job with `cairn unschedule` using its previous schedule-permission",
                        other.join(name).display()
                    ));
                }
            }
            for f in &job.files {
                write_file(&f.path, &f.contents, f.mode, 0o755)?;
                messages.push(format!("wrote {}", f.path.display()));
            }
            for cmd in &job.commands {
                let cmd: Vec<String> = cmd
                    .iter()
                    .filter(|a| start || a.as_str() != "--now")
                    .cloned()
                    .collect();
                run_checked(&cmd, ctx, None)?;
                messages.push(format!("ran {}", cmd.join(" ")));
            }
            if job.name.ends_with(".service") {
                messages.push(format!(
                    "{id} has no calendar: start it with `systemctl{} start {}`",
                    if job.scope == Scope::User {
                        " --user"
                    } else {
                        ""
                    },
                    job.name
                ));
            }
        }
        Scheduler::Launchd => {
            for f in &job.files {
                needs_root(&id, job.scope, ctx, &f.path)?;
            }
            let empty = Vec::new();
            let (bootout, rest) = job.commands.split_first().unwrap_or((&empty, &[]));
            if !bootout.is_empty() {
                // Not loaded yet is fine.
                let _ = run(bootout, ctx, None)?;
            }
            for f in &job.files {
                let dir_mode = if job.scope == Scope::System {
                    0o755
                } else {
                    0o700
                };
                write_file(&f.path, &f.contents, f.mode, dir_mode)?;
                messages.push(format!("wrote {}", f.path.display()));
            }
            for cmd in rest {
                run_checked(cmd, ctx, None)?;
                messages.push(format!("ran {}", cmd.join(" ")));
            }
            if super::expressions(&job.spec).next().is_none() {
                let domain = bootout
                    .get(2)
                    .and_then(|d| d.rsplit_once('/'))
                    .map(|(d, _)| d.to_string())
                    .unwrap_or_default();
                messages.push(format!(
                    "{id} has no calendar: start it with `launchctl kickstart {domain}/{}`",
                    job.name
                ));
            }
        }
        Scheduler::Cron {
            crontab, program, ..
        } => {
            let current = read_crontab(crontab.as_deref(), program.as_deref(), ctx)?;
            let config = super::utf8(&id, &ctx.config_file)?;
            let updated = cron::replace_job(&current, config, &id, &job.crontab_lines);
            write_crontab(crontab.as_deref(), program.as_deref(), ctx, &updated)?;
            messages.push(format!("updated {}", job.name));
        }
    }
    Ok(messages)
}

fn crontab_program(program: Option<&Path>) -> String {
    program
        .and_then(Path::to_str)
        .unwrap_or("crontab")
        .to_string()
}

/// Current crontab text (empty when there is none).
fn read_crontab(
    file: Option<&Path>,
    program: Option<&Path>,
    ctx: &JobContext,
) -> Result<String, ScheduleError> {
    match file {
        Some(f) => match std::fs::read_to_string(f) {
            Ok(t) => Ok(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(io("read", f)(e)),
        },
        None => {
            let cmd = vec![crontab_program(program), "-l".to_string()];
            let r = run(&cmd, ctx, None)?;
            if r.ok {
                Ok(cron::strip_listing_header(&r.stdout))
            } else if format!("{}{}", r.stdout, r.stderr).contains("no crontab for") {
                Ok(String::new())
            } else {
                Err(ScheduleError::Command {
                    command: cmd.join(" "),
                    detail: format!("{}: {}", r.status, r.stderr.trim()),
                })
            }
        }
    }
}

fn write_crontab(
    file: Option<&Path>,
    program: Option<&Path>,
    ctx: &JobContext,
    text: &str,
) -> Result<(), ScheduleError> {
    match file {
        Some(f) => write_file(f, text, 0o644, 0o755),
        None => {
            run_checked(
                &[crontab_program(program), "-".to_string()],
                ctx,
                Some(text),
            )?;
            Ok(())
        }
    }
}

/// Unit directories to search: the override, or the system and user directories.
fn systemd_dirs(ctx: &JobContext) -> Vec<(PathBuf, Scope)> {
    match &ctx.unit_dir_override {
        Some(d) => vec![(d.clone(), Scope::System)],
        None => vec![
            (PathBuf::from(systemd::SYSTEM_DIR), Scope::System),
            (systemd::user_dir(ctx), Scope::User),
        ],
    }
}

fn launchd_dirs(ctx: &JobContext) -> Vec<PathBuf> {
    match &ctx.unit_dir_override {
        Some(d) => vec![d.clone()],
        None => vec![launchd::agent_dir(ctx), PathBuf::from(launchd::DAEMON_DIR)],
    }
}

fn config_str(ctx: &JobContext) -> Result<&str, ScheduleError> {
    super::utf8("schedule", &ctx.config_file)
}

/// Remove the job `command@profile` of this configuration file: `systemctl disable --now`,
/// delete unit, timer and drop-in directories, then `daemon-reload`; `launchctl bootout`
/// and delete the plist; or remove its crontab lines. [`ScheduleError::NotInstalled`]
/// when there is no such job.
pub fn uninstall(
    profile: &str,
    command: &str,
    scheduler: &Scheduler,
    ctx: &JobContext,
) -> Result<Vec<String>, ScheduleError> {
    let id = format!("{command}@{profile}");
    let config = config_str(ctx)?;
    let mut messages = Vec::new();
    let not_installed = || ScheduleError::NotInstalled {
        job: id.clone(),
        scheduler: scheduler.name(),
    };
    match scheduler {
        Scheduler::Systemd => {
            let mut any = false;
            for (dir, default_scope) in systemd_dirs(ctx) {
                for u in systemd::discover(&dir, config, default_scope)? {
                    if u.command != command || u.profile != profile {
                        continue;
                    }
                    any = true;
                    needs_root(&id, u.scope, ctx, &u.service)?;
                    let user: &[&str] = if u.scope == Scope::User {
                        &["--user"]
                    } else {
                        &[]
                    };
                    let sc = |args: &[&str]| -> Vec<String> {
                        std::iter::once("systemctl")
                            .chain(user.iter().copied())
                            .chain(args.iter().copied())
                            .map(str::to_string)
                            .collect()
                    };
                    if u.timer.is_some() {
                        let cmd = sc(&["disable", "--now", "--quiet", &u.name]);
                        let r = run(&cmd, ctx, None)?;
                        if r.ok {
                            messages.push(format!("ran {}", cmd.join(" ")));
                        } else {
                            messages.push(format!(
                                "{} failed ({}), removing the files anyway",
                                cmd.join(" "),
                                r.stderr.trim()
                            ));
                        }
                    }
                    let mut paths = vec![u.service.clone()];
                    paths.extend(u.timer.clone());
                    for p in [Some(&u.service), u.timer.as_ref()].into_iter().flatten() {
                        let mut d = p.as_os_str().to_os_string();
                        d.push(".d");
                        paths.push(PathBuf::from(d));
                    }
                    for p in paths {
                        if remove_path(&p)? {
                            messages.push(format!("removed {}", p.display()));
                        }
                    }
                    let cmd = sc(&["daemon-reload"]);
                    run_checked(&cmd, ctx, None)?;
                    messages.push(format!("ran {}", cmd.join(" ")));
                }
            }
            if !any {
                return Err(not_installed());
            }
        }
        Scheduler::Launchd => {
            let mut any = false;
            for dir in launchd_dirs(ctx) {
                for p in launchd::discover(&dir, config)? {
                    if p.command != command || p.profile != profile {
                        continue;
                    }
                    any = true;
                    needs_root(&id, p.scope, ctx, &p.path)?;
                    let target = format!("{}/{}", p.domain(ctx.uid), p.label);
                    let cmd = vec!["launchctl".to_string(), "bootout".into(), target];
                    let r = run(&cmd, ctx, None)?;
                    messages.push(if r.ok {
                        format!("ran {}", cmd.join(" "))
                    } else {
                        format!(
                            "{} failed ({}): it was not loaded",
                            cmd.join(" "),
                            r.stderr.trim()
                        )
                    });
                    if remove_path(&p.path)? {
                        messages.push(format!("removed {}", p.path.display()));
                    }
                }
            }
            if !any {
                return Err(not_installed());
            }
        }
        Scheduler::Cron {
            crontab, program, ..
        } => {
            let current = read_crontab(crontab.as_deref(), program.as_deref(), ctx)?;
            let (updated, found) = cron::remove_job(&current, config, &id);
            if !found {
                return Err(not_installed());
            }
            write_crontab(crontab.as_deref(), program.as_deref(), ctx, &updated)?;
            messages.push(format!(
                "removed {id} from {}",
                crontab
                    .as_ref()
                    .map(|f| f.display().to_string())
                    .unwrap_or_else(|| "the crontab".into())
            ));
        }
    }
    Ok(messages)
}

/// All jobs installed for the context's configuration file (discovered from unit files,
/// plists or crontab lines), for `unschedule --all` and `status`.
pub fn installed(
    scheduler: &Scheduler,
    ctx: &JobContext,
) -> Result<Vec<InstalledJob>, ScheduleError> {
    let config = config_str(ctx)?;
    let mut jobs = Vec::new();
    match scheduler {
        Scheduler::Systemd => {
            for (dir, scope) in systemd_dirs(ctx) {
                for u in systemd::discover(&dir, config, scope)? {
                    let mut files = vec![u.service];
                    files.extend(u.timer);
                    jobs.push(InstalledJob {
                        profile: u.profile,
                        command: u.command,
                        files,
                        calendars: u.calendars,
                        scope: u.scope,
                        name: u.name,
                    });
                }
            }
        }
        Scheduler::Launchd => {
            for dir in launchd_dirs(ctx) {
                for p in launchd::discover(&dir, config)? {
                    jobs.push(InstalledJob {
                        profile: p.profile,
                        command: p.command,
                        files: vec![p.path],
                        calendars: p.calendars,
                        scope: p.scope,
                        name: p.label,
                    });
                }
            }
        }
        Scheduler::Cron {
            crontab, program, ..
        } => {
            let text = read_crontab(crontab.as_deref(), program.as_deref(), ctx)?;
            for (command, profile, calendars) in cron::jobs_in(&text, config) {
                jobs.push(InstalledJob {
                    profile,
                    command,
                    files: crontab.iter().cloned().collect(),
                    calendars,
                    scope: if ctx.is_root {
                        Scope::System
                    } else {
                        Scope::User
                    },
                    name: crontab
                        .as_ref()
                        .map(|f| f.display().to_string())
                        .unwrap_or_else(|| format!("crontab of {}", ctx.user)),
                });
            }
        }
    }
    Ok(jobs)
}
