//! The local profile lock (`lock = PATH`, §12.1) and the lock-wait budget shared by local and
//! repository lock waits (§12.2).
//!
//! The lock file keeps rp's text format (`<user> on <RFC850 time> from <host>` then `\n<pid>`
//! lines, so rp reads our pid as "the last child") plus a marker line naming Cairn, our pid,
//! its start time and the host. While a run holds the lock, the file is also `flock`ed, so a
//! file left behind by a killed Cairn run (not flocked, carrying our marker) is taken over at
//! once. A file written by rp (no marker, never flocked) is busy unless `force-inactive-lock`
//! is set and its last pid is not running.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::output::log_message;

/// Marker starting the line that identifies a lock file written by Cairn.
pub const MARKER: &str = "cairn-lock";

/// Longest pause between two attempts while waiting for a lock (rp: 3 s; an attempt is one
/// open + flock, so retrying often costs nothing and takes a released lock sooner).
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// Least time between two "lock wait" messages.
const LOG_EVERY: Duration = Duration::from_secs(5 * 60);
/// An empty lock file older than this was left by a crash between create and write.
const EMPTY_STALE_AFTER: Duration = Duration::from_secs(5);

/// Time that may still be spent waiting for locks during one profile run: one budget for the
/// local lock and every repository lock wait (§12.2). Real work is not counted; only waits are
/// [`consume`](WaitBudget::consume)d.
#[derive(Debug, Clone)]
pub struct WaitBudget {
    total: Option<Duration>,
    unlimited: bool,
    used: Duration,
}

impl WaitBudget {
    /// A budget of `total` (`--lock-wait`, schedule lock wait). `None` means no waiting at all
    /// (rp without `--lock-wait`: a busy lock fails at once).
    pub fn new(total: Option<Duration>) -> Self {
        WaitBudget {
            total,
            unlimited: false,
            used: Duration::ZERO,
        }
    }

    /// A budget that never runs out.
    pub fn unlimited() -> Self {
        WaitBudget {
            total: None,
            unlimited: true,
            used: Duration::ZERO,
        }
    }

    /// Whether the budget never runs out.
    pub fn is_unlimited(&self) -> bool {
        self.unlimited
    }

    /// Whether any waiting was configured (a budget, possibly used up, or unlimited).
    pub fn is_enabled(&self) -> bool {
        self.unlimited || self.total.is_some_and(|t| !t.is_zero())
    }

    /// The configured total (`None` when unlimited or not set).
    pub fn total(&self) -> Option<Duration> {
        self.total
    }

    /// Time waited so far.
    pub fn used(&self) -> Duration {
        self.used
    }

    /// Time left (`Duration::MAX` when unlimited, zero when none was configured).
    pub fn remaining(&self) -> Duration {
        if self.unlimited {
            return Duration::MAX;
        }
        self.total
            .map_or(Duration::ZERO, |t| t.saturating_sub(self.used))
    }

    /// Records time spent waiting.
    pub fn consume(&mut self, d: Duration) {
        self.used = self.used.saturating_add(d);
    }
}

/// The local lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another run holds it.
    #[error("another process is already running this profile: {holder}")]
    Busy {
        /// First line of the lock file (who holds it).
        holder: String,
    },
    /// The lock file could not be created or read.
    #[error("lock file {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The wait was interrupted (signal).
    #[error("interrupted while waiting for the lock {}", path.display())]
    Interrupted {
        /// The lock file.
        path: PathBuf,
    },
}

/// The held local lock; dropping it removes the file and releases the `flock`.
#[derive(Debug)]
pub struct ProfileLock {
    file: Option<File>,
    path: Option<PathBuf>,
    warnings: Vec<String>,
}

impl ProfileLock {
    /// Whether a lock file is held (false when running without lock after a warning).
    pub fn is_held(&self) -> bool {
        self.file.is_some()
    }

    /// The lock file, when held.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Warnings produced while acquiring (already logged with
    /// [`crate::output::log_message`]).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Appends a process id line (`\n<pid>`), as rp does for each child it starts.
    pub fn record_pid(&mut self, pid: u32) {
        if let Some(f) = self.file.as_mut() {
            let _ = f.seek(std::io::SeekFrom::End(0));
            let _ = write!(f, "\n{pid}");
        }
    }

    /// Releases the lock now (same as dropping it).
    pub fn release(self) {}
}

impl Drop for ProfileLock {
    fn drop(&mut self) {
        if let (Some(file), Some(path)) = (self.file.as_ref(), self.path.as_ref()) {
            // Remove the name only if it is still our file (it may have been taken over by a
            // forced rp run and replaced).
            if same_file(file, path) {
                let _ = std::fs::remove_file(path);
            }
        }
        // Closing the file releases the flock.
        self.file = None;
    }
}

fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Takes the profile lock at `path`, waiting within `budget` while it is busy (retry every
/// second or less, "lock wait" message at most every 5 minutes, `interrupted` polled every 100 ms).
/// Parent directories are created (0755); if that fails the run goes on without a lock (a
/// [`ProfileLock`] holding nothing, with a warning).
pub fn acquire(
    path: &Path,
    budget: &mut WaitBudget,
    force_inactive: bool,
    interrupted: &dyn Fn() -> bool,
) -> Result<ProfileLock, LockError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Err(e) = create_dirs(dir)
    {
        let w = format!("the profile will run without a lockfile: {e}");
        log_message(&w);
        return Ok(ProfileLock {
            file: None,
            path: None,
            warnings: vec![w],
        });
    }
    let started = Instant::now();
    let mut last_log: Option<Instant> = None;
    let mut last_holder = String::new();
    loop {
        if interrupted() {
            return Err(LockError::Interrupted {
                path: path.to_path_buf(),
            });
        }
        let holder = match try_acquire(path, force_inactive)? {
            Attempt::Taken(lock) => return Ok(lock),
            Attempt::Busy(holder) => holder,
        };
        let remaining = budget.remaining();
        if remaining.is_zero() {
            if budget.is_enabled() {
                let total = budget.total().unwrap_or_default();
                log_message(&format!(
                    "previous run of the profile hasn't finished after {}",
                    go_duration(total)
                ));
            }
            return Err(LockError::Busy { holder });
        }
        if holder != last_holder {
            last_log = None;
            last_holder.clone_from(&holder);
        }
        if last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            let elapsed = started.elapsed();
            let rem = if budget.is_unlimited() {
                "unlimited".to_string()
            } else {
                go_duration(remaining)
            };
            let msg = if elapsed > LOG_EVERY {
                format!(
                    "lock wait (remaining {rem} / elapsed {}): {} locked by {}",
                    go_duration(elapsed),
                    path.display(),
                    holder.trim()
                )
            } else {
                format!(
                    "lock wait (remaining {rem}): {} locked by {}",
                    path.display(),
                    holder.trim()
                )
            };
            log_message(&msg);
            last_log = Some(Instant::now());
        }
        let pause = RETRY_EVERY.min(remaining);
        let slept = sleep_interruptible(pause, interrupted);
        budget.consume(slept);
    }
}

fn create_dirs(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
}

/// Sleeps up to `d` in 100 ms slices, returning early when `interrupted` says so; returns the
/// time slept.
fn sleep_interruptible(d: Duration, interrupted: &dyn Fn() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < d {
        if interrupted() {
            break;
        }
        let left = d.saturating_sub(start.elapsed());
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
    start.elapsed()
}

enum Attempt {
    Taken(ProfileLock),
    Busy(String),
}

/// One attempt, without waiting.
fn try_acquire(path: &Path, force_inactive: bool) -> Result<Attempt, LockError> {
    let io = |source: std::io::Error| LockError::Io {
        path: path.to_path_buf(),
        source,
    };
    // A few rounds cover the races with a concurrent release (file removed or replaced
    // between our steps).
    for _ in 0..20 {
        match create_new(path) {
            Ok(Some(file)) => {
                return Ok(Attempt::Taken(held(file, path, Vec::new())));
            }
            Ok(None) => {}
            Err(e) => return Err(io(e)),
        }
        // The file exists.
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                // Someone else's lock we cannot take over anyway.
                return Ok(Attempt::Busy(first_line(
                    &read_path(path).unwrap_or_default(),
                )));
            }
            Err(e) => return Err(io(e)),
        };
        match flock_nb(&file) {
            Flock::Locked => {}
            Flock::Busy => {
                let content = read_file(&file).unwrap_or_default();
                return Ok(Attempt::Busy(first_line(&content)));
            }
            Flock::Unsupported => {}
        }
        if !same_file(&file, path) {
            continue; // released and removed (or replaced) meanwhile
        }
        let content = read_file(&file).map_err(io)?;
        match judge(&content, &file, force_inactive) {
            Verdict::Busy => return Ok(Attempt::Busy(first_line(&content))),
            Verdict::TakeOver(warning) => {
                let mut warnings = Vec::new();
                if let Some(w) = warning {
                    log_message(&w);
                    warnings.push(w);
                }
                let mut file = file;
                write_content(&mut file).map_err(io)?;
                return Ok(Attempt::Taken(ProfileLock {
                    file: Some(file),
                    path: Some(path.to_path_buf()),
                    warnings,
                }));
            }
        }
    }
    Ok(Attempt::Busy(first_line(
        &read_path(path).unwrap_or_default(),
    )))
}

fn held(file: File, path: &Path, warnings: Vec<String>) -> ProfileLock {
    ProfileLock {
        file: Some(file),
        path: Some(path.to_path_buf()),
        warnings,
    }
}

enum Verdict {
    Busy,
    TakeOver(Option<String>),
}

/// Decides about an existing lock file we could flock (or where flock is unsupported).
fn judge(content: &str, file: &File, force_inactive: bool) -> Verdict {
    let who = first_line(content);
    if content.is_empty() {
        let age = file
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .unwrap_or_default();
        return if age >= EMPTY_STALE_AFTER {
            Verdict::TakeOver(None)
        } else {
            Verdict::Busy
        };
    }
    if let Some(marker) = parse_marker(content) {
        // Written by Cairn. With a working flock nobody holds it; without flock support judge
        // by the recorded process (pid and start time, so a reused pid is not mistaken for it).
        if flock_works(file) || !marker.is_alive() {
            return Verdict::TakeOver(Some(format!(
                "previous run of the profile started by {who} hasn't finished properly"
            )));
        }
        return Verdict::Busy;
    }
    // rp's format: only with force-inactive-lock, and only when its last pid is gone.
    if force_inactive
        && let Some(pid) = last_pid(content)
        && !pid_running(pid)
    {
        return Verdict::TakeOver(Some(format!(
            "previous run of the profile started by {who} hasn't finished properly"
        )));
    }
    Verdict::Busy
}

/// Creates the lock file exclusively, already flocked and written: the content goes into a
/// temporary file that is hard-linked to `path` (atomic, fails if `path` exists), so no other
/// process ever sees a lock file without content. Falls back to `O_EXCL` where hard links are
/// not supported. `Ok(None)` when the file exists.
fn create_new(path: &Path) -> std::io::Result<Option<File>> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "lock".into());
    let tmp_name = format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default()
    );
    let tmp = dir.map_or_else(|| PathBuf::from(&tmp_name), |d| d.join(&tmp_name));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)?;
    let _ = flock_nb(&file);
    let linked = write_content(&mut file).and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(Some(file)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(_) => {
            // No hard links here (some FUSE/network filesystems): plain O_EXCL.
            drop(file);
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(path)
            {
                Ok(mut f) => {
                    let _ = flock_nb(&f);
                    write_content(&mut f)?;
                    Ok(Some(f))
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
                Err(e) => Err(e),
            }
        }
    }
}

fn write_content(file: &mut File) -> std::io::Result<()> {
    file.set_len(0)?;
    file.seek(std::io::SeekFrom::Start(0))?;
    file.write_all(lock_content().as_bytes())?;
    file.flush()
}

/// `<user> on <RFC850 time> from <host>\n<pid>\ncairn-lock pid=<pid> start=<t> host=<host>`.
fn lock_content() -> String {
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| "unknown user".into());
    let host = hostname();
    let pid = std::process::id();
    let start = process_start_time(pid).map_or_else(|| "unknown".to_string(), |t| t.to_string());
    format!(
        "{user} on {} from {host}\n{pid}\n{MARKER} pid={pid} start={start} host={host}",
        rfc850_now()
    )
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|| "unknown hostname".into())
}

/// Go's `time.RFC850` layout: `Monday, 02-Jan-06 15:04:05 MST` (zone as `UTC` or an offset).
fn rfc850_now() -> String {
    let now = chrono::Local::now();
    let zone = if now.offset().local_minus_utc() == 0 {
        "UTC".to_string()
    } else {
        now.format("%:z").to_string()
    };
    format!("{} {zone}", now.format("%A, %d-%b-%y %H:%M:%S"))
}

struct Marker {
    pid: u32,
    start: Option<u64>,
}

impl Marker {
    fn is_alive(&self) -> bool {
        if !pid_running(self.pid) {
            return false;
        }
        match (self.start, process_start_time(self.pid)) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }
}

fn parse_marker(content: &str) -> Option<Marker> {
    let line = content.lines().find(|l| l.starts_with(MARKER))?;
    let mut pid = None;
    let mut start = None;
    for word in line.split_whitespace().skip(1) {
        if let Some(v) = word.strip_prefix("pid=") {
            pid = v.parse().ok();
        } else if let Some(v) = word.strip_prefix("start=") {
            start = v.parse().ok();
        }
    }
    Some(Marker { pid: pid?, start })
}

/// The last pid line of an rp-format file (lines after the first that parse as numbers).
fn last_pid(content: &str) -> Option<u32> {
    let lines: Vec<&str> = content.split('\n').skip(1).collect();
    lines
        .iter()
        .rev()
        .find_map(|l| l.trim().parse::<u32>().ok())
}

fn first_line(content: &str) -> String {
    content
        .split('\n')
        .next()
        .unwrap_or_default()
        .trim_end_matches('\r')
        .to_string()
}

fn read_file(mut file: &File) -> std::io::Result<String> {
    file.seek(std::io::SeekFrom::Start(0))?;
    let mut s = String::new();
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)?;
    s.push_str(&String::from_utf8_lossy(&buf));
    Ok(s)
}

fn read_path(path: &Path) -> std::io::Result<String> {
    std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned())
}

enum Flock {
    Locked,
    Busy,
    Unsupported,
}

fn flock_nb(file: &File) -> Flock {
    // SAFETY: flock(2) on a file descriptor we own; no memory is passed.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Flock::Locked;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EWOULDBLOCK) | Some(libc::EINTR) => Flock::Busy,
        _ => Flock::Unsupported,
    }
}

/// Whether flock is effective on this file (we hold it, or it is held by someone else).
fn flock_works(file: &File) -> bool {
    !matches!(flock_nb(file), Flock::Unsupported)
}

/// Whether a process with this pid exists (EPERM counts as running).
pub fn pid_running(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill(2) with signal 0 only checks for existence.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Start time of a process (clock ticks since boot on Linux), to detect pid reuse.
fn process_start_time(pid: u32) -> Option<u64> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: fields after it.
    let after = stat.get(stat.rfind(')')? + 1..)?;
    // Field 22 overall = index 19 after the command name (fields 3.. start at index 0).
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Formats a duration like Go's `Duration.String()` truncated to seconds: `1h2m3s`, `5m0s`,
/// `45s`, `0s`.
pub fn go_duration(d: Duration) -> String {
    crate::config::format_go_duration(Duration::from_secs(d.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget() {
        let mut b = WaitBudget::new(Some(Duration::from_secs(10)));
        assert!(b.is_enabled() && !b.is_unlimited());
        b.consume(Duration::from_secs(4));
        assert_eq!(b.remaining(), Duration::from_secs(6));
        b.consume(Duration::from_secs(40));
        assert_eq!(b.remaining(), Duration::ZERO);
        let n = WaitBudget::new(None);
        assert!(!n.is_enabled());
        assert_eq!(n.remaining(), Duration::ZERO);
        let u = WaitBudget::unlimited();
        assert!(u.is_enabled() && u.is_unlimited());
        assert_eq!(u.remaining(), Duration::MAX);
    }

    #[test]
    fn durations_like_go() {
        assert_eq!(go_duration(Duration::from_millis(900)), "0s");
        assert_eq!(go_duration(Duration::from_secs(45)), "45s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
        assert_eq!(go_duration(Duration::from_secs(3723)), "1h2m3s");
    }

    #[test]
    fn content_and_parsing() {
        let c = lock_content();
        let lines: Vec<&str> = c.split('\n').collect();
        assert_eq!(lines.len(), 3, "{c}");
        assert!(
            lines[0].contains(" on ") && lines[0].contains(" from "),
            "{c}"
        );
        assert_eq!(lines[1], std::process::id().to_string());
        let m = parse_marker(&c).unwrap();
        assert_eq!(m.pid, std::process::id());
        assert!(m.is_alive());
        if cfg!(target_os = "linux") {
            assert!(m.start.is_some());
            let reused = Marker {
                pid: m.pid,
                start: m.start.map(|s| s + 1),
            };
            assert!(
                !reused.is_alive(),
                "a different start time means another process"
            );
        }
        assert_eq!(last_pid(&c), Some(std::process::id()));
        assert_eq!(last_pid("u on t from h\n12\n34\n"), Some(34));
        assert_eq!(last_pid("u on t from h"), None);
        assert_eq!(first_line("a\r\nb"), "a");
    }
}
