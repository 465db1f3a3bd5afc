//! Basic authentication against an `.htpasswd` file (bcrypt `$2y$`/`$2b$`/`$2a$` entries as
//! `htpasswd -B` writes them, and `{SHA}` entries), like rest-server.
//!
//! Verified passwords are remembered for a minute (keyed by a SHA-256 of `user:password`) so
//! that restic's many requests do not each pay for a bcrypt verification. The file is re-read
//! when its size or modification time changes (checked at most every 30 seconds).

use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// How long a verified password is remembered (sliding).
const CACHE_TTL: Duration = Duration::from_secs(60);
/// How often the file is checked for changes.
const RELOAD_CHECK: Duration = Duration::from_secs(30);

/// A loaded `.htpasswd` file.
#[derive(Debug)]
pub struct Htpasswd {
    path: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    users: HashMap<String, String>,
    stamp: Option<(SystemTime, u64)>,
    last_check: Instant,
    cache: HashMap<String, ([u8; 32], Instant)>,
}

/// A user name rest-server accepts: letters, digits, `@`, `.`, `_`, `-`.
pub fn valid_username(u: &str) -> bool {
    !u.is_empty()
        && u.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '@' | '.' | '_' | '-'))
}

/// Parse `.htpasswd` text: `user:hash` lines, `#` comments; invalid user names are skipped and
/// returned as warnings.
pub fn parse(text: &str) -> (HashMap<String, String>, Vec<String>) {
    let mut users = HashMap::new();
    let mut warnings = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, rest)) = line.split_once(':') else {
            warnings.push("ignoring a line without ':' in the htpasswd file".to_string());
            continue;
        };
        let hash = rest.split(':').next().unwrap_or("").trim();
        if !valid_username(user) {
            warnings.push(format!(
                "ignoring invalid username {user:?} in the htpasswd file (only letters, digits, '_', '-', '.' and '@' are allowed)"
            ));
            continue;
        }
        users.insert(user.to_string(), hash.to_string());
    }
    (users, warnings)
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Check a password against one htpasswd hash (bcrypt or `{SHA}`); other schemes fail.
pub fn verify_hash(hash: &str, password: &str) -> bool {
    if let Some(b64) = hash.strip_prefix("{SHA}") {
        use sha1::Digest as _;
        let digest = sha1::Sha1::digest(password.as_bytes());
        let expected = base64::engine::general_purpose::STANDARD.encode(digest);
        return ct_eq(expected.as_bytes(), b64.as_bytes());
    }
    if ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
        return bcrypt::verify(password, hash).unwrap_or(false);
    }
    false
}

/// Constant-time equality (for equal lengths).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn verifier(user: &str, password: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(user.as_bytes());
    h.update(b":");
    h.update(password.as_bytes());
    h.finalize().into()
}

impl Htpasswd {
    /// Load the file; returns it and warnings about skipped lines.
    pub fn load(path: &Path) -> std::io::Result<(Self, Vec<String>)> {
        let text = std::fs::read_to_string(path)?;
        let (users, warnings) = parse(&text);
        let inner = Inner {
            users,
            stamp: stamp(path),
            last_check: Instant::now(),
            cache: HashMap::new(),
        };
        Ok((
            Self {
                path: path.to_path_buf(),
                inner: Mutex::new(inner),
            },
            warnings,
        ))
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.users.len()).unwrap_or(0)
    }

    /// Whether the file has no users.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Re-read the file if it changed (at most every 30 s).
    fn maybe_reload(&self) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if inner.last_check.elapsed() < RELOAD_CHECK {
            return;
        }
        inner.last_check = Instant::now();
        let now = stamp(&self.path);
        if now.is_none() || now == inner.stamp {
            return;
        }
        if let Ok(text) = std::fs::read_to_string(&self.path) {
            inner.users = parse(&text).0;
            inner.cache.clear();
            inner.stamp = now;
        }
    }

    /// Check a user's password (blocking: may run bcrypt).
    pub fn validate(&self, user: &str, password: &str) -> bool {
        self.maybe_reload();
        let v = verifier(user, password);
        let hash = {
            let Ok(mut inner) = self.inner.lock() else {
                return false;
            };
            let Some(hash) = inner.users.get(user).cloned() else {
                return false;
            };
            if let Some((cached, expiry)) = inner.cache.get_mut(user)
                && *expiry > Instant::now()
                && ct_eq(cached, &v)
            {
                *expiry = Instant::now() + CACHE_TTL;
                return true;
            }
            hash
        };
        if !verify_hash(&hash, password) {
            return false;
        }
        if let Ok(mut inner) = self.inner.lock() {
            inner.cache.retain(|_, (_, e)| *e > Instant::now());
            inner
                .cache
                .insert(user.to_string(), (v, Instant::now() + CACHE_TTL));
        }
        true
    }
}

/// Decode an `Authorization: Basic …` header into user and password.
pub fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_skips_comments_and_bad_names() {
        let (u, w) = parse("# c\n\nalice:$2y$05$abc\nbad name:x\nbob:{SHA}xyz:extra\nnocolon\n");
        assert_eq!(u.get("alice").map(String::as_str), Some("$2y$05$abc"));
        assert_eq!(u.get("bob").map(String::as_str), Some("{SHA}xyz"));
        assert_eq!(u.len(), 2);
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn bcrypt_and_sha_entries() {
        let b = bcrypt::hash("secret", 4).unwrap();
        // htpasswd -B writes the $2y$ prefix.
        let y = b.replacen("$2b$", "$2y$", 1);
        assert!(verify_hash(&y, "secret"));
        assert!(verify_hash(&b, "secret"));
        assert!(!verify_hash(&y, "wrong"));
        // htpasswd -s: {SHA} + base64(sha1("secret")).
        assert!(verify_hash("{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", "secret"));
        assert!(!verify_hash("{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", "secreT"));
        assert!(!verify_hash("plain", "plain"));
        assert!(!verify_hash("$apr1$x$y", "secret"));
    }

    #[test]
    fn file_validation_and_cache() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".htpasswd");
        let h = bcrypt::hash("pw", 4).unwrap().replacen("$2b$", "$2y$", 1);
        std::fs::write(&p, format!("alice:{h}\n")).unwrap();
        let (f, w) = Htpasswd::load(&p).unwrap();
        assert!(w.is_empty());
        assert_eq!(f.len(), 1);
        assert!(f.validate("alice", "pw"));
        assert!(f.validate("alice", "pw")); // cached
        assert!(!f.validate("alice", "pW"));
        assert!(!f.validate("bob", "pw"));
    }

    #[test]
    fn basic_header() {
        // "alice:pa:ss"
        assert_eq!(
            basic_credentials("Basic YWxpY2U6cGE6c3M="),
            Some(("alice".into(), "pa:ss".into()))
        );
        assert_eq!(basic_credentials("Bearer x"), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
        assert_eq!(basic_credentials("Basic"), None);
    }
}
