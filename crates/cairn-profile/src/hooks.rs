//! Shell hooks (§9): choosing the shell, running `run-*` entries as `<shell> -c <script>`,
//! the hook environment (`PROFILE_*`, `ERROR*`), signal forwarding to running hooks, and
//! `stream-error` callbacks.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use crate::types::{ErrorInfo, StreamErrorSpec};

/// The shell hooks run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shell {
    /// Path of the shell program.
    pub program: PathBuf,
}

/// A hook failed (or could not be started). Display is `message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HookError {
    /// Go-like failure text: `exit status N`, `signal: interrupt`, or why it could not start.
    pub message: String,
    /// Exit code; -1 when the hook did not exit normally or did not start.
    pub exit_code: i32,
    /// Quoted command line, as rp reports it for hooks: `"<script>"` (registered secrets
    /// redacted).
    pub command_line: String,
}

impl HookError {
    fn setup(message: String) -> HookError {
        HookError {
            message,
            exit_code: -1,
            command_line: String::new(),
        }
    }
}

/// Default shell search list when `global.shell` is empty or `auto`.
pub const DEFAULT_SHELLS: [&str; 2] = ["bash", "sh"];

/// Picks the hook shell: the first entry of `configured` found on `PATH` (entries containing a
/// `/` are used as paths as they are); `auto` or an empty list mean [`DEFAULT_SHELLS`].
pub fn find_shell(configured: &[String]) -> Result<Shell, HookError> {
    let mut list: Vec<String> = configured
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s != "auto")
        .collect();
    if list.is_empty() {
        list = DEFAULT_SHELLS.iter().map(|s| s.to_string()).collect();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in &list {
        if let Some(p) = look_path(name, &path) {
            return Ok(Shell { program: p });
        }
    }
    Err(HookError::setup(format!(
        "cannot find a shell for hooks (tried {}); install one or set global.shell",
        list.join(", ")
    )))
}

/// Looks a program up like Go's `exec.LookPath`: a name with `/` is checked as is, otherwise
/// each directory of `path` is searched for an executable file.
fn look_path(name: &str, path: &std::ffi::OsStr) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return is_executable(&p).then_some(p);
    }
    std::env::split_paths(path)
        .map(|dir| {
            if dir.as_os_str().is_empty() {
                PathBuf::from(".").join(name)
            } else {
                dir.join(name)
            }
        })
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Where and with what environment a hook runs.
#[derive(Debug, Clone, Copy)]
pub struct HookContext<'a> {
    /// The complete environment of the child (OS env + env files + `env` + `PROFILE_*` /
    /// `ERROR_*`, see [`hook_env`]); the child's environment is cleared and set to this.
    pub env: &'a BTreeMap<String, String>,
    /// Working directory.
    pub cwd: &'a Path,
}

fn children() -> &'static Mutex<Vec<u32>> {
    static C: OnceLock<Mutex<Vec<u32>>> = OnceLock::new();
    C.get_or_init(|| Mutex::new(Vec::new()))
}

fn lock_children() -> std::sync::MutexGuard<'static, Vec<u32>> {
    match children().lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Process ids of the hooks and `stream-error` callbacks running now.
pub fn running_children() -> Vec<u32> {
    lock_children().clone()
}

/// Forwards a signal we received (SIGINT, SIGTERM, SIGABRT, …) to every running hook as
/// SIGINT, as rp does. Called by the binary's signal thread.
pub fn forward_signal_to_children(sig: i32) {
    let _ = sig;
    for pid in running_children() {
        if let Ok(pid) = i32::try_from(pid) {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGINT) };
        }
    }
}

struct Registered(u32);

impl Registered {
    fn new(pid: u32) -> Registered {
        lock_children().push(pid);
        Registered(pid)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut c = lock_children();
        if let Some(i) = c.iter().position(|p| *p == self.0) {
            c.swap_remove(i);
        }
    }
}

/// Quotes a command line the way rp reports it: `"<program>" "arg1" "arg2"`.
pub fn quote_command_line(program: &str, args: &[String]) -> String {
    let mut s = format!("\"{program}\"");
    for a in args {
        s.push_str(" \"");
        s.push_str(a);
        s.push('"');
    }
    s
}

/// rp quirk: a one-word command that exists only in the working directory gets a `./` prefix.
fn resolve_script(script: &str, ctx: &HookContext) -> String {
    let one_word = !script.is_empty()
        && !script.starts_with('.')
        && !script.contains('/')
        && !script.chars().any(char::is_whitespace);
    if !one_word {
        return script.to_string();
    }
    let path = ctx.env.get("PATH").map(String::as_str).unwrap_or_default();
    if look_path(script, std::ffi::OsStr::new(path)).is_some() {
        return script.to_string();
    }
    let local = ctx.cwd.join(script);
    match std::fs::metadata(&local) {
        Ok(m) if m.is_file() && m.len() > 0 => format!("./{script}"),
        _ => script.to_string(),
    }
}

/// Runs `<shell> -c <script>` with stdin the null device and stdout/stderr inherited (so they
/// go wherever the [`crate::output::OutputRouter`] sends fd 1/2). While it runs, its pid is
/// registered for [`forward_signal_to_children`]. A non-zero exit is an error
/// (`exit status N`).
pub fn run_hook(shell: &Shell, script: &str, ctx: &HookContext) -> Result<(), HookError> {
    let command_line = crate::secrets::redact(&quote_command_line(script, &[]));
    let script = resolve_script(script, ctx);
    let mut child = Command::new(&shell.program)
        .arg("-c")
        .arg(&script)
        .env_clear()
        .envs(ctx.env)
        .current_dir(ctx.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| HookError {
            message: format!(
                "cannot start {} in {}: {e}",
                shell.program.display(),
                ctx.cwd.display()
            ),
            exit_code: -1,
            command_line: command_line.clone(),
        })?;
    let registered = Registered::new(child.id());
    let status = child.wait();
    drop(registered);
    let status = status.map_err(|e| HookError {
        message: format!("waiting for the hook failed: {e}"),
        exit_code: -1,
        command_line: command_line.clone(),
    })?;
    if status.success() {
        return Ok(());
    }
    Err(HookError {
        message: crate::secrets::status_text(&status),
        exit_code: status.code().unwrap_or(-1),
        command_line,
    })
}

/// Builds the environment of a hook (§9.2): `os_env`, then each env file in order, then the
/// profile `env`, then `PROFILE_NAME`, `PROFILE_COMMAND`, and with `error` the `ERROR`,
/// `ERROR_MESSAGE`, `ERROR_COMMANDLINE`, `ERROR_EXIT_CODE`, `ERROR_STDERR` and `RESTIC_STDERR`
/// variables (each only when it has a value, as rp; the exit code goes with the command line).
pub fn hook_env(
    os_env: &BTreeMap<String, String>,
    env_files: &[PathBuf],
    profile_env: &BTreeMap<String, String>,
    profile: &str,
    command: &str,
    error: Option<&ErrorInfo>,
) -> Result<BTreeMap<String, String>, HookError> {
    let mut env = os_env.clone();
    for f in env_files {
        let pairs = crate::dotenv::load(f).map_err(|e| HookError::setup(e.to_string()))?;
        env.extend(pairs);
    }
    env.extend(profile_env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.insert("PROFILE_NAME".into(), profile.into());
    env.insert("PROFILE_COMMAND".into(), command.into());
    if let Some(e) = error {
        if !e.message.is_empty() {
            env.insert("ERROR".into(), e.message.clone());
            env.insert("ERROR_MESSAGE".into(), e.message.clone());
        }
        if !e.command_line.is_empty() {
            env.insert("ERROR_COMMANDLINE".into(), e.command_line.clone());
            env.insert("ERROR_EXIT_CODE".into(), e.exit_code.to_string());
        }
        if !e.stderr.is_empty() {
            env.insert("ERROR_STDERR".into(), e.stderr.clone());
            env.insert("RESTIC_STDERR".into(), e.stderr.clone());
        }
    }
    Ok(env)
}

struct Callback {
    pattern: String,
    re: regex::Regex,
    run: String,
    min_matches: u64,
    max_runs: u64,
    /// (matches so far, match count at the last run, runs started)
    state: Mutex<(u64, u64, u64)>,
}

struct WatcherInner {
    callbacks: Vec<Callback>,
    shell: Shell,
    env: BTreeMap<String, String>,
    cwd: PathBuf,
    started: Mutex<Vec<JoinHandle<()>>>,
}

/// `stream-error` callbacks of one engine command (§9.5): fed with stderr lines; after
/// `min-matches` matches (counted again after each run, as rp) `run` starts in the background
/// through the shell with the matching line on stdin, at most `max-runs` times (0 =
/// unlimited). Results never affect the run. Cheap to clone (shared state).
#[derive(Clone)]
pub struct StreamErrorWatcher {
    inner: Arc<WatcherInner>,
}

impl StreamErrorWatcher {
    /// Compiles the patterns; `env` is the complete environment of the callbacks (as for
    /// hooks, including `PROFILE_*`).
    pub fn new(
        specs: &[StreamErrorSpec],
        shell: Shell,
        env: BTreeMap<String, String>,
        cwd: PathBuf,
    ) -> Result<Self, HookError> {
        let mut callbacks = Vec::new();
        for s in specs {
            let re = regex::Regex::new(&s.pattern).map_err(|e| {
                HookError::setup(format!(
                    "stream-error pattern {:?} is not a valid regular expression: {e}",
                    s.pattern
                ))
            })?;
            callbacks.push(Callback {
                pattern: s.pattern.clone(),
                re,
                run: s.run.clone(),
                min_matches: u64::from(s.min_matches),
                max_runs: u64::from(s.max_runs),
                state: Mutex::new((0, 0, 0)),
            });
        }
        Ok(StreamErrorWatcher {
            inner: Arc::new(WatcherInner {
                callbacks,
                shell,
                env,
                cwd,
                started: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Matches one stderr line (without its line break) against every pattern and starts the
    /// callbacks that are due.
    pub fn feed(&self, line: &str) {
        for (i, cb) in self.inner.callbacks.iter().enumerate() {
            if !cb.re.is_match(line) {
                continue;
            }
            let due = {
                let mut st = match cb.state.lock() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                st.0 += 1;
                let due = st.0 >= cb.min_matches + st.1 && (cb.max_runs == 0 || st.2 < cb.max_runs);
                if due {
                    st.1 = st.0;
                    st.2 += 1;
                }
                due
            };
            if due {
                self.start(i, line.to_string());
            }
        }
    }

    fn start(&self, index: usize, line: String) {
        let inner = Arc::clone(&self.inner);
        let handle = std::thread::Builder::new()
            .name("stream-error".into())
            .spawn(move || {
                let Some(cb) = inner.callbacks.get(index) else {
                    return;
                };
                if let Err(e) = run_with_stdin(&inner, &cb.run, &line) {
                    crate::output::log_message(&format!(
                        "stream-error action '{}' failed: {e}",
                        cb.pattern
                    ));
                }
            });
        if let Ok(h) = handle {
            match self.inner.started.lock() {
                Ok(mut g) => g.push(h),
                Err(p) => p.into_inner().push(h),
            }
        }
    }

    /// Waits for every callback started so far.
    pub fn wait(&self) {
        loop {
            let batch: Vec<JoinHandle<()>> = match self.inner.started.lock() {
                Ok(mut g) => std::mem::take(&mut *g),
                Err(p) => std::mem::take(&mut *p.into_inner()),
            };
            if batch.is_empty() {
                return;
            }
            for h in batch {
                let _ = h.join();
            }
        }
    }
}

fn run_with_stdin(inner: &WatcherInner, script: &str, line: &str) -> Result<(), String> {
    let mut child = Command::new(&inner.shell.program)
        .arg("-c")
        .arg(script)
        .env_clear()
        .envs(&inner.env)
        .current_dir(&inner.cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", inner.shell.program.display()))?;
    let registered = Registered::new(child.id());
    if let Some(mut stdin) = child.stdin.take() {
        // A callback that does not read its stdin is fine (EPIPE ignored).
        let _ = stdin.write_all(line.as_bytes());
        let _ = stdin.write_all(b"\n");
    }
    let status = child.wait().map_err(|e| e.to_string());
    drop(registered);
    let status = status?;
    if status.success() {
        Ok(())
    } else {
        Err(crate::secrets::status_text(&status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(
            quote_command_line("restic", &["backup".into(), "a b".into()]),
            "\"restic\" \"backup\" \"a b\""
        );
        assert_eq!(quote_command_line("echo hi", &[]), "\"echo hi\"");
    }

    #[test]
    fn shell_search() {
        let s = find_shell(&[]).unwrap();
        assert!(s.program.ends_with("bash") || s.program.ends_with("sh"));
        let s = find_shell(&["auto".into()]).unwrap();
        assert!(s.program.is_absolute());
        let s = find_shell(&["no-such-shell-xyz".into(), "/bin/sh".into()]).unwrap();
        assert_eq!(s.program, PathBuf::from("/bin/sh"));
        let e = find_shell(&["no-such-shell-xyz".into()]).unwrap_err();
        assert!(e.message.contains("no-such-shell-xyz"), "{e}");
    }

    #[test]
    fn env_layers() {
        let dir = tempfile::tempdir().unwrap();
        let f1 = dir.path().join("a.env");
        let f2 = dir.path().join("b.env");
        std::fs::write(&f1, "A=file1\nB=file1\nC=file1\n").unwrap();
        std::fs::write(&f2, "B=file2\n").unwrap();
        let os: BTreeMap<String, String> = [
            ("A".to_string(), "os".to_string()),
            ("Z".into(), "os".into()),
        ]
        .into();
        let prof: BTreeMap<String, String> = [("C".to_string(), "profile".to_string())].into();
        let env = hook_env(&os, &[f1.clone(), f2.clone()], &prof, "p", "backup", None).unwrap();
        assert_eq!(env["A"], "file1");
        assert_eq!(env["B"], "file2");
        assert_eq!(env["C"], "profile");
        assert_eq!(env["Z"], "os");
        assert_eq!(env["PROFILE_NAME"], "p");
        assert_eq!(env["PROFILE_COMMAND"], "backup");
        assert!(!env.contains_key("ERROR"));

        let err = ErrorInfo {
            message: "backup on profile 'p': exit status 1".into(),
            command_line: "\"restic\" \"backup\"".into(),
            exit_code: 1,
            stderr: "boom\n".into(),
        };
        let env = hook_env(&os, &[], &prof, "p", "backup", Some(&err)).unwrap();
        assert_eq!(env["ERROR"], err.message);
        assert_eq!(env["ERROR_MESSAGE"], err.message);
        assert_eq!(env["ERROR_COMMANDLINE"], err.command_line);
        assert_eq!(env["ERROR_EXIT_CODE"], "1");
        assert_eq!(env["ERROR_STDERR"], "boom\n");
        assert_eq!(env["RESTIC_STDERR"], "boom\n");

        let only_msg = ErrorInfo {
            message: "m".into(),
            ..Default::default()
        };
        let env = hook_env(&os, &[], &prof, "p", "backup", Some(&only_msg)).unwrap();
        assert!(env.contains_key("ERROR") && !env.contains_key("ERROR_EXIT_CODE"));

        let e = hook_env(
            &os,
            &[dir.path().join("missing.env")],
            &prof,
            "p",
            "b",
            None,
        )
        .unwrap_err();
        assert!(e.message.contains("missing.env"), "{e}");
    }
}
