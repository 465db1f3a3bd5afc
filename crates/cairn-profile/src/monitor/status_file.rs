//! The status file (`status-file = PATH`, §13): one JSON document with the last result of
//! `backup`, `retention` (forget), `check` and `prune` per profile, in resticprofile's shape
//! so that `jq .profiles.NAME.backup.success` keeps working.
//!
//! Writes are read-modify-write under an exclusive lock on a side file (`PATH.lock`), through
//! a temporary file that is fsynced and renamed over the old one: readers never see a half
//! written document and concurrent runs never lose each other's entries.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Timelike};
use serde_json::{Map, Value};

use crate::types::BackupStats;

/// Which entry of a profile a result goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    /// `backup`.
    Backup,
    /// `retention`: forget after backup, or `forget` run directly.
    Retention,
    /// `check`.
    Check,
    /// `prune` (our addition).
    Prune,
}

impl StatusKind {
    /// The JSON key of the entry.
    pub fn key(self) -> &'static str {
        match self {
            StatusKind::Backup => "backup",
            StatusKind::Retention => "retention",
            StatusKind::Check => "check",
            StatusKind::Prune => "prune",
        }
    }

    /// The entry a command's result is recorded under, None for commands not recorded.
    pub fn for_command(command: &str) -> Option<StatusKind> {
        match command {
            "backup" => Some(StatusKind::Backup),
            "forget" | "retention" => Some(StatusKind::Retention),
            "check" => Some(StatusKind::Check),
            "prune" => Some(StatusKind::Prune),
            _ => None,
        }
    }
}

/// One command result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEntry {
    /// Whether the command succeeded (a warning with `no-error-on-warning` counts as success).
    pub success: bool,
    /// Completion time with the local offset.
    pub time: DateTime<FixedOffset>,
    /// Start time (written as `started` when known).
    pub started: Option<DateTime<FixedOffset>>,
    /// Failure message (`exit status 3`), empty on success.
    pub error: String,
    /// Everything the command wrote to stderr (also on success).
    pub stderr: String,
    /// Run time; written as whole seconds rounded up.
    pub duration: Duration,
    /// Backup counters (backup only; written as 0 on failure).
    pub stats: Option<BackupStats>,
    /// Exit code of the command (written as `exit_code` when known).
    pub exit_code: Option<i32>,
    /// The command ended with a warning (exit 3: some files could not be read).
    pub warning: bool,
    /// Host name (written as `host` when known).
    pub host: Option<String>,
}

/// Records `entry` as the `kind` result of `profile` in the status file at `path`, keeping
/// every other profile, entry and unknown key. Creates the file (mode 0644) and its parent
/// directories when missing.
pub fn record(path: &Path, profile: &str, kind: StatusKind, entry: &StatusEntry) -> io::Result<()> {
    let path = resolve_symlink(path);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let lock = open_lock(&path)?;
    lock.lock()?;
    let result = update(&path, &dir, profile, kind, entry);
    let _ = lock.unlock();
    result
}

/// Reads and parses the status file.
pub fn read(path: &Path) -> io::Result<Value> {
    let text = std::fs::read(path)?;
    serde_json::from_slice(&text).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("status file {} is not valid JSON: {e}", path.display()),
        )
    })
}

/// The JSON object written for one entry (key order as resticprofile, our keys after).
pub fn entry_json(kind: StatusKind, entry: &StatusEntry) -> Value {
    let mut m = Map::new();
    m.insert("success".into(), Value::Bool(entry.success));
    m.insert("time".into(), Value::String(go_time(&entry.time)));
    m.insert("error".into(), Value::String(entry.error.clone()));
    m.insert("stderr".into(), Value::String(entry.stderr.clone()));
    m.insert(
        "duration".into(),
        Value::from(whole_seconds_up(entry.duration)),
    );
    if kind == StatusKind::Backup {
        let zero = BackupStats::default();
        let counters = match &entry.stats {
            Some(stats) if entry.success => stats,
            _ => &zero,
        };
        for (key, value) in [
            ("files_new", counters.files_new),
            ("files_changed", counters.files_changed),
            ("files_unmodified", counters.files_unmodified),
            ("dirs_new", counters.dirs_new),
            ("dirs_changed", counters.dirs_changed),
            ("dirs_unmodified", counters.dirs_unmodified),
            ("files_total", counters.files_total),
            ("bytes_added", counters.bytes_added),
            ("bytes_added_packed", counters.bytes_added_packed),
            ("bytes_total", counters.bytes_total),
        ] {
            m.insert(key.into(), Value::from(value));
        }
        // The snapshot id is kept on failure: exit 3 still saves a snapshot.
        let snapshot = entry
            .stats
            .as_ref()
            .and_then(|s| s.snapshot_id.clone())
            .unwrap_or_default();
        m.insert("snapshot_id".into(), Value::String(snapshot));
    }
    if let Some(code) = entry.exit_code {
        m.insert("exit_code".into(), Value::from(code));
    }
    m.insert("warning".into(), Value::Bool(entry.warning));
    if let Some(started) = &entry.started {
        m.insert("started".into(), Value::String(go_time(started)));
    }
    if let Some(host) = &entry.host {
        m.insert("host".into(), Value::String(host.clone()));
    }
    Value::Object(m)
}

/// Go's `time.RFC3339Nano` as `encoding/json` writes it: fraction without trailing zeros
/// (none when zero), `Z` for a zero offset.
pub fn go_time(t: &DateTime<FixedOffset>) -> String {
    let mut s = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.nanosecond() % 1_000_000_000;
    if nanos != 0 {
        let fraction = format!("{nanos:09}");
        s.push('.');
        s.push_str(fraction.trim_end_matches('0'));
    }
    if t.offset().local_minus_utc() == 0 {
        s.push('Z');
    } else {
        s.push_str(&t.format("%:z").to_string());
    }
    s
}

/// Whole seconds, rounded up (1.2 s → 2, 0 s → 0).
pub fn whole_seconds_up(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn resolve_symlink(path: &Path) -> PathBuf {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
        }
        _ => path.to_path_buf(),
    }
}

fn open_lock(path: &Path) -> io::Result<File> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let mut options = OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o644);
    }
    options.open(PathBuf::from(name))
}

fn update(
    path: &Path,
    dir: &Path,
    profile: &str,
    kind: StatusKind,
    entry: &StatusEntry,
) -> io::Result<()> {
    let mut doc = match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
        Ok(_) => match read(path)? {
            Value::Object(m) => m,
            _ => return Err(invalid(path, "the document is not a JSON object")),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Map::new(),
        Err(e) => return Err(e),
    };
    let mut profiles = match doc.remove("profiles") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(invalid(path, "\"profiles\" is not an object")),
    };
    let mut entries = match profiles.remove(profile) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(invalid(path, "a profile entry is not an object")),
    };
    entries.insert(kind.key().to_string(), entry_json(kind, entry));
    profiles.insert(profile.to_string(), Value::Object(order_entries(entries)));
    // Profiles sorted by name like Go's encoding/json; "profiles" first, unknown keys after.
    let mut names: Vec<String> = profiles.keys().cloned().collect();
    names.sort();
    let mut sorted = Map::new();
    for name in names {
        if let Some(v) = profiles.remove(&name) {
            sorted.insert(name, v);
        }
    }
    let mut out = Map::new();
    out.insert("profiles".into(), Value::Object(sorted));
    out.extend(doc);
    let mut text = go_json(&Value::Object(out))?;
    text.push('\n');
    write_atomically(path, dir, text.as_bytes())
}

/// Entries in resticprofile's order (backup, retention, check), then ours, then unknown keys.
fn order_entries(mut entries: Map<String, Value>) -> Map<String, Value> {
    let mut ordered = Map::new();
    for key in ["backup", "retention", "check", "prune"] {
        if let Some(v) = entries.remove(key) {
            ordered.insert(key.to_string(), v);
        }
    }
    ordered.extend(entries);
    ordered
}

/// Compact JSON escaped like Go's `encoding/json` (`<`, `>`, `&`, U+2028, U+2029 as `\uXXXX`).
/// These characters only occur inside strings, so replacing them in the output is safe.
fn go_json(value: &Value) -> io::Result<String> {
    let text = serde_json::to_string(value).map_err(io::Error::other)?;
    Ok(text
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029"))
}

fn invalid(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "status file {}: {what}; fix or remove the file",
            path.display()
        ),
    )
}

fn write_atomically(path: &Path, dir: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "status".into());
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn times_like_go() {
        let utc = FixedOffset::east_opt(0).unwrap();
        let t = utc.with_ymd_and_hms(2025, 1, 2, 12, 34, 56).unwrap();
        assert_eq!(go_time(&t), "2025-01-02T12:34:56Z");
        let t = t + chrono::Duration::microseconds(789_012);
        assert_eq!(go_time(&t), "2025-01-02T12:34:56.789012Z");
        let cet = FixedOffset::east_opt(3600).unwrap();
        let t = cet.with_ymd_and_hms(2025, 1, 2, 12, 0, 0).unwrap()
            + chrono::Duration::nanoseconds(100);
        assert_eq!(go_time(&t), "2025-01-02T12:00:00.0000001+01:00");
        let west = FixedOffset::west_opt(5 * 3600 + 1800).unwrap();
        let t = west.with_ymd_and_hms(2025, 1, 2, 12, 0, 0).unwrap();
        assert_eq!(go_time(&t), "2025-01-02T12:00:00-05:30");
    }

    #[test]
    fn durations_round_up() {
        assert_eq!(whole_seconds_up(Duration::ZERO), 0);
        assert_eq!(whole_seconds_up(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds_up(Duration::from_secs(16)), 16);
        assert_eq!(whole_seconds_up(Duration::from_millis(15_001)), 16);
    }

    #[test]
    fn escapes_like_go() {
        let v = serde_json::json!({"stderr": "a<b>&c\u{2028}"});
        assert_eq!(
            go_json(&v).unwrap(),
            r#"{"stderr":"a\u003cb\u003e\u0026c\u2028"}"#
        );
    }

    #[test]
    fn commands_map_to_entries() {
        assert_eq!(
            StatusKind::for_command("forget"),
            Some(StatusKind::Retention)
        );
        assert_eq!(StatusKind::for_command("backup"), Some(StatusKind::Backup));
        assert_eq!(StatusKind::for_command("prune"), Some(StatusKind::Prune));
        assert_eq!(StatusKind::for_command("snapshots"), None);
    }
}
