//! The in-process engine for profile runs: each command is parsed by Cairn's own command-line
//! definitions and run by the same code as `cairn <command>`, in this process. A password
//! command is run once per process and its result reused by every later command.

use cairn_profile::run::{Engine, EngineCall, EngineResult};
use clap::Parser;
use std::collections::HashMap;
use std::sync::Mutex;

/// [`Engine`] that runs commands in this process.
#[derive(Default)]
pub struct InProcessEngine {
    passwords: Mutex<HashMap<String, Vec<u8>>>,
}

/// Split `--password-command=X` / `--password-command X` out of `args`.
fn take_password_command(args: &[String]) -> (Vec<String>, Option<String>) {
    let mut out = Vec::with_capacity(args.len());
    let mut cmd = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix("--password-command=") {
            cmd = Some(v.to_string());
        } else if a == "--password-command" {
            cmd = it.next().cloned();
        } else {
            out.push(a.clone());
        }
    }
    (out, cmd)
}

impl InProcessEngine {
    fn password_for(&self, cmd: &str) -> anyhow::Result<Vec<u8>> {
        if let Ok(map) = self.passwords.lock()
            && let Some(p) = map.get(cmd)
        {
            return Ok(p.clone());
        }
        let p = crate::open::run_password_command(cmd)?;
        if let Ok(mut map) = self.passwords.lock() {
            map.insert(cmd.to_string(), p.clone());
        }
        Ok(p)
    }
}

/// The age of the conflicting repository lock of a "repository is locked" error.
fn lock_age(e: &anyhow::Error) -> Option<std::time::Duration> {
    let conflict = e.chain().find_map(|c| match crate::repo_error(c) {
        Some(cairn_repo::RepoError::Locked(l)) => Some(&l.time),
        _ => None,
    })?;
    let created = chrono::DateTime::parse_from_rfc3339(conflict).ok()?;
    (chrono::Utc::now() - created.with_timezone(&chrono::Utc))
        .to_std()
        .ok()
}

impl Engine for InProcessEngine {
    fn run(&self, call: &EngineCall) -> EngineResult {
        let (args, pw_cmd) = take_password_command(call.args);
        let mut argv: Vec<String> = vec!["cairn".into()];
        argv.extend(call.command.split(' ').map(str::to_string));
        argv.extend(args);
        let fail = |code: i32, msg: String| {
            eprintln!("Fatal: {msg}");
            EngineResult {
                exit_code: code,
                error: Some(msg),
                stats: None,
                lock_age: None,
            }
        };
        let cli = match crate::cli::Cli::try_parse_from(&argv) {
            Ok(c) => c,
            Err(e) => return fail(1, format!("{}", e.render()).trim().to_string()),
        };
        crate::open::set_preset_password(None);
        if let Some(cmd) = pw_cmd {
            match self.password_for(&cmd) {
                Ok(p) => crate::open::set_preset_password(Some(p)),
                Err(e) => return fail(12, format!("{e:#}")),
            }
        }
        let _ = crate::cmd::backup::take_last_stats();
        let r = crate::cmd::run(&cli);
        crate::open::set_preset_password(None);
        let stats = crate::cmd::backup::take_last_stats();
        match r {
            Ok(()) => EngineResult {
                exit_code: 0,
                error: None,
                stats,
                lock_age: None,
            },
            Err(e) => {
                let code = i32::from(crate::exit_code(&e));
                let partial = e
                    .downcast_ref::<crate::Exit>()
                    .is_some_and(|x| x.msg.is_empty());
                let msg = if partial {
                    "exit status 3: at least one source file could not be read".to_string()
                } else {
                    let m = crate::error_text(&e);
                    eprintln!("Fatal: {m}");
                    m
                };
                EngineResult {
                    exit_code: code,
                    error: Some(msg),
                    stats,
                    lock_age: lock_age(&e),
                }
            }
        }
    }

    fn command_line(&self, call: &EngineCall) -> String {
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "cairn".into());
        let mut parts = vec![exe];
        parts.extend(call.command.split(' ').map(str::to_string));
        parts.extend(call.args.iter().map(|a| {
            if a.starts_with("--repo=") || a.starts_with("--repository=") {
                cairn_profile::secrets::mask_url(a)
            } else {
                a.clone()
            }
        }));
        parts
            .iter()
            .map(|p| format!("{p:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_command_is_taken_out_of_the_arguments() {
        let a: Vec<String> = ["--repo=x", "--password-command=op read y", "--tag", "t"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (rest, cmd) = take_password_command(&a);
        assert_eq!(rest, ["--repo=x", "--tag", "t"]);
        assert_eq!(cmd.as_deref(), Some("op read y"));
        let a: Vec<String> = ["--password-command", "z", "/etc"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (rest, cmd) = take_password_command(&a);
        assert_eq!(rest, ["/etc"]);
        assert_eq!(cmd.as_deref(), Some("z"));
    }
}
