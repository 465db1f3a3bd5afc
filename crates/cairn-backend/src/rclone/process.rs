//! The rclone child process: starting it like restic does (own process group, briefly in the
//! terminal's foreground so that e.g. `ssh` in `rclone.program` can prompt for a password),
//! collecting its stderr, and
//! joining its stdin/stdout pipes into one byte stream for HTTP/2.

use cairn_repo::backend::BackendError;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::pin::Pin;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::unix::pipe;

/// How many of rclone's last stderr lines are kept for error messages.
const TAIL_LINES: usize = 10;
/// Longest stderr line kept (characters).
const MAX_LINE: usize = 400;

/// The last lines rclone printed on stderr, and whether stderr has closed.
#[derive(Debug, Default)]
struct Tail {
    lines: VecDeque<String>,
    closed: bool,
}

/// A running rclone process.
#[derive(Debug)]
pub struct Process {
    child: Mutex<Child>,
    tail: Arc<(Mutex<Tail>, Condvar)>,
    program: String,
}

/// The child's stdout (read) and stdin (write) as one bidirectional stream.
#[derive(Debug)]
pub struct StdioConn {
    rx: pipe::Receiver,
    tx: pipe::Sender,
}

impl AsyncRead for StdioConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.rx).poll_read(cx, buf)
    }
}

impl AsyncWrite for StdioConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tx).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tx).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tx.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tx).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tx).poll_shutdown(cx)
    }
}

/// Undoes [`Foreground::enter`]: gives the terminal back to our process group.
struct Foreground {
    tty: std::fs::File,
    prev: nix::unistd::Pid,
}

impl Foreground {
    /// When we own the terminal's foreground, hand it to the child's process group `pgid` so
    /// that the started program (e.g. `ssh host rclone`) can ask for a password on the tty. `None` without a controlling terminal or
    /// when we run in the background.
    fn enter(pgid: u32) -> Option<Foreground> {
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .ok()?;
        let prev = nix::unistd::tcgetpgrp(&tty).ok()?;
        if prev != nix::unistd::getpgrp() {
            return None;
        }
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pgid).ok()?);
        nix::unistd::tcsetpgrp(&tty, pid).ok()?;
        Some(Foreground { tty, prev })
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
        // We are a background process group now: block SIGTTOU in this thread so that taking
        // the terminal back does not stop us.
        let mut set = SigSet::empty();
        set.add(Signal::SIGTTOU);
        let mut old = SigSet::empty();
        let blocked = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old)).is_ok();
        if let Err(e) = nix::unistd::tcsetpgrp(&self.tty, self.prev) {
            tracing::debug!("rclone: cannot restore the terminal's foreground group: {e}");
        }
        if blocked {
            let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
        }
    }
}

/// A guard that keeps the child in the terminal's foreground until dropped.
pub struct ForegroundGuard(#[allow(dead_code)] Option<Foreground>);

impl Process {
    /// Start `argv` with piped stdin/stdout/stderr in its own process group; must be called
    /// inside the tokio runtime (the pipes are registered with its reactor). The returned
    /// guard keeps rclone in the terminal's foreground; drop it once rclone answered.
    pub fn spawn(argv: &[String]) -> Result<(Process, StdioConn, ForegroundGuard), BackendError> {
        let Some((program, args)) = argv.split_first() else {
            return Err(BackendError::Other("rclone: empty command line".into()));
        };
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| BackendError::Other(format!("cannot start rclone ({program:?}): {e}")))?;
        let fg = ForegroundGuard(Foreground::enter(child.id()));
        let tail = Arc::new((Mutex::new(Tail::default()), Condvar::new()));
        let pipes = (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let proc = Process {
            child: Mutex::new(child),
            tail: tail.clone(),
            program: program.clone(),
        };
        let (Some(stdin), Some(stdout), Some(stderr)) = pipes else {
            return Err(BackendError::Other("rclone: pipes were not set up".into()));
        };
        let spawned = std::thread::Builder::new()
            .name("rclone-stderr".into())
            .spawn(move || read_stderr(stderr, &tail));
        if let Err(e) = spawned {
            return Err(BackendError::Other(format!(
                "rclone: cannot start a thread: {e}"
            )));
        }
        let tx = pipe::Sender::from_owned_fd(OwnedFd::from(stdin))
            .map_err(|e| BackendError::Other(format!("rclone stdin: {e}")))?;
        let rx = pipe::Receiver::from_owned_fd(OwnedFd::from(stdout))
            .map_err(|e| BackendError::Other(format!("rclone stdout: {e}")))?;
        Ok((proc, StdioConn { rx, tx }, fg))
    }

    /// The exit status if rclone has exited.
    pub fn exited(&self) -> Option<ExitStatus> {
        let mut c = self.child.lock().unwrap_or_else(|e| e.into_inner());
        c.try_wait().ok().flatten()
    }

    /// Wait up to `max` for rclone to exit; its exit status if it did.
    pub fn wait_exit(&self, max: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + max;
        loop {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kill rclone (if still running) and reap it.
    pub fn kill(&self) {
        let mut c = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(c.try_wait(), Ok(None)) {
            let _ = c.kill();
        }
        let _ = c.wait();
    }

    /// rclone's last stderr lines (waiting up to `max` for stderr to close first, so that the
    /// message that explains an exit is included).
    pub fn stderr_tail(&self, max: Duration) -> Vec<String> {
        let (lock, cv) = &*self.tail;
        let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = cv
            .wait_timeout_while(guard, max, |t| !t.closed)
            .unwrap_or_else(|e| e.into_inner());
        guard.lines.iter().cloned().collect()
    }

    /// Describe why the connection to rclone broke: its exit status and last messages when it
    /// has exited, else `None`.
    pub fn death_note(&self, wait: Duration) -> Option<String> {
        let status = self.wait_exit(wait)?;
        let tail = self.stderr_tail(Duration::from_secs(1));
        let mut msg = format!("{} exited ({status})", self.program);
        if !tail.is_empty() {
            msg.push_str(": ");
            msg.push_str(&tail.join(" / "));
        }
        Some(msg)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Forward rclone's stderr to the log line by line (like restic's `rclone: ` prefix) and keep
/// the last lines for error messages.
fn read_stderr(stderr: std::process::ChildStderr, tail: &(Mutex<Tail>, Condvar)) {
    let mut r = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end();
                if line.is_empty() {
                    continue;
                }
                tracing::warn!(target: "rclone", "{line}");
                let mut t = tail.0.lock().unwrap_or_else(|e| e.into_inner());
                if t.lines.len() >= TAIL_LINES {
                    t.lines.pop_front();
                }
                t.lines.push_back(line.chars().take(MAX_LINE).collect());
            }
        }
    }
    let mut t = tail.0.lock().unwrap_or_else(|e| e.into_inner());
    t.closed = true;
    tail.1.notify_all();
}
