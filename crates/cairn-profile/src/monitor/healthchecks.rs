//! The built-in Healthchecks.io monitor (§10.1): `/start` before the run, then success,
//! `/fail` or `/<exit code>` with the same `rid` and the tail of this run's log as the body.
//! Pings never fail the run and never wait longer than `timeout × retries` each.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::header::{CONTENT_TYPE, HeaderMap, USER_AGENT};

use super::http::{HttpSettings, RetryPolicy, build_client, execute};
use super::mask::mask_url_path;
use crate::types::{BackupStats, ErrorInfo, HealthchecksBody, HealthchecksSpec};

/// How a run ended, as told to Healthchecks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingOutcome {
    /// Ping `<url>`.
    Success,
    /// Ping `<url>/fail`.
    Fail,
    /// Ping `<url>/<code>` (0 = success, anything else = failure).
    ExitCode(u8),
}

/// Pause after the first failed ping attempt (doubles after each further one).
const PING_BACKOFF: Duration = Duration::from_millis(500);

/// One run's Healthchecks pinger: holds the run id that pairs `/start` with the final ping
/// and the smallest `Ping-Body-Limit` the server announced.
#[derive(Debug)]
pub struct Healthchecks {
    base: String,
    query: String,
    rid: String,
    body: HealthchecksBody,
    body_limit: usize,
    timeout: Duration,
    retries: u32,
    dry_run: bool,
    user_agent: String,
    client: Result<Client, String>,
    pending_warnings: Mutex<Vec<String>>,
    server_limit: AtomicUsize,
}

impl Healthchecks {
    /// A pinger for the resolved ping `url` (`https://hc-ping.com/<uuid>`,
    /// `…/<ping-key>/<slug>?create=1`, self-hosted `…/ping/<uuid>`), with a fresh run id.
    /// The spec gives body kind, body limit, per-attempt timeout and attempts; `settings`
    /// gives CA roots, dry run and the user agent (its timeout is not used).
    pub fn new(url: String, spec: &HealthchecksSpec, settings: &HttpSettings) -> Self {
        let without_fragment = url.split('#').next().unwrap_or("");
        let (path, query) = without_fragment
            .split_once('?')
            .unwrap_or((without_fragment, ""));
        let client_settings = HttpSettings {
            timeout: spec.timeout,
            ..settings.clone()
        };
        let (client, warnings) = build_client(&client_settings, false);
        Healthchecks {
            base: path.trim_end_matches('/').to_string(),
            query: query.to_string(),
            rid: new_uuid_v4(),
            body: spec.body,
            body_limit: spec.body_limit,
            timeout: spec.timeout,
            retries: spec.retries.max(1),
            dry_run: settings.dry_run,
            user_agent: settings.user_agent.clone(),
            client,
            pending_warnings: Mutex::new(warnings),
            server_limit: AtomicUsize::new(usize::MAX),
        }
    }

    /// The run id (`rid`) sent with every ping of this run, canonical UUID v4 text.
    pub fn run_id(&self) -> &str {
        &self.rid
    }

    /// The largest body a ping may carry now: the configured limit or a lower
    /// `Ping-Body-Limit` announced by the server.
    pub fn effective_body_limit(&self) -> usize {
        self.body_limit
            .min(self.server_limit.load(Ordering::Relaxed))
    }

    /// Pings `/start`. Returns a warning when the ping could not be delivered.
    pub fn start(&self) -> Option<String> {
        self.ping("start", "/start", None)
    }

    /// The final ping: `<url>`, `<url>/fail` or `<url>/<code>`, with the body the spec asks
    /// for: the tail of `log` (a file and the offset where this run's output starts), the
    /// `summary` text, or nothing. Returns a warning when something went wrong.
    pub fn finish(
        &self,
        outcome: PingOutcome,
        log: Option<(&Path, u64)>,
        summary: &str,
    ) -> Option<String> {
        let suffix = match outcome {
            PingOutcome::Success => String::new(),
            PingOutcome::Fail => "/fail".to_string(),
            PingOutcome::ExitCode(code) => format!("/{code}"),
        };
        let limit = self.effective_body_limit();
        let mut warnings = Vec::new();
        let body = match self.body {
            HealthchecksBody::None => None,
            HealthchecksBody::Summary => Some(head_on_boundary(summary.as_bytes(), limit)),
            HealthchecksBody::LogTail => match log {
                Some((path, offset)) => match read_tail(path, offset, limit) {
                    Ok(tail) => Some(tail),
                    Err(e) => {
                        warnings.push(format!(
                            "cannot read the log {} for the Healthchecks ping: {e}",
                            path.display()
                        ));
                        None
                    }
                },
                None => None,
            },
        };
        let what = match outcome {
            PingOutcome::Success => "success",
            PingOutcome::Fail => "failure",
            PingOutcome::ExitCode(_) => "exit status",
        };
        warnings.extend(self.ping(what, &suffix, body));
        join_warnings(warnings)
    }

    /// Attaches `text` (its tail within the body limit) to the check via `/log`; the check's
    /// status does not change.
    pub fn log(&self, text: &str) -> Option<String> {
        let body = tail_on_boundary(text.as_bytes(), self.effective_body_limit());
        self.ping("log", "/log", Some(body))
    }

    fn url_for(&self, suffix: &str) -> String {
        let mut url = format!("{}{suffix}?", self.base);
        if !self.query.is_empty() {
            url.push_str(&self.query);
            url.push('&');
        }
        url.push_str("rid=");
        url.push_str(&self.rid);
        url
    }

    fn ping(&self, what: &str, suffix: &str, body: Option<Vec<u8>>) -> Option<String> {
        let mut warnings = std::mem::take(
            &mut *self
                .pending_warnings
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        let url = self.url_for(suffix);
        let shown = format!("{}{suffix}", mask_url_path(&self.base));
        let body = body.filter(|b| !b.is_empty());
        if self.dry_run {
            tracing::info!(
                "dry-run: Healthchecks {what} ping {shown} rid={} body {} bytes",
                self.rid,
                body.as_ref().map_or(0, Vec::len)
            );
            return join_warnings(warnings);
        }
        let client = match &self.client {
            Ok(client) => client,
            Err(e) => {
                warnings.push(format!("Healthchecks {what} ping to {shown} not sent: {e}"));
                return join_warnings(warnings);
            }
        };
        let make = |client: &Client| {
            let request = match &body {
                Some(body) => client
                    .post(url.as_str())
                    .header(CONTENT_TYPE, "text/plain; charset=utf-8")
                    .body(body.clone()),
                None => client.get(url.as_str()),
            };
            request.header(USER_AGENT, self.user_agent.as_str())
        };
        let policy = RetryPolicy {
            tries: self.retries,
            timeout: self.timeout,
            budget: Some(self.timeout.saturating_mul(self.retries)),
            backoff: PING_BACKOFF,
        };
        let mut observe = |headers: &HeaderMap| {
            let limit = headers
                .get("ping-body-limit")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<usize>().ok());
            if let Some(limit) = limit {
                self.server_limit.fetch_min(limit, Ordering::Relaxed);
            }
        };
        tracing::debug!("Healthchecks {what} ping {shown} rid={}", self.rid);
        if let Err(failure) = execute(client, policy, &make, &mut observe) {
            warnings.push(format!(
                "Healthchecks {what} ping to {shown} failed: {}",
                failure.describe()
            ));
        }
        join_warnings(warnings)
    }
}

/// A short run report for `healthchecks-body = "summary"`: outcome and duration, the
/// snapshot and backup counters when known, the error and the last lines of its stderr.
/// `outcome` is free text such as `succeeded`, `failed` or `saved a snapshot with warnings`.
pub fn run_summary(
    profile: &str,
    command: &str,
    outcome: &str,
    duration: Duration,
    stats: Option<&BackupStats>,
    error: Option<&ErrorInfo>,
) -> String {
    let mut out = format!(
        "{command} on profile {profile} {outcome} after {} s\n",
        super::status_file::whole_seconds_up(duration)
    );
    if let Some(s) = stats {
        if let Some(id) = &s.snapshot_id {
            out.push_str(&format!("snapshot {id} saved\n"));
        }
        out.push_str(&format!(
            "files: {} new, {} changed, {} unmodified, {} processed\n\
             dirs: {} new, {} changed, {} unmodified\n\
             bytes: {} added ({} stored), {} processed\n",
            s.files_new,
            s.files_changed,
            s.files_unmodified,
            s.files_total,
            s.dirs_new,
            s.dirs_changed,
            s.dirs_unmodified,
            s.bytes_added,
            s.bytes_added_packed,
            s.bytes_total
        ));
    }
    if let Some(e) = error {
        out.push_str(&format!(
            "error: {} (exit code {})\n",
            e.message, e.exit_code
        ));
        let lines: Vec<&str> = e.stderr.lines().collect();
        let tail = lines.get(lines.len().saturating_sub(SUMMARY_STDERR_LINES)..);
        if let Some(tail) = tail.filter(|t| !t.is_empty()) {
            out.push_str("stderr:\n");
            for line in tail {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Lines of stderr a summary keeps.
const SUMMARY_STDERR_LINES: usize = 20;

fn join_warnings(warnings: Vec<String>) -> Option<String> {
    if warnings.is_empty() {
        None
    } else {
        Some(warnings.join("; "))
    }
}

/// A random (version 4) UUID in canonical lower-case text.
pub fn new_uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let part = |from: usize, to: usize| hex.get(from..to).unwrap_or("");
    format!(
        "{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}

/// The last `limit` bytes of what was written to `path` from `offset` on (from the start when
/// the file is now shorter than `offset`, i.e. it was truncated), starting on a UTF-8
/// character boundary.
pub fn read_tail(path: &Path, offset: u64, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let start = if offset <= len { offset } else { 0 };
    let limit64 = u64::try_from(limit).unwrap_or(u64::MAX);
    let from = start.max(len.saturating_sub(limit64));
    file.seek(SeekFrom::Start(from))?;
    let mut buf = Vec::new();
    file.take(len - from).read_to_end(&mut buf)?;
    Ok(skip_partial_char(buf))
}

/// The last `limit` bytes of `bytes`, starting on a UTF-8 character boundary.
pub fn tail_on_boundary(bytes: &[u8], limit: usize) -> Vec<u8> {
    let from = bytes.len().saturating_sub(limit);
    if from == 0 {
        return bytes.to_vec();
    }
    skip_partial_char(bytes.get(from..).unwrap_or_default().to_vec())
}

/// The first `limit` bytes of `bytes`, ending on a UTF-8 character boundary.
pub fn head_on_boundary(bytes: &[u8], limit: usize) -> Vec<u8> {
    if bytes.len() <= limit {
        return bytes.to_vec();
    }
    let mut end = limit;
    // Step back over continuation bytes to the start of the cut character (at most 3).
    let mut steps = 0;
    while end > 0 && steps < 4 && bytes.get(end).is_some_and(|b| b & 0xC0 == 0x80) {
        end -= 1;
        steps += 1;
    }
    bytes.get(..end).unwrap_or_default().to_vec()
}

/// Drops the continuation bytes (at most 3) a cut left at the front.
fn skip_partial_char(mut buf: Vec<u8>) -> Vec<u8> {
    let skip = buf.iter().take(3).take_while(|b| *b & 0xC0 == 0x80).count();
    buf.drain(..skip);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries() {
        let stats = BackupStats {
            files_new: 2,
            snapshot_id: Some("1a2b3c4d".into()),
            ..BackupStats::default()
        };
        let stderr: String = (1..=25).map(|i| format!("line {i}\n")).collect();
        let error = ErrorInfo {
            message: "exit status 3".into(),
            command_line: String::new(),
            exit_code: 3,
            stderr,
        };
        let text = run_summary(
            "nidoking",
            "backup",
            "failed",
            Duration::from_millis(15_100),
            Some(&stats),
            Some(&error),
        );
        assert!(text.starts_with("backup on profile nidoking failed after 16 s\nsnapshot 1a2b3c4d saved\nfiles: 2 new,"), "{text}");
        assert!(
            text.contains("error: exit status 3 (exit code 3)\nstderr:\nline 6\n"),
            "{text}"
        );
        assert!(!text.contains("line 5\n"), "{text}");
        assert!(text.ends_with("line 25\n"), "{text}");
        let text = run_summary("p", "check", "succeeded", Duration::ZERO, None, None);
        assert_eq!(text, "check on profile p succeeded after 0 s\n");
    }

    #[test]
    fn uuid_v4_shape() {
        let a = new_uuid_v4();
        let b = new_uuid_v4();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"));
        assert!(
            a.chars()
                .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn tails_and_heads_cut_on_char_boundaries() {
        let text = "aé€😀".as_bytes(); // 1 + 2 + 3 + 4 bytes
        assert_eq!(tail_on_boundary(text, 100), text);
        assert_eq!(tail_on_boundary(text, 4), "😀".as_bytes());
        assert_eq!(tail_on_boundary(text, 6), "😀".as_bytes());
        assert_eq!(tail_on_boundary(text, 7), "€😀".as_bytes());
        assert_eq!(tail_on_boundary(text, 9), "é€😀".as_bytes());
        assert_eq!(head_on_boundary(text, 2), b"a");
        assert_eq!(head_on_boundary(text, 3), "aé".as_bytes());
        assert_eq!(head_on_boundary(text, 9), "aé€".as_bytes());
        assert_eq!(head_on_boundary(text, 0), b"");
    }

    #[test]
    fn read_tail_only_reads_this_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "old run\nnew é run\n").unwrap();
        assert_eq!(read_tail(&path, 8, 1000).unwrap(), "new é run\n".as_bytes());
        // Cut inside é (2 bytes): the stray continuation byte is dropped.
        assert_eq!(read_tail(&path, 8, 6).unwrap(), b" run\n");
        // Truncated file: everything.
        assert_eq!(read_tail(&path, 1000, 8).unwrap(), " é run\n".as_bytes());
        assert!(read_tail(&dir.path().join("none"), 0, 10).is_err());
    }

    #[test]
    fn ping_urls_keep_the_query() {
        let spec = HealthchecksSpec::default();
        let settings = HttpSettings::default();
        let hc = Healthchecks::new(
            "https://hc-ping.com/key/slug/?create=1".into(),
            &spec,
            &settings,
        );
        let rid = hc.run_id().to_string();
        assert_eq!(
            hc.url_for("/start"),
            format!("https://hc-ping.com/key/slug/start?create=1&rid={rid}")
        );
        let hc = Healthchecks::new("https://hc-ping.com/uuid".into(), &spec, &settings);
        assert_eq!(
            hc.url_for(""),
            format!("https://hc-ping.com/uuid?rid={}", hc.run_id())
        );
    }
}
