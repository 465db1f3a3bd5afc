//! Lock file contents (`locks/<id>`, spec §5 and forget-prune-check.md §4) and staleness.
//!
//! The locking protocol itself (acquire, refresh, release) lives with the repository; this
//! module only builds, encodes and judges a single lock.

use std::ffi::CStr;

use chrono::{DateTime, FixedOffset, TimeDelta};
use serde::{Deserialize, Serialize};

use crate::error::{RepoError, Result};
use crate::key::go_rfc3339_nano;

/// A lock older than this (by the checker's clock) is stale: 30 minutes.
pub const STALE_TIMEOUT: TimeDelta = TimeDelta::minutes(30);

/// How often a lock holder writes a fresh lock: 5 minutes.
pub const REFRESH_INTERVAL: TimeDelta = TimeDelta::minutes(5);

const WHAT: &str = "lock";

/// The JSON document inside a lock file (restic's field names and order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Creation/refresh time, Go RFC 3339 with nanoseconds (empty = Go's zero time).
    #[serde(default)]
    pub time: String,
    /// Exclusive lock?
    #[serde(default)]
    pub exclusive: bool,
    /// Hostname of the creator.
    #[serde(default)]
    pub hostname: String,
    /// User name of the creator.
    #[serde(default)]
    pub username: String,
    /// Process id of the creator.
    #[serde(default)]
    pub pid: u32,
    /// User id (omitted when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub uid: u32,
    /// Group id (omitted when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gid: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// JSON string literal for `s` (infallible).
fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

impl LockInfo {
    /// A lock for this process: current local time, hostname, user, pid, uid and gid.
    pub fn new(exclusive: bool) -> LockInfo {
        // SAFETY: getuid/getgid have no preconditions and cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        LockInfo {
            time: go_rfc3339_nano(&chrono::Local::now()),
            exclusive,
            hostname: hostname(),
            username: username(),
            pid: std::process::id(),
            uid,
            gid,
        }
    }

    /// Compact JSON in restic's field order, `uid`/`gid` omitted when 0, no trailing newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut s = format!(
            r#"{{"time":{},"exclusive":{},"hostname":{},"username":{},"pid":{}"#,
            json_str(&self.time),
            self.exclusive,
            json_str(&self.hostname),
            json_str(&self.username),
            self.pid
        );
        if self.uid != 0 {
            s.push_str(&format!(r#","uid":{}"#, self.uid));
        }
        if self.gid != 0 {
            s.push_str(&format!(r#","gid":{}"#, self.gid));
        }
        s.push('}');
        s.into_bytes()
    }

    /// Parse lock JSON; a present `time` must be RFC 3339.
    pub fn from_json(json: &[u8]) -> Result<LockInfo> {
        let l: LockInfo = serde_json::from_slice(json).map_err(|e| RepoError::corrupt(WHAT, e))?;
        if !l.time.is_empty() && l.parsed_time().is_none() {
            return Err(RepoError::corrupt(
                WHAT,
                format!("invalid time {:?}", l.time),
            ));
        }
        Ok(l)
    }

    /// The lock time, if `time` parses as RFC 3339.
    pub fn parsed_time(&self) -> Option<DateTime<FixedOffset>> {
        DateTime::parse_from_rfc3339(&self.time).ok()
    }

    /// Whether this lock is stale as seen from this machine at `now`
    /// (see [`LockInfo::is_stale_on_host`]).
    pub fn is_stale(&self, now: DateTime<FixedOffset>) -> bool {
        self.is_stale_on_host(now, &hostname())
    }

    /// Staleness as restic judges it, with the checker's hostname given: older than
    /// 30 minutes, or created on `local_hostname` by a process that no longer exists
    /// (`kill(pid, 0)` fails with ESRCH). A missing time counts as very old (Go's zero
    /// time); an unparsable one is not judged by age.
    pub fn is_stale_on_host(&self, now: DateTime<FixedOffset>, local_hostname: &str) -> bool {
        if self.time.is_empty() {
            return true;
        }
        if let Some(t) = self.parsed_time()
            && now.signed_duration_since(t) > STALE_TIMEOUT
        {
            return true;
        }
        if self.hostname != local_hostname {
            return false;
        }
        !process_exists(self.pid)
    }

    /// Whether this lock conflicts with a requested lock (forget-prune-check.md §4.2):
    /// any exclusive side conflicts; two non-exclusive locks do not.
    pub fn conflicts_with(&self, want_exclusive: bool) -> bool {
        self.exclusive || want_exclusive
    }
}

/// Whether a process with `pid` exists on this machine (`kill(pid, 0)`; only ESRCH means
/// "no such process", EPERM counts as alive). PID 0 and PIDs beyond `i32::MAX` never exist.
pub fn process_exists(pid: u32) -> bool {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if p <= 0 {
        return false;
    }
    // SAFETY: signal 0 only performs the existence/permission check.
    let rc = unsafe { libc::kill(p, 0) };
    if rc == 0 {
        return true;
    }
    std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// This machine's hostname (`gethostname`), lossily decoded; empty on failure.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for `len` bytes; the result is NUL-terminated below.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(buf.get(..end).unwrap_or_default()).into_owned()
}

/// The current user's name: the passwd entry of the real uid, else `$USER`, else empty.
pub fn username() -> String {
    passwd_name().unwrap_or_else(|| std::env::var("USER").unwrap_or_default())
}

fn passwd_name() -> Option<String> {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let mut size = 1024usize;
    while size <= 1 << 20 {
        let mut buf = vec![0 as libc::c_char; size];
        // SAFETY: passwd is plain old data; zeroed is a valid initial value.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: all pointers are valid for the duration of the call; `buf` outlives the
        // use of the strings it backs.
        let rc =
            unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc == libc::ERANGE {
            size *= 4;
            continue;
        }
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success pw_name points to a NUL-terminated string inside `buf`.
        let name = unsafe { CStr::from_ptr(pwd.pw_name) };
        return Some(name.to_string_lossy().into_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::decode_unpacked;
    use crate::crypto::MasterKey;

    const LOCK_DIR: &str = "/work/shared/fixtures/expected/repo-v2/example-lock";
    const LOCK_ID: &str = "df60088986d3d4558166338b54f5f35f2c8cd8731135803d34f32fb188c1bc47";

    fn fixture_plain() -> Vec<u8> {
        std::fs::read(format!("{LOCK_DIR}/{LOCK_ID}.plain.json")).unwrap()
    }

    fn at(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    #[test]
    fn fixture_lock_roundtrip() {
        let json = fixture_plain();
        let l = LockInfo::from_json(&json).unwrap();
        assert_eq!(l.time, "2026-11-26T13:17:25.911559619+01:00");
        assert!(!l.exclusive);
        assert_eq!(l.hostname, "vm");
        assert_eq!(l.username, "root");
        assert_eq!(l.pid, 27379);
        assert_eq!((l.uid, l.gid), (0, 0));
        assert_eq!(l.to_json(), json);
        assert_eq!(serde_json::to_vec(&l).unwrap(), json);
    }

    #[test]
    fn fixture_lock_decrypts() {
        let raw = std::fs::read(format!("{LOCK_DIR}/{LOCK_ID}")).unwrap();
        assert_eq!(crate::Id::hash(&raw).to_hex(), LOCK_ID);
        let mk = MasterKey::from_json(
            &std::fs::read("/work/shared/fixtures/expected/repo-v2/masterkey.plain.json").unwrap(),
        )
        .unwrap();
        let payload = mk.open(&raw).unwrap();
        assert_eq!(payload[0], 0x02);
        let json = decode_unpacked(2, payload).unwrap();
        assert_eq!(json, fixture_plain());
        assert_eq!(LockInfo::from_json(&json).unwrap().pid, 27379);
    }

    #[test]
    fn staleness_by_age() {
        let l = LockInfo::from_json(&fixture_plain()).unwrap();
        // Other host: stale only after 30 minutes.
        assert!(!l.is_stale_on_host(at("2026-11-26T12:17:26Z"), "elsewhere"));
        assert!(!l.is_stale_on_host(at("2026-11-26T13:47:25.911559619+01:00"), "elsewhere"));
        assert!(l.is_stale_on_host(at("2026-11-26T12:47:26Z"), "elsewhere"));
        assert!(l.is_stale_on_host(at("2027-01-01T00:00:00Z"), "elsewhere"));
        // A lock from the future is not stale by age.
        assert!(!l.is_stale_on_host(at("2026-11-26T10:00:00Z"), "elsewhere"));
        // Missing time = Go zero time = stale.
        let mut z = l.clone();
        z.time.clear();
        assert!(z.is_stale_on_host(at("2026-11-26T12:17:26Z"), "elsewhere"));
    }

    #[test]
    fn staleness_by_pid_on_same_host() {
        let now = chrono::Local::now().fixed_offset();
        let mut l = LockInfo::new(true);
        assert!(!l.is_stale(now), "own lock must not be stale: {l:?}");
        assert!(!l.is_stale_on_host(now, &l.hostname.clone()));
        l.pid = 0x7fff_fff0; // beyond any pid_max
        assert!(l.is_stale_on_host(now, &l.hostname.clone()));
        assert!(!l.is_stale_on_host(now, "some-other-host"));
        l.pid = 0;
        assert!(l.is_stale_on_host(now, &l.hostname.clone()));
    }

    #[test]
    fn process_exists_checks() {
        assert!(process_exists(std::process::id()));
        assert!(process_exists(1));
        assert!(!process_exists(0));
        assert!(!process_exists(u32::MAX));
        assert!(!process_exists(0x7fff_fff0));
    }

    #[test]
    fn new_lock_fields() {
        let l = LockInfo::new(false);
        assert!(!l.exclusive);
        assert_eq!(l.pid, std::process::id());
        assert_eq!(l.hostname, hostname());
        assert!(!l.hostname.is_empty());
        assert!(l.parsed_time().is_some(), "{}", l.time);
        // SAFETY: no preconditions.
        assert_eq!(l.uid, unsafe { libc::getuid() });
        let back = LockInfo::from_json(&l.to_json()).unwrap();
        assert_eq!(back, l);
    }

    #[test]
    fn uid_gid_serialization() {
        let mut l = LockInfo::from_json(&fixture_plain()).unwrap();
        l.uid = 1000;
        l.gid = 100;
        l.exclusive = true;
        let s = String::from_utf8(l.to_json()).unwrap();
        assert!(s.contains(r#","exclusive":true,"#), "{s}");
        assert!(s.ends_with(r#""pid":27379,"uid":1000,"gid":100}"#), "{s}");
        assert_eq!(s.as_bytes(), serde_json::to_vec(&l).unwrap());
        assert_eq!(LockInfo::from_json(s.as_bytes()).unwrap(), l);
        l.uid = 0;
        let s = String::from_utf8(l.to_json()).unwrap();
        assert!(s.ends_with(r#""pid":27379,"gid":100}"#), "{s}");
        // escaping of odd names matches serde
        l.hostname = "a\"b\\c\u{1}".into();
        assert_eq!(l.to_json(), serde_json::to_vec(&l).unwrap());
    }

    #[test]
    fn bad_lock_json() {
        assert!(LockInfo::from_json(b"{").is_err());
        assert!(LockInfo::from_json(br#"{"time":"yesterday"}"#).is_err());
        assert!(LockInfo::from_json(br#"{"pid":-1}"#).is_err());
        assert!(LockInfo::from_json(b"{}").is_ok());
    }

    #[test]
    fn conflicts() {
        let mut l = LockInfo::from_json(&fixture_plain()).unwrap();
        assert!(!l.conflicts_with(false));
        assert!(l.conflicts_with(true));
        l.exclusive = true;
        assert!(l.conflicts_with(false));
    }
}
