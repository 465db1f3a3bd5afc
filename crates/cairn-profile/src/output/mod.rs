//! Process-wide output routing for a profile run (§14).
//!
//! The engine runs in-process and prints to fd 1/2; hooks are child processes inheriting fd
//! 1/2. So routing happens at the file-descriptor level: [`OutputRouter::install`] points fd 1
//! and fd 2 at pipes read by one thread, which appends whole lines to the log target and/or
//! copies the bytes to the original stdout/stderr, collects stderr for `ERROR_STDERR`, and feeds
//! stderr lines to watchers (`stream-error`).
//!
//! Our own messages ([`log_message`]) are written straight to the same destinations, after
//! everything already written to fd 1/2 (so the order is kept); they are neither captured as
//! stderr nor seen by watchers.
//!
//! Order: within each stream bytes keep their order, and lines are never mixed. Between
//! stdout and stderr the order is the order in which the reader sees them (normally the
//! order of writing; two writes to different streams in quick succession may swap, as with
//! rp). [`OutputRouter::flush`] and [`log_message`] are exact boundaries.

mod fd;
mod syslog;

use std::cell::Cell;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fd::{dup_cloexec, dup2, open_log_file, pipe_cloexec, pollfd, set_nonblocking, unread};
use syslog::SyslogWriter;

/// Where the log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// The terminal (`-` or empty).
    Console,
    /// A file, appended to (created 0644, never truncated).
    File(PathBuf),
    /// A syslog URL: `syslog:`, `syslog://host[:514]`, `syslog-tcp://host[:514]`,
    /// `udp://host:port`, `tcp://host:port`.
    Syslog(String),
}

impl LogTarget {
    /// Parses a `--log` / `log` value; `temp:NAME` becomes a file in the system temp dir.
    pub fn parse(s: &str) -> LogTarget {
        LogTarget::parse_in(s, None)
    }

    /// Like [`parse`](LogTarget::parse) with the directory for `temp:NAME` (rp's private temp
    /// dir, the one `{{ tempFile }}` uses); `None` = the system temp dir.
    pub fn parse_in(s: &str, temp_dir: Option<&Path>) -> LogTarget {
        let t = s.trim();
        if t.is_empty() || t == "-" {
            return LogTarget::Console;
        }
        if let Some(name) = t.strip_prefix("temp:") {
            let dir = temp_dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
            return LogTarget::File(dir.join(name.trim_start_matches('/')));
        }
        let lower = t.to_ascii_lowercase();
        let syslog = lower == "syslog:"
            || ["syslog://", "syslog-tcp://", "udp://", "tcp://"]
                .iter()
                .any(|p| lower.starts_with(p));
        if syslog {
            LogTarget::Syslog(t.to_string())
        } else {
            LogTarget::File(PathBuf::from(t))
        }
    }
}

/// Where engine and hook output goes when the target is not the console (`command-output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommandOutput {
    /// Both when the original stdout is a terminal, else the log only.
    #[default]
    Auto,
    /// The log only.
    Log,
    /// The console only (our own messages still go to the log).
    Console,
    /// Both (`all`, `log,console`).
    All,
}

impl CommandOutput {
    /// Parses `auto`, `log`, `console`, `all`, `log,console` (case-insensitive); `None` for
    /// anything else.
    pub fn parse(s: &str) -> Option<CommandOutput> {
        let mut parts: Vec<String> = s
            .split(',')
            .map(|p| p.trim().to_ascii_lowercase())
            .filter(|p| !p.is_empty())
            .collect();
        parts.sort();
        parts.dedup();
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        match parts.as_slice() {
            [] | ["auto"] => Some(CommandOutput::Auto),
            ["log"] => Some(CommandOutput::Log),
            ["console"] => Some(CommandOutput::Console),
            ["all"] | ["console", "log"] => Some(CommandOutput::All),
            _ => None,
        }
    }
}

/// Largest partial line kept back before it is written anyway (progress output without `\n`).
const MAX_PENDING: usize = 64 * 1024;
/// Largest stderr capture; older bytes are dropped.
const MAX_CAPTURE: usize = 1024 * 1024;
/// Longest wait of [`OutputRouter::flush`] for a stuck reader.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

const OUT: usize = 0;
const ERR: usize = 1;

enum Sink {
    File(File),
    Syslog(SyslogWriter),
}

impl Sink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::File(f) => f.write_all(data),
            Sink::Syslog(s) => s.write_lines(data),
        }
    }
}

struct State {
    sink: Option<Sink>,
    sink_failed: bool,
    pending: [Vec<u8>; 2],
    busy: bool,
    capture: Option<Vec<u8>>,
}

type Watcher = Arc<dyn Fn(&str) + Send + Sync>;

struct Inner {
    state: Mutex<State>,
    cv: Condvar,
    /// Read ends: stdout (when redirected) and stderr.
    out_r: Option<OwnedFd>,
    err_r: OwnedFd,
    wake_r: OwnedFd,
    /// Copies of the original stdout/stderr for console output (None = not copied).
    console: [Option<File>; 2],
    /// Where our own messages go on the console (None = log only).
    own_console: Option<File>,
    /// Whether each stream goes to the log sink.
    to_log: [bool; 2],
    watchers: Mutex<Vec<(usize, Watcher)>>,
    next_watcher: AtomicUsize,
}

thread_local! {
    static IS_READER: Cell<bool> = const { Cell::new(false) };
}

fn active() -> &'static Mutex<Option<Arc<Inner>>> {
    static ACTIVE: Mutex<Option<Arc<Inner>>> = Mutex::new(None);
    &ACTIVE
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// The installed routing of fd 1/2; dropping it (or [`restore`](OutputRouter::restore))
/// flushes and puts the original descriptors back.
pub struct OutputRouter {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
    wake_w: Option<OwnedFd>,
    saved_out: Option<OwnedFd>,
    saved_err: Option<OwnedFd>,
    log_file: Option<PathBuf>,
    console_tty: bool,
}

impl OutputRouter {
    /// Redirects fd 1 and fd 2 of this process into pipes read by a thread that appends whole
    /// lines to the log target (files: created 0644, appended, never truncated) and/or copies
    /// to the original stdout/stderr per `mode` (`Auto` = both when the original stdout is a
    /// terminal, else log only). With the console target only fd 2 is redirected (fd 1 stays
    /// the terminal, so progress output keeps working). When the target cannot be opened, an
    /// error message is printed and everything goes to the console. Only one router may be
    /// installed at a time.
    pub fn install(target: &LogTarget, mode: CommandOutput) -> std::io::Result<OutputRouter> {
        let mut slot = lock(active());
        if slot.is_some() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "an output router is already installed",
            ));
        }
        // SAFETY: isatty only inspects the descriptor.
        let console_tty = unsafe { libc::isatty(1) } == 1;
        let mut open_error = None;
        let (sink, log_file) = match target {
            LogTarget::Console => (None, None),
            LogTarget::File(p) => match open_log_file(p) {
                Ok(f) => (Some(Sink::File(f)), Some(p.clone())),
                Err(e) => {
                    open_error = Some(format!(
                        "cannot open log file {}: {e}; logging to the console",
                        p.display()
                    ));
                    (None, None)
                }
            },
            LogTarget::Syslog(s) => match SyslogWriter::connect(s) {
                Ok(w) => (Some(Sink::Syslog(w)), None),
                Err(e) => {
                    open_error = Some(format!(
                        "cannot open log target {s}: {e}; logging to the console"
                    ));
                    (None, None)
                }
            },
        };
        let has_sink = sink.is_some();
        let (mut to_console, to_log) = match mode {
            CommandOutput::Auto => (console_tty, true),
            CommandOutput::Log => (false, true),
            CommandOutput::Console => (true, false),
            CommandOutput::All => (true, true),
        };
        let to_log = to_log && has_sink;
        if !has_sink {
            to_console = true;
        }

        let _ = std::io::stdout().flush();
        let saved_out = dup_cloexec(1)?;
        let saved_err = dup_cloexec(2)?;
        let (err_r, err_w) = pipe_cloexec()?;
        let out_pipe = if to_log { Some(pipe_cloexec()?) } else { None };
        let (wake_r, wake_w) = pipe_cloexec()?;
        set_nonblocking(err_r.as_raw_fd())?;
        if let Some((r, _)) = &out_pipe {
            set_nonblocking(r.as_raw_fd())?;
        }
        let console_out = if to_log && to_console {
            Some(File::from(dup_cloexec(saved_out.as_raw_fd())?))
        } else {
            None
        };
        let console_err = if to_console {
            Some(File::from(dup_cloexec(saved_err.as_raw_fd())?))
        } else {
            None
        };
        let own_console = if to_console || !has_sink {
            Some(File::from(dup_cloexec(saved_err.as_raw_fd())?))
        } else {
            None
        };
        if let Some(msg) = open_error {
            let line = format_message(&msg);
            let _ = (&File::from(dup_cloexec(saved_err.as_raw_fd())?)).write_all(line.as_bytes());
        }

        let (out_r, out_w) = match out_pipe {
            Some((r, w)) => (Some(r), Some(w)),
            None => (None, None),
        };
        if let Some(w) = &out_w {
            dup2(w.as_raw_fd(), 1)?;
        }
        if let Err(e) = dup2(err_w.as_raw_fd(), 2) {
            if out_w.is_some() {
                let _ = dup2(saved_out.as_raw_fd(), 1);
            }
            return Err(e);
        }
        drop(out_w);
        drop(err_w);

        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                sink,
                sink_failed: false,
                pending: [Vec::new(), Vec::new()],
                busy: false,
                capture: None,
            }),
            cv: Condvar::new(),
            out_r,
            err_r,
            wake_r,
            console: [console_out, console_err],
            own_console,
            to_log: [to_log, to_log],
            watchers: Mutex::new(Vec::new()),
            next_watcher: AtomicUsize::new(1),
        });
        let reader = Arc::clone(&inner);
        let thread = std::thread::Builder::new()
            .name("output-router".into())
            .spawn(move || {
                IS_READER.with(|r| r.set(true));
                reader.run();
            });
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                if inner.out_r.is_some() {
                    let _ = dup2(saved_out.as_raw_fd(), 1);
                }
                let _ = dup2(saved_err.as_raw_fd(), 2);
                return Err(e);
            }
        };
        *slot = Some(Arc::clone(&inner));
        Ok(OutputRouter {
            inner,
            thread: Some(thread),
            wake_w: Some(wake_w),
            saved_out: Some(saved_out),
            saved_err: Some(saved_err),
            log_file,
            console_tty,
        })
    }

    /// Blocks until every byte written to fd 1/2 before this call is in the log (a pending
    /// partial line included) and has been copied to the console. Called before each hook so
    /// a hook can read the up-to-date log file.
    pub fn flush(&self) {
        self.inner.sync();
    }

    /// Starts collecting what is written to fd 2 (our own messages excluded); a running
    /// collection is restarted.
    pub fn begin_stderr_capture(&self) {
        self.inner.sync();
        lock(&self.inner.state).capture = Some(Vec::new());
    }

    /// Returns everything collected since [`begin_stderr_capture`](Self::begin_stderr_capture)
    /// (at most the last MiB, registered secrets redacted) and stops collecting.
    pub fn take_stderr(&self) -> String {
        self.inner.sync();
        let bytes = lock(&self.inner.state).capture.take().unwrap_or_default();
        crate::secrets::redact(&String::from_utf8_lossy(&bytes))
    }

    /// Adds a function called with every stderr line (without the line break) on the router's
    /// thread. It must not block or write much to fd 1/2 itself (start work elsewhere).
    pub fn add_stderr_watcher(&self, f: Box<dyn Fn(&str) + Send + Sync>) -> usize {
        let id = self.inner.next_watcher.fetch_add(1, Ordering::Relaxed);
        lock(&self.inner.watchers).push((id, Arc::from(f)));
        id
    }

    /// Removes a watcher added by [`add_stderr_watcher`](Self::add_stderr_watcher).
    pub fn remove_stderr_watcher(&self, id: usize) {
        lock(&self.inner.watchers).retain(|(i, _)| *i != id);
    }

    /// The log file, when the target is a file that could be opened.
    pub fn log_file(&self) -> Option<&Path> {
        self.log_file.as_deref()
    }

    /// Whether the original stdout was a terminal.
    pub fn console_is_terminal(&self) -> bool {
        self.console_tty
    }

    /// Whether fd 1 is redirected (a file or syslog target receives command output); when
    /// false fd 1 is still the original stdout.
    pub fn stdout_redirected(&self) -> bool {
        self.inner.out_r.is_some()
    }

    /// Flushes and restores the original fd 1/2 (also done on drop).
    pub fn restore(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.inner.sync();
        let _ = std::io::stdout().flush();
        {
            let mut slot = lock(active());
            *slot = None;
        }
        if let Some(fd) = self.saved_out.take()
            && self.inner.out_r.is_some()
        {
            let _ = dup2(fd.as_raw_fd(), 1);
        }
        if let Some(fd) = self.saved_err.take() {
            let _ = dup2(fd.as_raw_fd(), 2);
        }
        if let Some(w) = self.wake_w.take() {
            let _ = (&File::from(w)).write_all(b"x");
        }
        let _ = thread.join();
    }
}

impl Drop for OutputRouter {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Inner {
    /// The reader loop.
    fn run(&self) {
        let mut out_open = self.out_r.is_some();
        let mut err_open = true;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut fds = Vec::with_capacity(3);
            if let (true, Some(r)) = (out_open, &self.out_r) {
                fds.push(pollfd(r.as_raw_fd()));
            }
            if err_open {
                fds.push(pollfd(self.err_r.as_raw_fd()));
            }
            fds.push(pollfd(self.wake_r.as_raw_fd()));
            let nfds = libc::nfds_t::try_from(fds.len()).unwrap_or(1);
            // SAFETY: `fds` is a valid array of `nfds` pollfd structures.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), nfds, -1) };
            if r < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            let ready = |fd: RawFd| {
                fds.iter().any(|p| {
                    p.fd == fd && p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
                })
            };
            let stop = ready(self.wake_r.as_raw_fd());
            lock(&self.state).busy = true;
            let mut lines = Vec::new();
            if let Some(r) = &self.out_r
                && out_open
                && (stop || ready(r.as_raw_fd()))
            {
                out_open = self.drain(OUT, r.as_raw_fd(), &mut buf, &mut lines);
            }
            if err_open && (stop || ready(self.err_r.as_raw_fd())) {
                err_open = self.drain(ERR, self.err_r.as_raw_fd(), &mut buf, &mut lines);
            }
            self.call_watchers(&lines);
            {
                let mut st = lock(&self.state);
                st.busy = false;
            }
            self.cv.notify_all();
            if stop || (!out_open && !err_open) {
                return;
            }
        }
    }

    /// Reads what is available on one stream and routes it; false at end of file.
    fn drain(&self, stream: usize, fd: RawFd, buf: &mut [u8], lines: &mut Vec<String>) -> bool {
        loop {
            // SAFETY: `buf` is valid for `buf.len()` bytes of writes.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n == 0 {
                return false;
            }
            if n < 0 {
                return match std::io::Error::last_os_error().kind() {
                    std::io::ErrorKind::Interrupted => continue,
                    std::io::ErrorKind::WouldBlock => true,
                    _ => false,
                };
            }
            let n = usize::try_from(n).unwrap_or(0);
            if let Some(data) = buf.get(..n) {
                self.route(stream, data, lines);
            }
            if n < buf.len() {
                return true;
            }
        }
    }

    /// Console copy, capture, whole lines to the log and to the watchers' list.
    fn route(&self, stream: usize, data: &[u8], lines: &mut Vec<String>) {
        if let Some(Some(c)) = self.console.get(stream) {
            let _ = (&*c).write_all(data);
        }
        let mut st = lock(&self.state);
        if stream == ERR
            && let Some(cap) = st.capture.as_mut()
        {
            cap.extend_from_slice(data);
            if cap.len() > MAX_CAPTURE {
                let cut = cap.len() - MAX_CAPTURE;
                cap.drain(..cut);
            }
        }
        let Some(pending) = st.pending.get_mut(stream) else {
            return;
        };
        pending.extend_from_slice(data);
        let complete = match pending.iter().rposition(|b| *b == b'\n') {
            Some(i) => pending.drain(..=i).collect::<Vec<u8>>(),
            None if pending.len() > MAX_PENDING => std::mem::take(pending),
            None => return,
        };
        self.emit(&mut st, stream, &complete, lines);
    }

    /// Writes complete lines of one stream to the log and collects stderr lines for watchers.
    fn emit(&self, st: &mut State, stream: usize, data: &[u8], lines: &mut Vec<String>) {
        if self.to_log.get(stream).copied().unwrap_or(false) {
            let redacted = redact_bytes(data);
            self.write_sink(st, &redacted);
        }
        if stream == ERR && !lock(&self.watchers).is_empty() {
            for l in data.split(|b| *b == b'\n') {
                let l = l.strip_suffix(b"\r").unwrap_or(l);
                lines.push(String::from_utf8_lossy(l).into_owned());
            }
            // A trailing newline leaves an empty last piece that is not a line.
            if data.ends_with(b"\n") {
                lines.pop();
            }
        }
    }

    fn write_sink(&self, st: &mut State, data: &[u8]) {
        let Some(sink) = st.sink.as_mut() else { return };
        if let Err(e) = sink.write(data)
            && !st.sink_failed
        {
            st.sink_failed = true;
            let msg = format_message(&format!("cannot write to the log: {e}"));
            if let Some(c) = self.console.get(ERR).and_then(Option::as_ref) {
                let _ = (&*c).write_all(msg.as_bytes());
            }
        }
    }

    fn call_watchers(&self, lines: &[String]) {
        if lines.is_empty() {
            return;
        }
        let watchers: Vec<Watcher> = lock(&self.watchers)
            .iter()
            .map(|(_, w)| Arc::clone(w))
            .collect();
        for l in lines {
            for w in &watchers {
                w(l);
            }
        }
    }

    /// Waits until both pipes are empty and the reader is idle, then writes out pending
    /// partial lines. No-op on the reader thread itself.
    fn sync(&self) {
        let _ = std::io::stdout().flush();
        if IS_READER.with(Cell::get) {
            return;
        }
        let deadline = Instant::now() + FLUSH_TIMEOUT;
        let mut st = lock(&self.state);
        loop {
            let empty = !st.busy
                && self
                    .out_r
                    .as_ref()
                    .is_none_or(|r| unread(r.as_raw_fd()) == 0)
                && unread(self.err_r.as_raw_fd()) == 0;
            if empty || Instant::now() >= deadline {
                break;
            }
            st = match self.cv.wait_timeout(st, Duration::from_millis(2)) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        let mut lines = Vec::new();
        for stream in [OUT, ERR] {
            let data = st
                .pending
                .get_mut(stream)
                .map(std::mem::take)
                .unwrap_or_default();
            if !data.is_empty() {
                self.emit(&mut st, stream, &data, &mut lines);
            }
        }
        drop(st);
        self.call_watchers(&lines);
    }

    /// Writes one of our own messages (a complete line) to the log and/or console.
    fn write_own(&self, line: &str) {
        self.sync();
        let mut st = lock(&self.state);
        self.write_sink(&mut st, line.as_bytes());
        if let Some(c) = &self.own_console {
            let _ = (&*c).write_all(line.as_bytes());
        }
    }
}

fn redact_bytes(data: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    match std::str::from_utf8(data) {
        Ok(s) => {
            let r = crate::secrets::redact(s);
            if r == s {
                std::borrow::Cow::Borrowed(data)
            } else {
                std::borrow::Cow::Owned(r.into_bytes())
            }
        }
        Err(_) => std::borrow::Cow::Borrowed(data),
    }
}

/// `YYYY/MM/DD HH:MM:SS msg\n` in local time (Go's `log` default).
fn format_message(msg: &str) -> String {
    let ts = chrono::Local::now().format("%Y/%m/%d %H:%M:%S");
    let msg = msg.strip_suffix('\n').unwrap_or(msg);
    format!("{ts} {msg}\n")
}

/// Prints one of our own messages as `YYYY/MM/DD HH:MM:SS msg` (local time, registered
/// secrets redacted): through the installed [`OutputRouter`] (after everything already written
/// to fd 1/2, not captured as stderr), else to stderr.
pub fn log_message(msg: &str) {
    let line = format_message(&crate::secrets::redact(msg));
    let inner = lock(active()).clone();
    match inner {
        Some(i) => i.write_own(&line),
        None => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(LogTarget::parse("-"), LogTarget::Console);
        assert_eq!(LogTarget::parse(""), LogTarget::Console);
        assert_eq!(
            LogTarget::parse("/var/log/x.log"),
            LogTarget::File("/var/log/x.log".into())
        );
        for s in [
            "syslog:",
            "syslog://h:514",
            "syslog-tcp://h",
            "udp://h:1",
            "tcp://h:2",
        ] {
            assert_eq!(LogTarget::parse(s), LogTarget::Syslog(s.into()), "{s}");
        }
        assert_eq!(
            LogTarget::parse_in("temp:run.log", Some(Path::new("/tmp/rp"))),
            LogTarget::File("/tmp/rp/run.log".into())
        );
    }

    #[test]
    fn command_output_values() {
        assert_eq!(CommandOutput::parse("auto"), Some(CommandOutput::Auto));
        assert_eq!(CommandOutput::parse("LOG"), Some(CommandOutput::Log));
        assert_eq!(
            CommandOutput::parse("console"),
            Some(CommandOutput::Console)
        );
        assert_eq!(CommandOutput::parse("all"), Some(CommandOutput::All));
        assert_eq!(
            CommandOutput::parse("log, console"),
            Some(CommandOutput::All)
        );
        assert_eq!(
            CommandOutput::parse("console,log"),
            Some(CommandOutput::All)
        );
        assert_eq!(CommandOutput::parse("file"), None);
    }

    #[test]
    fn message_format() {
        let m = format_message("hello\n");
        let re = regex::Regex::new(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} hello\n$").unwrap();
        assert!(re.is_match(&m), "{m:?}");
    }
}
