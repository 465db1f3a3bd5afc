//! One SFTP session over a child process's stdin/stdout (normally `ssh ... -s sftp`).
//! Requests from any number of threads are written under a lock; one reader thread reads
//! responses and hands each to the thread waiting for its request id. The child's stderr is
//! logged and its last lines are kept for error messages. The child is killed on drop.

use super::foreground;
use super::protocol::{self, MAX_PACKET, Request, Response, Version};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Errors of one SFTP request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SftpError {
    /// The server answered with an error status.
    #[error("{message} ({})", protocol::status_name(*code))]
    Status {
        /// `FX_*` code.
        code: u32,
        /// The server's message.
        message: String,
    },
    /// The session is gone (ssh exited, pipe closed, protocol violation).
    #[error("{0}")]
    Dead(String),
    /// The server answered with a response that makes no sense for the request.
    #[error("unexpected response from the SFTP server: {0}")]
    Unexpected(String),
}

impl SftpError {
    /// True for a status with code `code`.
    pub fn is_status(&self, code: u32) -> bool {
        matches!(self, SftpError::Status { code: c, .. } if *c == code)
    }
}

/// Lock a mutex, ignoring poisoning (the data are simple maps and buffers that stay valid).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

type Reply = Result<Response, SftpError>;

/// The last lines the child wrote to stderr, and whether it closed stderr.
#[derive(Debug, Default)]
struct StderrTail {
    lines: VecDeque<String>,
    closed: bool,
}

const TAIL_LINES: usize = 20;

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<HashMap<u32, mpsc::Sender<Reply>>>,
    dead: Mutex<Option<String>>,
    stderr: Mutex<StderrTail>,
    stderr_cv: Condvar,
    closing: AtomicBool,
}

impl Shared {
    /// Mark the session dead with `reason` and fail every waiting request.
    fn fail(&self, reason: String) {
        let mut pending = lock(&self.pending);
        let mut dead = lock(&self.dead);
        if dead.is_none() {
            *dead = Some(reason.clone());
        }
        let reason = dead.clone().unwrap_or(reason);
        drop(dead);
        for (_, tx) in pending.drain() {
            let _ = tx.send(Err(SftpError::Dead(reason.clone())));
        }
    }

    /// Wait (up to `max`) for the child to close stderr, then return its last lines.
    fn stderr_text(&self, max: Duration) -> String {
        let deadline = Instant::now() + max;
        let mut t = lock(&self.stderr);
        while !t.closed {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            t = match self.stderr_cv.wait_timeout(t, deadline - now) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
        t.lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// A running SFTP session.
#[derive(Debug)]
pub struct Connection {
    shared: Arc<Shared>,
    stdin: Mutex<Option<ChildStdin>>,
    child: Arc<Mutex<Child>>,
    next_id: AtomicU32,
    /// What the server offered in its `VERSION` packet.
    pub version: Version,
    program: String,
}

/// A request that was sent and whose response has not been taken yet.
#[derive(Debug)]
pub struct Pending {
    rx: mpsc::Receiver<Reply>,
}

/// Kill the child and everything in its process group (it leads its own group), unless it
/// has been reaped already (then its id may belong to someone else).
fn kill_group(c: &mut Child) {
    if let Ok(None) = c.try_wait()
        && let Ok(pid) = i32::try_from(c.id())
    {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = c.kill();
}

/// Describe how the child ended: exit status (waiting up to `max`) and stderr.
fn describe_exit(child: &Mutex<Child>, shared: &Shared, program: &str, max: Duration) -> String {
    let deadline = Instant::now() + max;
    let status = loop {
        match lock(child).try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            _ => break None,
        }
    };
    let stderr = shared.stderr_text(max);
    let mut msg = match status {
        Some(s) => format!("{program} exited ({s})"),
        None => format!("{program} closed the connection"),
    };
    if !stderr.is_empty() {
        msg.push_str(": ");
        msg.push_str(&stderr);
    }
    msg
}

impl Connection {
    /// Start `argv` and open the SFTP session (INIT/VERSION). Errors describe the child's
    /// exit status and stderr when it dies before answering.
    pub fn start(argv: &[String]) -> Result<Connection, String> {
        let (program, args) = argv.split_first().ok_or("empty ssh command")?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        tracing::debug!("starting {argv:?}");
        let (mut child, fg) = foreground::spawn(&mut cmd)
            .map_err(|e| format!("cannot start {program:?} (from {argv:?}): {e}"))?;
        let shared = Arc::new(Shared::default());
        let (Some(mut stdin), Some(mut stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("child pipes missing".into());
        };
        spawn_stderr_reader(stderr, shared.clone(), program.clone());
        let child = Arc::new(Mutex::new(child));
        // After end of stream, give the child time to exit and report why; on anything else
        // (garbage on stdout) stop it first.
        let fail = |why: String, eof: bool| {
            if !eof {
                kill_group(&mut lock(&child));
            }
            let wait = Duration::from_secs(if eof { 5 } else { 1 });
            let msg = describe_exit(&child, &shared, program, wait);
            let mut c = lock(&child);
            kill_group(&mut c);
            let _ = c.wait();
            format!("unable to start the sftp session ({why}): {msg}")
        };
        let mut reader = BufReader::with_capacity(256 << 10, stdout.by_ref());
        let version = (|| {
            stdin
                .write_all(&protocol::encode_init())
                .map_err(|e| format!("writing to {program}: {e}"))?;
            stdin
                .flush()
                .map_err(|e| format!("writing to {program}: {e}"))?;
            match protocol::read_packet(&mut reader, MAX_PACKET) {
                Ok(Some((protocol::FXP_VERSION, payload))) => {
                    protocol::decode_version(&payload).map_err(|e| e.to_string())
                }
                Ok(Some((ty, _))) => Err(format!("expected a VERSION packet, got type {ty}")),
                Ok(None) => Err(String::new()),
                Err(e) => Err(format!(
                    "not an SFTP server (does a login script print text?): {e}"
                )),
            }
        })()
        .map_err(|why| {
            if why.is_empty() {
                fail("no answer".into(), true)
            } else {
                fail(why, false)
            }
        })?;
        if let Some(fg) = fg {
            fg.restore();
        }
        if version.version < 3 {
            return Err(fail(
                format!(
                    "server speaks SFTP version {}, 3 is needed",
                    version.version
                ),
                false,
            ));
        }
        tracing::debug!("sftp session started: {version:?}");
        let buffered = reader.buffer().to_vec();
        drop(reader);
        let conn = Connection {
            shared: shared.clone(),
            stdin: Mutex::new(Some(stdin)),
            child: child.clone(),
            next_id: AtomicU32::new(1),
            version,
            program: program.clone(),
        };
        let program = program.clone();
        std::thread::Builder::new()
            .name("sftp-reader".into())
            .spawn(move || read_loop(buffered, stdout, shared, child, program))
            .map_err(|e| format!("cannot start the sftp reader thread: {e}"))?;
        Ok(conn)
    }

    /// Process id of the child.
    pub fn pid(&self) -> u32 {
        lock(&self.child).id()
    }

    /// The reason the session died, if it did.
    pub fn dead(&self) -> Option<String> {
        lock(&self.shared.dead).clone()
    }

    /// Send a request without waiting for its answer.
    pub fn send(&self, req: &Request<'_>) -> Result<Pending, SftpError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        {
            let mut pending = lock(&self.shared.pending);
            if let Some(why) = lock(&self.shared.dead).clone() {
                return Err(SftpError::Dead(why));
            }
            pending.insert(id, tx);
        }
        let packet = req.encode(id);
        let mut stdin = lock(&self.stdin);
        let res = match stdin.as_mut() {
            Some(w) => w.write_all(&packet),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        };
        drop(stdin);
        if let Err(e) = res {
            lock(&self.shared.pending).remove(&id);
            let why = format!("writing to {}: {e}", self.program);
            self.shared.fail(why);
            return Err(SftpError::Dead(self.dead().unwrap_or_default()));
        }
        Ok(Pending { rx })
    }

    /// Wait for the answer to a sent request.
    pub fn wait(&self, p: Pending) -> Result<Response, SftpError> {
        match p.rx.recv() {
            Ok(r) => r,
            Err(_) => Err(SftpError::Dead(
                self.dead()
                    .unwrap_or_else(|| "the sftp session ended".into()),
            )),
        }
    }

    /// Send a request and wait for its answer.
    pub fn call(&self, req: &Request<'_>) -> Result<Response, SftpError> {
        let p = self.send(req)?;
        self.wait(p)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        // Closing stdin ends the session; ssh exits on its own. Kill it if it lingers.
        drop(lock(&self.stdin).take());
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let mut c = lock(&self.child);
            match c.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    drop(c);
                    std::thread::sleep(Duration::from_millis(5));
                }
                _ => {
                    kill_group(&mut c);
                    let _ = c.wait();
                    break;
                }
            }
        }
    }
}

fn spawn_stderr_reader(stderr: std::process::ChildStderr, shared: Arc<Shared>, program: String) {
    let run = move || {
        let mut r = BufReader::new(stderr);
        let mut line = Vec::new();
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let mut text = String::from_utf8_lossy(&line).trim_end().to_string();
                    if text.is_empty() {
                        continue;
                    }
                    tracing::warn!("subprocess {program}: {text}");
                    if text.len() > 1000 {
                        text = text.chars().take(1000).collect();
                    }
                    let mut t = lock(&shared.stderr);
                    if t.lines.len() == TAIL_LINES {
                        t.lines.pop_front();
                    }
                    t.lines.push_back(text);
                }
            }
        }
        lock(&shared.stderr).closed = true;
        shared.stderr_cv.notify_all();
    };
    if std::thread::Builder::new()
        .name("sftp-stderr".into())
        .spawn(run)
        .is_err()
    {
        tracing::warn!("cannot start a thread reading ssh's stderr");
    }
}

/// Read responses until the stream ends; dispatch each by request id.
fn read_loop(
    buffered: Vec<u8>,
    stdout: ChildStdout,
    shared: Arc<Shared>,
    child: Arc<Mutex<Child>>,
    program: String,
) {
    let mut r = BufReader::with_capacity(256 << 10, std::io::Read::chain(&buffered[..], stdout));
    let why = loop {
        match protocol::read_packet(&mut r, MAX_PACKET) {
            Ok(Some((ty, payload))) => match protocol::decode_response(ty, &payload) {
                Ok((id, resp)) => {
                    let tx = lock(&shared.pending).remove(&id);
                    if let Some(tx) = tx {
                        let _ = tx.send(Ok(resp));
                    }
                }
                Err(e) => break Some(format!("{e}; closing the sftp session")),
            },
            Ok(None) => break None,
            Err(e) => break Some(format!("reading from {program}: {e}")),
        }
    };
    if shared.closing.load(Ordering::SeqCst) {
        shared.fail("the sftp session was closed".into());
        return;
    }
    if why.is_some() {
        // Protocol violation: the stream cannot be trusted any more.
        kill_group(&mut lock(&child));
    }
    let exit = describe_exit(&child, &shared, &program, Duration::from_secs(2));
    let msg = match why {
        Some(w) => format!("sftp connection lost: {w} ({exit})"),
        None => format!("sftp connection lost: {exit}"),
    };
    tracing::debug!("{msg}");
    shared.fail(msg);
}
